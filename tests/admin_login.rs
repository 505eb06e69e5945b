//! The admin's logins (for the web UI): a user with a bcrypt or argon2 hash, a session
//! cookie the page's scripts cannot read, the CSRF token its changes need, failed logins
//! rate-limited, logout; and `check` refusing an admin beyond loopback without credentials.

mod common;
use common::*;

const TOKEN: &str = "an-admin-token-of-some-length";

fn config(port: u16, admin: u16, origin: &Origin, hash: &str) -> String {
    format!(
        "[admin]\naddr = \"127.0.0.1:{admin}\"\ntoken = \"{TOKEN}\"\nuser = \"ada\"\n\
         password_hash = '{hash}'\n\n\
         [servers.main]\naddr = \"127.0.0.1:{port}\"\nlocations = [\"all\"]\n\n\
         [locations.all]\nupstream = \"backend\"\n\n[upstreams.backend]\naddrs = [\"{}\"]\n",
        origin.addr
    )
}

fn login(admin: u16, user: &str, password: &str) -> Response {
    let body = format!("{{\"user\": \"{user}\", \"password\": \"{password}\"}}");
    request(
        admin,
        "POST",
        "admin",
        "/login",
        &[("content-type", "application/json")],
        body.as_bytes(),
    )
}

fn session_cookie(r: &Response) -> String {
    let c = r.header("set-cookie").expect("a session cookie");
    c.split(';').next().unwrap().to_string()
}

#[test]
fn a_user_logs_in_and_changes_need_the_csrf_token() {
    let origin = Origin::named("o");
    let (port, admin) = (free_port(), free_port());
    let hash = bcrypt::hash("correct horse", 4).unwrap();
    let _t = Tidegate::start(&config(port, admin, &origin, &hash), &[port, admin]);

    assert_eq!(login(admin, "ada", "wrong").status, 401);
    assert_eq!(login(admin, "bob", "correct horse").status, 401);
    let r = login(admin, "ada", "correct horse");
    assert_eq!(r.status, 200, "{}", r.text());
    let set = r.header("set-cookie").unwrap().to_string();
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict"),
        "{set}"
    );
    let csrf = serde_json::from_slice::<serde_json::Value>(&r.body).unwrap()["csrf"]
        .as_str()
        .unwrap()
        .to_string();
    let cookie = session_cookie(&r);

    // reads with the cookie alone
    let with = [("cookie", cookie.as_str())];
    assert_eq!(
        request(admin, "GET", "admin", "/status", &with, b"").status,
        200
    );
    let s = request(admin, "GET", "admin", "/session", &with, b"");
    assert!(s.text().contains(&csrf));
    // a change without the CSRF token: refused (a cross-site form post looks like this)
    let form = [
        ("cookie", cookie.as_str()),
        ("content-type", "application/x-www-form-urlencoded"),
    ];
    assert_eq!(
        request(admin, "POST", "admin", "/reload", &form, b"x=1").status,
        403
    );
    let loc = br#"{"path": "/x", "upstream": "backend"}"#;
    assert_eq!(
        request(
            admin,
            "PUT",
            "admin",
            "/config/locations/x?dry_run=1",
            &with,
            loc
        )
        .status,
        403
    );
    let wrong = [("cookie", cookie.as_str()), ("x-csrf-token", "0000")];
    assert_eq!(
        request(admin, "POST", "admin", "/reload", &wrong, b"").status,
        403
    );
    // with it: done
    let good = [("cookie", cookie.as_str()), ("x-csrf-token", csrf.as_str())];
    let r = request(
        admin,
        "PUT",
        "admin",
        "/config/locations/x?dry_run=1",
        &good,
        loc,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    // the token needs no cookie and no CSRF token
    let bearer = format!("Bearer {TOKEN}");
    let api = [("authorization", bearer.as_str())];
    assert_eq!(
        request(admin, "POST", "admin", "/reload", &api, b"").status,
        200
    );
    // nothing at all: 401
    assert_eq!(
        request(admin, "GET", "admin", "/status", &[], b"").status,
        401
    );

    // logout: the cookie is worth nothing after
    let r = request(admin, "POST", "admin", "/logout", &with, b"");
    assert!(r.header("set-cookie").unwrap().contains("Max-Age=0"));
    assert_eq!(
        request(admin, "GET", "admin", "/status", &with, b"").status,
        401
    );
}

