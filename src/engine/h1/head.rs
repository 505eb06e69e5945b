//! Request heads parsed in place, and the rule that decides which requests the own loop
//! serves.
//!
//! The head is parsed with `httparse` straight from the connection's read buffer; header
//! values and the target become slices of that buffer (`Bytes`), so nothing is copied. The
//! loop serves the plain requests that make nearly all traffic: HTTP/1.1, origin-form target,
//! one `Host`, no body or a body with one plain-digit `Content-Length` or one
//! `Transfer-Encoding: chunked` (not both), at most `Expect: 100-continue`, and WebSocket
//! upgrades (`Upgrade: websocket`, `Connection: upgrade`, no body), within the server's
//! size limits. Every other request,
//! and every head `httparse` refuses (obs-fold, space before a colon, bare CR, NUL, …), is
//! handed to Pingora's path with the bytes still unread, where the guard (`proxy/guard.rs`)
//! gives the same verdict it always did. So the own loop never has to be more lenient or
//! stricter than the guard: it only has to recognise what is plainly fine.

use super::req_head::ReqHead;
use crate::proxy::guard::{self, trim, SizeLimits};
use bytes::{Bytes, BytesMut};
use http::{HeaderMap, HeaderValue, Method, Uri};

/// At most this many header lines are parsed here; a request with more is handed over.
pub const MAX_HEADERS: usize = 64;

/// What the bytes at the start of the read buffer are, once they are a complete head or
/// over a limit.
#[allow(clippy::large_enum_variant)] // moved once per request; a Box would be an allocation
pub enum Parsed {
    /// a plain request this loop serves; its head bytes were taken from the buffer
    Request(Request),
    /// anything else: Pingora's path reads it from the start
    HandOver,
    /// taken from the buffer but not representable: answer 400 and close
    Malformed,
    /// over a size limit (414, 431): answer with the error page; `keep`: the head was
    /// taken from the buffer whole and nothing follows it, so the connection can go on
    Refuse { status: u16, keep: bool },
}

/// A head not complete yet: wait for more, or refuse it once it is over a limit whatever
/// comes next (414 while still in the request line, else 431), at any size.
fn oversize(buf: &BytesMut, limits: &SizeLimits) -> Option<Parsed> {
    if line_too_long(buf, limits) {
        return Some(Parsed::Refuse {
            status: 414,
            keep: false,
        });
    }
    if buf.len() > limits.max_head + 2 {
        return Some(Parsed::Refuse {
            status: 431,
            keep: false,
        });
    }
    None
}

/// The request line is longer than method, target limit and version could make it.
fn line_too_long(buf: &[u8], limits: &SizeLimits) -> bool {
    let line_end = buf.iter().position(|b| *b == b'\n').unwrap_or(buf.len());
    line_end > limits.max_uri + 64
}

/// Refuse with `status`; with `Some(head_len)` the head is consumed and the connection kept.
fn refuse(buf: &mut BytesMut, status: u16, consumed: Option<usize>) -> Option<Parsed> {
    if let Some(n) = consumed {
        let _ = buf.split_to(n);
    }
    Some(Parsed::Refuse {
        status,
        keep: consumed.is_some(),
    })
}

/// How a request body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFraming {
    /// `Content-Length` (0 without one)
    Length(u64),
    /// `Transfer-Encoding: chunked`
    Chunked,
}

/// One parsed request.
pub struct Request {
    /// its fields still in the bytes read (`req_head.rs`)
    pub head: ReqHead,
    pub body: BodyFraming,
    /// the client asked to close after this request (`Connection: close`)
    pub close: bool,
    /// `Expect: 100-continue`: the client may wait for `100 Continue` before its body
    pub expect_continue: bool,
    /// the client asks to switch protocols (`Upgrade`, `Connection: upgrade`)
    pub upgrade: bool,
}

