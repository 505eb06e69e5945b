//! A `limit`'s counters in Redis, shared by every tidegate that points at the same server.
//!
//! Each take is one `EVALSHA` of a small script that runs the GCRA step of `gcra.rs`
//! atomically inside Redis, on Redis's own clock (`TIME`), so instances with skewed clocks
//! still agree. The connection is a `redis` crate `ConnectionManager`: one multiplexed
//! connection per store URL for the whole process (kept across reloads), on which concurrent
//! takes from all workers are pipelined, reconnecting by itself after a failure. Every take
//! is bounded by `store_timeout`; a failure is the caller's to handle (`on_store_error`).

use super::gcra::{Gcra, Verdict};
use redis::aio::ConnectionManager;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

/// GCRA in Redis: KEYS[1] the key; ARGV[1] the interval and ARGV[2] the tolerance, in
/// microseconds. Returns {allowed, ahead_us} where `ahead_us` is how far the stored time runs
/// ahead of now after the take (allowed) or before it (refused).
const SCRIPT: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local ahead = tat - now
if ahead > tolerance then
  return {0, ahead}
end
local new_tat = tat + interval
redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', math.ceil((new_tat - now) / 1000) + 1)
return {1, new_tat - now}
"#;

/// A failure talking to the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("redis {url}: {source}")]
    Redis {
        url: String,
        #[source]
        source: redis::RedisError,
    },
    #[error("redis {url}: no answer in {timeout:?}")]
    Timeout { url: String, timeout: Duration },
    #[error("redis {url}: not connected (retrying)")]
    Down { url: String },
}

/// One Redis server, shared by every limit that names it.
pub struct RedisStore {
    client: redis::Client,
    /// the URL without its password, for messages
    shown: String,
    /// the connection once made (read without a lock on every take)
    current: arc_swap::ArcSwapOption<ConnectionManager>,
    /// held while a connection is being made, so one attempt runs at a time
    connecting: tokio::sync::Mutex<()>,
    /// no new connection attempt before this time (ms since the process epoch)
    retry_at: AtomicU64,
    /// the last time an error was logged (ms), so a down store logs once in a while
    logged_at: AtomicU64,
    script: redis::Script,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RedisStore({})", self.shown)
    }
}

fn now_ms() -> u64 {
    super::local::now_ns() / 1_000_000
}

/// The store for `url`, one per URL per process. Checks the URL; connects on first use.
pub fn store(url: &str) -> Result<Arc<RedisStore>, String> {
    static STORES: OnceLock<Mutex<HashMap<String, Arc<RedisStore>>>> = OnceLock::new();
    let mut all = STORES
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    if let Some(s) = all.get(url) {
        return Ok(s.clone());
    }
    let client = redis::Client::open(url).map_err(|e| format!("`{}`: {e}", hide_password(url)))?;
    let s = Arc::new(RedisStore {
        client,
        shown: hide_password(url),
        current: arc_swap::ArcSwapOption::empty(),
        connecting: tokio::sync::Mutex::new(()),
        retry_at: AtomicU64::new(0),
        logged_at: AtomicU64::new(0),
        script: redis::Script::new(SCRIPT),
    });
    all.insert(url.to_string(), s.clone());
    Ok(s)
}

/// `redis://user:secret@host/0` as `redis://user:***@host/0`.
pub fn hide_password(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let cred = &url[s + 3..at];
            match cred.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

impl RedisStore {
    pub fn shown(&self) -> &str {
        &self.shown
    }

    async fn connection(&self, timeout: Duration) -> Result<ConnectionManager, StoreError> {
        if let Some(c) = self.current.load().as_deref() {
            return Ok(c.clone());
        }
        let _one = self.connecting.lock().await;
        if let Some(c) = self.current.load().as_deref() {
            return Ok(c.clone());
        }
        if now_ms() < self.retry_at.load(Ordering::Relaxed) {
            return Err(StoreError::Down {
                url: self.shown.clone(),
            });
        }
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_secs(1));
        match tokio::time::timeout(
            timeout.saturating_mul(2),
            ConnectionManager::new_with_config(self.client.clone(), config),
        )
        .await
        {
            Ok(Ok(c)) => {
                tracing::info!(store = %self.shown, "connected to the limit store");
                self.current.store(Some(Arc::new(c.clone())));
                Ok(c)
            }
            Ok(Err(source)) => {
                self.retry_at.store(now_ms() + 1000, Ordering::Relaxed);
                Err(StoreError::Redis {
                    url: self.shown.clone(),
                    source,
                })
            }
            Err(_) => {
                self.retry_at.store(now_ms() + 1000, Ordering::Relaxed);
                Err(StoreError::Timeout {
                    url: self.shown.clone(),
                    timeout,
                })
            }
        }
    }

    /// One GCRA take of `key` in Redis.
    pub async fn take(
        &self,
        key: &str,
        gcra: &Gcra,
        timeout: Duration,
    ) -> Result<Verdict, StoreError> {
        let mut conn = self.connection(timeout).await?;
        let interval_us = (gcra.interval / 1000).max(1);
        let tolerance_us = gcra.tolerance / 1000;
        let mut call = self.script.key(key);
        call.arg(interval_us).arg(tolerance_us);
        let r: (i64, i64) = match tokio::time::timeout(timeout, call.invoke_async(&mut conn)).await
        {
            Ok(Ok(r)) => r,
            Ok(Err(source)) => {
                return Err(StoreError::Redis {
                    url: self.shown.clone(),
                    source,
                })
            }
            Err(_) => {
                return Err(StoreError::Timeout {
                    url: self.shown.clone(),
                    timeout,
                })
            }
        };
        let ahead = (r.1.max(0) as u64).saturating_mul(1000);
        Ok(if r.0 == 1 {
            let room = gcra
                .tolerance
                .saturating_add(gcra.interval)
                .saturating_sub(ahead);
            Verdict {
                allowed: true,
                remaining: room / gcra.interval,
                retry_after_ns: 0,
                reset_ns: ahead,
            }
        } else {
            Verdict {
                allowed: false,
                remaining: 0,
                retry_after_ns: ahead.saturating_sub(gcra.tolerance),
                reset_ns: ahead,
            }
        })
    }

    /// Whether to log an error now (at most one line per 10 s per store).
    pub fn should_log(&self) -> bool {
        let now = now_ms();
        let last = self.logged_at.load(Ordering::Relaxed);
        (last == 0 || now.saturating_sub(last) >= 10_000)
            && self
                .logged_at
                .compare_exchange(last, now.max(1), Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_is_hidden() {
        assert_eq!(
            hide_password("redis://app:s3cret@127.0.0.1:6379/0"),
            "redis://app:***@127.0.0.1:6379/0"
        );
        assert_eq!(
            hide_password("redis://127.0.0.1:6379/0"),
            "redis://127.0.0.1:6379/0"
        );
    }

    #[test]
    fn bad_url_is_refused() {
        assert!(store("http://nope").is_err());
    }
}
