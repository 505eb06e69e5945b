//! Failures: passive health, retries, and the error response.
//!
//! - A connect failure counts against the peer (circuit breaker) and is retried on another
//!   peer while `retries` allows: nothing was sent, so any method is safe to retry.
//! - A failure after the request was sent counts against the peer; it is retried only for
//!   idempotent methods whose body is still fully buffered, and only while `retries` and the
//!   number of peers allow (as for connect failures).
//! - Whatever fails, [`crate::error::status_for`] picks the status, in one place.

use super::ctx::Ctx;
use crate::error::status_for;
use crate::observability::metrics::handles::FailureKind;
use pingora::http::ResponseHeader;
use pingora::proxy::{FailToProxy, Session};

/// Count a failed upstream try (with metrics on).
pub fn count(ctx: &mut Ctx, kind: FailureKind) {
    super::trace::note(ctx, || format!("upstream try failed: {kind:?}"));
    crate::observability::otel::spans::try_ended(ctx, None, Some(&format!("{kind:?}")));
    if let Some(m) = ctx.upstream_metrics() {
        m.failed(kind);
    }
}

/// The `kind` label of a failure on Pingora's path.
fn kind_of(e: &pingora::Error) -> FailureKind {
    use pingora::ErrorType as E;
    match e.etype() {
        E::ConnectRefused => FailureKind::Refused,
        E::ConnectTimedout | E::ReadTimedout | E::WriteTimedout => FailureKind::Timeout,
        E::TLSHandshakeFailure
        | E::TLSHandshakeTimedout
        | E::InvalidCert
        | E::TLSWantX509Lookup => FailureKind::Tls,
        E::ConnectionClosed | E::ReadError | E::WriteError | E::ConnectError => FailureKind::Reset,
        _ => FailureKind::Other,
    }
}

pub fn connect_failed(ctx: &mut Ctx, mut e: Box<pingora::Error>) -> Box<pingora::Error> {
    count(ctx, kind_of(&e));
    if peer_failed(ctx) {
        e.set_retry(true);
    }
    e
}

/// The chosen peer failed: count it against the peer (passive health), stop counting the
/// request as in flight there, and say whether `retries` and the number of peers allow
/// another attempt on another peer.
pub fn peer_failed(ctx: &mut Ctx) -> bool {
    ctx.inflight = None;
    match (&ctx.upstream, &ctx.peer) {
        (Some(up), Some(peer)) => {
            up.record_failure(peer);
            let attempts = ctx.tried.len() as u32;
            attempts <= up.conf.retries && attempts < up.peer_count() as u32
        }
        _ => false,
    }
}

pub fn proxy_failed(
    session: &Session,
    ctx: &mut Ctx,
    mut e: Box<pingora::Error>,
    client_reused: bool,
) -> Box<pingora::Error> {
    if matches!(e.esource(), pingora::ErrorSource::Upstream) {
        count(ctx, kind_of(&e));
    }
    if let (Some(up), Some(peer)) = (&ctx.upstream, &ctx.peer) {
        up.record_failure(peer);
    }
    ctx.inflight = None;
    let within_retries = match &ctx.upstream {
        Some(up) => {
            let attempts = ctx.tried.len() as u32;
            attempts <= up.conf.retries && attempts < up.peer_count() as u32
        }
        None => false,
    };
    if !within_retries
        || !session.req_header().method.is_idempotent()
        || session.as_ref().retry_buffer_truncated()
    {
        e.set_retry(false);
    } else {
        e.retry.decide_reuse(client_reused);
    }
    e
}

/// Answer a failed request with the error page (error_page.rs). The client's connection is
/// kept when the request was read to its end and the status says nothing against its
/// framing (a 404, 414, 431 or a plugin's 500 after a whole request); it is closed when the
/// request was refused for its framing (400), timed out (408), had a body left unread (413),
/// a response had already begun, or the upstream failed (Pingora ends the connection then).
pub async fn respond_error(
    session: &mut Session,
    ctx: &mut Ctx,
    e: &pingora::Error,
) -> FailToProxy {
    let code = status_for(e);
    ctx.status = code;
    let started = session.response_written().is_some();
    if code == 0 || started {
        return FailToProxy {
            error_code: code,
            can_reuse_downstream: false,
        };
    }
    // Pingora closes the client's connection after any upstream failure, whatever this
    // returns: say so in the answer rather than promise keep-alive
    let upstream_failed = e.esource() == &pingora::ErrorSource::Upstream || !ctx.tried.is_empty();
    let reuse = !upstream_failed
        && !matches!(code, 400 | 408)
        && session.as_downstream_mut().is_body_done();
    if !reuse {
        session.set_keepalive(None);
    }
    if let Some(a) = super::response::error_answer(session, ctx, code) {
        if let Ok((head, body)) = super::request::answer(session, ctx, a) {
            let done = body.is_none();
            let sent = match session.write_response_header(Box::new(head), done).await {
                Ok(()) => match body {
                    Some(b) => session.write_response_body(Some(b), true).await,
                    None => Ok(()),
                },
                Err(e) => Err(e),
            };
            return FailToProxy {
                error_code: if sent.is_ok() { ctx.status } else { code },
                can_reuse_downstream: sent.is_ok() && reuse,
            };
        }
    }
    if let Err(we) = write_page(session, ctx, code).await {
        tracing::debug!("could not send {code} to the client: {we}");
        return FailToProxy {
            error_code: code,
            can_reuse_downstream: false,
        };
    }
    FailToProxy {
        error_code: code,
        can_reuse_downstream: reuse,
    }
}

/// The error page for `code` (`[basic] error_template`) as the head and body to send (no
/// body for HEAD), for every engine.
pub fn error_response(
    ctx: &Ctx,
    code: u16,
    head_only: bool,
) -> pingora::Result<(ResponseHeader, Option<bytes::Bytes>)> {
    let page = &ctx.state.config.basic.error_page;
    let body = page.render(code, ctx.request_id.as_deref());
    let mut resp = ResponseHeader::build(code, Some(4))?;
    resp.insert_header(http::header::CONTENT_TYPE, page.content_type())?;
    resp.insert_header(http::header::CONTENT_LENGTH, body.len().to_string())?;
    resp.insert_header(http::header::CACHE_CONTROL, "private, no-store")?;
    Ok((resp, (!head_only).then_some(body)))
}

async fn write_page(session: &mut Session, ctx: &Ctx, code: u16) -> pingora::Result<()> {
    let head_only = session.req_header().method == http::Method::HEAD;
    let (resp, body) = error_response(ctx, code, head_only)?;
    session
        .write_response_header(Box::new(resp), body.is_none())
        .await?;
    if let Some(body) = body {
        session.write_response_body(Some(body), true).await?;
    }
    Ok(())
}
