//! A deadline for the whole request header, against slow clients (slowloris).
//!
//! ```toml
//! [servers.web]
//! header_timeout = "60s"   # the complete header must arrive within this
//! body_timeout = "30s"     # max wait between two reads of the request body
//! ```
//!
//! Pingora's own header timeout applies to each `read()`, so a client that sends one byte at
//! a time just under it holds a connection forever. [`Guarded`] wraps the proxy app per
//! connection with a clock:
//!
//! - armed when the connection is accepted and again when a response is finished (the next
//!   request's header must then arrive in time: this also bounds keep-alive idle time);
//! - stopped by the proxy as soon as a request header is parsed ([`header_done`], from
//!   `early_request_filter`);
//! - a watchdog closes the connection when the clock runs out while armed.
//!
//! The clock lives in a task-local, so there is no lock and no map of connections, and the
//! watchdog uses Pingora's shared timer wheel, once per connection rather than per request.
//! The wrapper sits on the connection (`ServerApp`), whose stream is a pointer, rather than
//! on each request (`HttpServerApp`), whose session is several KB that would be copied
//! once more per request: measured with callgrind, that copy was ~14,000 instructions per
//! request.
//!
//! The first request head of a connection is read here, before Pingora sees the connection
//! ([`read_first_head`]): so a request accepted just before an upgrade's shutdown is still
//! answered, and on a listener that takes h2c, HTTP/2's preface is told from HTTP/1 under the
//! same clock (a client that sends nothing, or part of the preface, is cut like any other).
//! An HTTP/2 connection then has until its first request header (the first HEADERS frame)
//! to send one; its later streams overlap and are not timed.

use async_trait::async_trait;
use pingora::apps::ServerApp;
use pingora::protocols::Stream;
use pingora::proxy::HttpProxy;
use pingora::server::ShutdownWatch;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// `deadline` value meaning "not armed"
const DISARMED: u64 = u64::MAX;

tokio::task_local! {
    static CLOCK: Arc<Clock>;
    /// the connection, for the requests Pingora's path serves on it
    static CONN: Arc<crate::proxy::ctx::Connection>;
}

/// One more request on the current connection (Pingora's path; `None` on an HTTP/2 stream,
/// which runs in a task of its own).
pub fn connection_request() -> Option<(u64, u32)> {
    CONN.try_with(|c| c.request()).ok()
}

/// One connection's header clock.
struct Clock {
    /// ms since [`epoch`] when the header must be complete, or [`DISARMED`]
    deadline: AtomicU64,
    timeout: Duration,
    /// an HTTP/2 connection: the clock runs until its first request header only (its
    /// streams overlap, so "between requests" means nothing there)
    h2: AtomicBool,
}

fn epoch() -> Instant {
    static E: OnceLock<Instant> = OnceLock::new();
    *E.get_or_init(Instant::now)
}

fn now_ms() -> u64 {
    epoch().elapsed().as_millis() as u64
}

impl Clock {
    fn arm(&self) {
        let at = now_ms() + self.timeout.as_millis() as u64;
        self.deadline.store(at, Ordering::Relaxed);
    }
}

/// Called by the proxy once a request header is complete: stop the clock.
pub fn header_done() {
    let _ = CLOCK.try_with(|c| c.deadline.store(DISARMED, Ordering::Relaxed));
}

/// Called by the proxy when a response is finished: the next header must come in time.
pub fn request_done() {
    let _ = CLOCK.try_with(|c| {
        if !c.h2.load(Ordering::Relaxed) {
            c.arm()
        }
    });
}

/// Resolves when the clock runs out while armed.
async fn watchdog(clock: &Clock) {
    loop {
        let deadline = clock.deadline.load(Ordering::Relaxed);
        let now = now_ms();
        let wait = if deadline == DISARMED {
            // a request is being served: look again later
            clock.timeout
        } else if deadline <= now {
            return;
        } else {
            Duration::from_millis(deadline - now)
        };
        pingora::time::fast_timeout::fast_sleep(wait).await;
    }
}

/// The proxy app with a header clock around each connection.
pub struct Guarded<P> {
    /// the app for HTTP/1 connections
    pub inner: Arc<HttpProxy<P>>,
    /// on a listener that takes h2c: the app for HTTP/2 connections (Pingora's h2c on)
    pub inner_h2: Option<Arc<HttpProxy<P>>>,
    pub header_timeout: Duration,
    /// the live config and this server's index: whether the own HTTP/1 loop serves
    pub live: crate::state::Live,
    pub server: usize,
}

