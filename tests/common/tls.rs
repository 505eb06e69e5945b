//! TLS for the tests: a throw-away CA that signs server and client certificates, and a
//! rustls client that records the certificate it was served.

use rcgen::{
    BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose, SerialNumber,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A test certificate authority.
pub struct TestCa {
    cert: rcgen::Certificate,
    key: KeyPair,
    /// the CA certificate as PEM (for `client_ca`, curl's `--cacert`)
    pub pem: String,
}

/// A certificate and its key, as PEM.
pub struct Issued {
    pub cert_pem: String,
    pub key_pem: String,
    pub serial: u64,
}

impl TestCa {
    pub fn new(name: &str) -> TestCa {
        let mut p = CertificateParams::new(Vec::<String>::new()).expect("ca params");
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.distinguished_name.push(DnType::CommonName, name);
        p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().expect("ca key");
        let cert = p.self_signed(&key).expect("ca cert");
        TestCa {
            pem: cert.pem(),
            cert,
            key,
        }
    }

    /// A certificate for `names`, valid from a day ago for `days` more days (negative: it
    /// expired), with serial `serial`, on a new ECDSA P-256 key.
    pub fn issue(&self, names: &[&str], days: i64, serial: u64) -> Issued {
        self.issue_with(names, days, serial, KeyPair::generate().expect("key"))
    }

    pub fn issue_with(&self, names: &[&str], days: i64, serial: u64, key: KeyPair) -> Issued {
        let mut p = CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
            .expect("params");
        let now = time::OffsetDateTime::now_utc();
        p.not_before = now - time::Duration::days(if days < 0 { 30 } else { 1 });
        p.not_after = now + time::Duration::days(days);
        p.serial_number = Some(SerialNumber::from(serial));
        p.distinguished_name.push(
            DnType::CommonName,
            names.first().copied().unwrap_or("client"),
        );
        let cert = p.signed_by(&key, &self.cert, &self.key).expect("sign");
        Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            serial,
        }
    }
}

/// An RSA key made by the `openssl` command (ring cannot generate RSA keys).
pub fn rsa_key() -> KeyPair {
    let out = std::process::Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
        ])
        .output()
        .expect("openssl genpkey");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    KeyPair::from_pem(&String::from_utf8_lossy(&out.stdout)).expect("rsa key")
}

/// Accepts any server certificate and keeps the one it saw: the tests check which
/// certificate was chosen, and curl checks real verification.
#[derive(Debug, Default)]
pub struct Recorder {
    pub seen: Mutex<Option<CertificateDer<'static>>>,
    pub chain_len: Mutex<usize>,
}

impl rustls::client::danger::ServerCertVerifier for Recorder {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        *self.seen.lock().unwrap() = Some(end_entity.clone().into_owned());
        *self.chain_len.lock().unwrap() = 1 + intermediates.len();
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &rustls::crypto::ring::default_provider().signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &rustls::crypto::ring::default_provider().signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        rustls::crypto::ring::default_provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// How a test client connects.
#[derive(Clone)]
pub struct Client {
    pub config: Arc<rustls::ClientConfig>,
    pub recorder: Arc<Recorder>,
}

impl Client {
    /// TLS 1.2 and 1.3, ALPN http/1.1, no client certificate.
    pub fn new() -> Client {
        Self::build(
            &[&rustls::version::TLS13, &rustls::version::TLS12],
            None,
            &[b"http/1.1"],
        )
    }

