//! Routing phase: pick the location for this request, or answer 404.

use super::ctx::Ctx;
use crate::proxy::exchange::Downstream;
use crate::routing::{normalize_host, RouteInput};

/// Route the request; `false` means no location matched.
pub fn route(session: &dyn Downstream, ctx: &mut Ctx) -> bool {
    let req = session.req();
    let raw_host = req
        .headers
        .get(http::header::HOST)
        .and_then(|v| v.to_str().ok())
        .or_else(|| req.uri.host())
        .unwrap_or("");
    ctx.host = normalize_host(raw_host);
    let header = |name: &str| req.headers.get(name).and_then(|v| v.to_str().ok());
    let input = RouteInput {
        host: &ctx.host,
        path: req.uri.path(),
        query: req.uri.query().unwrap_or(""),
        header: &header,
    };
    ctx.route = ctx.state.servers[ctx.server].router.lookup(&input);
    ctx.route.is_some()
}
