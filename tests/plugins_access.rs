//! Access plugins through real sockets: `ip_restriction` (with `trusted_proxies`),
//! `referer_restriction`, `ua_restriction`, `cors` (preflights answered here) and `csrf`.

mod common;
use common::plugins::*;
use common::*;
use std::net::Ipv4Addr;

fn locations(
    port: u16,
    origin: &Origin,
    routes: &[(&str, &str)],
    tables: &str,
    server_extra: &str,
) -> String {
    let names: Vec<String> = routes
        .iter()
        .map(|(p, _)| format!("\"l{}\"", p.replace('/', "_")))
        .collect();
    let mut out = format!(
        "[servers.main]\naddr = \"127.0.0.1:{port}\"\nlocations = [{}]\n{server_extra}\n[upstreams.backend]\naddrs = [\"{}\"]\n{tables}\n",
        names.join(", "),
        origin.addr
    );
    for (path, plugins) in routes {
        out.push_str(&format!(
            "[locations.l{}]\npath = \"{path}\"\nupstream = \"backend\"\nplugins = [{plugins}]\n",
            path.replace('/', "_")
        ));
    }
    out
}

#[test]
fn ip_restriction_on_the_client_ip_after_trusted_proxies() {
    let origin = Origin::start(|_| ok("in"));
    let port = free_port();
    let cfg = locations(
        port,
        &origin,
        &[("/office", "\"office\""), ("/", "\"blocklist\"")],
        r#"
[plugins.office]
category = "ip_restriction"
allow = ["127.0.0.2", "10.0.0.0/8"]
deny = ["10.66.0.0/16"]
body = "office only\n"

[plugins.blocklist]
category = "ip_restriction"
deny = ["127.0.0.3"]
status = 451
"#,
        "trusted_proxies = [\"127.0.0.4\"]",
    );
    let t = Tidegate::start(&cfg, &[port]);
    assert_eq!(
        get_from(Ipv4Addr::new(127, 0, 0, 2), port, "/office").status,
        200,
        "{}",
        t.stderr()
    );
    let r = get_from(Ipv4Addr::new(127, 0, 0, 3), port, "/office");
    assert_eq!((r.status, r.text().as_str()), (403, "office only\n"));
    // a trusted proxy's X-Forwarded-For names the client; an untrusted peer's is ignored
    let via = |ip: &str, from: u8| {
        get_from_with(
            Ipv4Addr::new(127, 0, 0, from),
            port,
            "/office",
            &[("x-forwarded-for", ip)],
        )
        .status
    };
    assert_eq!(via("10.1.2.3", 4), 200);
    assert_eq!(via("10.66.1.1", 4), 403, "deny wins over allow");
    assert_eq!(via("10.1.2.3", 5), 403, "127.0.0.5 is not a trusted proxy");
    assert_eq!(
        get_from(Ipv4Addr::new(127, 0, 0, 3), port, "/x").status,
        451
    );
    assert_eq!(
        get_from(Ipv4Addr::new(127, 0, 0, 2), port, "/x").status,
        200
    );
}

#[test]
fn referer_and_user_agent_restrictions() {
    let origin = Origin::start(|_| ok("in"));
    let port = free_port();
    let cfg = locations(
        port,
        &origin,
        &[
            ("/img", "\"hotlink\""),
            ("/strict", "\"strict\""),
            ("/", "\"bots\""),
        ],
        r#"
[plugins.hotlink]
category = "referer_restriction"
allow = ["example.com", "*.example.com", "~^partner[0-9]+[.]test$"]

[plugins.strict]
category = "referer_restriction"
allow = ["example.com"]
deny = ["example.com"]
allow_empty = false

[plugins.bots]
category = "ua_restriction"
deny = ["*bot*", "curl/*", "~^python-requests/"]
"#,
        "",
    );
    let t = Tidegate::start(&cfg, &[port]);
    let referer = |path: &str, r: &str| get(port, "h", path, &[("referer", r)]).status;
    assert_eq!(
        referer("/img/a.png", "https://Example.com/page"),
        200,
        "{}",
        t.stderr()
    );
    assert_eq!(referer("/img/a.png", "https://www.example.com/"), 200);
    assert_eq!(referer("/img/a.png", "http://partner12.test/x"), 200);
    assert_eq!(referer("/img/a.png", "https://example.com.evil.test/"), 403);
    assert_eq!(
        referer("/img/a.png", "https://evil.test/?https://example.com"),
        403
    );
    assert_eq!(
        get(port, "h", "/img/a.png", &[]).status,
        200,
        "no referer: allowed by default"
    );
    assert_eq!(
        get(port, "h", "/strict", &[]).status,
        403,
        "allow_empty = false"
    );
    assert_eq!(referer("/strict", "https://example.com/"), 403, "deny wins");
    let ua = |u: &str| get(port, "h", "/", &[("user-agent", u)]).status;
    assert_eq!(ua("Mozilla/5.0 (X11; Linux x86_64)"), 200);
    assert_eq!(ua("Googlebot/2.1 (+http://www.google.com/bot.html)"), 403);
    assert_eq!(ua("curl/8.5.0"), 403);
    assert_eq!(ua("python-requests/2.31"), 403);
    assert_eq!(
        get(port, "h", "/", &[]).status,
        200,
        "no user agent, no deny match"
    );
}

