//! Routing end to end: hosts, paths, conditions, priority, captures, rewrite, 404.

mod common;
use common::*;

/// One origin per location name; each answers with its name and records what it got.
fn setup(locations: &str, names: &[&'static str]) -> (Tidegate, u16, Vec<Origin>) {
    let port = free_port();
    let origins: Vec<Origin> = names.iter().map(|n| Origin::named(n)).collect();
    let mut cfg = format!(
        "[basic]\nthreads = 2\n[servers.main]\naddr = \"127.0.0.1:{port}\"\nlocations = [{}]\n",
        names
            .iter()
            .map(|n| format!("\"{n}\""))
            .collect::<Vec<_>>()
            .join(",")
    );
    for (n, o) in names.iter().zip(&origins) {
        cfg.push_str(&format!("[upstreams.{n}]\naddrs = [\"{}\"]\n", o.addr));
    }
    cfg.push_str(locations);
    (Tidegate::start(&cfg, &[port]), port, origins)
}

#[test]
fn hosts_paths_and_priority() {
    let (_t, port, _o) = setup(
        r#"
[locations.any]
upstream = "any"
[locations.prefix]
path = "/api"
upstream = "prefix"
[locations.longer]
path = "/api/v1"
upstream = "longer"
[locations.exact]
path = "=/api/v1/status"
upstream = "exact"
[locations.regex]
path = "~^/api/v1/users/\\d+$"
upstream = "regex"
[locations.host]
host = "shop.example.com"
path = "/api"
upstream = "host"
[locations.wild]
host = "*.example.com"
upstream = "wild"
[locations.rehost]
host = ["~^tenant\\d+\\.example\\.org$", "alias.example.net"]
upstream = "rehost"
"#,
        &[
            "any", "prefix", "longer", "exact", "regex", "host", "wild", "rehost",
        ],
    );
    let served = |host: &str, path: &str| get(port, host, path, &[]).text();
    assert_eq!(served("x.org", "/"), "any");
    assert_eq!(served("x.org", "/api/x"), "prefix");
    assert_eq!(
        served("x.org", "/api/v1/x"),
        "longer",
        "longest prefix wins"
    );
    assert_eq!(
        served("x.org", "/api/v1/status"),
        "exact",
        "exact beats prefix"
    );
    assert_eq!(
        served("x.org", "/api/v1/users/42"),
        "regex",
        "regex beats prefix"
    );
    assert_eq!(served("x.org", "/api/v1/users/abc"), "longer");
    assert_eq!(
        served("shop.example.com", "/api/x"),
        "host",
        "exact host beats no host"
    );
    assert_eq!(
        served("SHOP.example.com:8080", "/api/x"),
        "host",
        "host is case-insensitive, port ignored"
    );
    assert_eq!(
        served("blog.example.com", "/"),
        "wild",
        "wildcard beats no host"
    );
    assert_eq!(
        served("example.com", "/"),
        "any",
        "*.example.com does not match example.com"
    );
    assert_eq!(served("tenant7.example.org", "/"), "rehost");
    assert_eq!(served("alias.example.net", "/"), "rehost", "host lists");
}

#[test]
fn explicit_priority_overrides_and_conditions() {
    let (_t, port, _o) = setup(
        r#"
[locations.exact]
path = "=/p"
upstream = "exact"
[locations.boss]
path = "/"
priority = 10
match_headers = ["x-boss:yes"]
upstream = "boss"
[locations.canary]
path = "/p"
match_headers = ["x-canary"]
match_query = ["v=2"]
priority = 5
upstream = "canary"
"#,
        &["exact", "boss", "canary"],
    );
    assert_eq!(get(port, "h", "/p", &[]).text(), "exact");
    assert_eq!(
        get(port, "h", "/p", &[("x-boss", "yes")]).text(),
        "boss",
        "priority 10 beats exact"
    );
    assert_eq!(get(port, "h", "/p", &[("x-boss", "no")]).text(), "exact");
    assert_eq!(
        get(port, "h", "/p?v=2", &[("x-canary", "1")]).text(),
        "canary"
    );
    assert_eq!(
        get(port, "h", "/p?v=3", &[("x-canary", "1")]).text(),
        "exact",
        "query must match"
    );
    assert_eq!(
        get(port, "h", "/p?v=2", &[]).text(),
        "exact",
        "header must be present"
    );
}

#[test]
fn no_match_is_404_not_500() {
    let (_t, port, origins) = setup(
        "[locations.only]\npath = \"=/only\"\nupstream = \"only\"\n",
        &["only"],
    );
    let r = get(port, "h", "/other", &[]);
    assert_eq!(r.status, 404);
    assert_eq!(origins[0].count(), 0);
}

#[test]
fn captures_choose_the_upstream_and_rewrite_keeps_the_query() {
    let port = free_port();
    let v1 = Origin::named("v1");
    let v2 = Origin::named("v2");
    let cfg = format!(
        r#"
[servers.main]
addr = "127.0.0.1:{port}"
locations = ["versioned", "api"]

[locations.versioned]
path = "~^/svc/(?<ver>v\\d+)/"
upstream = "$ver"
proxy_set_headers = ["x-version: $ver", "x-orig: $request_uri"]

[locations.api]
path = "/api"
rewrite = "^/api/(.*)$ /$1"
upstream = "v1"

[upstreams.v1]
addrs = ["{}"]
[upstreams.v2]
addrs = ["{}"]
"#,
        v1.addr, v2.addr
    );
    let _t = Tidegate::start(&cfg, &[port]);
    assert_eq!(get(port, "h", "/svc/v2/x", &[]).text(), "v2");
    assert_eq!(get(port, "h", "/svc/v1/x", &[]).text(), "v1");
    let seen = v2.requests();
    assert_eq!(seen[0].header("x-version"), Some("v2"));
    assert_eq!(seen[0].header("x-orig"), Some("/svc/v2/x"));
    // a capture naming an upstream that does not exist: 502, not a crash
    assert_eq!(get(port, "h", "/svc/v9/x", &[]).status, 502);

    let before = v1.count();
    assert_eq!(get(port, "h", "/api/users?id=7&x=y", &[]).status, 200);
    let r = &v1.requests()[before];
    assert_eq!(r.path, "/users?id=7&x=y");
}
