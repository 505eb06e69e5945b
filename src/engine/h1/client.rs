//! The client side of the own HTTP/1 loop: the connection with its reused buffers, and one
//! request on it as the phase chain's [`Downstream`].

use super::chunked::{Decoder, Step};
use super::conn::Conn;
use crate::proxy::exchange::{BodyError, Downstream};
use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use http::HeaderMap;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::server::ShutdownWatch;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// One client connection and what it reuses from request to request.
pub struct Client {
    pub stream: Conn,
    /// the connection's number and request count, for the access log
    pub connection: Option<std::sync::Arc<crate::proxy::ctx::Connection>>,
    /// the TLS session, on a TLS connection (each request's `Ctx` shares it)
    pub tls: Option<std::sync::Arc<crate::tls::TlsInfo>>,
    /// bytes read and not yet consumed (the next pipelined request may be here already)
    pub buf: BytesMut,
    /// what is about to be written
    pub out: Vec<u8>,
    pub peer: Option<SocketAddr>,
    /// the peer's IP as header text, formatted once per connection
    pub peer_ip: Option<http::HeaderValue>,
    /// the request head's map once built, the header names seen on this connection and its
    /// upstream responses, a map kept for its capacity (`req_head.rs`)
    pub req: super::req_head::Kept,
    /// header maps kept for their capacity: the upstream request's, the response's
    pub up_map: Option<HeaderMap>,
    pub resp_map: Option<HeaderMap>,
    /// where the fields of a response head lie while it is parsed (kept for its capacity)
    pub spans: Vec<super::head::Span>,
    /// where the fields of a request head lie (kept for its capacity; each request takes it)
    pub req_spans: Vec<super::head::Span>,
    /// the routed host's text, kept for its capacity (`Ctx::host` borrows it per request)
    pub host: String,
    /// the server's shutdown flag: once set, each answer says `Connection: close`
    pub shutdown: ShutdownWatch,
    /// the deadline of each read from the client, reused (`timer.rs`)
    pub timer: super::timer::Timer,
}

impl Client {
    pub fn new(stream: Conn, buf: BytesMut, shutdown: &ShutdownWatch) -> Client {
        let peer = stream
            .socket_digest()
            .and_then(|d| d.peer_addr().and_then(|a| a.as_inet()).copied());
        Client {
            connection: None,
            tls: stream.tls().cloned(),
            stream,
            buf,
            out: Vec::with_capacity(16 << 10),
            peer,
            peer_ip: peer.and_then(|p| crate::proxy::exchange::ip_text(p.ip())),
            req: Default::default(),
            up_map: None,
            resp_map: None,
            spans: Vec::new(),
            req_spans: Vec::new(),
            host: String::new(),
            shutdown: shutdown.clone(),
            timer: Default::default(),
        }
    }

    /// The server is shutting down (an upgrade or a stop): this connection ends after the
    /// answer being written.
    pub fn stopping(&self) -> bool {
        *self.shutdown.borrow()
    }

    /// Read more into `buf`; `Ok(0)` when the client closed.
    pub async fn fill(&mut self) -> std::io::Result<usize> {
        fill(&mut self.stream, &mut self.buf).await
    }

    /// As [`Client::fill`], unless `deadline` passes first (`None`).
    pub async fn fill_until(
        &mut self,
        deadline: tokio::time::Instant,
    ) -> Option<std::io::Result<usize>> {
        let Client {
            timer, stream, buf, ..
        } = self;
        timer.until(deadline, fill(stream, buf)).await
    }

    /// Write out what `out` holds.
    pub async fn flush(&mut self) -> std::io::Result<()> {
        if !self.out.is_empty() {
            self.stream.write_all(&self.out).await?;
            self.out.clear();
        }
        self.stream.flush().await
    }
}

async fn fill(stream: &mut Conn, buf: &mut BytesMut) -> std::io::Result<usize> {
    if buf.capacity() - buf.len() < 2048 {
        buf.reserve(8 << 10);
    }
    stream.read_buf(buf).await
}

/// What is left of a request body on the wire.
pub enum BodyLeft {
    /// this many bytes (0: the body was read to its end, or there is none)
    Length(u64),
    /// a chunked body, where its decoder stands
    Chunked(Decoder),
}

