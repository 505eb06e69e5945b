//! Access control by who is asking: `ip_restriction` (the client IP after `trusted_proxies`),
//! `referer_restriction` (the `Referer`'s host), `ua_restriction` (the `User-Agent`).
//!
//! Each has `allow` and/or `deny` lists: with `allow`, only what it matches gets in; `deny`
//! refuses what it matches, and wins over `allow`. A refusal is `status` (default 403) with
//! `body`.

pub mod ip;
pub mod patterns;
pub mod referer;
pub mod ua;

use super::{Answer, Flow, PluginConfError};
use bytes::Bytes;
use patterns::Patterns;

/// The refusal every restriction answers with.
#[derive(Debug, Clone)]
pub struct Refusal(Answer);

impl Refusal {
    pub fn new(status: Option<u16>, body: Option<String>) -> Result<Refusal, PluginConfError> {
        let status = status.unwrap_or(403);
        if !(400..=599).contains(&status) {
            return Err(PluginConfError::at(
                "status",
                format!("{status}: a refusal is a 4xx or 5xx status"),
            ));
        }
        Ok(Refusal(Answer {
            status,
            headers: vec![(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("text/plain; charset=utf-8"),
            )],
            body: Bytes::from(body.unwrap_or_else(|| "Forbidden\n".into())),
        }))
    }

    pub fn answer(&self) -> Answer {
        self.0.clone()
    }

    /// Go on when `ok`, else this refusal.
    pub fn flow(&self, ok: bool) -> Flow {
        if ok {
            Flow::Continue
        } else {
            Flow::Respond(self.answer())
        }
    }
}

/// `allow` and/or `deny` lists of text patterns (case-blind).
#[derive(Debug)]
pub struct Lists {
    allow: Option<Patterns>,
    deny: Option<Patterns>,
}

impl Lists {
    pub fn new(
        allow: Option<&[String]>,
        deny: Option<&[String]>,
    ) -> Result<Lists, PluginConfError> {
        if allow.is_none() && deny.is_none() {
            return Err(PluginConfError::at("allow", "set `allow`, `deny` or both"));
        }
        Ok(Lists {
            allow: allow.map(|l| Patterns::new("allow", l, true)).transpose()?,
            deny: deny.map(|l| Patterns::new("deny", l, true)).transpose()?,
        })
    }

    /// Whether `text` gets in.
    pub fn admits(&self, text: &str) -> bool {
        admits(
            self.allow.as_ref().map(|p| p.matches(text)),
            self.deny.as_ref().map(|p| p.matches(text)),
        )
    }
}

/// Whether a request gets in, given whether the allow list (if any) and the deny list (if
/// any) matched it.
pub fn admits(allow: Option<bool>, deny: Option<bool>) -> bool {
    match (allow, deny) {
        (_, Some(true)) => false,
        (Some(a), _) => a,
        (None, _) => true,
    }
}
