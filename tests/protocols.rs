//! Protocols: h2c from clients, WebSocket upgrade, gRPC over h2c to an h2 upstream, and TLS to
//! the upstream with SNI and certificate verification.

mod common;
use bytes::Bytes;
use common::*;
use std::io::{BufRead, Read, Write};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// An h2c origin: answers `echo:{path}:{body}`; gRPC requests also get trailers.
async fn h2_origin() -> SocketAddr {
    let l = fresh_tokio_listener();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            tokio::spawn(async move {
                let Ok(mut conn) = h2::server::handshake(s).await else {
                    return;
                };
                while let Some(Ok((req, mut respond))) = conn.accept().await {
                    tokio::spawn(async move {
                        let grpc = req
                            .headers()
                            .get("content-type")
                            .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"));
                        let path = req.uri().path().to_string();
                        let mut body = req.into_body();
                        let mut got = Vec::new();
                        while let Some(Ok(chunk)) = body.data().await {
                            let _ = body.flow_control().release_capacity(chunk.len());
                            got.extend_from_slice(&chunk);
                        }
                        let mut resp = http::Response::builder().status(200);
                        if grpc {
                            resp = resp.header("content-type", "application/grpc");
                        }
                        let Ok(mut stream) = respond.send_response(resp.body(()).unwrap(), false)
                        else {
                            return;
                        };
                        let mut out = format!("echo:{path}:").into_bytes();
                        out.extend_from_slice(&got);
                        if grpc {
                            let _ = stream.send_data(Bytes::from(out), false);
                            let mut trailers = http::HeaderMap::new();
                            trailers.insert("grpc-status", "0".parse().unwrap());
                            trailers.insert("grpc-message", "fine".parse().unwrap());
                            let _ = stream.send_trailers(trailers);
                        } else {
                            let _ = stream.send_data(Bytes::from(out), true);
                        }
                    });
                }
            });
        }
    });
    addr
}

/// A tokio listener on a port no tidegate of this test process was given.
fn fresh_tokio_listener() -> tokio::net::TcpListener {
    let l = bind_fresh();
    l.set_nonblocking(true).unwrap();
    tokio::net::TcpListener::from_std(l).unwrap()
}

/// One request over h2c prior knowledge to 127.0.0.1:port, on a connection of its own.
async fn h2_request(port: u16, req: http::Request<()>, body: &[u8]) -> h2c::H2Answer {
    let client = h2c::connect(port).await;
    h2c::request(&client, req, body).await
}

#[test]
fn h2c_clients_and_an_h2c_upstream_with_grpc_trailers() {
    let rt = rt();
    let origin = rt.block_on(h2_origin());
    let port = free_port();
    let cfg = format!(
        r#"
[servers.main]
addr = "127.0.0.1:{port}"
http2 = true
locations = ["all"]
[locations.all]
upstream = "grpc"
[upstreams.grpc]
addrs = ["{origin}"]
alpn = "h2"
"#
    );
    let _t = Tidegate::start(&cfg, &[port]);
    rt.block_on(async {
        // plain h2c request
        let req = http::Request::get(format!("http://h:{port}/hello"))
            .body(())
            .unwrap();
        let a = h2_request(port, req, b"").await;
        assert_eq!(a.status, 200);
        assert_eq!(String::from_utf8_lossy(&a.body), "echo:/hello:");

        // gRPC: POST with a framed message, trailers come back
        let msg = [0u8, 0, 0, 0, 3, b'a', b'b', b'c'];
        let req = http::Request::post(format!("http://h:{port}/pkg.Echo/Say"))
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(())
            .unwrap();
        let a = h2_request(port, req, &msg).await;
        assert_eq!(a.status, 200);
        assert_eq!(a.headers.get("content-type").unwrap(), "application/grpc");
        let mut want = b"echo:/pkg.Echo/Say:".to_vec();
        want.extend_from_slice(&msg);
        assert_eq!(a.body, want);
        let trailers = a.trailers.expect("grpc trailers");
        assert_eq!(trailers.get("grpc-status").unwrap(), "0");
        assert_eq!(trailers.get("grpc-message").unwrap(), "fine");
    });
    // HTTP/1.1 on the same listener still works
    assert_eq!(get(port, "h", "/h1", &[]).text(), "echo:/h1:");
}

#[test]
fn websocket_upgrade_passes_through() {
    let origin = Origin::start(|r| {
        if r.header("upgrade") == Some("websocket") {
            Action::UpgradeEcho
        } else {
            ok("plain")
        }
    });
    let port = free_port();
    let cfg = simple_config(port, &[origin.addr.to_string()], "", "");
    let _t = Tidegate::start(&cfg, &[port]);
    let s = connect(port);
    (&s).write_all(
        b"GET /chat HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
    )
    .unwrap();
    let mut r = std::io::BufReader::new(s.try_clone().unwrap());
    let mut status = String::new();
    r.read_line(&mut status).unwrap();
    assert!(status.contains(" 101 "), "{status}");
    loop {
        let mut h = String::new();
        r.read_line(&mut h).unwrap();
        if h.trim().is_empty() {
            break;
        }
    }
    for msg in [&b"hello"[..], b"\x81\x05frame", &[0u8, 255, 10, 13][..]] {
        (&s).write_all(msg).unwrap();
        let mut back = vec![0u8; msg.len()];
        r.read_exact(&mut back).unwrap();
        assert_eq!(back, msg);
    }
}

