//! Request phase: body limits and the location's plugin chain.

use super::ctx::Ctx;
use crate::error::http_status;
use crate::plugins::{Answer, Flow};
use crate::proxy::exchange::{BodyError, Downstream};
use pingora::http::ResponseHeader;

/// Whether this request is answered here even when no location matched: an ACME challenge,
/// or a server that redirects everything to HTTPS.
pub fn answered_without_location(session: &dyn Downstream, ctx: &Ctx) -> bool {
    crate::observability::metrics::endpoint::wanted(session, ctx)
        || super::redirect::wanted(session, ctx)
        || (ctx.tls.is_none()
            && crate::tls::acme::challenge::answer(session.uri().path(), super::acme::storage(ctx))
                .is_some())
}

/// Run the location's plugins in order. `Some(answer)` stops the chain. An ACME challenge
/// (`acme.rs`) and a request to be sent to HTTPS (`redirect.rs`) are answered before any
/// plugin.
pub async fn run_plugins(
    session: &mut dyn Downstream,
    ctx: &mut Ctx,
) -> pingora::Result<Option<Answer>> {
    if crate::observability::metrics::endpoint::wanted(session, ctx) {
        return Ok(Some(crate::observability::metrics::endpoint::answer()));
    }
    if let Some(a) = super::acme::challenge(session, ctx) {
        return Ok(Some(a));
    }
    if super::redirect::wanted(session, ctx) {
        return Ok(Some(super::redirect::answer(session, ctx)));
    }
    let Some(chain) = ctx.chain() else {
        return Ok(None);
    };
    for def in chain.plugins() {
        let t0 = ctx.trace.as_ref().map(|_| std::time::Instant::now());
        let r = def.plugin.on_request(session, ctx).await;
        if let Some(t0) = t0 {
            let verdict = match &r {
                Ok(Flow::Continue) => "continue".to_string(),
                Ok(Flow::Respond(a)) => format!("answered {}", a.status),
                Err(e) => format!("failed: {e}"),
            };
            super::trace::note(ctx, || {
                format!(
                    "plugin {}: {verdict} ({:.3}ms)",
                    def.name,
                    t0.elapsed().as_secs_f64() * 1000.0
                )
            });
        }
        match r {
            Ok(Flow::Continue) => {}
            Ok(Flow::Respond(a)) => {
                if ctx
                    .state
                    .servers
                    .get(ctx.server)
                    .is_some_and(|s| s.metrics.is_some())
                {
                    let mut code = itoa::Buffer::new();
                    crate::observability::metrics::families()
                        .plugin_answers
                        .with_label_values(&[def.name.as_str(), code.format(a.status)])
                        .inc();
                }
                return Ok(Some(a));
            }
            Err(e) => {
                tracing::error!(plugin = %def.name, request_id = ctx.request_id.as_deref().unwrap_or("-"), "request phase failed: {e}");
                return Err(http_status(500));
            }
        }
    }
    Ok(None)
}

/// A plugin's answer as the head and body to send (no body for HEAD or an empty one), after
/// the response plugins ran on it. The engine writes them.
pub fn answer(
    session: &dyn Downstream,
    ctx: &mut Ctx,
    a: Answer,
) -> pingora::Result<(ResponseHeader, Option<bytes::Bytes>)> {
    let mut resp = ResponseHeader::build(a.status, Some(a.headers.len() + 2))?;
    // a plugin that streams its body (`directory`), or answers HEAD, sets the length itself
    let has_length = a
        .headers
        .iter()
        .any(|(k, _)| *k == http::header::CONTENT_LENGTH);
    for (k, v) in a.headers {
        resp.append_header(k, v)?;
    }
    if !has_length && !matches!(a.status, 204 | 304) {
        resp.insert_header(http::header::CONTENT_LENGTH, a.body.len().to_string())?;
    }
    super::response::run_plugins(session, &mut resp, ctx);
    ctx.status = a.status;
    if super::trace::wants_document(ctx) {
        let (head, body) = super::trace::document(ctx, &resp)?;
        ctx.status = 200;
        return Ok((head, Some(body)));
    }
    let head_only = session.method() == http::Method::HEAD;
    if head_only {
        ctx.plugin.answer_stream = None;
    }
    let body = (!head_only && !a.body.is_empty()).then_some(a.body);
    Ok((resp, body))
}

