//! The admin API's per-entry writes: read an entry, add and change entries (the proxy serves
//! the change, the file keeps its comments), a bad write refused naming its key with the old
//! config still serving, 412 on a stale ETag, a dry run's diff, a delete, and writes to the
//! file of a config directory and to an etcd key.

mod common;
use common::etcd::Etcd;
use common::*;

const TOKEN: &str = "an-admin-token-of-some-length";

fn head(admin: u16) -> String {
    format!("# the admin API edits this file\n[admin]\naddr = \"127.0.0.1:{admin}\"\ntoken = \"{TOKEN}\"\n\n")
}

fn site(port: u16, origin: &Origin) -> String {
    format!(
        "[servers.main]\naddr = \"127.0.0.1:{port}\"\nlocations = [\"all\"]   # keep this comment\n\n\
         [locations.all]\npath = \"/\"\nupstream = \"backend\"\n\n\
         # the first upstream\n[upstreams.backend]\naddrs = [\"{}\"]\n",
        origin.addr
    )
}

fn call(
    admin: u16,
    method: &str,
    path: &str,
    body: &str,
    if_match: Option<&str>,
) -> (u16, serde_json::Value, Option<String>) {
    let auth = format!("Bearer {TOKEN}");
    let mut headers = vec![("authorization", auth.as_str())];
    if let Some(m) = if_match {
        headers.push(("if-match", m));
    }
    let r = request(admin, method, "admin", path, &headers, body.as_bytes());
    let v = serde_json::from_slice(&r.body).unwrap_or(serde_json::Value::Null);
    (r.status, v, r.header("etag").map(str::to_string))
}

