//! The own HTTP/1 loop: requests on one connection, one after the other, each driven
//! through the phase chain (`proxy/`) in flow order.
//!
//! ```text
//! read head ─▶ route ─▶ identify client ─▶ body limit ─▶ request plugins ─▶ (early answer)
//!   ─▶ pick peer ─▶ upstream head (rewrite, forwarding headers) ─▶ pooled or new connection
//!   ─▶ send head and body ─▶ response head ─▶ response plugins ─▶ relay body (body filters)
//!   ─▶ log phase ─▶ next request (pipelined bytes are already in the buffer)
//! ```

use super::client::{BodyLeft, Client, Exchange};
use super::head::{self, Parsed};
use super::origin::{self, Origin, OriginError};
use super::respond;
use super::up_head::{upstream_fields, upstream_head, UpHead};
use crate::error::status_for;
use crate::proxy::ctx::Ctx;
use crate::proxy::exchange::{BodyError, Downstream};
use crate::proxy::{failure, forwarded, log, request, response, route, upstream};
use crate::state::Live;
use std::time::Duration;

/// How a connection left the loop.
pub enum Next {
    /// closed (or to be closed) here
    Closed,
    /// a request the loop does not serve: Pingora's path takes the connection, with every
    /// unread byte put back
    HandOver(pingora::protocols::Stream),
}

/// Why a request did not get a normal response.
pub(crate) enum Fail {
    /// nothing was sent yet: answer with this status (error page)
    Status(u16),
    /// a response had begun, or the client is gone: close the connection
    Abort,
}

pub(crate) fn status(e: Box<pingora::Error>) -> Fail {
    Fail::Status(status_for(&e))
}

/// Serve the connection until it closes or hands over.
pub async fn serve(mut client: Client, live: &Live, server: usize) -> Next {
    let mut shutdown = client.shutdown.clone();
    // one wait on the shutdown flag for the connection's life: made per head it would join
    // and leave the flag's waiter list (a lock each way) on every request
    let stop = shutdown.changed();
    tokio::pin!(stop);
    let mut first = true;
    loop {
        let (limits, wait) = {
            let state = live.load();
            let conf = &state.servers[server].conf;
            let limits = crate::proxy::guard::SizeLimits::of(conf);
            // the first head was read under the accept-time clock (deadline.rs); later ones
            // must come within the keep-alive time and be complete within the header time
            let wait = if first {
                conf.header_timeout
            } else {
                conf.keepalive_timeout.min(conf.header_timeout)
            };
            (limits, wait)
        };
        let until = tokio::time::Instant::now() + wait;
        let parsed = loop {
            if let Some(p) = head::parse(&mut client.buf, &limits, &mut client.req_spans) {
                break p;
            }
            let idle = client.buf.is_empty();
            tokio::select! {
                r = client.fill_until(until) => match r {
                    Some(Ok(n)) if n > 0 => {}
                    _ => return Next::Closed,
                },
                _ = &mut stop, if idle => return Next::Closed,
            }
        };
        match parsed {
            Parsed::HandOver => {
                let Client {
                    mut stream, buf, ..
                } = client;
                stream.rewind(&buf);
                return Next::HandOver(stream.into_stream());
            }
            Parsed::Refuse { status, keep } => {
                let keep = keep && !client.stopping();
                let sent = refuse(&mut client, live, server, status, keep).await;
                if !keep {
                    if sent {
                        linger(&mut client).await;
                    }
                    return Next::Closed;
                }
                if !sent {
                    return Next::Closed;
                }
            }
            Parsed::Malformed => {
                let _ = malformed(&mut client).await;
                return Next::Closed;
            }
            Parsed::Request(r) => {
                if !one(&mut client, live, server, r).await {
                    return Next::Closed;
                }
            }
        }
        first = false;
    }
}

/// Answer a head over a size limit with the error page (there is no request to log: its
/// head was not read whole, or not kept).
async fn refuse(client: &mut Client, live: &Live, server: usize, code: u16, keep: bool) -> bool {
    let ctx = Ctx::new(live.load_full(), server);
    let Ok((mut head, body)) = failure::error_response(&ctx, code, false) else {
        return false;
    };
    respond::head_to_wire(&mut head, false, !keep, &mut client.out);
    if let Some(b) = body {
        client.out.extend_from_slice(&b);
    }
    client.flush().await.is_ok()
}

