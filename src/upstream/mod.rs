//! Upstreams: pools of peers, the balancer that picks one, and what we know of their health.
//!
//! ```toml
//! [upstreams.api]
//! addrs = ["127.0.0.1:9001", "127.0.0.1:9002 3"]
//! algo = "least_conn"
//! health_check = "http://api/healthz?interval=5s&timeout=1s&success=2&failure=3"
//! alpn = "h1"              # h1 | h2 | h2h1  (h2 without tls is h2c)
//! tls = false
//! sni = ""                 # defaults to the peer's host
//! verify_cert = true
//! ca_file = "conf/certs/internal-ca.pem"   # CAs for verifying the peers (default: system roots)
//! connect_timeout = "2s"
//! read_timeout = "30s"
//! write_timeout = "30s"
//! idle_timeout = "60s"     # keep-alive pool idle time
//! retries = 1              # extra peers to try when connecting fails
//! max_fails = 3            # passive: consecutive failures that open the circuit
//! fail_timeout = "10s"     # how long an open circuit keeps the peer out
//! ```
//!
//! A peer is *available* when the active check says healthy and its circuit is closed. The
//! balancer picks among available peers not yet tried for this request; when none is
//! available, it tries the untried ones anyway rather than fail without trying (as nginx does
//! when every peer is marked down).

pub mod balance;
pub mod discovery;
pub mod health;
pub mod peer;

use arc_swap::ArcSwap;
use balance::Algo;
use discovery::Discovery;
use health::HealthCheck;
pub use peer::{InflightGuard, Peer, PeerSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// ALPN towards the upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alpn {
    H1,
    H2,
    H2H1,
}

/// Typed `[upstreams.NAME]`.
#[derive(Debug, Clone, PartialEq)]
pub struct UpstreamConf {
    pub name: String,
    /// the peers of a static upstream (discovery finds the others' at run time)
    pub addrs: Vec<(SocketAddr, u32)>,
    pub discovery: Discovery,
    pub algo: Algo,
    pub health: Option<HealthCheck>,
    pub alpn: Alpn,
    pub tls: bool,
    pub sni: String,
    pub verify_cert: bool,
    /// DER certificates of the CAs that sign the peers' certificates (`ca_file`)
    pub ca: Option<Vec<Vec<u8>>>,
    pub connect_timeout: Duration,
    pub read_timeout: Option<Duration>,
    pub write_timeout: Option<Duration>,
    pub idle_timeout: Option<Duration>,
    pub retries: u32,
    pub max_fails: u32,
    pub fail_timeout: Duration,
}

impl UpstreamConf {
    /// Spoken to in plain HTTP/1.1 (no TLS; h2c only with `alpn = "h2"`).
    pub fn plain_h1(&self) -> bool {
        !self.tls && self.alpn != Alpn::H2
    }
}

/// An upstream built from its config, shared by all requests of a config version (and by
/// later versions while its config stays the same).
#[derive(Debug)]
pub struct Upstream {
    pub name: String,
    pub algo: Algo,
    pub health: Option<HealthCheck>,
    pub conf: UpstreamConf,
    set: ArcSwap<PeerSet>,
    rr: AtomicUsize,
    checked: AtomicBool,
    discovering: AtomicBool,
    /// discovery finished its first round (true at once for a static upstream)
    first_round: AtomicBool,
    first_round_done: tokio::sync::Notify,
    /// its metrics handles, when metrics are on
    pub metrics: Option<crate::observability::metrics::handles::UpstreamMetrics>,
}

/// What [`Upstream::replace_peers`] changed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct PeerChange {
    pub added: Vec<SocketAddr>,
    pub removed: Vec<SocketAddr>,
}

impl Upstream {
    /// `metrics`: count in the metrics (some server exposes them).
    pub fn new(conf: &UpstreamConf, metrics: bool) -> Upstream {
        let peers = conf
            .addrs
            .iter()
            .map(|(addr, weight)| Arc::new(Peer::new(conf, *addr, *weight, true)))
            .collect::<Vec<_>>();
        Upstream {
            name: conf.name.clone(),
            set: ArcSwap::from_pointee(PeerSet::new(peers, &conf.algo)),
            algo: conf.algo.clone(),
            health: conf.health.clone(),
            conf: conf.clone(),
            rr: AtomicUsize::new(0),
            checked: AtomicBool::new(false),
            discovering: AtomicBool::new(false),
            first_round: AtomicBool::new(conf.discovery == Discovery::Static),
            first_round_done: tokio::sync::Notify::new(),
            metrics: metrics
                .then(|| crate::observability::metrics::handles::UpstreamMetrics::new(&conf.name)),
        }
    }

