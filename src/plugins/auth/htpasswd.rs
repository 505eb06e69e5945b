//! htpasswd lines (`user:hash`) and checking a password against them: bcrypt (`$2a$`, `$2b$`,
//! `$2y$`), `{SHA}` (base64 of SHA-1, as `htpasswd -s` writes), and plain text only when the
//! operator allows it. Other schemes (`$apr1$` MD5, crypt) are refused at load with a hint.
//!
//! bcrypt is slow on purpose (milliseconds), so a verified password is remembered for a few
//! minutes as a keyed digest (never the password), and a check runs on a blocking thread,
//! not the worker's: a flood of wrong passwords cannot stall other requests.

use super::same;
use ring::digest;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How a stored password is kept.
#[derive(Clone, PartialEq, Eq)]
pub enum Hash {
    Bcrypt(String),
    /// SHA-1 digest
    Sha(Vec<u8>),
    Plain(String),
}

impl std::fmt::Debug for Hash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Hash::Bcrypt(_) => "Bcrypt(..)",
            Hash::Sha(_) => "Sha(..)",
            Hash::Plain(_) => "Plain(..)",
        })
    }
}

/// Parse one `user:hash` line. `where_` names the line for messages.
pub fn parse_line(
    line: &str,
    allow_plaintext: bool,
    where_: &str,
) -> Result<(String, Hash), String> {
    let (user, hash) = line
        .split_once(':')
        .ok_or_else(|| format!("{where_}: expected `user:hash`"))?;
    if user.is_empty() {
        return Err(format!("{where_}: the user name is empty"));
    }
    let h = if hash.starts_with("$2a$") || hash.starts_with("$2b$") || hash.starts_with("$2y$") {
        hash.parse::<bcrypt::HashParts>()
            .map_err(|e| format!("{where_}: user `{user}`: bad bcrypt hash: {e}"))?;
        Hash::Bcrypt(hash.to_string())
    } else if let Some(b64) = hash.strip_prefix("{SHA}") {
        use base64::Engine;
        let d = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .map_err(|_| format!("{where_}: user `{user}`: bad {{SHA}} hash (not base64)"))?;
        if d.len() != 20 {
            return Err(format!(
                "{where_}: user `{user}`: bad {{SHA}} hash (not 20 bytes)"
            ));
        }
        Hash::Sha(d)
    } else if hash.starts_with("$apr1$")
        || hash.starts_with("$1$")
        || hash.starts_with("$5$")
        || hash.starts_with("$6$")
    {
        return Err(format!(
            "{where_}: user `{user}`: this hash scheme is not supported; use bcrypt \
             (`htpasswd -B`) or {{SHA}}"
        ));
    } else if allow_plaintext {
        Hash::Plain(hash.to_string())
    } else {
        return Err(format!(
            "{where_}: user `{user}`: the password is not a bcrypt or {{SHA}} hash; hash it \
             (`htpasswd -nB {user}`) or set allow_plaintext = true"
        ));
    };
    Ok((user.to_string(), h))
}

/// Whether `password` matches `hash` (slow for bcrypt).
pub fn verify(password: &str, hash: &Hash) -> bool {
    match hash {
        Hash::Bcrypt(h) => bcrypt::verify(password, h).unwrap_or(false),
        Hash::Sha(d) => same(
            digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, password.as_bytes()).as_ref(),
            d,
        ),
        Hash::Plain(p) => same(password.as_bytes(), p.as_bytes()),
    }
}

/// Passwords verified lately, as keyed digests of `user:password`, for `TTL`.
#[derive(Debug)]
pub struct Verified {
    key: ring::hmac::Key,
    seen: Mutex<HashMap<[u8; 32], Instant>>,
}

const TTL: Duration = Duration::from_secs(300);
const MAX: usize = 4096;

impl Verified {
    pub fn new() -> Verified {
        let rng = ring::rand::SystemRandom::new();
        let key = ring::hmac::Key::generate(ring::hmac::HMAC_SHA256, &rng)
            .unwrap_or_else(|_| ring::hmac::Key::new(ring::hmac::HMAC_SHA256, b"tidegate"));
        Verified {
            key,
            seen: Mutex::new(HashMap::new()),
        }
    }

    pub fn digest(&self, user: &str, password: &str) -> [u8; 32] {
        let mut ctx = ring::hmac::Context::with_key(&self.key);
        ctx.update(user.as_bytes());
        ctx.update(b"\0");
        ctx.update(password.as_bytes());
        let mut out = [0u8; 32];
        out.copy_from_slice(ctx.sign().as_ref());
        out
    }

    pub fn known(&self, d: &[u8; 32]) -> bool {
        let seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        seen.get(d).is_some_and(|t| t.elapsed() < TTL)
    }

    pub fn remember(&self, d: [u8; 32]) {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if seen.len() >= MAX {
            seen.retain(|_, t| t.elapsed() < TTL);
            if seen.len() >= MAX {
                seen.clear();
            }
        }
        seen.insert(d, Instant::now());
    }
}

impl Default for Verified {
    fn default() -> Self {
        Verified::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemes() {
        // `htpasswd -nbs bob secret`
        let (u, h) = parse_line("bob:{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ=", false, "l").unwrap();
        assert_eq!(u, "bob");
        assert!(verify("secret", &h));
        assert!(!verify("Secret", &h));
        let b = bcrypt::hash("pw", 4).unwrap();
        let (_, h) = parse_line(&format!("al:{b}"), false, "l").unwrap();
        assert!(verify("pw", &h) && !verify("px", &h));
        assert!(parse_line("c:plain", false, "l")
            .unwrap_err()
            .contains("allow_plaintext"));
        assert!(verify(
            "plain",
            &parse_line("c:plain", true, "l").unwrap().1
        ));
        assert!(parse_line("d:$apr1$x$y", true, "l")
            .unwrap_err()
            .contains("not supported"));
        assert!(parse_line("nocolon", true, "l").is_err());
    }
}