/// The request's Content-Length, if it has a valid one.
fn declared_length(session: &dyn Downstream) -> Option<u64> {
    session
        .header(&http::header::CONTENT_LENGTH)
        .and_then(crate::proxy::exchange::text)
        .and_then(|v| v.trim().parse::<u64>().ok())
}

/// `client_max_body_size`: refuse a declared length over the limit before reading the body.
pub fn check_declared_body(session: &dyn Downstream, ctx: &mut Ctx) -> pingora::Result<()> {
    let limit = ctx.location().and_then(|l| l.client_max_body_size);
    ctx.body_limit = limit;
    let Some(limit) = limit else { return Ok(()) };
    if declared_length(session).is_some_and(|n| n > limit) {
        return Err(http_status(413));
    }
    Ok(())
}

/// `client_max_body_size` for bodies without a declared length (chunked, h2): count as they come.
pub fn count_body(body: Option<&bytes::Bytes>, ctx: &mut Ctx) -> pingora::Result<()> {
    if let (Some(limit), Some(b)) = (ctx.body_limit, body) {
        ctx.body_seen += b.len() as u64;
        if ctx.body_seen > limit {
            return Err(http_status(413));
        }
    }
    Ok(())
}

/// A chunked HTTP/1 body: read its first chunk now, before any upstream is chosen, so a
/// malformed chunk size is a 400 that never opens a connection to the upstream. What is
/// read stays in Pingora's retry buffer and goes upstream first (a read returns at most
/// 64 KiB, the buffer's size), and is kept for `req:body()`.
pub async fn check_first_chunk(session: &mut dyn Downstream, ctx: &mut Ctx) -> pingora::Result<()> {
    if session.http2() || session.header(&http::header::TRANSFER_ENCODING).is_none() {
        return Ok(());
    }
    session.keep_body();
    match session.read_body().await {
        Ok(Some(chunk)) => {
            count_body(Some(&chunk), ctx)?;
            ctx.body_prefix = Some(chunk);
            Ok(())
        }
        Ok(None) => Ok(()),
        Err(BodyError::Timeout) => Err(pingora::Error::explain(
            pingora::ErrorType::ReadTimedout,
            "reading the first chunk",
        )
        .into_down()),
        Err(BodyError::Broken(_)) => Err(http_status(400)),
    }
}

/// Read the whole request body for a script (`req:body()`), at most `cap` bytes. Pingora keeps
/// what was read and sends it on to the upstream. A body over the cap, declared, is refused
/// before any of it is read (the request can still be proxied); one found over the cap while
/// reading cannot be sent on, so the request will be answered with 413 unless the script
/// answers first.
pub async fn read_body(
    session: &mut dyn Downstream,
    ctx: &mut Ctx,
    cap: usize,
) -> Result<bytes::Bytes, String> {
    if let Some(b) = &ctx.request_body {
        return Ok(b.clone());
    }
    if ctx.body_failed.is_some() {
        return Err("the request body could not be read".into());
    }
    let cap = ctx.body_limit.map(|l| (l as usize).min(cap)).unwrap_or(cap);
    if declared_length(session).is_some_and(|n| n > cap as u64) {
        return Err(format!("request body larger than {cap} bytes"));
    }
    session.keep_body();
    let mut buf = bytes::BytesMut::new();
    if let Some(first) = &ctx.body_prefix {
        buf.extend_from_slice(first);
    }
    loop {
        match session.read_body().await {
            Ok(Some(chunk)) => {
                if buf.len() + chunk.len() > cap {
                    ctx.body_failed = Some(413);
                    return Err(format!("request body larger than {cap} bytes"));
                }
                buf.extend_from_slice(&chunk);
            }
            Ok(None) => break,
            Err(e) => {
                ctx.body_failed = Some(400);
                return Err(e.to_string());
            }
        }
    }
    let body = buf.freeze();
    ctx.request_body = Some(body.clone());
    Ok(body)
}
