//! The one error page: every error status tidegate answers itself (404, 413, 414, 431, 400
//! from the request guard, 500, 502, 504, ...) is rendered here, from `[basic]
//! error_template`, with no `Server` header.
//!
//! ```toml
//! [basic]
//! # HTML (the default is a short page like this one) or JSON (a template starting with `{"`);
//! # {status}, {reason} and {request_id} are filled in, escaped for the format
//! error_template = '{"error": {status}, "reason": "{reason}", "request_id": "{request_id}"}'
//! ```
//!
//! Whether the client's connection stays open is decided by [`super::failure`]: kept when the
//! request was read to its end, closed when its framing is in doubt.

use bytes::Bytes;

const DEFAULT_HTML: &str = "<!DOCTYPE html>\n<html><head><title>{status} {reason}</title></head>\n\
<body><h1>{status} {reason}</h1><p>request id: {request_id}</p></body></html>\n";

/// A parsed `error_template`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorPage {
    parts: Vec<Part>,
    json: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Status,
    Reason,
    RequestId,
}

impl Default for ErrorPage {
    fn default() -> Self {
        // the built-in template parses
        ErrorPage::parse(DEFAULT_HTML).unwrap_or(ErrorPage {
            parts: Vec::new(),
            json: false,
        })
    }
}

impl ErrorPage {
    /// Parse a template; an unknown `{name}` is an error naming it. `{{` and `}}` are literal
    /// braces (so a JSON template can hold objects).
    pub fn parse(t: &str) -> Result<ErrorPage, String> {
        let mut parts = Vec::new();
        let mut text = String::new();
        let mut rest = t;
        while let Some(i) = rest.find(['{', '}']) {
            text.push_str(&rest[..i]);
            let tail = &rest[i..];
            if tail.starts_with("{{") || tail.starts_with("}}") {
                text.push_str(&tail[..1]);
                rest = &tail[2..];
                continue;
            }
            let name_end = tail.find('}').filter(|_| tail.starts_with('{'));
            let part = name_end.and_then(|e| match &tail[1..e] {
                "status" => Some(Part::Status),
                "reason" => Some(Part::Reason),
                "request_id" => Some(Part::RequestId),
                _ => None,
            });
            match (part, name_end) {
                (Some(p), Some(e)) => {
                    if !text.is_empty() {
                        parts.push(Part::Text(std::mem::take(&mut text)));
                    }
                    parts.push(p);
                    rest = &tail[e + 1..];
                }
                // a brace that opens no known field is kept as text (JSON's own braces)
                _ => {
                    text.push_str(&tail[..1]);
                    rest = &tail[1..];
                }
            }
        }
        text.push_str(rest);
        if !text.is_empty() {
            parts.push(Part::Text(text));
        }
        let json = t.trim_start().starts_with("{\"") || t.trim_start().starts_with('[');
        if !parts.iter().any(|p| matches!(p, Part::Status)) {
            return Err("the template must contain {status}".into());
        }
        Ok(ErrorPage { parts, json })
    }

    pub fn content_type(&self) -> &'static str {
        if self.json {
            "application/json"
        } else {
            "text/html; charset=utf-8"
        }
    }

    /// The page for `status`.
    pub fn render(&self, status: u16, request_id: Option<&str>) -> Bytes {
        let reason = http::StatusCode::from_u16(status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("Error");
        let mut out = String::with_capacity(256);
        for p in &self.parts {
            match p {
                Part::Text(t) => out.push_str(t),
                Part::Status => out.push_str(&status.to_string()),
                Part::Reason => self.escaped(reason, &mut out),
                Part::RequestId => self.escaped(request_id.unwrap_or("-"), &mut out),
            }
        }
        Bytes::from(out)
    }

    fn escaped(&self, v: &str, out: &mut String) {
        if self.json {
            crate::observability::access_log::json_escape(v, out);
            return;
        }
        for c in v.chars() {
            match c {
                '<' => out.push_str("&lt;"),
                '>' => out.push_str("&gt;"),
                '&' => out.push_str("&amp;"),
                '"' => out.push_str("&quot;"),
                c => out.push(c),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_by_default_json_when_asked() {
        let html = ErrorPage::default();
        let page = html.render(502, Some("abc"));
        let page = std::str::from_utf8(&page).unwrap();
        assert!(
            page.contains("<h1>502 Bad Gateway</h1>") && page.contains("abc"),
            "{page}"
        );
        assert_eq!(html.content_type(), "text/html; charset=utf-8");

        let json =
            ErrorPage::parse(r#"{"error": {status}, "reason": "{reason}", "id": "{request_id}"}"#)
                .unwrap();
        assert_eq!(json.content_type(), "application/json");
        let body = json.render(404, Some("a\"b"));
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["error"], 404);
        assert_eq!(v["reason"], "Not Found");
        assert_eq!(v["id"], "a\"b");
    }

    #[test]
    fn a_template_needs_the_status() {
        assert!(ErrorPage::parse("oops").is_err());
        assert_eq!(
            &ErrorPage::parse("{{x}} {status} {other}")
                .unwrap()
                .render(500, None)[..],
            b"{x} 500 {other}"
        );
    }
}
