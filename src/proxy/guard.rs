//! Request guards run before anything else looks at a request: size limits and framing checks
//! that close the doors request smuggling uses.
//!
//! ```toml
//! [servers.web]
//! max_header_size = "64KB"   # request line + headers; over it → 431
//! max_uri_size = "8KB"       # over it → 414
//! ```
//!
//! An HTTP/1.1 request without `Host` gets 400 (RFC 9112 §3.2).
//!
//! Framing, as nginx does it: a request with both `Content-Length` and `Transfer-Encoding`,
//! more than one `Transfer-Encoding`, any transfer coding other than exactly `chunked`, or a
//! `Content-Length` that is not plain digits gets 400, and the connection is closed so nothing
//! after it on the wire is read as a request. Pingora itself drops the `Content-Length` of a
//! CL+TE request and goes on; we refuse it instead, which is why the raw header bytes are read
//! here.

use crate::config::model::Server;
use crate::error::http_status;
use pingora::proxy::Session;

/// The size limits of a request head, as both engines apply them.
#[derive(Debug, Clone, Copy)]
pub struct SizeLimits {
    /// `max_uri_size`: a longer target gets 414
    pub max_uri: usize,
    /// `max_header_size`: a larger head (as [`size_status`] counts it) gets 431
    pub max_head: usize,
}

impl SizeLimits {
    pub fn of(server: &Server) -> SizeLimits {
        SizeLimits {
            max_uri: server.max_uri_size,
            max_head: server.max_header_size,
        }
    }
}

/// The size verdict on a head, in order: the target (414), then the whole head (431). The
/// head counts the method, the target, 12 bytes for the version and line ends, and each
/// field's name and value plus 4 (`: ` and CRLF). `fields`: name and value lengths.
pub fn size_status(
    limits: SizeLimits,
    method: usize,
    target: usize,
    fields: impl Iterator<Item = (usize, usize)>,
) -> Option<u16> {
    if target > limits.max_uri {
        return Some(414);
    }
    let head = target + method + 12 + fields.map(|(n, v)| n + v + 4).sum::<usize>();
    (head > limits.max_head).then_some(431)
}

/// Check one request. `Err` carries the status to answer with.
pub fn check(session: &Session, server: &Server) -> Result<(), Box<pingora::Error>> {
    let req = session.req_header();
    let fields = req.headers.iter().map(|(k, v)| (k.as_str().len(), v.len()));
    let sizes = size_status(
        SizeLimits::of(server),
        req.method.as_str().len(),
        req.raw_path().len(),
        fields,
    );
    if let Some(code) = sizes {
        return Err(http_status(code));
    }
    if session.is_http2() {
        return Ok(()); // h2 frames bodies itself; CL/TE do not apply
    }
    // RFC 9112 §3.2: an HTTP/1.1 request without a Host header is a 400
    if req.version == http::Version::HTTP_11 && req.headers.get(http::header::HOST).is_none() {
        return Err(http_status(400));
    }
    let te: Vec<&[u8]> = req
        .headers
        .get_all(http::header::TRANSFER_ENCODING)
        .iter()
        .map(|v| v.as_bytes())
        .collect();
    match te.as_slice() {
        [] => {}
        [one] if trim(one).eq_ignore_ascii_case(b"chunked") => {}
        _ => return Err(http_status(400)),
    }
    // Pingora has already dropped the Content-Length of a CL+TE request: look at the raw
    // header (a copy, so only when there is a Transfer-Encoding at all)
    if !te.is_empty()
        && count_raw_header(&session.as_downstream().to_h1_raw(), b"content-length") > 0
    {
        return Err(http_status(400));
    }
    for v in req.headers.get_all(http::header::CONTENT_LENGTH) {
        let v = trim(v.as_bytes());
        if v.is_empty() || !v.iter().all(u8::is_ascii_digit) {
            return Err(http_status(400));
        }
    }
    Ok(())
}

/// `b` without leading and trailing whitespace.
pub fn trim(b: &[u8]) -> &[u8] {
    let start = b
        .iter()
        .position(|c| !c.is_ascii_whitespace())
        .unwrap_or(b.len());
    let end = b
        .iter()
        .rposition(|c| !c.is_ascii_whitespace())
        .map_or(start, |e| e + 1);
    &b[start..end]
}

/// How many header lines in a raw HTTP/1 header block are named `name` (case-insensitive).
fn count_raw_header(raw: &[u8], name: &[u8]) -> usize {
    raw.split(|b| *b == b'\n')
        .skip(1)
        .filter(|line| {
            line.len() > name.len()
                && line[..name.len()].eq_ignore_ascii_case(name)
                && matches!(line[name.len()], b':' | b' ' | b'\t')
        })
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_raw_headers() {
        let raw = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\ncontent-length : 4\r\nContent-Lengthy: 1\r\n\r\n";
        assert_eq!(count_raw_header(raw, b"content-length"), 2);
        assert_eq!(trim(b"  chunked \t"), b"chunked");
    }
}
