//! Reading credentials and keys from a request for the plugins: cookies, query arguments
//! (percent-decoded), and taking a query argument out of the URI (`hide_credentials`).

use pingora::http::RequestHeader;
use std::borrow::Cow;

/// A cookie's value from the request's `Cookie` headers.
pub fn cookie<'a>(req: &'a RequestHeader, name: &str) -> Option<&'a str> {
    crate::proxy::upstream::cookie(req, name)
}

/// A query argument's value, percent-decoded (`+` is a space); the first of its name.
pub fn query<'a>(req: &'a RequestHeader, name: &str) -> Option<Cow<'a, str>> {
    let raw = crate::routing::rules::query_arg(req.uri.query()?, name)?;
    Some(decode(raw))
}

/// Percent-decode a query value; invalid UTF-8 is replaced, not refused.
pub fn decode(raw: &str) -> Cow<'_, str> {
    if !raw.contains(['%', '+']) {
        return Cow::Borrowed(raw);
    }
    let spaced = raw.replace('+', " ");
    Cow::Owned(
        percent_encoding::percent_decode_str(&spaced)
            .decode_utf8_lossy()
            .into_owned(),
    )
}

/// Remove every `name=...` argument from the request's query (the URI keeps its path and the
/// other arguments in order). Nothing happens when there is none.
pub fn remove_query_arg(req: &mut RequestHeader, name: &str) {
    let Some(q) = req.uri.query() else { return };
    let kept: Vec<&str> = q
        .split('&')
        .filter(|pair| pair.split_once('=').map_or(*pair, |(k, _)| k) != name)
        .collect();
    if kept.len() == q.split('&').count() {
        return;
    }
    let path = req.uri.path();
    let pq = if kept.is_empty() {
        path.to_string()
    } else {
        format!("{path}?{}", kept.join("&"))
    };
    let mut parts = req.uri.clone().into_parts();
    if let Ok(p) = http::uri::PathAndQuery::from_maybe_shared(bytes::Bytes::from(pq)) {
        parts.path_and_query = Some(p);
        if let Ok(u) = http::Uri::from_parts(parts) {
            req.set_uri(u);
        }
    }
}

/// Remove one cookie from the `Cookie` headers, keeping the others.
pub fn remove_cookie(req: &mut RequestHeader, name: &str) {
    let all: Vec<String> = req
        .headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .map(str::trim)
        .filter(|kv| !kv.is_empty() && kv.split_once('=').map_or(*kv, |(k, _)| k) != name)
        .map(str::to_string)
        .collect();
    req.remove_header(&http::header::COOKIE);
    if !all.is_empty() {
        let _ = req.insert_header(http::header::COOKIE, all.join("; "));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(uri: &str) -> RequestHeader {
        let mut r = match RequestHeader::build("GET", uri.as_bytes(), None) {
            Ok(r) => r,
            Err(e) => panic!("{e}"),
        };
        let _ = r.insert_header("cookie", "a=1; sid=s3cret; b=2");
        r
    }

    #[test]
    fn query_is_decoded_and_removed() {
        let mut r = req("/p?x=1&api_key=a%2Fb+c&y=2");
        assert_eq!(query(&r, "api_key").as_deref(), Some("a/b c"));
        remove_query_arg(&mut r, "api_key");
        assert_eq!(r.uri.to_string(), "/p?x=1&y=2");
        let mut r = req("/p?api_key=k");
        remove_query_arg(&mut r, "api_key");
        assert_eq!(r.uri.to_string(), "/p");
    }

    #[test]
    fn cookie_read_and_removed() {
        let mut r = req("/");
        assert_eq!(cookie(&r, "sid"), Some("s3cret"));
        remove_cookie(&mut r, "sid");
        assert_eq!(
            r.headers.get("cookie").and_then(|v| v.to_str().ok()),
            Some("a=1; b=2")
        );
    }
}
