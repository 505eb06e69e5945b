//! A TLS server's handshake settings: the rustls `ServerConfig` built once per config version.
//!
//! ```toml
//! [servers.secure]
//! addr = "0.0.0.0:443"
//! tls = true                       # certificates from [certificates], chosen by SNI
//! http2 = true                     # ALPN offers h2, then http/1.1 (http/1.1 only without it)
//! tls_min_version = "1.2"          # or "1.3"; TLS 1.1 and older are never spoken
//! tls_ciphers = ["TLS13_AES_256_GCM_SHA384", "TLS13_CHACHA20_POLY1305_SHA256"]  # optional pin
//! client_ca = "conf/certs/clients-ca.pem"   # optional: require a client certificate it signed
//! ```
//!
//! Session resumption is on: TLS 1.3 tickets (and TLS 1.2 tickets) encrypted with keys that
//! rotate every 6 hours, plus a server-side session cache. Both are shared by every TLS
//! server and kept across reloads, so a reload does not make returning clients do a full
//! handshake.

use super::sni::CertStore;
use super::{problem, KeyProblem as SettingsProblem};
use rustls::crypto::CryptoProvider;
use rustls::server::{ProducesTickets, ServerSessionMemoryCache, StoresServerSessions};
use rustls::{RootCertStore, ServerConfig, SupportedProtocolVersion};
use std::sync::{Arc, OnceLock};

/// The settings of one TLS server, as validated from its table.
#[derive(Debug, Clone, Default)]
pub struct Spec {
    pub http2: bool,
    /// "1.2" (default) or "1.3"
    pub min_version: Option<String>,
    pub ciphers: Vec<String>,
    /// `client_ca` as written (a path or inline PEM), read into [`Spec::client_ca`] with the
    /// config's other file reads
    pub client_ca_source: Option<String>,
    /// the CAs whose client certificates are accepted (then required)
    pub client_ca: Option<Vec<rustls::pki_types::CertificateDer<'static>>>,
}

/// What a TLS listener needs per handshake.
#[derive(Debug, Clone)]
pub struct TlsServer {
    pub config: Arc<ServerConfig>,
    pub store: Arc<CertStore>,
}

/// The ticket keys of the process (rotating), shared across servers and reloads.
fn ticketer() -> Option<Arc<dyn ProducesTickets>> {
    static T: OnceLock<Option<Arc<dyn ProducesTickets>>> = OnceLock::new();
    T.get_or_init(|| match rustls::crypto::ring::Ticketer::new() {
        Ok(t) => Some(t),
        Err(e) => {
            tracing::warn!("TLS session tickets are off: {e}");
            None
        }
    })
    .clone()
}

/// The server-side session cache of the process, shared likewise.
fn session_cache() -> Arc<dyn StoresServerSessions> {
    static C: OnceLock<Arc<ServerSessionMemoryCache>> = OnceLock::new();
    C.get_or_init(|| ServerSessionMemoryCache::new(20_000))
        .clone()
}

/// Names `tls_ciphers` accepts: rustls's suites, by their IANA names.
pub fn cipher_names() -> Vec<&'static str> {
    rustls::crypto::ring::default_provider()
        .cipher_suites
        .iter()
        .filter_map(|s| s.suite().as_str())
        .collect()
}

/// Build the handshake settings of one server over `store`.
pub fn build(spec: &Spec, store: Arc<CertStore>) -> Result<TlsServer, SettingsProblem> {
    let mut provider = rustls::crypto::ring::default_provider();
    if !spec.ciphers.is_empty() {
        let mut chosen = Vec::new();
        for name in &spec.ciphers {
            let found = provider
                .cipher_suites
                .iter()
                .find(|s| s.suite().as_str() == Some(name.as_str()));
            match found {
                Some(s) => chosen.push(*s),
                None => {
                    return Err(problem(
                        "tls_ciphers",
                        format!(
                            "unknown cipher suite `{name}`; one of {}",
                            cipher_names().join(", ")
                        ),
                    ))
                }
            }
        }
        provider.cipher_suites = chosen;
    }
    let versions: &[&'static SupportedProtocolVersion] =
        match spec.min_version.as_deref().unwrap_or("1.2") {
            "1.2" => &[&rustls::version::TLS13, &rustls::version::TLS12],
            "1.3" => &[&rustls::version::TLS13],
            other => {
                return Err(problem(
                    "tls_min_version",
                    format!("`{other}`: use \"1.2\" or \"1.3\" (older versions are not spoken)"),
                ))
            }
        };
    let has_tls13_suite = provider
        .cipher_suites
        .iter()
        .any(|s| s.version() == &rustls::version::TLS13);
    if !has_tls13_suite && versions.len() == 1 {
        return Err(problem(
            "tls_ciphers",
            "tls_min_version = \"1.3\" but no TLS 1.3 cipher suite is listed",
        ));
    }
    let provider: Arc<CryptoProvider> = Arc::new(provider);
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions)
        .map_err(|e| problem("tls_ciphers", format!("{e}")))?;
    let builder = match &spec.client_ca {
        None => builder.with_no_client_auth(),
        Some(cas) => {
            let mut roots = RootCertStore::empty();
            for c in cas {
                roots.add(c.clone()).map_err(|e| {
                    problem("client_ca", format!("a CA certificate is unusable: {e}"))
                })?;
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .build()
            .map_err(|e| problem("client_ca", format!("{e}")))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder.with_cert_resolver(store.clone());
    config.alpn_protocols = if spec.http2 {
        vec![b"h2".to_vec(), b"http/1.1".to_vec()]
    } else {
        vec![b"http/1.1".to_vec()]
    };
    config.session_storage = session_cache();
    if let Some(t) = ticketer() {
        config.ticketer = t;
        // TLS 1.3: one ticket per full handshake is enough for a client to come back
        config.send_tls13_tickets = 1;
    }
    Ok(TlsServer {
        config: Arc::new(config),
        store,
    })
}
