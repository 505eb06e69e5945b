//! The cache key: a template over the request.
//!
//! ```toml
//! key = "{scheme}://{host}{uri}"        # the default
//! key = "{host}{path}|{header:accept-language}|{cookie:tenant}"
//! ```
//!
//! `{method}` (HEAD counts as GET), `{scheme}`, `{host}`, `{path}`, `{query}`, `{uri}` (path and
//! query), `{header:NAME}`, `{cookie:NAME}`; anything else is literal text.

use crate::proxy::ctx::Ctx;
use crate::proxy::exchange::Downstream;

#[derive(Debug, Clone, PartialEq)]
enum Part {
    Text(String),
    Method,
    Scheme,
    Host,
    Path,
    Query,
    Uri,
    Header(String),
    Cookie(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct KeyTemplate(Vec<Part>);

impl KeyTemplate {
    pub fn parse(s: &str) -> Result<KeyTemplate, String> {
        let mut parts = Vec::new();
        let mut rest = s;
        while let Some(open) = rest.find('{') {
            if open > 0 {
                parts.push(Part::Text(rest[..open].to_string()));
            }
            let close = rest[open..]
                .find('}')
                .ok_or_else(|| format!("key `{s}`: a `{{` without its `}}`"))?;
            let name = &rest[open + 1..open + close];
            parts.push(match name {
                "method" => Part::Method,
                "scheme" => Part::Scheme,
                "host" => Part::Host,
                "path" => Part::Path,
                "query" => Part::Query,
                "uri" => Part::Uri,
                _ => match name.split_once(':') {
                    Some(("header", h)) if !h.is_empty() => Part::Header(h.to_ascii_lowercase()),
                    Some(("cookie", c)) if !c.is_empty() => Part::Cookie(c.to_string()),
                    _ => {
                        return Err(format!(
                            "key: `{{{name}}}` is not one of {{method}}, {{scheme}}, {{host}}, \
                             {{path}}, {{query}}, {{uri}}, {{header:NAME}}, {{cookie:NAME}}"
                        ))
                    }
                },
            });
            rest = &rest[open + close + 1..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_string()));
        }
        Ok(KeyTemplate(parts))
    }

    pub fn render(&self, session: &dyn Downstream, ctx: &Ctx) -> String {
        self.render_as(session, ctx, false)
    }

    /// The key of the GET this request names (a PURGE purges what a GET stored).
    pub fn render_as_get(&self, session: &dyn Downstream, ctx: &Ctx) -> String {
        self.render_as(session, ctx, true)
    }

    fn render_as(&self, session: &dyn Downstream, ctx: &Ctx, as_get: bool) -> String {
        let req = session.req();
        let mut out = String::with_capacity(64);
        for p in &self.0 {
            match p {
                Part::Text(t) => out.push_str(t),
                Part::Method => out.push_str(match req.method.as_str() {
                    _ if as_get => "GET",
                    "HEAD" => "GET",
                    m => m,
                }),
                Part::Scheme => out.push_str(ctx.scheme()),
                Part::Host => out.push_str(&ctx.host),
                Part::Path => out.push_str(req.uri.path()),
                Part::Query => out.push_str(req.uri.query().unwrap_or("")),
                Part::Uri => out.push_str(req.uri.path_and_query().map_or("/", |p| p.as_str())),
                Part::Header(h) => {
                    for v in req.headers.get_all(h.as_str()) {
                        out.push_str(&String::from_utf8_lossy(v.as_bytes()));
                    }
                }
                Part::Cookie(c) => {
                    if let Some(v) = crate::plugins::request_parts::cookie(req, c) {
                        out.push_str(v);
                    }
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses() {
        assert!(KeyTemplate::parse("{scheme}://{host}{uri}").is_ok());
        assert!(KeyTemplate::parse("{host}|{header:Accept}|{cookie:t}").is_ok());
        assert!(KeyTemplate::parse("{nope}").is_err());
        assert!(KeyTemplate::parse("{host").is_err());
    }
}
