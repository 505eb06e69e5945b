//! TLS termination: certificates chosen by SNI, per-server handshake settings, and the
//! connection type both engines serve.
//!
//! ```toml
//! [certificates.site]
//! domains = ["example.com", "*.example.com"]
//! cert = "conf/certs/site.pem"
//! key = "conf/certs/site.key"
//! default = true
//!
//! [servers.secure]
//! addr = "0.0.0.0:443"
//! tls = true
//! http2 = true
//! ```
//!
//! ```text
//! pem.rs       PEM from a file or inline: chains, keys, CA bundles
//! certs.rs     [certificates.NAME] loaded and checked (key match, expiry, names)
//! sni.rs       the certificate for a name: exact, then wildcard, then default
//! settings.rs  a server's rustls ServerConfig: versions, ciphers, ALPN, client certs, tickets
//! accept.rs    the handshake, under the connection's header deadline
//! conn.rs      the TLS stream as Pingora's IO, and what a request can know of its session
//! acme/        ordering and renewing certificates (ACME HTTP-01)
//! ```
//!
//! The rustls stack is the one Pingora's upstream side already uses (ring provider); no
//! OpenSSL is linked.

pub mod accept;
pub mod acme;
pub mod certs;
pub mod conn;
pub mod pem;
pub mod settings;
pub mod sni;

pub use conn::{TlsConn, TlsInfo};
pub use settings::TlsServer;

/// A problem with one key of a config table (`[certificates.X] key`, `[servers.X]
/// tls_ciphers`...): the config builder adds the file, table and line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct KeyProblem {
    pub key: &'static str,
    pub message: String,
}

fn problem(key: &'static str, message: impl Into<String>) -> KeyProblem {
    KeyProblem {
        key,
        message: message.into(),
    }
}
