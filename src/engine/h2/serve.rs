//! One HTTP/2 stream through the phase chain, in flow order (as the own HTTP/1 loop,
//! `h1/serve.rs`, whose upstream side it shares):
//!
//! ```text
//! stream head ─▶ served here? (else Pingora's path) ─▶ route ─▶ identify client
//!   ─▶ request plugins ─▶ (early answer) ─▶ pick peer ─▶ upstream head (Host from
//!   :authority, forwarding headers) ─▶ pooled or new HTTP/1 connection ─▶ send head and
//!   body (chunked when its length is not declared) ─▶ response head
//!   ─▶ response plugins ─▶ relay body (body filters) ─▶ log phase
//! ```

use super::stream::{relay_body, Exchange};
use super::Shared;
use crate::engine::h1::origin::{self, Origin};
use crate::engine::h1::serve::{
    emptied, pick, pool_limits, status, Attempt, Fail, Timeouts, Trouble,
};
use crate::engine::h1::up_head::{upstream_fields, upstream_head};
use crate::error::http_status;
use crate::proxy::ctx::Ctx;
use crate::proxy::exchange::Downstream;
use crate::proxy::{failure, forwarded, log, request, response, route, upstream};
use pingora::http::RequestHeader;
use pingora::protocols::http::v2::server::HttpSession;

/// Serve one stream; `Some(session)`: one for Pingora's path, untouched.
pub async fn stream<A>(session: Box<HttpSession>, shared: &Shared<A>) -> Option<Box<HttpSession>> {
    let state = shared.live.load_full();
    if !plain(&session, &state.servers[shared.server].conf) {
        return Some(session);
    }
    let mut ctx = Ctx::new(state, shared.server);
    ctx.tls = shared.tls.clone();
    ctx.engine = "h2";
    let body_timeout = ctx.server().body_timeout;
    let mut ex = Exchange::new(session, shared.peer.clone(), body_timeout);
    let routed = route::route(&mut ex, &mut ctx);
    if let Err(Fail::Status(code)) = drive(&mut ex, &mut ctx, routed).await {
        error_page(&mut ex, &mut ctx, code).await;
    }
    log::finish(&ex, &mut ctx);
    ex.scratch.give_back();
    None
}