/// A TLS origin signed by a test CA for `backend.test`; answers with the SNI it saw.
struct TlsOrigin {
    addr: SocketAddr,
    ca_pem: String,
    snis: Arc<Mutex<Vec<String>>>,
}

async fn tls_origin() -> TlsOrigin {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "tidegate test CA");
    let ca_key = KeyPair::generate().unwrap();
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["backend.test".to_string()])
        .unwrap()
        .signed_by(&leaf_key, &ca, &ca_key)
        .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![leaf.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into()),
        )
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let l = fresh_tokio_listener();
    let addr = l.local_addr().unwrap();
    let snis = Arc::new(Mutex::new(Vec::new()));
    let seen = snis.clone();
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            let (acceptor, seen) = (acceptor.clone(), seen.clone());
            tokio::spawn(async move {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let Ok(mut tls) = acceptor.accept(s).await else {
                    return;
                };
                let sni = tls.get_ref().1.server_name().unwrap_or("").to_string();
                seen.lock().unwrap().push(sni.clone());
                let mut buf = vec![0u8; 8192];
                let mut got = Vec::new();
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tls.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                    }
                }
                let body = format!("sni={sni}");
                let resp = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = tls.write_all(resp.as_bytes()).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    TlsOrigin {
        addr,
        ca_pem: ca.pem(),
        snis,
    }
}

#[test]
fn tls_upstream_with_sni_and_verification() {
    let rt = rt();
    let origin = rt.block_on(tls_origin());
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, &origin.ca_pem).unwrap();
    let cfg = format!(
        r#"
[servers.main]
addr = "127.0.0.1:{port}"
locations = ["good", "wrong-name", "no-ca", "no-verify"]
[locations.good]
path = "/good"
upstream = "good"
[locations.wrong-name]
path = "/wrong-name"
upstream = "wrong-name"
[locations.no-ca]
path = "/no-ca"
upstream = "no-ca"
[locations.no-verify]
path = "/no-verify"
upstream = "no-verify"
[upstreams.good]
addrs = ["{a}"]
tls = true
sni = "backend.test"
ca_file = "{ca}"
[upstreams.wrong-name]
addrs = ["{a}"]
tls = true
sni = "other.test"
ca_file = "{ca}"
[upstreams.no-ca]
addrs = ["{a}"]
tls = true
sni = "backend.test"
[upstreams.no-verify]
addrs = ["{a}"]
tls = true
sni = "backend.test"
verify_cert = false
"#,
        a = origin.addr,
        ca = ca.display()
    );
    let _t = Tidegate::start(&cfg, &[port]);
    let r = get(port, "h", "/good", &[]);
    assert_eq!((r.status, r.text().as_str()), (200, "sni=backend.test"));
    assert_eq!(
        get(port, "h", "/wrong-name", &[]).status,
        502,
        "hostname must be verified"
    );
    assert_eq!(
        get(port, "h", "/no-ca", &[]).status,
        502,
        "an unknown CA must be refused"
    );
    assert_eq!(get(port, "h", "/no-verify", &[]).status, 200);
    assert!(origin
        .snis
        .lock()
        .unwrap()
        .iter()
        .all(|s| s == "backend.test"));
}

#[test]
fn a_bad_ca_file_is_a_config_error() {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(
        &ca,
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let cfg = format!(
        "[servers.s]\naddr = \"127.0.0.1:1\"\n[upstreams.u]\naddrs = [\"127.0.0.1:2\"]\ntls = true\nca_file = \"{}\"\n",
        ca.display()
    );
    let path = dir.path().join("t.toml");
    std::fs::write(&path, cfg).unwrap();
    let (code, out) = run_cli(&["check", "-c", path.to_str().unwrap()], dir.path());
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("[upstreams.u] ca_file"), "{out}");
}

#[test]
fn one_server_on_several_addresses() {
    let origin = Origin::named("o");
    let (p1, p2) = (free_port(), free_port());
    let cfg = format!(
        "[servers.multi]\naddr = [\"127.0.0.1:{p1}\", \"127.0.0.1:{p2}\"]\nlocations = [\"all\"]\n\
         [locations.all]\nupstream = \"u\"\n[upstreams.u]\naddrs = [\"{}\"]\nalpn = \"h2h1\"\n",
        origin.addr
    );
    let _t = Tidegate::start(&cfg, &[p1, p2]);
    // both listeners serve the same locations; h2h1 to a plaintext HTTP/1.1 origin stays HTTP/1.1
    assert_eq!(get(p1, "h", "/", &[]).text(), "o");
    assert_eq!(get(p2, "h", "/", &[]).text(), "o");
    assert_eq!(origin.count(), 2);
}
