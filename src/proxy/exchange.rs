//! What the phase chain sees of the client side of one request, whichever engine serves it.
//!
//! Plugins, the Lua API, routing, the access log and the upstream phase take a
//! `&mut dyn Downstream` (or `&dyn` where they only read), never an engine's session type. Two
//! engines implement it: Pingora's `Session` (HTTP/2, and every HTTP/1 request our own loop
//! hands over, `engine/pingora.rs`) and our own HTTP/1 loop (`engine/h1/`). So a plugin, a
//! Lua hook or a log field is written once and runs on both.
//!
//! The heads are `pingora_http`'s `RequestHeader` and `ResponseHeader`: plain data types
//! (`http` parts plus the header names' original case), which Pingora's HTTP/2 side produces
//! anyway; the HTTP/1 loop builds the request's from its own parser without copying header
//! values, and only when asked: `method`, `uri`, `version` and `header` read it in place.

use async_trait::async_trait;
use bytes::Bytes;
use pingora::http::{RequestHeader, ResponseHeader};
use std::net::SocketAddr;

/// A failure reading the request body from the client.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// the client did not send the next part of the body in time (`body_timeout`)
    #[error("the client sent no body data in time")]
    Timeout,
    /// the framing was broken or the connection closed early
    #[error("reading the request body: {0}")]
    Broken(String),
}

/// The client side of one request.
#[async_trait]
pub trait Downstream: Send {
    /// The request head as it is now (plugins may have edited it).
    fn req(&self) -> &RequestHeader;
    /// The request head, to edit (request phase only).
    fn req_mut(&mut self) -> &mut RequestHeader;
    /// The request's method (the own HTTP/1 loop answers it without building the head's
    /// field map, `engine/h1/req_head.rs`).
    fn method(&self) -> &http::Method {
        &self.req().method
    }
    /// The request's target.
    fn uri(&self) -> &http::Uri {
        &self.req().uri
    }
    /// The request's HTTP version.
    fn version(&self) -> http::Version {
        self.req().version
    }
    /// The first value of the request field `name`.
    fn header(&self, name: &http::HeaderName) -> Option<&[u8]> {
        self.req().headers.get(name).map(|v| v.as_bytes())
    }
    /// The direct peer's address (not the client `trusted_proxies` resolves).
    fn peer_addr(&self) -> Option<SocketAddr>;
    /// The direct peer's IP address as header text, when the engine keeps it per connection
    /// (the own engines): nothing is formatted per request.
    fn kept_peer_ip(&self) -> Option<&http::HeaderValue> {
        None
    }
    /// The direct peer's IP address as header text (`X-Forwarded-For`, `X-Real-IP`): the
    /// kept one, else formatted now.
    fn peer_ip_text(&self) -> Option<http::HeaderValue> {
        match self.kept_peer_ip() {
            Some(kept) => Some(kept.clone()),
            None => ip_text(self.peer_addr()?.ip()),
        }
    }
    /// Whether the request came over HTTP/2.
    fn http2(&self) -> bool;
    /// The response head sent to the client, once it is sent.
    fn sent_head(&self) -> Option<&ResponseHeader>;
    /// Response body bytes sent to the client so far.
    fn sent_body_bytes(&self) -> usize;
    /// Keep the request body as it is read, to send it upstream afterwards (a script read it
    /// with `req:body()`); at most 64 KiB is kept.
    fn keep_body(&mut self);
    /// The next piece of the request body; `None` at its end.
    async fn read_body(&mut self) -> Result<Option<Bytes>, BodyError>;
}

/// A field value as text, as `HeaderValue::to_str` takes it (visible ASCII, space, tab).
pub fn text(v: &[u8]) -> Option<&str> {
    if v.iter().all(|&b| (0x20..0x7f).contains(&b) || b == b'\t') {
        std::str::from_utf8(v).ok()
    } else {
        None
    }
}

/// An IP address as header text.
pub fn ip_text(ip: std::net::IpAddr) -> Option<http::HeaderValue> {
    http::HeaderValue::from_maybe_shared(Bytes::from(ip.to_string())).ok()
}

/// A `Downstream` pointer without its borrow's lifetime, for the Lua API's thread-local
/// handles (`scripting/api.rs`), which live only during one synchronous hook call.
pub type RawDownstream = *mut (dyn Downstream + 'static);

/// Erase the lifetime of a borrowed `Downstream` for a hook call.
///
/// The pointer must only be used while `d` is borrowed: `scripting/api.rs` clears it when
/// the hook call returns (its `Current` guard), before the borrow ends.
pub fn erase(d: &mut dyn Downstream) -> RawDownstream {
    let p: *mut (dyn Downstream + '_) = d;
    // SAFETY: only the trait object's lifetime bound changes (same layout and vtable); the
    // caller's contract above keeps every use inside the borrow.
    unsafe { std::mem::transmute::<*mut (dyn Downstream + '_), RawDownstream>(p) }
}

/// As [`erase`], for a shared borrow: the hooks after the request phase only read the
/// request (the Lua API refuses every write outside `on_request`, `scripting/api.rs`).
pub fn erase_shared(d: &dyn Downstream) -> RawDownstream {
    let p: *const (dyn Downstream + '_) = d;
    // SAFETY: as in `erase`; the pointer is never written through (see above).
    unsafe { std::mem::transmute::<*const (dyn Downstream + '_), RawDownstream>(p) }
}

/// A client with no connection: the request, the address it claims, a body to read once,
/// and the head "sent" to it. `tidegate explain` and `tidegate test` run the proxy's code
/// on one.
pub struct Standin {
    pub req: RequestHeader,
    pub peer: SocketAddr,
    pub body: Option<Bytes>,
    pub sent: Option<ResponseHeader>,
    pub sent_bytes: usize,
}

impl Standin {
    pub fn new(req: RequestHeader, peer: SocketAddr, body: Option<Bytes>) -> Standin {
        Standin {
            req,
            peer,
            body,
            sent: None,
            sent_bytes: 0,
        }
    }
}

#[async_trait]
impl Downstream for Standin {
    fn req(&self) -> &RequestHeader {
        &self.req
    }
    fn req_mut(&mut self) -> &mut RequestHeader {
        &mut self.req
    }
    fn peer_addr(&self) -> Option<SocketAddr> {
        Some(self.peer)
    }
    fn http2(&self) -> bool {
        false
    }
    fn sent_head(&self) -> Option<&ResponseHeader> {
        self.sent.as_ref()
    }
    fn sent_body_bytes(&self) -> usize {
        self.sent_bytes
    }
    fn keep_body(&mut self) {}
    async fn read_body(&mut self) -> Result<Option<Bytes>, BodyError> {
        Ok(self.body.take().filter(|b| !b.is_empty()))
    }
}
