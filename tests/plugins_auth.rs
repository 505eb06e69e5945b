//! The auth plugins through real sockets: `basic_auth`, `key_auth`, `combined_auth`,
//! `forward_auth` (a real auth service), and `check` on their bad configs. `jwt`:
//! `plugins_jwt.rs`.

mod common;
use common::plugins::*;
use common::*;

/// The user the proxy saw, echoed by a response_headers plugin.
const SHOW_USER: &str =
    "[plugins.show]\ncategory = \"response_headers\"\nset = [\"x-user: $remote_user\"]\n";

fn b64(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(s)
}

#[test]
fn basic_auth_lets_in_known_users_and_challenges_the_rest() {
    let origin = Origin::start(|r| ok(r.header("authorization").unwrap_or("none")));
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("htpasswd");
    let carol = bcrypt::hash("carol-pw", 4).unwrap();
    std::fs::write(&file, format!("# users\ncarol:{carol}\n")).unwrap();
    let alice = bcrypt::hash("alice-pw", 4).unwrap();
    let cfg = one_location(
        port,
        &origin,
        &["show", "users"],
        &format!(
            r#"{SHOW_USER}
[plugins.users]
category = "basic_auth"
users = ["alice:{alice}", "bob:{{SHA}}5en6G6MezRroT3XKqkdPOmY/BfQ="]
htpasswd = "{}"
realm = "staff \"only\""
"#,
            file.display()
        ),
    );
    let t = Tidegate::start(&cfg, &[port]);
    let r = get(port, "h", "/", &[]);
    assert_eq!(r.status, 401, "{}", t.stderr());
    assert_eq!(
        r.header("www-authenticate"),
        Some(r#"Basic realm="staff \"only\"", charset="UTF-8""#)
    );
    for (user, pw, want) in [
        ("alice", "alice-pw", 200),
        ("alice", "alice-pw", 200), // again: from the verified cache
        ("alice", "wrong", 401),
        ("bob", "secret", 200),
        ("bob", "Secret", 401),
        ("carol", "carol-pw", 200),
        ("mallory", "alice-pw", 401),
    ] {
        let auth = format!("Basic {}", b64(&format!("{user}:{pw}")));
        let r = get(port, "h", "/", &[("authorization", &auth)]);
        assert_eq!(r.status, want, "{user}:{pw}");
        if want == 200 {
            assert_eq!(r.header("x-user"), Some(user));
            assert_eq!(r.text(), "none", "the credentials did not go upstream");
        }
    }
    let r = get(port, "h", "/", &[("authorization", "Basic !!!notbase64")]);
    assert_eq!(r.status, 401);
    assert!(
        !t.stderr().contains("alice-pw") && !t.stderr().contains(&b64("alice:alice-pw")),
        "no secret in the log"
    );
}

#[test]
fn key_auth_from_a_header_or_a_query_argument() {
    let origin = Origin::start(|r| {
        ok(&format!(
            "{} key={}",
            r.path,
            r.header("x-api-key").unwrap_or("-")
        ))
    });
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("keys.txt");
    std::fs::write(&file, "# consumers\nbilling:file-key-1\n\nanon-file-key\n").unwrap();
    let cfg = format!(
        r#"
[servers.main]
addr = "127.0.0.1:{port}"
locations = ["q", "all"]

[locations.all]
path = "/"
upstream = "backend"
plugins = ["show", "keys"]

[locations.q]
path = "/q"
upstream = "backend"
plugins = ["show", "qkeys"]

[upstreams.backend]
addrs = ["{}"]

{SHOW_USER}
[plugins.keys]
category = "key_auth"
keys = ["mobile:k-mobile-123", "k-plain-456"]
keys_file = "{}"

[plugins.qkeys]
category = "key_auth"
query = "api_key"
keys = ["web:k/web 1"]
"#,
        origin.addr,
        file.display()
    );
    let t = Tidegate::start(&cfg, &[port]);
    let r = get(port, "h", "/", &[]);
    assert_eq!(r.status, 401, "{}", t.stderr());
    assert_eq!(r.header("www-authenticate"), Some("Key realm=\"tidegate\""));
    assert_eq!(get(port, "h", "/", &[("x-api-key", "nope")]).status, 401);
    let r = get(port, "h", "/", &[("x-api-key", "k-mobile-123")]);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-user"), Some("mobile"));
    assert_eq!(r.text(), "/ key=-", "the key was removed");
    let r = get(port, "h", "/", &[("x-api-key", "k-plain-456")]);
    assert_eq!((r.status, r.header("x-user")), (200, Some("")));
    assert_eq!(
        get(port, "h", "/", &[("x-api-key", "file-key-1")]).header("x-user"),
        Some("billing")
    );
    assert_eq!(
        get(port, "h", "/", &[("x-api-key", "anon-file-key")]).status,
        200
    );
    // the query form: percent-decoded, and taken out of the URI the upstream sees
    let r = get(port, "h", "/q/items?a=1&api_key=k%2Fweb+1&b=2", &[]);
    assert_eq!(r.status, 200, "{}", t.stderr());
    assert_eq!(r.header("x-user"), Some("web"));
    assert_eq!(r.text(), "/q/items?a=1&b=2 key=-");
    assert_eq!(
        get(port, "h", "/q/items?api_key=k-mobile-123", &[]).status,
        401
    );
}

#[test]
fn combined_auth_takes_any_member_and_offers_every_challenge() {
    let origin = Origin::start(|r| {
        ok(&format!(
            "auth={} key={}",
            r.header("authorization").unwrap_or("-"),
            r.header("x-api-key").unwrap_or("-")
        ))
    });
    let port = free_port();
    let cfg = one_location(
        port,
        &origin,
        &["show", "either"],
        &format!(
            r#"{SHOW_USER}
[plugins.either]
category = "combined_auth"
plugins = ["users", "keys"]

[plugins.users]
category = "basic_auth"
users = ["bob:{{SHA}}5en6G6MezRroT3XKqkdPOmY/BfQ="]

[plugins.keys]
category = "key_auth"
keys = ["svc:key-1"]
"#
        ),
    );
    let t = Tidegate::start(&cfg, &[port]);
    let r = get(port, "h", "/", &[]);
    assert_eq!(r.status, 401, "{}", t.stderr());
    let challenges: Vec<&str> = r
        .headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("www-authenticate"))
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(challenges.len(), 2, "{challenges:?}");
    assert!(challenges[0].starts_with("Basic") && challenges[1].starts_with("Key"));
    let basic = format!("Basic {}", b64("bob:secret"));
    let r = get(
        port,
        "h",
        "/",
        &[("authorization", &basic), ("x-api-key", "wrong")],
    );
    assert_eq!((r.status, r.header("x-user")), (200, Some("bob")));
    assert_eq!(
        r.text(),
        "auth=- key=wrong",
        "only the member that passed hid its credentials"
    );
    let r = get(port, "h", "/", &[("x-api-key", "key-1")]);
    assert_eq!((r.status, r.header("x-user")), (200, Some("svc")));
}