#[test]
fn failed_logins_are_rate_limited_and_argon2_hashes_work() {
    use argon2::PasswordHasher;
    let origin = Origin::named("o");
    let (port, admin) = (free_port(), free_port());
    let hash = argon2::Argon2::default()
        .hash_password(b"s3cret pass")
        .unwrap()
        .to_string();
    let _t = Tidegate::start(&config(port, admin, &origin, &hash), &[port, admin]);
    assert_eq!(login(admin, "ada", "s3cret pass").status, 200);
    for _ in 0..5 {
        assert_eq!(login(admin, "ada", "guess").status, 401);
    }
    let r = login(admin, "ada", "s3cret pass");
    assert_eq!(r.status, 429, "even the right password waits: {}", r.text());
    assert!(r
        .header("retry-after")
        .is_some_and(|s| s.parse::<u64>().is_ok()));
}

#[test]
fn check_refuses_an_open_admin_beyond_loopback_and_bad_hashes() {
    let dir = tempfile::tempdir().unwrap();
    let base = "[servers.main]\naddr = \"127.0.0.1:1\"\nlocations = []\n";
    let hash = bcrypt::hash("pw", 4).unwrap();
    for (admin, message) in [
        (
            format!("[admin]\naddr = \"0.0.0.0:6189\"\ntoken = \"{TOKEN}\"\n"),
            "reachable beyond this host",
        ),
        (
            format!("[admin]\naddr = \"0.0.0.0:6189\"\nuser = \"ada\"\npassword_hash = '{hash}'\n"),
            "reachable beyond this host",
        ),
        (
            "[admin]\naddr = \"127.0.0.1:6189\"\nuser = \"ada\"\npassword_hash = \"plain\"\n"
                .to_string(),
            "not a bcrypt",
        ),
        (
            "[admin]\naddr = \"127.0.0.1:6189\"\nuser = \"ada\"\n".to_string(),
            "go together",
        ),
    ] {
        std::fs::write(dir.path().join("t.toml"), format!("{admin}\n{base}")).unwrap();
        let (code, out) = run_cli(&["check", "-c", "t.toml"], dir.path());
        assert_ne!(code, 0, "{admin}");
        assert!(
            out.contains(message),
            "{admin}: wanted `{message}` in {out}"
        );
    }
    let ok = format!(
        "[admin]\naddr = \"0.0.0.0:6189\"\ntoken = \"{TOKEN}\"\nuser = \"ada\"\npassword_hash = '{hash}'\n\n{base}"
    );
    std::fs::write(dir.path().join("t.toml"), ok).unwrap();
    let (code, out) = run_cli(&["check", "-c", "t.toml"], dir.path());
    assert_eq!((code, out.trim()), (0, "ok"));
}

#[test]
fn the_admin_speaks_tls_with_the_servers_certificates_and_secure_cookies() {
    use common::tls::{cert_table, write_pair, Client, TestCa};
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("admin test CA");
    let issued = ca.issue(&["admin.test"], 30, 4242);
    let files = write_pair(dir.path(), "admin", &issued);
    let origin = Origin::named("o");
    let (port, admin) = (free_port(), free_port());
    let hash = bcrypt::hash("pw-for-tls", 4).unwrap();
    let cfg = config(port, admin, &origin, &hash).replacen(
        &format!("password_hash = '{hash}'\n"),
        &format!("password_hash = '{hash}'\ntls = true\n"),
        1,
    ) + "\n"
        + &cert_table("site", &files, &["admin.test"], true);
    let t = Tidegate::start(&cfg, &[port, admin]);
    let client = Client::new();
    assert_eq!(
        client.served_serial(admin, Some("admin.test")).unwrap(),
        4242
    );
    let mut s = client.connect(admin, Some("admin.test")).unwrap();
    let body = br#"{"user": "ada", "password": "pw-for-tls"}"#;
    let req = format!(
        "POST /login HTTP/1.1\r\nHost: admin.test\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let mut raw = req.into_bytes();
    raw.extend_from_slice(body);
    use std::io::Write;
    s.write_all(&raw).unwrap();
    s.flush().unwrap();
    let mut reader = std::io::BufReader::new(s);
    let r = common::read_response(&mut reader, false).unwrap();
    assert_eq!(r.status, 200, "{}", t.stderr());
    let cookie = r.header("set-cookie").unwrap();
    assert!(cookie.contains("; Secure"), "{cookie}");
    // plain HTTP on the admin port, even with the token, gets no HTTP answer
    use std::io::Read;
    let mut tcp = std::net::TcpStream::connect(("127.0.0.1", admin)).unwrap();
    tcp.set_read_timeout(Some(WAIT)).unwrap();
    write!(
        tcp,
        "GET /status HTTP/1.1\r\nHost: admin\r\nAuthorization: Bearer {TOKEN}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut got = Vec::new();
    let _ = tcp.read_to_end(&mut got);
    assert!(
        !got.starts_with(b"HTTP/"),
        "plain HTTP answered: {}",
        String::from_utf8_lossy(&got)
    );
}
