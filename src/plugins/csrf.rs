//! `csrf`: double-submit tokens. A page gets a signed token from `token_path` (in the body and
//! as a cookie); every unsafe request (POST, PUT, PATCH, DELETE, anything but GET, HEAD,
//! OPTIONS, TRACE) must send it back in the header too. A cross-site form can make the browser
//! send the cookie but cannot read it to set the header.
//!
//! ```toml
//! [plugins.csrf]
//! category = "csrf"
//! key = "a secret of at least 16 bytes"   # signs the tokens (HMAC-SHA256)
//! token_path = "/csrf-token"              # GET: {"token":"..."} and Set-Cookie
//! cookie = "tidegate_csrf"                # default
//! header = "x-csrf-token"                 # default
//! ttl = "1h"                              # default: a token expires after this
//! ```
//!
//! A token is `EXPIRY.NONCE.SIGNATURE`: it expires, and one made without the key (or for
//! another key) is refused. A refused request gets 403. The cookie is `HttpOnly`,
//! `SameSite=Strict`, and `Secure` over HTTPS.

use super::{Answer, Flow, Plugin, PluginConfError, PluginError};
use crate::config::units::parse_duration;
use crate::proxy::ctx::Ctx;
use crate::proxy::exchange::Downstream;
use async_trait::async_trait;
use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method};
use serde::Deserialize;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CsrfConf {
    pub key: String,
    pub token_path: Option<String>,
    pub cookie: Option<String>,
    pub header: Option<String>,
    pub ttl: Option<String>,
}

pub struct Csrf {
    key: ring::hmac::Key,
    token_path: String,
    cookie: String,
    header: HeaderName,
    ttl: Duration,
}

impl std::fmt::Debug for Csrf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Csrf({})", self.token_path)
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Csrf {
    pub fn new(c: CsrfConf) -> Result<Csrf, PluginConfError> {
        if c.key.len() < 16 {
            return Err(PluginConfError::at(
                "key",
                "use a secret of at least 16 bytes",
            ));
        }
        let cookie = c.cookie.unwrap_or_else(|| "tidegate_csrf".into());
        if cookie.is_empty()
            || !cookie
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        {
            return Err(PluginConfError::at(
                "cookie",
                format!("`{cookie}` is not a cookie name"),
            ));
        }
        let h = c.header.unwrap_or_else(|| "x-csrf-token".into());
        let header = HeaderName::from_bytes(h.to_ascii_lowercase().as_bytes())
            .map_err(|_| PluginConfError::at("header", format!("`{h}` is not a header name")))?;
        let token_path = c.token_path.unwrap_or_else(|| "/csrf-token".into());
        if !token_path.starts_with('/') {
            return Err(PluginConfError::at("token_path", "a path starts with `/`"));
        }
        let ttl = match c.ttl.as_deref() {
            Some(t) => parse_duration(t).map_err(|m| PluginConfError::at("ttl", m))?,
            None => Duration::from_secs(3600),
        };
        if ttl.is_zero() {
            return Err(PluginConfError::at("ttl", "must be longer than zero"));
        }
        Ok(Csrf {
            key: ring::hmac::Key::new(ring::hmac::HMAC_SHA256, c.key.as_bytes()),
            token_path,
            cookie,
            header,
            ttl,
        })
    }

    /// A new token, valid until `ttl` from now.
    pub fn issue(&self) -> String {
        use ring::rand::SecureRandom;
        let mut nonce = [0u8; 16];
        let _ = ring::rand::SystemRandom::new().fill(&mut nonce);
        let body = format!(
            "{}.{}",
            now().saturating_add(self.ttl.as_secs()),
            hex::encode(nonce)
        );
        let sig = ring::hmac::sign(&self.key, body.as_bytes());
        format!("{body}.{}", hex::encode(sig.as_ref()))
    }

    /// Whether `token` is ours and not expired.
    pub fn valid(&self, token: &str) -> bool {
        let Some((body, sig)) = token.rsplit_once('.') else {
            return false;
        };
        let Ok(sig) = hex::decode(sig) else {
            return false;
        };
        if ring::hmac::verify(&self.key, body.as_bytes(), &sig).is_err() {
            return false;
        }
        body.split_once('.')
            .and_then(|(exp, _)| exp.parse::<u64>().ok())
            .is_some_and(|exp| exp >= now())
    }

    fn token_answer(&self, ctx: &Ctx) -> Answer {
        let token = self.issue();
        let secure = if ctx.tls.is_some() { "; Secure" } else { "" };
        let cookie = format!(
            "{}={token}; Path=/; Max-Age={}; HttpOnly; SameSite=Strict{secure}",
            self.cookie,
            self.ttl.as_secs()
        );
        let mut headers = vec![
            (
                http::header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
            (
                http::header::CACHE_CONTROL,
                HeaderValue::from_static("no-store"),
            ),
        ];
        if let Ok(v) = HeaderValue::from_str(&cookie) {
            headers.push((http::header::SET_COOKIE, v));
        }
        Answer {
            status: 200,
            headers,
            body: Bytes::from(format!("{{\"token\":\"{token}\"}}\n")),
        }
    }
}

fn safe(m: &Method) -> bool {
    matches!(
        *m,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
    )
}

#[async_trait]
impl Plugin for Csrf {
    async fn on_request(
        &self,
        session: &mut dyn Downstream,
        ctx: &mut Ctx,
    ) -> Result<Flow, PluginError> {
        let req = session.req();
        if req.method == Method::GET && req.uri.path() == self.token_path {
            return Ok(Flow::Respond(self.token_answer(ctx)));
        }
        if safe(&req.method) {
            return Ok(Flow::Continue);
        }
        let cookie = super::request_parts::cookie(req, &self.cookie);
        let header = req.headers.get(&self.header).and_then(|v| v.to_str().ok());
        let ok = match (cookie, header) {
            (Some(c), Some(h)) => super::auth::same(c.as_bytes(), h.as_bytes()) && self.valid(h),
            _ => false,
        };
        if ok {
            return Ok(Flow::Continue);
        }
        Ok(Flow::Respond(Answer {
            status: 403,
            headers: vec![(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            )],
            body: Bytes::from_static(b"CSRF token missing or invalid\n"),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn csrf(key: &str, ttl: &str) -> Csrf {
        Csrf::new(CsrfConf {
            key: key.into(),
            token_path: None,
            cookie: None,
            header: None,
            ttl: Some(ttl.into()),
        })
        .unwrap()
    }

    #[test]
    fn tokens_are_signed_and_expire() {
        let a = csrf("0123456789abcdef-a", "1h");
        let b = csrf("0123456789abcdef-b", "1h");
        let t = a.issue();
        assert!(a.valid(&t));
        assert!(!b.valid(&t), "another key's token");
        let mut forged = t.clone();
        forged.replace_range(0..1, "9");
        assert!(!a.valid(&forged), "an edited expiry");
        let (body, _) = t.rsplit_once('.').unwrap();
        let old = format!("1.{}", body.split_once('.').unwrap().1);
        let sig = ring::hmac::sign(&a.key, old.as_bytes());
        assert!(
            !a.valid(&format!("{old}.{}", hex::encode(sig.as_ref()))),
            "expired"
        );
        assert!(!a.valid("garbage") && !a.valid(""));
    }
}