#[test]
fn forward_auth_asks_a_service_and_returns_its_refusals() {
    let auth = Origin::start(|r| {
        if r.header("authorization") == Some("Bearer good") {
            Action::Respond(
                200,
                vec![
                    ("x-user".into(), "alice".into()),
                    ("x-groups".into(), "admin".into()),
                ],
                vec![],
            )
        } else {
            Action::Respond(
                302,
                vec![(
                    "location".into(),
                    format!("/login?next={}", r.header("x-forwarded-uri").unwrap_or("")),
                )],
                b"go log in".to_vec(),
            )
        }
    });
    let origin = Origin::start(|r| {
        ok(&format!(
            "user={} groups={} auth={}",
            r.header("x-user").unwrap_or("-"),
            r.header("x-groups").unwrap_or("-"),
            r.header("authorization").unwrap_or("-")
        ))
    });
    let hang = Origin::start(|_| Action::Hang);
    let dead = free_port();
    let port = free_port();
    let cfg = format!(
        r#"
[servers.main]
addr = "127.0.0.1:{port}"
locations = ["open", "closed", "slow", "all"]

[locations.all]
path = "/"
upstream = "backend"
plugins = ["show", "sso"]

[locations.closed]
path = "/closed"
upstream = "backend"
plugins = ["down-deny"]

[locations.open]
path = "/open"
upstream = "backend"
plugins = ["down-allow"]

[locations.slow]
path = "/slow"
upstream = "backend"
plugins = ["hanging"]

[upstreams.backend]
addrs = ["{}"]

{SHOW_USER}
[plugins.sso]
category = "forward_auth"
url = "http://{}/verify"
upstream_headers = ["x-user", "x-groups"]
user_header = "x-user"
cache = "1h"

[plugins.down-deny]
category = "forward_auth"
url = "http://127.0.0.1:{dead}/verify"
timeout = "1s"

[plugins.down-allow]
category = "forward_auth"
url = "http://127.0.0.1:{dead}/verify"
on_error = "allow"

[plugins.hanging]
category = "forward_auth"
url = "http://{}/verify"
timeout = "300ms"
"#,
        origin.addr, auth.addr, hang.addr
    );
    let t = Tidegate::start(&cfg, &[port]);
    let r = get(
        port,
        "h",
        "/page?x=1",
        &[("authorization", "Bearer good"), ("x-user", "mallory")],
    );
    assert_eq!(r.status, 200, "{}", t.stderr());
    assert_eq!(r.text(), "user=alice groups=admin auth=-");
    assert_eq!(r.header("x-user"), Some("alice"));
    let asked = auth.requests();
    assert_eq!(asked[0].path, "/verify");
    assert_eq!(asked[0].header("x-forwarded-uri"), Some("/page?x=1"));
    assert_eq!(asked[0].header("x-forwarded-method"), Some("GET"));
    assert_eq!(asked[0].header("x-forwarded-host"), Some("h"));
    // the same request again comes from the cache
    assert_eq!(
        get(port, "h", "/page?x=1", &[("authorization", "Bearer good")]).status,
        200
    );
    assert_eq!(auth.count(), 1);
    // a refusal goes to the client as the service gave it, and the upstream never sees it
    let before = origin.count();
    let r = get(port, "h", "/page", &[("authorization", "Bearer bad")]);
    assert_eq!(r.status, 302);
    assert_eq!(r.header("location"), Some("/login?next=/page"));
    assert_eq!(r.text(), "go log in");
    assert_eq!(origin.count(), before);
    // a service that cannot be reached: deny (503) by default, or allow
    let r = get(port, "h", "/closed", &[]);
    assert_eq!(r.status, 503);
    assert_eq!(get(port, "h", "/open", &[]).status, 200);
    // a service that does not answer in `timeout`: the request is denied, not held
    let started = std::time::Instant::now();
    assert_eq!(get(port, "h", "/slow", &[]).status, 503);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(hang.count(), 1, "the service was asked");
    assert!(t.stderr().contains("forward_auth: the auth service failed"));
}

