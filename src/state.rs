//! One configuration version, built and ready to serve: the config, a router per server,
//! upstream pools and access-log writers.
//!
//! The proxy holds the current version in an `ArcSwap` ([`Live`]); each request loads it once
//! (a lock-free pointer read) and keeps it to the end, so a request sees one version from
//! start to end.

use crate::config::model::{Config, Location};
use crate::observability::access_log::Writer;
use crate::routing::{RouteSpec, Router};
use crate::upstream::Upstream;
use arc_swap::ArcSwap;
use std::sync::Arc;

pub type Live = Arc<ArcSwap<State>>;

#[derive(Debug)]
pub struct State {
    pub config: Config,
    /// one per server, same order as `config.servers`
    pub routers: Vec<Router>,
    /// same order as `config.upstreams`
    pub upstreams: Vec<Arc<Upstream>>,
    /// one per server: where its access log goes, if it has one
    pub access_logs: Vec<Option<Arc<Writer>>>,
}

impl State {
    pub fn build(config: Config) -> Result<State, crate::error::StartError> {
        let routers = config
            .servers
            .iter()
            .map(|s| {
                Router::new(
                    s.locations
                        .iter()
                        .map(|i| spec(*i, &config.locations[*i]))
                        .collect(),
                )
            })
            .collect();
        let upstreams = config
            .upstreams
            .iter()
            .map(|u| Arc::new(Upstream::new(u)))
            .collect();
        let mut access_logs = Vec::new();
        for s in &config.servers {
            access_logs.push(match &s.access_log {
                None => None,
                Some(_) => Some(Writer::for_path(s.access_log_path.as_deref()).map_err(|e| {
                    crate::error::StartError::Io {
                        path: s
                            .access_log_path
                            .clone()
                            .unwrap_or_else(|| "<stdout>".into()),
                        source: e,
                    }
                })?),
            });
        }
        Ok(State {
            config,
            routers,
            upstreams,
            access_logs,
        })
    }

    pub fn upstream_by_name(&self, name: &str) -> Option<&Arc<Upstream>> {
        self.upstreams.iter().find(|u| u.name == name)
    }
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
