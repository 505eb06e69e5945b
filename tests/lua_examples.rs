//! Every example in lua/examples/ runs as shipped (its own config, with the ports moved to
//! free ones and the paths made absolute) and does what its header comment says.

mod common;
use common::*;
use std::path::Path;

/// Start `lua/examples/NAME.toml`; returns the proxy and its front port (the config's 6190).
fn example(name: &str) -> (Tidegate, u16) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut cfg = std::fs::read_to_string(root.join(format!("lua/examples/{name}.toml"))).unwrap();
    cfg = cfg.replace(
        "\"lua/examples/",
        &format!("\"{}/lua/examples/", root.display()),
    );
    cfg = cfg.replace(
        "dir = \"lua\"",
        &format!("dir = \"{}/lua\"", root.display()),
    );
    let mut ports = Vec::new();
    for p in 6190..=6192 {
        let needle = format!("127.0.0.1:{p}");
        if cfg.contains(&needle) {
            let free = free_port();
            cfg = cfg.replace(&needle, &format!("127.0.0.1:{free}"));
            ports.push(free);
        }
    }
    let t = Tidegate::start(&cfg, &ports);
    (t, ports[0])
}

#[test]
fn api_key_auth() {
    let (_t, port) = example("api_key_auth");
    assert_eq!(get(port, "h", "/", &[]).status, 401);
    let r = get(port, "h", "/", &[("x-api-key", "s3cret")]);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-user"), Some("demo"));
}

#[test]
fn route_by_header() {
    let (_t, port) = example("route_by_header");
    let r = get(port, "h", "/", &[]);
    assert_eq!(
        (r.text().as_str(), r.header("x-routed-to")),
        ("stable\n", Some("stable"))
    );
    let r = get(port, "h", "/", &[("x-beta", "1")]);
    assert_eq!(
        (r.text().as_str(), r.header("x-routed-to")),
        ("beta\n", Some("beta"))
    );
    let r = get(port, "h", "/", &[("cookie", "a=b; beta=1")]);
    assert_eq!(r.text(), "beta\n");
}

#[test]
fn response_header() {
    let (_t, port) = example("response_header");
    let r = get(port, "h", "/", &[]);
    assert_eq!(r.text(), "a page\n");
    assert_eq!(
        r.header("strict-transport-security"),
        Some("max-age=31536000")
    );
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(r.header("x-served-by"), Some("site"));
    assert_eq!(r.header("x-powered-by"), None);
}

#[test]
fn log_field() {
    let (t, port) = example("log_field");
    get(port, "h", "/", &[("user-agent", "Googlebot/2.1")]);
    get(port, "h", "/", &[("user-agent", "Mozilla/5.0")]);
    assert!(wait_until(WAIT, || {
        let out = t.stdout();
        out.contains("GET / 200 client=bot size=small")
            && out.contains("GET / 200 client=browser size=small")
    }));
}

#[test]
fn client_counter() {
    let (_t, port) = example("client_counter");
    let remaining: Vec<_> = (0..3)
        .map(|_| {
            let r = get(port, "h", "/", &[]);
            assert_eq!(r.status, 200);
            r.header("x-ratelimit-remaining").map(str::to_string)
        })
        .collect();
    assert_eq!(
        remaining,
        vec![Some("2".into()), Some("1".into()), Some("0".into())]
    );
    let r = get(port, "h", "/", &[]);
    assert_eq!(r.status, 429);
    let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=10).contains(&retry), "{retry}");
}

#[test]
fn json_mock() {
    let (_t, port) = example("json_mock");
    let r = get(port, "h", "/users/1", &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert!(r.text().contains(r#""name":"Ada""#), "{}", r.text());
    assert!(r.text().contains(r#""role":"admin""#), "{}", r.text());
    assert_eq!(get(port, "h", "/users/9", &[]).status, 404);
    let r = request(port, "DELETE", "h", "/users/1", &[], b"");
    assert_eq!((r.status, r.header("allow")), (405, Some("GET")));
}

#[test]
fn outbound_auth() {
    let (_t, port) = example("outbound_auth");
    assert_eq!(get(port, "h", "/", &[]).status, 401);
    assert_eq!(
        get(port, "h", "/", &[("authorization", "Bearer wrong")]).status,
        401
    );
    let r = get(port, "h", "/", &[("authorization", "Bearer letmein")]);
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "members only\n");
    assert_eq!(r.header("x-user"), Some("ada"));
}

#[test]
fn body_rewrite() {
    let (_t, port) = example("body_rewrite");
    let r = get(port, "h", "/", &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-length"), None);
    assert_eq!(
        r.text(),
        "<a href=\"https://www.example.com/docs\">docs</a> <a href=\"https://www.example.com/\">home</a>\n"
    );
}
