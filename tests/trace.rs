//! The per-request trace (`X-Tidegate-Trace`): turned on by the token or a trusted peer,
//! never by anyone else, never seen by the upstream.

mod common;

use common::*;

const TOKEN: &str = "trace-me-0123456789";

fn config(port: u16, live: u16, dead: u16) -> String {
    format!(
        r#"
[basic]
threads = 1
trace_token = "{TOKEN}"

[servers.main]
addr = "127.0.0.1:{port}"
locations = ["api", "site"]
trusted_proxies = ["127.0.0.2"]

[locations.api]
path = "/api"
rewrite = "^/api/(.*)$ /v2/$1"
upstream = "pair"
plugins = ["check"]

[locations.site]
path = "/"
upstream = "pair"

[upstreams.pair]
addrs = ["127.0.0.1:{dead}", "127.0.0.1:{live}"]
retries = 1

[plugins.check]
category = "lua"
source = '''
return {{ on_request = function(req) req:set_header("x-checked", "1") end }}
'''
"#
    )
}

#[test]
fn the_token_turns_the_trace_on_and_it_tells_the_whole_story() {
    let origin = Origin::named("o");
    let (port, dead) = (free_port(), free_port());
    let _t = Tidegate::start(&config(port, origin.port(), dead), &[port]);
    let r = get(port, "h", "/api/items", &[("x-tidegate-trace", TOKEN)]);
    assert_eq!(r.status, 200);
    let trace = r.header("x-tidegate-trace").expect("a trace").to_string();
    for part in [
        "route: api won (prefix /api (4 bytes), any host); also matched: site (prefix / (1 bytes), any host); 0 not matching",
        "lua check on_request: ok (",
        "% of the 50ms budget)",
        "plugin check: continue (",
        "rewrite: /api/items -> /v2/items",
        "upstream pair: peer 127.0.0.1:",
        "upstream try failed: Refused",
        "(try 2)",
        "upstream answered 200 (connected in ",
        "| total ",
    ] {
        assert!(trace.contains(part), "missing `{part}` in:\n{trace}");
    }
    // the steps are in order
    let at = |s: &str| trace.find(s).unwrap();
    assert!(at("route:") < at("plugin check") && at("plugin check") < at("upstream pair"));
    // the upstream never sees the header
    assert!(origin
        .requests()
        .iter()
        .all(|q| q.header("x-tidegate-trace").is_none()));
    assert_eq!(origin.requests().last().unwrap().path, "/v2/items");
}

#[test]
fn a_wrong_token_or_an_untrusted_peer_gets_nothing_and_a_trusted_peer_gets_the_trace() {
    let origin = Origin::named("o");
    let (port, dead) = (free_port(), free_port());
    let _t = Tidegate::start(&config(port, origin.port(), dead), &[port]);
    let wrong = get(
        port,
        "h",
        "/api/x",
        &[("x-tidegate-trace", "trace-me-0123456780")],
    );
    assert_eq!(wrong.status, 200);
    assert!(wrong.header("x-tidegate-trace").is_none());
    let short = get(port, "h", "/api/x", &[("x-tidegate-trace", "trace")]);
    assert!(short.header("x-tidegate-trace").is_none());
    let none = get(port, "h", "/nowhere", &[("x-tidegate-trace", "1")]);
    assert!(
        none.header("x-tidegate-trace").is_none(),
        "127.0.0.1 is not trusted"
    );
    // from 127.0.0.2, a trusted proxy: any value turns it on
    let loopback2 = std::net::Ipv4Addr::new(127, 0, 0, 2);
    let r = get_from_with(loopback2, port, "/api/x", &[("x-tidegate-trace", "1")]);
    assert!(r
        .header("x-tidegate-trace")
        .unwrap()
        .contains("route: api won"));
    // the header never reached the upstream, traced or not (four requests, `/nowhere` too:
    // `site` takes every path)
    assert_eq!(origin.count(), 4);
    assert!(origin
        .requests()
        .iter()
        .all(|q| q.header("x-tidegate-trace").is_none()));
}

#[test]
fn a_short_trace_token_is_a_config_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.toml");
    std::fs::write(&path, config(free_port(), 9, 9).replace(TOKEN, "short")).unwrap();
    let (code, out) = run_cli(&["check", "-c", path.to_str().unwrap()], dir.path());
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("[basic] trace_token:") && out.contains("at least 16"),
        "{out}"
    );
}

#[test]
fn json_asks_for_the_trace_instead_of_the_body() {
    let origin = Origin::named("the upstream's body");
    let (port, dead) = (free_port(), free_port());
    let _t = Tidegate::start(&config(port, origin.port(), dead), &[port]);
    let token_json = format!("{TOKEN} json");
    for path in ["/api/items", "/other"] {
        let r = get(port, "h", path, &[("x-tidegate-trace", &token_json)]);
        assert_eq!(r.status, 200);
        assert_eq!(r.header("content-type"), Some("application/json"));
        let doc: serde_json::Value = serde_json::from_slice(&r.body).expect("a JSON trace");
        let steps: Vec<&str> = doc["steps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["what"].as_str().unwrap())
            .collect();
        assert!(steps[0].starts_with("route: "), "{doc}");
        assert!(
            steps.iter().any(|s| s.starts_with("upstream answered 200")),
            "{doc}"
        );
        assert_eq!(doc["response"]["status"], 200, "{doc}");
        assert!(doc["total_ms"].as_f64().unwrap() > 0.0);
        assert!(!String::from_utf8_lossy(&r.body).contains("the upstream's body"));
    }
    // the same through Pingora's engine
    let pport = free_port();
    let _p = Tidegate::start(
        &config(pport, origin.port(), dead)
            .replace("[servers.main]", "[servers.main]\nengine = \"pingora\""),
        &[pport],
    );
    let r = get(
        pport,
        "h",
        "/api/items",
        &[("x-tidegate-trace", &token_json)],
    );
    assert_eq!(r.status, 200);
    let doc: serde_json::Value = serde_json::from_slice(&r.body).expect("a JSON trace");
    assert!(
        doc["steps"][0]["what"]
            .as_str()
            .unwrap()
            .starts_with("route: "),
        "{doc}"
    );
    assert!(!String::from_utf8_lossy(&r.body).contains("the upstream's body"));
}
