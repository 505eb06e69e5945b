//! The admin API (`[admin]`): a token required and checked, status, upstreams, stats,
//! metrics, a reload after an edit, explain over HTTP, and `check` refusing an admin reachable
//! beyond loopback without a token.

mod common;
use common::plugins::check_text;
use common::*;

const TOKEN: &str = "an-admin-token-of-some-length";

fn config(port: u16, admin: u16, origin: &Origin, body: &str) -> String {
    format!(
        r#"
[admin]
addr = "127.0.0.1:{admin}"
token = "{TOKEN}"

[servers.main]
addr = "127.0.0.1:{port}"
locations = ["all"]

[locations.all]
path = "/"
upstream = "backend"
plugins = ["answer"]

[upstreams.backend]
addrs = ["{}"]

[plugins.answer]
category = "mock"
body = "{body}"
"#,
        origin.addr
    )
}

fn json(port: u16, method: &str, path: &str, token: Option<&str>) -> (u16, serde_json::Value) {
    let auth = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("authorization", a.as_str())).collect();
    let r = request(port, method, "admin", path, &headers, b"");
    let v = serde_json::from_slice(&r.body).unwrap_or(serde_json::Value::Null);
    (r.status, v)
}

#[test]
fn the_admin_api_reports_reloads_and_explains() {
    let origin = Origin::named("o");
    let (port, admin) = (free_port(), free_port());
    let t = Tidegate::start(&config(port, admin, &origin, "one"), &[port, admin]);
    // no token, a wrong one: 401
    let r = request(admin, "GET", "admin", "/status", &[], b"");
    assert_eq!(r.status, 401, "{}", t.stderr());
    assert_eq!(
        r.header("www-authenticate"),
        Some("Bearer realm=\"tidegate-admin\"")
    );
    assert_eq!(
        json(admin, "GET", "/status", Some("wrong-token-of-some-length")).0,
        401
    );

    let (s, v) = json(admin, "GET", "/status", Some(TOKEN));
    assert_eq!(s, 200);
    assert_eq!(v["config_version"], 1);
    assert!(v["uptime_seconds"].as_u64().is_some());
    let (_, v) = json(admin, "GET", "/upstreams", Some(TOKEN));
    assert_eq!(v["backend"][0]["peer"], origin.addr.to_string());
    assert_eq!(v["backend"][0]["up"], true);
    assert_eq!(v["backend"][0]["recent_failures"], 0);
    assert_eq!(get(port, "h", "/", &[]).text(), "one");
    let (_, v) = json(admin, "GET", "/stats", Some(TOKEN));
    assert!(v["requests"]["total"].as_u64().is_some(), "{v}");
    let r = request(
        admin,
        "GET",
        "admin",
        "/metrics",
        &[("authorization", &format!("Bearer {TOKEN}"))],
        b"",
    );
    assert!(r.text().contains("tidegate_build_info"), "{}", r.text());

    // an edit, then POST /reload (the watch may apply it first: either way version 2 serves)
    std::fs::write(&t.config, config(port, admin, &origin, "two")).unwrap();
    let (s, v) = json(admin, "POST", "/reload", Some(TOKEN));
    assert_eq!(s, 200, "{v}");
    assert!(wait_until(WAIT, || get(port, "h", "/", &[]).text() == "two"));
    assert!(json(admin, "GET", "/status", Some(TOKEN)).1["config_version"].as_u64() >= Some(2));
    // a broken edit: 422 with the error, the old config serving
    std::fs::write(&t.config, "[servers.main]\naddr = 5\n").unwrap();
    let (s, v) = json(admin, "POST", "/reload", Some(TOKEN));
    assert_eq!(s, 422, "{v}");
    assert!(v["error"].as_str().unwrap_or("").contains("addr"), "{v}");
    assert_eq!(get(port, "h", "/", &[]).text(), "two");
    // explain over HTTP
    let q = format!("/explain?method=GET&url=http%3A%2F%2Fh%3A{port}%2Fx&header=X-A%3A%201");
    let (s, v) = json(admin, "GET", &q, Some(TOKEN));
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["location"], "all");
    assert_eq!(v["plugins"][0]["category"], "mock");
    assert_eq!(json(admin, "GET", "/explain?url=nope", Some(TOKEN)).0, 400);
    let (s, v) = json(admin, "GET", "/certificates", Some(TOKEN));
    assert_eq!(
        (s, v["serving"].as_array().map(Vec::len)),
        (200, Some(0)),
        "{v}"
    );
    assert_eq!(json(admin, "DELETE", "/status", Some(TOKEN)).0, 405);
    assert_eq!(json(admin, "GET", "/nope", Some(TOKEN)).0, 404);
}

