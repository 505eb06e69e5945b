//! The request head on the own HTTP/1 loop: its fields stay where they were read until
//! something asks for them as a header map.
//!
//! Most requests are routed by host and path and sent on with the forwarding headers; for
//! them no field goes into a map (building one cost about 500 instructions per field), and
//! the upstream head is written from the bytes as read (`origin::write_direct`). The first
//! caller that needs the whole head (a plugin, a script that edits it, a rewrite, a cookie
//! in the log) builds the map, and from then on the map is the head. A caller that only
//! needs the method, the target or one field's value ([`ReqHead::header`]: routing, the
//! forwarding headers, the access log, `req:header`) never builds it.
//!
//! Every name and value `httparse` accepts is one `http` accepts too (unit test below), so
//! building cannot drop a field.

use super::head::Span;
use crate::proxy::names::Names;
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Uri, Version};
use pingora::http::RequestHeader;
use std::cell::{Cell, OnceCell, RefCell};

/// One request's head as read: method, target, and where each field lies in its bytes.
/// Small, as it is moved from the parser to the request; the map, when built, lives in the
/// connection's [`Kept`].
pub struct ReqHead {
    method: Method,
    uri: Uri,
    /// the head's bytes, as read
    raw: Bytes,
    /// where each field lies in `raw`, in the order sent
    spans: Vec<Span>,
}

/// What a connection keeps for its requests' heads: the current request's head as a map
/// once someone asked for it, the header names seen, an emptied map for its capacity.
/// (Per connection, so its size costs nothing per request.)
#[derive(Default)]
pub struct Kept {
    /// built by a reader
    built: OnceCell<RequestHeader>,
    /// taken to be edited: from then on it is the head
    owned: Option<RequestHeader>,
    pub names: RefCell<Names>,
    spare: Cell<Option<HeaderMap>>,
}

impl Kept {
    /// The head as a map, if it was built.
    fn full(&self) -> Option<&RequestHeader> {
        self.owned.as_ref().or_else(|| self.built.get())
    }
}

impl ReqHead {
    pub fn new(method: Method, uri: Uri, raw: Bytes, spans: Vec<Span>) -> ReqHead {
        ReqHead {
            method,
            uri,
            raw,
            spans,
        }
    }

    pub fn method<'a>(&'a self, kept: &'a Kept) -> &'a Method {
        kept.full().map_or(&self.method, |h| &h.method)
    }

    pub fn uri<'a>(&'a self, kept: &'a Kept) -> &'a Uri {
        kept.full().map_or(&self.uri, |h| &h.uri)
    }

    /// The first value of the field `name`, without building the map.
    pub fn header<'a>(&'a self, kept: &'a Kept, name: &HeaderName) -> Option<&'a [u8]> {
        if let Some(h) = kept.full() {
            return h.headers.get(name).map(|v| v.as_bytes());
        }
        let want = name.as_str().as_bytes();
        self.fields()
            .find(|(n, _)| n.eq_ignore_ascii_case(want))
            .map(|(_, v)| v)
    }