/// A request this path serves: not `CONNECT`, not gRPC, no userinfo in its authority,
/// within the size limits (Pingora's path gives every other verdict).
fn plain(session: &HttpSession, server: &crate::config::model::Server) -> bool {
    let req = session.req_header();
    if req.method == http::Method::CONNECT {
        return false;
    }
    if req
        .uri
        .authority()
        .is_some_and(|a| a.as_str().contains('@'))
    {
        return false;
    }
    let grpc = req
        .headers
        .get(http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"));
    if grpc {
        return false;
    }
    let limits = crate::proxy::guard::SizeLimits::of(server);
    let fields = req.headers.iter().map(|(k, v)| (k.as_str().len(), v.len()));
    let sizes = crate::proxy::guard::size_status(
        limits,
        req.method.as_str().len(),
        req.raw_path().len(),
        fields,
    );
    sizes.is_none()
}

/// The request through the chain: answered (or `Err`, nothing sent yet: answer with the
/// status; or the stream broke).
async fn drive(ex: &mut Exchange, ctx: &mut Ctx, routed: bool) -> Result<(), Fail> {
    // no location: 404, unless answered anyway (an ACME challenge, a redirect to HTTPS)
    if !routed && !request::answered_without_location(ex, ctx) {
        return Err(Fail::Status(404));
    }
    forwarded::identify(ex, ctx);
    request::check_declared_body(ex, ctx).map_err(status)?;
    if let Some(a) = request::run_plugins(ex, ctx).await.map_err(status)? {
        let (head, body) = request::answer(ex, ctx, a).map_err(status)?;
        let source = ctx.plugin.answer_stream.take();
        ex.answer(head, body, source.is_some())
            .await
            .map_err(|_| Fail::Abort)?;
        if let Some(source) = source {
            ex.stream(source).await.map_err(|_| Fail::Abort)?;
        }
        return Ok(());
    }
    loop {
        let (timeouts, addr, fields) = pick(ex, ctx, "HTTP/2 path").await?;
        let req = ex.session.req_header();
        let map = ex.scratch.up_map.take().unwrap_or_default();
        let mut map = upstream_fields(req, false, map);
        host_from_authority(req, &mut map).map_err(status)?;
        if let Some(f) = fields {
            f.insert_into(&mut map);
        }
        let mut up = upstream_head(req, map);
        upstream::prepare_request(ex, ctx, &mut up, false).map_err(status)?;
        if chunked(ex) {
            // a body of no declared length goes on chunked (last, as on the HTTP/1 loop)
            up.append_header(
                http::header::TRANSFER_ENCODING,
                http::HeaderValue::from_static("chunked"),
            )
            .map_err(status)?;
        }
        let outcome = attempt(ex, ctx, &up, addr, &timeouts).await;
        ex.scratch.up_map = Some(emptied(http::request::Parts::from(up).headers));
        match outcome {
            Attempt::Done(_) => return Ok(()),
            Attempt::Retry => continue,
            Attempt::Fail(f) => return Err(f),
        }
    }
}

/// HTTP/1 upstreams expect `Host`; HTTP/2 carries `:authority` instead. It replaces any
/// `Host` field the client sent too (as Pingora's path does).
fn host_from_authority(req: &RequestHeader, map: &mut http::HeaderMap) -> pingora::Result<()> {
    use http::header::HOST;
    let mut hosts = map.get_all(HOST).iter();
    let one_host = match (hosts.next(), hosts.next()) {
        (Some(h), None) => Some(h.as_bytes()),
        _ => None,
    };
    let value = match req.uri.authority() {
        Some(a) if one_host == Some(a.as_str().as_bytes()) => return Ok(()),
        Some(a) => http::HeaderValue::from_str(a.as_str()).map_err(|_| http_status(400))?,
        None if map.contains_key(HOST) => return Ok(()),
        None => http::HeaderValue::from_static(""),
    };
    map.insert(HOST, value);
    Ok(())
}

/// The request has a body whose length it does not declare: it goes upstream chunked.
fn chunked(ex: &Exchange) -> bool {
    !ex.session.is_body_empty()
        && !ex
            .session
            .req_header()
            .headers
            .contains_key(http::header::CONTENT_LENGTH)
}

/// One try on one peer.
async fn attempt(
    ex: &mut Exchange,
    ctx: &mut Ctx,
    up: &RequestHeader,
    addr: std::net::SocketAddr,
    t: &Timeouts,
) -> Attempt {
    let (_, cap) = pool_limits(ctx);
    // a body already read (by a script) can be sent again; one streamed from the client
    // cannot, so only a request without one is retried after it was sent
    let resendable = ex.body_ended;
    let (mut origin, resp, framing, reusable) =
        match crate::engine::h1::ask::ask(ex, ctx, up, addr, t, resendable).await {
            Ok(a) => a,
            Err(next) => return next,
        };
    let mut resp = resp.into_built();
    response::run_plugins(ex, &mut resp, ctx);
    if crate::proxy::trace::wants_document(ctx) {
        // the trace instead of the body: the upstream connection, its body unread, is closed
        ctx.inflight = None;
        drop(origin);
        let Ok((head, body)) = crate::proxy::trace::document(ctx, &resp) else {
            return Attempt::Fail(Fail::Status(500));
        };
        ctx.status = 200;
        return match ex.answer(head, Some(body), false).await {
            Ok(()) => Attempt::Done(false),
            Err(_) => Attempt::Fail(Fail::Abort),
        };
    }
    let no_body = framing == origin::Framing::None;
    if ex.head(resp, no_body).is_err() {
        return Attempt::Fail(Fail::Abort);
    }
    let relayed = relay_body(ex, ctx, &mut origin, framing, t.read).await;
    ctx.inflight = None;
    match relayed {
        Ok(()) => {
            if reusable {
                origin.release(cap);
            }
            Attempt::Done(false)
        }
        Err(e) => {
            tracing::debug!("response to the client cut: {e}");
            Attempt::Fail(Fail::Abort)
        }
    }
}

impl crate::engine::h1::ask::Ask for Exchange {
    type Up = RequestHeader;

    async fn send_and_read(
        &mut self,
        ctx: &mut Ctx,
        origin: &mut Origin,
        up: &RequestHeader,
        t: &Timeouts,
    ) -> Result<(origin::RespHead, origin::Framing, bool), Trouble> {
        send_and_read(self, ctx, origin, up, t).await
    }

    fn idempotent(&self) -> bool {
        self.session.req_header().method.is_idempotent()
    }
}

/// Send the head and the body (what a script kept of it first, then the rest as it comes),
/// then read the response head.
async fn send_and_read(
    ex: &mut Exchange,
    ctx: &mut Ctx,
    origin: &mut Origin,
    up: &RequestHeader,
    t: &Timeouts,
) -> Result<(origin::RespHead, origin::Framing, bool), Trouble> {
    let chunked = chunked(ex);
    let s = &mut ex.scratch;
    s.wire.clear();
    origin::write_request(up, &mut s.wire);
    match &ex.kept {
        Some(k) if chunked && !k.is_empty() => crate::engine::h1::chunked::encode(k, &mut s.wire),
        Some(k) => s.wire.extend_from_slice(k),
        None => {}
    }
    origin.send(&s.wire, t.write).await?;
    while let Some(piece) = ex.next_body_piece().await.map_err(Trouble::Client)? {
        if chunked {
            if crate::proxy::request::count_body(Some(&piece), ctx).is_err() {
                return Err(Trouble::TooLarge);
            }
            let wire = &mut ex.scratch.wire;
            wire.clear();
            crate::engine::h1::chunked::encode(&piece, wire);
            origin.send(wire, t.write).await?;
        } else {
            origin.send(&piece, t.write).await?;
        }
    }
    if chunked {
        origin
            .send(crate::engine::h1::chunked::LAST, t.write)
            .await?;
    }
    let ask = origin::Asked {
        head: ex.session.req_header().method == http::Method::HEAD,
        upgrade: false,
        raw: false,
    };
    let s = &mut ex.scratch;
    Ok(origin
        .read_head(t.read, ask, &mut s.resp_map, &mut s.spans, &mut s.names)
        .await?)
}

/// Answer with the error page (a plugin's answer for it first, e.g. the cache's stale copy).
async fn error_page(ex: &mut Exchange, ctx: &mut Ctx, code: u16) {
    ctx.status = code;
    if ex.sent_head().is_some() {
        return;
    }
    if let Some(a) = response::error_answer(ex, ctx, code) {
        if let Ok((head, body)) = request::answer(ex, ctx, a) {
            let _ = ex.answer(head, body, false).await;
        }
        return;
    }
    let head_only = ex.method() == http::Method::HEAD;
    if let Ok((head, body)) = failure::error_response(ctx, code, head_only) {
        let _ = ex.answer(head, body, false).await;
    }
}
