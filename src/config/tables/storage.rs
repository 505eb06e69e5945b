//! `[storage]`: where tidegate keeps what it makes itself (ACME accounts and certificates).
//!
//! ```toml
//! [storage]
//! kind = "file"                  # or "etcd": shared by instances through etcd
//! dir = "/var/lib/tidegate"      # default: "storage", under the working directory
//! # endpoints = ["127.0.0.1:2379"], prefix = "/tidegate-storage/"   with kind = "etcd"
//! ```

use super::super::builder::{Builder, Entry};
use super::super::raw::*;
use crate::tls::acme::etcd::EtcdStorage;
use crate::tls::acme::storage::Storage;
use std::path::PathBuf;

pub(in crate::config) fn build_storage(b: &mut Builder<'_>, e: Option<&Entry>) -> Storage {
    let mut s = Storage {
        dir: PathBuf::from("storage"),
        etcd: None,
    };
    let Some(e) = e else { return s };
    let Some(raw) = b.typed::<RawStorage>(e, "storage") else {
        return s;
    };
    let t = "storage";
    match raw.dir {
        Some(d) if d.is_empty() => b.err(e.doc, t, Some("dir"), "dir must not be empty"),
        Some(d) => s.dir = PathBuf::from(d),
        None => {}
    }
    match raw.kind.as_deref() {
        None | Some("file") => {
            for (key, set) in [
                ("endpoints", raw.endpoints.is_some()),
                ("prefix", raw.prefix.is_some()),
            ] {
                if set {
                    b.err(
                        e.doc,
                        t,
                        Some(key),
                        format!("`{key}` needs kind = \"etcd\""),
                    );
                }
            }
        }
        Some("etcd") => {
            let endpoints = raw.endpoints.unwrap_or_default();
            if endpoints.is_empty() {
                b.err(
                    e.doc,
                    t,
                    Some("endpoints"),
                    "kind = \"etcd\" needs `endpoints`, e.g. [\"127.0.0.1:2379\"]",
                );
            }
            for ep in &endpoints {
                let host_port = ep
                    .strip_prefix("http://")
                    .or_else(|| ep.strip_prefix("https://"))
                    .unwrap_or(ep);
                if !host_port.contains(':') || host_port.contains('/') {
                    b.err(
                        e.doc,
                        t,
                        Some("endpoints"),
                        format!("`{ep}` is not HOST:PORT"),
                    );
                }
            }
            let mut prefix = raw.prefix.unwrap_or_else(|| "/tidegate-storage/".into());
            if prefix.is_empty() {
                b.err(e.doc, t, Some("prefix"), "prefix must not be empty");
            }
            if !prefix.ends_with('/') {
                prefix.push('/');
            }
            s.etcd = Some(EtcdStorage { endpoints, prefix });
        }
        Some(other) => b.err(
            e.doc,
            t,
            Some("kind"),
            format!("unknown kind `{other}`; use \"file\" or \"etcd\""),
        ),
    }
    s
}
