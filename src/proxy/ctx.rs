//! The per-request context: what one request carries through all phases.

use crate::proxy::exchange::Downstream;
use crate::routing::vars::{Var, VarSource};
use crate::routing::RouteMatch;
use crate::state::State;
use crate::upstream::{InflightGuard, Peer, Upstream};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

#[derive(Debug)]
pub struct Ctx {
    /// The config version this request runs on, from start to end.
    pub state: Arc<State>,
    pub server: usize,
    pub start: Instant,
    /// Lower-case host without port.
    pub host: String,
    pub client_ip: Option<IpAddr>,
    /// The direct peer is in `trusted_proxies`: its forwarded headers are believed.
    pub peer_trusted: bool,
    pub route: Option<RouteMatch>,
    pub request_id: Option<String>,
    pub upstream: Option<Arc<Upstream>>,
    /// the peer of the current try (kept to the end even if discovery drops it meanwhile)
    pub peer: Option<Arc<Peer>>,
    /// peers this request already tried (inline up to 4: no allocation for the usual one)
    pub tried: smallvec::SmallVec<[SocketAddr; 4]>,
    pub upstream_addr: Option<SocketAddr>,
    pub inflight: Option<InflightGuard>,
    /// status sent to the client (set by every path that answers)
    pub status: u16,
    pub body_limit: Option<u64>,
    pub body_seen: u64,
    /// fields plugins add for the access log as `{:name}`
    pub log_fields: Vec<(String, String)>,
    /// this request's Lua `ctx` table, once a Lua hook ran
    pub lua: Option<crate::scripting::LuaRequest>,
    /// a peer chosen by a plugin in the upstream phase (bypasses the balancer)
    pub direct_peer: Option<pingora::upstreams::peer::HttpPeer>,
    /// the request body a script read with `req:body()` (Pingora replays it upstream)
    pub request_body: Option<bytes::Bytes>,
    /// the first chunk of a chunked body, read before the upstream is chosen to check its
    /// framing (`request::check_first_chunk`); still sent upstream from Pingora's retry buffer
    pub body_prefix: Option<bytes::Bytes>,
    /// a script read part of the body and could not keep it: the status to answer with
    pub body_failed: Option<u16>,
    /// a body filter may change the length: Content-Length was removed
    pub body_filtered: bool,
    /// a plugin watches the body as it passes (`on_body_seen`), unchanged
    pub body_watched: bool,
    /// connect, read, write timeouts set in the upstream phase
    /// the connection's TLS session; `None` on plain HTTP
    pub tls: Option<Arc<crate::tls::TlsInfo>>,
    /// when the current upstream try started, then when it was connected (measured only
    /// with metrics on or a log field that shows them: see [`Ctx::timing`])
    pub attempt_start: Option<Instant>,
    /// the last try's connect time (a new connection) and time to the response head
    pub upstream_connect: Option<std::time::Duration>,
    pub upstream_response: Option<std::time::Duration>,
    /// the status the upstream answered with (0: none)
    pub upstream_status: u16,
    /// the client connection's serial number and the requests it carried, this one included
    pub connection: Option<(u64, u32)>,
    /// the data path serving the request (`{engine}` in the access log): `h1` (the own
    /// HTTP/1 loop), `h2` (the own HTTP/2 path) or `pingora`
    pub engine: &'static str,
    /// the per-request trace, when a trusted client asked for it (`proxy/trace.rs`)
    pub trace: Option<Box<std::sync::Mutex<crate::proxy::trace::Trace>>>,
    /// the OpenTelemetry spans of a sampled request
    pub otel: Option<Box<crate::observability::otel::spans::RequestSpans>>,
    /// the trace document waiting to replace the response body (Pingora's path)
    pub trace_document: Option<bytes::Bytes>,
    /// counted in `tidegate_requests_in_flight` while it lives (with metrics on)
    pub in_flight: Option<crate::observability::metrics::handles::InFlight>,
    /// what built-in plugins leave for later phases: the user, limit figures, held slots
    pub plugin: crate::plugins::state::PluginState,
    pub timeouts: (
        Option<std::time::Duration>,
        Option<std::time::Duration>,
        Option<std::time::Duration>,
    ),
}

impl Ctx {
    pub fn new(state: Arc<State>, server: usize) -> Ctx {
        let in_flight = state
            .servers
            .get(server)
            .and_then(|s| s.metrics.as_ref())
            .map(|m| crate::observability::metrics::handles::InFlight::start(&m.in_flight));
        Ctx {
            attempt_start: None,
            upstream_connect: None,
            upstream_response: None,
            upstream_status: 0,
            connection: None,
            engine: "pingora",
            trace: None,
            trace_document: None,
            otel: None,
            in_flight,
            state,
            server,
            start: Instant::now(),
            host: String::new(),
            client_ip: None,
            peer_trusted: false,
            route: None,
            request_id: None,
            upstream: None,
            peer: None,
            tried: smallvec::SmallVec::new(),
            upstream_addr: None,
            inflight: None,
            status: 0,
            body_limit: None,
            body_seen: 0,
            log_fields: Vec::new(),
            lua: None,
            direct_peer: None,
            request_body: None,
            body_prefix: None,
            body_failed: None,
            body_filtered: false,
            body_watched: false,
            tls: None,
            timeouts: (None, None, None),
            plugin: Default::default(),
        }
    }

    pub fn location(&self) -> Option<&crate::config::model::Location> {
        self.route
            .as_ref()
            .and_then(|r| self.state.config.locations.get(r.location))
    }

