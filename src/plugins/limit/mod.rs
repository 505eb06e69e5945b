//! `limit`: rate and in-flight limits per key, in this process or shared through Redis.
//!
//! ```toml
//! [plugins.per-ip]
//! category = "limit"
//! kind = "rate"                 # default; or "inflight" with `max`
//! key = "ip"                    # ip | header:NAME | cookie:NAME | query:NAME | path | location | user | ctx
//! rate = "100/s"                # also /m, /h; "100/10s" too
//! burst = 20                    # requests at once; default: the rate's count
//! status = 429                  # default
//! body = "Too Many Requests\n"  # default
//! headers = true                # RateLimit-Limit/-Remaining/-Reset on responses (default)
//! # store = "redis://127.0.0.1:6379/0"   # share the counters between instances
//! # on_store_error = "local"             # or "allow", "deny"
//! # store_timeout = "200ms"
//! # prefix = "tidegate:limit:per-ip:"    # the Redis key prefix (default)
//!
//! [plugins.uploads]
//! category = "limit"
//! kind = "inflight"
//! key = "header:x-api-key"
//! max = 4                       # concurrent requests per key
//! ```
//!
//! A refused request gets `status` with `Retry-After` (seconds). A rate's state lives in the
//! process (all workers share it; `local.rs`), kept across reloads while the limit's name,
//! rate and burst stay the same; with `store` it lives in Redis (`redis.rs`). A request with no
//! value for the key (no such header, say) counts under the empty key, shared by all such.

pub mod gcra;
pub mod key;
pub mod local;
pub mod redis;
pub mod settings;

use super::{Answer, Flow, Plugin, PluginConfError, PluginError};
use crate::plugins::state::RateInfo;
use crate::proxy::ctx::Ctx;
use crate::proxy::exchange::Downstream;
use async_trait::async_trait;
use bytes::Bytes;
use gcra::{ceil_secs, Verdict};
use key::KeySource;
use pingora::http::ResponseHeader;
use settings::{Kind, LimitConf, OnStoreError};
use std::sync::Arc;

/// A built `limit`.
#[derive(Debug)]
pub struct Limit {
    name: String,
    key: KeySource,
    kind: Built,
    status: u16,
    body: Bytes,
    headers: bool,
}

#[derive(Debug)]
enum Built {
    Rate {
        local: Arc<local::LocalRate>,
        remote: Option<Remote>,
    },
    Inflight(Arc<local::LocalInflight>),
}

#[derive(Debug)]
struct Remote {
    store: Arc<redis::RedisStore>,
    prefix: String,
    on_error: OnStoreError,
    timeout: std::time::Duration,
}

/// What a take decided, for the plugin and for `tidegate.limit.take`.
#[derive(Debug, Clone, Copy)]
pub struct Taken {
    pub allowed: bool,
    pub limit: u64,
    pub remaining: u64,
    /// seconds until a refused request may try again
    pub retry_after: u64,
    /// seconds until the quota is whole again
    pub reset: u64,
}

impl Limit {
    pub fn new(c: LimitConf, name: &str) -> Result<Limit, PluginConfError> {
        let s = settings::check(c, name)?;
        let kind = match s.kind {
            Kind::Rate(g) => Built::Rate {
                local: local_rate(name, g),
                remote: match s.store {
                    Some(url) => Some(Remote {
                        store: redis::store(&url).map_err(|m| PluginConfError::at("store", m))?,
                        prefix: s.prefix,
                        on_error: s.on_store_error,
                        timeout: s.store_timeout,
                    }),
                    None => None,
                },
            },
            Kind::Inflight(max) => Built::Inflight(local_inflight(name, max)),
        };
        Ok(Limit {
            name: name.to_string(),
            key: s.key,
            kind,
            status: s.status,
            body: Bytes::from(s.body),
            headers: s.headers,
        })
    }

    /// Take one request for `key`. An in-flight slot, when one is taken, is held in `ctx`
    /// until the request ends.
    pub async fn take(&self, key: &str, ctx: &mut Ctx) -> Taken {
        let (t, slot) = match &self.kind {
            Built::Rate {
                local,
                remote: Some(r),
            } => (
                self.taken(local, self.take_remote(r, local, key).await),
                None,
            ),
            _ => self.take_here(key),
        };
        if let Some(s) = slot {
            ctx.plugin.held.push(s);
        }
        t
    }

    /// A take that needs no I/O: in-flight, or a rate kept in this process (a Redis-backed
    /// rate counts here only as its `on_store_error = "local"` fallback).
    fn take_here(&self, key: &str) -> (Taken, Option<local::Slot>) {
        match &self.kind {
            Built::Inflight(f) => {
                let (slot, now) = f.enter(key);
                let t = Taken {
                    allowed: slot.is_some(),
                    limit: f.max(),
                    remaining: f.max().saturating_sub(now),
                    retry_after: 1,
                    reset: 0,
                };
                (t, slot)
            }
            Built::Rate { local, .. } => {
                (self.taken(local, local.take(key, local::now_ns())), None)
            }
        }
    }

    fn is_remote(&self) -> bool {
        matches!(
            self.kind,
            Built::Rate {
                remote: Some(_),
                ..
            }
        )
    }

    fn taken(&self, local: &local::LocalRate, v: Verdict) -> Taken {
        Taken {
            allowed: v.allowed,
            limit: local.gcra().burst,
            remaining: v.remaining,
            retry_after: ceil_secs(v.retry_after_ns).max(u64::from(!v.allowed)),
            reset: ceil_secs(v.reset_ns),
        }
    }

