//! The plugin chain and the built-in plugins; forwarding and configured headers.

mod common;
use common::*;

#[test]
fn plugin_chain_runs_in_order_and_answers_early() {
    let port = free_port();
    let origin = Origin::start(|r| {
        Action::Respond(
            200,
            vec![("server".into(), "origin/1".into())],
            format!("id={}", r.header("x-request-id").unwrap_or("")).into_bytes(),
        )
    });
    let cfg = format!(
        r#"
[servers.main]
addr = "127.0.0.1:{port}"
locations = ["api", "old", "mocked"]

[locations.api]
path = "/api"
upstream = "backend"
plugins = ["rid", "pong", "hdrs"]

[locations.old]
path = "/old"
plugins = ["to-new", "never"]

[locations.mocked]
path = "/mock"
plugins = ["maint", "never"]
upstream = "backend"

[upstreams.backend]
addrs = ["{}"]

[plugins.rid]
category = "request_id"

[plugins.pong]
category = "ping"
path = "/api/ping"

[plugins.hdrs]
category = "response_headers"
set = ["x-served-by: tidegate", "x-host: $host"]
add = ["x-multi: a", "x-multi: b"]
remove = ["server"]

[plugins.to-new]
category = "redirect"
url = "https://$host/new$uri?$args"
status = 301

[plugins.maint]
category = "mock"
status = 503
headers = ["content-type: application/json", "retry-after: 30"]
body = '{{"error":"maintenance"}}'

[plugins.never]
category = "mock"
status = 418
"#,
        origin.addr
    );
    let _t = Tidegate::start(&cfg, &[port]);

    // request_id then response_headers on a proxied request
    let r = get(port, "Api.Test", "/api/items", &[]);
    assert_eq!(r.status, 200);
    let id = r
        .header("x-request-id")
        .expect("request id on response")
        .to_string();
    assert_eq!(id.len(), 32);
    assert_eq!(r.text(), format!("id={id}"), "the origin saw the same id");
    assert_eq!(r.header("x-served-by"), Some("tidegate"));
    assert_eq!(r.header("x-host"), Some("api.test"));
    assert_eq!(r.header("server"), None, "removed");
    assert_eq!(r.headers.iter().filter(|(k, _)| k == "x-multi").count(), 2);

    // ping answers early: origin not contacted
    let before = origin.count();
    let r = get(port, "h", "/api/ping", &[]);
    assert_eq!((r.status, r.text().as_str()), (200, "pong\n"));
    assert_eq!(origin.count(), before);

    // redirect stops the chain (the 418 mock never runs)
    let r = get(port, "example.com", "/old/page", &[]);
    assert_eq!(r.status, 301);
    assert_eq!(
        r.header("location"),
        Some("https://example.com/new/old/page?")
    );

    // mock answers with status, headers and body, and the origin never sees it
    let r = get(port, "h", "/mock", &[]);
    assert_eq!(r.status, 503);
    assert_eq!(r.header("retry-after"), Some("30"));
    assert_eq!(r.text(), r#"{"error":"maintenance"}"#);
    assert_eq!(origin.count(), before);
}

#[test]
fn forwarded_headers_untrusted_and_trusted() {
    let port = free_port();
    let trusted_port = free_port();
    let origin = Origin::named("o");
    let cfg = format!(
        r#"
[servers.open]
addr = "127.0.0.1:{port}"
locations = ["all"]

[servers.behind-lb]
addr = "127.0.0.1:{trusted_port}"
locations = ["all"]
trusted_proxies = ["127.0.0.0/8", "10.0.0.0/8"]

[locations.all]
upstream = "backend"
proxy_set_headers = ["x-client: $remote_addr", "x-scheme: $scheme", "x-ua: $http_user_agent"]
proxy_add_headers = ["x-extra: 1"]

[upstreams.backend]
addrs = ["{}"]
"#,
        origin.addr
    );
    let _t = Tidegate::start(&cfg, &[port, trusted_port]);

    // an untrusted peer's forwarded headers are replaced, not believed
    get(
        port,
        "h",
        "/",
        &[
            ("x-forwarded-for", "6.6.6.6"),
            ("x-forwarded-proto", "https"),
            ("user-agent", "ua/1"),
        ],
    );
    let r = origin.requests().pop().unwrap();
    assert_eq!(r.header("x-forwarded-for"), Some("127.0.0.1"));
    assert_eq!(r.header("x-real-ip"), Some("127.0.0.1"));
    assert_eq!(r.header("x-forwarded-proto"), Some("http"));
    assert_eq!(r.header("x-client"), Some("127.0.0.1"));
    assert_eq!(r.header("x-scheme"), Some("http"));
    assert_eq!(r.header("x-ua"), Some("ua/1"));
    assert_eq!(r.header("x-extra"), Some("1"));

    // a trusted peer: the client is the right-most untrusted hop
    get(
        trusted_port,
        "h",
        "/",
        &[
            ("x-forwarded-for", "203.0.113.9, 10.1.2.3"),
            ("x-forwarded-proto", "https"),
        ],
    );
    let r = origin.requests().pop().unwrap();
    assert_eq!(r.header("x-real-ip"), Some("203.0.113.9"));
    assert_eq!(r.header("x-client"), Some("203.0.113.9"));
    assert_eq!(
        r.header("x-forwarded-for"),
        Some("203.0.113.9, 10.1.2.3, 127.0.0.1")
    );
    assert_eq!(r.header("x-forwarded-proto"), Some("https"));
}

#[test]
fn forwarded_headers_can_be_turned_off() {
    let port = free_port();
    let origin = Origin::named("o");
    let cfg = simple_config(port, &[origin.addr.to_string()], "", "").replace(
        "locations = [\"all\"]",
        "locations = [\"all\"]\nforwarded_headers = false",
    );
    let _t = Tidegate::start(&cfg, &[port]);
    get(port, "h", "/", &[("x-forwarded-for", "6.6.6.6")]);
    let r = origin.requests().pop().unwrap();
    // not added, and a client's own header passes through untouched
    assert_eq!(r.headers_named("x-forwarded-for"), vec!["6.6.6.6"]);
    assert_eq!(r.header("x-real-ip"), None);
    assert_eq!(r.header("x-forwarded-proto"), None);
}
