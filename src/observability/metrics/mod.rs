//! Prometheus metrics: counted on the request path with atomics on pre-resolved handles (no
//! lock, no allocation per request), exposed on a server's path or pushed to a Pushgateway.
//!
//! ```toml
//! [servers.web]
//! metrics = "/metrics"           # pull: this server answers GET /metrics with the exposition
//! # metrics = "http://127.0.0.1:9091/metrics/job/tidegate?interval=10s"   # push instead
//!
//! [basic]
//! metrics_buckets = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]   # seconds
//! ```
//!
//! With no server's `metrics` set nothing is counted (the request path skips it all).
//!
//! ```text
//! families.rs  every metric family, registered once per process
//! handles.rs   per server and location: the handles a request updates
//! live.rs      read at scrape time from the live config: peers, circuits, version, dicts
//! endpoint.rs  the pull path
//! push.rs      the Pushgateway
//! ```

pub mod endpoint;
pub mod families;
pub mod handles;
pub mod live;
pub mod push;

pub use families::families;
pub use handles::{LocationMetrics, ServerMetrics};

/// The exposition of every registered family, in Prometheus's text format.
pub fn encode() -> String {
    use prometheus::Encoder;
    let mut out = Vec::with_capacity(16 << 10);
    let mf = families().registry.gather();
    if let Err(e) = prometheus::TextEncoder::new().encode(&mf, &mut out) {
        tracing::warn!("metrics: cannot encode: {e}");
    }
    String::from_utf8(out).unwrap_or_default()
}

/// Where a server's `metrics` sends them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetricsTarget {
    /// `metrics = "/metrics"`: answer GET on this path
    Pull(String),
    /// `metrics = "http://HOST:PORT/metrics/job/NAME?interval=10s&instance=NAME"`
    Push(push::PushTarget),
}

impl MetricsTarget {
    pub fn parse(s: &str) -> Result<MetricsTarget, String> {
        if s.starts_with('/') {
            if s.contains(['?', '#', ' ']) {
                return Err(format!("`{s}`: a pull path has no query or spaces"));
            }
            return Ok(MetricsTarget::Pull(s.to_string()));
        }
        if s.starts_with("http://") || s.starts_with("https://") {
            return push::PushTarget::parse(s).map(MetricsTarget::Push);
        }
        Err(format!(
            "`{s}`: a path to serve (\"/metrics\") or a Pushgateway URL (\"http://HOST:9091/metrics/job/tidegate\")"
        ))
    }
}
