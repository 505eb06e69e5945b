//! One HTTP/1.1 exchange with an upstream peer over plain TCP: connect (or take an idle
//! connection from the thread's pool), send the head, read the response head, and say how
//! its body is framed (RFC 9112 §6.3).

use super::head::{fields, span, Names, Span};
use super::pool;
use super::req_head::{Kept, ReqHead};
use super::timer::Timer;
use crate::proxy::forwarded::Fields;
use crate::proxy::guard::trim;
use bytes::{Buf, Bytes, BytesMut};
use http::{HeaderMap, StatusCode};
use pingora::http::{RequestHeader, ResponseHeader};
use std::mem::MaybeUninit;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The most a response head may take.
const MAX_HEAD: usize = 64 << 10;
const MAX_HEADERS: usize = 128;

/// What went wrong with the upstream, for the status (502 or 504) and the retry decision.
#[derive(Debug, thiserror::Error)]
pub enum OriginError {
    #[error("connect: {0}")]
    Connect(std::io::Error),
    #[error("connect timed out")]
    ConnectTimeout,
    #[error("sending the request: {0}")]
    Write(std::io::Error),
    #[error("no response within the read timeout")]
    ReadTimeout,
    #[error("reading the response: {0}")]
    Read(std::io::Error),
    /// the peer closed before a whole response head; `early`: before any byte of it
    #[error("the upstream closed the connection")]
    Closed { early: bool },
    #[error("malformed response: {0}")]
    Malformed(&'static str),
}

impl OriginError {
    /// The `kind` label in `tidegate_upstream_failures_total`.
    pub fn kind(&self) -> crate::observability::metrics::handles::FailureKind {
        use crate::observability::metrics::handles::FailureKind as K;
        use std::io::ErrorKind as Io;
        let io = |e: &std::io::Error| match e.kind() {
            Io::ConnectionRefused => K::Refused,
            Io::ConnectionReset | Io::BrokenPipe | Io::ConnectionAborted | Io::UnexpectedEof => {
                K::Reset
            }
            Io::TimedOut => K::Timeout,
            _ => K::Other,
        };
        match self {
            OriginError::Connect(e) | OriginError::Write(e) | OriginError::Read(e) => io(e),
            OriginError::ConnectTimeout | OriginError::ReadTimeout => K::Timeout,
            OriginError::Closed { .. } => K::Reset,
            OriginError::Malformed(_) => K::Other,
        }
    }

    /// The status the client gets.
    pub fn status(&self) -> u16 {
        match self {
            OriginError::ConnectTimeout | OriginError::ReadTimeout => 504,
            _ => 502,
        }
    }
}

/// How a response body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    None,
    Length(u64),
    Chunked,
    /// until the upstream closes
    Close,
    /// `101 Switching Protocols` to an upgrade request: from here on, bytes both ways
    Switched,
}

/// A response head as the chain gets it: built into a header map, or (when nothing will
/// edit it: no plugin, no trace, no upgrade) kept as the upstream's bytes, whose fields go
/// to the client as they came, framing fields left out.
pub enum RespHead {
    Built(ResponseHeader),
    Raw(RawHead),
}

impl RespHead {
    pub fn status(&self) -> StatusCode {
        match self {
            RespHead::Built(h) => h.status,
            RespHead::Raw(r) => r.status,
        }
    }

    /// As a header map (a raw head is parsed again into one).
    pub fn into_built(self) -> ResponseHeader {
        match self {
            RespHead::Built(h) => h,
            RespHead::Raw(r) => r.build(),
        }
    }
}

/// An upstream's final response head, unparsed beyond its framing. The fields to send are
/// the spans `parse_head` left in the caller's scratch list.
pub struct RawHead {
    pub raw: Bytes,
    pub status: StatusCode,
    ask: Asked,
}