#[test]
fn check_names_the_key_of_bad_auth_configs() {
    let cases = [
        ("category = \"basic_auth\"", "users", "no users"),
        (
            "category = \"basic_auth\"\nusers = [\"a:plain\"]",
            "users",
            "allow_plaintext",
        ),
        (
            "category = \"basic_auth\"\nusers = [\"a:$apr1$x$y\"]",
            "users",
            "not supported",
        ),
        (
            "category = \"basic_auth\"\nhtpasswd = \"/nonexistent/htpasswd\"",
            "htpasswd",
            "/nonexistent/htpasswd",
        ),
        ("category = \"key_auth\"", "keys", "no keys"),
        (
            "category = \"key_auth\"\nheader = \"a\"\nquery = \"b\"\nkeys = [\"k\"]",
            "query",
            "not both",
        ),
        (
            "category = \"combined_auth\"\nplugins = [\"x\", \"y\"]",
            "plugins",
            "no auth plugin named `x`",
        ),
        (
            "category = \"forward_auth\"\nurl = \"ftp://x\"",
            "url",
            "http://",
        ),
        (
            "category = \"forward_auth\"\nurl = \"http://127.0.0.1:1/\"\non_error = \"maybe\"",
            "on_error",
            "unknown",
        ),
        (
            "category = \"ip_restriction\"\nallow = [\"10.0.0.0/33\"]",
            "allow",
            "not an IP address",
        ),
        ("category = \"ip_restriction\"", "allow", "set `allow`"),
        (
            "category = \"ua_restriction\"\ndeny = [\"~(\"]",
            "deny",
            "bad regex",
        ),
        (
            "category = \"referer_restriction\"\nallow = [\"\"]",
            "allow",
            "is empty",
        ),
        (
            "category = \"referer_restriction\"\ndeny = [\"a\"]\nstatus = 302",
            "status",
            "4xx or 5xx",
        ),
        (
            "category = \"cors\"\nallow_origins = [\"*\", \"https://a\"]",
            "allow_origins",
            "alone",
        ),
        ("category = \"csrf\"\nkey = \"short\"", "key", "16 bytes"),
    ];
    for (body, key, says) in cases {
        let (category, rest) = body.split_once('\n').unwrap_or((body, ""));
        let category = category
            .trim_start_matches("category = \"")
            .trim_end_matches('"');
        assert_check_refuses(category, rest, key, says);
    }
}