#[test]
fn entries_are_read_written_and_deleted_in_the_file() {
    let (a, b) = (Origin::named("a"), Origin::named("b"));
    let (port, admin) = (free_port(), free_port());
    let t = Tidegate::start(&(head(admin) + &site(port, &a)), &[port, admin]);
    let file = t.config.clone();

    let (code, v, tag) = call(admin, "GET", "/config/locations/all", "", None);
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["keys"]["upstream"], "backend");
    let tag = tag.expect("an ETag");
    let (code, v, _) = call(admin, "GET", "/config/upstreams", "", None);
    assert_eq!(
        (code, v["entries"][0]["name"].as_str()),
        (200, Some("backend"))
    );

    // a new upstream and a location on it: the proxy serves the new route
    let up = format!("{{\"addrs\": [\"{}\"], \"algo\": \"round_robin\"}}", b.addr);
    let (code, v, _) = call(admin, "PUT", "/config/upstreams/second", &up, Some(&tag));
    assert_eq!(code, 200, "{v}");
    assert!(
        v["diff"]
            .as_str()
            .unwrap_or("")
            .contains("+[upstreams.second]"),
        "{v}"
    );
    let loc = r#"{"path": "/two", "upstream": "second"}"#;
    let (code, v, _) = call(admin, "PUT", "/config/locations/two", loc, None);
    assert_eq!(code, 200, "{v}");
    let servers = r#"{"addr": "127.0.0.1:PORT", "locations": ["all", "two"]}"#
        .replace("PORT", &port.to_string());
    let (code, v, _) = call(admin, "PUT", "/config/servers/main", &servers, None);
    assert_eq!(code, 200, "{v}");
    assert!(wait_until(WAIT, || get(port, "h", "/two", &[]).text() == "b"));
    assert_eq!(get(port, "h", "/", &[]).text(), "a");
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains("# the admin API edits this file"), "{text}");
    assert!(
        text.contains("# the first upstream"),
        "comments kept: {text}"
    );
    assert!(text.contains("[locations.two]"), "{text}");
    assert!(
        t.stderr().contains("written through the admin API"),
        "{}",
        t.stderr()
    );
    let (_, v, _) = call(admin, "GET", "/reloads", "", None);
    let applied = v["reloads"]
        .as_array()
        .map_or(0, |r| r.iter().filter(|e| e["applied"] == true).count());
    assert_eq!(applied, 3, "one reload per write: {v}");

    // a stale ETag: 412, nothing written
    let (code, _, _) = call(admin, "PUT", "/config/locations/two", loc, Some(&tag));
    assert_eq!(code, 412);

    // a bad write: 422 naming the key; the file and the proxy stay as they were
    let before = std::fs::read_to_string(&file).unwrap();
    let bad = r#"{"path": "/two", "upstream": "ghost"}"#;
    let (code, v, _) = call(admin, "PUT", "/config/locations/two", bad, None);
    assert_eq!(code, 422, "{v}");
    let err = v["error"].as_str().unwrap_or("");
    assert!(
        err.contains("locations.two") && err.contains("upstream") && err.contains("ghost"),
        "{v}"
    );
    assert_eq!(std::fs::read_to_string(&file).unwrap(), before);
    assert_eq!(get(port, "h", "/two", &[]).text(), "b");

    // a dry run: the diff, nothing written
    let moved = r#"{"path": "/three", "upstream": "second"}"#;
    let (code, v, _) = call(admin, "PUT", "/config/locations/two?dry_run=1", moved, None);
    assert_eq!((code, v["written"].as_bool()), (200, Some(false)), "{v}");
    let d = v["diff"].as_str().unwrap_or("");
    assert!(
        d.contains("-path = \"/two\"") && d.contains("+path = \"/three\""),
        "{d}"
    );
    assert_eq!(std::fs::read_to_string(&file).unwrap(), before);

    // delete: the route goes (first out of the server's list, then the entry)
    let servers =
        r#"{"addr": "127.0.0.1:PORT", "locations": ["all"]}"#.replace("PORT", &port.to_string());
    assert_eq!(
        call(admin, "PUT", "/config/servers/main", &servers, None).0,
        200
    );
    let (code, v, _) = call(admin, "DELETE", "/config/locations/two", "", None);
    assert_eq!(code, 200, "{v}");
    assert!(!std::fs::read_to_string(&file)
        .unwrap()
        .contains("[locations.two]"));
    assert_eq!(
        get(port, "h", "/two", &[]).text(),
        "a",
        "the catch-all serves it now"
    );
    assert_eq!(
        call(admin, "DELETE", "/config/locations/two", "", None).0,
        404
    );
    assert_eq!(call(admin, "GET", "/config/nothing/x", "", None).0, 404);
    assert_eq!(
        call(admin, "PUT", "/config/locations/x", "not json", None).0,
        400
    );
}

#[test]
fn a_directory_gets_the_write_in_the_file_that_holds_the_entry() {
    let (a, b) = (Origin::named("a"), Origin::named("b"));
    let (port, admin) = (free_port(), free_port());
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("conf.d");
    std::fs::create_dir(&conf).unwrap();
    std::fs::write(conf.join("10-admin.toml"), head(admin)).unwrap();
    std::fs::write(conf.join("20-site.toml"), site(port, &a)).unwrap();
    let _t = Tidegate::start_url(conf.to_str().unwrap(), &[port, admin]);
    let up = format!("{{\"addrs\": [\"{}\"]}}", b.addr);
    let (code, v, _) = call(admin, "PUT", "/config/upstreams/backend", &up, None);
    assert_eq!(code, 200, "{v}");
    assert!(
        v["document"]
            .as_str()
            .unwrap_or("")
            .ends_with("20-site.toml"),
        "{v}"
    );
    assert!(wait_until(WAIT, || get(port, "h", "/", &[]).text() == "b"));
    assert_eq!(
        std::fs::read_to_string(conf.join("10-admin.toml")).unwrap(),
        head(admin)
    );
    // a table no file has yet goes to a new file
    let plugin = r#"{"category": "ping"}"#;
    let (code, v, _) = call(admin, "PUT", "/config/plugins/pong", plugin, None);
    assert_eq!(code, 200, "{v}");
    assert!(conf.join("plugins-pong.toml").exists());
    // the whole config of a directory: documents by name, the others kept
    let site_file = conf.join("20-site.toml");
    let docs = serde_json::json!({"documents": [
        {"name": site_file.display().to_string(), "text": site(port, &a)},
    ]});
    let (code, v, _) = call(admin, "PUT", "/config", &docs.to_string(), None);
    assert_eq!(code, 200, "{v}");
    assert!(wait_until(WAIT, || get(port, "h", "/", &[]).text() == "a"));
    assert!(conf.join("plugins-pong.toml").exists(), "the others kept");
    let outside = serde_json::json!({"documents": [{"name": "/etc/passwd", "text": "x"}]});
    assert_eq!(
        call(admin, "PUT", "/config", &outside.to_string(), None).0,
        400
    );
    assert_eq!(call(admin, "PUT", "/config", "[servers.x]", None).0, 400);
}

