//! One HTTP/2 stream served by the own path, as the phase chain's [`Downstream`], and what
//! it sends: a whole answer, a streamed answer body, an upstream body relayed through the
//! body filters.

use crate::engine::h1::body::BodyReader;
use crate::engine::h1::head::{Names, Span};
use crate::engine::h1::origin::{Framing, Origin};
use crate::engine::h1::respond::RelayError;
use crate::proxy::ctx::Ctx;
use crate::proxy::exchange::{BodyError, Downstream};
use crate::proxy::response::{run_body_filters, watch_body};
use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use http::HeaderMap;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::protocols::http::v2::server::HttpSession;
use std::cell::RefCell;
use std::net::SocketAddr;
use std::time::Duration;

/// One stream and the scratch space its upstream exchange uses.
pub struct Exchange {
    pub session: Box<HttpSession>,
    pub peer: Option<SocketAddr>,
    pub peer_ip: Option<http::HeaderValue>,
    pub scratch: Scratch,
    /// the request body read so far, when a script asked for it (it is sent upstream from
    /// here)
    pub kept: Option<BytesMut>,
    /// the request body was read to its end (or there is none)
    pub body_ended: bool,
    /// the longest wait for the next piece of the request body
    pub body_timeout: Duration,
}

/// What an upstream exchange writes into and parses with, kept per thread from stream to
/// stream (as the own HTTP/1 loop keeps it per connection): no buffer or header map is
/// grown anew for each stream.
#[derive(Default)]
pub struct Scratch {
    /// the bytes of the upstream request head
    pub wire: Vec<u8>,
    pub up_map: Option<HeaderMap>,
    pub resp_map: Option<HeaderMap>,
    pub spans: Vec<Span>,
    pub names: Names,
}

/// Spare scratch spaces kept per thread, at most this many (the streams in flight at once on
/// a thread, beyond which the rest are dropped).
const SPARE: usize = 256;

thread_local! {
    static SPARES: RefCell<Vec<Scratch>> = const { RefCell::new(Vec::new()) };
}

impl Scratch {
    /// A spare one of this thread, or a new one.
    fn take() -> Scratch {
        SPARES
            .with(|s| s.borrow_mut().pop())
            .unwrap_or_else(|| Scratch {
                wire: Vec::with_capacity(1024),
                ..Default::default()
            })
    }

    /// Keep it for the thread's next stream.
    pub fn give_back(&mut self) {
        let mut s = std::mem::take(self);
        if let Some(m) = &mut s.up_map {
            m.clear();
        }
        s.resp_map = None;
        SPARES.with(|spares| {
            let mut spares = spares.borrow_mut();
            if spares.len() < SPARE {
                spares.push(s);
            }
        });
    }
}

impl Exchange {
    /// `peer`: the connection's peer and its IP as text, formatted once per connection.
    pub fn new(
        session: Box<HttpSession>,
        peer: (Option<SocketAddr>, Option<http::HeaderValue>),
        body_timeout: Duration,
    ) -> Exchange {
        let body_ended = session.is_body_empty();
        Exchange {
            session,
            peer: peer.0,
            peer_ip: peer.1,
            body_ended,
            scratch: Scratch::take(),
            kept: None,
            body_timeout,
        }
    }

    /// The next piece of the request body from the client, without keeping it.
    pub async fn next_body_piece(&mut self) -> Result<Option<Bytes>, BodyError> {
        if self.body_ended {
            return Ok(None);
        }
        let read = tokio::time::timeout(self.body_timeout, self.session.read_body_bytes());
        let piece = read
            .await
            .map_err(|_| BodyError::Timeout)?
            .map_err(|e| BodyError::Broken(e.to_string()))?;
        if piece.is_none() {
            self.body_ended = true;
        }
        Ok(piece)
    }

    /// Send a response head; `end`: nothing follows it.
    pub fn head(&mut self, head: ResponseHeader, end: bool) -> pingora::Result<()> {
        self.session.write_response_header(Box::new(head), end)
    }