/// Parse the head at the start of `buf`; `None` while it is not complete (and within the
/// limits). On [`Parsed::Request`] its bytes are split off
/// `buf`; otherwise `buf` is untouched. `spans` is kept across requests for its capacity;
/// the request takes it (and gives it back at its end, `ReqHead::recycle`).
pub fn parse(buf: &mut BytesMut, limits: &SizeLimits, spans: &mut Vec<Span>) -> Option<Parsed> {
    let mut lines = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut lines);
    let head_len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return oversize(buf, limits),
        Err(httparse::Error::TooManyHeaders) => return Some(Parsed::HandOver),
        // a request line longer than the limit is 414 whatever follows it
        Err(_) if line_too_long(buf, limits) => return refuse(buf, 414, None),
        Err(_) => return Some(Parsed::HandOver),
    };
    let (Some(method), Some(target), Some(version)) = (req.method, req.path, req.version) else {
        return Some(Parsed::HandOver);
    };
    if version != 1
        || !target.starts_with('/')
        || !plain_target(target.as_bytes())
        || method == "CONNECT"
    {
        return Some(Parsed::HandOver);
    }
    let base = buf.as_ptr() as usize;
    spans.clear();
    let mut hosts = 0;
    let mut body_len: Option<u64> = None;
    let (mut chunked, mut expect_continue) = (false, false);
    let (mut upgrade, mut conn_upgrade) = (false, false);
    let mut close = false;
    for h in req.headers.iter() {
        let name = h.name.as_bytes();
        let value = trim(h.value);
        if name.eq_ignore_ascii_case(b"host") {
            // userinfo in Host is refused by Pingora's path (400): hand it over
            if value.contains(&b'@') {
                return Some(Parsed::HandOver);
            }
            hosts += 1;
        } else if name.eq_ignore_ascii_case(b"content-length") {
            if body_len.is_some() || value.is_empty() || value.len() > 18 {
                return Some(Parsed::HandOver);
            }
            body_len = Some(match digits(value) {
                Some(n) => n,
                None => return Some(Parsed::HandOver),
            });
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            // exactly one field saying just `chunked`; lists, other codings and repeats
            // get the guard's verdict on Pingora's path
            if chunked || !value.eq_ignore_ascii_case(b"chunked") {
                return Some(Parsed::HandOver);
            }
            chunked = true;
        } else if name.eq_ignore_ascii_case(b"expect") {
            if expect_continue || !value.eq_ignore_ascii_case(b"100-continue") {
                return Some(Parsed::HandOver);
            }
            expect_continue = true;
        } else if name.eq_ignore_ascii_case(b"upgrade") {
            // WebSocket only, as Pingora's path (which drops any other `Upgrade`); repeats
            // and other protocols are handed over
            if upgrade || !value.eq_ignore_ascii_case(b"websocket") {
                return Some(Parsed::HandOver);
            }
            upgrade = true;
        } else if name.eq_ignore_ascii_case(b"content-type") {
            // gRPC and gRPC-web (`grpc_web = true`): trailers and h2 upstreams are Pingora's
            // path's
            if value.len() >= 16 && value[..16].eq_ignore_ascii_case(b"application/grpc") {
                return Some(Parsed::HandOver);
            }
        } else if name.eq_ignore_ascii_case(b"connection") {
            for token in value.split(|b| *b == b',').map(trim) {
                if token.eq_ignore_ascii_case(b"close") {
                    close = true;
                } else if token.eq_ignore_ascii_case(b"upgrade") {
                    conn_upgrade = true;
                } else if !token.eq_ignore_ascii_case(b"keep-alive") && !token.is_empty() {
                    // other hop-by-hop names: Pingora's path handles them
                    return Some(Parsed::HandOver);
                }
            }
        }
        spans.push(span(base, h.name, value));
    }
    // a length next to chunked is a smuggling attempt: the guard refuses it
    if hosts != 1 || (chunked && body_len.is_some()) {
        return Some(Parsed::HandOver);
    }
    // an upgrade is asked with both fields, and carries no body (its bytes after the head
    // belong to the new protocol)
    if upgrade != conn_upgrade || (upgrade && (chunked || body_len.unwrap_or(0) > 0)) {
        return Some(Parsed::HandOver);
    }
    // the guard's size verdict (proxy/guard.rs), the same on both engines; it comes after
    // every check above so that a head Pingora's path refuses for something else (two
    // Hosts, a bad Content-Length) is handed over and gets that verdict, in Pingora's order
    let lengths = req.headers.iter().map(|h| (h.name.len(), h.value.len()));
    if let Some(status) = guard::size_status(*limits, method.len(), target.len(), lengths) {
        // with a body still unread the connection cannot go on
        let whole = body_len.unwrap_or(0) == 0 && !chunked;
        return refuse(buf, status, whole.then_some(head_len));
    }
    let Ok(method) = Method::from_bytes(method.as_bytes()) else {
        return Some(Parsed::HandOver);
    };
    let t0 = target.as_ptr() as usize - base;
    let tlen = target.len();
    let raw: Bytes = buf.split_to(head_len).freeze();
    // `httparse` accepted the target, names and values, and `http` takes the target bytes
    // `plain_target` lets through (unit test below); should `http` still refuse something,
    // the request is refused as malformed
    let Ok(uri) = Uri::from_maybe_shared(raw.slice(t0..t0 + tlen)) else {
        return Some(Parsed::Malformed);
    };
    Some(Parsed::Request(Request {
        head: ReqHead::new(method, uri, raw, std::mem::take(spans)),
        body: if chunked {
            BodyFraming::Chunked
        } else {
            BodyFraming::Length(body_len.unwrap_or(0))
        },
        close,
        expect_continue,
        upgrade,
    }))
}