    /// The fields as read (name, value), in order; once the map is built it is the head
    /// and this is `None`.
    pub fn unbuilt<'a>(
        &'a self,
        kept: &Kept,
    ) -> Option<impl Iterator<Item = (&'a [u8], &'a [u8])>> {
        kept.full().is_none().then(|| self.fields())
    }

    fn fields(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.spans
            .iter()
            .map(|&(n0, nlen, v0, vlen)| (&self.raw[n0..n0 + nlen], &self.raw[v0..v0 + vlen]))
    }

    /// The head as a map, built now if nobody asked before.
    pub fn get<'a>(&self, kept: &'a Kept) -> &'a RequestHeader {
        match &kept.owned {
            Some(h) => h,
            None => kept.built.get_or_init(|| self.build(kept)),
        }
    }

    /// The head as a map, to edit.
    pub fn get_mut<'a>(&self, kept: &'a mut Kept) -> &'a mut RequestHeader {
        let head = match kept.owned.take() {
            Some(h) => h,
            None => match kept.built.take() {
                Some(h) => h,
                None => self.build(kept),
            },
        };
        kept.owned.insert(head)
    }

    fn build(&self, kept: &Kept) -> RequestHeader {
        let mut headers = kept.spare.take().unwrap_or_default();
        let mut fresh = Names::default();
        let mut borrowed = kept.names.try_borrow_mut();
        let names = match &mut borrowed {
            Ok(n) => &mut **n,
            Err(_) => &mut fresh,
        };
        for &(n0, nlen, v0, vlen) in &self.spans {
            // both always succeed for what httparse accepted (test below)
            let Some(name) = names.get(&self.raw[n0..n0 + nlen]) else {
                continue;
            };
            let Ok(value) = HeaderValue::from_maybe_shared(self.raw.slice(v0..v0 + vlen)) else {
                continue;
            };
            headers.append(name, value);
        }
        let mut parts = http::Request::new(()).into_parts().0;
        parts.method = self.method.clone();
        parts.uri = self.uri.clone();
        parts.version = Version::HTTP_11;
        parts.headers = headers;
        RequestHeader::from(parts)
    }

    /// At the request's end: its map emptied and kept for the next request; the spans'
    /// vector (emptied) back for the next parse.
    pub fn recycle(mut self, kept: &mut Kept) -> Vec<Span> {
        if let Some(h) = kept.owned.take().or_else(|| kept.built.take()) {
            let map = http::request::Parts::from(h).headers;
            kept.spare.set(Some(super::serve::emptied(map)));
        }
        self.spans.clear();
        self.spans
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(raw: &'static [u8]) -> ReqHead {
        let mut buf = bytes::BytesMut::from(raw);
        let limits = crate::proxy::guard::SizeLimits {
            max_uri: 8192,
            max_head: 65536,
        };
        let mut spans = Vec::new();
        match super::super::head::parse(&mut buf, &limits, &mut spans) {
            Some(super::super::head::Parsed::Request(r)) => r.head,
            _ => panic!("not served"),
        }
    }

    #[test]
    fn fields_are_read_in_place_until_the_map_is_asked_for() {
        let mut kept = Kept::default();
        kept.spare.set(Some(HeaderMap::with_capacity(8)));
        let h = head(b"GET /a?b HTTP/1.1\r\nHost: x\r\nX-A:  1 \r\nx-a: 2\r\n\r\n");
        assert_eq!(
            h.header(&kept, &HeaderName::from_static("x-a")),
            Some(&b"1"[..])
        );
        assert_eq!(h.uri(&kept).query(), Some("b"));
        let fields: Vec<_> = h.unbuilt(&kept).unwrap().collect();
        assert_eq!(fields.len(), 3);
        assert_eq!(fields[1], (&b"X-A"[..], &b"1"[..]));
        let built = h.get(&kept);
        let all: Vec<_> = built.headers.get_all("x-a").iter().collect();
        assert_eq!(all, ["1", "2"]);
        assert!(h.unbuilt(&kept).is_none());
        // an edit is what every later reader sees
        h.get_mut(&mut kept).set_uri(Uri::from_static("/edited"));
        assert_eq!(h.uri(&kept).path(), "/edited");
        assert_eq!(h.get(&kept).uri.path(), "/edited");
        let spans = h.recycle(&mut kept);
        assert!(spans.is_empty() && spans.capacity() >= 3);
        let map = kept.spare.take();
        assert!(map.is_some_and(|m| m.is_empty() && m.capacity() > 0));
        assert!(kept.full().is_none(), "the next request starts unbuilt");
    }

    #[test]
    fn what_httparse_takes_in_names_and_values_http_takes_too() {
        let parsed = |line: &[u8]| {
            let raw = [b"GET / HTTP/1.1\r\nHost: x\r\n".as_slice(), line, b"\r\n"].concat();
            let mut lines = [httparse::EMPTY_HEADER; 4];
            let mut req = httparse::Request::new(&mut lines);
            match req.parse(&raw) {
                Ok(httparse::Status::Complete(_)) => Some((
                    req.headers[1].name.to_string(),
                    req.headers[1].value.to_vec(),
                )),
                _ => None,
            }
        };
        let (mut names, mut values) = (0, 0);
        for b in 0u8..=255 {
            if let Some((name, _)) = parsed(&[b"X-".as_slice(), &[b], b": a\r\n"].concat()) {
                assert!(
                    HeaderName::from_bytes(name.as_bytes()).is_ok(),
                    "name byte {b}"
                );
                names += 1;
            }
            if let Some((_, value)) = parsed(&[b"X: a".as_slice(), &[b], b"b\r\n"].concat()) {
                assert!(HeaderValue::from_bytes(&value).is_ok(), "value byte {b}");
                values += 1;
            }
        }
        // the probe itself works: tokens in names, most bytes in values
        assert!(names > 70 && values > 200, "{names} {values}");
    }
}
