//! Writing responses to the client in the own HTTP/1 loop: heads into the connection's
//! reused output buffer, whole answers (a plugin's, an error page), and upstream bodies
//! relayed through the body filters.

use super::body::BodyReader;
use super::chunked;
use super::client::Exchange;
use super::origin::{Framing, Origin, OriginError};
use crate::proxy::ctx::Ctx;
use bytes::{Buf, Bytes};
use pingora::http::ResponseHeader;
use std::time::Duration;

/// Write the output buffer out once it holds this much.
const FLUSH_AT: usize = 16 << 10;

/// A failure while relaying a response body: the client's connection cannot be reused.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("upstream: {0}")]
    Upstream(#[from] OriginError),
    #[error("upstream: {0}")]
    Chunked(#[from] chunked::ChunkError),
    #[error("the upstream closed before the end of the body")]
    Truncated,
    #[error("client: {0}")]
    Client(#[from] std::io::Error),
}

/// Put a response head on the wire. `chunked`: the body goes with the chunked coding
/// (any `Content-Length` and `Transfer-Encoding` are replaced); `close`: the connection
/// ends after this response.
pub fn head_to_wire(resp: &mut ResponseHeader, chunked: bool, close: bool, out: &mut Vec<u8>) {
    strip_framing(resp, chunked);
    parsed_head_to_wire(resp, chunked, close, out);
}

/// Remove the fields the framing of the client's response decides.
fn strip_framing(resp: &mut ResponseHeader, chunked: bool) {
    if chunked {
        resp.remove_header(&http::header::CONTENT_LENGTH);
    }
    resp.remove_header(&http::header::TRANSFER_ENCODING);
    resp.remove_header(&http::header::CONNECTION);
}

/// [`head_to_wire`] for an upstream's head as `origin.rs` parsed it, which holds no
/// `Transfer-Encoding` or `Connection` and no `Content-Length` next to chunked; `edited`:
/// a plugin may have added some since, so they are looked for.
pub fn upstream_head_to_wire(
    resp: &mut ResponseHeader,
    edited: bool,
    chunked: bool,
    close: bool,
    out: &mut Vec<u8>,
) {
    // unedited, a chunked answer to the client comes from a chunked upstream body (its
    // length field dropped at the parse) or a close-delimited one (which has none)
    if edited {
        strip_framing(resp, chunked);
    }
    parsed_head_to_wire(resp, chunked, close, out);
}

/// Put an upstream's head kept as bytes on the wire: the status line (with the status's own
/// reason), the fields `spans` in `raw` as they came, then the client's framing fields.
pub fn raw_head_to_wire(
    raw: &super::origin::RawHead,
    spans: &[super::head::Span],
    chunked: bool,
    close: bool,
    out: &mut Vec<u8>,
) {
    status_line(raw.status, None, out);
    for &(n0, nlen, v0, vlen) in spans {
        out.extend_from_slice(&raw.raw[n0..n0 + nlen]);
        out.extend_from_slice(b": ");
        out.extend_from_slice(&raw.raw[v0..v0 + vlen]);
        out.extend_from_slice(b"\r\n");
    }
    framing_fields(chunked, close, out);
}

fn status_line(status: http::StatusCode, reason: Option<&str>, out: &mut Vec<u8>) {
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    let reason = reason.or_else(|| status.canonical_reason()).unwrap_or("");
    out.extend_from_slice(reason.as_bytes());
    out.extend_from_slice(b"\r\n");
}

fn framing_fields(chunked: bool, close: bool, out: &mut Vec<u8>) {
    if chunked {
        out.extend_from_slice(b"transfer-encoding: chunked\r\n");
    }
    if close {
        out.extend_from_slice(b"connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

fn parsed_head_to_wire(resp: &ResponseHeader, chunked: bool, close: bool, out: &mut Vec<u8>) {
    status_line(resp.status, resp.get_reason_phrase(), out);
    resp.header_to_h1_wire(out);
    framing_fields(chunked, close, out);
}

/// Send a whole answer (a plugin's early answer or an error page) and record it as sent.
pub async fn answer(
    ex: &mut Exchange<'_>,
    mut head: ResponseHeader,
    body: Option<Bytes>,
    close: bool,
) -> std::io::Result<()> {
    head_to_wire(&mut head, false, close, &mut ex.client.out);
    if let Some(b) = &body {
        ex.client.out.extend_from_slice(b);
        ex.sent_bytes += b.len();
    }
    ex.sent_head = Some(head);
    ex.client.flush().await
}

/// Send a streamed answer body (`ctx.plugin.answer_stream`) after its head, piece by piece;
/// its length is in the head. An error mid-way leaves the connection to be closed.
pub async fn stream(
    ex: &mut Exchange<'_>,
    mut source: Box<dyn crate::plugins::body_source::BodySource>,
) -> std::io::Result<()> {
    while let Some(piece) = source.next().await? {
        ex.sent_bytes += piece.len();
        ex.client.out.extend_from_slice(&piece);
        ex.client.flush().await?;
    }
    Ok(())
}

/// Relay the upstream's response body to the client, through the location's body filters
/// when one is active. `Ok`: the body ended where its framing says (a close-delimited one at
/// the upstream's close), so the connection may be pooled if the upstream allows it.
pub async fn relay_body(
    ex: &mut Exchange<'_>,
    ctx: &mut Ctx,
    origin: &mut Origin,
    framing: Framing,
    read_timeout: Option<Duration>,
) -> Result<(), RelayError> {
    let chunked_out = ctx.body_filtered || matches!(framing, Framing::Chunked | Framing::Close);
    let mut body = BodyReader::new(framing);
    while let Some(n) = body.next(origin, read_timeout).await? {
        if body.complete() {
            // the whole answer is in hand: the peer's part is over before the client sees
            // the last byte (else its next request could still find it busy)
            ctx.inflight = None;
        }
        pass(ex, ctx, origin, n, chunked_out).await?;
    }
    if ctx.body_filtered && framing != Framing::None {
        let mut last = None;
        crate::proxy::response::run_body_filters(ex, &mut last, true, ctx);
        if let Some(b) = last.filter(|b| !b.is_empty()) {
            ex.sent_bytes += b.len();
            chunked::encode(&b, &mut ex.client.out);
        }
    }
    if framing != Framing::None {
        crate::proxy::response::watch_body(ex, &[], true, ctx);
    }
    if chunked_out && framing != Framing::None {
        ex.client.out.extend_from_slice(chunked::LAST);
    }
    ctx.inflight = None;
    ex.client.flush().await?;
    Ok(())
}

/// Send the first `n` bytes of the upstream buffer on (filtered, and chunked when the
/// client's framing is chunked), and advance past them.
async fn pass(
    ex: &mut Exchange<'_>,
    ctx: &mut Ctx,
    origin: &mut Origin,
    n: usize,
    chunked_out: bool,
) -> Result<(), RelayError> {
    if n == 0 {
        return Ok(());
    }
    if ctx.body_filtered {
        let raw = origin.buf.split_to(n).freeze();
        crate::proxy::response::watch_body(ex, &raw, false, ctx);
        let mut piece = Some(raw);
        crate::proxy::response::run_body_filters(ex, &mut piece, false, ctx);
        if let Some(b) = piece.filter(|b| !b.is_empty()) {
            ex.sent_bytes += b.len();
            chunked::encode(&b, &mut ex.client.out);
        }
    } else {
        crate::proxy::response::watch_body(ex, &origin.buf[..n], false, ctx);
        ex.sent_bytes += n;
        if chunked_out {
            chunked::encode(&origin.buf[..n], &mut ex.client.out);
        } else {
            ex.client.out.extend_from_slice(&origin.buf[..n]);
        }
        origin.buf.advance(n);
    }
    if ex.client.out.len() >= FLUSH_AT {
        ex.client.flush().await?;
    }
    Ok(())
}