#[test]
fn an_etcd_source_gets_the_write_in_the_key_that_holds_the_entry() {
    let dir = tempfile::tempdir().unwrap();
    let etcd_port = free_port();
    let etcd = Etcd::start(dir.path(), etcd_port);
    let (a, b) = (Origin::named("a"), Origin::named("b"));
    let (port, admin) = (free_port(), free_port());
    etcd.put("/tg/10-admin.toml", &head(admin));
    etcd.put("/tg/20-site.toml", &site(port, &a));
    let url = format!("etcd://127.0.0.1:{etcd_port}/tg/");
    let _t = Tidegate::start_url(&url, &[port, admin]);
    assert_eq!(get(port, "h", "/", &[]).text(), "a");
    let up = format!("{{\"addrs\": [\"{}\"]}}", b.addr);
    let (code, v, _) = call(admin, "PUT", "/config/upstreams/backend", &up, None);
    assert_eq!(code, 200, "{v}");
    assert!(wait_until(WAIT, || get(port, "h", "/", &[]).text() == "b"));
    let stored = etcd
        .ctl(&["get", "/tg/20-site.toml", "--print-value-only"])
        .unwrap();
    assert!(stored.contains(&b.addr.to_string()), "{stored}");
    assert!(
        stored.contains("# the first upstream"),
        "comments kept: {stored}"
    );
}

/// Every path and method of `docs/admin-openapi.json` exists (none answers 404 or 405).
#[test]
fn the_openapi_file_matches_the_endpoints() {
    let origin = Origin::named("a");
    let (port, admin) = (free_port(), free_port());
    let _t = Tidegate::start(&(head(admin) + &site(port, &origin)), &[port, admin]);
    let spec: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/docs/admin-openapi.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let paths = spec["paths"].as_object().unwrap();
    assert!(paths.len() >= 15);
    for (path, ops) in paths {
        for method in ops.as_object().unwrap().keys() {
            let concrete = path
                .replace("{table}/{name}", "locations/all")
                .replace("{table}", if method == "put" { "lua" } else { "locations" });
            let concrete = match concrete.as_str() {
                "/explain" => "/explain?url=http%3A%2F%2Fh%2F".to_string(),
                _ => format!("{concrete}?dry_run=1"),
            };
            let body: &str = match (path.as_str(), method.as_str()) {
                ("/config", "put") => "[servers.main]\naddr = \"127.0.0.1:1\"\nlocations = []\n",
                ("/config/{table}", "put") => "{}",
                ("/config/{table}/{name}", "put") => "{\"path\": \"/\", \"upstream\": \"backend\"}",
                ("/login", _) => "{\"user\": \"x\", \"password\": \"y\"}",
                _ => "",
            };
            let (code, v, _) = call(admin, &method.to_uppercase(), &concrete, body, None);
            assert!(
                code != 404 && code != 405,
                "{} {concrete}: {code} {v}",
                method.to_uppercase()
            );
        }
    }
}
