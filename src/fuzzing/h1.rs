//! Fuzz entries for the own HTTP/1 engine (`engine/h1`), each a differential against
//! Pingora's HTTP/1 code, which is the other engine and the reference:
//!
//! - [`h1_head`]: the head parser (`head::parse`) against Pingora's parser plus the guard.
//!   Where the own loop serves a head, Pingora's path must accept it too and see the same
//!   method, target, fields and body length; where the own loop refuses one (414, 431),
//!   Pingora's path must refuse it with the same status. A head the own loop hands over is
//!   served by Pingora's path itself, so there is nothing to compare.
//! - [`h1_chunked`]: the in-place chunked decoder against Pingora's body reader: the same
//!   payload or both refuse, at every split of the input, and our encoder's output decodes
//!   back to what was encoded.
//!
//! The differences that remain are listed and argued in `docs/request-lifecycle.md`
//! ("Where the engines differ"); each is allowed here by name, nothing else is.

use crate::config::model::Server;
use crate::config::SourceDoc;
use crate::engine::h1::chunked::{self, ChunkError, Decoder, Step};
use crate::engine::h1::head::{self, Parsed};
use crate::proxy::guard::{self, SizeLimits};
use bytes::{Buf, BytesMut};
use pingora::http::RequestHeader;
use pingora::proxy::Session;
use tokio::io::AsyncWriteExt;
use tokio::runtime::Runtime;

/// Small limits, so that fuzz inputs reach them.
const LIMITS: &str = "max_uri_size = \"200\"\nmax_header_size = \"1000\"\n";

thread_local! {
    static RT: Option<Runtime> = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .ok();
    static SERVER: Option<Server> = crate::config::build(&[SourceDoc {
        name: "fuzz".into(),
        text: format!("[servers.s]\naddr = \"127.0.0.1:1\"\n{LIMITS}"),
    }])
    .ok()
    .and_then(|c| c.servers.into_iter().next());
}

/// Run `f` with the fuzzing runtime and server (both built once per thread).
fn with_env(f: impl FnOnce(&Runtime, &Server)) {
    RT.with(|rt| {
        SERVER.with(|server| {
            if let (Some(rt), Some(server)) = (rt, server) {
                f(rt, server)
            }
        })
    })
}

/// Raw bytes as a request head: the own parser's verdict against Pingora's path.
pub fn h1_head(data: &[u8]) {
    with_env(|rt, server| {
        let limits = SizeLimits::of(server);
        let mut buf = BytesMut::from(data);
        let Some(own) = head::parse(&mut buf, &limits, &mut Vec::new()) else {
            return; // not complete and within the limits: the loop reads on
        };
        // the buffer is consumed exactly when the head was taken
        match &own {
            Parsed::Request(_) | Parsed::Refuse { keep: true, .. } => {
                assert!(buf.len() < data.len(), "a taken head left the buffer whole")
            }
            _ => assert_eq!(buf.len(), data.len(), "bytes lost on a hand-over"),
        }
        let theirs = pingora_verdict(rt, server, data);
        match (own, theirs) {
            (Parsed::Request(r), Some(Ok(h))) => same_head(&r, &h),
            (Parsed::Request(r), other) => {
                panic!(
                    "served here, not by Pingora's path ({other:?}): {:?}",
                    built(&r)
                )
            }
            (Parsed::Refuse { status, .. }, Some(Err(s))) if status == s => {}
            // Allowed difference 1: a request line over the limit that httparse cannot parse,
            // or whose target `http::Uri` cannot hold, is 414 here; Pingora refuses it
            // before its length is looked at (400)
            (Parsed::Refuse { status: 414, .. }, Some(Err(400))) if odd_line(data) => {}
            // Allowed difference 2: such a line (httparse refuses it) can also be accepted by
            // Pingora's path, which percent-escapes the bytes httparse refuses and drops a
            // fragment, leaving a target under the limit; here it is 414 (stricter)
            // (and whatever Pingora's path makes of it after escaping: 400, 431, served)
            (Parsed::Refuse { status: 414, .. }, Some(_)) if unparseable(data) => {}
            (Parsed::Refuse { status, .. }, Some(other)) => {
                panic!(
                    "refused with {status} here, Pingora's path: {other:?}: {:?}",
                    String::from_utf8_lossy(&data[..data.len().min(300)])
                )
            }
            _ => {}
        }
    })
}

/// The head httparse cannot parse as it stands (without Pingora's target escaping).
fn unparseable(data: &[u8]) -> bool {
    let mut lines = [httparse::EMPTY_HEADER; 256];
    httparse::Request::new(&mut lines).parse(data).is_err()
}

/// The head httparse cannot parse, or its target has a byte the own loop does not take as
/// plain (`head::plain_target`).
fn odd_line(data: &[u8]) -> bool {
    let mut lines = [httparse::EMPTY_HEADER; 256];
    let mut req = httparse::Request::new(&mut lines);
    match req.parse(data) {
        Ok(_) => req.path.is_some_and(|t| !head::plain_target(t.as_bytes())),
        Err(_) => true,
    }
}

