//! TLS termination through real sockets, the operations side: `check`'s certificate errors,
//! the HTTPS redirect, session resumption and `req.tls`, certificates reloaded under load.
//! `tls.rs` has the handshake side.

mod common;

use common::tls::{cert_table, tls_config, write_pair, Client, TestCa};
use common::*;
use std::time::Duration;

#[test]
fn check_names_the_certificate_table_and_key_for_each_problem() {
    let ca = TestCa::new("check CA");
    let dir = tempfile::tempdir().unwrap();
    let good = write_pair(dir.path(), "good", &ca.issue(&["good.test"], 90, 1));
    let other = write_pair(dir.path(), "other", &ca.issue(&["other.test"], 90, 2));
    let expired = write_pair(dir.path(), "expired", &ca.issue(&["old.test"], -2, 3));
    let soon = write_pair(dir.path(), "soon", &ca.issue(&["soon.test"], 5, 4));
    let conf = |tables: &str| {
        let path = dir.path().join("t.toml");
        std::fs::write(&path, tls_config(free_port(), 9, "", tables)).unwrap();
        run_cli(&["check", "-c", path.to_str().unwrap()], dir.path())
    };
    // the key of another certificate
    let mismatched = (good.0.clone(), other.1.clone());
    let (code, out) = conf(&cert_table("mixed", &mismatched, &["good.test"], true));
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("[certificates.mixed] key:")
            && out.contains("is not the key of the certificate"),
        "{out}"
    );
    // with the file and the line of the `key` it names
    let text = std::fs::read_to_string(dir.path().join("t.toml")).unwrap();
    let line = text.lines().position(|l| l.starts_with("key = ")).unwrap() + 1;
    assert!(
        out.contains(&format!("t.toml:{line}: [certificates.mixed] key:")),
        "{out}"
    );
    // expired
    let (code, out) = conf(&cert_table("old", &expired, &["old.test"], true));
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("[certificates.old] cert:") && out.contains("expired on"),
        "{out}"
    );
    // expiring soon: a warning, still ok
    let (code, out) = conf(&cert_table("soon", &soon, &["soon.test"], true));
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("warning:")
            && out.contains("[certificates.soon] cert:")
            && out.contains("day(s)"),
        "{out}"
    );
    // unreadable file
    let missing = (dir.path().join("missing.pem"), good.1.clone());
    let (code, out) = conf(&cert_table("gone", &missing, &["good.test"], true));
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("[certificates.gone] cert:") && out.contains("cannot read"),
        "{out}"
    );
    // two certificates for one exact name
    let (code, out) = conf(
        &(cert_table("one", &good, &["good.test"], true)
            + &cert_table("two", &good, &["good.test"], false)),
    );
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("[certificates.two] domains:")
            && out.contains("also claimed by [certificates.one]"),
        "{out}"
    );
    // a TLS server with no certificate at all
    let (code, out) = conf("");
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("[servers.secure] tls:") && out.contains("needs at least one [certificates"),
        "{out}"
    );
    // a domain the certificate does not cover: a warning
    let (code, out) = conf(&cert_table("wrong", &good, &["elsewhere.test"], true));
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("warning:") && out.contains("`elsewhere.test` is not among the names"),
        "{out}"
    );
    // inline PEM works as well as a file
    let issued = ca.issue(&["inline.test"], 90, 9);
    let inline = format!(
        "[certificates.inline]\ncert = '''\n{}'''\nkey = '''\n{}'''\ndefault = true\n",
        issued.cert_pem, issued.key_pem
    );
    let (code, out) = conf(&inline);
    assert_eq!(code, 0, "{out}");
}
#[test]
fn plain_http_redirects_to_https_except_acme_challenges() {
    let origin = Origin::named("plain-origin");
    let (plain, only_loc) = (free_port(), free_port());
    let config = format!(
        r#"
[servers.plain]
addr = "127.0.0.1:{plain}"
locations = ["all"]
https_redirect = true
https_port = 8443
https_redirect_status = 301

[servers.some]
addr = "127.0.0.1:{only_loc}"
locations = ["secure", "open"]

[locations.all]
upstream = "backend"

[locations.secure]
path = "/account"
upstream = "backend"
https_redirect = true

[locations.open]
upstream = "backend"

[upstreams.backend]
addrs = ["127.0.0.1:{}"]
"#,
        origin.port()
    );
    let _t = Tidegate::start(&config, &[plain, only_loc]);
    let r = get(plain, "Shop.Test", "/cart?item=1", &[]);
    assert_eq!(r.status, 301, "GET gets the chosen 301");
    assert_eq!(
        r.header("location"),
        Some("https://shop.test:8443/cart?item=1")
    );
    let r = send(
        plain,
        b"POST /cart HTTP/1.1\r\nHost: shop.test\r\nContent-Length: 2\r\n\r\nab",
    )
    .unwrap();
    assert_eq!(
        r.status, 308,
        "other methods always 308 (the method is kept)"
    );
    // the ACME challenge path is proxied, not redirected
    let r = get(
        plain,
        "shop.test",
        "/.well-known/acme-challenge/token1",
        &[],
    );
    assert_eq!((r.status, r.text().as_str()), (200, "plain-origin"));
    // a Host that is not a host name is not turned into a redirect target
    let r = get(plain, "evil.test/@x", "/", &[]);
    assert_ne!(r.status, 301);
    // per location: only /account, to the default port 443 (left out of the URL), 308
    let r = get(only_loc, "shop.test", "/account/me", &[]);
    assert_eq!(r.status, 308);
    assert_eq!(r.header("location"), Some("https://shop.test/account/me"));
    let r = get(only_loc, "shop.test", "/other", &[]);
    assert_eq!((r.status, r.text().as_str()), (200, "plain-origin"));
    assert_eq!(
        origin
            .requests()
            .iter()
            .filter(|r| r.path.starts_with("/account"))
            .count(),
        0
    );
}
#[test]
fn sessions_resume_and_lua_sees_the_tls_session() {
    let ca = TestCa::new("resume CA");
    let dir = tempfile::tempdir().unwrap();
    let files = write_pair(dir.path(), "r", &ca.issue(&["r.test"], 90, 1));
    let port = free_port();
    let config = format!(
        r#"
[servers.secure]
addr = "127.0.0.1:{port}"
locations = ["lua"]
tls = true
http2 = true
access_log = "{{tls_version}} {{tls_cipher}} {{tls_sni}} {{tls_resumed}}"

[locations.lua]
plugins = ["show"]

[plugins.show]
category = "lua"
source = '''
return {{ on_request = function(req)
  local t = req.tls
  return req:respond(200, string.format("%s %s %s %s %s", req.scheme, t.version, t.sni, tostring(t.resumed), t.alpn))
end }}
'''

{}
"#,
        cert_table("r", &files, &["r.test"], true)
    );
    let t = Tidegate::start(&config, &[port]);
    let c = Client::new();
    let mut s = c.connect(port, Some("r.test")).unwrap();
    let r = tls::request(&mut s, "r.test", "/").unwrap();
    assert_eq!(r.text(), "https TLSv1_3 r.test false http/1.1");
    // the ticket of the first session is read with the response; a new connection from the
    // same client resumes
    drop(s);
    let mut s = c.connect(port, Some("r.test")).unwrap();
    assert_eq!(
        s.conn.handshake_kind(),
        Some(rustls::HandshakeKind::Resumed),
        "the second connection resumed"
    );
    let r = tls::request(&mut s, "r.test", "/").unwrap();
    assert_eq!(r.text(), "https TLSv1_3 r.test true http/1.1");
    let ok = wait_until(WAIT, || {
        t.stdout()
            .contains("TLSv1_3 TLS13_AES_256_GCM_SHA384 r.test r")
    });
    assert!(ok, "access log:\n{}", t.stdout());
    assert!(t
        .stdout()
        .contains("TLSv1_3 TLS13_AES_256_GCM_SHA384 r.test ."));
    // the ticket keys and session cache outlive a reload: the client still resumes after one
    // (its ticket from before the reload is the one it presents)
    drop(s);
    std::fs::write(&t.config, format!("{config}\n# touched\n")).unwrap();
    assert!(
        wait_until(WAIT, || t.stderr().contains("config applied")),
        "{}",
        t.stderr()
    );
    let s = c.connect(port, Some("r.test")).unwrap();
    assert_eq!(
        s.conn.handshake_kind(),
        Some(rustls::HandshakeKind::Resumed),
        "no resumption after a reload"
    );
}

