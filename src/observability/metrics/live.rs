//! Values read from the live config at scrape time rather than counted: each peer's health
//! and circuit, and each shared dict's keys and bytes. A collector over the live state, made
//! fresh for each scrape (so a removed upstream or dict disappears with its config).

use crate::state::Live;
use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{IntGaugeVec, Opts};

pub struct LiveCollector {
    live: Live,
    descs: Vec<Desc>,
}

fn vec(name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    // constant names and labels (checked by the unit test)
    IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric")
}

fn all() -> [IntGaugeVec; 4] {
    [
        vec(
            "tidegate_upstream_peer_up",
            "1 when the peer's active health check passes (or it has none).",
            &["upstream", "peer"],
        ),
        vec(
            "tidegate_upstream_peer_circuit_open",
            "1 while passive failures hold the peer out.",
            &["upstream", "peer"],
        ),
        vec(
            "tidegate_lua_shared_dict_keys",
            "Keys a shared dict holds.",
            &["dict"],
        ),
        vec(
            "tidegate_lua_shared_dict_bytes",
            "Bytes a shared dict holds (keys and values).",
            &["dict"],
        ),
    ]
}

impl LiveCollector {
    pub fn new(live: Live) -> LiveCollector {
        let descs = all()
            .iter()
            .flat_map(|v| v.desc().into_iter().cloned())
            .collect();
        LiveCollector { live, descs }
    }
}

impl Collector for LiveCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let state = self.live.load();
        let [up, open, keys, bytes] = all();
        for u in &state.upstreams {
            for p in u.peers().iter() {
                let peer = p.addr.to_string();
                up.with_label_values(&[u.name.as_str(), &peer])
                    .set(i64::from(p.is_healthy()));
                open.with_label_values(&[u.name.as_str(), &peer])
                    .set(i64::from(p.circuit_open()));
            }
        }
        for (name, (dict, _)) in state.config.lua.shared.0.iter() {
            let (k, b) = dict.usage();
            keys.with_label_values(&[name.as_str()]).set(k as i64);
            bytes.with_label_values(&[name.as_str()]).set(b as i64);
        }
        [up, open, keys, bytes]
            .iter()
            .flat_map(|v| v.collect())
            .collect()
    }
}

/// Register the live collector once, at start.
pub fn register(live: Live) {
    static DONE: std::sync::Once = std::sync::Once::new();
    DONE.call_once(|| {
        let f = super::families();
        f.version.set(live.load().version as i64);
        if let Err(e) = f.registry.register(Box::new(LiveCollector::new(live))) {
            tracing::warn!("metrics: cannot register the live collector: {e}");
        }
    });
}