/// Bytes `http::Uri` takes in an origin-form target without question; a target with any
/// other byte is handed over (Pingora keeps such targets raw).
pub fn plain_target(t: &[u8]) -> bool {
    t.iter().all(|&c| {
        c.is_ascii_alphanumeric()
            || matches!(
                c,
                b'/' | b'?'
                    | b'%'
                    | b'-'
                    | b'.'
                    | b'_'
                    | b'~'
                    | b'!'
                    | b'$'
                    | b'&'
                    | b'\''
                    | b'('
                    | b')'
                    | b'*'
                    | b'+'
                    | b','
                    | b';'
                    | b'='
                    | b':'
                    | b'@'
            )
    })
}

/// Where one header field lies in a head: name start and length, value start and length.
pub type Span = (usize, usize, usize, usize);

/// The span of a field parsed by `httparse` (`value` trimmed) in the buffer at `base`.
pub fn span(base: usize, name: &str, value: &[u8]) -> Span {
    (
        name.as_ptr() as usize - base,
        name.len(),
        value.as_ptr() as usize - base,
        value.len(),
    )
}

pub use crate::proxy::names::Names;

/// The fields at `spans` in `raw` as a header map, in `map`'s storage when it has one (its
/// capacity is kept across messages); values share `raw`'s memory, names come from `names`.
/// `None`: `http` refuses a field.
pub fn fields(
    raw: &Bytes,
    spans: &[Span],
    map: &mut Option<HeaderMap>,
    names: &mut Names,
) -> Option<HeaderMap> {
    // a kept map was emptied when it was put back (`serve::emptied`)
    let mut headers = map.take().unwrap_or_default();
    for &(n0, nlen, v0, vlen) in spans {
        let name = names.get(&raw[n0..n0 + nlen])?;
        let value = HeaderValue::from_maybe_shared(raw.slice(v0..v0 + vlen)).ok()?;
        headers.append(name, value);
    }
    Some(headers)
}

/// Plain decimal digits, without overflow.
pub fn digits(v: &[u8]) -> Option<u64> {
    if v.is_empty() {
        return None;
    }
    v.iter().try_fold(0u64, |acc, b| {
        if b.is_ascii_digit() {
            acc.checked_mul(10)?.checked_add(u64::from(b - b'0'))
        } else {
            None
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(s: &str) -> Option<Parsed> {
        let mut buf = BytesMut::from(s.as_bytes());
        let limits = SizeLimits {
            max_uri: 8192,
            max_head: 65536,
        };
        parse(&mut buf, &limits, &mut Vec::new())
    }

    #[test]
    fn plain_requests_are_served_and_the_rest_handed_over() {
        let ok = parse_str("GET /a?b=1 HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n\r\nGET");
        let Some(Parsed::Request(r)) = ok else {
            panic!("plain GET handed over")
        };
        let kept = super::super::req_head::Kept::default();
        assert_eq!(r.head.uri(&kept).path(), "/a");
        let x_a = http::HeaderName::from_static("x-a");
        assert_eq!(r.head.header(&kept, &x_a), Some(&b"1"[..]));
        for served in [
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
        ] {
            let r = parse_str(served);
            assert!(matches!(r, Some(Parsed::Request(_))), "{served:?}");
        }
        for bad in [
            "GET / HTTP/1.1\r\n\r\n",                       // no Host
            "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", // two
            "GET / HTTP/1.0\r\nHost: a\r\n\r\n",            // 1.0
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +1\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 1\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: a\r\nExpect: x\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n", // no Connection
            "GET / HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: h2c\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: websocket\r\nContent-Length: 1\r\n\r\nx",
            "GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n", // obs-fold
            "GET / HTTP/1.1\r\nHost : a\r\n\r\n",              // space before colon
            "GET http://a/ HTTP/1.1\r\nHost: a\r\n\r\n",       // absolute form
            "GET / HTTP/1.1\r\nHost: u@a\r\n\r\n",             // userinfo
            "GET / HTTP/1.1\r\nHost: a\r\nConnection: close, x-secret\r\n\r\n",
        ] {
            assert!(matches!(parse_str(bad), Some(Parsed::HandOver)), "{bad:?}");
        }
        assert!(parse_str("GET / HTTP/1.1\r\nHost: a\r\n").is_none());
        assert_eq!(digits(b"18446744073709551616"), None);
        // every byte the target filter lets through is one `http::Uri` takes
        let all: String = (0x21u8..0x7f)
            .filter(|c| plain_target(&[*c]))
            .map(char::from)
            .collect();
        assert!(Uri::try_from(format!("/{all}")).is_ok(), "{all}");
    }
}
