//! The store behind one shared dictionary: a map with a least-recently-used list, bounded in
//! keys and in bytes, every operation O(1).
//!
//! Entries live in a slab (`Vec` of nodes linked by index, with a free list), so touching a
//! key moves it to the front without allocating, and making room evicts from the back. When a
//! limit shrinks (a reload declares a smaller dict), each later write evicts at most
//! [`EVICT_PER_OP`] entries beyond its own need, so no single call sweeps the whole dict
//! while holding its lock; the dict converges to the new limit as it is used. Expired keys
//! are dropped when touched, and age towards the back like any other.
//!
//! Hand-written because no well-kept crate offers an LRU map bounded by a byte cost per
//! entry together with per-entry expiry (`lru` bounds the count only).

use std::collections::HashMap;
use std::time::Instant;

/// What one entry is charged besides its key (counted twice: in the map and in the node)
/// and its value: the node, the map slot and the allocations' headers, rounded up.
pub const ENTRY_OVERHEAD: usize = 96;

/// At most this many entries beyond a write's own need are evicted by one write.
pub const EVICT_PER_OP: usize = 64;

/// A dictionary's limits (from `[lua] shared`, per config version).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub keys: usize,
    pub bytes: usize,
}

/// A value kept in a shared dictionary.
#[derive(Debug, Clone, PartialEq)]
pub enum Stored {
    Str(Vec<u8>),
    Int(i64),
    Num(f64),
    Bool(bool),
}

impl Stored {
    fn size(&self) -> usize {
        match self {
            Stored::Str(s) => s.len(),
            _ => 8,
        }
    }
}

/// Why a write did not happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// the one entry costs more than the dict's whole byte budget
    TooLarge,
    /// `incr` of a missing key without an initial value
    NotFound,
    /// `incr` of a value that is not a number
    NotANumber,
}

impl Refused {
    pub fn as_str(self) -> &'static str {
        match self {
            Refused::TooLarge => "too large",
            Refused::NotFound => "not found",
            Refused::NotANumber => "not a number",
        }
    }
}

const NIL: usize = usize::MAX;

#[derive(Debug)]
struct Node {
    key: String,
    value: Stored,
    expires: Option<Instant>,
    cost: usize,
    prev: usize,
    next: usize,
}

/// The map and its recency list.
#[derive(Debug)]
pub struct Lru {
    index: HashMap<String, usize>,
    nodes: Vec<Option<Node>>,
    free: Vec<usize>,
    /// most recently used
    head: usize,
    /// least recently used
    tail: usize,
    bytes: usize,
}

impl Default for Lru {
    fn default() -> Self {
        Lru {
            index: HashMap::new(),
            nodes: Vec::new(),
            free: Vec::new(),
            head: NIL,
            tail: NIL,
            bytes: 0,
        }
    }
}

fn cost(key: &str, value: &Stored) -> usize {
    2 * key.len() + value.size() + ENTRY_OVERHEAD
}

