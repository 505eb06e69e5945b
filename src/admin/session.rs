//! Logging in to the admin with a user and password (for the web UI): sessions in cookies,
//! a CSRF token for the session's unsafe requests, and failed logins rate-limited.
//!
//! ```toml
//! [admin]
//! user = "admin"                                   # or TIDEGATE_ADMIN_USER
//! password_hash = "$argon2id$v=19$m=19456,t=2,p=1$..."   # or a bcrypt $2b$...; or TIDEGATE_ADMIN_PASSWORD_HASH
//! ```
//!
//! - `POST /login` with `{"user": ..., "password": ...}` (JSON or a form): 200 with
//!   `{"user", "csrf"}` and a `tidegate_admin` cookie (`HttpOnly`, `SameSite=Strict`, 12 h);
//!   401 on a wrong user or password; after 5 failures from one address within a minute,
//!   429 with `Retry-After` until the minute is over.
//! - `GET /session`: the session's user and CSRF token (401 without one).
//! - `POST /logout`: the session ends.
//! - A request authenticated by the cookie (not the bearer token) with an unsafe method needs
//!   `X-CSRF-Token` with the session's token: a form posted from another site has neither
//!   the cookie (`SameSite=Strict`) nor the token.

use argon2::PasswordVerifier;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub const COOKIE: &str = "tidegate_admin";
const LIFETIME: Duration = Duration::from_secs(12 * 3600);
const WINDOW: Duration = Duration::from_secs(60);
const MAX_FAILURES: u32 = 5;
/// Sessions kept at most (the oldest go): a flood of logins cannot grow memory.
const MAX_SESSIONS: usize = 1000;

#[derive(Debug, Clone)]
pub struct Session {
    pub user: String,
    pub csrf: String,
    expires: Instant,
}

#[derive(Debug, Default)]
pub struct Sessions {
    live: Mutex<HashMap<String, Session>>,
    failures: Mutex<HashMap<IpAddr, (u32, Instant)>>,
}

fn random_hex() -> String {
    use ring::rand::SecureRandom;
    let mut b = [0u8; 32];
    // the system's generator does not fail on Linux; a zero id would still be refused below
    let _ = ring::rand::SystemRandom::new().fill(&mut b);
    hex::encode(b)
}

/// Whether `password` matches `hash` (bcrypt `$2a$/$2b$/$2y$`, or argon2 in PHC form).
pub fn verify(password: &str, hash: &str) -> bool {
    if hash.starts_with("$argon2") {
        argon2::Argon2::default()
            .verify_password(password.as_bytes(), hash)
            .is_ok()
    } else {
        bcrypt::verify(password, hash).unwrap_or(false)
    }
}

/// Whether `hash` is one [`verify`] can check.
pub fn hash_format_ok(hash: &str) -> bool {
    (hash.starts_with("$argon2") && argon2::PasswordHash::new(hash).is_ok())
        || hash.parse::<bcrypt::HashParts>().is_ok()
}

impl Sessions {
    /// Seconds until `ip` may try again, when it failed too often.
    pub fn blocked(&self, ip: Option<IpAddr>) -> Option<u64> {
        let ip = ip?;
        let f = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let (n, since) = f.get(&ip)?;
        let left = WINDOW.checked_sub(since.elapsed())?;
        (*n >= MAX_FAILURES).then(|| left.as_secs().max(1))
    }

    pub fn failed(&self, ip: Option<IpAddr>) {
        let Some(ip) = ip else { return };
        let mut f = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        if f.len() > 10_000 {
            f.retain(|_, (_, since)| since.elapsed() < WINDOW);
        }
        let e = f.entry(ip).or_insert((0, Instant::now()));
        if e.1.elapsed() >= WINDOW {
            *e = (0, Instant::now());
        }
        e.0 += 1;
    }

    /// A new session for `user`: its id and CSRF token.
    pub fn open(&self, user: &str) -> (String, Session) {
        let id = random_hex();
        let s = Session {
            user: user.to_string(),
            csrf: random_hex(),
            expires: Instant::now() + LIFETIME,
        };
        let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        live.retain(|_, s| s.expires > Instant::now());
        if live.len() >= MAX_SESSIONS {
            if let Some(oldest) = live
                .iter()
                .min_by_key(|(_, s)| s.expires)
                .map(|(k, _)| k.clone())
            {
                live.remove(&oldest);
            }
        }
        live.insert(id.clone(), s.clone());
        (id, s)
    }

    /// The session a request's cookie names, if it is live.
    pub fn of(&self, req: &pingora::http::RequestHeader) -> Option<(String, Session)> {
        let id = cookie(req)?;
        let live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        let s = live.get(&id)?;
        (s.expires > Instant::now()).then(|| (id, s.clone()))
    }

    pub fn close(&self, id: &str) {
        self.live
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
    }
}

fn cookie(req: &pingora::http::RequestHeader) -> Option<String> {
    req.headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.to_string())
        .filter(|v| v.len() == 64)
}

/// The `Set-Cookie` of a new session (`Secure` when the admin listener speaks TLS).
pub fn set_cookie(id: &str, secure: bool) -> String {
    format!(
        "{COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{}",
        LIFETIME.as_secs(),
        if secure { "; Secure" } else { "" }
    )
}

/// The `Set-Cookie` that ends it.
pub fn clear_cookie() -> String {
    format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0")
}

/// `user` and `password` from a JSON object or a form.
pub fn credentials(body: &[u8]) -> Option<(String, String)> {
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) {
        return Some((
            v.get("user")?.as_str()?.to_string(),
            v.get("password")?.as_str()?.to_string(),
        ));
    }
    let text = std::str::from_utf8(body).ok()?;
    let mut user = None;
    let mut password = None;
    for pair in text.split('&') {
        let (k, v) = pair.split_once('=')?;
        let v = crate::plugins::request_parts::decode(&v.replace('+', " ")).into_owned();
        match k {
            "user" => user = Some(v),
            "password" => password = Some(v),
            _ => {}
        }
    }
    Some((user?, password?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_and_limits() {
        let b = bcrypt::hash("pw", 4).unwrap();
        assert!(verify("pw", &b) && !verify("no", &b));
        assert!(hash_format_ok(&b));
        assert!(!hash_format_ok("pw"));
        let s = Sessions::default();
        let ip = Some(IpAddr::from([10, 0, 0, 1]));
        for _ in 0..MAX_FAILURES {
            assert!(s.blocked(ip).is_none());
            s.failed(ip);
        }
        assert!(s.blocked(ip).is_some());
        assert!(s.blocked(Some(IpAddr::from([10, 0, 0, 2]))).is_none());
        assert_eq!(
            credentials(b"user=ada&password=a+b%21"),
            Some(("ada".into(), "a b!".into()))
        );
    }
}