    pub fn build(
        versions: &[&'static rustls::SupportedProtocolVersion],
        client_cert: Option<&Issued>,
        alpn: &[&[u8]],
    ) -> Client {
        let recorder = Arc::new(Recorder::default());
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let b = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(versions)
            .expect("versions")
            .dangerous()
            .with_custom_certificate_verifier(recorder.clone());
        let mut config = match client_cert {
            None => b.with_no_client_auth(),
            Some(c) => {
                let chain = rustls_pemfile::certs(&mut c.cert_pem.as_bytes())
                    .collect::<Result<Vec<_>, _>>()
                    .expect("client cert");
                let key = PrivateKeyDer::Pkcs8(
                    rustls_pemfile::pkcs8_private_keys(&mut c.key_pem.as_bytes())
                        .next()
                        .expect("a key")
                        .expect("client key"),
                );
                b.with_client_auth_cert(chain, key).expect("client auth")
            }
        };
        config.alpn_protocols = alpn.iter().map(|a| a.to_vec()).collect();
        Client {
            config: Arc::new(config),
            recorder,
        }
    }

    /// Connect and finish the handshake, with `sni` (`None`: no SNI is sent).
    pub fn connect(
        &self,
        port: u16,
        sni: Option<&str>,
    ) -> Result<rustls::StreamOwned<rustls::ClientConnection, TcpStream>, rustls::Error> {
        let name = match sni {
            Some(n) => ServerName::try_from(n.to_string()).expect("dns name"),
            None => ServerName::IpAddress(std::net::Ipv4Addr::LOCALHOST.into()),
        };
        let mut conn = rustls::ClientConnection::new(self.config.clone(), name)?;
        let mut tcp = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        tcp.set_read_timeout(Some(Duration::from_secs(10))).ok();
        while conn.is_handshaking() {
            conn.complete_io(&mut tcp).map_err(|e| {
                e.into_inner()
                    .and_then(|i| i.downcast::<rustls::Error>().ok())
                    .map(|b| *b)
                    .unwrap_or(rustls::Error::General("io".into()))
            })?;
        }
        Ok(rustls::StreamOwned::new(conn, tcp))
    }

    /// The serial number of the certificate served for `sni`.
    pub fn served_serial(&self, port: u16, sni: Option<&str>) -> Result<u64, rustls::Error> {
        self.connect(port, sni)?;
        Ok(self.last_serial())
    }

    /// The validity of the certificate served last.
    pub fn last_validity(&self) -> (i64, i64) {
        let der = self
            .recorder
            .seen
            .lock()
            .unwrap()
            .clone()
            .expect("a certificate");
        validity_of(&der)
    }

    pub fn last_serial(&self) -> u64 {
        let der = self
            .recorder
            .seen
            .lock()
            .unwrap()
            .clone()
            .expect("a certificate");
        serial_of(&der)
    }
}

/// A certificate's notBefore and notAfter, as Unix seconds.
pub fn validity_of(der: &[u8]) -> (i64, i64) {
    let (_, x) = x509_parser::parse_x509_certificate(der).expect("x509");
    (
        x.validity().not_before.timestamp(),
        x.validity().not_after.timestamp(),
    )
}

/// A certificate's serial number (the tests give small ones).
pub fn serial_of(der: &[u8]) -> u64 {
    let (_, x) = x509_parser::parse_x509_certificate(der).expect("x509");
    let bytes = x.raw_serial();
    bytes.iter().fold(0u64, |n, b| (n << 8) | u64::from(*b))
}

/// One HTTP/1.1 request over an open TLS stream (keep-alive: the response is read up to
/// its Content-Length, so the stream can carry the next one).
pub fn request<S: Read + Write>(
    s: &mut S,
    host: &str,
    path: &str,
) -> std::io::Result<super::Response> {
    write!(s, "GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n")?;
    s.flush()?;
    let mut r = std::io::BufReader::with_capacity(1, s);
    super::read_response(&mut r, false)
}

/// Write `issued` as NAME.pem and NAME.key under `dir`; their paths.
pub fn write_pair(dir: &Path, name: &str, issued: &Issued) -> (PathBuf, PathBuf) {
    let (c, k) = (
        dir.join(format!("{name}.pem")),
        dir.join(format!("{name}.key")),
    );
    std::fs::write(&c, &issued.cert_pem).unwrap();
    std::fs::write(&k, &issued.key_pem).unwrap();
    (c, k)
}

pub fn cert_table(
    name: &str,
    files: &(PathBuf, PathBuf),
    domains: &[&str],
    default: bool,
) -> String {
    let domains = domains
        .iter()
        .map(|d| format!("\"{d}\""))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "[certificates.{name}]\ncert = \"{}\"\nkey = \"{}\"\ndomains = [{domains}]\ndefault = {default}\n",
        files.0.display(),
        files.1.display()
    )
}

/// A TLS server on `port` in front of `origin`, with `server_extra` in its table and
/// `tables` (certificates...) after it.
pub fn tls_config(port: u16, origin: u16, server_extra: &str, tables: &str) -> String {
    format!(
        r#"
[basic]
threads = 2
grace_period = "1s"
graceful_shutdown_timeout = "1s"

[servers.secure]
addr = "127.0.0.1:{port}"
locations = ["all"]
tls = true
access_log = "{{tls_version}} {{tls_sni}} {{tls_resumed}} {{scheme}} {{status}}"
{server_extra}

[locations.all]
upstream = "backend"
proxy_set_headers = ["x-scheme: $scheme", "x-sni: $ssl_server_name", "x-client: $ssl_client_s_dn"]

[upstreams.backend]
addrs = ["127.0.0.1:{origin}"]

{tables}
"#
    )
}
