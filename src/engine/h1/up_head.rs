//! The request head for the upstream on the own engines: built from the client's when
//! something in it changes, else the client's own head written out with the forwarding
//! headers (`origin::write_direct`), with no header map filled for it.

use crate::proxy::forwarded;
use pingora::http::RequestHeader;

/// The request head going upstream.
#[allow(clippy::large_enum_variant)] // one per request, on the stack; a Box is an allocation
pub enum UpHead {
    /// built from the client's: something in it changes (a rewrite, header edits, an
    /// upgrade, chunked framing, a trace context)
    Built(RequestHeader),
    /// the client's own head, written out with the forwarding headers
    /// (`origin::write_direct`): no header map is filled for it
    Direct(Option<forwarded::Fields>),
}

/// The fields of the request head for the upstream: the client's, without hop-by-hop
/// headers, in a reused (empty) header map (values are shared, not copied). A WebSocket
/// upgrade asks the upstream to switch too, with `Connection: Upgrade` and `Upgrade:
/// websocket` after the client's fields (as Pingora's path writes them). The caller adds
/// the forwarding headers to the map before [`upstream_head`] wraps it (reaching into a
/// built head's map costs taking the head apart).
pub fn upstream_fields(
    head: &RequestHeader,
    upgrade: bool,
    mut headers: http::HeaderMap,
) -> http::HeaderMap {
    use http::header::{CONNECTION, UPGRADE};
    use http::HeaderValue;
    for (k, v) in head.headers.iter() {
        if !crate::proxy::names::hop_by_hop(k) {
            headers.append(k.clone(), v.clone());
        }
    }
    if upgrade {
        headers.append(CONNECTION, HeaderValue::from_static("Upgrade"));
        headers.append(UPGRADE, HeaderValue::from_static("websocket"));
    }
    headers
}

/// The request head for the upstream: the client's method and target, with `headers`.
pub fn upstream_head(head: &RequestHeader, headers: http::HeaderMap) -> RequestHeader {
    let mut parts = http::Request::new(()).into_parts().0;
    parts.method = head.method.clone();
    parts.uri = head.uri.clone();
    parts.headers = headers;
    RequestHeader::from(parts)
}
