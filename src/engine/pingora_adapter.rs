//! Pingora's `ProxyHttp`: one short phase method per step of the request flow, each
//! delegating to the engine-neutral chain in `proxy/`. It serves HTTP/2 and the HTTP/1
//! requests the own loop hands over. Pingora's `Session` is the [`Downstream`] here.
//!
//! ```text
//! early_request_filter  guard.rs       size limits, framing (smuggling) checks  → 400/414/431
//! request_filter        route.rs       pick the location                         → 404
//!                       forwarded.rs   who the client is
//!                       request.rs     body limit, plugin chain                  → 413, early answer
//! request_body_filter   request.rs     count undeclared bodies                   → 413
//! upstream_peer         upstream.rs    upstream and peer (again on each retry)  → 502
//! upstream_request_…    upstream.rs    rewrite, forwarding and configured headers
//! fail_to_connect       failure.rs     passive health, retry on another peer
//! upstream_response_…   (here)         the peer answered: close its circuit
//! response_filter       response.rs    plugins edit status and headers
//! response_body_filter  response.rs    plugins transform the body (Lua on_body)
//! error_while_proxy     failure.rs     passive health, retry only if idempotent
//! fail_to_proxy         failure.rs     one error → status mapping                → 502/504/…
//! logging               log.rs         access log line
//! ```

use crate::error::http_status;
use crate::proxy::exchange::{BodyError, Downstream};
use crate::proxy::forwarded;
use crate::proxy::{ctx::Ctx, failure, guard, log, request, response, route, upstream};
use crate::state::Live;
use async_trait::async_trait;
use bytes::Bytes;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use pingora::upstreams::peer::HttpPeer;
use pingora::Result;

/// The proxy for one `[servers.NAME]`.
pub struct Proxy {
    pub live: Live,
    /// index of the server in the config (stable across reloads of the same listeners)
    pub server: usize,
}

#[async_trait]
impl ProxyHttp for Proxy {
    type CTX = Ctx;

    fn new_ctx(&self) -> Ctx {
        Ctx::new(self.live.load_full(), self.server)
    }

    /// Before anything reads the request: limits and framing checks, client timeouts.
    async fn early_request_filter(&self, session: &mut Session, ctx: &mut Ctx) -> Result<()> {
        crate::server::deadline::header_done();
        ctx.connection = crate::server::deadline::connection_request();
        // requests a client sends before reading the answer to the one before are answered
        // in order on the same connection (RFC 9112 §9.3.2), not dropped; except after an
        // upgrade request, whose following bytes belong to the new protocol if it is accepted
        let upgrade = session
            .req_header()
            .headers
            .contains_key(http::header::UPGRADE);
        // and a connection the request does not keep (HTTP/1.0 without keep-alive,
        // `Connection: close`) is not made to stay open by the keep-alive timeout below
        let mut keeps = true;
        if let pingora::protocols::http::server::Session::H1(h1) = session.as_downstream_mut() {
            h1.set_pipelining_enabled(!upgrade);
            keeps = h1.will_keepalive();
        }
        if ctx.server().tls.is_some() {
            // the session of this connection, registered at the handshake (tls/conn.rs)
            ctx.tls = session
                .digest()
                .and_then(|d| d.socket_digest.as_ref())
                .and_then(|d| crate::tls::conn::info_of(d));
        }
        let server = ctx.server();
        session.set_read_timeout(Some(server.body_timeout));
        if keeps {
            session.set_keepalive(Some(server.keepalive_timeout.as_secs()));
        }
        // whether the connection stays open after a refusal is failure.rs's to decide
        guard::check(session, server)
    }

