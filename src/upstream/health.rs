//! Active health checks, in the SPEC's URL form.
//!
//! ```toml
//! [upstreams.api]
//! health_check = "http://api/healthz?interval=5s&timeout=1s&success=2&failure=3"
//! # or "tcp://api?interval=2s"  (connect only)
//! ```
//!
//! Every `interval`, each peer is probed (an HTTP GET of the path with the URL's host as
//! `Host`, or a TCP connect). A 2xx or 3xx answer within `timeout` is a success. A healthy peer
//! that fails `failure` times in a row leaves the rotation; an unhealthy peer that succeeds
//! `success` times in a row comes back. Probes go through Pingora's connector, so TLS, SNI
//! and ALPN are those of the upstream.

use super::{Peer, Upstream};
use pingora::http::RequestHeader;
use std::sync::{Arc, Weak};
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeKind {
    Tcp,
    Http { host: String, path: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheck {
    pub kind: ProbeKind,
    pub interval: Duration,
    pub timeout: Duration,
    pub success: u32,
    pub failure: u32,
}

impl HealthCheck {
    pub fn parse(s: &str) -> Result<HealthCheck, String> {
        let (scheme, rest) = s
            .split_once("://")
            .ok_or_else(|| format!("health_check `{s}` must start with http:// or tcp://"))?;
        let (target, params) = rest.split_once('?').unwrap_or((rest, ""));
        let (host, path) = match target.find('/') {
            Some(i) => (&target[..i], &target[i..]),
            None => (target, "/"),
        };
        let kind = match scheme {
            "http" => ProbeKind::Http {
                host: host.to_string(),
                path: path.to_string(),
            },
            "tcp" => ProbeKind::Tcp,
            other => return Err(format!("health_check scheme `{other}`: use http or tcp")),
        };
        let mut hc = HealthCheck {
            kind,
            interval: Duration::from_secs(5),
            timeout: Duration::from_secs(1),
            success: 2,
            failure: 3,
        };
        for pair in params.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let count = |v: &str| -> Result<u32, String> {
                v.parse::<u32>()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| format!("health_check {k}=`{v}` must be a positive integer"))
            };
            match k {
                "interval" => hc.interval = crate::config::units::parse_duration(v)?,
                "timeout" => hc.timeout = crate::config::units::parse_duration(v)?,
                "success" => hc.success = count(v)?,
                "failure" => hc.failure = count(v)?,
                other => {
                    return Err(format!(
                        "health_check parameter `{other}`: use interval, timeout, success, failure"
                    ))
                }
            }
        }
        if hc.interval.is_zero() {
            return Err("health_check interval must be above zero".into());
        }
        Ok(hc)
    }
}

/// Probe every peer of `upstream` forever, until the upstream is dropped (config reload).
/// Each round probes the peers of the set as it is then (discovery may change it).
pub async fn run(upstream: Weak<Upstream>, hc: HealthCheck) {
    let connector = pingora::connectors::http::Connector::new(None);
    loop {
        let Some(up) = upstream.upgrade() else { return };
        let peers = up.peers().peers.clone();
        let probes = peers
            .iter()
            .map(|p| probe(&connector, p, &hc))
            .collect::<Vec<_>>();
        let results = futures::future::join_all(probes).await;
        for (peer, ok) in peers.iter().zip(results) {
            judge(&up.name, peer, ok, &hc);
        }
        drop(up);
        tokio::time::sleep(hc.interval).await;
    }
}

/// Count one probe's result; the peer leaves or rejoins the rotation after enough in a row.
fn judge(upstream: &str, peer: &Peer, ok: bool, hc: &HealthCheck) {
    use std::sync::atomic::Ordering::Relaxed;
    if ok {
        let oks = peer.ok_streak.fetch_add(1, Relaxed) + 1;
        peer.fail_streak.store(0, Relaxed);
        if !peer.is_healthy() && oks >= hc.success {
            peer.set_healthy(true);
            tracing::info!(upstream, peer = %peer.addr, "peer healthy again");
        }
    } else {
        let fails = peer.fail_streak.fetch_add(1, Relaxed) + 1;
        peer.ok_streak.store(0, Relaxed);
        if peer.is_healthy() && fails >= hc.failure {
            peer.set_healthy(false);
            tracing::warn!(upstream, peer = %peer.addr, "peer unhealthy, out of rotation");
        }
    }
}

/// One probe of a peer that is not in the set yet: discovery asks before it adds one, so a
/// new peer starts as the check says.
pub async fn probe_new(up: &Upstream, peer: &Peer, hc: &HealthCheck) -> bool {
    let connector = pingora::connectors::http::Connector::new(None);
    let ok = probe(&connector, peer, hc).await;
    if !ok {
        tracing::info!(upstream = %up.name, peer = %peer.addr, "new peer failed its first check: joins out of rotation");
    }
    ok
}

async fn probe(
    connector: &pingora::connectors::http::Connector,
    peer: &Peer,
    hc: &HealthCheck,
) -> bool {
    let attempt = async {
        match &hc.kind {
            ProbeKind::Tcp => tokio::net::TcpStream::connect(peer.addr).await.is_ok(),
            ProbeKind::Http { host, path } => {
                let Ok((mut session, _)) = connector.get_http_session(&peer.http).await else {
                    return false;
                };
                let Ok(mut req) = RequestHeader::build("GET", path.as_bytes(), None) else {
                    return false;
                };
                if req.insert_header("host", host.as_str()).is_err()
                    || req.insert_header("user-agent", "tidegate-health").is_err()
                {
                    return false;
                }
                if session.write_request_header(Box::new(req)).await.is_err()
                    || session.finish_request_body().await.is_err()
                    || session.read_response_header().await.is_err()
                {
                    return false;
                }
                let ok = session
                    .response_header()
                    .map(|r| r.status.is_success() || r.status.is_redirection())
                    .unwrap_or(false);
                session.shutdown().await;
                ok
            }
        }
    };
    tokio::time::timeout(hc.timeout, attempt)
        .await
        .unwrap_or(false)
}

/// Start checks for every upstream that has one. Each task ends when its upstream is dropped.
pub fn spawn_all(upstreams: &[Arc<Upstream>]) {
    for up in upstreams {
        if let Some(hc) = up.health.clone() {
            if up.mark_checked() {
                tokio::spawn(run(Arc::downgrade(up), hc));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_url_form() {
        let hc =
            HealthCheck::parse("http://api/healthz?interval=2s&timeout=500ms&success=1&failure=2")
                .unwrap();
        assert_eq!(hc.interval, Duration::from_secs(2));
        assert_eq!(hc.failure, 2);
        assert_eq!(
            hc.kind,
            ProbeKind::Http {
                host: "api".into(),
                path: "/healthz".into()
            }
        );
        assert_eq!(HealthCheck::parse("tcp://x").unwrap().kind, ProbeKind::Tcp);
        assert!(HealthCheck::parse("ftp://x").is_err());
        assert!(HealthCheck::parse("http://x/?success=0").is_err());
        assert!(HealthCheck::parse("http://x/?bogus=1").is_err());
    }
}
