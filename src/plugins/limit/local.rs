//! The process-local store of a `limit`: GCRA for rates, counters for in-flight requests.
//!
//! Keys are spread over 64 shards, each a short-held mutex around a hash map, so workers
//! contend only when two requests hash to the same shard at the same moment (no global lock).
//! A rate key costs one `u64` (its theoretical arrival time); keys whose time has passed are
//! swept when a shard grows, so an attacker cycling keys cannot grow memory without bound
//! beyond `MAX_KEYS_PER_SHARD`.

use super::gcra::{Gcra, Verdict};
use rustc_hash::FxHashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};
use std::time::Instant;

const SHARDS: usize = 64;
/// A shard sweeps expired keys when it reaches this size; if every key is live, one is
/// dropped (that key starts afresh: its client gains at most one burst).
const MAX_KEYS_PER_SHARD: usize = 16_384;

fn shard_of(key: &str) -> usize {
    let mut h = rustc_hash::FxHasher::default();
    key.hash(&mut h);
    (h.finish() as usize) % SHARDS
}

/// The shards of one store: per key, a TAT (rates) or a count (in-flight).
type Shards = Box<[Mutex<FxHashMap<Box<str>, u64>>]>;

/// Nanoseconds since a process-wide epoch (monotonic).
pub fn now_ns() -> u64 {
    static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    EPOCH.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

/// Rate state: per key, the theoretical arrival time of the next request.
#[derive(Debug)]
pub struct LocalRate {
    gcra: Gcra,
    shards: Shards,
}

impl LocalRate {
    pub fn new(gcra: Gcra) -> LocalRate {
        LocalRate {
            gcra,
            shards: (0..SHARDS)
                .map(|_| Mutex::new(FxHashMap::default()))
                .collect(),
        }
    }

    pub fn gcra(&self) -> &Gcra {
        &self.gcra
    }

    /// Take one request for `key` at `now` (ns).
    pub fn take(&self, key: &str, now: u64) -> Verdict {
        let mut shard = self.shards[shard_of(key)]
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(tat) = shard.get_mut(key) {
            let (v, new_tat) = self.gcra.decide(*tat, now);
            *tat = new_tat;
            return v;
        }
        if shard.len() >= MAX_KEYS_PER_SHARD {
            sweep(&mut shard, now);
        }
        let (v, new_tat) = self.gcra.decide(0, now);
        shard.insert(key.into(), new_tat);
        v
    }

    /// Keys tracked now (for tests and the trace).
    pub fn keys(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|p| p.into_inner()).len())
            .sum()
    }
}

/// Drop keys whose arrival time has passed (they would start afresh anyway); if none has,
/// drop any one (constant time: a flood of live keys must not make each insert a scan).
fn sweep(shard: &mut FxHashMap<Box<str>, u64>, now: u64) {
    shard.retain(|_, tat| *tat > now);
    if shard.len() >= MAX_KEYS_PER_SHARD {
        if let Some(k) = shard.keys().next().cloned() {
            shard.remove(&k);
        }
    }
}

/// In-flight counters per key.
#[derive(Debug)]
pub struct LocalInflight {
    max: u64,
    shards: Shards,
}

/// A slot held by one request; released when dropped.
#[derive(Debug)]
pub struct Slot {
    owner: Arc<LocalInflight>,
    key: Box<str>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut shard = self.owner.shards[shard_of(&self.key)]
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(n) = shard.get_mut(&*self.key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                shard.remove(&*self.key);
            }
        }
    }
}

impl LocalInflight {
    pub fn new(max: u64) -> Arc<LocalInflight> {
        Arc::new(LocalInflight {
            max,
            shards: (0..SHARDS)
                .map(|_| Mutex::new(FxHashMap::default()))
                .collect(),
        })
    }

    pub fn max(&self) -> u64 {
        self.max
    }

    /// A slot for `key`, or `None` when `max` requests of it are in flight. Also returns how
    /// many are in flight with this one.
    pub fn enter(self: &Arc<Self>, key: &str) -> (Option<Slot>, u64) {
        let mut shard = self.shards[shard_of(key)]
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let n = shard.entry(key.into()).or_insert(0);
        if *n >= self.max {
            return (None, *n);
        }
        *n += 1;
        let now = *n;
        drop(shard);
        (
            Some(Slot {
                owner: self.clone(),
                key: key.into(),
            }),
            now,
        )
    }

    /// Requests in flight for `key`.
    pub fn current(&self, key: &str) -> u64 {
        self.shards[shard_of(key)]
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(key)
            .copied()
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_refill() {
        let r = LocalRate::new(Gcra::new(5, 60_000_000_000, 5));
        let t0 = 1_000_000_000;
        for i in 0..5 {
            let v = r.take("a", t0);
            assert!(v.allowed, "request {i}");
            assert_eq!(v.remaining, 4 - i);
        }
        let v = r.take("a", t0);
        assert!(!v.allowed);
        assert_eq!(v.retry_after_ns, 12_000_000_000);
        // another key has its own quota
        assert!(r.take("b", t0).allowed);
        // one interval later (12 s), one more
        assert!(r.take("a", t0 + 12_000_000_000).allowed);
        assert!(!r.take("a", t0 + 12_000_000_000).allowed);
    }

    #[test]
    fn inflight_slots_release_on_drop() {
        let f = LocalInflight::new(2);
        let (a, _) = f.enter("k");
        let (b, n) = f.enter("k");
        assert_eq!(n, 2);
        assert!(a.is_some() && b.is_some());
        assert!(f.enter("k").0.is_none());
        drop(a);
        assert_eq!(f.current("k"), 1);
        assert!(f.enter("k").0.is_some());
        drop(b);
    }

    #[test]
    fn sweep_bounds_memory() {
        let r = LocalRate::new(Gcra::new(1, 1_000_000_000, 1));
        for i in 0..(MAX_KEYS_PER_SHARD * SHARDS + 5000) {
            r.take(&format!("k{i}"), 10);
        }
        assert!(r.keys() <= MAX_KEYS_PER_SHARD * SHARDS);
    }
}