impl RawHead {
    /// The head as a header map, as it would have been built at once (for whoever asks for
    /// the sent head later: a log field, a script's `on_log`).
    pub fn build(&self) -> ResponseHeader {
        let mut buf = BytesMut::from(&self.raw[..]);
        let ask = Asked {
            raw: false,
            ..self.ask
        };
        let (mut spans, mut names) = (Vec::new(), Names::default());
        match parse_head(&mut buf, ask, &mut None, &mut spans, &mut names) {
            Ok(Some(Parsed::Final(RespHead::Built(h), _, _))) => h,
            // it parsed the first time: not reached
            _ => ResponseHeader::from({
                let mut parts = http::Response::new(()).into_parts().0;
                parts.status = self.status;
                parts
            }),
        }
    }
}

/// An upstream connection and its read buffer.
pub struct Origin {
    pub conn: TcpStream,
    pub buf: BytesMut,
    pub addr: SocketAddr,
    /// taken from the pool (a failure before any response byte may just mean the peer closed
    /// it meanwhile: the request is tried once more on a fresh connection)
    pub reused: bool,
    /// the deadline of each read and write, reused (`timer.rs`)
    pub timer: Timer,
}

async fn within<T>(limit: Option<Duration>, f: impl std::future::Future<Output = T>) -> Option<T> {
    match limit {
        Some(d) => tokio::time::timeout(d, f).await.ok(),
        None => Some(f.await),
    }
}

impl Origin {
    /// An idle pooled connection to `addr`, or a new one.
    pub async fn open(
        addr: SocketAddr,
        connect_timeout: Option<Duration>,
        idle_limit: Duration,
        fresh: bool,
    ) -> Result<Origin, OriginError> {
        if !fresh {
            if let Some(p) = pool::checkout(addr, idle_limit) {
                return Ok(Origin {
                    conn: p.conn,
                    buf: p.buf,
                    addr,
                    reused: true,
                    timer: p.timer,
                });
            }
        }
        let conn = within(connect_timeout, TcpStream::connect(addr))
            .await
            .ok_or(OriginError::ConnectTimeout)?
            .map_err(OriginError::Connect)?;
        let _ = conn.set_nodelay(true);
        Ok(Origin {
            conn,
            buf: BytesMut::with_capacity(8192),
            addr,
            reused: false,
            timer: Timer::new(),
        })
    }

    /// Write `bytes` (a head, a piece of body).
    pub async fn send(&mut self, bytes: &[u8], limit: Option<Duration>) -> Result<(), OriginError> {
        self.timer
            .within_lazy(limit, self.conn.write_all(bytes))
            .await
            .ok_or(OriginError::Write(std::io::ErrorKind::TimedOut.into()))?
            .map_err(OriginError::Write)
    }

    /// Read more of the response into the buffer; `Ok(0)` at end of stream.
    pub async fn fill(&mut self, limit: Option<Duration>) -> Result<usize, OriginError> {
        if self.buf.capacity() - self.buf.len() < 4096 {
            self.buf.reserve(16 << 10);
        }
        self.timer
            .within(limit, self.conn.read_buf(&mut self.buf))
            .await
            .ok_or(OriginError::ReadTimeout)?
            .map_err(OriginError::Read)
    }

    /// Read the final response head (interim 1xx responses are skipped; a 101 is final when
    /// the request asked an `upgrade`). Returns the head, the body's framing, and whether the
    /// connection can carry another request.
    pub async fn read_head(
        &mut self,
        limit: Option<Duration>,
        ask: Asked,
        map: &mut Option<HeaderMap>,
        spans: &mut Vec<Span>,
        names: &mut Names,
    ) -> Result<(RespHead, Framing, bool), OriginError> {
        let mut seen_any = false;
        loop {
            if !self.buf.is_empty() {
                seen_any = true;
                match parse_head(&mut self.buf, ask, map, spans, names)? {
                    Some(Parsed::Interim) => continue,
                    Some(Parsed::Final(head, framing, reusable)) => {
                        return Ok((head, framing, reusable))
                    }
                    None if self.buf.len() > MAX_HEAD => {
                        return Err(OriginError::Malformed("response head too large"))
                    }
                    None => {}
                }
            }
            if self.fill(limit).await? == 0 {
                return Err(OriginError::Closed { early: !seen_any });
            }
        }
    }