/// One request on a [`Client`], as the phase chain sees it.
pub struct Exchange<'c> {
    pub client: &'c mut Client,
    pub head: super::req_head::ReqHead,
    /// the request body not yet read from the client
    pub body: BodyLeft,
    /// `Expect: 100-continue` not answered yet: `100 Continue` goes out before the body is
    /// first read (a request answered without reading it never gets one)
    pub expect_continue: bool,
    /// the client asked to switch protocols
    pub upgrade: bool,
    /// the body read so far, when a script asked for it (it is sent upstream from here)
    pub kept: Option<BytesMut>,
    pub sent_head: Option<ResponseHeader>,
    /// an upstream's head sent as it came (`origin::RespHead::Raw`) instead of `sent_head`
    pub sent_raw: Option<super::origin::RawHead>,
    /// `sent_raw` as a header map, built the first time someone asks for the sent head
    pub sent_built: std::cell::OnceCell<ResponseHeader>,
    pub sent_bytes: usize,
    pub body_timeout: Duration,
}

#[async_trait]
impl Downstream for Exchange<'_> {
    fn req(&self) -> &RequestHeader {
        self.head.get(&self.client.req)
    }

    fn req_mut(&mut self) -> &mut RequestHeader {
        self.head.get_mut(&mut self.client.req)
    }

    fn method(&self) -> &http::Method {
        self.head.method(&self.client.req)
    }

    fn uri(&self) -> &http::Uri {
        self.head.uri(&self.client.req)
    }

    fn version(&self) -> http::Version {
        // the own loop serves HTTP/1.1 only (`head.rs`)
        http::Version::HTTP_11
    }

    fn header(&self, name: &http::HeaderName) -> Option<&[u8]> {
        self.head.header(&self.client.req, name)
    }

    fn peer_addr(&self) -> Option<SocketAddr> {
        self.client.peer
    }

    fn kept_peer_ip(&self) -> Option<&http::HeaderValue> {
        self.client.peer_ip.as_ref()
    }

    fn http2(&self) -> bool {
        false
    }

    fn sent_head(&self) -> Option<&ResponseHeader> {
        self.sent_head.as_ref().or_else(|| {
            let raw = self.sent_raw.as_ref()?;
            Some(self.sent_built.get_or_init(|| raw.build()))
        })
    }

    fn sent_body_bytes(&self) -> usize {
        self.sent_bytes
    }

    fn keep_body(&mut self) {
        if self.kept.is_none() {
            self.kept = Some(BytesMut::new());
        }
    }

    async fn read_body(&mut self) -> Result<Option<Bytes>, BodyError> {
        let Some(chunk) = self.next_body_piece().await? else {
            return Ok(None);
        };
        if let Some(k) = &mut self.kept {
            k.extend_from_slice(&chunk);
        }
        Ok(Some(chunk))
    }
}

impl Exchange<'_> {
    /// The whole request body was read (or there was none).
    pub fn body_done(&self) -> bool {
        match &self.body {
            BodyLeft::Length(n) => *n == 0,
            BodyLeft::Chunked(d) => d.finished(),
        }
    }

    /// The request body is chunked.
    pub fn chunked(&self) -> bool {
        matches!(self.body, BodyLeft::Chunked(_))
    }

    /// The next piece of the request body from the client, without keeping it.
    pub async fn next_body_piece(&mut self) -> Result<Option<Bytes>, BodyError> {
        if self.body_done() {
            return Ok(None);
        }
        if self.expect_continue {
            self.expect_continue = false;
            self.client
                .out
                .extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
            self.client
                .flush()
                .await
                .map_err(|e| BodyError::Broken(e.to_string()))?;
        }
        loop {
            let n = match &mut self.body {
                BodyLeft::Length(left) => {
                    let n = (self.client.buf.len() as u64).min(*left) as usize;
                    *left -= n as u64;
                    n
                }
                BodyLeft::Chunked(d) => match d.step(&mut self.client.buf) {
                    Ok(Step::Data(n)) => n,
                    Ok(Step::Done) => return Ok(None),
                    Ok(Step::More) => 0,
                    Err(e) => return Err(BodyError::Broken(e.to_string())),
                },
            };
            if n > 0 {
                return Ok(Some(self.client.buf.split_to(n).freeze()));
            }
            let until = tokio::time::Instant::now() + self.body_timeout;
            let read = self
                .client
                .fill_until(until)
                .await
                .ok_or(BodyError::Timeout)?
                .map_err(|e| BodyError::Broken(e.to_string()))?;
            if read == 0 {
                return Err(BodyError::Broken("the client closed mid-body".into()));
            }
        }
    }
}
