//! Upstreams end to end: balancing algorithms, timeouts, failures, retries, health.

mod common;
use common::*;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

fn served_by(
    port: u16,
    n: usize,
    headers: &[(&str, &str)],
    path: &str,
) -> std::collections::HashMap<String, usize> {
    tally((0..n).map(|_| get(port, "h", path, headers).text()))
}

#[test]
fn weighted_round_robin_is_exact() {
    let (a, b) = (Origin::named("a"), Origin::named("b"));
    let port = free_port();
    let cfg = simple_config(
        port,
        &[a.addr.to_string(), format!("{} 3", b.addr)],
        "algo = \"round_robin\"",
        "",
    );
    let _t = Tidegate::start(&cfg, &[port]);
    let t = served_by(port, 40, &[], "/");
    assert_eq!(t.get("a"), Some(&10), "{t:?}");
    assert_eq!(t.get("b"), Some(&30), "{t:?}");
}

#[test]
fn random_uses_every_peer() {
    let (a, b) = (Origin::named("a"), Origin::named("b"));
    let port = free_port();
    let cfg = simple_config(
        port,
        &[a.addr.to_string(), b.addr.to_string()],
        "algo = \"random\"",
        "",
    );
    let _t = Tidegate::start(&cfg, &[port]);
    let t = served_by(port, 100, &[], "/");
    assert!(
        t.get("a").copied().unwrap_or(0) > 0 && t.get("b").copied().unwrap_or(0) > 0,
        "{t:?}"
    );
}

#[test]
fn least_conn_avoids_the_busy_peer() {
    // the slow peer holds its answer until the test lets it go, so it stays busy for as
    // long as the test needs, however slow the machine
    let (release, held) = std::sync::mpsc::channel::<()>();
    let held = std::sync::Mutex::new(held);
    let slow = Origin::start(move |_| {
        let _ = held.lock().map(|h| h.recv_timeout(WAIT));
        ok("slow")
    });
    let fast = Origin::named("fast");
    let port = free_port();
    let cfg = simple_config(
        port,
        &[slow.addr.to_string(), fast.addr.to_string()],
        "algo = \"least_conn\"",
        "",
    );
    let _t = Tidegate::start(&cfg, &[port]);
    // occupy the slow peer: send until one request is held there (a tie may go either way)
    let mut held = None;
    for _ in 0..10 {
        let before = slow.count() + fast.count();
        let request = std::thread::spawn(move || get(port, "h", "/", &[]).text());
        assert!(wait_until(WAIT, || slow.count() + fast.count() > before));
        if slow.count() == 1 {
            held = Some(request);
            break;
        }
        // it went to the fast peer: wait for its answer, so that peer is idle again (else
        // the next request meets a tie and may go either way)
        assert_eq!(request.join().unwrap(), "fast");
    }
    assert_eq!(slow.count(), 1, "no request reached the slow peer");
    // while it is busy, every request goes to the other
    let t = served_by(port, 10, &[], "/");
    let _ = release.send(());
    if let Some(h) = held {
        assert_eq!(h.join().unwrap(), "slow");
    }
    assert_eq!(t.get("fast"), Some(&10), "{t:?}");
}

