//! ACME (RFC 8555): tidegate orders and renews certificates itself, answering HTTP-01
//! challenges on its plain-HTTP listeners.
//!
//! ```toml
//! [storage]
//! dir = "/var/lib/tidegate"      # accounts and issued certificates (default "storage")
//!
//! [certificates.site]
//! domains = ["example.com", "www.example.com"]    # exact names (HTTP-01 cannot do wildcards)
//! acme = { directory = "https://acme-v02.api.letsencrypt.org/directory", email = "ops@example.com" }
//! # ca_file = "pebble-ca.pem" in acme: trust a private ACME server's HTTPS certificate
//! ```
//!
//! ```text
//! store.rs      files under [storage] dir: accounts, certificates (key mode 0600), the order lock
//! etcd.rs       kind = "etcd": the same tree in etcd, mirrored into the directory; a leased lock
//! storage.rs    the two behind one set of operations
//! challenge.rs  tokens being validated, answered at /.well-known/acme-challenge/TOKEN
//! order.rs      one order with instant-acme: account, authorizations, finalize, download
//! manager.rs    when to order (none yet, names changed, two thirds of the lifetime with
//!               jitter), retries with backoff, and a reload so the new certificate serves
//! ```
//!
//! A certificate is stored, then the config is reloaded: the stored files load like any
//! `cert`/`key` pair, new handshakes get the new certificate, established connections keep
//! theirs. A failed renewal keeps the old certificate serving. Several instances sharing one
//! storage directory take a lock file before ordering, and the one that waited finds the new
//! certificate already there (the file watch reloads it too).

pub mod challenge;
pub mod etcd;
pub mod manager;
pub mod order;
pub mod storage;
pub mod store;

use std::path::PathBuf;

/// One `[certificates.NAME]` with `acme`, as validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcmeCert {
    pub name: String,
    /// exact host names, lower case
    pub domains: Vec<String>,
    pub directory: String,
    /// `mailto:` contact, if an email was given
    pub contact: Option<String>,
    /// a CA file for the directory's HTTPS certificate
    pub ca_file: Option<PathBuf>,
    /// `[storage]`
    pub storage: storage::Storage,
    pub default: bool,
}

impl AcmeCert {
    /// `certificates/NAME/cert.pem` under the storage
    pub fn cert_rel(&self) -> String {
        format!("certificates/{}/cert.pem", self.name)
    }

    pub fn key_rel(&self) -> String {
        format!("certificates/{}/key.pem", self.name)
    }

    pub fn cert_path(&self) -> PathBuf {
        self.storage.path(&self.cert_rel())
    }

    pub fn key_path(&self) -> PathBuf {
        self.storage.path(&self.key_rel())
    }
}
