//! `stats`: a JSON page of the process's live numbers, for a quick look without Prometheus.
//!
//! ```toml
//! [plugins.stats]
//! category = "stats"
//! path = "/stats"        # default; other paths go on down the chain
//! ```
//!
//! ```json
//! {"version":"0.1.0","uptime_seconds":3600,"config_version":3,
//!  "requests":{"total":1200,"1xx":0,"2xx":1180,"3xx":4,"4xx":15,"5xx":1},
//!  "servers":{"main":{"in_flight":2,"connections_open":5}},
//!  "locations":{"main/api":{"requests":1100,"mean_ms":4.1,"p50_ms":2.5,"p90_ms":8.6,"p99_ms":24.0}},
//!  "upstreams":{"app":[{"peer":"10.0.0.5:8080","up":true,"circuit_open":false}]}}
//! ```
//!
//! The numbers are the Prometheus metrics' own counters (`observability/metrics`): a config
//! with a `stats` plugin counts them even when no server exposes `/metrics`. Put it on a
//! location only operators reach (with `ip_restriction`, say).

use super::{Answer, Flow, Plugin, PluginError};
use crate::proxy::ctx::Ctx;
use crate::proxy::exchange::Downstream;
use async_trait::async_trait;
use serde::Deserialize;
use serde_json::{json, Map, Value};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatsConf {
    pub path: Option<String>,
}

#[derive(Debug)]
pub struct Stats {
    path: String,
}

impl Stats {
    pub fn new(c: StatsConf) -> Result<Stats, super::PluginConfError> {
        let path = c.path.unwrap_or_else(|| "/stats".into());
        if !path.starts_with('/') {
            return Err(super::PluginConfError::at("path", "a path starts with `/`"));
        }
        Ok(Stats { path })
    }
}

/// When the process started (first asked at start-up by `server::run`).
pub fn started() -> std::time::Instant {
    static AT: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    *AT.get_or_init(std::time::Instant::now)
}

fn label<'a>(m: &'a prometheus::proto::Metric, name: &str) -> &'a str {
    m.get_label()
        .iter()
        .find(|l| l.name() == name)
        .map(|l| l.value())
        .unwrap_or("")
}

/// The document, from the metric families and a config's state.
pub fn document(state: &crate::state::State) -> Value {
    let families = crate::observability::metrics::families().registry.gather();
    let mut classes = [0u64; 5];
    let mut servers: Map<String, Value> = Map::new();
    for s in &state.config.servers {
        servers.insert(
            s.name.clone(),
            json!({"in_flight": 0, "connections_open": 0}),
        );
    }
    for f in &families {
        for m in f.get_metric() {
            match f.name() {
                "tidegate_requests_total" => {
                    let class = label(m, "code").bytes().next().unwrap_or(b'0');
                    if (b'1'..=b'5').contains(&class) {
                        classes[usize::from(class - b'1')] += m.get_counter().value() as u64;
                    }
                }
                "tidegate_requests_in_flight" | "tidegate_connections_open" => {
                    let key = if f.name() == "tidegate_requests_in_flight" {
                        "in_flight"
                    } else {
                        "connections_open"
                    };
                    if let Some(Value::Object(o)) = servers.get_mut(label(m, "server")) {
                        o.insert(key.into(), json!(m.get_gauge().value() as i64));
                    }
                }
                _ => {}
            }
        }
    }
    let locations = latency_by_location(&families);
    let mut upstreams: Map<String, Value> = Map::new();
    for u in &state.upstreams {
        let peers: Vec<Value> = u
            .peers()
            .iter()
            .map(|p| {
                json!({"peer": p.addr.to_string(), "up": p.is_healthy(), "circuit_open": p.circuit_open()})
            })
            .collect();
        upstreams.insert(u.name.clone(), Value::Array(peers));
    }
    json!({
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_seconds": started().elapsed().as_secs(),
        "config_version": state.version,
        "requests": {
            "total": classes.iter().sum::<u64>(),
            "1xx": classes[0], "2xx": classes[1], "3xx": classes[2], "4xx": classes[3], "5xx": classes[4],
        },
        "servers": servers,
        "locations": locations,
        "upstreams": upstreams,
    })
}

/// Per location (`server/location`): requests and latency percentiles since start, read off
/// the request-duration histogram (interpolated within the bucket the rank falls in).
fn latency_by_location(families: &[prometheus::proto::MetricFamily]) -> Value {
    let mut out = Map::new();
    let Some(f) = families
        .iter()
        .find(|f| f.name() == "tidegate_request_duration_seconds")
    else {
        return Value::Object(out);
    };
    for m in f.get_metric() {
        let h = m.get_histogram();
        let count = h.get_sample_count();
        if count == 0 {
            continue;
        }
        let buckets: Vec<(f64, u64)> = h
            .get_bucket()
            .iter()
            .map(|b| (b.upper_bound(), b.cumulative_count()))
            .collect();
        let q = |p: f64| quantile(&buckets, count, p).map(|s| (s * 1000.0 * 100.0).round() / 100.0);
        let key = format!("{}/{}", label(m, "server"), label(m, "location"));
        out.insert(
            key,
            json!({
                "requests": count,
                "mean_ms": (h.get_sample_sum() / count as f64 * 1000.0 * 100.0).round() / 100.0,
                "p50_ms": q(0.5), "p90_ms": q(0.9), "p99_ms": q(0.99),
            }),
        );
    }
    Value::Object(out)
}

/// The `p` quantile of a cumulative histogram (`(upper bound, count)` ascending) of `count`
/// samples; `None` when it falls past the last finite bound.
fn quantile(buckets: &[(f64, u64)], count: u64, p: f64) -> Option<f64> {
    let rank = (p * count as f64).ceil().max(1.0) as u64;
    let mut lower = (0.0, 0u64);
    for &(bound, cum) in buckets {
        if cum >= rank {
            if !bound.is_finite() {
                return None;
            }
            let in_bucket = (cum - lower.1).max(1) as f64;
            let frac = (rank - lower.1) as f64 / in_bucket;
            return Some(lower.0 + (bound - lower.0) * frac);
        }
        lower = (bound, cum);
    }
    None
}

#[async_trait]
impl Plugin for Stats {
    async fn on_request(
        &self,
        session: &mut dyn Downstream,
        ctx: &mut Ctx,
    ) -> Result<Flow, PluginError> {
        if session.uri().path() != self.path {
            return Ok(Flow::Continue);
        }
        let body = serde_json::to_vec(&document(&ctx.state)).unwrap_or_default();
        Ok(Flow::Respond(Answer {
            status: 200,
            headers: vec![
                (
                    http::header::CONTENT_TYPE,
                    http::HeaderValue::from_static("application/json"),
                ),
                (
                    http::header::CACHE_CONTROL,
                    http::HeaderValue::from_static("no-store"),
                ),
            ],
            body: body.into(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::quantile;

    #[test]
    fn quantiles_interpolate_within_buckets() {
        // 10 samples: 5 under 10 ms, 4 under 100 ms, 1 under 1 s
        let b = [(0.01, 5), (0.1, 9), (1.0, 10), (f64::INFINITY, 10)];
        assert_eq!(quantile(&b, 10, 0.5), Some(0.01));
        let p90 = quantile(&b, 10, 0.9).unwrap();
        assert!((p90 - 0.1).abs() < 1e-9, "{p90}");
        assert_eq!(quantile(&b, 10, 0.99), Some(1.0));
        let over = [(0.01, 0), (f64::INFINITY, 3)];
        assert_eq!(quantile(&over, 3, 0.5), None);
    }
}