#[test]
fn a_new_certificate_is_served_without_dropping_keepalive_requests_and_a_broken_one_is_refused() {
    let ca = TestCa::new("reload CA");
    let dir = tempfile::tempdir().unwrap();
    let files = write_pair(dir.path(), "live", &ca.issue(&["live.test"], 90, 1));
    let origin = Origin::named("o");
    let port = free_port();
    let tables = cert_table("live", &files, &["live.test"], true);
    let t = Tidegate::start(&tls_config(port, origin.port(), "", &tables), &[port]);
    let c = Client::new();
    assert_eq!(c.served_serial(port, Some("live.test")).unwrap(), 1);

    // two keep-alive clients send requests while the certificate changes
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let workers: Vec<_> = (0..2)
        .map(|_| {
            let (c, stop) = (c.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut s = c.connect(port, Some("live.test")).unwrap();
                let (mut ok, mut failed) = (0, 0);
                let until = std::time::Instant::now() + Duration::from_secs(30);
                while !stop.load(std::sync::atomic::Ordering::Relaxed)
                    && ok < 20_000
                    && std::time::Instant::now() < until
                {
                    match tls::request(&mut s, "live.test", "/") {
                        Ok(r) if r.status == 200 => ok += 1,
                        _ => failed += 1,
                    }
                }
                (ok, failed)
            })
        })
        .collect();
    let renewed = ca.issue(&["live.test"], 90, 2);
    std::fs::write(&files.1, &renewed.key_pem).unwrap();
    std::fs::write(&files.0, &renewed.cert_pem).unwrap();
    let ok = wait_until(WAIT, || {
        c.served_serial(port, Some("live.test")).ok() == Some(2)
    });
    assert!(ok, "the renewed certificate is not served:\n{}", t.stderr());

    // a broken pair (the key of another certificate) is rejected; the last good one serves on
    let other = ca.issue(&["live.test"], 90, 3);
    std::fs::write(&files.1, &other.key_pem).unwrap();
    let rejected = wait_until(WAIT, || {
        t.stderr().contains("is not the key of the certificate")
    });
    assert!(rejected, "{}", t.stderr());
    assert_eq!(c.served_serial(port, Some("live.test")).unwrap(), 2);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for w in workers {
        let (ok, failed) = w.join().unwrap();
        assert!(ok > 0, "no request made it");
        assert_eq!(
            failed,
            0,
            "{failed} of {} keep-alive requests failed",
            ok + failed
        );
    }
}
