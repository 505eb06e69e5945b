//! The handles a request updates, resolved once per config version so that counting is a few
//! atomic operations: a label lookup (a hash and a lock in the prometheus crate) happens the
//! first time a (method, code) pair is seen on a location, never again.

use super::families::families;
use prometheus::{Histogram, IntCounter, IntGauge};
use std::sync::{Arc, OnceLock};

/// Methods with their own label value; the rest are `other`.
const METHODS: [&str; 8] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "other",
];

/// Codes with a handle slot; another code goes through the label lookup each time.
const CODES: [u16; 25] = [
    200, 201, 204, 206, 301, 302, 304, 307, 308, 400, 401, 403, 404, 405, 408, 409, 413, 414, 429,
    431, 499, 500, 502, 503, 504,
];

fn method_slot(m: &http::Method) -> usize {
    match *m {
        http::Method::GET => 0,
        http::Method::HEAD => 1,
        http::Method::POST => 2,
        http::Method::PUT => 3,
        http::Method::DELETE => 4,
        http::Method::PATCH => 5,
        http::Method::OPTIONS => 6,
        _ => 7,
    }
}

fn code_slot(code: u16) -> Option<usize> {
    CODES.iter().position(|c| *c == code)
}

/// One location of one server (or "no location", `-`).
pub struct LocationMetrics {
    server: String,
    location: String,
    duration: Histogram,
    requests: Vec<OnceLock<IntCounter>>,
}

impl std::fmt::Debug for LocationMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LocationMetrics({}/{})", self.server, self.location)
    }
}

impl LocationMetrics {
    fn new(server: &str, location: &str) -> LocationMetrics {
        LocationMetrics {
            server: server.to_string(),
            location: location.to_string(),
            duration: families()
                .request_duration
                .with_label_values(&[server, location]),
            requests: (0..METHODS.len() * CODES.len())
                .map(|_| OnceLock::new())
                .collect(),
        }
    }

    /// Count an answered request.
    pub fn record(&self, method: &http::Method, code: u16, seconds: f64) {
        self.duration.observe(seconds);
        let m = method_slot(method);
        match code_slot(code) {
            Some(c) => self.requests[m * CODES.len() + c]
                .get_or_init(|| self.counter(METHODS[m], code))
                .inc(),
            None => self.counter(METHODS[m], code).inc(),
        }
    }

    fn counter(&self, method: &str, code: u16) -> IntCounter {
        families().requests.with_label_values(&[
            self.server.as_str(),
            self.location.as_str(),
            method,
            itoa::Buffer::new().format(code),
        ])
    }
}

/// One server's handles, for one config version.
#[derive(Debug)]
pub struct ServerMetrics {
    pub in_flight: IntGauge,
    pub connections: IntGauge,
    pub body_in: IntCounter,
    pub body_out: IntCounter,
    /// by location index in the config (`None`: not a location of this server)
    by_location: Vec<Option<Arc<LocationMetrics>>>,
    unrouted: Arc<LocationMetrics>,
}

impl ServerMetrics {
    /// Handles for `server` and its `locations` (indices into `names`, the config's
    /// location names).
    pub fn new(server: &str, locations: &[usize], names: &[&str]) -> ServerMetrics {
        let f = families();
        let mut by_location = vec![None; names.len()];
        for &i in locations {
            if let Some(name) = names.get(i) {
                by_location[i] = Some(Arc::new(LocationMetrics::new(server, name)));
            }
        }
        ServerMetrics {
            in_flight: f.in_flight.with_label_values(&[server]),
            connections: f.connections.with_label_values(&[server]),
            body_in: f.body_in.with_label_values(&[server]),
            body_out: f.body_out.with_label_values(&[server]),
            by_location,
            unrouted: Arc::new(LocationMetrics::new(server, "-")),
        }
    }

    /// The handles of location `i` (`None`: the request matched no location).
    pub fn location(&self, i: Option<usize>) -> &LocationMetrics {
        i.and_then(|i| self.by_location.get(i))
            .and_then(|l| l.as_deref())
            .unwrap_or(&self.unrouted)
    }
}

/// A request counted in `in_flight` until dropped.
#[derive(Debug)]
pub struct InFlight(IntGauge);

impl InFlight {
    pub fn start(g: &IntGauge) -> InFlight {
        g.inc();
        InFlight(g.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// What went wrong with an upstream try, as the `kind` label says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    Refused,
    Timeout,
    Reset,
    Tls,
    Other,
}

const KINDS: [&str; 5] = ["refused", "timeout", "reset", "tls", "other"];

/// One upstream's handles (with metrics on).
#[derive(Debug)]
pub struct UpstreamMetrics {
    pub response: Histogram,
    pub connect: Histogram,
    pub retries: IntCounter,
    failures: [IntCounter; 5],
}

impl UpstreamMetrics {
    pub fn new(upstream: &str) -> UpstreamMetrics {
        let f = families();
        UpstreamMetrics {
            response: f.upstream_duration.with_label_values(&[upstream]),
            connect: f.upstream_connect.with_label_values(&[upstream]),
            retries: f.upstream_retries.with_label_values(&[upstream]),
            failures: KINDS.map(|k| f.upstream_failures.with_label_values(&[upstream, k])),
        }
    }

    pub fn failed(&self, kind: FailureKind) {
        self.failures[kind as usize].inc();
    }
}

/// Lua hook names, in the order of `scripting::api::Phase`.
const HOOKS: [&str; 5] = [
    "on_request",
    "on_upstream",
    "on_response",
    "on_body",
    "on_log",
];
const LUA_ERRORS: [&str; 4] = ["runtime", "budget", "memory", "bad_return"];

/// One Lua plugin's handles, per hook.
#[derive(Debug)]
pub struct LuaMetrics {
    calls: [IntCounter; 5],
    duration: [Histogram; 5],
    errors: [[IntCounter; 4]; 5],
}

impl LuaMetrics {
    pub fn new(plugin: &str) -> LuaMetrics {
        let f = families();
        LuaMetrics {
            calls: HOOKS.map(|h| f.lua_calls.with_label_values(&[plugin, h])),
            duration: HOOKS.map(|h| f.lua_duration.with_label_values(&[plugin, h])),
            errors: HOOKS
                .map(|h| LUA_ERRORS.map(|k| f.lua_errors.with_label_values(&[plugin, h, k]))),
        }
    }

    /// A call of hook number `hook` (its `Phase` order) that took `seconds`; `error`: the
    /// message it failed with.
    pub fn call(&self, hook: usize, seconds: f64, error: Option<&str>) {
        let h = hook.min(HOOKS.len() - 1);
        self.calls[h].inc();
        self.duration[h].observe(seconds);
        if let Some(m) = error {
            let kind = if m.contains("time budget exceeded") {
                1
            } else if m.contains("memory limit exceeded") || m.contains("not enough memory") {
                2
            } else if m.contains("returned a value") || m.contains("must return") {
                3
            } else {
                0
            };
            self.errors[h][kind].inc();
        }
    }
}