/// After refusing a request whose rest was not read: stop sending, and read and drop what
/// the client still sends for a while (at most 2 s and 4 MiB), so the answer is not lost to
/// a reset caused by unread bytes (the "lingering close" nginx does too).
async fn linger(client: &mut Client) {
    use tokio::io::AsyncWriteExt;
    if client.stream.shutdown().await.is_err() {
        return;
    }
    let until = tokio::time::Instant::now() + Duration::from_secs(2);
    let mut dropped = 0usize;
    while dropped < 4 << 20 {
        client.buf.clear();
        match client.fill_until(until).await {
            Some(Ok(n)) if n > 0 => dropped += n,
            _ => break,
        }
    }
}

async fn malformed(client: &mut Client) -> std::io::Result<()> {
    client.out.extend_from_slice(
        b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
    );
    client.flush().await
}

/// Serve one request; `true` when the connection can carry the next one.
async fn one(client: &mut Client, live: &Live, server: usize, r: head::Request) -> bool {
    let mut ctx = Ctx::new(live.load_full(), server);
    ctx.host = std::mem::take(&mut client.host);
    ctx.tls = client.tls.clone();
    ctx.engine = "h1";
    ctx.connection = client.connection.as_ref().map(|c| c.request());
    let body_timeout = ctx.server().body_timeout;
    let close = r.close;
    let mut ex = Exchange {
        client,
        head: r.head,
        body: match r.body {
            head::BodyFraming::Length(n) => BodyLeft::Length(n),
            head::BodyFraming::Chunked => BodyLeft::Chunked(Default::default()),
        },
        expect_continue: r.expect_continue,
        upgrade: r.upgrade,
        kept: None,
        sent_head: None,
        sent_raw: None,
        sent_built: Default::default(),
        sent_bytes: 0,
        body_timeout,
    };
    let keep = match drive(&mut ex, &mut ctx, close).await {
        Ok(keep) => keep,
        Err(Fail::Abort) => false,
        Err(Fail::Status(code)) => error_page(&mut ex, &mut ctx, code, close).await,
    };
    log::finish(&ex, &mut ctx);
    ex.client.host = std::mem::take(&mut ctx.host);
    ex.client.req_spans = ex.head.recycle(&mut ex.client.req);
    if let Some(sent) = ex.sent_head.take() {
        ex.client.resp_map = Some(emptied(http::response::Parts::from(sent).headers));
    }
    keep
}

/// A header map kept for its capacity, emptied now: its values hold on to the read buffer
/// they were sliced from, which can then be reused instead of reallocated.
pub(crate) fn emptied(mut map: http::HeaderMap) -> http::HeaderMap {
    map.clear();
    map
}

/// Answer with the error page; `true` when the connection can go on (the request was read
/// to its end and the status says nothing against its framing).
async fn error_page(ex: &mut Exchange<'_>, ctx: &mut Ctx, code: u16, close: bool) -> bool {
    ctx.status = code;
    let keep =
        !close && !ex.client.stopping() && ex.body_done() && !matches!(code, 400 | 408 | 413);
    let head_only = ex.method() == http::Method::HEAD;
    if ex.sent_head.is_none() && ex.sent_raw.is_none() {
        if let Some(a) = crate::proxy::response::error_answer(ex, ctx, code) {
            return match request::answer(ex, ctx, a) {
                Ok((head, body)) => respond::answer(ex, head, body, !keep).await.is_ok() && keep,
                Err(_) => false,
            };
        }
    }
    match failure::error_response(ctx, code, head_only) {
        Ok((head, body)) => respond::answer(ex, head, body, !keep).await.is_ok() && keep,
        Err(_) => false,
    }
}

