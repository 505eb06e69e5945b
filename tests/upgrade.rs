//! The zero-downtime upgrade under load, as a user runs it: a short grace period, several
//! clients at once on fresh connections (nothing may be lost) and on keep-alive connections
//! (a request in flight is answered; an idle connection may be closed by the old process
//! just as the client sends on it, which HTTP clients retry: counted and reported).

mod common;
use common::*;
use std::io::{BufReader, Write};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn config(port: u16, origin: &Origin, version: &str, sock: &std::path::Path) -> String {
    format!(
        r#"
[basic]
threads = 2
grace_period = "1s"
graceful_shutdown_timeout = "1s"
upgrade_sock = "{}"

[servers.main]
addr = "127.0.0.1:{port}"
locations = ["all"]

[locations.all]
upstream = "backend"
plugins = ["ver"]

[upstreams.backend]
addrs = ["{}"]

[plugins.ver]
category = "response_headers"
set = ["x-version: {version}"]
"#,
        sock.display(),
        origin.addr
    )
}

#[derive(Default)]
struct Tally {
    sent: AtomicUsize,
    answered: AtomicUsize,
    /// answers that closed the connection (`Connection: close`)
    closing: AtomicUsize,
    /// a request sent on an idle keep-alive connection that was closed under it
    close_races: AtomicUsize,
    failures: Mutex<Vec<String>>,
    versions: Mutex<std::collections::BTreeSet<String>>,
}

/// A client as real ones are: its request leaves a few milliseconds after the connection is
/// made (a TLS handshake, a slow host), so the proxy accepts connections whose request has
/// not arrived yet.
fn slow_send(port: u16, raw: &[u8]) -> std::io::Result<Response> {
    let s = std::net::TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(WAIT))?;
    std::thread::sleep(Duration::from_millis(3));
    (&s).write_all(raw)?;
    read_response(&mut BufReader::new(s), false)
}

/// Bounded: at most 5,000 requests or 60 s per client, until `stop`.
fn fresh_client(port: u16, stop: Arc<AtomicBool>, t: Arc<Tally>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let start = Instant::now();
        for _ in 0..5_000 {
            if stop.load(Ordering::SeqCst) || start.elapsed() > Duration::from_secs(60) {
                break;
            }
            t.sent.fetch_add(1, Ordering::SeqCst);
            match slow_send(
                port,
                b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
            ) {
                Ok(r) if r.status == 200 => {
                    t.answered.fetch_add(1, Ordering::SeqCst);
                    if let Some(v) = r.header("x-version") {
                        t.versions.lock().unwrap().insert(v.to_string());
                    }
                }
                Ok(r) => t
                    .failures
                    .lock()
                    .unwrap()
                    .push(format!("status {}", r.status)),
                Err(e) => t.failures.lock().unwrap().push(e.to_string()),
            }
        }
    })
}

fn keepalive_client(
    port: u16,
    stop: Arc<AtomicBool>,
    t: Arc<Tally>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let start = Instant::now();
        let mut conn: Option<BufReader<std::net::TcpStream>> = None;
        let mut fresh = true;
        for _ in 0..5_000 {
            if stop.load(Ordering::SeqCst) || start.elapsed() > Duration::from_secs(60) {
                break;
            }
            if conn.is_none() {
                conn = Some(BufReader::new(connect(port)));
                fresh = true;
            }
            let Some(r) = conn.as_mut() else { break };
            t.sent.fetch_add(1, Ordering::SeqCst);
            let wrote = r.get_ref().write_all(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n");
            match wrote.and_then(|_| read_response(r, false)) {
                Ok(resp) if resp.status == 200 => {
                    t.answered.fetch_add(1, Ordering::SeqCst);
                    if let Some(v) = resp.header("x-version") {
                        t.versions.lock().unwrap().insert(v.to_string());
                    }
                    if resp.header("connection") == Some("close") {
                        t.closing.fetch_add(1, Ordering::SeqCst);
                        conn = None;
                    }
                    fresh = false;
                }
                Ok(resp) => {
                    t.failures
                        .lock()
                        .unwrap()
                        .push(format!("status {}", resp.status));
                    conn = None;
                }
                // nothing came back on a connection that had served before: the server
                // closed it while idle, as our request crossed (a client retries these)
                Err(_) if !fresh => {
                    t.close_races.fetch_add(1, Ordering::SeqCst);
                    conn = None;
                }
                Err(e) => {
                    t.failures
                        .lock()
                        .unwrap()
                        .push(format!("fresh connection: {e}"));
                    conn = None;
                }
            }
        }
    })
}

#[test]
fn an_upgrade_under_load_answers_every_request() {
    let origin = Origin::named("o");
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("upgrade.sock");
    let old = Tidegate::start(&config(port, &origin, "old", &sock), &[port]);

    let stop = Arc::new(AtomicBool::new(false));
    let (fresh, kept) = (Arc::new(Tally::default()), Arc::new(Tally::default()));
    let mut clients: Vec<_> = (0..4)
        .map(|_| fresh_client(port, stop.clone(), fresh.clone()))
        .collect();
    clients.extend((0..2).map(|_| keepalive_client(port, stop.clone(), kept.clone())));
    assert!(wait_until(WAIT, || fresh.answered.load(Ordering::SeqCst)
        > 50
        && kept.answered.load(Ordering::SeqCst) > 50));

    let (_new, _new_dir) = start_upgrade(&config(port, &origin, "new", &sock));
    assert!(wait_until(WAIT, || sock.exists()), "no upgrade socket");
    let rc = unsafe { libc::kill(old.child.id() as i32, libc::SIGQUIT) };
    assert_eq!(rc, 0);
    let mut old = old;
    assert!(
        wait_until(Duration::from_secs(40), || matches!(
            old.child.try_wait(),
            Ok(Some(_))
        )),
        "the old process did not exit"
    );
    // the new process keeps serving them all
    let after = fresh.answered.load(Ordering::SeqCst);
    assert!(wait_until(WAIT, || fresh.answered.load(Ordering::SeqCst) > after + 50));
    stop.store(true, Ordering::SeqCst);
    for c in clients {
        c.join().unwrap();
    }
    let n = |a: &AtomicUsize| a.load(Ordering::SeqCst);
    eprintln!(
        "fresh connections: {} sent, {} answered; keep-alive: {} sent, {} answered, {} answers \
         with Connection: close, {} idle close races",
        n(&fresh.sent),
        n(&fresh.answered),
        n(&kept.sent),
        n(&kept.answered),
        n(&kept.closing),
        n(&kept.close_races)
    );
    let versions = fresh.versions.lock().unwrap().clone();
    assert!(
        versions.contains("old") && versions.contains("new"),
        "{versions:?}"
    );
    assert_eq!(
        n(&fresh.sent),
        n(&fresh.answered),
        "lost on fresh connections: {:?}",
        fresh.failures.lock().unwrap()
    );
    assert!(
        kept.failures.lock().unwrap().is_empty(),
        "keep-alive: {:?}",
        kept.failures.lock().unwrap()
    );
    assert_eq!(
        n(&kept.sent),
        n(&kept.answered) + n(&kept.close_races),
        "a keep-alive request in flight went unanswered"
    );
}
