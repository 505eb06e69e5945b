//! Failures: passive health, retries, and the error response.
//!
//! - A connect failure counts against the peer (circuit breaker) and is retried on another
//!   peer while `retries` allows: nothing was sent, so any method is safe to retry.
//! - A failure after the request was sent counts against the peer; it is retried only for
//!   idempotent methods whose body is still fully buffered, as Pingora's default decides.
//! - Whatever fails, [`crate::error::status_for`] picks the status, in one place.

use super::ctx::Ctx;
use crate::error::status_for;
use pingora::proxy::{FailToProxy, Session};

pub fn connect_failed(ctx: &mut Ctx, mut e: Box<pingora::Error>) -> Box<pingora::Error> {
    if let (Some(up), Some(peer)) = (&ctx.upstream, ctx.peer) {
        up.record_failure(peer);
        let attempts = ctx.tried.len() as u32;
        if attempts <= up.conf.retries && attempts < up.peers.len() as u32 {
            e.set_retry(true);
        }
    }
    ctx.inflight = None;
    e
}

pub fn proxy_failed(
    session: &Session,
    ctx: &mut Ctx,
    mut e: Box<pingora::Error>,
    client_reused: bool,
) -> Box<pingora::Error> {
    if let (Some(up), Some(peer)) = (&ctx.upstream, ctx.peer) {
        up.record_failure(peer);
    }
    ctx.inflight = None;
    if !session.req_header().method.is_idempotent() || session.as_ref().retry_buffer_truncated() {
        e.set_retry(false);
    } else {
        e.retry.decide_reuse(client_reused);
    }
    e
}

pub async fn respond_error(
    session: &mut Session,
    ctx: &mut Ctx,
    e: &pingora::Error,
) -> FailToProxy {
    let code = status_for(e);
    if code > 0 {
        // HTTP/1: answer and close; the connection may hold unread bytes
        if let Err(we) = session.respond_error(code).await {
            tracing::debug!("could not send {code} to the client: {we}");
        }
    }
    ctx.status = code;
    FailToProxy {
        error_code: code,
        can_reuse_downstream: false,
    }
}
