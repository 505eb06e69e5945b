//! Docker discovery: an upstream's peers are the running containers labelled with its name.
//!
//! ```toml
//! [basic]
//! docker_host = "unix:///var/run/docker.sock"   # the default
//!
//! [upstreams.web]
//! discovery = "docker"
//! docker_network = "bridge"     # the container's address on this network; "host": 127.0.0.1
//! ```
//!
//! ```sh
//! docker run -d --label tidegate.upstream=web --label tidegate.port=8080 \
//!   --label tidegate.weight=2 my-web
//! ```
//!
//! A container is a peer while it runs and its Docker health status (when its image has a
//! HEALTHCHECK) is not `starting` or `unhealthy`. Its port is `tidegate.port`, else its one
//! exposed port; its weight `tidegate.weight` (1..=1000, default 1). tidegate follows the
//! engine's event stream and lists the containers again on each event of a labelled
//! container (start, die, stop, pause, health status), so a change shows within a second;
//! when the stream breaks, it reconnects and lists everything again.

use super::{apply, Outage};
use crate::upstream::Upstream;
use bollard::models::{ContainerSummary, ContainerSummaryHealthStatusEnum};
use bollard::query_parameters::{EventsOptions, ListContainersOptions};
use bollard::Docker;
use futures::StreamExt;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Weak;
use std::time::Duration;

/// The label that names a container's upstream.
pub const LABEL: &str = "tidegate.upstream";

/// What a Docker-discovered upstream's task needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DockerConf {
    /// `[basic] docker_host`: `unix:///path` or `tcp://host:port`
    pub host: String,
    /// `docker_network`
    pub network: String,
}

/// The socket path of a `unix://` host (what `check` makes sure exists).
pub fn socket_path(host: &str) -> Option<&str> {
    host.strip_prefix("unix://")
}

fn connect(host: &str) -> Result<Docker, bollard::errors::Error> {
    match socket_path(host) {
        Some(path) => Docker::connect_with_unix(path, 10, bollard::API_DEFAULT_VERSION),
        None => Docker::connect_with_http(
            &host.replacen("tcp://", "http://", 1),
            10,
            bollard::API_DEFAULT_VERSION,
        ),
    }
}

/// The peer a container is, if it is one now; a reason when it is labelled but cannot be.
fn peer_of(c: &ContainerSummary, network: &str) -> Result<Option<(SocketAddr, u32)>, String> {
    let name = c
        .names
        .as_ref()
        .and_then(|n| n.first().cloned())
        .unwrap_or_default();
    let health = c.health.as_ref().and_then(|h| h.status);
    let status = c.status.as_deref().unwrap_or("");
    let not_ready = matches!(
        health,
        Some(ContainerSummaryHealthStatusEnum::STARTING)
            | Some(ContainerSummaryHealthStatusEnum::UNHEALTHY)
    ) || status.contains("(unhealthy)")
        || status.contains("(health: starting)");
    if not_ready {
        return Ok(None);
    }
    let labels = c.labels.clone().unwrap_or_default();
    let port = match labels.get("tidegate.port") {
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| format!("container {name}: tidegate.port `{p}` is not a port"))?,
        None => {
            let mut exposed = c
                .ports
                .iter()
                .flatten()
                .map(|p| p.private_port)
                .collect::<Vec<_>>();
            exposed.sort_unstable();
            exposed.dedup();
            match exposed[..] {
                [one] => one,
                _ => {
                    return Err(format!(
                        "container {name}: no tidegate.port label and not exactly one exposed port"
                    ))
                }
            }
        }
    };
    let weight = match labels.get("tidegate.weight") {
        Some(w) => w
            .parse::<u32>()
            .ok()
            .filter(|w| (1..=1000).contains(w))
            .ok_or_else(|| format!("container {name}: tidegate.weight `{w}` is not 1..=1000"))?,
        None => 1,
    };
    let ip: IpAddr = if network == "host" {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    } else {
        let nets = c
            .network_settings
            .as_ref()
            .and_then(|n| n.networks.as_ref());
        let ip = nets
            .and_then(|n| n.get(network))
            .and_then(|e| e.ip_address.as_deref())
            .filter(|s| !s.is_empty())
            .ok_or_else(|| format!("container {name}: not on network `{network}`"))?;
        ip.parse()
            .map_err(|_| format!("container {name}: address `{ip}` on `{network}`"))?
    };
    Ok(Some((SocketAddr::new(ip, port), weight)))
}

/// The running containers of `upstream`, as peers.
async fn list(
    docker: &Docker,
    upstream: &str,
    network: &str,
) -> Result<Vec<(SocketAddr, u32)>, bollard::errors::Error> {
    let filters = HashMap::from([
        ("label".to_string(), vec![format!("{LABEL}={upstream}")]),
        ("status".to_string(), vec!["running".to_string()]),
    ]);
    let found = docker
        .list_containers(Some(ListContainersOptions {
            filters: Some(filters),
            ..Default::default()
        }))
        .await?;
    let mut peers = Vec::new();
    for c in &found {
        match peer_of(c, network) {
            Ok(Some(p)) => peers.push(p),
            Ok(None) => {}
            Err(why) => tracing::warn!(upstream, "discovery: {why}; not a peer"),
        }
    }
    Ok(peers)
}

/// Keep `upstream`'s peers the running containers labelled with its name, until the
/// upstream is dropped.
pub async fn run(upstream: Weak<Upstream>, conf: DockerConf) {
    let mut outage = Outage::default();
    loop {
        let Some(up) = upstream.upgrade() else { return };
        let name = up.name.clone();
        drop(up);
        if let Err(e) = follow(&upstream, &name, &conf, &mut outage).await {
            outage.failed(&name, "the Docker engine", &e);
        }
        if let Some(up) = upstream.upgrade() {
            up.first_round_over();
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// One connection to the engine: list, then list again on every event of a labelled
/// container, until the event stream ends or the upstream is dropped.
async fn follow(
    upstream: &Weak<Upstream>,
    name: &str,
    conf: &DockerConf,
    outage: &mut Outage,
) -> Result<(), bollard::errors::Error> {
    let docker = connect(&conf.host)?.negotiate_version().await?;
    let filters = HashMap::from([
        ("type".to_string(), vec!["container".to_string()]),
        ("label".to_string(), vec![format!("{LABEL}={name}")]),
    ]);
    let mut events = docker.events(Some(EventsOptions {
        filters: Some(filters),
        ..Default::default()
    }));
    let mut dirty = true;
    loop {
        if dirty {
            let peers = list(&docker, name, &conf.network).await?;
            outage.ok(name, "the Docker engine");
            let Some(up) = upstream.upgrade() else {
                return Ok(());
            };
            apply(&up, peers).await;
            up.first_round_over();
            dirty = false;
        }
        // wake at least every second to notice a dropped upstream
        match tokio::time::timeout(Duration::from_secs(1), events.next()).await {
            Ok(Some(Ok(ev))) => {
                tracing::debug!(upstream = name, action = ?ev.action, "docker event");
                dirty = true;
            }
            Ok(Some(Err(e))) => return Err(e),
            Ok(None) => {
                return Err(bollard::errors::Error::IOError {
                    err: std::io::Error::other("the event stream ended"),
                })
            }
            Err(_) => {
                if upstream.strong_count() == 0 {
                    return Ok(());
                }
            }
        }
    }
}