/// The request through the chain. `Ok(keep)`: answered, and whether the connection goes on.
async fn drive(ex: &mut Exchange<'_>, ctx: &mut Ctx, close: bool) -> Result<bool, Fail> {
    // no location: 404, unless answered anyway (an ACME challenge, a redirect to HTTPS)
    if !route::route(ex, ctx) && !request::answered_without_location(ex, ctx) {
        return Err(Fail::Status(404));
    }
    forwarded::identify(ex, ctx);
    request::check_declared_body(ex, ctx).map_err(status)?;
    if ex.chunked() {
        request::check_first_chunk(ex, ctx).await.map_err(status)?;
    }
    if let Some(a) = request::run_plugins(ex, ctx).await.map_err(status)? {
        let (head, body) = request::answer(ex, ctx, a).map_err(status)?;
        // a body nobody read is still on the wire: the connection cannot go on
        let keep = !close && !ex.client.stopping() && ex.body_done();
        respond::answer(ex, head, body, !keep)
            .await
            .map_err(|_| Fail::Abort)?;
        if let Some(source) = ctx.plugin.answer_stream.take() {
            respond::stream(ex, source).await.map_err(|_| Fail::Abort)?;
        }
        return Ok(keep);
    }
    loop {
        let (timeouts, addr, fields) = pick(ex, ctx, "HTTP/1 loop").await?;
        let up = if !ex.upgrade && !ex.chunked() && upstream::unchanged(ctx) {
            // nothing to change but the forwarding headers: the client's head goes as it is
            UpHead::Direct(fields)
        } else {
            let map = ex.client.up_map.take().unwrap_or_default();
            let mut map = upstream_fields(ex.req(), ex.upgrade, map);
            if let Some(f) = fields {
                f.insert_into(&mut map);
            }
            let mut up = upstream_head(ex.req(), map);
            upstream::prepare_request(ex, ctx, &mut up, false).map_err(status)?;
            if ex.chunked() {
                // a chunked body goes on chunked (last, where Pingora's path puts it too)
                up.append_header(
                    http::header::TRANSFER_ENCODING,
                    http::HeaderValue::from_static("chunked"),
                )
                .map_err(status)?;
            }
            UpHead::Built(up)
        };
        let outcome = attempt(ex, ctx, &up, addr, &timeouts, close).await;
        if let UpHead::Built(up) = up {
            ex.client.up_map = Some(emptied(http::request::Parts::from(up).headers));
        }
        match outcome {
            Attempt::Done(keep) => return Ok(keep),
            Attempt::Retry => continue,
            Attempt::Fail(f) => return Err(f),
        }
    }
}

/// The peer for this try (the upstream phase, the balancer) with its timeouts, and the
/// forwarding headers' values: what both own engines need before the upstream head.
pub(crate) async fn pick(
    ex: &mut dyn crate::proxy::exchange::Downstream,
    ctx: &mut Ctx,
    engine: &str,
) -> Result<(Timeouts, std::net::SocketAddr, Option<forwarded::Fields>), Fail> {
    let peer = upstream::choose_peer(ex, ctx).await.map_err(status)?;
    if peer.tls {
        tracing::warn!(
            "upstream {:?} uses TLS, which the own {engine} does not speak yet; set \
             `engine = \"pingora\"` on this server",
            ctx.upstream.as_ref().map(|u| u.name.as_str())
        );
        return Err(Fail::Status(502));
    }
    let Some(addr) = ctx.upstream_addr else {
        return Err(Fail::Status(502));
    };
    let fields = forwarded::wanted(ctx)
        .then(|| forwarded::fields(ex, ctx))
        .transpose()
        .map_err(status)?;
    let timeouts = Timeouts {
        connect: peer.connect_timeout,
        read: peer.read_timeout,
        write: peer.write_timeout,
    };
    Ok((timeouts, addr, fields))
}

pub(crate) struct Timeouts {
    pub connect: Option<Duration>,
    pub read: Option<Duration>,
    pub write: Option<Duration>,
}

pub(crate) enum Attempt {
    Done(bool),
    Retry,
    Fail(Fail),
}