impl Lru {
    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// The bytes charged to the entries held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    fn node(&self, i: usize) -> Option<&Node> {
        self.nodes.get(i).and_then(Option::as_ref)
    }

    fn node_mut(&mut self, i: usize) -> Option<&mut Node> {
        self.nodes.get_mut(i).and_then(Option::as_mut)
    }

    fn unlink(&mut self, i: usize) {
        let (prev, next) = match self.node(i) {
            Some(n) => (n.prev, n.next),
            None => return,
        };
        match self.node_mut(prev) {
            Some(p) => p.next = next,
            None => self.head = next,
        }
        match self.node_mut(next) {
            Some(n) => n.prev = prev,
            None => self.tail = prev,
        }
    }

    fn push_front(&mut self, i: usize) {
        let old = self.head;
        if let Some(n) = self.node_mut(i) {
            n.prev = NIL;
            n.next = old;
        }
        match self.node_mut(old) {
            Some(o) => o.prev = i,
            None => self.tail = i,
        }
        self.head = i;
    }

    fn remove_at(&mut self, i: usize) {
        self.unlink(i);
        if let Some(n) = self.nodes.get_mut(i).and_then(Option::take) {
            self.bytes -= n.cost;
            self.index.remove(&n.key);
            self.free.push(i);
        }
    }

    /// The live entry of `key`, made most recent; an expired one is dropped.
    fn live(&mut self, key: &str, now: Instant) -> Option<usize> {
        let i = *self.index.get(key)?;
        if self
            .node(i)
            .is_some_and(|n| n.expires.is_some_and(|t| t <= now))
        {
            self.remove_at(i);
            return None;
        }
        self.unlink(i);
        self.push_front(i);
        Some(i)
    }

    pub fn get(&mut self, key: &str, now: Instant) -> Option<&Stored> {
        let i = self.live(key, now)?;
        self.node(i).map(|n| &n.value)
    }

    /// Seconds left for `key`: `Some(None)` when it never expires, `None` when absent.
    pub fn expires(&mut self, key: &str, now: Instant) -> Option<Option<Instant>> {
        let i = self.live(key, now)?;
        self.node(i).map(|n| n.expires)
    }

    pub fn delete(&mut self, key: &str) {
        if let Some(&i) = self.index.get(key) {
            self.remove_at(i);
        }
    }

    /// Evict from the back until within `limits` (the entry at `keep` is never evicted), at
    /// most `EVICT_PER_OP` entries past the first that makes room.
    fn make_room(&mut self, limits: Limits, keep: usize) {
        let mut extra = 0;
        while (self.index.len() > limits.keys || self.bytes > limits.bytes)
            && self.tail != NIL
            && self.tail != keep
        {
            self.remove_at(self.tail);
            extra += 1;
            if extra > EVICT_PER_OP {
                break;
            }
        }
    }

    /// Store `value` under `key`, evicting the least recently used entries as the limits
    /// need.
    pub fn set(
        &mut self,
        key: &str,
        value: Stored,
        expires: Option<Instant>,
        now: Instant,
        limits: Limits,
    ) -> Result<(), Refused> {
        let c = cost(key, &value);
        if c > limits.bytes {
            return Err(Refused::TooLarge);
        }
        let i = match self.live(key, now) {
            Some(i) => {
                if let Some(n) = self.nodes.get_mut(i).and_then(Option::as_mut) {
                    self.bytes = self.bytes - n.cost + c;
                    n.value = value;
                    n.expires = expires;
                    n.cost = c;
                }
                i
            }
            None => {
                let node = Node {
                    key: key.to_string(),
                    value,
                    expires,
                    cost: c,
                    prev: NIL,
                    next: NIL,
                };
                let i = match self.free.pop() {
                    Some(i) => {
                        self.nodes[i] = Some(node);
                        i
                    }
                    None => {
                        self.nodes.push(Some(node));
                        self.nodes.len() - 1
                    }
                };
                self.index.insert(key.to_string(), i);
                self.bytes += c;
                self.push_front(i);
                i
            }
        };
        self.make_room(limits, i);
        Ok(())
    }

    /// Add `delta` to the number under `key` (created as `init + delta` when missing and
    /// `init` is given); the new value.
    pub fn incr(
        &mut self,
        key: &str,
        delta: f64,
        init: Option<(f64, Option<Instant>)>,
        now: Instant,
        limits: Limits,
    ) -> Result<f64, Refused> {
        if let Some(i) = self.live(key, now) {
            let Some(n) = self.node_mut(i) else {
                return Err(Refused::NotFound);
            };
            let next = match n.value {
                Stored::Int(v) if delta.fract() == 0.0 => {
                    Stored::Int(v.saturating_add(delta as i64))
                }
                Stored::Int(v) => Stored::Num(v as f64 + delta),
                Stored::Num(v) => Stored::Num(v + delta),
                _ => return Err(Refused::NotANumber),
            };
            let out = match next {
                Stored::Int(v) => v as f64,
                Stored::Num(v) => v,
                _ => 0.0,
            };
            n.value = next;
            return Ok(out);
        }
        let Some((init, expires)) = init else {
            return Err(Refused::NotFound);
        };
        let v = init + delta;
        self.set(key, number(v), expires, now, limits)?;
        Ok(v)
    }
}