#[test]
fn cors_answers_preflights_and_decorates_responses() {
    let origin = Origin::start(|_| {
        Action::Respond(
            200,
            vec![("x-request-id".into(), "r1".into())],
            b"data".to_vec(),
        )
    });
    let port = free_port();
    let cfg = locations(
        port,
        &origin,
        &[("/any", "\"open\""), ("/", "\"cors\"")],
        r#"
[plugins.cors]
category = "cors"
allow_origins = ["https://app.example.com", "*.example.org", "~^https://[a-z]+[.]dev$"]
allow_methods = ["GET", "POST", "PUT"]
allow_headers = ["content-type", "x-token"]
expose_headers = ["x-request-id"]
allow_credentials = true
max_age = "1h"

[plugins.open]
category = "cors"
allow_origins = ["*"]
"#,
        "",
    );
    let t = Tidegate::start(&cfg, &[port]);
    let preflight = |o: &str, m: &str, h: &str| {
        request(
            port,
            "OPTIONS",
            "h",
            "/api",
            &[
                ("origin", o),
                ("access-control-request-method", m),
                ("access-control-request-headers", h),
            ],
            b"",
        )
    };
    let r = preflight("https://app.example.com", "PUT", "Content-Type, X-Token");
    assert_eq!(r.status, 204, "{}", t.stderr());
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://app.example.com")
    );
    assert_eq!(
        r.header("access-control-allow-methods"),
        Some("GET, POST, PUT")
    );
    assert_eq!(
        r.header("access-control-allow-headers"),
        Some("Content-Type, X-Token")
    );
    assert_eq!(r.header("access-control-allow-credentials"), Some("true"));
    assert_eq!(r.header("access-control-max-age"), Some("3600"));
    assert!(r.header("vary").unwrap_or_default().contains("Origin"));
    assert_eq!(origin.count(), 0, "preflights never reach the upstream");
    assert_eq!(preflight("https://a.b.example.org", "GET", "").status, 204);
    assert_eq!(preflight("https://local.dev", "GET", "").status, 204);
    assert_eq!(preflight("https://evil.test", "GET", "").status, 403);
    assert_eq!(
        preflight("https://app.example.com", "DELETE", "").status,
        403
    );
    assert_eq!(
        preflight("https://app.example.com", "GET", "x-other").status,
        403
    );

    let r = get(port, "h", "/api", &[("origin", "https://app.example.com")]);
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://app.example.com")
    );
    assert_eq!(r.header("access-control-allow-credentials"), Some("true"));
    assert_eq!(
        r.header("access-control-expose-headers"),
        Some("x-request-id")
    );
    assert_eq!(r.header("vary"), Some("Origin"));
    let r = get(port, "h", "/api", &[("origin", "https://evil.test")]);
    assert_eq!(
        r.status, 200,
        "CORS is not access control: the browser enforces it"
    );
    assert!(r.header("access-control-allow-origin").is_none());
    let r = get(port, "h", "/any", &[("origin", "https://whoever.test")]);
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));
    assert!(r.header("vary").is_none());
}

#[test]
fn csrf_double_submit_tokens() {
    let origin = Origin::start(|r| ok(&format!("{} {}", r.method, r.path)));
    let port = free_port();
    let cfg = one_location(
        port,
        &origin,
        &["csrf"],
        "[plugins.csrf]\ncategory = \"csrf\"\nkey = \"0123456789abcdef-secret\"\nttl = \"10m\"\n",
    );
    let t = Tidegate::start(&cfg, &[port]);
    let r = get(port, "h", "/csrf-token", &[]);
    assert_eq!(r.status, 200, "{}", t.stderr());
    let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    let token = body["token"].as_str().unwrap().to_string();
    let set = r.header("set-cookie").unwrap();
    assert!(set.starts_with(&format!("tidegate_csrf={token};")), "{set}");
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict") && set.contains("Max-Age=600")
    );
    assert_eq!(origin.count(), 0, "the token endpoint is answered here");

    let cookie = format!("tidegate_csrf={token}");
    let post =
        |headers: &[(&str, &str)]| request(port, "POST", "h", "/save", headers, b"x=1").status;
    assert_eq!(post(&[("cookie", &cookie), ("x-csrf-token", &token)]), 200);
    assert_eq!(post(&[]), 403);
    assert_eq!(post(&[("cookie", &cookie)]), 403, "the header is missing");
    assert_eq!(
        post(&[("x-csrf-token", &token)]),
        403,
        "the cookie is missing"
    );
    let other =
        serde_json::from_slice::<serde_json::Value>(&get(port, "h", "/csrf-token", &[]).body)
            .unwrap()["token"]
            .as_str()
            .unwrap()
            .to_string();
    assert_eq!(
        post(&[("cookie", &cookie), ("x-csrf-token", &other)]),
        403,
        "cookie and header differ"
    );
    let forged = format!("9999999999.{}", &token[token.find('.').unwrap() + 1..]);
    assert_eq!(
        post(&[
            ("cookie", &format!("tidegate_csrf={forged}")),
            ("x-csrf-token", &forged)
        ]),
        403
    );
    assert_eq!(
        get(port, "h", "/page", &[]).status,
        200,
        "safe methods need no token"
    );
}