#[test]
fn certificates_show_their_names_and_expiry() {
    let ca = common::tls::TestCa::new("admin test CA");
    let cert = ca.issue(&["api.test", "*.api.test"], 30, 7);
    let dir = tempfile::tempdir().unwrap();
    let (c, k) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
    std::fs::write(&c, &cert.cert_pem).unwrap();
    std::fs::write(&k, &cert.key_pem).unwrap();
    let (port, admin) = (free_port(), free_port());
    let cfg = format!(
        "[admin]\naddr = \"127.0.0.1:{admin}\"\n[servers.s]\naddr = \"127.0.0.1:{port}\"\ntls = true\nlocations = []\n[certificates.api]\ncert = \"{}\"\nkey = \"{}\"\n",
        c.display(),
        k.display()
    );
    let t = Tidegate::start(&cfg, &[admin]);
    // no token on loopback: open
    let (s, v) = json(admin, "GET", "/certificates", None);
    assert_eq!(s, 200, "{}", t.stderr());
    let c = &v["serving"][0];
    assert_eq!(c["name"], "api");
    assert_eq!(c["domains"], serde_json::json!(["api.test", "*.api.test"]));
    let days = c["days_left"].as_i64().unwrap();
    assert!((28..=30).contains(&days), "{days}");
    assert!(c["not_after"].as_str().unwrap().ends_with("GMT"));
}

#[test]
fn check_refuses_an_open_admin_beyond_loopback() {
    let base = "[servers.s]\naddr = \"127.0.0.1:1\"\nlocations = []\n";
    for (admin, says) in [
        (
            "[admin]\naddr = \"0.0.0.0:6189\"",
            "reachable beyond this host",
        ),
        (
            "[admin]\naddr = \"127.0.0.1:6189\"\ntoken = \"short\"",
            "at least 16",
        ),
        ("[admin]\naddr = \"localhost\"", "not IP:PORT"),
        ("[admin]\naddr = \"127.0.0.1:1\"", "listens there already"),
        ("[admin]\ntoken = \"0123456789abcdef0\"", "missing `addr`"),
    ] {
        let (code, out) = check_text(&format!("{base}{admin}\n"));
        assert_ne!(code, 0, "{admin}");
        assert!(
            out.contains("[admin]") && out.contains(says),
            "{admin}: {out}"
        );
    }
    // beyond loopback: a token for the API and a user for the web UI, both
    let (code, out) = check_text(&format!(
        "{base}[admin]\naddr = \"0.0.0.0:6189\"\ntoken = \"0123456789abcdef0\"\n"
    ));
    assert_ne!(code, 0, "{out}");
    let hash = bcrypt::hash("pw", 4).unwrap();
    let (code, out) = check_text(&format!(
        "{base}[admin]\naddr = \"0.0.0.0:6189\"\ntoken = \"0123456789abcdef0\"\nuser = \"ada\"\npassword_hash = '{hash}'\n"
    ));
    assert_eq!(code, 0, "{out}");
}

