//! `limit`: rate limits with exact counts and the RFC headers, in-flight limits, keys (a
//! header, a Lua-computed `ctx.limit_key`), `tidegate.limit.take`, state kept across a
//! reload, and `check` naming the key of a bad config. The Redis store: `plugins_redis.rs`.

mod common;
use common::plugins::*;
use common::*;

#[test]
fn a_rate_limit_admits_its_burst_then_refuses_with_retry_after() {
    let origin = Origin::start(|_| ok("fine"));
    let port = free_port();
    let cfg = one_location(
        port,
        &origin,
        &["per-client"],
        r#"
[plugins.per-client]
category = "limit"
key = "header:x-client"
rate = "3/m"
body = "slow down\n"
"#,
    )
    .replace("addr = ", "metrics = \"/metrics\"\naddr = ");
    let t = Tidegate::start(&cfg, &[port]);
    for left in [2, 1, 0] {
        let r = get(port, "h", "/", &[("x-client", "a")]);
        assert_eq!(r.status, 200, "{}", t.stderr());
        assert_eq!(r.header("ratelimit-limit"), Some("3"));
        assert_eq!(
            r.header("ratelimit-remaining"),
            Some(left.to_string().as_str())
        );
        let reset: u64 = r.header("ratelimit-reset").unwrap().parse().unwrap();
        assert!((1..=60).contains(&reset), "reset {reset}");
    }
    let r = get(port, "h", "/", &[("x-client", "a")]);
    assert_eq!(r.status, 429);
    assert_eq!(r.text(), "slow down\n");
    // one request every 20 s: the next comes in at most 20 s
    let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((19..=20).contains(&retry), "retry-after {retry}");
    assert_eq!(r.header("ratelimit-remaining"), Some("0"));
    assert_eq!(
        origin.count(),
        3,
        "the refused request never reached the origin"
    );
    // another key has its own quota
    assert_eq!(get(port, "h", "/", &[("x-client", "b")]).status, 200);
    // a request without the header counts under the shared empty key
    for _ in 0..3 {
        assert_eq!(get(port, "h", "/", &[]).status, 200);
    }
    assert_eq!(get(port, "h", "/", &[]).status, 429);
    // both refusals are counted by plugin and status
    let m = get(port, "h", "/metrics", &[]).text();
    let line = m
        .lines()
        .find(|l| {
            l.starts_with("tidegate_plugin_answers_total{")
                && l.contains("plugin=\"per-client\"")
                && l.contains("code=\"429\"")
        })
        .unwrap_or_else(|| panic!("no refusal count in:\n{m}"));
    assert!(line.ends_with(" 2"), "{line}");
}

#[test]
fn every_worker_counts_against_the_same_limit() {
    let origin = Origin::start(|_| ok("fine"));
    let port = free_port();
    let cfg = format!(
        "[basic]\nthreads = 2\n{}",
        one_location(
            port,
            &origin,
            &["shared"],
            "[plugins.shared]\ncategory = \"limit\"\nrate = \"25/h\"\n",
        )
    );
    let t = Tidegate::start(&cfg, &[port]);
    // 8 clients at once, 10 requests each, on both workers: exactly the burst gets in
    let clients: Vec<_> = (0..8)
        .map(|_| {
            std::thread::spawn(move || {
                (0..10)
                    .filter(|_| get(port, "h", "/", &[]).status == 200)
                    .count()
            })
        })
        .collect();
    let admitted: usize = clients.into_iter().map(|c| c.join().unwrap()).sum();
    assert_eq!(admitted, 25, "{}", t.stderr());
    assert_eq!(origin.count(), 25);
}

