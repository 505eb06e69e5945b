//! Request phase: body limits and the location's plugin chain.

use super::ctx::Ctx;
use crate::error::http_status;
use crate::plugins::{Answer, Flow};
use pingora::http::ResponseHeader;
use pingora::proxy::Session;

/// Run the location's plugins in order. `Some(answer)` stops the chain.
pub async fn run_plugins(session: &mut Session, ctx: &mut Ctx) -> pingora::Result<Option<Answer>> {
    // borrow the location from our own handle on the state, so `ctx` stays free to mutate
    let state = ctx.state.clone();
    let Some(route) = ctx.route.as_ref() else {
        return Ok(None);
    };
    let loc = &state.config.locations[route.location];
    for &i in &loc.plugins {
        let def = &state.config.plugins[i];
        match def.plugin.on_request(session, ctx).await {
            Ok(Flow::Continue) => {}
            Ok(Flow::Respond(a)) => return Ok(Some(a)),
            Err(e) => {
                tracing::error!(plugin = %def.name, request_id = ctx.request_id.as_deref().unwrap_or("-"), "request phase failed: {e}");
                return Err(http_status(500));
            }
        }
    }
    Ok(None)
}

/// Write a plugin's answer to the client.
pub async fn respond(session: &mut Session, ctx: &mut Ctx, a: Answer) -> pingora::Result<()> {
    let mut resp = ResponseHeader::build(a.status, Some(a.headers.len() + 2))?;
    for (k, v) in a.headers {
        resp.append_header(k, v)?;
    }
    resp.insert_header(http::header::CONTENT_LENGTH, a.body.len().to_string())?;
    super::response::run_plugins(session, &mut resp, ctx);
    ctx.status = a.status;
    let head_only = session.req_header().method == http::Method::HEAD;
    session
        .write_response_header(Box::new(resp), head_only || a.body.is_empty())
        .await?;
    if !head_only && !a.body.is_empty() {
        session.write_response_body(Some(a.body), true).await?;
    }
    Ok(())
}

/// `client_max_body_size`: refuse a declared length over the limit before reading the body.
pub fn check_declared_body(session: &Session, ctx: &mut Ctx) -> pingora::Result<()> {
    let limit = ctx.location().and_then(|l| l.client_max_body_size);
    ctx.body_limit = limit;
    let Some(limit) = limit else { return Ok(()) };
    let declared = session
        .req_header()
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit) {
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
