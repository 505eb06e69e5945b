//! The cache lock: while one request fetches a key from the upstream, the others asking for
//! it wait (up to `lock_timeout`) and are then served from the cache, so a stampede on a cold
//! or expired key sends one request upstream.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;

#[derive(Debug, Default)]
pub struct Locks {
    held: Mutex<HashMap<String, Arc<Notify>>>,
}

/// Held by the request that fetches a key; dropping it wakes the waiters.
#[derive(Debug)]
pub struct FillGuard {
    locks: Arc<Locks>,
    key: String,
    notify: Arc<Notify>,
}

impl Drop for FillGuard {
    fn drop(&mut self) {
        let mut held = self.locks.held.lock().unwrap_or_else(|p| p.into_inner());
        if held
            .get(&self.key)
            .is_some_and(|n| Arc::ptr_eq(n, &self.notify))
        {
            held.remove(&self.key);
        }
        drop(held);
        self.notify.notify_waiters();
    }
}

pub enum Acquired {
    /// this request fetches the key
    Fill(FillGuard),
    /// another one does: wait for it
    Wait(Arc<Notify>),
}

impl Locks {
    pub fn acquire(self: &Arc<Self>, key: &str) -> Acquired {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = held.get(key) {
            return Acquired::Wait(n.clone());
        }
        let notify = Arc::new(Notify::new());
        held.insert(key.to_string(), notify.clone());
        Acquired::Fill(FillGuard {
            locks: self.clone(),
            key: key.to_string(),
            notify,
        })
    }

    /// Whether `notify` still guards `key` (its fetch is under way).
    fn busy(&self, key: &str, notify: &Arc<Notify>) -> bool {
        self.held
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(key)
            .is_some_and(|n| Arc::ptr_eq(n, notify))
    }

    /// Wait until the fetch of `key` ends, or `limit`.
    pub async fn wait(&self, key: &str, notify: Arc<Notify>, limit: Duration) {
        let done = notify.notified();
        tokio::pin!(done);
        done.as_mut().enable();
        if !self.busy(key, &notify) {
            return;
        }
        let _ = tokio::time::timeout(limit, done).await;
    }
}
