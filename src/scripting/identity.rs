//! Stable identities for loaded scripts and module sets.
//!
//! A VM caches what it loaded by id: a script's hooks and converted `conf`, and the values
//! of required modules. If every config load handed out new ids, an unrelated edit (a new
//! location, say) would throw all of that away, re-run module code and lose module state.
//! So the id is derived from what the load depends on: the same text (and `conf`, and set of
//! modules) gives the same id across reloads; any change gives a new one.
//!
//! The id is a small counter handed out per distinct content digest (SHA-256), so equal
//! ids mean equal content, not a hash that happened to collide.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

/// The id of the content made of `parts` (each part is length-prefixed, so part boundaries
/// count).
pub fn id_of(kind: &str, parts: &[&[u8]]) -> u64 {
    let mut h = ring::digest::Context::new(&ring::digest::SHA256);
    h.update(kind.as_bytes());
    for p in parts {
        h.update(&(p.len() as u64).to_le_bytes());
        h.update(p);
    }
    let digest = h.finish();
    let mut key = [0u8; 32];
    key.copy_from_slice(digest.as_ref());
    static IDS: OnceLock<Mutex<HashMap<[u8; 32], u64>>> = OnceLock::new();
    let mut ids = IDS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    let next = ids.len() as u64 + 1;
    *ids.entry(key).or_insert(next)
}

#[cfg(test)]
mod tests {
    use super::id_of;

    #[test]
    fn same_content_same_id() {
        let a = id_of("t", &[b"x", b"yz"]);
        assert_eq!(a, id_of("t", &[b"x", b"yz"]));
        assert_ne!(a, id_of("t", &[b"xy", b"z"]));
        assert_ne!(a, id_of("u", &[b"x", b"yz"]));
    }
}
