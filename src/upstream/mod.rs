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
pub mod health;

use balance::{smooth_schedule, Algo};
use health::HealthCheck;
use pingora::protocols::ALPN;
use pingora::upstreams::peer::HttpPeer;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

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
    pub addrs: Vec<(SocketAddr, u32)>,
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
}

impl Peer {
    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }
    pub fn set_healthy(&self, v: bool) {
        self.healthy.store(v, Ordering::Relaxed);
    }
    pub fn inflight(&self) -> usize {
        self.inflight.load(Ordering::Relaxed)
    }
    /// Passive failures hold the peer out right now.
    pub fn circuit_open(&self) -> bool {
        self.open_until.load(Ordering::Relaxed) > now_ms()
    }
    fn available(&self, now: u64) -> bool {
        self.is_healthy() && self.open_until.load(Ordering::Relaxed) <= now
    }
}

/// An upstream built from its config, shared by all requests of a config version.
#[derive(Debug)]
pub struct Upstream {
    pub name: String,
    pub peers: Vec<Peer>,
    pub algo: Algo,
    pub health: Option<HealthCheck>,
    pub conf: UpstreamConf,
    schedule: Vec<u32>,
    rr: AtomicUsize,
    ring: Option<Ring>,
    checked: AtomicBool,
    /// its metrics handles, when metrics are on
    pub metrics: Option<crate::observability::metrics::handles::UpstreamMetrics>,
}

/// The ketama ring of a hash upstream.
struct Ring(pingora_ketama::Continuum);

impl std::fmt::Debug for Ring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Ring")
    }
}

fn now_ms() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_millis() as u64
}

/// Increments a peer's in-flight count for `least_conn`, and decrements it when dropped.
#[derive(Debug)]
pub struct InflightGuard {
    upstream: std::sync::Arc<Upstream>,
    peer: usize,
}

