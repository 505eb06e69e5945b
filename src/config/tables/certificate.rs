//! `[certificates.NAME]`: each certificate loaded and checked (`tls/certs.rs`), then the set
//! as a whole: one certificate per exact domain, at most one default, and the TLS servers'
//! handshake settings built over it.

use super::super::builder::{Builder, Entry};
use super::super::raw::*;
use crate::error::ConfigError;
use crate::tls::acme::AcmeCert;
use crate::tls::certs::{self, Certificate, Spec};
use std::collections::{BTreeMap, HashMap};
use std::time::SystemTime;

/// Load every `[certificates.NAME]`; problems are errors, expiry soon and uncovered names
/// are warnings.
pub(in crate::config) fn build_certificates(
    b: &mut Builder<'_>,
    raw: &BTreeMap<String, Entry>,
    storage: &crate::tls::acme::storage::Storage,
    warnings: &mut Vec<ConfigError>,
) -> (Vec<Certificate>, Vec<AcmeCert>) {
    let mut acme_out = Vec::new();
    let now = SystemTime::now();
    let mut out: Vec<Certificate> = Vec::new();
    let mut claims = Claims::default();
    for (name, e) in raw {
        let t = format!("certificates.{name}");
        let Some(rc) = b.typed::<RawCertificate>(e, &t) else {
            continue;
        };
        if let Some(acme) = &rc.acme {
            let Some(a) = acme_cert(b, e.doc, &t, name, &rc, acme, storage) else {
                continue;
            };
            claims.take(b, e.doc, &t, name, &a.domains, a.default);
            // issued already: it serves like any certificate (the manager renews it)
            if let Some(c) = stored(b, e.doc, &t, &a, warnings) {
                out.push(c);
            }
            acme_out.push(a);
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
        claims.take(b, e.doc, &t, name, &c.domains, c.default);
        out.push(c);
    }
    (out, acme_out)
}

/// Which certificate claimed each name, and which is the default: each name may have one
/// certificate, and one certificate may be the default.
#[derive(Default)]
struct Claims {
    names: HashMap<String, String>,
    default: Option<String>,
}

impl Claims {
    fn take(
        &mut self,
        b: &mut Builder<'_>,
        doc: usize,
        t: &str,
        name: &str,
        domains: &[String],
        default: bool,
    ) {
        for d in domains {
            if let Some(other) = self.names.insert(d.clone(), name.to_string()) {
                b.err(
                    doc,
                    t,
                    Some("domains"),
                    format!("`{d}` is also claimed by [certificates.{other}]; each name may have one certificate"),
                );
            }
        }
        if default {
            if let Some(other) = self.default.replace(name.to_string()) {
                b.err(
                    doc,
                    t,
                    Some("default"),
                    format!("[certificates.{other}] is the default already; only one may be"),
                );
            }
        }
    }
}

/// `acme = { directory, email, ca_file }` with the table's `domains` and `default`.
fn acme_cert(
    b: &mut Builder<'_>,
    doc: usize,
    t: &str,
    name: &str,
    rc: &RawCertificate,
    acme: &RawAcme,
    storage: &crate::tls::acme::storage::Storage,
) -> Option<AcmeCert> {
    let before = b.errors.len();
    for key in ["cert", "key"] {
        let set = if key == "cert" {
            rc.cert.is_some()
        } else {
            rc.key.is_some()
        };
        if set {
            b.err(doc, t, Some(key), format!("`{key}` and `acme` exclude each other: tidegate keeps an ACME certificate in [storage] dir"));
        }
    }
    if !(acme.directory.starts_with("https://") || acme.directory.starts_with("http://"))
        || acme.directory.parse::<http::Uri>().is_err()
    {
        b.err(
            doc,
            t,
            Some("acme.directory"),
            format!(
                "`{}` is not an http(s) URL of an ACME directory",
                acme.directory
            ),
        );
    }
    if let Some(m) = &acme.email {
        let ok = m
            .split_once('@')
            .is_some_and(|(l, d)| !l.is_empty() && d.contains('.'))
            && !m.chars().any(|c| c.is_whitespace() || c == ',');
        if !ok {
            b.err(
                doc,
                t,
                Some("acme.email"),
                format!("`{m}` is not an email address"),
            );
        }
    }
    let ca_file = acme.ca_file.as_deref().and_then(|f| {
        crate::tls::pem::read(f)
            .and_then(|p| p.certs())
            .map(|_| std::path::PathBuf::from(f))
            .map_err(|m| b.err(doc, t, Some("acme.ca_file"), m))
            .ok()
    });
    if rc.domains.is_empty() {
        b.err(
            doc,
            t,
            Some("domains"),
            "an ACME certificate needs its `domains`",
        );
    }
    let mut domains = Vec::new();
    for d in &rc.domains {
        let d = d.to_ascii_lowercase();
        if d.starts_with("*.") {
            b.err(
                doc,
                t,
                Some("domains"),
                format!(
                    "`{d}`: a wildcard needs a DNS-01 challenge; tidegate answers HTTP-01 only"
                ),
            );
        } else if !d
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'.')
            || !d.contains('.')
        {
            b.err(doc, t, Some("domains"), format!("`{d}` is not a host name"));
        }
        domains.push(d);
    }
    (b.errors.len() == before).then(|| AcmeCert {
        name: name.to_string(),
        domains,
        directory: acme.directory.clone(),
        contact: acme.email.as_ref().map(|m| format!("mailto:{m}")),
        ca_file,
        storage: storage.clone(),
        default: rc.default,
    })
}

/// The stored certificate of `a`, if there is a usable one; an unusable one is a warning
/// (the manager orders a new one) and an expiry that renewal will handle is not mentioned.
fn stored(
    b: &mut Builder<'_>,
    doc: usize,
    t: &str,
    a: &AcmeCert,
    warnings: &mut Vec<ConfigError>,
) -> Option<Certificate> {
    let (cert, key) = (a.cert_path(), a.key_path());
    if !cert.exists() {
        return None;
    }
    let (cert_s, key_s) = (cert.to_string_lossy(), key.to_string_lossy());
    let spec = Spec {
        name: &a.name,
        cert: &cert_s,
        key: &key_s,
        domains: &a.domains,
        default: a.default,
    };
    match certs::load(&spec, SystemTime::now()) {
        Ok(l) => Some(Certificate {
            acme: true,
            ..l.cert
        }),
        Err(p) => {
            let before = b.errors.len();
            b.err(
                doc,
                t,
                Some("acme"),
                format!(
                    "the stored certificate is unusable ({}); a new one will be ordered",
                    p.message
                ),
            );
            warnings.extend(b.errors.drain(before..));
            None
        }
    }
}
