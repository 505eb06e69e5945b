//! `[storage]`: where tidegate keeps what it makes itself (ACME accounts and certificates).
//!
//! ```toml
//! [storage]
//! kind = "file"                  # the only kind so far
//! dir = "/var/lib/tidegate"      # default: "storage", under the working directory
//! ```

use super::super::builder::{Builder, Entry};
use super::super::raw::*;
use std::path::PathBuf;

pub(in crate::config) fn build_storage(b: &mut Builder<'_>, e: Option<&Entry>) -> PathBuf {
    let default = PathBuf::from("storage");
    let Some(e) = e else { return default };
    let Some(raw) = b.typed::<RawStorage>(e, "storage") else {
        return default;
    };
    match raw.kind.as_deref() {
        None | Some("file") => {}
        Some("etcd") => b.err(
            e.doc,
            "storage",
            Some("kind"),
            "kind = \"etcd\" is not available in this build yet; use \"file\" (a shared directory works for several instances)",
        ),
        Some(other) => b.err(
            e.doc,
            "storage",
            Some("kind"),
            format!("unknown kind `{other}`; use \"file\""),
        ),
    }
    match raw.dir {
        Some(d) if d.is_empty() => {
            b.err(e.doc, "storage", Some("dir"), "dir must not be empty");
            default
        }
        Some(d) => PathBuf::from(d),
        None => default,
    }
}