impl Drop for InflightGuard {
    fn drop(&mut self) {
        if let Some(p) = self.upstream.peers.get(self.peer) {
            p.inflight.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

impl Upstream {
    /// `metrics`: count in the metrics (some server exposes them).
    pub fn new(conf: &UpstreamConf, metrics: bool) -> Upstream {
        let peers = conf
            .addrs
            .iter()
            .map(|(addr, weight)| Peer {
                addr: *addr,
                weight: *weight,
                http: http_peer(conf, *addr),
                healthy: AtomicBool::new(true),
                consecutive_fails: AtomicU32::new(0),
                open_until: AtomicU64::new(0),
                inflight: AtomicUsize::new(0),
            })
            .collect::<Vec<_>>();
        let weights = peers.iter().map(|p| p.weight).collect::<Vec<_>>();
        let ring = matches!(conf.algo, Algo::Hash(_)).then(|| {
            let buckets = peers
                .iter()
                .map(|p| pingora_ketama::Bucket::new(p.addr, p.weight))
                .collect::<Vec<_>>();
            Ring(pingora_ketama::Continuum::new(&buckets))
        });
        Upstream {
            name: conf.name.clone(),
            schedule: smooth_schedule(&weights),
            peers,
            algo: conf.algo.clone(),
            health: conf.health.clone(),
            conf: conf.clone(),
            rr: AtomicUsize::new(0),
            ring,
            checked: AtomicBool::new(false),
            metrics: metrics
                .then(|| crate::observability::metrics::handles::UpstreamMetrics::new(&conf.name)),
        }
    }

    /// True the first time only: makes sure one health-check task runs per upstream.
    pub fn mark_checked(&self) -> bool {
        !self.checked.swap(true, Ordering::SeqCst)
    }

    /// Pick a peer. `hash_key` is used by hash algorithms; `tried` are peers this request
    /// already failed on.
    pub fn select(&self, hash_key: Option<&[u8]>, tried: &[usize]) -> Option<usize> {
        if self.peers.is_empty() {
            return None;
        }
        let now = now_ms();
        let fresh = |i: usize| !tried.contains(&i);
        let avail = |i: usize| fresh(i) && self.peers[i].available(now);
        self.pick(hash_key, &avail)
            .or_else(|| self.pick(hash_key, &fresh))
    }

    fn pick(&self, hash_key: Option<&[u8]>, ok: &dyn Fn(usize) -> bool) -> Option<usize> {
        match (&self.algo, hash_key, &self.ring) {
            (Algo::Hash(_), Some(key), Some(ring)) => ring
                .0
                .node_iter(key)
                .take(self.peers.len() * 4)
                .find_map(|addr| {
                    let i = self.peers.iter().position(|p| p.addr == *addr)?;
                    ok(i).then_some(i)
                })
                .or_else(|| self.round_robin(ok)),
            (Algo::Random, _, _) => self.random(ok),
            (Algo::LeastConn, _, _) => self.least_conn(ok),
            _ => self.round_robin(ok),
        }
    }

    fn round_robin(&self, ok: &dyn Fn(usize) -> bool) -> Option<usize> {
        let n = self.schedule.len();
        if n == 0 {
            return None;
        }
        let start = self.rr.fetch_add(1, Ordering::Relaxed);
        (0..n)
            .map(|k| self.schedule[(start + k) % n] as usize)
            .find(|i| ok(*i))
    }

    fn random(&self, ok: &dyn Fn(usize) -> bool) -> Option<usize> {
        use rand::Rng;
        let n = self.schedule.len();
        if n == 0 {
            return None;
        }
        let start = rand::thread_rng().gen_range(0..n);
        (0..n)
            .map(|k| self.schedule[(start + k) % n] as usize)
            .find(|i| ok(*i))
    }

    fn least_conn(&self, ok: &dyn Fn(usize) -> bool) -> Option<usize> {
        // lowest inflight/weight; ties go round robin so idle peers share the load
        let start = self.rr.fetch_add(1, Ordering::Relaxed);
        let n = self.peers.len();
        let mut best: Option<usize> = None;
        for k in 0..n {
            let i = (start + k) % n;
            if !ok(i) {
                continue;
            }
            best = match best {
                None => Some(i),
                Some(b) => {
                    let (pi, pb) = (&self.peers[i], &self.peers[b]);
                    let lhs = pi.inflight() as u64 * pb.weight as u64;
                    let rhs = pb.inflight() as u64 * pi.weight as u64;
                    Some(if lhs < rhs { i } else { b })
                }
            };
        }
        best
    }

    /// Count this request against the peer until the guard drops.
    pub fn track(self: &std::sync::Arc<Self>, peer: usize) -> InflightGuard {
        if let Some(p) = self.peers.get(peer) {
            p.inflight.fetch_add(1, Ordering::Relaxed);
        }
        InflightGuard {
            upstream: self.clone(),
            peer,
        }
    }

    /// Passive health: a connect or proxy failure on `peer`.
    pub fn record_failure(&self, peer: usize) {
        let Some(p) = self.peers.get(peer) else {
            return;
        };
        let fails = p.consecutive_fails.fetch_add(1, Ordering::Relaxed) + 1;
        if self.conf.max_fails > 0 && fails >= self.conf.max_fails {
            let until = now_ms() + self.conf.fail_timeout.as_millis() as u64;
            let was = p.open_until.swap(until, Ordering::Relaxed);
            if was <= now_ms() {
                tracing::warn!(
                    upstream = %self.name, peer = %p.addr, fails,
                    "circuit open for {:?}", self.conf.fail_timeout
                );
            }
        }
    }

    /// Passive health: `peer` answered.
    pub fn record_success(&self, peer: usize) {
        let Some(p) = self.peers.get(peer) else {
            return;
        };
        if p.consecutive_fails.load(Ordering::Relaxed) != 0 {
            p.consecutive_fails.store(0, Ordering::Relaxed);
            p.open_until.store(0, Ordering::Relaxed);
        }
    }
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
        Alpn::H1 => ALPN::H1,
        Alpn::H2 => ALPN::H2,
        Alpn::H2H1 => ALPN::H2H1,
    };
    peer
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

    #[test]
    fn skips_tried_and_open_circuits() {
        let up = Upstream::new(&conf(Algo::RoundRobin, 3), false);
        assert_ne!(up.select(None, &[0]), Some(0));
        up.record_failure(1);
        up.record_failure(1);
        for _ in 0..10 {
            assert_ne!(up.select(None, &[]), Some(1));
        }
        up.record_success(1);
        assert!((0..6).any(|_| up.select(None, &[]) == Some(1)));
        // nothing available: still tries an untried peer
        up.peers.iter().for_each(|p| p.set_healthy(false));
        assert_eq!(up.select(None, &[0, 1]), Some(2));
        assert_eq!(up.select(None, &[0, 1, 2]), None);
    }

    #[test]
    fn hash_is_sticky() {
        let up = Upstream::new(&conf(Algo::Hash(balance::HashKey::Path), 5), false);
        let a = up.select(Some(b"/a"), &[]);
        for _ in 0..5 {
            assert_eq!(up.select(Some(b"/a"), &[]), a);
        }
    }
}