    /// Route, identify the client, check the body limit, then run the plugin chain.
    /// Returns `true` when the request was answered here.
    async fn request_filter(&self, session: &mut Session, ctx: &mut Ctx) -> Result<bool> {
        // no location: 404, unless answered anyway (an ACME challenge, a redirect to HTTPS)
        if !route::route(session, ctx) && !request::answered_without_location(session, ctx) {
            return Err(http_status(404));
        }
        forwarded::identify(session, ctx);
        let grpc_web = ctx.location().is_some_and(|l| l.grpc_web);
        ctx.plugin.grpc_web = crate::proxy::grpc_web::begin(session.req_header(), grpc_web);
        request::check_declared_body(session, ctx)?;
        request::check_first_chunk(session, ctx).await?;
        match request::run_plugins(session, ctx).await? {
            Some(answer) => {
                let (head, body) = request::answer(session, ctx, answer)?;
                let stream = ctx.plugin.answer_stream.take();
                let end = body.is_none() && stream.is_none();
                session.write_response_header(Box::new(head), end).await?;
                if let Some(body) = body {
                    session.write_response_body(Some(body), true).await?;
                }
                if let Some(mut source) = stream {
                    // a streamed body (`directory`): its length is in the head
                    loop {
                        match source.next().await {
                            Ok(Some(piece)) => {
                                session.write_response_body(Some(piece), false).await?
                            }
                            Ok(None) => break,
                            Err(e) => {
                                return Err(pingora::Error::because(
                                    pingora::ErrorType::ReadError,
                                    "reading a streamed answer",
                                    e,
                                ))
                            }
                        }
                    }
                    session.write_response_body(None, true).await?;
                }
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Count request body bytes against `client_max_body_size`.
    async fn request_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut Ctx,
    ) -> Result<()> {
        request::count_body(body.as_ref(), ctx)?;
        if let Some(b) = ctx.plugin.grpc_web.as_mut() {
            b.request_body(body, end_of_stream)?;
        }
        Ok(())
    }

    /// Pick the upstream and one of its peers; called again for each retry.
    async fn upstream_peer(&self, session: &mut Session, ctx: &mut Ctx) -> Result<Box<HttpPeer>> {
        upstream::select_peer(session, ctx).await
    }

    /// Rewrite the path and set forwarding and configured headers on the upstream request.
    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        up: &mut RequestHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        upstream::prepare_request(session, ctx, up, true)?;
        if let Some(b) = &ctx.plugin.grpc_web {
            b.upstream_request(up)?;
        }
        Ok(())
    }

    /// Connected (or a pooled connection taken): the connect time, with metrics on.
    async fn connected_to_upstream(
        &self,
        _session: &mut Session,
        reused: bool,
        _peer: &HttpPeer,
        _fd: std::os::unix::io::RawFd,
        _digest: Option<&pingora::protocols::Digest>,
        ctx: &mut Ctx,
    ) -> Result<()> {
        ctx.try_connected(reused);
        Ok(())
    }

    /// The peer answered: it is healthy as far as passive checks go.
    async fn upstream_response_filter(
        &self,
        _session: &mut Session,
        resp: &mut ResponseHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        ctx.try_answered(resp.status.as_u16());
        if let (Some(up), Some(peer)) = (&ctx.upstream, &ctx.peer) {
            up.record_success(peer);
        }
        Ok(())
    }

    /// Plugins edit the response status and headers.
    async fn response_filter(
        &self,
        session: &mut Session,
        resp: &mut ResponseHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        if let Some(b) = &ctx.plugin.grpc_web {
            b.response(resp)?;
        }
        response::run_plugins(session, resp, ctx);
        if crate::proxy::trace::wants_document(ctx) {
            // the trace instead of the body: the head now, the document at the body's end
            let (head, body) = crate::proxy::trace::document(ctx, resp)?;
            *resp = head;
            ctx.status = 200;
            ctx.trace_document = Some(body);
        }
        Ok(())
    }

    /// gRPC-web: the upstream's trailers become the body's last frame.
    async fn response_trailer_filter(
        &self,
        _session: &mut Session,
        trailers: &mut http::HeaderMap,
        ctx: &mut Ctx,
    ) -> Result<Option<Bytes>> {
        Ok(ctx.plugin.grpc_web.as_ref().map(|b| b.trailers(trailers)))
    }

    /// Plugins (Lua `on_body`) transform the response body, chunk by chunk.
    fn response_body_filter(
        &self,
        session: &mut Session,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut Ctx,
    ) -> Result<Option<std::time::Duration>> {
        if ctx.trace_document.is_some() {
            *body = if end_of_stream {
                ctx.trace_document.take()
            } else {
                None
            };
        } else {
            if ctx.body_watched {
                let chunk = body.as_deref().unwrap_or(&[]);
                response::watch_body(session, chunk, end_of_stream, ctx);
            }
            response::run_body_filters(session, body, end_of_stream, ctx);
        }
        if let Some(b) = &ctx.plugin.grpc_web {
            b.response_body(body);
        }
        if end_of_stream {
            // the peer's part is over: it stops counting as in flight for least_conn now,
            // not after the log line (a client's next request can come in between)
            ctx.inflight = None;
        }
        Ok(None)
    }

    fn fail_to_connect(
        &self,
        _session: &mut Session,
        _peer: &HttpPeer,
        ctx: &mut Ctx,
        e: Box<pingora::Error>,
    ) -> Box<pingora::Error> {
        failure::connect_failed(ctx, e)
    }

    fn error_while_proxy(
        &self,
        peer: &HttpPeer,
        session: &mut Session,
        e: Box<pingora::Error>,
        ctx: &mut Ctx,
        client_reused: bool,
    ) -> Box<pingora::Error> {
        failure::proxy_failed(
            session,
            ctx,
            e.more_context(format!("peer: {peer}")),
            client_reused,
        )
    }

    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &pingora::Error,
        ctx: &mut Ctx,
    ) -> FailToProxy {
        failure::respond_error(session, ctx, e).await
    }

    /// Not-found and other answers we chose are not errors worth a log line.
    fn suppress_error_log(&self, _session: &Session, _ctx: &Ctx, e: &pingora::Error) -> bool {
        matches!(e.etype(), pingora::ErrorType::HTTPStatus(_))
    }

    async fn logging(&self, session: &mut Session, _e: Option<&pingora::Error>, ctx: &mut Ctx) {
        crate::server::deadline::request_done();
        log::finish(session, ctx);
    }
}

#[async_trait]
impl Downstream for Session {
    fn req(&self) -> &RequestHeader {
        self.req_header()
    }

    fn req_mut(&mut self) -> &mut RequestHeader {
        self.req_header_mut()
    }

    fn peer_addr(&self) -> Option<std::net::SocketAddr> {
        self.as_downstream()
            .client_addr()
            .and_then(|a| a.as_inet())
            .copied()
    }

    fn http2(&self) -> bool {
        self.as_downstream().is_http2()
    }

    fn sent_head(&self) -> Option<&ResponseHeader> {
        self.as_downstream().response_written()
    }

    fn sent_body_bytes(&self) -> usize {
        self.as_downstream().body_bytes_sent()
    }

    fn keep_body(&mut self) {
        self.enable_retry_buffering();
    }

    async fn read_body(&mut self) -> std::result::Result<Option<Bytes>, BodyError> {
        self.read_request_body().await.map_err(|e| {
            if e.esource() == &pingora::ErrorSource::Downstream
                && matches!(e.etype(), pingora::ErrorType::ReadTimedout)
            {
                BodyError::Timeout
            } else {
                BodyError::Broken(e.etype().as_str().to_string())
            }
        })
    }
}
