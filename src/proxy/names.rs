//! Header names kept for reuse, and which names end at this hop.
//!
//! Names kept for reuse, so a name that every message (or every script call)
//! repeats is neither parsed again nor, for a name `http` does not know (`X-Api-Key`),
//! allocated again. The own HTTP/1 loop keeps one per connection; the Lua API one per thread.

use http::HeaderName;

/// Names kept, at most this many.
const NAMES_KEPT: usize = 32;

/// Header names seen so far. A kept name is cloned (a reference count); names are matched by
/// their bytes as sent, the one after the last match first (messages repeat their fields in
/// the same order). A client sending many distinct names only fills it.
#[derive(Default)]
pub struct Names {
    kept: Vec<(Box<[u8]>, HeaderName)>,
    next: usize,
}

impl Names {
    /// The name for `raw`; `None` when it is not a valid field name.
    pub fn get(&mut self, raw: &[u8]) -> Option<HeaderName> {
        let at = match self.kept.get(self.next) {
            Some((k, _)) if **k == *raw => Some(self.next),
            _ => self.kept.iter().position(|(k, _)| **k == *raw),
        };
        if let Some(i) = at {
            self.next = i + 1;
            return Some(self.kept[i].1.clone());
        }
        let n = HeaderName::from_bytes(raw).ok()?;
        if self.kept.len() < NAMES_KEPT {
            self.kept.push((raw.into(), n.clone()));
            self.next = self.kept.len();
        }
        Some(n)
    }
}

/// The fields that end at this hop: the ones Pingora's path strips from the upstream request
/// too (`tests/engine_diff.rs` compares what both send).
const HOP_BY_HOP: [&str; 10] = [
    "connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "keep-alive",
    "proxy-connection",
    "http2-settings",
];

/// Whether the field `k` ends at this hop.
pub fn hop_by_hop(k: &http::HeaderName) -> bool {
    hop_by_hop_raw(k.as_str().as_bytes())
}

/// [`hop_by_hop`] for a name as sent (any case).
pub fn hop_by_hop_raw(k: &[u8]) -> bool {
    HOP_BY_HOP
        .iter()
        .any(|h| h.len() == k.len() && h.as_bytes().eq_ignore_ascii_case(k))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_names_are_the_parsed_ones() {
        let mut n = Names::default();
        for _ in 0..3 {
            assert_eq!(n.get(b"X-Api-Key").unwrap(), "x-api-key");
            assert_eq!(n.get(b"host").unwrap(), http::header::HOST);
            assert_eq!(n.get(b"x-api-key").unwrap(), "x-api-key");
        }
        assert!(n.get(b"bad name").is_none());
        assert!(n.get(b"").is_none());
        // past the limit names are still parsed right, only not kept
        for i in 0..100 {
            let raw = format!("x-{i}");
            assert_eq!(n.get(raw.as_bytes()).unwrap().as_str(), raw);
        }
        assert_eq!(n.kept.len(), NAMES_KEPT);
        assert_eq!(n.get(b"X-Api-Key").unwrap(), "x-api-key");
    }

    #[test]
    fn hop_by_hop_names_in_any_case() {
        assert!(hop_by_hop(&http::header::CONNECTION));
        assert!(hop_by_hop_raw(b"Keep-Alive") && hop_by_hop_raw(b"TE"));
        assert!(!hop_by_hop_raw(b"Host") && !hop_by_hop_raw(b"tee"));
    }
}
