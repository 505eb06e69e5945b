//! Every metric family, by Prometheus convention: `tidegate_` prefix, base units (`_seconds`,
//! `_bytes`), `_total` for counters, bounded labels (never a path or a client address).
//!
//! | family | labels | meaning |
//! | --- | --- | --- |
//! | `tidegate_requests_total` | server, location, method, code | answered requests |
//! | `tidegate_request_duration_seconds` | server, location | from the request head to the log |
//! | `tidegate_requests_in_flight` | server | requests started and not yet logged |
//! | `tidegate_connections_open` | server | client connections open |
//! | `tidegate_request_body_bytes_total` | server | request body bytes read |
//! | `tidegate_response_body_bytes_total` | server | response body bytes sent |
//! | `tidegate_upstream_response_duration_seconds` | upstream | from the request sent to the response head |
//! | `tidegate_upstream_connect_duration_seconds` | upstream | TCP (and TLS) connect to a peer |
//! | `tidegate_upstream_retries_total` | upstream | tries after the first |
//! | `tidegate_upstream_failures_total` | upstream, kind | refused, timeout, reset, tls, other |
//! | `tidegate_upstream_peer_up` | upstream, peer | 1 healthy, 0 not (active checks) |
//! | `tidegate_upstream_peer_circuit_open` | upstream, peer | 1 while passive failures hold it out |
//! | `tidegate_config_reloads_total` | result | applied, rejected |
//! | `tidegate_config_last_reload_success_timestamp_seconds` | | Unix time of the last applied config |
//! | `tidegate_config_version` | | the version serving (1 at start) |
//! | `tidegate_lua_hook_calls_total` | plugin, hook | hook calls |
//! | `tidegate_lua_hook_errors_total` | plugin, hook, kind | runtime, budget, memory, bad_return |
//! | `tidegate_lua_hook_duration_seconds` | plugin, hook | one call (a waiting hook: until it ends) |
//! | `tidegate_plugin_answers_total` | plugin, code | requests a plugin answered itself (a limit's 429, an auth plugin's 401, a mock) |
//! | `tidegate_lua_shared_dict_keys`, `..._bytes` | dict | what each shared dict holds |
//! | `tidegate_build_info` | version, git | 1 |
//! | `process_*` | | CPU seconds, resident memory, open fds, start time (the prometheus crate's) |

use prometheus::{
    HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
};
use std::sync::OnceLock;

/// Default request-duration buckets, in seconds.
pub const DEFAULT_BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

pub struct Families {
    pub registry: Registry,
    pub requests: IntCounterVec,
    pub request_duration: HistogramVec,
    pub in_flight: IntGaugeVec,
    pub connections: IntGaugeVec,
    pub body_in: IntCounterVec,
    pub body_out: IntCounterVec,
    pub upstream_duration: HistogramVec,
    pub upstream_connect: HistogramVec,
    pub upstream_retries: IntCounterVec,
    pub upstream_failures: IntCounterVec,
    pub reloads: IntCounterVec,
    pub last_reload: IntGauge,
    pub version: IntGauge,
    pub lua_calls: IntCounterVec,
    pub lua_errors: IntCounterVec,
    pub lua_duration: HistogramVec,
    pub plugin_answers: IntCounterVec,
}

static BUCKETS: OnceLock<Vec<f64>> = OnceLock::new();

/// Set the duration buckets before the families are first made (at start; later calls do
/// nothing: a histogram's buckets cannot change while it is exposed).
pub fn set_buckets(b: Vec<f64>) {
    let _ = BUCKETS.set(b);
}

fn counter(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let v = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
    r.register(Box::new(v.clone())).expect("registered once");
    v
}

fn gauge(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    let v = IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric");
    r.register(Box::new(v.clone())).expect("registered once");
    v
}

fn histogram(r: &Registry, name: &str, help: &str, labels: &[&str], b: &[f64]) -> HistogramVec {
    // the buckets come from the config, which checked them; the defaults if they fail anyway
    let opts = |b: &[f64]| HistogramOpts::new(name, help).buckets(b.to_vec());
    let v = HistogramVec::new(opts(b), labels)
        .or_else(|_| HistogramVec::new(opts(DEFAULT_BUCKETS), labels))
        .expect("valid metric");
    r.register(Box::new(v.clone())).expect("registered once");
    v
}

