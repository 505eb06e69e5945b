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
    let mut upstreams: Map<String, Value> = Map::new();
    for u in &state.upstreams {
        let peers: Vec<Value> = u
            .peers
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
        "upstreams": upstreams,
    })
}

#[async_trait]
impl Plugin for Stats {
    async fn on_request(
        &self,
        session: &mut dyn Downstream,
        ctx: &mut Ctx,
    ) -> Result<Flow, PluginError> {
        if session.req().uri.path() != self.path {
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
