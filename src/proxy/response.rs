//! Response phase: the location's plugins edit the status and headers for the client.

use super::ctx::Ctx;
use crate::proxy::exchange::Downstream;
use pingora::http::ResponseHeader;

/// Run `on_response` of the location's plugins in order. A failing plugin is logged and
/// skipped: the response is already on its way. `false` when there was no plugin to run
/// (the head then holds what it held, and the trace header at most).
pub fn run_plugins(session: &dyn Downstream, resp: &mut ResponseHeader, ctx: &mut Ctx) -> bool {
    let Some(chain) = ctx.chain().filter(|c| !c.is_empty()) else {
        stamp(resp, ctx);
        return false;
    };
    for def in chain.plugins() {
        let t0 = ctx.trace.as_ref().map(|_| std::time::Instant::now());
        let r = def.plugin.on_response(session, resp, ctx);
        if let Err(e) = &r {
            tracing::error!(plugin = %def.name, "response phase failed: {e}");
        }
        if let Some(t0) = t0 {
            let verdict = if r.is_ok() { "ok" } else { "failed" };
            super::trace::note(ctx, || {
                format!(
                    "response plugin {}: {verdict} ({:.3}ms)",
                    def.name,
                    t0.elapsed().as_secs_f64() * 1000.0
                )
            });
        }
    }
    ctx.status = resp.status.as_u16();
    stamp(resp, ctx);
    true
}

/// The trace, as the last thing added to a traced response's head.
fn stamp(resp: &mut ResponseHeader, ctx: &Ctx) {
    if let Some(v) = super::trace::header(ctx) {
        let _ = resp.insert_header(super::trace::HEADER, v);
    }
}

/// Show one chunk of the body, unchanged, to the plugins that watch it (`on_body_seen`).
pub fn watch_body(session: &dyn Downstream, chunk: &[u8], eof: bool, ctx: &mut Ctx) {
    if !ctx.body_watched {
        return;
    }
    let Some(chain) = ctx.chain() else {
        return;
    };
    for def in chain.plugins() {
        def.plugin.on_body_seen(session, chunk, eof, ctx);
    }
}

/// The upstream failed with `code`: the first plugin's answer instead of the error page.
pub fn error_answer(
    session: &dyn Downstream,
    ctx: &mut Ctx,
    code: u16,
) -> Option<crate::plugins::Answer> {
    if !matches!(code, 502..=504) {
        return None;
    }
    let chain = ctx.chain()?;
    for def in chain.plugins() {
        if let Some(a) = def.plugin.on_error(session, ctx, code) {
            return Some(a);
        }
    }
    None
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
