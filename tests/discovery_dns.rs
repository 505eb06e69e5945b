//! DNS discovery end to end, against a real dnsmasq on a loopback port: peers follow the
//! records without a reload and nothing is lost meanwhile; SRV weights and priorities; the
//! last good set survives the DNS server going away; mistakes in the config are named.

mod common;
use common::dns::Dnsmasq;
use common::*;
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn config(port: u16, dns: u16, addrs: &str, extra: &str) -> String {
    format!(
        r#"
{BASIC}resolver = "127.0.0.1:{dns}"

[servers.main]
addr = "127.0.0.1:{port}"
locations = ["all"]

[locations.all]
upstream = "backend"

[upstreams.backend]
discovery = "dns"
addrs = [{addrs}]
dns_min_ttl = "100ms"
{extra}
"#
    )
}

/// Bind the same port on 127.0.0.1 and on ::1, so one name:port can move between them.
fn twin_listeners() -> (TcpListener, TcpListener) {
    for _ in 0..50 {
        let v4 = bind_fresh();
        let port = v4.local_addr().expect("addr").port();
        if let Ok(v6) = TcpListener::bind(("::1", port)) {
            return (v4, v6);
        }
    }
    panic!("no port free on both 127.0.0.1 and ::1");
}

/// Requests in a loop on another thread until told to stop (bounded: 20 s, 20,000
/// requests): what each answered.
struct Load {
    stop: Arc<AtomicBool>,
    handle: std::thread::JoinHandle<Vec<(u16, String)>>,
}

impl Load {
    fn start(port: u16) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let handle = std::thread::spawn(move || {
            let start = Instant::now();
            let mut seen = Vec::new();
            while !s.load(Ordering::SeqCst)
                && start.elapsed() < Duration::from_secs(20)
                && seen.len() < 20_000
            {
                let r = get(port, "svc", "/", &[]);
                seen.push((r.status, r.text()));
            }
            seen
        });
        Load { stop, handle }
    }

    fn finish(self) -> Vec<(u16, String)> {
        self.stop.store(true, Ordering::SeqCst);
        self.handle.join().expect("load thread")
    }
}

#[test]
fn peers_follow_a_and_aaaa_records_without_losing_a_request() {
    let dir = tempfile::tempdir().unwrap();
    let (v4, v6) = twin_listeners();
    let peer_port = v4.local_addr().unwrap().port();
    // /slow on the first peer answers only when the test lets it, after that peer is gone
    let (release, held) = std::sync::mpsc::channel::<()>();
    let held = std::sync::Mutex::new(held);
    let a = Origin::start_listener(v4, move |r| {
        if r.path == "/slow" {
            let _ = held.lock().map(|h| h.recv_timeout(WAIT));
            return ok("v4-slow");
        }
        ok("v4")
    });
    let _b = Origin::start_listener(v6, |_| ok("v6"));
    let mut dns = Dnsmasq::start(dir.path(), "127.0.0.1 svc.test\n", &[]);
    let port = free_port();
    let t = Tidegate::start(
        &config(port, dns.port, &format!("\"svc.test:{peer_port}\""), ""),
        &[port],
    );
    // the first request after the start already has its peer (it waits for discovery)
    assert_eq!(get(port, "svc", "/", &[]).text(), "v4");

    // the record moves to ::1 while requests flow: every one is answered, and the one in
    // flight on the removed peer finishes there
    let slow = std::thread::spawn(move || get(port, "svc", "/slow", &[]));
    assert!(wait_until(WAIT, || a
        .requests()
        .iter()
        .any(|r| r.path == "/slow")));
    let load = Load::start(port);
    assert!(
        wait_until(WAIT, || dns.queries("svc.test") > 2),
        "tidegate re-resolves"
    );
    dns.set_hosts("::1 svc.test\n");
    dns.reload();
    assert!(
        wait_until(WAIT, || get(port, "svc", "/", &[]).text() == "v6"),
        "traffic moved to the new peer: {}",
        t.stderr()
    );
    let seen = load.finish();
    assert!(seen.len() > 5, "the load ran: {}", seen.len());
    let failed: Vec<_> = seen.iter().filter(|(s, _)| *s != 200).collect();
    assert!(failed.is_empty(), "lost during the move: {failed:?}");
    assert!(seen.iter().any(|(_, b)| b == "v4"));
    assert!(
        t.stderr().contains("discovery: peers changed"),
        "{}",
        t.stderr()
    );
    release.send(()).unwrap();
    let r = slow.join().unwrap();
    assert_eq!((r.status, r.text().as_str()), (200, "v4-slow"));

    // the DNS server goes away: the last set keeps serving, and the outage is logged once
    dns.stop();
    assert!(
        wait_until(WAIT, || t.stderr().contains("keeping the last peers")),
        "{}",
        t.stderr()
    );
    for _ in 0..20 {
        let r = get(port, "svc", "/", &[]);
        assert_eq!((r.status, r.text().as_str()), (200, "v6"));
    }
    assert_eq!(t.stderr().matches("keeping the last peers").count(), 1);

    // back with both records: both peers serve
    dns.set_hosts("127.0.0.1 svc.test\n::1 svc.test\n");
    dns.restart(&[]);
    assert!(
        wait_until(WAIT, || t.stderr().contains("answers again")),
        "{}",
        t.stderr()
    );
    assert!(wait_until(WAIT, || {
        let t = tally((0..4).map(|_| get(port, "svc", "/", &[]).text()));
        t.get("v4") == Some(&2) && t.get("v6") == Some(&2)
    }));
}

