//! The own HTTP/2 path: Pingora's HTTP/2 connection (the `h2` crate under
//! `pingora-core`'s server session) with each stream driven through the phase chain here,
//! to an HTTP/1 upstream over the own loop's pooled connections (`h1/origin.rs`), instead of
//! through `pingora-proxy`. Measured with callgrind, a proxied h2c GET costs ~113,000
//! instructions on Pingora's path (most of it `pingora-proxy`'s session and the copies of
//! it); see `docs/benchmarks.md` for what it costs here.
//!
//! ```toml
//! [servers.web]
//! http2 = true         # h2c (prior knowledge) on this listener; over TLS, ALPN `h2`
//! engine = "native"    # default; "pingora" sends every stream through Pingora's proxy
//! ```
//!
//! A stream is served here unless it is `CONNECT`, gRPC (`application/grpc*`: trailers and h2
//! upstreams are Pingora's path's), has userinfo in `:authority`, or is over the size limits:
//! those go to Pingora's path on the same connection, before any phase ran for them. (A
//! config with a TLS or HTTP/2 upstream keeps the whole server on Pingora's path, as for
//! HTTP/1: `State::native_h1`.) A request body goes upstream as it comes (with its length when it
//! declares one, else chunked), counted against `client_max_body_size`.
//!
//! - `serve.rs`: which streams are served here, and the flow of one through the phases
//! - `stream.rs`: one stream as the chain's `Downstream`; answers and relayed bodies

pub mod serve;
pub mod stream;

use crate::state::Live;
use crate::tls::TlsInfo;
use pingora::apps::HttpServerApp;
use pingora::protocols::http::v2::server::{handshake, H2Accept, HttpSession};
use pingora::protocols::http::ServerSession;
use pingora::protocols::{Digest, Stream};
use pingora::server::ShutdownWatch;
use std::sync::Arc;

/// Streams refused as malformed (a bad `:path`, a conflicting length) a connection may open
/// before it is closed: the budget Pingora's own accept loop keeps.
const MALFORMED_BUDGET: usize = 32;

/// What every stream of a connection shares.
pub struct Shared<A> {
    pub live: Live,
    pub server: usize,
    /// the connection's TLS session, on TLS
    pub tls: Option<Arc<TlsInfo>>,
    /// Pingora's path, for the streams not served here
    pub fallback: Arc<A>,
    pub shutdown: ShutdownWatch,
    /// the client's address and its IP as header text, formatted once per connection
    /// (`serve_connection` fills it in)
    pub peer: (Option<std::net::SocketAddr>, Option<http::HeaderValue>),
}

// by hand: a derived `Clone` would ask `A: Clone`
impl<A> Clone for Shared<A> {
    fn clone(&self) -> Self {
        Shared {
            live: self.live.clone(),
            server: self.server,
            tls: self.tls.clone(),
            fallback: self.fallback.clone(),
            shutdown: self.shutdown.clone(),
            peer: self.peer.clone(),
        }
    }
}

/// Serve an HTTP/2 connection until it closes. `first_stream` runs when the first stream
/// arrives (it stops the connection's header clock).
pub async fn serve_connection<A>(stream: Stream, mut shared: Shared<A>, first_stream: impl FnOnce())
where
    A: HttpServerApp + Send + Sync + 'static,
{
    let peer = stream
        .get_socket_digest()
        .and_then(|d| d.peer_addr().and_then(|a| a.as_inet()).copied());
    shared.peer = (
        peer,
        peer.and_then(|p| crate::proxy::exchange::ip_text(p.ip())),
    );
    let digest = Arc::new(Digest {
        ssl_digest: stream.get_ssl_digest(),
        timing_digest: stream.get_timing_digest(),
        proxy_digest: stream.get_proxy_digest(),
        socket_digest: stream.get_socket_digest(),
    });
    let mut conn = match handshake(stream, shared.fallback.h2_options()).await {
        Ok(c) => c,
        Err(e) => {
            tracing::debug!("HTTP/2 handshake: {e}");
            return;
        }
    };
    let mut shutdown = shared.shutdown.clone();
    let mut stopping = false;
    let mut malformed = 0usize;
    let mut first_stream = Some(first_stream);
    loop {
        let next = if stopping {
            HttpSession::from_h2_conn(&mut conn, digest.clone()).await
        } else {
            tokio::select! {
                biased;
                // GOAWAY; the streams already open (and those the client opens before it
                // sees it) are still served, then the connection ends
                _ = shutdown.changed() => {
                    conn.graceful_shutdown();
                    stopping = true;
                    continue;
                }
                s = HttpSession::from_h2_conn(&mut conn, digest.clone()) => s,
            }
        };
        let session = match next {
            // boxed once here: the session is large, and moves several times on its way
            Ok(Some(H2Accept::Session(s))) => Box::new(s),
            Ok(Some(H2Accept::Rejected)) => {
                malformed += 1;
                if malformed > MALFORMED_BUDGET {
                    tracing::debug!("HTTP/2 connection closed: too many malformed streams");
                    return;
                }
                continue;
            }
            Ok(None) => return,
            Err(e) => {
                // clients often just close the connection: not worth more than debug
                tracing::debug!("HTTP/2 connection: {e}");
                return;
            }
        };
        if let Some(f) = first_stream.take() {
            f();
        }
        let shared = shared.clone();
        tokio::spawn(async move {
            // both boxed: the futures are several KB, which the task would otherwise carry,
            // and a spawned task is copied whole three times on its way into the runtime
            if let Some(session) = Box::pin(serve::stream(session, &shared)).await {
                let session = ServerSession::new_http2(*session);
                let fallback = shared.fallback.process_new_http(session, &shared.shutdown);
                let _ = Box::pin(fallback).await;
            }
        });
    }
}