#[test]
fn consistent_hash_is_sticky_for_every_key_kind() {
    let origins: Vec<Origin> = ["a", "b", "c", "d"]
        .into_iter()
        .map(Origin::named)
        .collect();
    let addrs: Vec<String> = origins.iter().map(|o| o.addr.to_string()).collect();
    for (algo, vary) in [
        ("hash:header:x-user", 0),
        ("hash:cookie:sid", 1),
        ("hash:query:tenant", 2),
        ("hash:path", 3),
        ("hash:ip", 4),
    ] {
        let port = free_port();
        let cfg = simple_config(port, &addrs, &format!("algo = \"{algo}\""), "");
        let _t = Tidegate::start(&cfg, &[port]);
        let mut owners = std::collections::HashSet::new();
        for key in 0..12 {
            let k = format!("key{key}");
            let cookie = format!("a=1; sid={k}");
            let (headers, path): (Vec<(&str, &str)>, String) = match vary {
                0 => (vec![("x-user", k.as_str())], "/".into()),
                1 => (vec![("cookie", cookie.as_str())], "/".into()),
                2 => (vec![], format!("/?x=1&tenant={k}")),
                3 => (vec![], format!("/{k}")),
                _ => (vec![], "/".into()),
            };
            let t = if vary == 4 {
                // each key is a client address: 127.0.0.2, 127.0.0.3, ...
                let src = std::net::Ipv4Addr::new(127, 0, 0, 2 + key);
                tally((0..4).map(|_| get_from(src, port, "/").text()))
            } else {
                served_by(port, 4, &headers, &path)
            };
            assert_eq!(t.len(), 1, "{algo}: key {k} went to {t:?}");
            owners.extend(t.into_keys());
        }
        assert!(owners.len() >= 2, "{algo}: 12 keys all on {owners:?}");
    }
}

#[test]
fn refused_is_502_and_a_hang_is_504() {
    let dead = free_port();
    let port = free_port();
    let hang = Origin::start(|_| Action::Hang);
    let cfg = format!(
        r#"
[servers.main]
addr = "127.0.0.1:{port}"
locations = ["dead", "hang"]
[locations.dead]
path = "/dead"
upstream = "dead"
[locations.hang]
path = "/hang"
upstream = "hang"
[upstreams.dead]
addrs = ["127.0.0.1:{dead}"]
[upstreams.hang]
addrs = ["{}"]
read_timeout = "500ms"
"#,
        hang.addr
    );
    let _t = Tidegate::start(&cfg, &[port]);
    assert_eq!(get(port, "h", "/dead", &[]).status, 502);
    // the origin never answers: only the 500 ms read timeout can end this (the client itself
    // would give up after 20 s with an error)
    assert_eq!(get(port, "h", "/hang", &[]).status, 504);
}

#[test]
fn location_timeout_overrides_the_upstream_read_timeout() {
    let slow = Origin::start(|_| {
        std::thread::sleep(Duration::from_millis(1200));
        ok("late")
    });
    let port = free_port();
    let cfg = simple_config(port, &[slow.addr.to_string()], "read_timeout = \"5s\"", "").replace(
        "upstream = \"backend\"",
        "upstream = \"backend\"\ntimeout = \"300ms\"",
    );
    let _t = Tidegate::start(&cfg, &[port]);
    assert_eq!(get(port, "h", "/", &[]).status, 504);
}

#[test]
fn reset_mid_body_is_never_a_silent_short_200() {
    let origin = Origin::start(|_| Action::ResetMidBody {
        len: 100_000,
        sent: 1000,
    });
    let port = free_port();
    let cfg = simple_config(port, &[origin.addr.to_string()], "", "");
    let _t = Tidegate::start(&cfg, &[port]);
    match send(port, b"GET / HTTP/1.1\r\nHost: h\r\n\r\n") {
        Err(_) => {} // truncated body: the client sees an error, as it should
        Ok(r) => panic!(
            "got a complete response of {} bytes with status {}",
            r.body.len(),
            r.status
        ),
    }
}

#[test]
fn connect_failures_retry_on_another_peer_and_open_the_circuit() {
    let alive = Origin::named("alive");
    let dead = free_port();
    let port = free_port();
    let cfg = simple_config(
        port,
        &[format!("127.0.0.1:{dead}"), alive.addr.to_string()],
        "retries = 1\nmax_fails = 2\nfail_timeout = \"30s\"",
        "",
    );
    let t = Tidegate::start(&cfg, &[port]);
    for _ in 0..10 {
        let r = get(port, "h", "/", &[]);
        assert_eq!((r.status, r.text().as_str()), (200, "alive"));
    }
    assert_eq!(alive.count(), 10);
    assert!(
        wait_until(WAIT, || t.stderr().contains("circuit open")),
        "{}",
        t.stderr()
    );
}