#[test]
fn srv_records_give_ports_weights_and_backups() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b, backup) = (
        Origin::named("a"),
        Origin::named("b"),
        Origin::named("backup"),
    );
    let srv_a = format!("_http._tcp.svc.test,a.svc.test,{},0,1", a.port());
    let srv_b = format!("_http._tcp.svc.test,b.svc.test,{},0,3", b.port());
    let srv_backup = format!("_http._tcp.svc.test,c.svc.test,{},1,1", backup.port());
    let hosts = "127.0.0.1 a.svc.test\n127.0.0.1 b.svc.test\n127.0.0.1 c.svc.test\n";
    let mut dns = Dnsmasq::start(dir.path(), hosts, &[&srv_a, &srv_b, &srv_backup]);
    let port = free_port();
    let _t = Tidegate::start(
        &config(port, dns.port, "\"_http._tcp.svc.test\"", ""),
        &[port],
    );
    let t = tally((0..40).map(|_| get(port, "svc", "/", &[]).text()));
    assert_eq!(t.get("a"), Some(&10), "{t:?}");
    assert_eq!(t.get("b"), Some(&30), "{t:?}");
    assert_eq!(backup.count(), 0, "a backup (priority 1) waits");

    // a's record goes: only b is left in priority 0
    dns.restart(&[&srv_b, &srv_backup]);
    assert!(wait_until(WAIT, || {
        let t = tally((0..8).map(|_| get(port, "svc", "/", &[]).text()));
        t.get("b") == Some(&8)
    }));
    // priority 0 gone: the backup serves
    dns.restart(&[&srv_backup]);
    assert!(wait_until(WAIT, || get(port, "svc", "/", &[]).text() == "backup"));
}

#[test]
fn a_new_peer_starts_as_its_health_check_says() {
    let dir = tempfile::tempdir().unwrap();
    let (v4, v6) = twin_listeners();
    let peer_port = v4.local_addr().unwrap().port();
    let _a = Origin::start_listener(v4, |_| ok("v4"));
    // ::1 answers requests but fails its health check
    let _b = Origin::start_listener(v6, |r| {
        if r.path == "/healthz" {
            Action::Respond(503, vec![], b"no".to_vec())
        } else {
            ok("v6")
        }
    });
    let dns = Dnsmasq::start(dir.path(), "127.0.0.1 svc.test\n", &[]);
    let port = free_port();
    let t = Tidegate::start(
        &config(
            port,
            dns.port,
            &format!("\"svc.test:{peer_port}\""),
            "health_check = \"http://svc/healthz?interval=1h\"",
        ),
        &[port],
    );
    assert_eq!(get(port, "svc", "/", &[]).text(), "v4");
    dns.set_hosts("127.0.0.1 svc.test\n::1 svc.test\n");
    dns.reload();
    assert!(
        wait_until(WAIT, || t.stderr().contains("joins out of rotation")),
        "{}",
        t.stderr()
    );
    let t = tally((0..10).map(|_| get(port, "svc", "/", &[]).text()));
    assert_eq!(
        t.get("v4"),
        Some(&10),
        "the unhealthy newcomer gets nothing: {t:?}"
    );
}

#[test]
fn check_names_discovery_mistakes() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "discovery = \"dns\"\naddrs = [\"svc.test\"]",
            "needs a port",
        ),
        (
            "discovery = \"dns\"\naddrs = [\"_http._tcp.svc.test:80\"]",
            "SRV name takes no port",
        ),
        (
            "discovery = \"consul\"\naddrs = [\"a:1\"]",
            "use \"static\", \"dns\" or \"docker\"",
        ),
        (
            "addrs = [\"127.0.0.1:1\"]\ndns_min_ttl = \"1s\"",
            "applies to discovery = \"dns\" only",
        ),
        (
            "discovery = \"dns\"\naddrs = [\"a.test:1\"]\ndns_min_ttl = \"10m\"",
            "not above dns_max_ttl",
        ),
        (
            "discovery = \"docker\"\naddrs = [\"127.0.0.1:1\"]",
            "remove addrs",
        ),
    ];
    for (upstream, message) in cases {
        let cfg = format!(
            "[servers.main]\naddr = \"127.0.0.1:1\"\nlocations = [\"all\"]\n\n\
             [locations.all]\nupstream = \"backend\"\n\n[upstreams.backend]\n{upstream}\n"
        );
        let path = dir.path().join("t.toml");
        std::fs::write(&path, &cfg).unwrap();
        let (code, out) = run_cli(&["check", "-c", path.to_str().unwrap()], dir.path());
        assert_ne!(code, 0, "{upstream}: {out}");
        assert!(
            out.contains(message),
            "{upstream}: wanted `{message}` in {out}"
        );
        assert!(out.contains("t.toml:"), "names file and line: {out}");
        assert!(out.contains("upstreams.backend"), "{out}");
    }
    // a docker_host whose socket is missing, and a resolver that is not an address
    let cfg = "[basic]\ndocker_host = \"unix:///nonexistent/docker.sock\"\nresolver = \"dns.example\"\n\n\
               [servers.main]\naddr = \"127.0.0.1:1\"\nlocations = [\"all\"]\n\n\
               [locations.all]\nupstream = \"backend\"\n\n[upstreams.backend]\ndiscovery = \"docker\"\n";
    let path = dir.path().join("t.toml");
    std::fs::write(&path, cfg).unwrap();
    let (code, out) = run_cli(&["check", "-c", path.to_str().unwrap()], dir.path());
    assert_ne!(code, 0);
    assert!(out.contains("resolver `dns.example`"), "{out}");
    assert!(
        out.contains("/nonexistent/docker.sock does not exist"),
        "{out}"
    );
}
