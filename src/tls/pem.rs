//! Reading PEM: certificate chains, private keys and CA bundles, from a file or given inline.
//!
//! A config value that holds `-----BEGIN` is PEM text; anything else is a file path. Every
//! certificate is parsed once here, so a bad one is a config error and never a failure in a
//! handshake.

use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::path::PathBuf;

/// PEM text and the file it came from (`None`: inline in the config).
pub struct Pem {
    pub text: Vec<u8>,
    pub file: Option<PathBuf>,
}

/// Read `value`: inline PEM as is, otherwise the file it names.
pub fn read(value: &str) -> Result<Pem, String> {
    if value.contains("-----BEGIN") {
        return Ok(Pem {
            text: value.as_bytes().to_vec(),
            file: None,
        });
    }
    let text = std::fs::read(value).map_err(|e| format!("cannot read `{value}`: {e}"))?;
    Ok(Pem {
        text,
        file: Some(PathBuf::from(value)),
    })
}

impl Pem {
    /// How error messages name this PEM.
    pub fn label(&self) -> String {
        match &self.file {
            Some(f) => format!("`{}`", f.display()),
            None => "the inline PEM".to_string(),
        }
    }

    /// Every certificate, in order; each must parse as X.509. At least one.
    pub fn certs(&self) -> Result<Vec<CertificateDer<'static>>, String> {
        let mut out = Vec::new();
        for item in rustls_pemfile::certs(&mut self.text.as_slice()) {
            let der = item.map_err(|e| format!("{}: bad PEM: {e}", self.label()))?;
            x509_parser::parse_x509_certificate(der.as_ref()).map_err(|e| {
                format!(
                    "{}: certificate {} does not parse: {e}",
                    self.label(),
                    out.len() + 1
                )
            })?;
            out.push(der);
        }
        if out.is_empty() {
            return Err(format!("{} holds no PEM certificate", self.label()));
        }
        Ok(out)
    }

    /// The one private key (PKCS#8, PKCS#1 RSA or SEC1 EC).
    pub fn private_key(&self) -> Result<PrivateKeyDer<'static>, String> {
        match rustls_pemfile::private_key(&mut self.text.as_slice()) {
            Ok(Some(k)) => Ok(k),
            Ok(None) => Err(format!("{} holds no PEM private key", self.label())),
            Err(e) => Err(format!("{}: bad PEM: {e}", self.label())),
        }
    }
}

/// A CA bundle as DER, for the upstream side (Pingora takes DER).
pub fn ca_file(path: &str) -> Result<Vec<Vec<u8>>, String> {
    let pem = read(path)?;
    Ok(pem.certs()?.iter().map(|c| c.as_ref().to_vec()).collect())
}