    /// Return the connection to the thread's pool.
    pub fn release(self, cap: usize) {
        if self.buf.is_empty() {
            // idle since about the start of the last read (a little earlier than the
            // body's end: the connection only looks older than it is)
            let since = self
                .timer
                .last_start()
                .map_or_else(std::time::Instant::now, |t| t.into_std());
            let parked = pool::Parked {
                conn: self.conn,
                buf: self.buf,
                timer: self.timer,
            };
            pool::checkin(self.addr, parked, cap, since);
        }
    }
}

/// What the request asked that shapes the response's framing.
#[derive(Debug, Clone, Copy, Default)]
pub struct Asked {
    /// a HEAD request: no body follows any head
    pub head: bool,
    /// an upgrade: a 101 switches protocols
    pub upgrade: bool,
    /// nothing edits the head: keep it as bytes ([`RespHead::Raw`])
    pub raw: bool,
}

#[allow(clippy::large_enum_variant)] // moved once per response; a Box would be an allocation
enum Parsed {
    Interim,
    Final(RespHead, Framing, bool),
}

/// Parse one response head at the front of `buf`; `None` when it is not complete. `spans`
/// is scratch space kept across calls (so is `map`): the field lines are neither zeroed nor
/// allocated per response.
fn parse_head(
    buf: &mut BytesMut,
    ask: Asked,
    map: &mut Option<HeaderMap>,
    spans: &mut Vec<Span>,
    names: &mut Names,
) -> Result<Option<Parsed>, OriginError> {
    let mut lines = [const { MaybeUninit::<httparse::Header>::uninit() }; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut []);
    let parsed = httparse::ParserConfig::default()
        .parse_response_with_uninit_headers(&mut resp, buf, &mut lines);
    let n = match parsed {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err(OriginError::Malformed("unparsable response head")),
    };
    let code = resp.code.unwrap_or(0);
    let Ok(status) = StatusCode::from_u16(code) else {
        return Err(OriginError::Malformed("bad status code"));
    };
    let switched = code == 101 && ask.upgrade;
    if (100..200).contains(&code) && !switched {
        if code == 101 {
            return Err(OriginError::Malformed(
                "101 to a request that asked no upgrade",
            ));
        }
        buf.advance(n);
        return Ok(Some(Parsed::Interim));
    }
    let base = buf.as_ptr() as usize;
    spans.clear();
    let http10 = resp.version == Some(0);
    let mut framing = if switched {
        Framing::Switched
    } else if ask.head || code == 204 || code == 304 {
        Framing::None
    } else {
        Framing::Close
    };
    let mut length: Option<u64> = None;
    let mut chunked = false;
    let mut reusable = !http10 && !switched;
    for h in resp.headers.iter() {
        let name = h.name.as_bytes();
        let value = trim(h.value);
        if switched {
            // every field goes to the client as it is, `Connection` and `Upgrade` included
            spans.push(span(base, h.name, value));
            continue;
        }
        if name.eq_ignore_ascii_case(b"content-length") {
            let v =
                super::head::digits(value).ok_or(OriginError::Malformed("bad Content-Length"))?;
            if length.is_some_and(|l| l != v) {
                return Err(OriginError::Malformed("conflicting Content-Length"));
            }
            length = Some(v);
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            // the last coding decides; anything but chunked last is read until close
            chunked = value
                .rsplit(|b| *b == b',')
                .next()
                .is_some_and(|c| trim(c).eq_ignore_ascii_case(b"chunked"));
            if !chunked {
                reusable = false;
            }
            continue; // the client's framing is ours to choose
        } else if name.eq_ignore_ascii_case(b"connection") {
            for t in value.split(|b| *b == b',').map(trim) {
                if t.eq_ignore_ascii_case(b"close") {
                    reusable = false;
                } else if t.eq_ignore_ascii_case(b"keep-alive") {
                    reusable = true;
                }
            }
            continue; // hop-by-hop
        } else if name.eq_ignore_ascii_case(b"keep-alive")
            || name.eq_ignore_ascii_case(b"proxy-connection")
        {
            continue;
        }
        spans.push(span(base, h.name, value));
    }
    if !matches!(framing, Framing::None | Framing::Switched) {
        framing = match (chunked, length) {
            (true, _) => Framing::Chunked,
            (false, Some(l)) => Framing::Length(l),
            (false, None) => {
                reusable = false;
                Framing::Close
            }
        };
    }
    let raw = buf.split_to(n).freeze();
    if ask.raw && !switched {
        if chunked && length.is_some() {
            // a length next to chunked is not the body's (RFC 9112 §6.3)
            spans.retain(|&(n0, nlen, _, _)| {
                !raw[n0..n0 + nlen].eq_ignore_ascii_case(b"content-length")
            });
        }
        let head = RespHead::Raw(RawHead { raw, status, ask });
        return Ok(Some(Parsed::Final(head, framing, reusable)));
    }
    let mut headers =
        fields(&raw, spans, map, names).ok_or(OriginError::Malformed("bad header"))?;
    if chunked {
        // a length next to chunked is not the body's: drop it (RFC 9112 §6.3)
        headers.remove(http::header::CONTENT_LENGTH);
    }
    let mut parts = http::Response::new(()).into_parts().0;
    parts.status = status;
    parts.headers = headers;
    Ok(Some(Parsed::Final(
        RespHead::Built(ResponseHeader::from(parts)),
        framing,
        reusable,
    )))
}