#[test]
fn auth_and_limit_answer_the_same_over_http2() {
    let origin = Origin::start(|r| ok(&r.path));
    let port = free_port();
    let cfg = one_location(
        port,
        &origin,
        &["keys", "two"],
        r#"
[plugins.keys]
category = "key_auth"
query = "k"
keys = ["app:h2-key"]

[plugins.two]
category = "limit"
key = "user"
rate = "2/h"
"#,
    )
    .replace("addr = ", "http2 = true\naddr = ");
    let t = Tidegate::start(&cfg, &[port]);
    let (status, headers, _) = common::lua::h2_request(port, "GET", "/a", b"");
    assert_eq!(status, 401, "{}", t.stderr());
    assert_eq!(
        headers
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok()),
        Some("Key realm=\"tidegate\"")
    );
    for _ in 0..2 {
        let (status, headers, body) = common::lua::h2_request(port, "GET", "/a?k=h2-key&x=1", b"");
        assert_eq!(status, 200);
        assert_eq!(body, b"/a?x=1", "the key was taken out of the query");
        assert!(headers.contains_key("ratelimit-remaining"));
    }
    let (status, headers, _) = common::lua::h2_request(port, "GET", "/a?k=h2-key", b"");
    assert_eq!(status, 429);
    assert!(headers.contains_key("retry-after"));
}

#[test]
fn lua_sees_the_user_an_auth_plugin_let_in() {
    let origin = Origin::start(|r| ok(r.header("x-seen-user").unwrap_or("-")));
    let port = free_port();
    let cfg = one_location(
        port,
        &origin,
        &["keys", "who"],
        r#"
[plugins.keys]
category = "key_auth"
keys = ["mobile:k1"]

[plugins.who]
category = "lua"
source = '''
return { on_request = function(req) req:set_header("x-seen-user", req.user or "nil") end }
'''
"#,
    );
    let t = Tidegate::start(&cfg, &[port]);
    assert_eq!(
        get(port, "h", "/", &[("x-api-key", "k1")]).text(),
        "mobile",
        "{}",
        t.stderr()
    );
}