    async fn take_remote(&self, r: &Remote, local: &local::LocalRate, key: &str) -> Verdict {
        let full = format!("{}{key}", r.prefix);
        match r.store.take(&full, local.gcra(), r.timeout).await {
            Ok(v) => v,
            Err(e) => {
                if r.store.should_log() {
                    tracing::warn!(plugin = %self.name, on_store_error = r.on_error.name(), "limit store failed: {e}");
                }
                match r.on_error {
                    OnStoreError::Local => local.take(key, local::now_ns()),
                    OnStoreError::Allow => Verdict {
                        allowed: true,
                        remaining: local.gcra().burst.saturating_sub(1),
                        retry_after_ns: 0,
                        reset_ns: 0,
                    },
                    OnStoreError::Deny => Verdict {
                        allowed: false,
                        remaining: 0,
                        retry_after_ns: 1_000_000_000,
                        reset_ns: 1_000_000_000,
                    },
                }
            }
        }
    }

    /// Whether this is a rate limit (its figures go in the `RateLimit-*` headers).
    fn is_rate(&self) -> bool {
        matches!(self.kind, Built::Rate { .. })
    }
}

/// Limit state kept by name for the life of the process.
type Kept<T> = std::sync::OnceLock<std::sync::Mutex<std::collections::HashMap<String, Arc<T>>>>;

/// The state `registry` keeps for limit `name` while `same` holds of it (the settings did not
/// change), else a new one from `make`: counts survive a reload that leaves the limit alone.
fn kept<T>(
    registry: &Kept<T>,
    name: &str,
    same: impl Fn(&T) -> bool,
    make: impl FnOnce() -> Arc<T>,
) -> Arc<T> {
    let mut all = registry
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    match all.get(name) {
        Some(t) if same(t) => t.clone(),
        _ => {
            let t = make();
            all.insert(name.to_string(), t.clone());
            t
        }
    }
}

/// The process's rate state for limit `name` (while its rate and burst are unchanged).
fn local_rate(name: &str, g: gcra::Gcra) -> Arc<local::LocalRate> {
    static RATES: Kept<local::LocalRate> = std::sync::OnceLock::new();
    kept(
        &RATES,
        name,
        |r| *r.gcra() == g,
        || Arc::new(local::LocalRate::new(g.clone())),
    )
}

/// As [`local_rate`], for in-flight counters (requests in flight across a reload still count).
fn local_inflight(name: &str, max: u64) -> Arc<local::LocalInflight> {
    static INFLIGHT: Kept<local::LocalInflight> = std::sync::OnceLock::new();
    kept(
        &INFLIGHT,
        name,
        |f| f.max() == max,
        || local::LocalInflight::new(max),
    )
}

/// A number as a header value; below 10,000 from a table made once (over text in one static
/// string: a clone costs nothing), so the `RateLimit-*` values allocate nothing.
fn header_value(n: u64) -> http::HeaderValue {
    const TABLE: usize = 10_000;
    static VALUES: std::sync::OnceLock<Vec<http::HeaderValue>> = std::sync::OnceLock::new();
    let table = VALUES.get_or_init(|| {
        let mut all = String::new();
        let mut ends = Vec::with_capacity(TABLE);
        for i in 0..TABLE {
            all.push_str(&i.to_string());
            ends.push(all.len());
        }
        let all: &'static str = Box::leak(all.into_boxed_str());
        let mut start = 0;
        ends.into_iter()
            .map(|end| {
                let v = http::HeaderValue::from_static(&all[start..end]);
                start = end;
                v
            })
            .collect()
    });
    match usize::try_from(n).ok().and_then(|i| table.get(i)) {
        Some(v) => v.clone(),
        None => http::HeaderValue::from(n),
    }
}

#[async_trait]
impl Plugin for Limit {
    async fn on_request(
        &self,
        session: &mut dyn Downstream,
        ctx: &mut Ctx,
    ) -> Result<Flow, PluginError> {
        let t = if self.is_remote() {
            // a remote take waits: the key is copied out of the request for it
            let key = self.key.value(&*session, ctx).as_str().to_string();
            self.take(&key, ctx).await
        } else {
            let (t, slot) = self.take_here(self.key.value(&*session, ctx).as_str());
            if let Some(s) = slot {
                ctx.plugin.held.push(s);
            }
            t
        };
        if self.is_rate() && self.headers {
            ctx.plugin.note_rate(RateInfo {
                limit: t.limit,
                remaining: t.remaining,
                reset: t.reset,
            });
        }
        if t.allowed {
            return Ok(Flow::Continue);
        }
        // the key is not shown: it may be a credential (key = "header:x-api-key")
        crate::proxy::trace::note(ctx, || format!("limit {}: refused", self.name));
        Ok(Flow::Respond(Answer {
            status: self.status,
            headers: vec![
                (http::header::RETRY_AFTER, header_value(t.retry_after)),
                (
                    http::header::CONTENT_TYPE,
                    http::HeaderValue::from_static("text/plain; charset=utf-8"),
                ),
            ],
            body: self.body.clone(),
        }))
    }

    fn on_response(
        &self,
        _session: &dyn Downstream,
        resp: &mut ResponseHeader,
        ctx: &mut Ctx,
    ) -> Result<(), PluginError> {
        if !(self.headers && self.is_rate()) {
            return Ok(());
        }
        if let Some(r) = ctx.plugin.rate {
            let _ = resp.insert_header("RateLimit-Limit", header_value(r.limit));
            let _ = resp.insert_header("RateLimit-Remaining", header_value(r.remaining));
            let _ = resp.insert_header("RateLimit-Reset", header_value(r.reset));
        }
        Ok(())
    }

    fn limiter(&self) -> Option<&Limit> {
        Some(self)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn header_numbers() {
        for n in [0u64, 7, 42, 9_999, 10_000, 123_456] {
            assert_eq!(
                super::header_value(n).to_str().ok(),
                Some(n.to_string().as_str())
            );
        }
    }
}
