//! HTTP-01 challenges being validated: token → key authorization, answered on every
//! plain-HTTP listener at `/.well-known/acme-challenge/TOKEN` before routing (so no location
//! or redirect can get in the way).
//!
//! The instance that orders keeps its tokens in memory and also stores them
//! (`challenges/TOKEN` under `[storage] dir`, and in etcd with `kind = "etcd"`, mirrored into
//! every instance's directory): instances behind one name answer each other's challenges,
//! whichever one the CA's validation reaches. A request
//! outside the prefix costs one string comparison.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{OnceLock, RwLock};

pub const PREFIX: &str = "/.well-known/acme-challenge/";

static PENDING: AtomicUsize = AtomicUsize::new(0);

fn tokens() -> &'static RwLock<HashMap<String, String>> {
    static T: OnceLock<RwLock<HashMap<String, String>>> = OnceLock::new();
    T.get_or_init(Default::default)
}

/// Answer `token` with `key_authorization` until [`remove`]d.
pub fn put(token: &str, key_authorization: &str) {
    let mut t = tokens().write().unwrap_or_else(|p| p.into_inner());
    t.insert(token.to_string(), key_authorization.to_string());
    PENDING.store(t.len(), Ordering::Release);
}

pub fn remove(token: &str) {
    let mut t = tokens().write().unwrap_or_else(|p| p.into_inner());
    t.remove(token);
    PENDING.store(t.len(), Ordering::Release);
}

/// The key authorization for a request to `path`, if it is a pending challenge: this
/// instance's, or one another instance wrote under `storage` (`None`: no ACME certificate
/// in the config, nothing to look at).
pub fn answer(path: &str, storage: Option<&Path>) -> Option<String> {
    let token = path.strip_prefix(PREFIX)?;
    if PENDING.load(Ordering::Acquire) > 0 {
        let mine = tokens()
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(token)
            .cloned();
        if mine.is_some() {
            return mine;
        }
    }
    // tokens are base64url: nothing else is looked up on disk
    let safe = !token.is_empty()
        && token.len() <= 128
        && token
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_');
    if !safe {
        return None;
    }
    let text = std::fs::read_to_string(file(storage?, token)).ok()?;
    // only a key authorization for this very token (TOKEN.THUMBPRINT)
    text.strip_prefix(token)
        .is_some_and(|rest| rest.starts_with('.'))
        .then_some(text)
}

fn file(storage: &Path, token: &str) -> PathBuf {
    storage.join(rel(token))
}

/// `challenges/TOKEN`, relative to the storage: where instances sharing it find the token.
pub fn rel(token: &str) -> String {
    format!("challenges/{token}")
}
