//! `cache`: an HTTP cache (RFC 9111, shared) in front of the upstream, on both engines.
//!
//! ```toml
//! [plugins.edge]
//! category = "cache"
//! storage = "memory"                 # or "disk:/var/cache/tidegate" (kept across restarts)
//! max_size = "256MB"                 # all entries; least recently used go first
//! max_object_size = "8MB"            # larger responses pass uncached
//! key = "{scheme}://{host}{uri}"     # see key.rs
//! ttl = "0s"                         # freshness when the response gives none (0: not stored)
//! stale_while_revalidate = "0s"      # defaults when the response's Cache-Control gives none
//! stale_if_error = "0s"
//! lock_timeout = "5s"                # a stampede waits this long for the one fetch
//! purge_allow = ["127.0.0.1/32"]     # who may send PURGE (and/or purge_token)
//! purge_token = "a long secret"      # PURGE with `X-Purge-Token: ...`
//! status_header = true               # X-Cache-Status: HIT | MISS | EXPIRED | STALE | BYPASS
//! ```
//!
//! GET (and HEAD, from GET's entries) only. A hit is answered in the request phase, before
//! the plugins after it in the chain. A miss goes upstream while the body is copied as it
//! passes (its framing untouched), and is stored when the response has ended. Each
//! response's `Vary` makes variants of its key.

pub mod key;
pub mod lock;
pub mod policy;
pub mod store;

use super::{Answer, Flow, Plugin, PluginConfError, PluginError};
use crate::proxy::ctx::Ctx;
use crate::proxy::exchange::Downstream;
use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use ipnet::IpNet;
use lock::{Acquired, FillGuard, Locks};
use pingora::http::ResponseHeader;
use policy::{Defaults, Directives, Standing};
use serde::Deserialize;
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, SystemTime};
use store::{Body, Entry, Meta, Store};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheConf {
    #[serde(default = "memory")]
    storage: String,
    max_size: Option<crate::config::raw::Size>,
    max_object_size: Option<crate::config::raw::Size>,
    key: Option<String>,
    ttl: Option<String>,
    stale_while_revalidate: Option<String>,
    stale_if_error: Option<String>,
    lock_timeout: Option<String>,
    #[serde(default)]
    purge_allow: Vec<String>,
    purge_token: Option<String>,
    #[serde(default = "super::default_true")]
    status_header: bool,
}

fn memory() -> String {
    "memory".into()
}

#[derive(Debug)]
pub struct Cache {
    store: Arc<Store>,
    locks: Arc<Locks>,
    key: key::KeyTemplate,
    defaults: Defaults,
    max_object: u64,
    lock_timeout: Duration,
    purge_allow: Vec<IpNet>,
    purge_token: Option<String>,
    status_header: bool,
}

/// What the cache decided for this request, kept in the context until the log phase.
#[derive(Debug, Default)]
pub struct Pending {
    key: String,
    status: &'static str,
    /// answered from the cache (the response phase has nothing to do)
    served: bool,
    /// an entry past its freshness that may still answer if the upstream fails
    stale: Option<Arc<Entry>>,
    fill: Option<Fill>,
    guard: Option<FillGuard>,
}

#[derive(Debug)]
struct Fill {
    meta: Meta,
    body: BytesMut,
    ended: bool,
    too_big: bool,
}

/// Stores by their configuration, so a reload keeps what is cached (and one disk directory
/// has one store).
type Stores = Mutex<Vec<(String, Weak<Store>)>>;

fn stores() -> &'static Stores {
    static S: OnceLock<Stores> = OnceLock::new();
    S.get_or_init(Default::default)
}

fn size(
    key: &str,
    v: &Option<crate::config::raw::Size>,
    default: u64,
) -> Result<u64, PluginConfError> {
    match v {
        None => Ok(default),
        Some(crate::config::raw::Size::Bytes(n)) => Ok(*n),
        Some(crate::config::raw::Size::Text(t)) => {
            crate::config::units::parse_size(t).map_err(|m| PluginConfError::at(key, m))
        }
    }
}

fn duration(key: &str, v: &Option<String>, default: Duration) -> Result<Duration, PluginConfError> {
    match v {
        None => Ok(default),
        Some(s) => crate::config::units::parse_duration(s).map_err(|m| PluginConfError::at(key, m)),
    }
}

