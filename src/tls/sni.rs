//! Choosing a certificate by the name the client asked for (SNI).
//!
//! An exact name beats a `*.` wildcard (one label deep, as browsers match), which beats the
//! certificate marked `default = true`. With no match and no default there is no certificate:
//! the handshake is refused with an `unrecognized_name` alert (`accept.rs`).

use super::certs::Certificate;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use std::collections::HashMap;
use std::sync::Arc;

/// The certificates of one config version, indexed by name.
#[derive(Debug, Default)]
pub struct CertStore {
    exact: HashMap<String, Arc<CertifiedKey>>,
    /// by the suffix after `*.`
    wildcard: HashMap<String, Arc<CertifiedKey>>,
    default: Option<Arc<CertifiedKey>>,
}

impl CertStore {
    /// Index `certs`; each domain is claimed once (the config builder reports duplicates).
    pub fn new(certs: &[Certificate]) -> CertStore {
        let mut s = CertStore::default();
        for c in certs {
            for d in &c.domains {
                match d.strip_prefix("*.") {
                    Some(suffix) => s.wildcard.insert(suffix.to_string(), c.key.clone()),
                    None => s.exact.insert(d.clone(), c.key.clone()),
                };
            }
            if c.default {
                s.default = Some(c.key.clone());
            }
        }
        s
    }

    /// The certificate for `sni` (already lower case or not), or the default.
    pub fn lookup(&self, sni: Option<&str>) -> Option<&Arc<CertifiedKey>> {
        let Some(name) = sni else {
            return self.default.as_ref();
        };
        let name = name.trim_end_matches('.');
        let lower;
        let name = if name.bytes().any(|b| b.is_ascii_uppercase()) {
            lower = name.to_ascii_lowercase();
            lower.as_str()
        } else {
            name
        };
        self.exact
            .get(name)
            .or_else(|| {
                let (_, parent) = name.split_once('.')?;
                self.wildcard.get(parent)
            })
            .or(self.default.as_ref())
    }

    pub fn is_empty(&self) -> bool {
        self.exact.is_empty() && self.wildcard.is_empty() && self.default.is_none()
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.lookup(hello.server_name()).cloned()
    }
}
