//! `cache` end to end, in front of origins that count their requests: hits and misses, a
//! stampede that reaches the origin once, `Vary` variants, expiry, PURGE, a disk store read
//! back after a restart, stale answers while refreshing and when the origin is down, what is
//! never stored, and the config's mistakes.

mod common;
use common::*;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn config(port: u16, origin: &str, cache: &str) -> String {
    format!(
        r#"
{BASIC}
[servers.main]
addr = "127.0.0.1:{port}"
locations = ["all"]

[locations.all]
upstream = "o"
plugins = ["edge"]

[upstreams.o]
addrs = ["{origin}"]
max_fails = 0

[plugins.edge]
category = "cache"
{cache}
"#
    )
}

/// An origin answering `body` with these headers (after `delay`), counting requests.
fn counting(headers: &'static [(&'static str, &'static str)], delay: Duration) -> Origin {
    Origin::start(move |r| {
        std::thread::sleep(delay);
        let lang = r.header("accept-language").unwrap_or("-").to_string();
        Action::Respond(
            200,
            headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            format!("page {} lang={lang}\n", r.path).into_bytes(),
        )
    })
}

fn status(r: &Response) -> &str {
    r.header("x-cache-status").unwrap_or("-")
}

#[test]
fn a_miss_then_hits_with_age() {
    let o = counting(&[("cache-control", "max-age=60")], Duration::ZERO);
    let port = free_port();
    let _t = Tidegate::start(&config(port, &o.addr.to_string(), ""), &[port]);
    let r = get(port, "h", "/a", &[]);
    assert_eq!((r.status, status(&r)), (200, "MISS"));
    for _ in 0..5 {
        let r = get(port, "h", "/a", &[]);
        assert_eq!((r.status, status(&r)), (200, "HIT"));
        assert_eq!(r.text(), "page /a lang=-\n");
        assert!(r.header("age").is_some());
        assert_eq!(r.header("cache-control"), Some("max-age=60"));
    }
    // HEAD is answered from GET's entry; another path is another key
    let r = request(port, "HEAD", "h", "/a", &[], b"");
    assert_eq!(status(&r), "HIT");
    assert_eq!(status(&get(port, "h", "/b", &[])), "MISS");
    assert_eq!(o.count(), 2);
}

#[test]
fn a_stampede_on_a_cold_key_reaches_the_origin_once() {
    let o = counting(
        &[("cache-control", "max-age=60")],
        Duration::from_millis(300),
    );
    let port = free_port();
    let _t = Tidegate::start(&config(port, &o.addr.to_string(), ""), &[port]);
    let handles: Vec<_> = (0..100)
        .map(|_| std::thread::spawn(move || get(port, "h", "/cold", &[])))
        .collect();
    let results: Vec<Response> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert!(results
        .iter()
        .all(|r| r.status == 200 && r.text() == "page /cold lang=-\n"));
    assert_eq!(o.count(), 1, "one request reached the origin");
    let hits = results.iter().filter(|r| status(r) == "HIT").count();
    assert_eq!(hits, 99, "the others waited for it");
}

#[test]
fn vary_makes_variants() {
    let o = counting(
        &[("cache-control", "max-age=60"), ("vary", "Accept-Language")],
        Duration::ZERO,
    );
    let port = free_port();
    let _t = Tidegate::start(&config(port, &o.addr.to_string(), ""), &[port]);
    let en = [("accept-language", "en")];
    let fr = [("accept-language", "fr")];
    assert_eq!(status(&get(port, "h", "/v", &en)), "MISS");
    assert_eq!(status(&get(port, "h", "/v", &fr)), "MISS");
    let r = get(port, "h", "/v", &en);
    assert_eq!(
        (status(&r), r.text().as_str()),
        ("HIT", "page /v lang=en\n")
    );
    let r = get(port, "h", "/v", &fr);
    assert_eq!(
        (status(&r), r.text().as_str()),
        ("HIT", "page /v lang=fr\n")
    );
    assert_eq!(o.count(), 2);
}

