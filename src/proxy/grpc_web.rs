//! gRPC-web (`grpc_web = true` on a location): browsers' gRPC over HTTP/1.1 or HTTP/2,
//! bridged to gRPC over HTTP/2 upstream (`alpn = "h2"` on the upstream).
//!
//! ```toml
//! [locations.api]
//! path = "/my.package.Service/"
//! upstream = "grpc"
//! grpc_web = true
//!
//! [upstreams.grpc]
//! addrs = ["127.0.0.1:50051"]
//! alpn = "h2"              # gRPC is HTTP/2; plain `h2` here is h2c (prior knowledge)
//! ```
//!
//! A request with `Content-Type: application/grpc-web[+proto]` goes upstream as
//! `application/grpc[+proto]` with `TE: trailers`; the `-text` form's body is base64 and is
//! decoded on the way (4 characters at a time across chunks). The answer's content type is
//! turned back, its body passed on (base64-encoded for `-text`), and the upstream's trailers
//! (`grpc-status`, `grpc-message`...) become the final frame of the body (flag `0x80`, a
//! big-endian length, `name:value\r\n` lines), as the gRPC-web protocol puts them. Requests
//! with another content type pass as they are. Such requests run on Pingora's path (the own
//! HTTP/1 loop hands `application/grpc*` requests over).

use base64::Engine;
use bytes::{Bytes, BytesMut};
use pingora::http::{RequestHeader, ResponseHeader};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// One request's bridge.
#[derive(Debug)]
pub struct Bridge {
    /// the `-text` form: bodies are base64 both ways
    text: bool,
    /// request base64 characters not yet decoded (fewer than 4)
    pending: Vec<u8>,
}

/// The bridge for a request, when its location bridges gRPC-web and it is one.
pub fn begin(req: &RequestHeader, location_on: bool) -> Option<Box<Bridge>> {
    if !location_on {
        return None;
    }
    let ct = req.headers.get(http::header::CONTENT_TYPE)?.to_str().ok()?;
    let ct = ct.to_ascii_lowercase();
    if !ct.starts_with("application/grpc-web") {
        return None;
    }
    Some(Box::new(Bridge {
        text: ct.starts_with("application/grpc-web-text"),
        pending: Vec::new(),
    }))
}

/// `application/grpc-web-text+proto` → `application/grpc+proto` (and back with `web`).
fn to_grpc(ct: &str) -> String {
    let lower = ct.to_ascii_lowercase();
    let rest = lower
        .strip_prefix("application/grpc-web-text")
        .or_else(|| lower.strip_prefix("application/grpc-web"))
        .unwrap_or("");
    format!("application/grpc{rest}")
}

impl Bridge {
    /// The request going upstream.
    pub fn upstream_request(&self, up: &mut RequestHeader) -> pingora::Result<()> {
        if let Some(ct) = up
            .headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(to_grpc)
        {
            up.insert_header(http::header::CONTENT_TYPE, ct)?;
        }
        up.insert_header(http::header::TE, "trailers")?;
        if self.text {
            // decoding changes the length
            up.remove_header(&http::header::CONTENT_LENGTH);
        }
        up.remove_header("x-grpc-web");
        Ok(())
    }

    /// A piece of the request body: decoded from base64 for `-text`.
    pub fn request_body(&mut self, body: &mut Option<Bytes>, end: bool) -> pingora::Result<()> {
        if !self.text {
            return Ok(());
        }
        self.pending.extend(
            body.as_deref()
                .unwrap_or(&[])
                .iter()
                .filter(|b| !b.is_ascii_whitespace()),
        );
        let whole = if end {
            self.pending.len()
        } else {
            self.pending.len() / 4 * 4
        };
        let chunk: Vec<u8> = self.pending.drain(..whole).collect();
        let mut out = Vec::with_capacity(chunk.len() / 4 * 3);
        // each 4-character group on its own: a sender may pad between messages
        for group in chunk.chunks(4) {
            let decoded = B64.decode(group).map_err(|e| {
                pingora::Error::explain(
                    pingora::ErrorType::InvalidHTTPHeader,
                    format!("grpc-web-text body is not base64: {e}"),
                )
            })?;
            out.extend_from_slice(&decoded);
        }
        *body = Some(out.into());
        Ok(())
    }

    /// The answer's head: the content type back to gRPC-web; the length goes (the trailers
    /// join the body).
    pub fn response(&self, resp: &mut ResponseHeader) -> pingora::Result<()> {
        let ct = resp
            .headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("application/grpc")
            .to_ascii_lowercase();
        let rest = ct.strip_prefix("application/grpc").unwrap_or("+proto");
        let web = if self.text {
            "application/grpc-web-text"
        } else {
            "application/grpc-web"
        };
        resp.insert_header(http::header::CONTENT_TYPE, format!("{web}{rest}"))?;
        resp.remove_header(&http::header::CONTENT_LENGTH);
        Ok(())
    }

    /// A piece of the answer's body: base64 for `-text` (each piece padded on its own).
    pub fn response_body(&self, body: &mut Option<Bytes>) {
        if self.text {
            if let Some(b) = body.as_ref().filter(|b| !b.is_empty()) {
                *body = Some(Bytes::from(B64.encode(b)));
            }
        }
    }

    /// The upstream's trailers as the body's last frame.
    pub fn trailers(&self, trailers: &http::HeaderMap) -> Bytes {
        let mut lines = Vec::new();
        for (k, v) in trailers {
            lines.extend_from_slice(k.as_str().as_bytes());
            lines.push(b':');
            lines.extend_from_slice(v.as_bytes());
            lines.extend_from_slice(b"\r\n");
        }
        let mut frame = BytesMut::with_capacity(5 + lines.len());
        frame.extend_from_slice(&[0x80]);
        frame.extend_from_slice(&(lines.len() as u32).to_be_bytes());
        frame.extend_from_slice(&lines);
        if self.text {
            Bytes::from(B64.encode(&frame))
        } else {
            frame.freeze()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types() {
        assert_eq!(
            to_grpc("application/grpc-web+proto"),
            "application/grpc+proto"
        );
        assert_eq!(to_grpc("application/grpc-web-text"), "application/grpc");
    }

    #[test]
    fn text_bodies_decode_across_any_split() {
        let msg = b"\x00\x00\x00\x00\x05hello";
        let text = B64.encode(msg);
        for split in 1..text.len() {
            let mut b = Bridge {
                text: true,
                pending: Vec::new(),
            };
            let mut out = Vec::new();
            for (i, part) in [&text[..split], &text[split..]].iter().enumerate() {
                let mut body = Some(Bytes::copy_from_slice(part.as_bytes()));
                b.request_body(&mut body, i == 1).unwrap();
                out.extend_from_slice(&body.unwrap());
            }
            assert_eq!(out, msg, "split {split}");
        }
    }
}