/// The start of a connection, read ahead of any app.
enum First {
    /// a plain TCP stream, the bytes read from it, and whether they are HTTP/2's preface
    Plain(
        Box<pingora::protocols::l4::stream::Stream>,
        bytes::BytesMut,
        bool,
    ),
    /// another kind of stream (left as it is), and whether it starts with the preface
    Other(Stream, bool),
    /// a TLS connection, handshake done (HTTP/2 if ALPN chose it)
    Tls(Box<crate::tls::TlsConn>),
}

/// The TLS handshake on a new connection; `None` when it failed (logged at debug level: a
/// scanner sending garbage must not flood the log).
async fn handshake(stream: Stream, tls: &crate::tls::TlsServer) -> Option<First> {
    use pingora::protocols::l4::stream::Stream as L4;
    let l4: Box<L4> = stream.into_any().downcast().ok()?;
    let peer = {
        use pingora::protocols::GetSocketDigest;
        l4.get_socket_digest()
            .and_then(|d| d.peer_addr().map(|a| a.to_string()))
    };
    match crate::tls::accept::handshake(l4, tls).await {
        Ok(conn) => Some(First::Tls(Box::new(conn))),
        Err(e) => {
            tracing::debug!(client = peer.as_deref().unwrap_or("-"), "{e}");
            None
        }
    }
}

/// The most this reads ahead of Pingora: a head larger than this is left for Pingora to read
/// (and refuse) itself.
const READ_AHEAD: usize = 64 << 10;

/// Read the start of a new connection until its first request head is complete (its empty
/// line, [`head_end`]), or, on an h2c listener, until it is known to be the HTTP/2
/// preface; then put every byte back for Pingora. `None`: the client closed first, or the
/// stream cannot be put back.
///
/// Why: Pingora drops a connection whose request has not fully arrived when the process
/// starts to shut down (after `--upgrade` hands the listeners over), even though it accepted
/// the connection; a client then sees its request go unanswered. With the head already
/// read, Pingora parses it at once and answers (with `Connection: close`). A short
/// HTTP/1 request is never kept waiting for the 24 bytes of a preface.
async fn read_first_head(stream: Stream, h2c: bool) -> Option<First> {
    use pingora::protocols::l4::stream::Stream as L4;
    use tokio::io::AsyncReadExt;
    if !stream.as_any().is::<L4>() {
        // not a plain TCP stream: Pingora's own peek (it waits for the whole preface)
        let mut stream = stream;
        let mut buf = [0u8; H2_PREFACE.len()];
        let h2 = h2c && matches!(stream.try_peek(&mut buf).await, Ok(true)) && buf == H2_PREFACE;
        return Some(First::Other(stream, h2));
    }
    let mut l4: Box<L4> = stream.into_any().downcast().ok()?;
    let mut buf = bytes::BytesMut::with_capacity(4096);
    let mut chunk = [0u8; 4096];
    let h2 = loop {
        let n = l4.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        let searched_from = buf.len().saturating_sub(2);
        buf.extend_from_slice(&chunk[..n]);
        let maybe_preface = h2c && {
            let k = buf.len().min(H2_PREFACE.len());
            buf[..k] == H2_PREFACE[..k]
        };
        if maybe_preface {
            if buf.len() >= H2_PREFACE.len() {
                break true;
            }
            continue;
        }
        if head_end(&buf[searched_from..]) || buf.len() >= READ_AHEAD {
            break false;
        }
    };
    Some(First::Plain(l4, buf, h2))
}

/// `b` holds the end of a request head: an empty line, ended by CRLF or by a bare LF (the
/// parsers of both engines take bare LF line ends; waiting for `\r\n\r\n` alone kept such
/// a request waiting until the header timeout).
fn head_end(b: &[u8]) -> bool {
    b.windows(2).any(|w| w == b"\n\n") || b.windows(3).any(|w| w == b"\n\r\n")
}

impl<P> Guarded<P> {
    /// Whether this server's HTTP/1 connections go to the own loop (read per connection,
    /// so a reload that changes `engine` applies to new connections).
    fn native(&self) -> bool {
        self.live.load().native_h1(self.server)
    }

    /// Serve HTTP/1 on the own loop; `Some(stream)`: a request it hands to Pingora's path
    /// (with every unread byte put back), to be read with the clock armed again.
    async fn own_loop(
        &self,
        conn: crate::engine::h1::conn::Conn,
        buf: bytes::BytesMut,
        shutdown: &ShutdownWatch,
        clock: &Clock,
        connection: &Arc<crate::proxy::ctx::Connection>,
    ) -> Option<Stream> {
        use crate::engine::h1::{client::Client, serve};
        let mut client = Client::new(conn, buf, shutdown);
        client.connection = Some(connection.clone());
        match serve::serve(client, &self.live, self.server).await {
            serve::Next::Closed => None,
            serve::Next::HandOver(stream) => {
                clock.arm();
                Some(stream)
            }
        }
    }
}

