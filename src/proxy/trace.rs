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
//! outcome, and the time of each step since the request began. The header is always removed
//! before the request goes upstream, trusted or not; without trust nothing else changes.
//! Tracing costs one branch per step on untraced requests.

use super::ctx::Ctx;
use crate::proxy::exchange::Downstream;
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
}

impl Trace {
    fn new(start: Instant) -> Trace {
        Trace {
            start,
            steps: Vec::new(),
        }
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
    let req = session.req();
    let Some(value) = req.headers.get(&NAME) else {
        return;
    };
    let word = value
        .to_str()
        .unwrap_or("")
        .split_whitespace()
        .next()
        .unwrap_or("");
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
        ctx.trace = Some(Box::new(std::sync::Mutex::new(Trace::new(ctx.start))));
    }
}

/// Add a step to the trace, if the request is traced (`what` is built only then).
pub fn note(ctx: &Ctx, what: impl FnOnce() -> String) {
    if let Some(t) = &ctx.trace {
        t.lock().unwrap_or_else(|p| p.into_inner()).push(what());
    }
}

/// The trace as a header value, if the request is traced.
pub fn header(ctx: &Ctx) -> Option<String> {
    ctx.trace
        .as_ref()
        .map(|t| t.lock().unwrap_or_else(|p| p.into_inner()).header_value())
}

/// The routing step: the winner, the others that matched, how many did not.
pub fn route(session: &dyn Downstream, ctx: &Ctx, input: &crate::routing::RouteInput<'_>) {
    if ctx.trace.is_none() {
        return;
    }
    let _ = session;
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