#[test]
fn the_count_survives_a_reload_and_a_changed_rate_starts_afresh() {
    let origin = Origin::start(|_| ok("fine"));
    let port = free_port();
    let cfg = |rate: &str, extra: &str| {
        one_location(
            port,
            &origin,
            &["ip"],
            &format!("[plugins.ip]\ncategory = \"limit\"\nrate = \"{rate}\"\n{extra}"),
        )
    };
    let t = Tidegate::start(&cfg("2/h", ""), &[port]);
    assert_eq!(get(port, "h", "/", &[]).status, 200);
    assert_eq!(get(port, "h", "/", &[]).status, 200);
    assert_eq!(get(port, "h", "/", &[]).status, 429);
    // an unrelated change (the body) reloads; the quota is still spent
    std::fs::write(&t.config, cfg("2/h", "body = \"reloaded\"")).unwrap();
    assert!(
        wait_until(WAIT, || get(port, "h", "/", &[]).text() == "reloaded"),
        "{}",
        t.stderr()
    );
    // a new rate is a new limit
    std::fs::write(&t.config, cfg("5/h", "body = \"new\"")).unwrap();
    assert!(
        wait_until(WAIT, || get(port, "h", "/", &[]).status == 200),
        "{}",
        t.stderr()
    );
    assert_eq!(
        get(port, "h", "/", &[]).header("ratelimit-limit"),
        Some("5")
    );
}

#[test]
fn an_inflight_limit_refuses_past_max_and_frees_slots_when_requests_end() {
    let gate = Gate::default();
    let g = gate.clone();
    let origin = Origin::start(move |r| {
        if r.path == "/slow" {
            g.pass();
        }
        ok("done")
    });
    let port = free_port();
    let cfg = one_location(
        port,
        &origin,
        &["two"],
        "[plugins.two]\ncategory = \"limit\"\nkind = \"inflight\"\nmax = 2\nstatus = 503\n",
    );
    let t = Tidegate::start(&cfg, &[port]);
    let slow: Vec<_> = (0..2)
        .map(|_| std::thread::spawn(move || get(port, "h", "/slow", &[]).status))
        .collect();
    assert!(wait_until(WAIT, || origin.count() == 2), "{}", t.stderr());
    let r = get(port, "h", "/fast", &[]);
    assert_eq!(r.status, 503);
    assert_eq!(r.header("retry-after"), Some("1"));
    assert!(
        r.header("ratelimit-limit").is_none(),
        "no rate headers on an in-flight limit"
    );
    gate.open();
    for s in slow {
        assert_eq!(s.join().unwrap(), 200);
    }
    assert_eq!(get(port, "h", "/fast", &[]).status, 200);
}

#[test]
fn lua_sets_the_key_and_takes_from_a_named_limit() {
    let origin = Origin::start(|_| ok("fine"));
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("tenant.lua");
    std::fs::write(
        &script,
        r#"
local M = {}
function M.on_request(req, ctx, conf)
  local tenant = (req.path:match("^/t/(%w+)") or "none")
  ctx.limit_key = tenant
  if req.path:find("/manual") then
    local t = tidegate.limit.take("manual", tenant)
    if not t.allowed then
      return req:respond(429, "manual " .. t.retry_after, { ["x-remaining"] = tostring(t.remaining) })
    end
    req:set_header("x-left", tostring(t.remaining))
  end
  local missing, err = tidegate.limit.take("nope", "k")
  req:set_header("x-err", err)
end
return M
"#,
    )
    .unwrap();
    let cfg = one_location(
        port,
        &origin,
        &["tenant", "per-tenant"],
        &format!(
            r#"
[plugins.tenant]
category = "lua"
path = "{}"

[plugins.per-tenant]
category = "limit"
key = "ctx"
rate = "2/h"

[plugins.manual]
category = "limit"
rate = "1/h"
"#,
            script.display()
        ),
    );
    let t = Tidegate::start(&cfg, &[port]);
    assert_eq!(
        get(port, "h", "/t/acme/x", &[]).status,
        200,
        "{}",
        t.stderr()
    );
    assert_eq!(get(port, "h", "/t/acme/y", &[]).status, 200);
    assert_eq!(get(port, "h", "/t/acme/z", &[]).status, 429, "per tenant");
    assert_eq!(
        get(port, "h", "/t/other/x", &[]).status,
        200,
        "another tenant"
    );
    let seen = origin.requests();
    assert_eq!(
        seen[0].header("x-err"),
        Some("tidegate.limit.take: no plugin named `nope`")
    );
    // the script's own take, from a limit no location lists
    let r = get(port, "h", "/t/b/manual", &[]);
    assert_eq!(r.status, 200);
    assert_eq!(
        origin.requests().last().unwrap().header("x-left"),
        Some("0")
    );
    let r = get(port, "h", "/t/b/manual", &[]);
    assert_eq!(r.status, 429);
    assert_eq!(r.text(), "manual 3600");
}

