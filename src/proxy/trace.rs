//! The per-request trace: what happened to one request, for a client the operator trusts.
//!
//! ```toml
//! [basic]
//! trace_token = "a-long-random-secret"   # at least 16 characters
//! ```
//!
//! ```text
//! curl -H 'X-Tidegate-Trace: a-long-random-secret' https://example.com/api/x -D -
//! X-Tidegate-Trace: 0.011ms route: api won (prefix /api (4 bytes), any host); also matched:
//!   site (prefix / (1 bytes), any host); 1 not matching | 0.020ms plugin auth: continue
//!   (0.008ms) | 0.031ms upstream api: peer 127.0.0.1:9001 (try 1) | ... | total 1.402ms
//! ```
//!
//! A request carrying `X-Tidegate-Trace` with the token, or from a direct peer in the server's
//! `trusted_proxies`, gets the trace in the `X-Tidegate-Trace` response header: the locations
//! considered and why the winner won, the rewrite, each plugin with its verdict and time, each
//! Lua hook with its time and the share of its budget used, every upstream peer tried with the
//! outcome, and the time of each step since the request began. `X-Tidegate-Trace: TOKEN json`
//! answers with the trace as a JSON document instead of the response. The header is always
//! removed before the request goes upstream, trusted or not; without trust nothing else
//! changes. Tracing costs one header lookup and a branch per step on untraced requests.

use super::ctx::Ctx;
use crate::proxy::exchange::Downstream;
use bytes::Bytes;
use pingora::http::ResponseHeader;
use std::fmt::Write;
use std::time::Instant;

pub const HEADER: &str = "x-tidegate-trace";
/// The same, parsed once (a lookup by `&str` would parse the name on every request).
const NAME: http::HeaderName = http::HeaderName::from_static(HEADER);
/// The longest trace header sent; longer traces end with `…`.
const MAX_HEADER: usize = 8 << 10;

/// The steps of one traced request.
#[derive(Debug)]
pub struct Trace {
    start: Instant,
    steps: Vec<(Instant, String)>,
    /// `X-Tidegate-Trace: TOKEN json`: the trace is the response
    json: bool,
}

impl Trace {
    fn new(start: Instant, json: bool) -> Trace {
        Trace {
            start,
            steps: Vec::new(),
            json,
        }
    }

    /// The trace as a JSON document, with the response it replaces.
    fn document(&self, resp: &ResponseHeader) -> String {
        let steps: Vec<serde_json::Value> = self
            .steps
            .iter()
            .map(|(at, what)| {
                serde_json::json!({
                    "at_ms": at.duration_since(self.start).as_secs_f64() * 1000.0,
                    "what": what,
                })
            })
            .collect();
        let headers: serde_json::Map<String, serde_json::Value> = resp
            .headers
            .iter()
            .filter(|(k, _)| k.as_str() != HEADER)
            .map(|(k, v)| {
                (
                    k.as_str().to_string(),
                    serde_json::Value::String(String::from_utf8_lossy(v.as_bytes()).into()),
                )
            })
            .collect();
        serde_json::json!({
            "steps": steps,
            "response": { "status": resp.status.as_u16(), "headers": headers },
            "total_ms": self.start.elapsed().as_secs_f64() * 1000.0,
        })
        .to_string()
    }

    fn push(&mut self, what: String) {
        self.steps.push((Instant::now(), what));
    }

    /// The trace as a header value: `TIME what | TIME what | total TIME`.
    pub fn header_value(&self) -> String {
        let mut out = String::new();
        for (at, what) in &self.steps {
            let _ = write!(out, "{} {} | ", ms(at.duration_since(self.start)), what);
        }
        let _ = write!(out, "total {}", ms(self.start.elapsed()));
        // header values are visible ASCII and spaces
        let mut clean: String = out
            .chars()
            .map(|c| {
                if c.is_ascii_graphic() || c == ' ' {
                    c
                } else {
                    '?'
                }
            })
            .collect();
        if clean.len() > MAX_HEADER {
            clean.truncate(MAX_HEADER - 3);
            clean.push_str("...");
        }
        clean
    }
}