#[async_trait]
impl<P> ServerApp for Guarded<P>
where
    P: pingora::proxy::ProxyHttp + Send + Sync + 'static,
    P::CTX: Send + Sync,
{
    async fn process_new(
        self: &Arc<Self>,
        stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        // read once per connection: the TLS settings (a reload's new certificates apply to
        // the next handshake), and tidegate_connections_open counts this while it runs
        let (tls, _open) = {
            let state = self.live.load();
            let s = state.servers.get(self.server);
            let open = s
                .and_then(|s| s.metrics.as_ref())
                .map(|m| crate::observability::metrics::handles::InFlight::start(&m.connections));
            (s.and_then(|s| s.conf.tls.clone()), open)
        };
        // armed from the accept: a client that sends nothing, or a few bytes of what might be
        // the HTTP/2 preface, is cut at the deadline too
        let conn = crate::proxy::ctx::Connection::next();
        let clock = Arc::new(Clock {
            deadline: AtomicU64::new(DISARMED),
            timeout: self.header_timeout,
            h2: AtomicBool::new(false),
        });
        clock.arm();
        let first = match tls {
            // TLS: the handshake runs under the same clock as a request head
            Some(tls) => tokio::select! {
                c = handshake(stream, &tls) => c,
                _ = watchdog(&clock) => {
                    tracing::debug!("TLS handshake not complete within {:?}; closing", self.header_timeout);
                    return None;
                }
            },
            None => tokio::select! {
                s = read_first_head(stream, self.inner_h2.is_some()) => s,
                _ = watchdog(&clock) => {
                    tracing::debug!("no request within {:?}; closing", self.header_timeout);
                    return None;
                }
            },
        };
        let mut tls_info = None;
        let (stream, h2): (Stream, bool) = match first? {
            First::Plain(l4, buf, false) if self.native() => {
                let stream = crate::engine::h1::conn::Conn::Plain(l4);
                (
                    self.own_loop(stream, buf, shutdown, &clock, &conn).await?,
                    false,
                )
            }
            First::Plain(mut l4, buf, h2) => {
                l4.rewind(&buf);
                (l4, h2)
            }
            First::Tls(tls) if !tls.h2() && self.native() => {
                let stream = crate::engine::h1::conn::Conn::Tls(tls);
                let buf = bytes::BytesMut::new();
                (
                    self.own_loop(stream, buf, shutdown, &clock, &conn).await?,
                    false,
                )
            }
            First::Tls(mut tls) => {
                // Pingora's path finds the session by the connection (tls/conn.rs)
                tls.register();
                let h2 = tls.h2();
                tls_info = Some(tls.info().clone());
                (tls, h2)
            }
            First::Other(stream, h2) => (stream, h2),
        };
        clock.h2.store(h2, Ordering::Relaxed);
        let app = match &self.inner_h2 {
            Some(h2_app) if h2 => h2_app,
            _ => &self.inner,
        };
        if h2 && self.native() {
            // the own HTTP/2 path (engine/h2), with Pingora's for the streams it does not serve
            let shared = crate::engine::h2::Shared {
                live: self.live.clone(),
                server: self.server,
                tls: tls_info,
                fallback: app.clone(),
                shutdown: shutdown.clone(),
                peer: (None, None),
            };
            let c = clock.clone();
            let first = move || c.deadline.store(DISARMED, Ordering::Relaxed);
            let work = crate::engine::h2::serve_connection(stream, shared, first);
            tokio::select! {
                _ = work => {}
                _ = watchdog(&clock) => {
                    tracing::debug!("no HTTP/2 request within {:?}; closing", self.header_timeout);
                }
            }
            return None;
        }
        let work = CLOCK.scope(
            clock.clone(),
            CONN.scope(conn, app.process_new(stream, shutdown)),
        );
        tokio::select! {
            r = work => r,
            _ = watchdog(&clock) => {
                tracing::debug!("request header not complete within {:?}; closing", self.header_timeout);
                None
            }
        }
    }

    async fn cleanup(&self) {
        self.inner.cleanup().await;
        if let Some(h2) = &self.inner_h2 {
            h2.cleanup().await;
        }
    }
}