/// A Lua number as stored: whole numbers within f64's exact range as integers.
pub fn number(v: f64) -> Stored {
    if v.fract() == 0.0 && v.abs() < 9.0e15 {
        Stored::Int(v as i64)
    } else {
        Stored::Num(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const ROOMY: Limits = Limits {
        keys: 1000,
        bytes: 1 << 20,
    };

    #[test]
    fn evicts_the_least_recently_used_key() {
        let mut m = Lru::default();
        let now = Instant::now();
        let two = Limits {
            keys: 2,
            bytes: 1 << 20,
        };
        m.set("a", Stored::Int(1), None, now, two).unwrap();
        m.set("b", Stored::Int(2), None, now, two).unwrap();
        assert!(m.get("a", now).is_some(), "a is now the most recent");
        m.set("c", Stored::Int(3), None, now, two).unwrap();
        assert_eq!(m.len(), 2);
        assert!(m.get("b", now).is_none(), "b was least recently used");
        assert!(m.get("a", now).is_some() && m.get("c", now).is_some());
    }

    #[test]
    fn bounded_in_bytes() {
        let mut m = Lru::default();
        let now = Instant::now();
        let small = Limits {
            keys: 1000,
            bytes: 3 * (2 * 2 + 100 + ENTRY_OVERHEAD),
        };
        for k in ["k1", "k2", "k3", "k4", "k5"] {
            m.set(k, Stored::Str(vec![b'x'; 100]), None, now, small)
                .unwrap();
            assert!(m.bytes() <= small.bytes);
        }
        assert_eq!(m.len(), 3);
        assert_eq!(
            m.set("big", Stored::Str(vec![0; 1000]), None, now, small),
            Err(Refused::TooLarge)
        );
        // replacing a value re-charges it
        m.set("k5", Stored::Int(1), None, now, small).unwrap();
        assert_eq!(
            m.bytes(),
            2 * (2 * 2 + 100 + ENTRY_OVERHEAD) + 2 * 2 + 8 + ENTRY_OVERHEAD
        );
    }

    #[test]
    fn expiry_incr_delete_and_slot_reuse() {
        let mut m = Lru::default();
        let now = Instant::now();
        m.set(
            "t",
            Stored::Bool(true),
            Some(now + Duration::from_secs(1)),
            now,
            ROOMY,
        )
        .unwrap();
        assert!(m.get("t", now).is_some());
        assert!(m.get("t", now + Duration::from_secs(2)).is_none());
        assert_eq!(m.len(), 0);
        assert_eq!(m.incr("n", 1.0, None, now, ROOMY), Err(Refused::NotFound));
        assert_eq!(m.incr("n", 1.0, Some((10.0, None)), now, ROOMY), Ok(11.0));
        assert_eq!(m.incr("n", 0.5, None, now, ROOMY), Ok(11.5));
        m.set("s", Stored::Str(b"x".to_vec()), None, now, ROOMY)
            .unwrap();
        assert_eq!(m.incr("s", 1.0, None, now, ROOMY), Err(Refused::NotANumber));
        m.delete("s");
        m.delete("n");
        assert_eq!((m.len(), m.bytes()), (0, 0));
        assert_eq!(m.nodes.len(), 2);
        m.set("again", Stored::Int(1), None, now, ROOMY).unwrap();
        assert_eq!(m.nodes.len(), 2, "freed slots are reused");
    }

    #[test]
    fn a_shrunk_limit_is_reached_a_bounded_step_at_a_time() {
        let mut m = Lru::default();
        let now = Instant::now();
        for i in 0..1000 {
            m.set(&format!("k{i}"), Stored::Int(i), None, now, ROOMY)
                .unwrap();
        }
        let tiny = Limits {
            keys: 10,
            bytes: 1 << 20,
        };
        m.set("new", Stored::Int(0), None, now, tiny).unwrap();
        assert_eq!(m.len(), 1001 - 1 - EVICT_PER_OP);
        for i in 0..100 {
            m.set(&format!("n{i}"), Stored::Int(0), None, now, tiny)
                .unwrap();
        }
        assert_eq!(m.len(), 10);
        assert!(m.get("n99", now).is_some());
    }
}