/// One try on one peer.
async fn attempt(
    ex: &mut Exchange<'_>,
    ctx: &mut Ctx,
    up: &UpHead,
    addr: std::net::SocketAddr,
    t: &Timeouts,
    close: bool,
) -> Attempt {
    // a body already read (by a script) can be sent again; one streamed from the client
    // cannot, so only a request without one is retried after it was sent
    let resendable = ex.body_done();
    let (origin, resp, framing, reusable) =
        match super::ask::ask(ex, ctx, up, addr, t, resendable).await {
            Ok(a) => a,
            Err(next) => return next,
        };
    let mut resp = match resp {
        origin::RespHead::Built(h) => h,
        origin::RespHead::Raw(raw) => {
            // no plugin and no trace: its fields go to the client as the upstream sent them
            ctx.status = raw.status.as_u16();
            let chunked = matches!(framing, origin::Framing::Chunked | origin::Framing::Close);
            let keep = !close && !ex.client.stopping() && !ex.upgrade;
            let spans = std::mem::take(&mut ex.client.spans);
            respond::raw_head_to_wire(&raw, &spans, chunked, !keep, &mut ex.client.out);
            ex.client.spans = spans;
            ex.sent_raw = Some(raw);
            return relay(ex, ctx, origin, framing, t, reusable, keep).await;
        }
    };
    let edited = response::run_plugins(ex, &mut resp, ctx);
    if crate::proxy::trace::wants_document(ctx) {
        // the trace instead of the body: the upstream connection, its body unread, is closed
        ctx.inflight = None;
        drop(origin);
        let Ok((head, body)) = crate::proxy::trace::document(ctx, &resp) else {
            return Attempt::Fail(Fail::Status(500));
        };
        ctx.status = 200;
        return match respond::answer(ex, head, Some(body), true).await {
            Ok(_) => Attempt::Done(false),
            Err(_) => Attempt::Fail(Fail::Abort),
        };
    }
    if framing == origin::Framing::Switched {
        super::switch::head_to_wire(&resp, &mut ex.client.out);
        ex.sent_head = Some(resp);
        // the peer stays busy (least_conn) until both sides closed
        let spliced = super::switch::splice(ex.client, origin, t.read).await;
        ctx.inflight = None;
        if let Ok(n) = spliced {
            ex.sent_bytes += n as usize;
        }
        return Attempt::Done(false);
    }
    let chunked = framing != origin::Framing::None
        && (ctx.body_filtered
            || matches!(framing, origin::Framing::Chunked | origin::Framing::Close));
    // after a refused upgrade the client's next bytes are not requests: close
    let keep = !close && !ex.client.stopping() && !ex.upgrade;
    respond::upstream_head_to_wire(&mut resp, edited, chunked, !keep, &mut ex.client.out);
    ex.sent_head = Some(resp);
    relay(ex, ctx, origin, framing, t, reusable, keep).await
}

/// Relay the body after the head, then pool the connection if the body ended cleanly.
async fn relay(
    ex: &mut Exchange<'_>,
    ctx: &mut Ctx,
    mut origin: Origin,
    framing: origin::Framing,
    t: &Timeouts,
    reusable: bool,
    keep: bool,
) -> Attempt {
    let (_, cap) = pool_limits(ctx);
    let relayed = respond::relay_body(ex, ctx, &mut origin, framing, t.read).await;
    ctx.inflight = None;
    match relayed {
        Ok(()) => {
            if reusable {
                origin.release(cap);
            }
            Attempt::Done(keep)
        }
        Err(e) => {
            tracing::debug!("response to the client cut: {e}");
            Attempt::Fail(Fail::Abort)
        }
    }
}

/// The upstream's idle limit for pooled connections and the pool's size per peer.
pub(crate) fn pool_limits(ctx: &Ctx) -> (Duration, usize) {
    let idle = ctx.upstream.as_ref().and_then(|u| u.conf.idle_timeout);
    (
        idle.unwrap_or(super::pool::DEFAULT_IDLE),
        ctx.state.config.basic.upstream_keepalive_pool_size,
    )
}

/// A pooled connection failed before any answer: the request goes once more to the same
/// peer on a fresh connection, counted as a retry.
pub(crate) fn once_more(ctx: &mut Ctx) {
    if let Some(p) = &ctx.peer {
        ctx.tried.push(p.addr);
    }
    if let Some(m) = ctx.upstream_metrics() {
        m.retries.inc();
    }
    ctx.try_started();
}