    /// Send a whole answer (a plugin's, an error page). `more`: a streamed body follows.
    pub async fn answer(
        &mut self,
        head: ResponseHeader,
        body: Option<Bytes>,
        more: bool,
    ) -> pingora::Result<()> {
        let body = body.filter(|b| !b.is_empty());
        self.head(head, body.is_none() && !more)?;
        if let Some(b) = body {
            self.session.write_body(b, !more).await?;
        }
        Ok(())
    }

    /// Send a streamed answer body (`ctx.plugin.answer_stream`) after its head.
    pub async fn stream(
        &mut self,
        mut source: Box<dyn crate::plugins::body_source::BodySource>,
    ) -> pingora::Result<()> {
        while let Some(piece) = source
            .next()
            .await
            .map_err(|e| pingora::Error::because(pingora::ErrorType::ReadError, "answer", e))?
        {
            self.session.write_body(piece, false).await?;
        }
        self.session.finish()
    }
}

#[async_trait]
impl Downstream for Exchange {
    fn req(&self) -> &RequestHeader {
        self.session.req_header()
    }

    fn req_mut(&mut self) -> &mut RequestHeader {
        self.session.req_header_mut()
    }

    fn peer_addr(&self) -> Option<SocketAddr> {
        self.peer
    }

    fn kept_peer_ip(&self) -> Option<&http::HeaderValue> {
        self.peer_ip.as_ref()
    }

    fn http2(&self) -> bool {
        true
    }

    fn sent_head(&self) -> Option<&ResponseHeader> {
        self.session.response_written()
    }

    fn sent_body_bytes(&self) -> usize {
        self.session.body_bytes_sent()
    }

    fn keep_body(&mut self) {
        if self.kept.is_none() {
            self.kept = Some(BytesMut::new());
        }
    }

    async fn read_body(&mut self) -> Result<Option<Bytes>, BodyError> {
        let Some(piece) = self.next_body_piece().await? else {
            return Ok(None);
        };
        if let Some(k) = &mut self.kept {
            k.extend_from_slice(&piece);
        }
        Ok(Some(piece))
    }
}

/// Relay the upstream's response body to the stream, through the location's body filters
/// when one is active; the stream ends with it. `Ok`: the body ended where its framing says.
pub async fn relay_body(
    ex: &mut Exchange,
    ctx: &mut Ctx,
    origin: &mut Origin,
    framing: Framing,
    read_timeout: Option<Duration>,
) -> Result<(), RelayError> {
    if matches!(framing, Framing::None | Framing::Switched) {
        return Ok(());
    }
    let mut ended = false;
    let mut body = BodyReader::new(framing);
    while let Some(n) = body.next(origin, read_timeout).await? {
        let last = body.complete();
        if last {
            // the peer's part is over before the client has the last byte
            ctx.inflight = None;
        }
        ended = pass(ex, ctx, origin, n, last).await?;
    }
    ctx.inflight = None;
    if ended {
        return Ok(());
    }
    let mut last = None;
    if ctx.body_filtered {
        run_body_filters(ex, &mut last, true, ctx);
    }
    watch_body(ex, &[], true, ctx);
    let last = last.unwrap_or_default();
    ex.session.write_body(last, true).await.map_err(closed)?;
    Ok(())
}

/// Send the first `n` bytes of the upstream buffer on (filtered when a filter is active),
/// and advance past them. `last`: they end the body; `true` when the stream was ended with
/// them (no body filter has to see the end first).
async fn pass(
    ex: &mut Exchange,
    ctx: &mut Ctx,
    origin: &mut Origin,
    n: usize,
    last: bool,
) -> Result<bool, RelayError> {
    let raw = origin.buf.split_to(n).freeze();
    watch_body(ex, &raw, false, ctx);
    if ctx.body_filtered {
        let mut piece = Some(raw);
        run_body_filters(ex, &mut piece, false, ctx);
        if let Some(b) = piece.filter(|b| !b.is_empty()) {
            ex.session.write_body(b, false).await.map_err(closed)?;
        }
        return Ok(false);
    }
    if last {
        // the body's end, seen by the watchers before the stream ends
        watch_body(ex, &[], true, ctx);
    }
    ex.session.write_body(raw, last).await.map_err(closed)?;
    Ok(last)
}

fn closed(e: Box<pingora::Error>) -> RelayError {
    RelayError::Client(std::io::Error::other(e.to_string()))
}