/// The upstream request head on the wire: request line, headers, blank line.
pub fn write_request(head: &RequestHeader, out: &mut Vec<u8>) {
    request_line(&head.method, &head.uri, out);
    head.header_to_h1_wire(out);
    out.extend_from_slice(b"\r\n");
}

/// Put the client's own request head on the wire for the upstream, as a head built from it
/// would be written (`h1/up_head.rs`): without hop-by-hop fields, each forwarding header
/// in place of the client's fields of its name (where the first of them was), the others
/// after the client's fields. Fields no one put in a map go as they were read (names in the
/// client's case, in the client's order).
pub fn write_direct(head: &ReqHead, kept: &Kept, fields: Option<&Fields>, out: &mut Vec<u8>) {
    request_line(head.method(kept), head.uri(kept), out);
    let slots = fields.map(|f| f.slots());
    let mut done = [false; 3];
    let mut put = |out: &mut Vec<u8>, k: &[u8], v: &[u8]| {
        if crate::proxy::names::hop_by_hop_raw(k) {
            return;
        }
        if let Some(slots) = &slots {
            for (i, (name, value)) in slots.iter().enumerate() {
                if !k.eq_ignore_ascii_case(name.as_str().as_bytes()) {
                    continue;
                }
                // a forwarding header we set: the first of the client's fields of its name
                // gives its place, the others go; one we leave (`None`) stays as sent
                match value {
                    Some(value) if !done[i] => {
                        done[i] = true;
                        field(out, name.as_str().as_bytes(), value.as_bytes());
                        return;
                    }
                    Some(_) => return,
                    None => break,
                }
            }
        }
        field(out, k, v);
    };
    match head.unbuilt(kept) {
        Some(raw) => raw.for_each(|(k, v)| put(out, k, v)),
        None => {
            for (k, v) in head.get(kept).headers.iter() {
                put(out, k.as_str().as_bytes(), v.as_bytes());
            }
        }
    }
    if let Some(slots) = &slots {
        for (i, (name, value)) in slots.iter().enumerate() {
            if let (false, Some(value)) = (done[i], value) {
                field(out, name.as_str().as_bytes(), value.as_bytes());
            }
        }
    }
    out.extend_from_slice(b"\r\n");
}

fn field(out: &mut Vec<u8>, k: &[u8], v: &[u8]) {
    out.extend_from_slice(k);
    out.extend_from_slice(b": ");
    out.extend_from_slice(v);
    out.extend_from_slice(b"\r\n");
}

fn request_line(method: &http::Method, uri: &http::Uri, out: &mut Vec<u8>) {
    out.extend_from_slice(method.as_str().as_bytes());
    out.push(b' ');
    let pq = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    out.extend_from_slice(pq.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
}
