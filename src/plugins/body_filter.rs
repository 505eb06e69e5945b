//! What the plugins that rewrite response bodies share (`compression`, `sub_filter`, Lua's
//! `on_body`): the response types they take, and turning a response over to the body phase.

use super::PluginConfError;
use crate::proxy::ctx::Ctx;
use crate::proxy::exchange::Downstream;
use pingora::http::ResponseHeader;

/// One type pattern: `text/html`, `text/*`, or `application/*+json` (a suffix).
#[derive(Debug, Clone)]
struct TypePattern {
    main: String,
    /// `None`: any subtype; `Some((true, rest))`: ends with `rest`; `Some((false, s))`: `s`
    sub: Option<(bool, String)>,
}

impl TypePattern {
    fn parse(s: &str) -> Option<TypePattern> {
        let lower = s.trim().to_ascii_lowercase();
        let (main, sub) = lower.split_once('/')?;
        if main.is_empty() || sub.is_empty() {
            return None;
        }
        let sub = match sub {
            "*" => None,
            s => match s.strip_prefix('*') {
                Some(rest) => Some((true, rest.to_string())),
                None => Some((false, s.to_string())),
            },
        };
        Some(TypePattern {
            main: main.to_string(),
            sub,
        })
    }

    fn matches(&self, main: &str, sub: &str) -> bool {
        main == self.main
            && match &self.sub {
                None => true,
                Some((true, rest)) => sub.ends_with(rest.as_str()),
                Some((false, exact)) => sub == exact,
            }
    }
}

/// The response types a body filter takes (the plugin's `types` key).
#[derive(Debug, Clone)]
pub struct Types(Vec<TypePattern>);

impl Types {
    pub fn parse(list: &[String]) -> Result<Types, PluginConfError> {
        list.iter()
            .map(|t| {
                TypePattern::parse(t).ok_or_else(|| {
                    PluginConfError::at(
                        "types",
                        format!("`{t}` is not a type like text/html or text/*"),
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Types)
    }

    /// Whether the response's `Content-Type` is one of these.
    pub fn take(&self, resp: &ResponseHeader) -> bool {
        let Some(ct) = resp
            .headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
        else {
            return false;
        };
        let mime = ct
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        let Some((main, sub)) = mime.split_once('/') else {
            return false;
        };
        self.0.iter().any(|t| t.matches(main, sub))
    }
}

/// Whether a response carries a body at all (not HEAD, 1xx, 204, 304).
pub fn has_body(session: &dyn Downstream, resp: &ResponseHeader) -> bool {
    !matches!(resp.status.as_u16(), 100..=199 | 204 | 304) && session.method() != http::Method::HEAD
}

/// Whether a response's body is encoded (other than `identity`).
pub fn encoded(resp: &ResponseHeader) -> bool {
    resp.headers
        .get(http::header::CONTENT_ENCODING)
        .is_some_and(|v| !v.as_bytes().eq_ignore_ascii_case(b"identity"))
}

/// The body will change on its way: its length goes, HTTP/1.1 sends it chunked, and the
/// location's `on_body` hooks run on it.
pub fn filter_body(session: &dyn Downstream, resp: &mut ResponseHeader, ctx: &mut Ctx) {
    resp.remove_header(&http::header::CONTENT_LENGTH);
    resp.remove_header(&http::header::ACCEPT_RANGES);
    if session.req().version == http::Version::HTTP_11 && !session.http2() {
        let _ = resp.insert_header(http::header::TRANSFER_ENCODING, "chunked");
    }
    ctx.body_filtered = true;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_patterns() {
        let p = |s: &str| TypePattern::parse(s).unwrap();
        assert!(p("text/*").matches("text", "html"));
        assert!(p("application/*+json").matches("application", "problem+json"));
        assert!(!p("application/*+json").matches("application", "json"));
        assert!(p("application/json").matches("application", "json"));
        assert!(!p("application/json").matches("application", "jsonx"));
        assert!(TypePattern::parse("text").is_none());
    }
}