    /// The scheme the client used; every template, log field and header follows it.
    pub fn scheme(&self) -> &'static str {
        if self.tls.is_some() {
            "https"
        } else {
            "http"
        }
    }

    /// Whether upstream times are measured: metrics are on, or the access log shows them.
    pub fn timing(&self) -> bool {
        self.state
            .servers
            .get(self.server)
            .is_some_and(|s| s.timing)
    }

    /// An upstream try begins (a peer was chosen).
    pub fn try_started(&mut self) {
        if self.timing() || self.trace.is_some() || self.otel.is_some() {
            self.attempt_start = Some(Instant::now());
        }
    }

    /// The try's connection is there (`reused`: taken from the pool, no connect).
    pub fn try_connected(&mut self, reused: bool) {
        let Some(t0) = self.attempt_start else { return };
        if !reused {
            let d = t0.elapsed();
            self.upstream_connect = Some(d);
            crate::observability::otel::spans::connected(self, d);
            if let Some(m) = self.upstream_metrics() {
                m.connect.observe(d.as_secs_f64());
            }
        }
        self.attempt_start = Some(Instant::now());
    }

    /// The upstream's response head arrived.
    pub fn try_answered(&mut self, status: u16) {
        self.upstream_status = status;
        crate::observability::otel::spans::try_ended(self, Some(status), None);
        crate::proxy::trace::note(self, || {
            let connect = self
                .upstream_connect
                .map_or("pooled connection".to_string(), |d| {
                    format!("connected in {:.3}ms", d.as_secs_f64() * 1000.0)
                });
            format!("upstream answered {status} ({connect})")
        });
        let Some(t0) = self.attempt_start else { return };
        let d = t0.elapsed();
        self.upstream_response = Some(d);
        if let Some(m) = self.upstream_metrics() {
            m.response.observe(d.as_secs_f64());
        }
    }

    /// The chosen upstream's metrics handles, when metrics are on.
    pub fn upstream_metrics(
        &self,
    ) -> Option<&crate::observability::metrics::handles::UpstreamMetrics> {
        self.upstream.as_ref().and_then(|u| u.metrics.as_ref())
    }

    pub fn server(&self) -> &crate::config::model::Server {
        &self.state.servers[self.server].conf
    }
}

/// A client connection as the access log numbers it: `{connection}` and
/// `{connection_requests}`.
#[derive(Debug)]
pub struct Connection {
    pub id: u64,
    requests: std::sync::atomic::AtomicU32,
}

impl Connection {
    /// A new connection, numbered in accept order from 1.
    pub fn next() -> Arc<Connection> {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        Arc::new(Connection {
            id: NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            requests: Default::default(),
        })
    }

    /// One more request on it: (connection id, requests so far including this one).
    pub fn request(&self) -> (u64, u32) {
        let n = self
            .requests
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        (self.id, n.wrapping_add(1))
    }
}

/// Variables of a request, for templates.
pub struct Vars<'a> {
    pub session: &'a dyn Downstream,
    pub ctx: &'a Ctx,
}

impl VarSource for Vars<'_> {
    fn write_var(&self, var: &Var, out: &mut String) {
        let req = self.session.req();
        match var {
            Var::Host => out.push_str(&self.ctx.host),
            Var::RemoteUser => out.push_str(self.ctx.plugin.user.as_deref().unwrap_or("")),
            Var::Scheme => out.push_str(self.ctx.scheme()),
            Var::RemoteAddr => {
                if let Some(ip) = self.ctx.client_ip {
                    out.push_str(&ip.to_string());
                }
            }
            Var::RequestUri => {
                out.push_str(req.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/"))
            }
            Var::Uri => out.push_str(req.uri.path()),
            Var::Args => out.push_str(req.uri.query().unwrap_or("")),
            Var::Method => out.push_str(req.method.as_str()),
            Var::RequestId => out.push_str(self.ctx.request_id.as_deref().unwrap_or("")),
            Var::Location => {
                if let Some(l) = self.ctx.location() {
                    out.push_str(&l.name)
                }
            }
            Var::Tls(t) => {
                if let Some(v) = self.ctx.tls.as_ref().and_then(|i| i.var(*t)) {
                    out.push_str(v)
                }
            }
            Var::Header(h) => {
                if let Some(v) = req.headers.get(h.as_str()).and_then(|v| v.to_str().ok()) {
                    out.push_str(v)
                }
            }
            Var::Capture(name) => {
                if let Some(v) = self.ctx.route.as_ref().and_then(|r| r.capture(name)) {
                    out.push_str(v)
                }
            }
        }
    }
}

/// A request's plugin chain: the matched location's plugins, held through the chain's own
/// handle on the config version, so `ctx` stays free to mutate while the chain runs.
pub struct Chain {
    state: Arc<State>,
    location: usize,
}

impl Chain {
    /// The plugins in the location's order.
    pub fn plugins(&self) -> impl Iterator<Item = &crate::config::model::PluginDef> {
        let config = &self.state.config;
        config.locations[self.location]
            .plugins
            .iter()
            .map(move |&i| &config.plugins[i])
    }

    pub fn is_empty(&self) -> bool {
        self.state.config.locations[self.location]
            .plugins
            .is_empty()
    }
}

impl Ctx {
    /// The plugin chain of the matched location (`None` before routing or without a match).
    pub fn chain(&self) -> Option<Chain> {
        self.route.as_ref().map(|r| Chain {
            state: self.state.clone(),
            location: r.location,
        })
    }
}
