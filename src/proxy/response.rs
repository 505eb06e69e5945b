//! Response phase: the location's plugins edit the status and headers for the client.

use super::ctx::Ctx;
use crate::proxy::exchange::Downstream;
use pingora::http::ResponseHeader;

/// Run `on_response` of the location's plugins in order. A failing plugin is logged and
/// skipped: the response is already on its way.
pub fn run_plugins(session: &dyn Downstream, resp: &mut ResponseHeader, ctx: &mut Ctx) {
    let Some(chain) = ctx.chain() else {
        return;
    };
    for def in chain.plugins() {
        if let Err(e) = def.plugin.on_response(session, resp, ctx) {
            tracing::error!(plugin = %def.name, "response phase failed: {e}");
        }
    }
    ctx.status = resp.status.as_u16();
}

/// Run `on_body` of the location's plugins in order on one chunk. A failing plugin is logged
/// and skipped (the status is already sent).
pub fn run_body_filters(
    session: &dyn Downstream,
    body: &mut Option<bytes::Bytes>,
    eof: bool,
    ctx: &mut Ctx,
) {
    if !ctx.body_filtered {
        return;
    }
    let Some(chain) = ctx.chain() else {
        return;
    };
    for def in chain.plugins() {
        if let Err(e) = def.plugin.on_body(session, body, eof, ctx) {
            tracing::error!(plugin = %def.name, "body phase failed: {e}");
        }
    }
}
