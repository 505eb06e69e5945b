//! One request through one plugin's phases, offline: what `t.run` does.
//!
//! The plugin is the real one (a Lua plugin runs on this thread's worker VM, with its
//! sandbox, budget and memory limit); only the client and the upstream are stand-ins. The
//! phases run as the proxy runs them: `on_request` (an answer stops the chain and goes
//! through `on_response`, as the proxy sends it), `on_upstream` when the plugin has it, then
//! the given upstream response through `on_response` and `on_body`, and `on_log` last.

use crate::plugins::{Flow, Plugin, UpstreamChoice};
use crate::proxy::ctx::Ctx;
use crate::proxy::exchange::{Downstream, Standin};
use crate::state::State;
use bytes::Bytes;
use pingora::http::{RequestHeader, ResponseHeader};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

/// The request a test builds with `t.request{...}`.
#[derive(Debug, Clone)]
pub struct TestRequest {
    pub method: String,
    /// path and query
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
    pub client_ip: IpAddr,
}

/// The upstream's answer a test gives with `upstream_response = {...}`.
#[derive(Debug, Clone)]
pub struct UpstreamAnswer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    /// the body's chunks, in order (one `on_body` call each, the last with `eof`)
    pub chunks: Vec<Bytes>,
    /// the upstream the location names (`up.selected` in `on_upstream`)
    pub selected: Option<String>,
}

impl Default for UpstreamAnswer {
    fn default() -> Self {
        UpstreamAnswer {
            status: 200,
            headers: Vec::new(),
            chunks: Vec::new(),
            selected: None,
        }
    }
}

/// The request as it would go upstream: method, path and query, headers.
#[derive(Debug)]
pub struct SentUp {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
}

/// What happened: what the client got, what went upstream, the log fields, the errors.
#[derive(Debug, Default)]
pub struct Outcome {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// a plugin answered in the request phase (the upstream was not asked)
    pub answered: bool,
    /// the request as it would go upstream
    pub upstream_request: Option<SentUp>,
    /// an upstream or peer the plugin chose in the upstream phase
    pub upstream: Option<String>,
    pub peer: Option<String>,
    pub user: Option<String>,
    pub log: Vec<(String, String)>,
    pub errors: Vec<String>,
}

fn pairs(h: &http::HeaderMap) -> Vec<(String, String)> {
    h.iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect()
}

fn head(req: &TestRequest) -> Result<RequestHeader, String> {
    let mut h = RequestHeader::build(req.method.as_str(), req.path.as_bytes(), None)
        .map_err(|e| format!("t.request: {e}"))?;
    for (k, v) in &req.headers {
        h.append_header(k.clone(), v.as_str())
            .map_err(|e| format!("t.request: header `{k}`: {e}"))?;
    }
    if !req.body.is_empty() && h.headers.get(http::header::CONTENT_LENGTH).is_none() {
        let _ = h.insert_header(http::header::CONTENT_LENGTH, req.body.len());
    }
    Ok(h)
}

/// Run `plugin`'s phases on `req`, with `upstream` as the upstream's answer.
pub async fn run(
    plugin: &dyn Plugin,
    state: Arc<State>,
    req: &TestRequest,
    upstream: &UpstreamAnswer,
) -> Result<Outcome, String> {
    let mut session = Standin::new(
        head(req)?,
        SocketAddr::new(req.client_ip, 40000),
        Some(req.body.clone()),
    );
    let mut ctx = Ctx::new(state, 0);
    crate::proxy::forwarded::identify(&session, &mut ctx);
    ctx.host = session
        .req
        .headers
        .get(http::header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(|h| h.split(':').next().unwrap_or(h).to_ascii_lowercase())
        .unwrap_or_default();
    let mut out = Outcome::default();
    let (mut resp, chunks) = match plugin.on_request(&mut session, &mut ctx).await {
        Ok(Flow::Respond(a)) => {
            out.answered = true;
            let mut resp = ResponseHeader::build(a.status, None).map_err(|e| e.to_string())?;
            for (k, v) in a.headers {
                let _ = resp.append_header(k, v);
            }
            (resp, vec![a.body])
        }
        Err(e) => {
            out.errors.push(e.to_string());
            out.status = 500;
            out.answered = true;
            finish(plugin, &mut session, &mut ctx, &mut out, 500);
            return Ok(out);
        }
        Ok(Flow::Continue) => {
            if plugin.wants_upstream() {
                let mut choice = UpstreamChoice {
                    selected: upstream.selected.clone(),
                    ..Default::default()
                };
                if let Err(e) = plugin
                    .on_upstream(&mut session, &mut choice, &mut ctx)
                    .await
                {
                    out.errors.push(e.to_string());
                }
                out.upstream = choice.upstream;
                out.peer = choice.peer.map(|(a, _, _)| a.to_string());
            }
            let r = session.req();
            out.upstream_request = Some(SentUp {
                method: r.method.to_string(),
                path: r.uri.to_string(),
                headers: pairs(&r.headers),
            });
            let mut resp =
                ResponseHeader::build(upstream.status, None).map_err(|e| e.to_string())?;
            for (k, v) in &upstream.headers {
                resp.append_header(k.clone(), v.as_str())
                    .map_err(|e| format!("upstream_response header `{k}`: {e}"))?;
            }
            (resp, upstream.chunks.clone())
        }
    };
    if let Err(e) = plugin.on_response(&session, &mut resp, &mut ctx) {
        out.errors.push(e.to_string());
    }
    let n = chunks.len().max(1);
    for i in 0..n {
        let mut chunk = chunks.get(i).cloned();
        if let Err(e) = plugin.on_body(&session, &mut chunk, i + 1 == n, &mut ctx) {
            out.errors.push(e.to_string());
        }
        if let Some(c) = chunk {
            out.body.extend_from_slice(&c);
        }
    }
    out.status = resp.status.as_u16();
    out.headers = pairs(&resp.headers);
    session.sent_bytes = out.body.len();
    session.sent = Some(resp);
    finish(plugin, &mut session, &mut ctx, &mut out, 0);
    Ok(out)
}

/// The log phase, and what the context holds at the end.
fn finish(
    plugin: &dyn Plugin,
    session: &mut Standin,
    ctx: &mut Ctx,
    out: &mut Outcome,
    status: u16,
) {
    if status != 0 {
        session.sent = ResponseHeader::build(status, None).ok();
    }
    ctx.status = out.status;
    plugin.on_log(session, ctx);
    out.log = std::mem::take(&mut ctx.log_fields);
    out.user = ctx.plugin.user.clone();
}
