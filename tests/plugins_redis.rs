//! `limit` with `store = "redis://..."`: three tidegate instances share one limit through a
//! real redis-server and together admit exactly its burst; with Redis stopped each follows
//! its `on_store_error`; with Redis back, sharing resumes.

mod common;
use common::plugins::*;
use common::redis::Redis;
use common::*;

fn instance(port: u16, origin: &Origin, url: &str, on_error: &str) -> Tidegate {
    let cfg = one_location(
        port,
        origin,
        &["shared"],
        &format!(
            r#"
[plugins.shared]
category = "limit"
key = "header:x-k"
rate = "10/h"
store = "{url}"
on_store_error = "{on_error}"
store_timeout = "300ms"
"#
        ),
    );
    Tidegate::start(&cfg, &[port])
}

/// `n` requests with key `k` spread over the instances from 3 threads; how many were let in.
fn admitted(ports: &[u16], k: &str, n: usize) -> usize {
    let threads: Vec<_> = (0..3)
        .map(|t| {
            let ports = ports.to_vec();
            let k = k.to_string();
            std::thread::spawn(move || {
                (0..n / 3)
                    .filter(|i| {
                        let port = ports[(t + i) % ports.len()];
                        let s = get(port, "h", "/", &[("x-k", &k)]).status;
                        assert!(s == 200 || s == 429, "status {s}");
                        s == 200
                    })
                    .count()
            })
        })
        .collect();
    threads.into_iter().map(|t| t.join().unwrap()).sum()
}

#[test]
fn instances_share_a_limit_through_redis_and_follow_on_store_error_without_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut redis = Redis::start(dir.path(), free_port());
    let origin = Origin::start(|_| ok("fine"));
    let ports = [free_port(), free_port(), free_port()];
    let url = redis.url();
    let allow = instance(ports[0], &origin, &url, "allow");
    let deny = instance(ports[1], &origin, &url, "deny");
    let local = instance(ports[2], &origin, &url, "local");

    // 30 requests over three instances: exactly the burst of 10 gets in (the take is atomic
    // in Redis: no slack while it answers)
    assert_eq!(admitted(&ports, "one", 30), 10, "{}", deny.stderr());
    let r = get(ports[1], "h", "/", &[("x-k", "one")]);
    assert_eq!(r.status, 429);
    let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!(
        (300..=360).contains(&retry),
        "one request every 6 minutes: {retry}"
    );
    assert!(
        redis::command(redis.port, "EXISTS tidegate:limit:shared:one")
            .is_some_and(|r| r.starts_with(":1")),
        "the key lives in Redis under the documented prefix"
    );

    // Redis stops: each instance follows its own on_store_error
    redis.stop();
    for _ in 0..12 {
        assert_eq!(
            get(ports[0], "h", "/", &[("x-k", "two")]).status,
            200,
            "allow"
        );
        assert_eq!(
            get(ports[1], "h", "/", &[("x-k", "two")]).status,
            429,
            "deny"
        );
    }
    let local_in = (0..12)
        .filter(|_| get(ports[2], "h", "/", &[("x-k", "two")]).status == 200)
        .count();
    assert_eq!(local_in, 10, "local: the burst counted in this process");
    assert!(
        deny.stderr().contains("limit store failed"),
        "{}",
        deny.stderr()
    );
    assert!(
        deny.stderr().matches("limit store failed").count() <= 3,
        "store errors are logged once in a while, not per request:\n{}",
        deny.stderr()
    );

    // Redis back (empty): the deny instance lets requests in again, and the three share
    redis.restart();
    assert!(
        wait_until(WAIT, || get(ports[1], "h", "/", &[("x-k", "probe")]).status
            == 200),
        "sharing did not resume:\n{}",
        deny.stderr()
    );
    for p in ports {
        assert!(
            wait_until(WAIT, || get(p, "h", "/", &[("x-k", "probe2")]).status != 0),
            "instance {p} answers"
        );
    }
    assert_eq!(admitted(&ports, "three", 30), 10);
    drop((allow, local));
}
