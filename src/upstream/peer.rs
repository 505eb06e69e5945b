//! One peer of an upstream with its live state, and the set of peers the balancer picks
//! from.
//!
//! A set is immutable: discovery (`discovery/`) publishes a new one when the peers change,
//! and a request keeps the [`Arc<Peer>`] it was given to the end, so a peer that leaves the
//! set finishes what it is serving. Peers that stay are carried into the new set as they are
//! (their health, circuit and in-flight count with them).

use super::balance::smooth_schedule;
use super::{Algo, UpstreamConf};
use pingora::protocols::ALPN;
use pingora::upstreams::peer::HttpPeer;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

/// One peer and its live state.
#[derive(Debug)]
pub struct Peer {
    pub addr: SocketAddr,
    pub weight: u32,
    /// Template handed to Pingora (cloned per attempt).
    pub http: HttpPeer,
    healthy: AtomicBool,
    consecutive_fails: AtomicU32,
    /// circuit open until this many ms after process start
    open_until: AtomicU64,
    inflight: AtomicUsize,
    /// active checks: successes and failures in a row (only the check task writes them)
    pub(super) ok_streak: AtomicU32,
    pub(super) fail_streak: AtomicU32,
}

impl Peer {
    pub fn new(conf: &UpstreamConf, addr: SocketAddr, weight: u32, healthy: bool) -> Peer {
        Peer {
            addr,
            weight,
            http: http_peer(conf, addr),
            healthy: AtomicBool::new(healthy),
            consecutive_fails: AtomicU32::new(0),
            open_until: AtomicU64::new(0),
            inflight: AtomicUsize::new(0),
            ok_streak: AtomicU32::new(0),
            fail_streak: AtomicU32::new(0),
        }
    }
    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }
    pub fn set_healthy(&self, v: bool) {
        self.healthy.store(v, Ordering::Relaxed);
    }
    /// Failures in a row (passive health), until the peer answers again.
    pub fn failures(&self) -> u32 {
        self.consecutive_fails.load(Ordering::Relaxed)
    }
    pub fn inflight(&self) -> usize {
        self.inflight.load(Ordering::Relaxed)
    }
    /// Passive failures hold the peer out right now.
    pub fn circuit_open(&self) -> bool {
        self.open_until.load(Ordering::Relaxed) > now_ms()
    }
    pub(super) fn available(&self, now: &LazyNow) -> bool {
        // a circuit never opened (0) needs no clock
        self.is_healthy() && {
            let until = self.open_until.load(Ordering::Relaxed);
            until == 0 || until <= now.get()
        }
    }

    /// Passive health: a connect or proxy failure. Returns true when this failure opened
    /// the circuit.
    pub(super) fn record_failure(&self, max_fails: u32, fail_timeout_ms: u64) -> bool {
        let fails = self.consecutive_fails.fetch_add(1, Ordering::Relaxed) + 1;
        if max_fails > 0 && fails >= max_fails {
            let now = now_ms();
            let was = self
                .open_until
                .swap(now + fail_timeout_ms, Ordering::Relaxed);
            return was <= now;
        }
        false
    }

    /// Passive health: the peer answered.
    pub(super) fn record_success(&self) {
        if self.consecutive_fails.load(Ordering::Relaxed) != 0 {
            self.consecutive_fails.store(0, Ordering::Relaxed);
            self.open_until.store(0, Ordering::Relaxed);
        }
    }
}

/// Increments a peer's in-flight count for `least_conn`, and decrements it when dropped.
#[derive(Debug)]
pub struct InflightGuard {
    peer: Arc<Peer>,
}

impl InflightGuard {
    pub fn new(peer: Arc<Peer>) -> InflightGuard {
        peer.inflight.fetch_add(1, Ordering::Relaxed);
        InflightGuard { peer }
    }
}

impl Drop for InflightGuard {
    fn drop(&mut self) {
        self.peer.inflight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The ketama ring of a hash upstream.
pub(super) struct Ring(pub(super) pingora_ketama::Continuum);

impl std::fmt::Debug for Ring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Ring")
    }
}

/// The peers of an upstream at one moment, with the balancer's schedule over them.
#[derive(Debug, Default)]
pub struct PeerSet {
    pub peers: Vec<Arc<Peer>>,
    pub(super) schedule: Vec<u32>,
    pub(super) ring: Option<Ring>,
}

impl std::ops::Deref for PeerSet {
    type Target = [Arc<Peer>];
    fn deref(&self) -> &[Arc<Peer>] {
        &self.peers
    }
}

impl PeerSet {
    pub fn new(peers: Vec<Arc<Peer>>, algo: &Algo) -> PeerSet {
        let weights = peers.iter().map(|p| p.weight).collect::<Vec<_>>();
        let ring = matches!(algo, Algo::Hash(_)).then(|| {
            let buckets = peers
                .iter()
                .map(|p| pingora_ketama::Bucket::new(p.addr, p.weight))
                .collect::<Vec<_>>();
            Ring(pingora_ketama::Continuum::new(&buckets))
        });
        PeerSet {
            schedule: smooth_schedule(&weights),
            peers,
            ring,
        }
    }

    pub fn find(&self, addr: SocketAddr) -> Option<&Arc<Peer>> {
        self.peers.iter().find(|p| p.addr == addr)
    }
}

/// The time of [`now_ms`], read once and only if asked: most selections never need it.
#[derive(Default)]
pub(super) struct LazyNow(std::cell::Cell<Option<u64>>);

impl LazyNow {
    pub(super) fn get(&self) -> u64 {
        match self.0.get() {
            Some(t) => t,
            None => {
                let t = now_ms();
                self.0.set(Some(t));
                t
            }
        }
    }
}

/// Milliseconds since the first call (the circuit's clock).
pub(super) fn now_ms() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_millis() as u64
}

fn http_peer(conf: &UpstreamConf, addr: SocketAddr) -> HttpPeer {
    let sni = if conf.sni.is_empty() {
        addr.ip().to_string()
    } else {
        conf.sni.clone()
    };
    let mut peer = HttpPeer::new(addr, conf.tls, sni);
    let o = &mut peer.options;
    o.connection_timeout = Some(conf.connect_timeout);
    o.read_timeout = conf.read_timeout;
    o.write_timeout = conf.write_timeout;
    o.idle_timeout = conf.idle_timeout;
    o.verify_cert = conf.verify_cert;
    o.verify_hostname = conf.verify_cert;
    if let Some(ders) = &conf.ca {
        let certs = ders
            .iter()
            .map(|d| {
                pingora::utils::tls::WrappedX509::new(d.clone(), pingora::utils::tls::parse_x509)
            })
            .collect::<Vec<_>>();
        o.ca = Some(Arc::from(certs));
    }
    o.alpn = match conf.alpn {
        super::Alpn::H1 => ALPN::H1,
        super::Alpn::H2 => ALPN::H2,
        super::Alpn::H2H1 => ALPN::H2H1,
    };
    peer
}