fn single(r: &Registry, name: &str, help: &str) -> IntGauge {
    let g = IntGauge::new(name, help).expect("valid metric");
    r.register(Box::new(g.clone())).expect("registered once");
    g
}

/// The families of the process, made and registered on first use.
pub fn families() -> &'static Families {
    static F: OnceLock<Families> = OnceLock::new();
    F.get_or_init(make)
}

// The names, labels and buckets below are constants checked by the unit test; the
// `expect`s cannot fail at run time (and run once, at start, not on the request path).
fn make() -> Families {
    let r = Registry::new();
    let b = BUCKETS.get_or_init(|| DEFAULT_BUCKETS.to_vec()).clone();
    let sl = &["server", "location"];
    let f = Families {
        requests: counter(
            &r,
            "tidegate_requests_total",
            "Requests answered.",
            &["server", "location", "method", "code"],
        ),
        request_duration: histogram(
            &r,
            "tidegate_request_duration_seconds",
            "Time from the request head to the log phase.",
            sl,
            &b,
        ),
        in_flight: gauge(
            &r,
            "tidegate_requests_in_flight",
            "Requests started and not yet logged.",
            &["server"],
        ),
        connections: gauge(
            &r,
            "tidegate_connections_open",
            "Client connections open.",
            &["server"],
        ),
        body_in: counter(
            &r,
            "tidegate_request_body_bytes_total",
            "Request body bytes read.",
            &["server"],
        ),
        body_out: counter(
            &r,
            "tidegate_response_body_bytes_total",
            "Response body bytes sent.",
            &["server"],
        ),
        upstream_duration: histogram(
            &r,
            "tidegate_upstream_response_duration_seconds",
            "Time from sending the request upstream to its response head.",
            &["upstream"],
            &b,
        ),
        upstream_connect: histogram(
            &r,
            "tidegate_upstream_connect_duration_seconds",
            "Time to connect to a peer (TCP and TLS).",
            &["upstream"],
            &b,
        ),
        upstream_retries: counter(
            &r,
            "tidegate_upstream_retries_total",
            "Tries after the first.",
            &["upstream"],
        ),
        upstream_failures: counter(
            &r,
            "tidegate_upstream_failures_total",
            "Failed tries, by kind.",
            &["upstream", "kind"],
        ),
        reloads: counter(
            &r,
            "tidegate_config_reloads_total",
            "Config reloads, by result.",
            &["result"],
        ),
        last_reload: single(
            &r,
            "tidegate_config_last_reload_success_timestamp_seconds",
            "Unix time of the last config applied.",
        ),
        version: single(
            &r,
            "tidegate_config_version",
            "The config version serving (1 at start).",
        ),
        lua_calls: counter(
            &r,
            "tidegate_lua_hook_calls_total",
            "Lua hook calls.",
            &["plugin", "hook"],
        ),
        lua_errors: counter(
            &r,
            "tidegate_lua_hook_errors_total",
            "Lua hook errors, by kind.",
            &["plugin", "hook", "kind"],
        ),
        lua_duration: histogram(
            &r,
            "tidegate_lua_hook_duration_seconds",
            "One Lua hook call.",
            &["plugin", "hook"],
            &b,
        ),
        plugin_answers: counter(
            &r,
            "tidegate_plugin_answers_total",
            "Requests a plugin answered itself (refusals, early answers), by status.",
            &["plugin", "code"],
        ),
        registry: r,
    };
    // both results exist from the start, so a rate over them is defined before any reload
    for r in ["applied", "rejected"] {
        f.reloads.with_label_values(&[r]);
    }
    let build = gauge(
        &f.registry,
        "tidegate_build_info",
        "The running build.",
        &["version", "git"],
    );
    build
        .with_label_values(&[
            env!("CARGO_PKG_VERSION"),
            option_env!("TIDEGATE_GIT").unwrap_or("unknown"),
        ])
        .set(1);
    let process = prometheus::process_collector::ProcessCollector::for_self();
    let _ = f.registry.register(Box::new(process));
    f
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_family_registers() {
        let text = super::super::encode();
        assert!(text.contains("tidegate_build_info"), "{text}");
        assert!(text.contains("process_start_time_seconds"), "{text}");
    }
}