fn put(port: u16, path: &str, body: &str, if_match: Option<&str>) -> (u16, serde_json::Value) {
    let auth = format!("Bearer {TOKEN}");
    let mut headers = vec![("authorization", auth.as_str())];
    if let Some(m) = if_match {
        headers.push(("if-match", m));
    }
    let r = request(port, "PUT", "admin", path, &headers, body.as_bytes());
    (
        r.status,
        serde_json::from_slice(&r.body).unwrap_or(serde_json::Value::Null),
    )
}

#[test]
fn the_config_is_read_and_written_with_versions() {
    let origin = Origin::named("o");
    let (port, admin) = (free_port(), free_port());
    let first = config(port, admin, &origin, "one");
    let t = Tidegate::start(&first, &[port, admin]);
    let auth = format!("Bearer {TOKEN}");
    let r = request(
        admin,
        "GET",
        "admin",
        "/config",
        &[("authorization", &auth)],
        b"",
    );
    assert_eq!(r.status, 200, "{}", t.stderr());
    assert_eq!(r.header("etag"), Some("\"v1\""));
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["documents"][0]["text"], first.as_str());

    // refused: a broken config (its key named), a stale version; the file and the proxy unchanged
    let (s, v) = put(
        admin,
        "/config",
        &first.replace("body = \"one\"", "body = 7"),
        Some("\"v1\""),
    );
    assert_eq!(s, 422, "{v}");
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("[plugins.answer] body"),
        "{v}"
    );
    let (s, _) = put(
        admin,
        "/config",
        &config(port, admin, &origin, "two"),
        Some("\"v0\""),
    );
    assert_eq!(s, 412);
    // a dry run checks and counts, writes nothing
    let (s, v) = put(
        admin,
        "/config?dry_run=1",
        &config(port, admin, &origin, "two"),
        Some("\"v1\""),
    );
    assert_eq!(
        (s, v["valid"].clone(), v["lines_added"].clone()),
        (200, true.into(), 1.into()),
        "{v}"
    );
    assert_eq!(std::fs::read_to_string(&t.config).unwrap(), first);
    assert_eq!(get(port, "h", "/", &[]).text(), "one");
    // written and applied
    let second = config(port, admin, &origin, "two");
    let (s, v) = put(admin, "/config", &second, Some("\"v1\""));
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["written"], true);
    assert_eq!(std::fs::read_to_string(&t.config).unwrap(), second);
    assert!(wait_until(WAIT, || get(port, "h", "/", &[]).text() == "two"));
    assert!(t.stderr().contains("config written through the admin API"));
    assert!(
        t.stderr().contains("by=admin token from 127.0.0.1"),
        "who changed it is logged"
    );
    // the old version is stale now
    let (s, _) = put(admin, "/config", &first, Some("\"v1\""));
    assert_eq!(s, 412);
}

#[test]
fn lua_scripts_are_compiled_before_they_are_saved() {
    let origin = Origin::named("o");
    let (port, admin) = (free_port(), free_port());
    let t = Tidegate::start(&config(port, admin, &origin, "one"), &[port, admin]);
    let auth = format!("Bearer {TOKEN}");
    let check = |script: &str| {
        let r = request(
            admin,
            "POST",
            "admin",
            "/lua/check?name=auth.lua",
            &[("authorization", &auth)],
            script.as_bytes(),
        );
        (
            r.status,
            serde_json::from_slice::<serde_json::Value>(&r.body).unwrap_or_default(),
        )
    };
    let (s, v) = check("local M = {}\nfunction M.on_request(req) end\nreturn M\n");
    assert_eq!(
        (s, v["ok"].clone()),
        (200, true.into()),
        "{v} {}",
        t.stderr()
    );
    let (s, v) = check("local M = {}\nfunction M.on_request(req)\n  if then end\nend\nreturn M\n");
    assert_eq!(s, 422, "{v}");
    assert_eq!(v["line"], 3, "{v}");
    assert!(v["error"].as_str().unwrap().contains("auth.lua:3:"), "{v}");
}
