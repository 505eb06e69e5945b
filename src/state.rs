//! One configuration version, built and ready to serve: the config, each listening server's
//! router and access log, and the upstream pools.
//!
//! The proxy holds the current version in an `ArcSwap` ([`Live`]); each request loads it once
//! (a lock-free pointer read) and keeps it to the end, so a request sees one version from
//! start to end. A reload builds the next version with [`State::next`] and swaps it in.

use crate::config::model::{Config, Location, Server};
use crate::error::StartError;
use crate::observability::access_log::Writer;
use crate::routing::{RouteSpec, Router};
use crate::upstream::Upstream;
use arc_swap::ArcSwap;
use std::sync::Arc;

pub type Live = Arc<ArcSwap<State>>;

/// A listening server in one config version.
#[derive(Debug)]
pub struct ServerState {
    pub conf: Server,
    pub router: Router,
    pub access_log: Option<Arc<Writer>>,
    /// the handles its requests count in (`None`: no server exposes metrics)
    pub metrics: Option<crate::observability::metrics::ServerMetrics>,
    /// measure upstream times: metrics on, or the access log shows them
    pub timing: bool,
}

#[derive(Debug)]
pub struct State {
    /// 1 at start, +1 per applied reload
    pub version: u64,
    pub config: Config,
    /// One per listening service, in the order the services were built at start (the index a
    /// `Proxy` holds). Listeners cannot change without an upgrade, so this order never does.
    pub servers: Vec<ServerState>,
    /// same order as `config.upstreams`
    pub upstreams: Vec<Arc<Upstream>>,
    /// changes this version makes that need an upgrade to take effect
    pub pending_upgrade: Vec<String>,
    /// upstreams carried over unchanged from the previous version
    pub reused_upstreams: usize,
}

impl State {
    /// Whether the own HTTP/1 loop serves this server's connections: `engine = "native"`
    /// (the default) and every upstream spoken to in plain HTTP/1 (the loop does not speak
    /// TLS or HTTP/2 to upstreams yet; with such an upstream the whole server stays on
    /// Pingora's path, which `tidegate check` and the start log say).
    pub fn native_h1(&self, server: usize) -> bool {
        self.servers
            .get(server)
            .is_some_and(|s| s.conf.engine == crate::config::model::Engine::Native)
            && self.upstreams.iter().all(|u| u.conf.plain_h1())
    }

    /// The first version, at start.
    pub fn build(config: Config) -> Result<State, StartError> {
        let servers = config
            .servers
            .iter()
            .map(|s| server_state(s.clone(), &config))
            .collect::<Result<Vec<_>, _>>()?;
        let upstreams = config
            .upstreams
            .iter()
            .map(|u| Arc::new(Upstream::new(u, config.metrics_on())))
            .collect();
        Ok(State {
            version: 1,
            config,
            servers,
            upstreams,
            pending_upgrade: Vec::new(),
            reused_upstreams: 0,
        })
    }

    /// The version after `prev`: servers keep their listening order; unchanged upstreams are
    /// carried over with their live state.
    pub fn next(config: Config, prev: &State) -> Result<State, StartError> {
        let mut pending = Vec::new();
        let mut servers = Vec::with_capacity(prev.servers.len());
        for old in &prev.servers {
            match config.servers.iter().find(|s| s.name == old.conf.name) {
                Some(new) => {
                    if new.addrs != old.conf.addrs || new.http2 != old.conf.http2 {
                        pending.push(format!(
                            "server `{}`: listeners {:?} (http2 {}) → {:?} (http2 {})",
                            new.name, old.conf.addrs, old.conf.http2, new.addrs, new.http2
                        ));
                    }
                    let mut conf = new.clone();
                    // the sockets stay what they are until the upgrade
                    conf.addrs = old.conf.addrs.clone();
                    conf.http2 = old.conf.http2;
                    servers.push(server_state(conf, &config)?);
                }
                None => {
                    pending.push(format!(
                        "server `{}` removed: its listeners answer 404 until the upgrade closes them",
                        old.conf.name
                    ));
                    let mut conf = old.conf.clone();
                    conf.locations.clear();
                    servers.push(server_state(conf, &config)?);
                }
            }
        }
        for s in &config.servers {
            if !prev.servers.iter().any(|o| o.conf.name == s.name) {
                pending.push(format!("new server `{}` on {:?}", s.name, s.addrs));
            }
        }
        let mut reused = 0;
        let upstreams = config
            .upstreams
            .iter()
            .map(|u| {
                match prev
                    .upstreams
                    .iter()
                    .find(|p| p.conf == *u && p.metrics.is_some() == config.metrics_on())
                {
                    Some(same) => {
                        reused += 1;
                        same.clone()
                    }
                    None => Arc::new(Upstream::new(u, config.metrics_on())),
                }
            })
            .collect();
        Ok(State {
            version: prev.version + 1,
            config,
            servers,
            upstreams,
            pending_upgrade: pending,
            reused_upstreams: reused,
        })
    }

    pub fn upstream_by_name(&self, name: &str) -> Option<&Arc<Upstream>> {
        self.upstreams.iter().find(|u| u.name == name)
    }
}

fn server_state(conf: Server, config: &Config) -> Result<ServerState, StartError> {
    let locations = &config.locations;
    let router = Router::new(
        conf.locations
            .iter()
            .map(|i| spec(*i, &locations[*i]))
            .collect(),
    );
    let access_log = match &conf.access_log {
        None => None,
        Some(_) => Some(
            Writer::for_path(conf.access_log_path.as_deref()).map_err(|e| StartError::Io {
                path: conf
                    .access_log_path
                    .clone()
                    .unwrap_or_else(|| "<stdout>".into()),
                source: e,
            })?,
        ),
    };
    let metrics = config.metrics_on().then(|| {
        let names: Vec<&str> = locations.iter().map(|l| l.name.as_str()).collect();
        crate::observability::metrics::ServerMetrics::new(&conf.name, &conf.locations, &names)
    });
    let timing = metrics.is_some()
        || conf
            .access_log
            .as_ref()
            .is_some_and(|f| f.wants_upstream_times());
    Ok(ServerState {
        conf,
        router,
        access_log,
        metrics,
        timing,
    })
}

fn spec(i: usize, l: &Location) -> RouteSpec {
    RouteSpec {
        location: i,
        hosts: l.hosts.clone(),
        path: l.path.clone(),
        headers: l.headers.clone(),
        query: l.query.clone(),
        priority: l.priority,
    }
}
