//! TLS termination through real sockets, the handshake side: certificates by SNI, chains and
//! key types, ALPN and HTTP/2, versions and cipher suites, client certificates, bad
//! handshakes. Certificates come from a throw-away CA made per test (rcgen); clients are
//! rustls (which certificate was served) and curl (real verification, HTTP/2).
//! `tls_ops.rs` has the rest: `check`, the redirect, resumption, hot reload.

mod common;

use common::tls::{cert_table, tls_config, write_pair, Client, Issued, TestCa};
use common::*;
use std::path::Path;
use std::time::Duration;

#[test]
fn sni_picks_exact_then_wildcard_then_default_and_unknown_names_get_unrecognized_name() {
    let ca = TestCa::new("sni CA");
    let dir = tempfile::tempdir().unwrap();
    let exact = write_pair(dir.path(), "exact", &ca.issue(&["a.test"], 90, 11));
    let wild = write_pair(dir.path(), "wild", &ca.issue(&["*.b.test"], 90, 22));
    let fallback = write_pair(
        dir.path(),
        "fallback",
        &ca.issue(&["fallback.test"], 90, 33),
    );
    // an exact name under the wildcard's domain beats the wildcard
    let under = write_pair(dir.path(), "under", &ca.issue(&["x.b.test"], 90, 44));
    let origin = Origin::named("origin");
    let port = free_port();
    let tables = [
        cert_table("exact", &exact, &["a.test"], false),
        cert_table("wild", &wild, &["*.b.test"], false),
        cert_table("under", &under, &["x.b.test"], false),
        cert_table("fallback", &fallback, &[], true),
    ]
    .join("\n");
    let t = Tidegate::start(&tls_config(port, origin.port(), "", &tables), &[port]);
    let c = Client::new();
    assert_eq!(c.served_serial(port, Some("a.test")).unwrap(), 11);
    assert_eq!(
        c.served_serial(port, Some("A.Test")).unwrap(),
        11,
        "names are case-blind"
    );
    assert_eq!(c.served_serial(port, Some("y.b.test")).unwrap(), 22);
    assert_eq!(c.served_serial(port, Some("x.b.test")).unwrap(), 44);
    assert_eq!(
        c.served_serial(port, Some("deep.y.b.test")).unwrap(),
        33,
        "one label only"
    );
    assert_eq!(c.served_serial(port, Some("other.test")).unwrap(), 33);
    assert_eq!(
        c.served_serial(port, None).unwrap(),
        33,
        "no SNI: the default"
    );
    // and the request is served over it, as https
    let mut s = c.connect(port, Some("y.b.test")).unwrap();
    let r = tls::request(&mut s, "y.b.test", "/hello").unwrap();
    assert_eq!((r.status, r.text().as_str()), (200, "origin"));
    let seen = origin.requests();
    let last = seen.last().unwrap();
    assert_eq!(last.header("x-scheme"), Some("https"));
    assert_eq!(last.header("x-forwarded-proto"), Some("https"));
    assert_eq!(last.header("x-sni"), Some("y.b.test"));
    // an HTTP/1.0 request, which the own loop hands to Pingora's path mid-connection, still
    // knows its TLS session there
    let mut s = c.connect(port, Some("y.b.test")).unwrap();
    use std::io::{Read, Write};
    s.write_all(b"GET /old HTTP/1.0\r\nHost: y.b.test\r\n\r\n")
        .unwrap();
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    assert!(
        answer.starts_with(b"HTTP/1."),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    let last = origin.requests().into_iter().last().unwrap();
    assert_eq!(last.path, "/old");
    assert_eq!(last.header("x-scheme"), Some("https"));
    assert_eq!(last.header("x-sni"), Some("y.b.test"));
    drop(t);

    // without a default, an unknown name is refused with unrecognized_name
    let port = free_port();
    let tables = [cert_table("exact", &exact, &["a.test"], false)].join("\n");
    let _t = Tidegate::start(&tls_config(port, origin.port(), "", &tables), &[port]);
    match c.connect(port, Some("nope.test")) {
        Err(rustls::Error::AlertReceived(a)) => {
            assert_eq!(a, rustls::AlertDescription::UnrecognisedName)
        }
        other => panic!("expected unrecognized_name, got {:?}", other.map(|_| ())),
    }
    match c.connect(port, None) {
        Err(rustls::Error::AlertReceived(a)) => {
            assert_eq!(a, rustls::AlertDescription::UnrecognisedName)
        }
        other => panic!("expected unrecognized_name, got {:?}", other.map(|_| ())),
    }
    assert_eq!(c.served_serial(port, Some("a.test")).unwrap(), 11);
}

#[test]
fn a_chain_is_served_whole_and_rsa_and_ecdsa_keys_both_work() {
    let root = TestCa::new("root CA");
    let dir = tempfile::tempdir().unwrap();
    // an RSA leaf, and an ECDSA leaf whose file holds the leaf then the CA (a chain)
    let rsa = root.issue_with(&["rsa.test"], 90, 5, common::tls::rsa_key());
    let rsa_files = write_pair(dir.path(), "rsa", &rsa);
    let ec = root.issue(&["ec.test"], 90, 6);
    let chained = Issued {
        cert_pem: format!("{}{}", ec.cert_pem, root.pem),
        key_pem: ec.key_pem.clone(),
        serial: 6,
    };
    let ec_files = write_pair(dir.path(), "ec", &chained);
    let origin = Origin::named("o");
    let port = free_port();
    let tables = cert_table("rsa", &rsa_files, &["rsa.test"], false)
        + &cert_table("ec", &ec_files, &["ec.test"], false);
    let _t = Tidegate::start(&tls_config(port, origin.port(), "", &tables), &[port]);
    let c = Client::new();
    assert_eq!(c.served_serial(port, Some("rsa.test")).unwrap(), 5);
    assert_eq!(*c.recorder.chain_len.lock().unwrap(), 1);
    assert_eq!(c.served_serial(port, Some("ec.test")).unwrap(), 6);
    assert_eq!(
        *c.recorder.chain_len.lock().unwrap(),
        2,
        "the chain in the file is sent whole"
    );
    // TLS 1.2 with an RSA key (an ECDHE_RSA suite) too
    let c12 = Client::build(&[&rustls::version::TLS12], None, &[b"http/1.1"]);
    let mut s = c12.connect(port, Some("rsa.test")).unwrap();
    assert_eq!(
        s.conn.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_2)
    );
    assert_eq!(tls::request(&mut s, "rsa.test", "/").unwrap().status, 200);
}
/// `curl` against the TLS listener, verifying with `ca`; (HTTP version, body).
fn curl(port: u16, name: &str, ca: &Path, args: &[&str]) -> (String, String) {
    let out = std::process::Command::new("curl")
        .args(["-sS", "--max-time", "10", "--cacert"])
        .arg(ca)
        .arg("--resolve")
        .arg(format!("{name}:{port}:127.0.0.1"))
        .args(["-w", "\n%{http_version}"])
        .args(args)
        .arg(format!("https://{name}:{port}/x"))
        .output()
        .expect("curl");
    assert!(
        out.status.success(),
        "curl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, version) = text.rsplit_once('\n').unwrap_or((&text, ""));
    (version.to_string(), body.to_string())
}

#[test]
fn alpn_gives_h2_when_http2_is_on_and_http11_otherwise_verified_by_curl() {
    let ca = TestCa::new("alpn CA");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ca.pem"), &ca.pem).unwrap();
    let files = write_pair(dir.path(), "site", &ca.issue(&["site.test"], 90, 7));
    let origin = Origin::named("from-origin");
    let (h2_port, h1_port, pp_port) = (free_port(), free_port(), free_port());
    let tables = cert_table("site", &files, &["site.test"], true);
    let t2 = Tidegate::start(
        &tls_config(h2_port, origin.port(), "http2 = true", &tables),
        &[h2_port],
    );
    let _t1 = Tidegate::start(&tls_config(h1_port, origin.port(), "", &tables), &[h1_port]);
    // HTTP/1 over TLS through Pingora's engine too (the session found by its connection)
    let _tp = Tidegate::start(
        &tls_config(pp_port, origin.port(), "engine = \"pingora\"", &tables),
        &[pp_port],
    );
    let ca_file = dir.path().join("ca.pem");
    assert_eq!(
        curl(h2_port, "site.test", &ca_file, &["--http2"]),
        ("2".to_string(), "from-origin".to_string())
    );
    assert_eq!(
        curl(h2_port, "site.test", &ca_file, &["--http1.1"]),
        ("1.1".to_string(), "from-origin".to_string())
    );
    assert_eq!(
        curl(h1_port, "site.test", &ca_file, &["--http2"]).0,
        "1.1",
        "no h2 in ALPN without http2 = true"
    );
    assert_eq!(
        curl(pp_port, "site.test", &ca_file, &["--http1.1"]),
        ("1.1".to_string(), "from-origin".to_string())
    );
    assert_eq!(origin.count(), 4);
    assert!(origin
        .requests()
        .iter()
        .all(|r| r.header("x-forwarded-proto") == Some("https")));
    // the access log of the h2 server says TLS, the SNI and https for both requests
    let ok = wait_until(WAIT, || {
        t2.stdout()
            .lines()
            .filter(|l| l.starts_with("TLSv1_3 site.test . https 200"))
            .count()
            == 2
    });
    assert!(ok, "access log:\n{}", t2.stdout());
}
#[test]
fn tls_versions_old_ones_refused_and_min_version_13_enforced() {
    let ca = TestCa::new("version CA");
    let dir = tempfile::tempdir().unwrap();
    let files = write_pair(dir.path(), "v", &ca.issue(&["v.test"], 90, 8));
    let origin = Origin::named("o");
    let (p12, p13) = (free_port(), free_port());
    let tables = cert_table("v", &files, &["v.test"], true);
    let _a = Tidegate::start(&tls_config(p12, origin.port(), "", &tables), &[p12]);
    let _b = Tidegate::start(
        &tls_config(p13, origin.port(), "tls_min_version = \"1.3\"", &tables),
        &[p13],
    );
    let only12 = Client::build(&[&rustls::version::TLS12], None, &[b"http/1.1"]);
    assert!(
        only12.connect(p12, Some("v.test")).is_ok(),
        "1.2 by default"
    );
    assert!(
        only12.connect(p13, Some("v.test")).is_err(),
        "tls_min_version = 1.3 refuses a TLS 1.2 client"
    );
    assert!(Client::new().connect(p13, Some("v.test")).is_ok());
    // TLS 1.1 (openssl's client, allowed to offer it) is refused
    let out = std::process::Command::new("openssl")
        .args([
            "s_client",
            "-tls1_1",
            "-cipher",
            "DEFAULT@SECLEVEL=0",
            "-servername",
            "v.test",
        ])
        .arg("-connect")
        .arg(format!("127.0.0.1:{p12}"))
        .stdin(std::process::Stdio::null())
        .output()
        .expect("openssl s_client");
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "TLS 1.1 was accepted:\n{text}");
    assert!(
        text.contains("Cipher is (NONE)") && text.contains("alert handshake failure"),
        "{text}"
    );
}
#[test]
fn client_certificates_are_required_and_verified_and_their_subject_reaches_the_upstream() {
    let ca = TestCa::new("server CA");
    let clients = TestCa::new("clients CA");
    let stranger = TestCa::new("other CA");
    let dir = tempfile::tempdir().unwrap();
    let files = write_pair(dir.path(), "s", &ca.issue(&["mtls.test"], 90, 1));
    std::fs::write(dir.path().join("clients.pem"), &clients.pem).unwrap();
    let origin = Origin::named("o");
    let port = free_port();
    let extra = format!(
        "client_ca = \"{}\"",
        dir.path().join("clients.pem").display()
    );
    let tables = cert_table("s", &files, &["mtls.test"], true);
    let t = Tidegate::start(&tls_config(port, origin.port(), &extra, &tables), &[port]);

    let alpn: &[&[u8]] = &[b"http/1.1"];
    let v13: &[&'static rustls::SupportedProtocolVersion] = &[&rustls::version::TLS13];
    // a certificate from the right CA: served, and its subject is a variable
    let good = clients.issue(&["alice"], 30, 100);
    let c = Client::build(v13, Some(&good), alpn);
    let mut s = c.connect(port, Some("mtls.test")).unwrap();
    let r = tls::request(&mut s, "mtls.test", "/").unwrap();
    assert_eq!(r.status, 200);
    let seen = origin.requests();
    assert_eq!(seen.last().unwrap().header("x-client"), Some("CN=alice"));

    // none, or one from another CA: no request gets through (TLS 1.3 reports the refusal
    // at the first read, after the client's handshake is done)
    let before = origin.count();
    for cert in [None, Some(stranger.issue(&["mallory"], 30, 101))] {
        let c = Client::build(v13, cert.as_ref(), alpn);
        let refused = match c.connect(port, Some("mtls.test")) {
            Err(_) => true,
            Ok(mut s) => tls::request(&mut s, "mtls.test", "/").is_err(),
        };
        assert!(refused, "a client without a valid certificate was served");
    }
    assert_eq!(origin.count(), before);
    drop(t);
}
#[test]
fn garbage_and_stalled_handshakes_are_closed_quietly() {
    let ca = TestCa::new("bad CA");
    let dir = tempfile::tempdir().unwrap();
    let files = write_pair(dir.path(), "b", &ca.issue(&["b.test"], 90, 1));
    let origin = Origin::named("o");
    let port = free_port();
    let tables = cert_table("b", &files, &["b.test"], true);
    let t = Tidegate::start(
        &tls_config(port, origin.port(), "header_timeout = \"1s\"", &tables),
        &[port],
    );
    use std::io::{Read, Write};
    // plain HTTP (or any garbage) instead of a ClientHello: closed, a few times over
    for _ in 0..50 {
        let mut s = connect(port);
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let _ = s.write_all(b"GET / HTTP/1.1\r\nHost: b.test\r\n\r\n");
        let mut buf = Vec::new();
        let _ = s.read_to_end(&mut buf);
        assert!(!buf.starts_with(b"HTTP/"), "answered in plain text");
    }
    // half a ClientHello, then nothing: cut at the header timeout
    let mut s = connect(port);
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00])
        .unwrap();
    let mut buf = [0u8; 64];
    // the read times out (an error) only if the server kept the connection open
    match s.read(&mut buf) {
        Ok(0) => {}
        Ok(n) => panic!("the stalled handshake got {n} bytes instead of a close"),
        Err(e) => panic!("not cut by the 1 s header timeout within 10 s: {e}"),
    }
    // the server still serves, and logged nothing for all that at info level
    assert!(Client::new().connect(port, Some("b.test")).is_ok());
    let noisy = t
        .stderr()
        .lines()
        .filter(|l| l.contains("handshake") || l.contains("TLS"))
        .count();
    assert_eq!(noisy, 0, "{}", t.stderr());
}

