//! `[certificates.NAME]`: each certificate loaded and checked (`tls/certs.rs`), then the set
//! as a whole: one certificate per exact domain, at most one default, and the TLS servers'
//! handshake settings built over it.

use super::super::builder::{Builder, Entry};
use super::super::raw::*;
use crate::error::ConfigError;
use crate::tls::certs::{self, Certificate, Spec};
use std::collections::{BTreeMap, HashMap};
use std::time::SystemTime;

/// Load every `[certificates.NAME]`; problems are errors, expiry soon and uncovered names
/// are warnings.
pub(in crate::config) fn build_certificates(
    b: &mut Builder<'_>,
    raw: &BTreeMap<String, Entry>,
    warnings: &mut Vec<ConfigError>,
) -> Vec<Certificate> {
    let now = SystemTime::now();
    let mut out: Vec<Certificate> = Vec::new();
    // domain → (certificate, document) that claimed it first
    let mut claimed: HashMap<String, String> = HashMap::new();
    let mut default: Option<String> = None;
    for (name, e) in raw {
        let t = format!("certificates.{name}");
        let Some(rc) = b.typed::<RawCertificate>(e, &t) else {
            continue;
        };
        if rc.acme.is_some() {
            b.err(
                e.doc,
                &t,
                Some("acme"),
                "ACME issuance is not available in this build yet; give `cert` and `key`",
            );
            continue;
        }
        let (Some(cert), Some(key)) = (rc.cert.as_deref(), rc.key.as_deref()) else {
            let missing = if rc.cert.is_none() { "cert" } else { "key" };
            b.err(
                e.doc,
                &t,
                Some(missing),
                format!("missing `{missing}`: a file path or inline PEM"),
            );
            continue;
        };
        let spec = Spec {
            name,
            cert,
            key,
            domains: &rc.domains,
            default: rc.default,
        };
        let loaded = match certs::load(&spec, now) {
            Ok(l) => l,
            Err(p) => {
                b.err(e.doc, &t, Some(p.key), p.message);
                continue;
            }
        };
        for w in loaded.warnings {
            let before = b.errors.len();
            b.err(e.doc, &t, Some(w.key), w.message);
            warnings.extend(b.errors.drain(before..));
        }
        let c = loaded.cert;
        for d in &c.domains {
            if let Some(other) = claimed.insert(d.clone(), name.clone()) {
                b.err(
                    e.doc,
                    &t,
                    Some("domains"),
                    format!("`{d}` is also claimed by [certificates.{other}]; each name may have one certificate"),
                );
            }
        }
        if c.default {
            if let Some(other) = default.replace(name.clone()) {
                b.err(
                    e.doc,
                    &t,
                    Some("default"),
                    format!("[certificates.{other}] is the default already; only one may be"),
                );
            }
        }
        out.push(c);
    }
    out
}
