//! Routing phase: pick the location for this request, or answer 404.

use super::ctx::Ctx;
use crate::proxy::exchange::Downstream;
use crate::routing::{normalize_host_into, RouteInput};

/// The request's host, normalized (lower case, no port): the `Host` header, else the URI's
/// authority (HTTP/2's `:authority`). Routing and the Lua API's `req.host` read it here.
pub fn host_of(session: &dyn Downstream) -> String {
    let mut out = String::new();
    host_into(session, &mut out);
    out
}

/// [`host_of`] into `out`, a `String` kept for its capacity.
pub fn host_into(session: &dyn Downstream, out: &mut String) {
    let raw = session
        .header(&http::header::HOST)
        .and_then(crate::proxy::exchange::text)
        .or_else(|| session.uri().host())
        .unwrap_or("");
    normalize_host_into(raw, out)
}

/// Route the request; `false` means no location matched. `ctx.host` keeps its capacity
/// (the own loop hands each request the connection's).
pub fn route(session: &mut dyn Downstream, ctx: &mut Ctx) -> bool {
    super::trace::begin(session, ctx);
    crate::observability::otel::spans::begin(session, ctx);
    let session: &dyn Downstream = session;
    let uri = session.uri();
    host_into(session, &mut ctx.host);
    // only a location with header rules asks: the head's field map is built then
    let header = |name: &str| {
        session
            .req()
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
    };
    let input = RouteInput {
        host: &ctx.host,
        path: uri.path(),
        query: uri.query().unwrap_or(""),
        header: &header,
    };
    ctx.route = ctx.state.servers[ctx.server].router.lookup(&input);
    super::trace::route(ctx, &input);
    ctx.route.is_some()
}