#[test]
fn tls_ciphers_pins_the_suites_and_an_unknown_name_is_a_config_error() {
    let ca = TestCa::new("cipher CA");
    let dir = tempfile::tempdir().unwrap();
    let files = write_pair(dir.path(), "c", &ca.issue(&["c.test"], 90, 1));
    let origin = Origin::named("o");
    let port = free_port();
    let tables = cert_table("c", &files, &["c.test"], true);
    let pinned = "tls_ciphers = [\"TLS13_CHACHA20_POLY1305_SHA256\"]";
    let _t = Tidegate::start(&tls_config(port, origin.port(), pinned, &tables), &[port]);
    // rustls's client prefers AES-GCM; the server's pin wins
    let s = Client::new().connect(port, Some("c.test")).unwrap();
    let suite = s.conn.negotiated_cipher_suite().unwrap().suite();
    assert_eq!(suite, rustls::CipherSuite::TLS13_CHACHA20_POLY1305_SHA256);
    let unpinned = free_port();
    let _u = Tidegate::start(
        &tls_config(unpinned, origin.port(), "", &tables),
        &[unpinned],
    );
    let s = Client::new().connect(unpinned, Some("c.test")).unwrap();
    assert_ne!(
        s.conn.negotiated_cipher_suite().unwrap().suite(),
        rustls::CipherSuite::TLS13_CHACHA20_POLY1305_SHA256
    );
    // a name rustls does not have, and 1.3 only without a 1.3 suite
    let path = dir.path().join("bad.toml");
    for (extra, want) in [
        ("tls_ciphers = [\"RC4_MD5\"]", "unknown cipher suite `RC4_MD5`"),
        (
            "tls_min_version = \"1.3\"\ntls_ciphers = [\"TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256\"]",
            "no TLS 1.3 cipher suite",
        ),
    ] {
        std::fs::write(&path, tls_config(free_port(), 9, extra, &tables)).unwrap();
        let (code, out) = run_cli(&["check", "-c", path.to_str().unwrap()], dir.path());
        assert_eq!(code, 1, "{out}");
        assert!(out.contains("[servers.secure] tls_ciphers:") && out.contains(want), "{out}");
    }
}