/// Both engines saw the same request.
/// The own loop's head as a map (its fields are read in place until then).
fn built(own: &head::Request) -> RequestHeader {
    own.head
        .get(&crate::engine::h1::req_head::Kept::default())
        .clone()
}

fn same_head(own: &head::Request, theirs: &RequestHeader) {
    let h = &built(own);
    assert_eq!(h.method, theirs.method);
    assert_eq!(h.raw_path(), theirs.raw_path());
    assert_eq!(h.version, theirs.version);
    let a: Vec<_> = h.headers.iter().collect();
    let b: Vec<_> = theirs.headers.iter().collect();
    assert_eq!(a, b, "fields differ");
    let declared = theirs
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| head::digits(guard::trim(v.as_bytes())))
        .unwrap_or(0);
    let framing = if theirs.headers.contains_key(http::header::TRANSFER_ENCODING) {
        head::BodyFraming::Chunked
    } else {
        head::BodyFraming::Length(declared)
    };
    assert_eq!(own.body, framing, "body framing");
}

/// What Pingora's path makes of `data`: `None` when it reads no complete head; the head
/// when Pingora and the guard accept it; else the status it is refused with (Pingora's own
/// refusals of a head are 400).
fn pingora_verdict(
    rt: &Runtime,
    server: &Server,
    data: &[u8],
) -> Option<Result<RequestHeader, u16>> {
    rt.block_on(async {
        let (mut client, io) = tokio::io::duplex(data.len() + 1);
        let _ = client.write_all(data).await;
        drop(client);
        let mut s = Session::new_h1(Box::new(io));
        match s.read_request().await {
            Ok(true) => Some(match guard::check(&s, server) {
                Ok(()) => Ok(s.req_header().clone()),
                Err(e) => Err(status_of(&e)),
            }),
            Ok(false) => None,
            Err(e) if *e.etype() == pingora::ErrorType::InvalidHTTPHeader => Some(Err(400)),
            Err(_) => None, // closed before a head was complete
        }
    })
}

fn status_of(e: &pingora::Error) -> u16 {
    match e.etype() {
        pingora::ErrorType::HTTPStatus(code) => *code,
        _ => 400,
    }
}

/// Decode `wire` as a chunked body fed in pieces of `split` bytes; `Ok` with the payload
/// once the body ended, `Err` when it cannot be framed or is incomplete.
pub fn decode_split(wire: &[u8], split: usize) -> Result<Vec<u8>, ChunkError> {
    let mut d = Decoder::default();
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    for piece in wire.chunks(split.max(1)) {
        buf.extend_from_slice(piece);
        loop {
            match d.step(&mut buf)? {
                Step::Data(n) => {
                    out.extend_from_slice(&buf[..n]);
                    buf.advance(n);
                }
                Step::More => break,
                Step::Done => return Ok(out),
            }
        }
    }
    Err(ChunkError::incomplete())
}

/// First byte: a split size; the rest: a chunked body.
pub fn h1_chunked(data: &[u8]) {
    let Some((&k, wire)) = data.split_first() else {
        return;
    };
    let whole = decode_split(wire, wire.len());
    let pieces = decode_split(wire, usize::from(k % 16) + 1);
    assert_eq!(
        whole.as_ref().ok(),
        pieces.as_ref().ok(),
        "the split changed the payload"
    );
    // our encoder's output decodes back
    let mut enc = Vec::new();
    for part in wire.chunks(usize::from(k) + 1) {
        chunked::encode(part, &mut enc);
    }
    enc.extend_from_slice(chunked::LAST);
    assert_eq!(decode_split(&enc, 7).ok().as_deref(), Some(wire));
    with_env(|rt, _| {
        let theirs = pingora_body(rt, wire);
        // Allowed difference 3: an empty chunk-size line is refused here (the body cannot
        // be framed); Pingora's reader takes it as size 0, the last chunk
        if whole
            .as_ref()
            .is_err_and(|e| e.to_string().contains("empty chunk size"))
        {
            return;
        }
        assert_eq!(
            whole.as_ref().ok(),
            theirs.as_ref(),
            "Pingora's reader decodes {:?} otherwise",
            String::from_utf8_lossy(wire)
        );
    });
}

/// Pingora's chunked reader on `wire` as a request body: the payload, or `None` when it
/// refuses or the body does not end.
fn pingora_body(rt: &Runtime, wire: &[u8]) -> Option<Vec<u8>> {
    const HEAD: &[u8] = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n";
    rt.block_on(async {
        let (mut client, io) = tokio::io::duplex(HEAD.len() + wire.len() + 1);
        let _ = client.write_all(HEAD).await;
        let _ = client.write_all(wire).await;
        drop(client);
        let mut s = Session::new_h1(Box::new(io));
        if !matches!(s.read_request().await, Ok(true)) {
            return None;
        }
        let mut out = Vec::new();
        loop {
            match s.read_request_body().await {
                Ok(Some(b)) => out.extend_from_slice(&b),
                Ok(None) => return s.is_body_done().then_some(out),
                Err(_) => return None,
            }
        }
    })
}
