//! What a `limit` counts by: `key = "ip" | "header:NAME" | "cookie:NAME" | "query:NAME" |
//! "path" | "location" | "user" | "ctx"`.

use crate::plugins::PluginConfError;
use crate::proxy::ctx::Ctx;
use crate::proxy::exchange::Downstream;
use std::borrow::Cow;

/// A parsed `key`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// the client IP after `trusted_proxies`
    Ip,
    /// a request header (lower-case name)
    Header(http::HeaderName),
    Cookie(String),
    Query(String),
    /// the request path (without the query)
    Path,
    /// the matched location's name
    Location,
    /// the authenticated user (an auth plugin earlier in the chain)
    User,
    /// `ctx.limit_key`, set by a Lua `on_request` hook earlier in the chain
    Ctx,
}

impl KeySource {
    pub fn parse(s: &str) -> Result<KeySource, PluginConfError> {
        let bad = |m: String| PluginConfError::at("key", m);
        let named = |rest: &str, what: &str| {
            let n = rest.trim();
            if n.is_empty() {
                Err(bad(format!(
                    "`{what}:` needs a name, e.g. `{what}:x-api-key`"
                )))
            } else {
                Ok(n.to_string())
            }
        };
        Ok(match s {
            "ip" => KeySource::Ip,
            "path" => KeySource::Path,
            "location" => KeySource::Location,
            "user" => KeySource::User,
            "ctx" => KeySource::Ctx,
            _ => match s.split_once(':') {
                Some(("header", n)) => {
                    let n = named(n, "header")?;
                    KeySource::Header(
                        http::HeaderName::from_bytes(n.to_ascii_lowercase().as_bytes())
                            .map_err(|_| bad(format!("`{n}` is not a header name")))?,
                    )
                }
                Some(("cookie", n)) => KeySource::Cookie(named(n, "cookie")?),
                Some(("query", n)) => KeySource::Query(named(n, "query")?),
                _ => {
                    return Err(bad(format!(
                        "unknown key `{s}`; one of ip, header:NAME, cookie:NAME, query:NAME, \
                         path, location, user, ctx"
                    )))
                }
            },
        })
    }

    /// This request's key; empty when the request has none (all such requests share it).
    pub fn value<'a>(&self, session: &'a dyn Downstream, ctx: &'a Ctx) -> Key<'a> {
        if let KeySource::Ip = self {
            return match ctx.client_ip {
                Some(ip) => Key::ip(ip),
                None => Key::Text(Cow::Borrowed("")),
            };
        }
        Key::Text(self.text(session, ctx))
    }

    fn text<'a>(&self, session: &'a dyn Downstream, ctx: &'a Ctx) -> Cow<'a, str> {
        let req = session.req();
        match self {
            KeySource::Ip => Cow::Borrowed(""),
            KeySource::Header(h) => Cow::Borrowed(
                req.headers
                    .get(h)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or(""),
            ),
            KeySource::Cookie(name) => {
                Cow::Borrowed(crate::plugins::request_parts::cookie(req, name).unwrap_or(""))
            }
            KeySource::Query(name) => {
                crate::plugins::request_parts::query(req, name).unwrap_or(Cow::Borrowed(""))
            }
            KeySource::Path => Cow::Borrowed(req.uri.path()),
            KeySource::Location => Cow::Borrowed(
                ctx.route
                    .as_ref()
                    .and_then(|r| ctx.state.config.locations.get(r.location))
                    .map(|l| l.name.as_str())
                    .unwrap_or(""),
            ),
            KeySource::User => Cow::Borrowed(ctx.plugin.user.as_deref().unwrap_or("")),
            KeySource::Ctx => Cow::Borrowed(ctx.plugin.limit_key.as_deref().unwrap_or("")),
        }
    }
}

/// A request's key: text borrowed from the request, or an IP address written on the stack
/// (no allocation per request).
pub enum Key<'a> {
    Text(Cow<'a, str>),
    Ip([u8; 48], usize),
}

impl Key<'_> {
    fn ip(ip: std::net::IpAddr) -> Key<'static> {
        let mut buf = [0u8; 48];
        let len = match ip {
            // the usual case, by hand: `write!` costs about a thousand instructions
            std::net::IpAddr::V4(v4) => {
                let mut at = 0;
                for (i, o) in v4.octets().iter().enumerate() {
                    if i > 0 {
                        buf[at] = b'.';
                        at += 1;
                    }
                    let mut n = itoa::Buffer::new();
                    let d = n.format(*o).as_bytes();
                    buf[at..at + d.len()].copy_from_slice(d);
                    at += d.len();
                }
                at
            }
            v6 => {
                use std::io::Write;
                let mut w = &mut buf[..];
                // an IPv6 address is at most 45 characters: it always fits
                let _ = write!(w, "{v6}");
                48 - w.len()
            }
        };
        Key::Ip(buf, len)
    }

    pub fn as_str(&self) -> &str {
        match self {
            Key::Text(t) => t,
            Key::Ip(b, n) => std::str::from_utf8(&b[..*n]).unwrap_or(""),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_form() {
        assert_eq!(KeySource::parse("ip").ok(), Some(KeySource::Ip));
        assert_eq!(
            KeySource::parse("cookie:sid").ok(),
            Some(KeySource::Cookie("sid".into()))
        );
        assert!(matches!(
            KeySource::parse("header:X-Api-Key"),
            Ok(KeySource::Header(h)) if h.as_str() == "x-api-key"
        ));
        let e = KeySource::parse("header:").err().map(|e| e.message);
        assert!(e.unwrap_or_default().contains("needs a name"));
        let e = KeySource::parse("host").err().map(|e| e.message);
        assert!(e.unwrap_or_default().contains("unknown key `host`"));
    }

    #[test]
    fn ip_keys_are_their_text() {
        for ip in [
            "127.0.0.1",
            "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255",
            "::1",
        ] {
            let a: std::net::IpAddr = ip.parse().unwrap();
            assert_eq!(Key::ip(a).as_str(), a.to_string());
        }
    }
}