    /// The peers now (a lock-free read; the set may be replaced by the next one meanwhile).
    pub fn peers(&self) -> arc_swap::Guard<Arc<PeerSet>> {
        self.set.load()
    }

    pub fn peer_count(&self) -> usize {
        self.set.load().len()
    }

    /// True the first time only: makes sure one health-check task runs per upstream.
    pub fn mark_checked(&self) -> bool {
        !self.checked.swap(true, Ordering::SeqCst)
    }

    /// True the first time only: makes sure one discovery task runs per upstream.
    pub fn mark_discovering(&self) -> bool {
        !self.discovering.swap(true, Ordering::SeqCst)
    }

    /// Discovery's first round is over (whatever it found): requests stop waiting for it.
    pub fn first_round_over(&self) {
        self.first_round.store(true, Ordering::Release);
        self.first_round_done.notify_waiters();
    }

    /// A request that comes before discovery's first round waits for it, up to `limit`
    /// (so the first requests after a start do not fail for want of peers).
    pub async fn wait_first_round(&self, limit: Duration) {
        if self.first_round.load(Ordering::Acquire) {
            return;
        }
        let done = self.first_round_done.notified();
        tokio::pin!(done);
        done.as_mut().enable();
        if self.first_round.load(Ordering::Acquire) {
            return;
        }
        let _ = tokio::time::timeout(limit, done).await;
    }

    /// Publish a new peer list. Peers whose address and weight stay keep their state; a new
    /// peer starts healthy or not as `healthy(addr)` says (the health check's verdict).
    pub fn replace_peers(
        &self,
        list: &[(SocketAddr, u32)],
        healthy: impl Fn(SocketAddr) -> bool,
    ) -> PeerChange {
        let old = self.set.load_full();
        let mut change = PeerChange::default();
        let peers = list
            .iter()
            .map(|(addr, weight)| match old.find(*addr) {
                Some(p) if p.weight == *weight => p.clone(),
                Some(p) => Arc::new(Peer::new(&self.conf, *addr, *weight, p.is_healthy())),
                None => {
                    change.added.push(*addr);
                    Arc::new(Peer::new(&self.conf, *addr, *weight, healthy(*addr)))
                }
            })
            .collect::<Vec<_>>();
        change.removed = old
            .iter()
            .filter(|p| !list.iter().any(|(a, _)| *a == p.addr))
            .map(|p| p.addr)
            .collect();
        self.set
            .store(Arc::new(PeerSet::new(peers, &self.conf.algo)));
        change
    }

    /// Pick a peer. `hash_key` is used by hash algorithms; `tried` are peers this request
    /// already failed on.
    pub fn select(&self, hash_key: Option<&[u8]>, tried: &[SocketAddr]) -> Option<Arc<Peer>> {
        let set = self.set.load();
        if set.is_empty() {
            return None;
        }
        let now = peer::LazyNow::default();
        let fresh = |i: usize| !tried.contains(&set[i].addr);
        let avail = |i: usize| fresh(i) && set[i].available(&now);
        let i = self
            .pick(&set, hash_key, &avail)
            .or_else(|| self.pick(&set, hash_key, &fresh))?;
        set.get(i).cloned()
    }

    fn pick(
        &self,
        set: &PeerSet,
        hash_key: Option<&[u8]>,
        ok: &dyn Fn(usize) -> bool,
    ) -> Option<usize> {
        match (&self.algo, hash_key, &set.ring) {
            (Algo::Hash(_), Some(key), Some(ring)) => ring
                .0
                .node_iter(key)
                .take(set.len() * 4)
                .find_map(|addr| {
                    let i = set.iter().position(|p| p.addr == *addr)?;
                    ok(i).then_some(i)
                })
                .or_else(|| self.round_robin(set, ok)),
            (Algo::Random, _, _) => random(set, ok),
            (Algo::LeastConn, _, _) => self.least_conn(set, ok),
            _ => self.round_robin(set, ok),
        }
    }

    fn round_robin(&self, set: &PeerSet, ok: &dyn Fn(usize) -> bool) -> Option<usize> {
        let n = set.schedule.len();
        if n == 0 {
            return None;
        }
        let start = self.rr.fetch_add(1, Ordering::Relaxed);
        (0..n)
            .map(|k| set.schedule[(start + k) % n] as usize)
            .find(|i| ok(*i))
    }

