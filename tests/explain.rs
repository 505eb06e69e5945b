//! `tidegate explain`: the winner and why, captures, the rewrite, the chain, the upstream's
//! first pick and the headers sent upstream, as text and JSON, with no traffic; bad
//! arguments are an error that says what to write.

mod common;
use common::*;

const CONFIG: &str = r#"
[servers.edge]
addr = "127.0.0.1:18080"
locations = ["items", "api", "site"]
trusted_proxies = ["10.0.0.0/8"]

[locations.items]
host = "api.example.com"
path = "~^/v1/items/(?P<id>[0-9]+)$"
upstream = "app"
rewrite = "^/v1/(.*)$ /internal/$1"
plugins = ["rid", "keys"]
proxy_set_headers = ["x-item: $id"]

[locations.api]
host = "*.example.com"
path = "/v1"
upstream = "app"

[locations.site]
path = "/"
upstream = "web"

[upstreams.app]
addrs = ["127.0.0.1:9001", "127.0.0.1:9002"]

[upstreams.web]
addrs = ["127.0.0.1:9003"]

[plugins.rid]
category = "request_id"

[plugins.keys]
category = "key_auth"
keys = ["k"]
"#;

fn explain(args: &[&str]) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("t.toml");
    std::fs::write(&cfg, CONFIG).unwrap();
    let mut all = vec!["explain", "-c", cfg.to_str().unwrap()];
    all.extend_from_slice(args);
    run_cli(&all, dir.path())
}

#[test]
fn explains_the_winner_the_rewrite_and_what_goes_upstream() {
    let (code, out) = explain(&[
        "GET",
        "http://api.example.com:18080/v1/items/42?x=1",
        "-H",
        "X-Forwarded-For: 203.0.113.9",
        "--client-ip",
        "10.1.2.3",
    ]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("server edge (host `api.example.com`, client 203.0.113.9)"),
        "{out}"
    );
    assert!(out.contains("location items"), "{out}");
    let items = out.find("items").unwrap();
    assert!(out.contains("matched   regex path, exact host"), "{out}");
    assert!(
        out.contains("api                  matched   prefix /v1 (3 bytes), wildcard host"),
        "{out}"
    );
    assert!(
        items < out.find("  api ").unwrap(),
        "the winner is listed first"
    );
    assert!(out.contains("captures: $id = 42"), "{out}");
    assert!(
        out.contains("plugins, in order (listed, not run): rid (request_id) -> keys (key_auth)"),
        "{out}"
    );
    assert!(
        out.contains("upstream app: first pick 127.0.0.1:900"),
        "{out}"
    );
    assert!(
        out.contains("upstream request: /internal/items/42?x=1"),
        "{out}"
    );
    assert!(out.contains("x-item: 42"), "{out}");
    assert!(
        out.contains("x-forwarded-for: 203.0.113.9, 10.1.2.3"),
        "{out}"
    );
}

#[test]
fn json_and_the_unmatched_case() {
    let (code, out) = explain(&["POST", "http://other.test/v1/x", "--json"]);
    assert_eq!(code, 0, "{out}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(v["location"], "site");
    assert_eq!(v["upstream"]["name"], "web");
    assert_eq!(v["upstream"]["first_peer"], "127.0.0.1:9003");
    let considered = v["considered"].as_array().unwrap();
    assert_eq!(considered.len(), 3);
    assert!(considered.iter().filter(|c| c["matched"] == true).count() == 1);
    // no location at all: said, exit 0 (the answer would be 404)
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("t.toml");
    std::fs::write(
        &cfg,
        "[servers.s]\naddr = \"127.0.0.1:1\"\nlocations = [\"only\"]\n[locations.only]\nhost = \"a.test\"\nupstream = \"u\"\n[upstreams.u]\naddrs = [\"127.0.0.1:2\"]\n",
    )
    .unwrap();
    let (code, out) = run_cli(
        &[
            "explain",
            "-c",
            cfg.to_str().unwrap(),
            "GET",
            "http://b.test/",
        ],
        dir.path(),
    );
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("no location matched: the request would get 404"),
        "{out}"
    );
}

#[test]
fn bad_arguments_say_what_to_write() {
    for (args, says) in [
        (vec!["GET", "/relative"], "not an absolute http(s) URL"),
        (vec!["G E T", "http://a.test/"], "not an HTTP method"),
        (
            vec!["GET", "http://a.test/", "-H", "no-colon"],
            "`Name: value`",
        ),
        (
            vec!["GET", "http://a.test/", "--client-ip", "10.0.0.300"],
            "not an IP address",
        ),
        (
            vec!["GET", "http://a.test/", "--server", "nope"],
            "no server named `nope`; the config has edge",
        ),
    ] {
        let (code, out) = explain(&args);
        assert_eq!(code, 1, "{args:?}: {out}");
        assert!(out.contains(says), "{args:?}: {out}");
        assert!(!out.contains("panicked"), "{out}");
    }
}
