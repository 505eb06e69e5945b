//! One try on one peer, up to the response head, the same for both own engines: a pooled
//! connection or a new one, the request sent, the head read; a pooled connection that turns
//! out closed is replaced once by a fresh one to the same peer (counted as a retry), and a
//! failure is told apart by whose it is (the client's body, the size limit, the peer).

use super::origin::{Framing, Origin, RespHead};
use super::serve::{failed, once_more, pool_limits, retry_left, stale, Attempt, Fail};
use super::serve::{Timeouts, Trouble};
use crate::proxy::ctx::Ctx;
use crate::proxy::exchange::BodyError;

/// An exchange that can send its request on an upstream connection (each engine's).
pub(crate) trait Ask {
    /// the request head going upstream, as the engine holds it
    type Up;
    /// Send the head and the body, then read the response head.
    async fn send_and_read(
        &mut self,
        ctx: &mut Ctx,
        origin: &mut Origin,
        up: &Self::Up,
        t: &Timeouts,
    ) -> Result<(RespHead, Framing, bool), Trouble>;
    /// The request's method is idempotent.
    fn idempotent(&self) -> bool;
}

/// What one try got: the connection (to relay the body from and maybe pool), the response
/// head, its framing, and whether the connection can carry another request.
pub(crate) type Answered = (Origin, RespHead, Framing, bool);

/// Try `addr` once (plus the fresh connection after a stale pooled one). `resendable`: the
/// request can be sent again (no body, or all of it kept). `Err`: what the caller does next.
pub(crate) async fn ask<E: Ask>(
    ex: &mut E,
    ctx: &mut Ctx,
    up: &E::Up,
    addr: std::net::SocketAddr,
    t: &Timeouts,
    resendable: bool,
) -> Result<Answered, Attempt> {
    let (idle, _) = pool_limits(ctx);
    let mut fresh = false;
    let answered = loop {
        let mut origin = match Origin::open(addr, t.connect, idle, fresh).await {
            Ok(o) => o,
            Err(e) => {
                if fresh {
                    // the peer is gone (its pooled connection closed, and now it refuses
                    // new ones): the request never reached it again, so the once-more on
                    // this peer does not use up a retry another peer could take
                    ctx.tried.pop();
                }
                return Err(failed(ctx, e, true));
            }
        };
        ctx.try_connected(origin.reused);
        match ex.send_and_read(ctx, &mut origin, up, t).await {
            Ok((resp, framing, reusable)) => {
                ctx.try_answered(resp.status().as_u16());
                break (origin, resp, framing, reusable);
            }
            Err(Trouble::Client(e)) => {
                // the client's fault: the peer is not to blame
                ctx.inflight = None;
                tracing::debug!("{e}");
                let code = match e {
                    BodyError::Timeout => 408,
                    BodyError::Broken(_) => 400,
                };
                return Err(Attempt::Fail(Fail::Status(code)));
            }
            Err(Trouble::TooLarge) => {
                ctx.inflight = None;
                return Err(Attempt::Fail(Fail::Status(413)));
            }
            // the pooled connection may have been closed by the peer meanwhile: once more on
            // a fresh one to the same peer, which counts as a retry (a peer that closes every
            // request looks the same, and must not get more tries than `retries` allows)
            Err(Trouble::Origin(e))
                if origin.reused && resendable && stale(&e) && retry_left(ctx) =>
            {
                tracing::debug!("pooled connection failed ({e}); once more on a fresh one");
                once_more(ctx);
                fresh = true;
            }
            Err(Trouble::Origin(e)) => {
                let idempotent = ex.idempotent() && resendable;
                return Err(failed(ctx, e, idempotent));
            }
        }
    };
    if let (Some(u), Some(p)) = (&ctx.upstream, &ctx.peer) {
        u.record_success(p);
    }
    Ok(answered)
}
