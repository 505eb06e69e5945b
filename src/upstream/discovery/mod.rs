//! Discovery: where an upstream's peers come from, and the tasks that keep them current.
//!
//! ```toml
//! [basic]
//! resolver = "127.0.0.1:53"                  # DNS server for discovery (default: /etc/resolv.conf)
//! docker_host = "unix:///var/run/docker.sock" # the Docker engine (this is the default)
//!
//! [upstreams.api]                 # static (the default): the addresses as written
//! addrs = ["10.0.0.1:8080", "10.0.0.2:8080 2"]
//!
//! [upstreams.users]               # DNS: A/AAAA of each name, or SRV of _service._proto.name
//! discovery = "dns"
//! addrs = ["users.internal:8080 2", "_http._tcp.users.internal"]
//! dns_min_ttl = "1s"              # re-resolve no sooner than this ...
//! dns_max_ttl = "5m"              # ... and no later than this, whatever the records' TTL
//!
//! [upstreams.web]                 # Docker: running containers labelled tidegate.upstream=web
//! discovery = "docker"
//! docker_network = "bridge"       # whose address on which network ("host": 127.0.0.1)
//! ```
//!
//! Each discovered upstream gets one task (started with the health checks, ended when a
//! reload drops the upstream). A new peer list replaces the old one in place
//! ([`Upstream::replace_peers`]): peers that stay keep their health, circuit and in-flight
//! count; a new peer is probed once first when the upstream has a health check; a removed
//! peer finishes the requests it is serving. When the source fails (the resolver does not
//! answer, the Docker engine is gone) the last good list stays, and the outage is logged
//! once, and its end once.

pub mod dns;
pub mod docker;

use super::Upstream;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// `[upstreams.NAME] discovery`, with what its task needs.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Discovery {
    /// the addresses as written (host names resolved once, at load)
    #[default]
    Static,
    Dns(dns::DnsConf),
    Docker(docker::DockerConf),
}

impl Discovery {
    /// The `discovery` key's value.
    pub fn kind(&self) -> &'static str {
        match self {
            Discovery::Static => "static",
            Discovery::Dns(_) => "dns",
            Discovery::Docker(_) => "docker",
        }
    }
}

/// Start discovery for every upstream that has it (once per upstream; each task ends when
/// its upstream is dropped).
pub fn spawn_all(upstreams: &[Arc<Upstream>]) {
    for up in upstreams {
        match &up.conf.discovery {
            Discovery::Static => {}
            Discovery::Dns(conf) => {
                if up.mark_discovering() {
                    tokio::spawn(dns::run(Arc::downgrade(up), conf.clone()));
                }
            }
            Discovery::Docker(conf) => {
                if up.mark_discovering() {
                    tokio::spawn(docker::run(Arc::downgrade(up), conf.clone()));
                }
            }
        }
    }
}

/// Publish what discovery found, when it differs from the peers now: new peers are probed
/// first when the upstream has a health check.
pub async fn apply(up: &Upstream, mut found: Vec<(SocketAddr, u32)>) {
    found.sort();
    found.dedup_by_key(|(a, _)| *a);
    let same = {
        let now = up.peers();
        now.len() == found.len()
            && found
                .iter()
                .all(|(a, w)| now.find(*a).is_some_and(|p| p.weight == *w))
    };
    if same {
        return;
    }
    let mut verdicts: HashMap<SocketAddr, bool> = HashMap::new();
    if let Some(hc) = &up.health {
        let fresh = found
            .iter()
            .filter(|(a, _)| up.peers().find(*a).is_none())
            .map(|(a, w)| super::Peer::new(&up.conf, *a, *w, true))
            .collect::<Vec<_>>();
        let checks = fresh
            .iter()
            .map(|p| super::health::probe_new(up, p, hc))
            .collect::<Vec<_>>();
        let results = futures::future::join_all(checks).await;
        verdicts.extend(fresh.iter().map(|p| p.addr).zip(results));
    }
    let change = up.replace_peers(&found, |a| verdicts.get(&a).copied().unwrap_or(true));
    tracing::info!(
        upstream = %up.name,
        peers = ?found.iter().map(|(a, _)| a.to_string()).collect::<Vec<_>>(),
        added = ?change.added,
        removed = ?change.removed,
        "discovery: peers changed"
    );
}

/// Logs an outage of a discovery source once, and its end once.
#[derive(Debug, Default)]
pub struct Outage {
    down: bool,
}

impl Outage {
    pub fn failed(&mut self, upstream: &str, what: &str, err: &dyn std::fmt::Display) {
        if !self.down {
            self.down = true;
            tracing::warn!(
                upstream,
                "discovery: {what} failed ({err}); keeping the last peers"
            );
        }
    }
    pub fn ok(&mut self, upstream: &str, what: &str) {
        if self.down {
            self.down = false;
            tracing::info!(upstream, "discovery: {what} answers again");
        }
    }
}

/// Clamp a TTL between the configured bounds.
pub fn clamp(ttl: Duration, min: Duration, max: Duration) -> Duration {
    ttl.max(min).min(max.max(min))
}