#[test]
fn entries_expire_and_purge_removes_them() {
    let o = counting(&[("cache-control", "max-age=1")], Duration::ZERO);
    let port = free_port();
    let _t = Tidegate::start(
        &config(port, &o.addr.to_string(), "purge_allow = [\"127.0.0.1\"]"),
        &[port],
    );
    assert_eq!(status(&get(port, "h", "/e", &[])), "MISS");
    assert_eq!(status(&get(port, "h", "/e", &[])), "HIT");
    // fresh for one second: then refetched
    assert!(wait_until(WAIT, || status(&get(port, "h", "/e", &[])) == "EXPIRED"));
    let before = o.count();
    assert_eq!(status(&get(port, "h", "/e", &[])), "HIT");
    let r = request(port, "PURGE", "h", "/e", &[], b"");
    assert_eq!((r.status, r.text().as_str()), (200, "{\"purged\":true}\n"));
    assert_eq!(request(port, "PURGE", "h", "/e", &[], b"").status, 404);
    assert_eq!(status(&get(port, "h", "/e", &[])), "MISS");
    assert_eq!(o.count(), before + 1);
    // a path that says PURGE is still its own key
    assert_eq!(status(&get(port, "h", "/PURGE-me", &[])), "MISS");
    assert_eq!(
        request(port, "PURGE", "h", "/PURGE-me", &[], b"").status,
        200
    );
}

#[test]
fn purge_needs_the_address_or_the_token() {
    let o = counting(&[("cache-control", "max-age=60")], Duration::ZERO);
    let port = free_port();
    let _t = Tidegate::start(
        &config(
            port,
            &o.addr.to_string(),
            "purge_allow = [\"10.0.0.0/8\"]\npurge_token = \"0123456789abcdef-token\"",
        ),
        &[port],
    );
    assert_eq!(status(&get(port, "h", "/p", &[])), "MISS");
    assert_eq!(request(port, "PURGE", "h", "/p", &[], b"").status, 403);
    let wrong = [("x-purge-token", "0123456789abcdef-nope")];
    assert_eq!(request(port, "PURGE", "h", "/p", &wrong, b"").status, 403);
    assert_eq!(status(&get(port, "h", "/p", &[])), "HIT");
    let right = [("x-purge-token", "0123456789abcdef-token")];
    assert_eq!(request(port, "PURGE", "h", "/p", &right, b"").status, 200);
    assert_eq!(status(&get(port, "h", "/p", &[])), "MISS");
}

#[test]
fn the_disk_store_survives_a_restart() {
    let o = counting(&[("cache-control", "max-age=600")], Duration::ZERO);
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let cfg = config(
        port,
        &o.addr.to_string(),
        &format!("storage = \"disk:{}\"", dir.path().display()),
    );
    {
        let _t = Tidegate::start(&cfg, &[port]);
        assert_eq!(status(&get(port, "h", "/d", &[])), "MISS");
        assert!(wait_until(WAIT, || std::fs::read_dir(dir.path())
            .map(|d| d
                .flatten()
                .any(|e| e.path().extension().is_some_and(|x| x == "entry")))
            .unwrap_or(false)));
        let r = get(port, "h", "/d", &[]);
        assert_eq!((status(&r), r.text().as_str()), ("HIT", "page /d lang=-\n"));
    }
    let t = Tidegate::start(&cfg, &[port]);
    let r = get(port, "h", "/d", &[]);
    assert_eq!(
        (status(&r), r.text().as_str()),
        ("HIT", "page /d lang=-\n"),
        "{}",
        t.stderr()
    );
    assert_eq!(o.count(), 1, "the entry came from the disk, not the origin");
}

/// An origin that can be taken down (its port then refuses connections): answers "v1",
/// "v2", ... after `delay` (from the second request on).
struct Downable {
    port: u16,
    stop: Arc<AtomicBool>,
    hits: Arc<AtomicUsize>,
}

impl Downable {
    fn start(cache_control: &'static str, delay: Duration) -> Downable {
        let l = bind_fresh();
        l.set_nonblocking(true).unwrap();
        let port = l.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let hits = Arc::new(AtomicUsize::new(0));
        let (s, h) = (stop.clone(), hits.clone());
        std::thread::spawn(move || serve_until(l, s, h, cache_control, delay));
        Downable { port, stop, hits }
    }
}