    fn least_conn(&self, set: &PeerSet, ok: &dyn Fn(usize) -> bool) -> Option<usize> {
        // lowest inflight/weight; ties go round robin so idle peers share the load
        let start = self.rr.fetch_add(1, Ordering::Relaxed);
        let n = set.len();
        let mut best: Option<usize> = None;
        for k in 0..n {
            let i = (start + k) % n;
            if !ok(i) {
                continue;
            }
            best = match best {
                None => Some(i),
                Some(b) => {
                    let (pi, pb) = (&set[i], &set[b]);
                    let lhs = pi.inflight() as u64 * pb.weight as u64;
                    let rhs = pb.inflight() as u64 * pi.weight as u64;
                    Some(if lhs < rhs { i } else { b })
                }
            };
        }
        best
    }

    /// Passive health: a connect or proxy failure on `peer`.
    pub fn record_failure(&self, peer: &Peer) {
        let ms = self.conf.fail_timeout.as_millis() as u64;
        if peer.record_failure(self.conf.max_fails, ms) {
            tracing::warn!(
                upstream = %self.name, peer = %peer.addr,
                "circuit open for {:?}", self.conf.fail_timeout
            );
        }
    }

    /// Passive health: `peer` answered.
    pub fn record_success(&self, peer: &Peer) {
        peer.record_success();
    }
}

fn random(set: &PeerSet, ok: &dyn Fn(usize) -> bool) -> Option<usize> {
    use rand::Rng;
    let n = set.schedule.len();
    if n == 0 {
        return None;
    }
    let start = rand::thread_rng().gen_range(0..n);
    (0..n)
        .map(|k| set.schedule[(start + k) % n] as usize)
        .find(|i| ok(*i))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conf(algo: Algo, n: u16) -> UpstreamConf {
        UpstreamConf {
            name: "t".into(),
            addrs: (0..n)
                .map(|i| (SocketAddr::from(([127, 0, 0, 1], 1000 + i)), 1))
                .collect(),
            discovery: Discovery::Static,
            algo,
            health: None,
            alpn: Alpn::H1,
            tls: false,
            sni: String::new(),
            verify_cert: true,
            ca: None,
            connect_timeout: Duration::from_secs(1),
            read_timeout: None,
            write_timeout: None,
            idle_timeout: None,
            retries: 1,
            max_fails: 2,
            fail_timeout: Duration::from_secs(60),
        }
    }

    fn addr(i: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 1000 + i))
    }

    fn pick(up: &Upstream, key: Option<&[u8]>, tried: &[SocketAddr]) -> Option<SocketAddr> {
        up.select(key, tried).map(|p| p.addr)
    }

    #[test]
    fn skips_tried_and_open_circuits() {
        let up = Upstream::new(&conf(Algo::RoundRobin, 3), false);
        assert_ne!(pick(&up, None, &[addr(0)]), Some(addr(0)));
        let one = up.peers()[1].clone();
        up.record_failure(&one);
        up.record_failure(&one);
        for _ in 0..10 {
            assert_ne!(pick(&up, None, &[]), Some(addr(1)));
        }
        up.record_success(&one);
        assert!((0..6).any(|_| pick(&up, None, &[]) == Some(addr(1))));
        // nothing available: still tries an untried peer
        up.peers().iter().for_each(|p| p.set_healthy(false));
        assert_eq!(pick(&up, None, &[addr(0), addr(1)]), Some(addr(2)));
        assert_eq!(pick(&up, None, &[addr(0), addr(1), addr(2)]), None);
    }

    #[test]
    fn hash_is_sticky() {
        let up = Upstream::new(&conf(Algo::Hash(balance::HashKey::Path), 5), false);
        let a = pick(&up, Some(b"/a"), &[]);
        for _ in 0..5 {
            assert_eq!(pick(&up, Some(b"/a"), &[]), a);
        }
    }

    #[test]
    fn replaced_peers_keep_their_state() {
        let up = Upstream::new(&conf(Algo::RoundRobin, 2), false);
        let kept = up.peers()[1].clone();
        kept.set_healthy(false);
        let guard = InflightGuard::new(up.peers()[0].clone());
        let change = up.replace_peers(&[(addr(1), 1), (addr(7), 2)], |_| false);
        assert_eq!(change.added, vec![addr(7)]);
        assert_eq!(change.removed, vec![addr(0)]);
        let now = up.peers();
        assert!(
            Arc::ptr_eq(&now[0], &kept),
            "a peer that stays is the same peer"
        );
        assert!(!now[1].is_healthy(), "a new peer starts as the check said");
        // the removed peer still counts the request it serves, until that ends
        drop(guard);
        assert_eq!(now.len(), 2);
        assert_eq!(up.peer_count(), 2);
    }
}