#[test]
fn a_post_is_not_retried_once_sent() {
    let (a, b) = (
        Origin::start(|_| Action::Close),
        Origin::start(|_| Action::Close),
    );
    let port = free_port();
    let cfg = simple_config(
        port,
        &[a.addr.to_string(), b.addr.to_string()],
        "retries = 3",
        "",
    );
    let _t = Tidegate::start(&cfg, &[port]);
    let r = request(port, "POST", "h", "/order", &[], b"pay=1");
    assert_eq!(r.status, 502);
    assert_eq!(
        a.count() + b.count(),
        1,
        "the POST reached an origin more than once"
    );
}

#[test]
fn keepalive_pool_reuses_upstream_connections() {
    let origin = Origin::named("o");
    let port = free_port();
    let cfg = simple_config(port, &[origin.addr.to_string()], "", "");
    let _t = Tidegate::start(&cfg, &[port]);
    for _ in 0..30 {
        assert_eq!(get(port, "h", "/", &[]).status, 200);
    }
    let conns = origin.connections.load(Ordering::SeqCst);
    // without a pool this is 30; each worker thread may open its own few
    assert!(
        conns < 10,
        "30 requests opened {conns} upstream connections"
    );
}

#[test]
fn active_http_check_takes_a_peer_out_and_back() {
    let sick = Arc::new(AtomicBool::new(false));
    let flag = sick.clone();
    let a = Origin::start(move |r| {
        if r.path == "/healthz" {
            if flag.load(Ordering::SeqCst) {
                Action::Respond(500, vec![], b"sick".to_vec())
            } else {
                ok("fine")
            }
        } else {
            ok("a")
        }
    });
    let b = Origin::start(|r| ok(if r.path == "/healthz" { "fine" } else { "b" }));
    let port = free_port();
    let cfg = simple_config(
        port,
        &[a.addr.to_string(), b.addr.to_string()],
        "health_check = \"http://backend/healthz?interval=100ms&timeout=500ms&success=2&failure=2\"",
        "",
    );
    let t = Tidegate::start(&cfg, &[port]);
    assert!(served_by(port, 10, &[], "/").contains_key("a"));
    // the probe sends the URL's host
    assert!(wait_until(WAIT, || a.requests().iter().any(|r| r.path
        == "/healthz"
        && r.header("host") == Some("backend"))));
    sick.store(true, Ordering::SeqCst);
    assert!(
        wait_until(WAIT, || t.stderr().contains("peer unhealthy")),
        "{}",
        t.stderr()
    );
    assert_eq!(served_by(port, 10, &[], "/").get("b"), Some(&10));
    sick.store(false, Ordering::SeqCst);
    assert!(wait_until(WAIT, || t
        .stderr()
        .contains("peer healthy again")));
    assert!(wait_until(WAIT, || served_by(port, 4, &[], "/").contains_key("a")));
}

#[test]
fn active_tcp_check_notices_a_peer_that_starts_later() {
    let b = Origin::named("b");
    let late = free_port();
    let port = free_port();
    let cfg = simple_config(
        port,
        &[format!("127.0.0.1:{late}"), b.addr.to_string()],
        "health_check = \"tcp://backend?interval=100ms&timeout=300ms&success=1&failure=1\"\nmax_fails = 0",
        "",
    );
    let t = Tidegate::start(&cfg, &[port]);
    assert!(
        wait_until(WAIT, || t.stderr().contains("peer unhealthy")),
        "{}",
        t.stderr()
    );
    assert_eq!(served_by(port, 6, &[], "/").get("b"), Some(&6));
    let _a = Origin::start_on(late, |_| ok("late"));
    assert!(
        wait_until(WAIT, || t.stderr().contains("peer healthy again")),
        "{}",
        t.stderr()
    );
    assert!(wait_until(WAIT, || served_by(port, 4, &[], "/").contains_key("late")));
}
