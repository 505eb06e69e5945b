//! `[certificates.NAME]`: a certificate chain and its key, loaded and checked once per config.
//!
//! ```toml
//! [certificates.site]
//! domains = ["example.com", "*.example.com"]   # default: the certificate's DNS names
//! cert = "conf/certs/site.pem"                 # path or inline PEM; a chain is served whole
//! key = "conf/certs/site.key"                  # RSA, ECDSA or Ed25519; PKCS#8, PKCS#1 or SEC1
//! default = false                              # served when the SNI is missing or unknown
//! ```
//!
//! Checked here, each a config error naming the table and key: unreadable files, PEM that
//! does not parse, a key that does not match the certificate, an expired certificate. One
//! that expires within 14 days, or a listed domain its certificate does not cover, is a
//! warning.

use super::pem::{self, Pem};
use super::{problem, KeyProblem as CertProblem};
use rustls::sign::CertifiedKey;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A certificate that expires sooner than this is reported by `check` (and at each load).
pub const EXPIRY_WARNING: Duration = Duration::from_secs(14 * 24 * 3600);

/// One `[certificates.NAME]`, loaded.
#[derive(Debug, Clone)]
pub struct Certificate {
    pub name: String,
    /// exact names and `*.suffix` wildcards, lower case
    pub domains: Vec<String>,
    pub default: bool,
    pub key: Arc<CertifiedKey>,
    /// the leaf's notAfter, seconds since the epoch
    pub not_after: i64,
    /// the leaf's serial number, as hex
    pub serial: String,
    /// the files it was read from (watched for changes)
    pub files: Vec<PathBuf>,
    /// ordered and renewed by tidegate (`acme = {...}`)
    pub acme: bool,
}

/// The raw table's values, as `tables/certificate.rs` hands them over.
pub struct Spec<'a> {
    pub name: &'a str,
    pub cert: &'a str,
    pub key: &'a str,
    pub domains: &'a [String],
    pub default: bool,
}

/// What loading found: the certificate, and warnings that do not stop it serving.
pub struct Loaded {
    pub cert: Certificate,
    pub warnings: Vec<CertProblem>,
}

/// Read, parse and check one certificate; `now` is the time expiry is judged at.
pub fn load(spec: &Spec<'_>, now: SystemTime) -> Result<Loaded, CertProblem> {
    let cert_pem: Pem = pem::read(spec.cert).map_err(|m| problem("cert", m))?;
    let key_pem: Pem = pem::read(spec.key).map_err(|m| problem("key", m))?;
    let chain = cert_pem.certs().map_err(|m| problem("cert", m))?;
    let key_der = key_pem.private_key().map_err(|m| problem("key", m))?;
    let provider = rustls::crypto::ring::default_provider();
    let signing = provider
        .key_provider
        .load_private_key(key_der)
        .map_err(|e| problem("key", format!("{}: unusable key: {e}", key_pem.label())))?;
    let certified = CertifiedKey::new(chain, signing);
    if let Err(e) = certified.keys_match() {
        return Err(problem(
            "key",
            format!(
                "{} is not the key of the certificate in {} ({e})",
                key_pem.label(),
                cert_pem.label()
            ),
        ));
    }
    let leaf = certified
        .cert
        .first()
        .ok_or_else(|| problem("cert", "no certificate"))?
        .clone();
    let (_, x509) = x509_parser::parse_x509_certificate(leaf.as_ref())
        .map_err(|e| problem("cert", format!("{}: {e}", cert_pem.label())))?;
    let not_after = x509.validity().not_after.timestamp();
    let not_before = x509.validity().not_before.timestamp();
    let now_s = now
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let until = x509.validity().not_after.to_datetime();
    if not_after < now_s {
        return Err(problem(
            "cert",
            format!("{} expired on {until}", cert_pem.label()),
        ));
    }
    let mut warnings = Vec::new();
    if not_before > now_s {
        warnings.push(problem(
            "cert",
            format!(
                "{} is not valid before {}",
                cert_pem.label(),
                x509.validity().not_before.to_datetime()
            ),
        ));
    }
    if not_after - now_s < EXPIRY_WARNING.as_secs() as i64 {
        let days = (not_after - now_s) / 86_400;
        warnings.push(problem(
            "cert",
            format!("{} expires on {until}, in {days} day(s)", cert_pem.label()),
        ));
    }
    let covered = names_of(&x509);
    let domains: Vec<String> = if spec.domains.is_empty() {
        covered.clone()
    } else {
        spec.domains
            .iter()
            .map(|d| d.to_ascii_lowercase())
            .collect()
    };
    if domains.is_empty() && !spec.default {
        return Err(problem(
            "domains",
            "no domains given and the certificate names none; list them or set default = true",
        ));
    }
    for d in &domains {
        if let Err(m) = check_domain(d) {
            return Err(problem("domains", m));
        }
        if !covered.iter().any(|c| covers(c, d)) {
            warnings.push(problem(
                "domains",
                format!(
                    "`{d}` is not among the names of the certificate in {} ({}): clients will refuse it",
                    cert_pem.label(),
                    covered.join(", ")
                ),
            ));
        }
    }
    let files = [cert_pem.file, key_pem.file]
        .into_iter()
        .flatten()
        .collect();
    Ok(Loaded {
        cert: Certificate {
            name: spec.name.to_string(),
            domains,
            default: spec.default,
            key: Arc::new(certified),
            not_after,
            serial: serial_of(&x509),
            files,
            acme: false,
        },
        warnings,
    })
}