impl Cache {
    pub fn new(c: CacheConf, name: &str) -> Result<Cache, PluginConfError> {
        let max_size = size("max_size", &c.max_size, 256 << 20)?;
        let max_object = size("max_object_size", &c.max_object_size, 8 << 20)?;
        let dir = match c.storage.as_str() {
            "memory" => None,
            s => match s.strip_prefix("disk:") {
                Some(d) if !d.is_empty() => Some(std::path::PathBuf::from(d)),
                _ => {
                    return Err(PluginConfError::at(
                        "storage",
                        format!("storage `{s}`: use \"memory\" or \"disk:/path/to/dir\""),
                    ))
                }
            },
        };
        let id = format!("{name}|{}|{max_size}", c.storage);
        let store = {
            let mut all = stores().lock().unwrap_or_else(|p| p.into_inner());
            all.retain(|(_, w)| w.strong_count() > 0);
            match all
                .iter()
                .find(|(k, _)| *k == id)
                .and_then(|(_, w)| w.upgrade())
            {
                Some(s) => s,
                None => {
                    let s = Arc::new(Store::new(max_size, dir).map_err(|e| {
                        PluginConfError::at("storage", format!("{}: {e}", c.storage))
                    })?);
                    all.push((id, Arc::downgrade(&s)));
                    s
                }
            }
        };
        let purge_allow = c
            .purge_allow
            .iter()
            .enumerate()
            .map(|(i, s)| {
                s.parse::<IpNet>()
                    .or_else(|_| s.parse::<std::net::IpAddr>().map(IpNet::from))
                    .map_err(|_| {
                        PluginConfError::at(
                            "purge_allow",
                            format!("purge_allow[{i}] `{s}` is not an IP address or CIDR"),
                        )
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        if c.purge_token.as_ref().is_some_and(|t| t.len() < 16) {
            return Err(PluginConfError::at(
                "purge_token",
                "purge_token must be at least 16 characters (it is a secret)",
            ));
        }
        Ok(Cache {
            store,
            locks: Arc::new(Locks::default()),
            key: key::KeyTemplate::parse(c.key.as_deref().unwrap_or("{scheme}://{host}{uri}"))
                .map_err(|m| PluginConfError::at("key", m))?,
            defaults: Defaults {
                ttl: duration("ttl", &c.ttl, Duration::ZERO)?,
                swr: duration(
                    "stale_while_revalidate",
                    &c.stale_while_revalidate,
                    Duration::ZERO,
                )?,
                sie: duration("stale_if_error", &c.stale_if_error, Duration::ZERO)?,
            },
            max_object,
            lock_timeout: duration("lock_timeout", &c.lock_timeout, Duration::from_secs(5))?,
            purge_allow,
            purge_token: c.purge_token,
            status_header: c.status_header,
        })
    }

    fn may_purge(&self, session: &dyn Downstream, ctx: &Ctx) -> bool {
        let by_ip = ctx
            .client_ip
            .is_some_and(|ip| self.purge_allow.iter().any(|n| n.contains(&ip)));
        let by_token =
            self.purge_token.as_ref().is_some_and(|t| {
                session.req().headers.get("x-purge-token").is_some_and(|v| {
                    subtle::ConstantTimeEq::ct_eq(v.as_bytes(), t.as_bytes()).into()
                })
            });
        by_ip || by_token
    }

    /// An entry as the answer (its body read from memory or its file).
    async fn serve(&self, e: &Entry, status: &'static str) -> Option<Answer> {
        let body = e.body().await;
        self.answer_with(e, body, status)
    }

    /// An entry as the answer: its status, headers, `Age`, and the cache status.
    fn answer_with(
        &self,
        e: &Entry,
        body: std::io::Result<Bytes>,
        status: &'static str,
    ) -> Option<Answer> {
        let body = match body {
            Ok(b) => b,
            Err(err) => {
                tracing::warn!(key = %e.meta.key, "cache: an entry's body cannot be read ({err}); fetching");
                self.store.purge(&e.meta.key);
                return None;
            }
        };
        let mut headers = Vec::with_capacity(e.meta.headers.len() + 2);
        for (k, v) in &e.meta.headers {
            if let (Ok(k), Ok(v)) = (
                http::HeaderName::from_bytes(k.as_bytes()),
                http::HeaderValue::from_str(v),
            ) {
                headers.push((k, v));
            }
        }
        let age = e.meta.age(SystemTime::now()).as_secs();
        headers.push((http::header::AGE, http::HeaderValue::from(age)));
        if self.status_header {
            headers.push((
                http::HeaderName::from_static("x-cache-status"),
                http::HeaderValue::from_static(status),
            ));
        }
        Some(Answer {
            status: e.meta.status,
            headers,
            body,
        })
    }

    fn vary_value(session: &dyn Downstream, name: &str) -> Option<String> {
        let all: Vec<String> = session
            .req()
            .headers
            .get_all(name)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect();
        (!all.is_empty()).then(|| all.join(", "))
    }

    fn answered(ctx: &mut Ctx, p: Pending, a: Answer) -> Result<Flow, PluginError> {
        ctx.plugin.cache = Some(Box::new(Pending { served: true, ..p }));
        Ok(Flow::Respond(a))
    }
}

mod phases;