fn serve_until(
    l: TcpListener,
    stop: Arc<AtomicBool>,
    hits: Arc<AtomicUsize>,
    cc: &'static str,
    delay: Duration,
) {
    let started = Instant::now();
    while !stop.load(Ordering::SeqCst) && started.elapsed() < Duration::from_secs(120) {
        match l.accept() {
            Ok((mut s, _)) => {
                let n = hits.fetch_add(1, Ordering::SeqCst) + 1;
                std::thread::spawn(move || {
                    let _ = s.set_nonblocking(false);
                    let mut buf = [0u8; 4096];
                    let _ = s.read(&mut buf);
                    if n > 1 {
                        std::thread::sleep(delay);
                    }
                    let body = format!("v{n}\n");
                    let _ = write!(
                        s,
                        "HTTP/1.1 200 OK\r\ncache-control: {cc}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                });
            }
            Err(_) => std::thread::sleep(Duration::from_millis(5)),
        }
    }
}

#[test]
fn an_origin_that_is_down_gets_stale_answers_within_stale_if_error() {
    let o = Downable::start("max-age=1, stale-if-error=60", Duration::ZERO);
    let port = free_port();
    let t = Tidegate::start(&config(port, &format!("127.0.0.1:{}", o.port), ""), &[port]);
    let r = get(port, "h", "/s", &[]);
    assert_eq!((status(&r), r.text().as_str()), ("MISS", "v1\n"));
    o.stop.store(true, Ordering::SeqCst);
    assert!(wait_until(WAIT, || std::net::TcpStream::connect((
        "127.0.0.1",
        o.port
    ))
    .is_err()));
    // fresh, then stale (the origin refuses): the stored answer, marked STALE
    assert!(
        wait_until(WAIT, || {
            let r = get(port, "h", "/s", &[]);
            r.status == 200 && status(&r) == "STALE" && r.text() == "v1\n"
        }),
        "{}",
        t.stderr()
    );
    // a key never stored has nothing to fall back on
    assert_eq!(get(port, "h", "/other", &[]).status, 502);
}

#[test]
fn stale_while_revalidate_answers_stale_while_one_request_refreshes() {
    let o = Downable::start(
        "max-age=1, stale-while-revalidate=60",
        Duration::from_millis(1500),
    );
    let port = free_port();
    let _t = Tidegate::start(&config(port, &format!("127.0.0.1:{}", o.port), ""), &[port]);
    assert_eq!(get(port, "h", "/w", &[]).text(), "v1\n");
    // poll until the entry is past fresh: that request refreshes it (slowly)
    let refresher = std::thread::spawn(move || {
        let start = Instant::now();
        loop {
            let r = get(port, "h", "/w", &[]);
            if status(&r) != "HIT" || start.elapsed() > WAIT {
                return r;
            }
        }
    });
    let mut stale = None;
    assert!(wait_until(WAIT, || {
        let r = get(port, "h", "/w", &[]);
        let is_stale = status(&r) == "STALE";
        if is_stale {
            stale = Some(r);
        }
        is_stale || refresher.is_finished()
    }));
    let r = stale.expect("a STALE answer while the refresh was under way");
    assert_eq!(r.text(), "v1\n");
    let refreshed = refresher.join().unwrap();
    assert_eq!(
        (status(&refreshed), refreshed.text().as_str()),
        ("EXPIRED", "v2\n")
    );
    assert_eq!(status(&get(port, "h", "/w", &[])), "HIT");
    assert_eq!(o.hits.load(Ordering::SeqCst), 2, "one refresh");
}

#[test]
fn what_is_never_stored() {
    let o = Origin::start(|r| {
        let cc = match r.path.as_str() {
            "/nostore" => "no-store",
            "/private" => "private, max-age=60",
            _ => "max-age=60",
        };
        let mut headers = vec![("cache-control".to_string(), cc.to_string())];
        if r.path == "/cookie" {
            headers.push(("set-cookie".into(), "s=1".into()));
        }
        Action::Respond(200, headers, b"x".to_vec())
    });
    let port = free_port();
    let _t = Tidegate::start(&config(port, &o.addr.to_string(), ""), &[port]);
    for path in ["/nostore", "/private", "/cookie"] {
        get(port, "h", path, &[]);
        assert_eq!(status(&get(port, "h", path, &[])), "MISS", "{path}");
    }
    // POST passes; a request's own no-cache refetches; no-store is not stored
    assert_eq!(
        status(&request(port, "POST", "h", "/x", &[], b"a")),
        "BYPASS"
    );
    get(port, "h", "/x", &[]);
    assert_eq!(status(&get(port, "h", "/x", &[])), "HIT");
    let nc = [("cache-control", "no-cache")];
    assert_eq!(status(&get(port, "h", "/x", &nc)), "BYPASS");
    let before = o.count();
    assert_eq!(status(&get(port, "h", "/x", &[])), "HIT");
    assert_eq!(o.count(), before);
    // a request with credentials is not answered from, nor stored to, the shared cache
    let auth = [("authorization", "Bearer x")];
    assert_eq!(status(&get(port, "h", "/auth", &auth)), "MISS");
    assert_eq!(status(&get(port, "h", "/auth", &auth)), "MISS");
}

#[test]
fn the_least_recently_used_go_when_the_store_is_full() {
    let o = counting(&[("cache-control", "max-age=600")], Duration::ZERO);
    let port = free_port();
    // each entry is charged about 330 bytes: 2 KB holds a handful
    let _t = Tidegate::start(
        &config(port, &o.addr.to_string(), "max_size = \"2KB\""),
        &[port],
    );
    for i in 0..10 {
        assert_eq!(status(&get(port, "h", &format!("/{i}"), &[])), "MISS");
        // /0 stays recent: it is read after each new entry
        if i > 0 {
            assert_eq!(status(&get(port, "h", "/0", &[])), "HIT", "after /{i}");
        }
    }
    assert_eq!(status(&get(port, "h", "/9", &[])), "HIT");
    assert_eq!(
        status(&get(port, "h", "/1", &[])),
        "MISS",
        "the oldest went"
    );
}

#[test]
fn pingoras_path_caches_too() {
    // h2c requests go through Pingora's proxy, HTTP/1.1 ones through the own loop: one store
    let o = counting(&[("cache-control", "max-age=60")], Duration::ZERO);
    let port = free_port();
    let cfg = config(port, &o.addr.to_string(), "").replacen(
        "locations = [\"all\"]\n",
        "locations = [\"all\"]\nhttp2 = true\n",
        1,
    );
    let _t = Tidegate::start(&cfg, &[port]);
    let (code, headers, body) = common::lua::h2_request(port, "GET", "/h2", b"");
    assert_eq!(code, 200);
    assert_eq!(headers["x-cache-status"], "MISS");
    assert_eq!(body, b"page /h2 lang=-\n");
    let (_, headers, body) = common::lua::h2_request(port, "GET", "/h2", b"");
    assert_eq!(headers["x-cache-status"], "HIT");
    assert_eq!(body, b"page /h2 lang=-\n");
    let r = get(port, "h", "/h2", &[]);
    assert_eq!(
        (status(&r), r.text().as_str()),
        ("HIT", "page /h2 lang=-\n")
    );
    assert_eq!(o.count(), 1);
}

#[test]
fn check_names_cache_mistakes() {
    let dir = tempfile::tempdir().unwrap();
    for (conf, message) in [
        (
            "storage = \"ssd\"",
            "use \"memory\" or \"disk:/path/to/dir\"",
        ),
        ("key = \"{host}{nope}\"", "`{nope}` is not one of"),
        ("purge_token = \"short\"", "at least 16 characters"),
        ("purge_allow = [\"nope\"]", "purge_allow[0] `nope`"),
        ("ttl = \"soon\"", "ttl"),
        ("max_size = \"lots\"", "max_size"),
    ] {
        let cfg = config(1, "127.0.0.1:1", conf);
        std::fs::write(dir.path().join("t.toml"), &cfg).unwrap();
        let (code, out) = run_cli(&["check", "-c", "t.toml"], dir.path());
        assert_ne!(code, 0, "{conf}");
        assert!(out.contains(message), "{conf}: wanted `{message}` in {out}");
        assert!(out.contains("plugins.edge"), "{out}");
    }
}
