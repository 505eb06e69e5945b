//! Who the client is, and the forwarding headers the upstream gets.
//!
//! ```toml
//! [servers.web]
//! trusted_proxies = ["10.0.0.0/8", "127.0.0.1"]
//! forwarded_headers = true        # default
//! ```
//!
//! When the direct peer is a trusted proxy, the client is the right-most address in its
//! `X-Forwarded-For` that is not itself trusted, and its `X-Forwarded-Proto` is believed.
//! Otherwise the client is the peer and any forwarded headers it sent are replaced. The
//! upstream always gets `X-Forwarded-For` (the trusted chain plus the peer), `X-Real-IP` (the
//! client) and `X-Forwarded-Proto`, unless the server sets `forwarded_headers = false`
//! (they are set without parsing their names or formatting the peer's address per request:
//! `proxy/fields.rs`).

use super::ctx::Ctx;
use crate::proxy::exchange::Downstream;
use http::{HeaderName, HeaderValue};
use ipnet::IpNet;
use pingora::http::RequestHeader;
use std::net::IpAddr;

fn trusted(list: &[IpNet], ip: IpAddr) -> bool {
    list.iter().any(|n| n.contains(&ip))
}

/// Fill `ctx.client_ip` and `ctx.peer_trusted`.
pub fn identify(session: &dyn Downstream, ctx: &mut Ctx) {
    let peer = session.peer_addr().map(|a| a.ip());
    let list = &ctx.server().trusted_proxies;
    let Some(peer) = peer else { return };
    let peer_trusted = !list.is_empty() && trusted(list, peer);
    let mut client = peer;
    if peer_trusted {
        if let Some(xff) = session.header(&XFF).and_then(crate::proxy::exchange::text) {
            for hop in xff.rsplit(',').map(str::trim) {
                match hop.parse::<IpAddr>() {
                    Ok(ip) if trusted(list, ip) => client = ip,
                    Ok(ip) => {
                        client = ip;
                        break;
                    }
                    Err(_) => break,
                }
            }
        }
    }
    ctx.client_ip = Some(client);
    ctx.peer_trusted = peer_trusted;
}

const XFF: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");
const XFP: HeaderName = HeaderName::from_static("x-forwarded-proto");

/// The forwarding headers' values for the request going upstream.
#[derive(Clone)]
pub struct Fields {
    xff: HeaderValue,
    real: Option<HeaderValue>,
    proto: HeaderValue,
}

impl Fields {
    /// Each name with the value it gets; `None`: the client's fields of that name stay.
    pub fn slots(&self) -> [(HeaderName, Option<&HeaderValue>); 3] {
        [
            (XFF, Some(&self.xff)),
            (X_REAL_IP, self.real.as_ref()),
            (XFP, Some(&self.proto)),
        ]
    }

    /// Set them in the field map of an upstream head being built (the own engines, which
    /// build that map themselves: no head is taken apart to reach it).
    pub fn insert_into(self, map: &mut http::HeaderMap) {
        map.insert(XFF, self.xff);
        if let Some(real) = self.real {
            map.insert(X_REAL_IP, real);
        }
        map.insert(XFP, self.proto);
    }
}

/// The server sets the forwarding headers (`forwarded_headers`, on by default).
pub fn wanted(ctx: &Ctx) -> bool {
    ctx.server().forwarded_headers
}

/// Set the forwarding headers on the request going upstream.
pub fn apply(session: &dyn Downstream, ctx: &Ctx, up: &mut RequestHeader) -> pingora::Result<()> {
    let f = fields(session, ctx)?;
    match f.real {
        Some(real) => {
            super::fields::insert(up, [(&XFF, f.xff), (&X_REAL_IP, real), (&XFP, f.proto)])
        }
        None => super::fields::insert(up, [(&XFF, f.xff), (&XFP, f.proto)]),
    }
}

/// The forwarding headers for this request. The common case (no trusted chain) allocates
/// nothing: the peer's address text is the engine's, kept per connection.
pub fn fields(session: &dyn Downstream, ctx: &Ctx) -> pingora::Result<Fields> {
    let incoming = |name: &HeaderName| session.header(name);
    let peer = session.peer_addr().map(|a| a.ip());
    let peer_text = session.peer_ip_text();
    // a trusted peer's own chain, when it is text and not blank
    // (looked up only for a trusted peer: a lookup by a custom name hashes it)
    let prev = ctx
        .peer_trusted
        .then(|| incoming(&XFF))
        .flatten()
        .filter(|v| crate::proxy::exchange::text(v).is_some_and(|p| !p.trim().is_empty()));
    let xff = match (prev, &peer_text) {
        (Some(p), Some(ip)) => {
            let joined = [p, b", ", ip.as_bytes()].concat();
            HeaderValue::from_maybe_shared(bytes::Bytes::from(joined))
                .map_err(|_| crate::error::http_status(400))?
        }
        (Some(p), None) => {
            HeaderValue::from_bytes(p).map_err(|_| crate::error::http_status(400))?
        }
        (None, Some(ip)) => ip.clone(),
        (None, None) => HeaderValue::from_static(""),
    };
    let real = match (ctx.client_ip, peer_text) {
        (Some(ip), Some(text)) if Some(ip) == peer => Some(text),
        (Some(ip), _) => super::exchange::ip_text(ip),
        (None, _) => None,
    };
    let trusted_proto =
        ctx.peer_trusted && incoming(&XFP).is_some_and(|v| v.eq_ignore_ascii_case(b"https"));
    let proto = HeaderValue::from_static(if trusted_proto { "https" } else { ctx.scheme() });
    Ok(Fields { xff, real, proto })
}