/// A certificate's serial number as hex, without separators.
pub fn serial_of(x509: &x509_parser::certificate::X509Certificate<'_>) -> String {
    x509.raw_serial_as_string().replace(':', "")
}

/// The DNS names a certificate is for: its subjectAltName entries, else its CN.
pub fn names_of(x509: &x509_parser::certificate::X509Certificate<'_>) -> Vec<String> {
    use x509_parser::extensions::GeneralName;
    let mut out = Vec::new();
    if let Ok(Some(san)) = x509.subject_alternative_name() {
        for n in &san.value.general_names {
            if let GeneralName::DNSName(d) = n {
                out.push(d.to_ascii_lowercase());
            }
        }
    }
    if out.is_empty() {
        for cn in x509.subject().iter_common_name() {
            if let Ok(s) = cn.as_str() {
                out.push(s.to_ascii_lowercase());
            }
        }
    }
    out
}

/// `pattern` (a certificate name, maybe `*.suffix`) covers `name` (maybe a wildcard too).
fn covers(pattern: &str, name: &str) -> bool {
    if pattern == name {
        return true;
    }
    match (pattern.strip_prefix("*."), name.split_once('.')) {
        (Some(suffix), Some((label, rest))) => label != "*" && rest == suffix,
        _ => false,
    }
}

/// A name in `domains`: a host name, or `*.` and a host name with at least one dot.
fn check_domain(d: &str) -> Result<(), String> {
    let host = d.strip_prefix("*.").unwrap_or(d);
    let ok_chars = !host.is_empty()
        && host
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'.')
        && !host.starts_with('.')
        && !host.ends_with('.')
        && !host.contains("..");
    if !ok_chars {
        return Err(format!(
            "`{d}` is not a host name or `*.` wildcard (e.g. \"example.com\", \"*.example.com\")"
        ));
    }
    if d.starts_with("*.") && !host.contains('.') {
        return Err(format!(
            "`{d}`: a wildcard needs a domain with a dot after `*.`"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_cover_one_label() {
        assert!(covers("*.example.com", "a.example.com"));
        assert!(!covers("*.example.com", "a.b.example.com"));
        assert!(!covers("*.example.com", "example.com"));
        assert!(covers("example.com", "example.com"));
        assert!(covers("*.example.com", "*.example.com"));
    }

    #[test]
    fn domain_syntax() {
        assert!(check_domain("example.com").is_ok());
        assert!(check_domain("*.example.com").is_ok());
        assert!(check_domain("*.com").is_err());
        assert!(check_domain("a..b").is_err());
        assert!(check_domain("a b").is_err());
        assert!(check_domain("*").is_err());
    }
}