/// Whether `retries` allows one more attempt.
pub(crate) fn retry_left(ctx: &Ctx) -> bool {
    ctx.upstream
        .as_ref()
        .is_some_and(|u| ctx.tried.len() as u32 <= u.conf.retries)
}

/// A failure a reused connection shows when the peer had closed it while idle.
pub(crate) fn stale(e: &OriginError) -> bool {
    matches!(
        e,
        OriginError::Write(_) | OriginError::Closed { early: true } | OriginError::Read(_)
    )
}

pub(crate) fn failed(ctx: &mut Ctx, e: OriginError, retry_allowed: bool) -> Attempt {
    tracing::warn!(
        upstream = ctx.upstream.as_ref().map(|u| u.name.as_str()).unwrap_or("-"),
        peer = ?ctx.upstream_addr,
        "{e}"
    );
    failure::count(ctx, e.kind());
    if failure::peer_failed(ctx) && retry_allowed {
        Attempt::Retry
    } else {
        Attempt::Fail(Fail::Status(e.status()))
    }
}

/// What went wrong while a request was sent on.
pub(crate) enum Trouble {
    Origin(OriginError),
    Client(BodyError),
    /// a chunked body grew over `client_max_body_size`
    TooLarge,
}

impl From<OriginError> for Trouble {
    fn from(e: OriginError) -> Self {
        Trouble::Origin(e)
    }
}

impl super::ask::Ask for Exchange<'_> {
    type Up = UpHead;

    async fn send_and_read(
        &mut self,
        ctx: &mut Ctx,
        origin: &mut Origin,
        up: &UpHead,
        t: &Timeouts,
    ) -> Result<(origin::RespHead, origin::Framing, bool), Trouble> {
        send_and_read(self, ctx, origin, up, t).await
    }

    fn idempotent(&self) -> bool {
        self.method().is_idempotent()
    }
}

/// Send the head and the body, then read the response head.
async fn send_and_read(
    ex: &mut Exchange<'_>,
    ctx: &mut Ctx,
    origin: &mut Origin,
    up: &UpHead,
    t: &Timeouts,
) -> Result<(origin::RespHead, origin::Framing, bool), Trouble> {
    let chunked = ex.chunked();
    let mut wire = std::mem::take(&mut ex.client.out);
    wire.clear();
    match up {
        UpHead::Built(up) => origin::write_request(up, &mut wire),
        UpHead::Direct(fields) => {
            origin::write_direct(&ex.head, &ex.client.req, fields.as_ref(), &mut wire)
        }
    }
    match &ex.kept {
        Some(k) if chunked && !k.is_empty() => super::chunked::encode(k, &mut wire),
        Some(k) => wire.extend_from_slice(k),
        None => {}
    }
    let mut sent = origin.send(&wire, t.write).await;
    if sent.is_ok() && !ex.body_done() {
        // the rest of the body, as it comes (chunks re-framed; the size counted)
        while let Some(piece) = ex.next_body_piece().await.map_err(Trouble::Client)? {
            wire.clear();
            let piece: &[u8] = if chunked {
                if crate::proxy::request::count_body(Some(&piece), ctx).is_err() {
                    ex.client.out = wire;
                    return Err(Trouble::TooLarge);
                }
                super::chunked::encode(&piece, &mut wire);
                &wire
            } else {
                &piece
            };
            sent = origin.send(piece, t.write).await;
            if sent.is_err() {
                break;
            }
        }
    }
    // a chunked body ends with the last chunk, also when a script had read all of it
    if sent.is_ok() && chunked {
        sent = origin.send(super::chunked::LAST, t.write).await;
    }
    wire.clear();
    ex.client.out = wire;
    sent?;
    let ask = origin::Asked {
        head: ex.method() == http::Method::HEAD,
        upgrade: ex.upgrade,
        // nothing will edit the head: no plugin, no trace, no upgrade
        raw: !ex.upgrade && ctx.trace.is_none() && ctx.chain().is_none_or(|c| c.is_empty()),
    };
    Ok(origin
        .read_head(
            t.read,
            ask,
            &mut ex.client.resp_map,
            &mut ex.client.spans,
            ex.client.req.names.get_mut(),
        )
        .await?)
}