#[test]
fn check_names_the_key_of_a_bad_limit() {
    let cases = [
        ("rate = \"100\"", "rate", "COUNT/PERIOD"),
        ("rate = \"0/s\"", "rate", "at least 1"),
        ("rate = \"1/s\"\nburst = 0", "burst", "at least 1"),
        ("kind = \"leaky\"", "kind", "unknown kind"),
        ("kind = \"inflight\"", "max", "needs `max`"),
        (
            "kind = \"inflight\"\nmax = 2\nrate = \"1/s\"",
            "rate",
            "in-flight limit takes",
        ),
        (
            "rate = \"1/s\"\nkey = \"host\"",
            "key",
            "unknown key `host`",
        ),
        ("rate = \"1/s\"\nstore = \"http://x\"", "store", "Redis URL"),
        (
            "rate = \"1/s\"\non_store_error = \"local\"",
            "on_store_error",
            "set `store`",
        ),
        (
            "rate = \"1/s\"\nstore = \"redis://127.0.0.1:1/0\"\non_store_error = \"maybe\"",
            "on_store_error",
            "allow, deny, local",
        ),
        ("rate = \"1/s\"\nstatus = 200", "status", "4xx or 5xx"),
        ("rate = \"1/s\"\nrates = 2", "rates", "unknown field"),
    ];
    for (body, key, says) in cases {
        assert_check_refuses("limit", body, key, says);
    }
}

#[test]
fn keys_from_cookies_queries_paths_and_locations() {
    let origin = Origin::start(|_| ok("fine"));
    let port = free_port();
    let cfg = format!(
        r#"
[servers.main]
addr = "127.0.0.1:{port}"
locations = ["c", "q", "p", "l1", "l2"]

[locations.c]
path = "/c"
upstream = "backend"
plugins = ["by-cookie"]

[locations.q]
path = "/q"
upstream = "backend"
plugins = ["by-query"]

[locations.p]
path = "/p"
upstream = "backend"
plugins = ["by-path"]

[locations.l1]
path = "/l1"
upstream = "backend"
plugins = ["by-location"]

[locations.l2]
path = "/l2"
upstream = "backend"
plugins = ["by-location"]

[upstreams.backend]
addrs = ["{}"]

[plugins.by-cookie]
category = "limit"
key = "cookie:sid"
rate = "1/h"

[plugins.by-query]
category = "limit"
key = "query:tenant"
rate = "1/h"

[plugins.by-path]
category = "limit"
key = "path"
rate = "1/h"

[plugins.by-location]
category = "limit"
key = "location"
rate = "1/h"
"#,
        origin.addr
    );
    let t = Tidegate::start(&cfg, &[port]);
    let status = |path: &str, h: &[(&str, &str)]| get(port, "h", path, h).status;
    assert_eq!(
        status("/c", &[("cookie", "a=1; sid=one")]),
        200,
        "{}",
        t.stderr()
    );
    assert_eq!(status("/c", &[("cookie", "sid=one")]), 429);
    assert_eq!(status("/c", &[("cookie", "sid=two")]), 200);
    // percent-decoded: the same tenant written two ways
    assert_eq!(status("/q?tenant=a%20b", &[]), 200);
    assert_eq!(status("/q?x=1&tenant=a+b", &[]), 429);
    assert_eq!(status("/q?tenant=c", &[]), 200);
    assert_eq!(status("/p/one", &[]), 200);
    assert_eq!(
        status("/p/one?x=2", &[]),
        429,
        "the query is not part of the path"
    );
    assert_eq!(status("/p/two", &[]), 200);
    // one key per location, the plugin shared by two
    assert_eq!(status("/l1", &[]), 200);
    assert_eq!(status("/l1/x", &[]), 429);
    assert_eq!(status("/l2", &[]), 200);
}