fn ms(d: std::time::Duration) -> String {
    format!("{:.3}ms", d.as_secs_f64() * 1000.0)
}

/// Constant-time comparison of the token.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Turn tracing on when a trusted client asks for it, and remove the header from the
/// request in every case (it never reaches the upstream).
pub fn begin(session: &mut dyn Downstream, ctx: &mut Ctx) {
    let Some(value) = session.header(&NAME).map(crate::proxy::exchange::text) else {
        return;
    };
    let text = value.unwrap_or("");
    let word = text.split_whitespace().next().unwrap_or("");
    let json = text
        .split_whitespace()
        .any(|w| w.eq_ignore_ascii_case("json"));
    let by_token = ctx
        .state
        .config
        .basic
        .trace_token
        .as_deref()
        .is_some_and(|t| same(t.as_bytes(), word.as_bytes()));
    let by_peer = session.peer_addr().is_some_and(|p| {
        ctx.server()
            .trusted_proxies
            .iter()
            .any(|n| n.contains(&p.ip()))
    });
    session.req_mut().remove_header(&NAME);
    if by_token || by_peer {
        ctx.trace = Some(Box::new(std::sync::Mutex::new(Trace::new(ctx.start, json))));
    }
}

/// Add a step to the trace, if the request is traced (`what` is built only then).
pub fn note(ctx: &Ctx, what: impl FnOnce() -> String) {
    if let Some(t) = &ctx.trace {
        t.lock().unwrap_or_else(|p| p.into_inner()).push(what());
    }
}

/// The request asked for the trace instead of the response (`json`).
pub fn wants_document(ctx: &Ctx) -> bool {
    ctx.trace
        .as_ref()
        .is_some_and(|t| t.lock().unwrap_or_else(|p| p.into_inner()).json)
}

/// The response that replaces `resp` for a request that asked for the trace as a document:
/// 200, the trace as JSON (with the status and headers it replaces).
pub fn document(ctx: &Ctx, resp: &ResponseHeader) -> pingora::Result<(ResponseHeader, Bytes)> {
    let text = ctx.trace.as_ref().map_or_else(String::new, |t| {
        t.lock().unwrap_or_else(|p| p.into_inner()).document(resp)
    });
    let mut head = ResponseHeader::build(200, Some(3))?;
    head.insert_header(http::header::CONTENT_TYPE, "application/json")?;
    head.insert_header(http::header::CONTENT_LENGTH, text.len().to_string())?;
    head.insert_header(http::header::CACHE_CONTROL, "no-store")?;
    Ok((head, Bytes::from(text)))
}

/// The trace as a header value, if the request is traced.
pub fn header(ctx: &Ctx) -> Option<String> {
    ctx.trace
        .as_ref()
        .map(|t| t.lock().unwrap_or_else(|p| p.into_inner()).header_value())
}

/// The routing step: the winner, the others that matched, how many did not.
pub fn route(ctx: &Ctx, input: &crate::routing::RouteInput<'_>) {
    if ctx.trace.is_none() {
        return;
    }
    let considered = ctx.state.servers[ctx.server].router.explain(input);
    let names = &ctx.state.config.locations;
    let name = |i: usize| names.get(i).map_or("?", |l| l.name.as_str());
    note(ctx, || {
        let mut matched = considered.iter().filter(|c| c.matched);
        let not = considered.iter().filter(|c| !c.matched).count();
        match matched.next() {
            None => format!("route: no location matched ({not} considered)"),
            Some(w) => {
                let mut s = format!("route: {} won ({})", name(w.location), w.why);
                let rest: Vec<String> = matched
                    .map(|c| format!("{} ({})", name(c.location), c.why))
                    .collect();
                if !rest.is_empty() {
                    let _ = write!(s, "; also matched: {}", rest.join(", "));
                }
                let _ = write!(s, "; {not} not matching");
                s
            }
        }
    });
}
