//! DNS discovery: an upstream's peers are the A/AAAA records of its names, or the targets of
//! its SRV records, re-resolved as their TTL runs out.
//!
//! ```toml
//! [basic]
//! resolver = "127.0.0.1:5353"     # default: the servers of /etc/resolv.conf
//!
//! [upstreams.users]
//! discovery = "dns"
//! addrs = [
//!   "users.internal:8080 2",      # every A and AAAA record, port 8080, weight 2 each
//!   "_http._tcp.users.internal",  # SRV: port and weight from the records
//! ]
//! dns_min_ttl = "1s"
//! dns_max_ttl = "5m"
//! ```
//!
//! SRV records of the lowest priority are the peers (higher priorities are the backups of
//! RFC 2782; they are used only when no record of a lower priority is left); a weight of 0
//! counts as 1. Lookups go to the DNS server, never to a cache of the resolver's: the task
//! itself waits the TTL (bounded by `dns_min_ttl`/`dns_max_ttl`) before asking again. A
//! failed lookup of any name, or one that finds nothing, keeps the last good set.

use super::{apply, clamp, Outage};
use crate::upstream::Upstream;
use hickory_resolver::config::{
    ConnectionConfig, LookupIpStrategy, NameServerConfig, ResolveHosts, ResolverConfig,
};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::{RData, RecordType};
use hickory_resolver::TokioResolver;
use std::net::SocketAddr;
use std::sync::Weak;
use std::time::Duration;

/// One entry of `addrs` under `discovery = "dns"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DnsTarget {
    /// `name:port [weight]`: A and AAAA records
    Host {
        name: String,
        port: u16,
        weight: u32,
    },
    /// `_service._proto.name`: SRV records
    Srv { name: String },
}

/// What a DNS-discovered upstream's task needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsConf {
    pub targets: Vec<DnsTarget>,
    /// `[basic] resolver`; `None`: the system's
    pub resolver: Option<SocketAddr>,
    pub min_ttl: Duration,
    pub max_ttl: Duration,
}

impl DnsTarget {
    /// Parse `name:port`, or `_service._proto.name` (an SRV name, no port); `weight` was
    /// split off by the caller.
    pub fn parse(entry: &str, weight: u32) -> Result<DnsTarget, String> {
        if entry.starts_with('_') {
            if entry.contains(':') {
                return Err(format!(
                    "`{entry}`: an SRV name takes no port (the records give it)"
                ));
            }
            check_name(entry)?;
            return Ok(DnsTarget::Srv {
                name: entry.to_string(),
            });
        }
        let (name, port) = entry.rsplit_once(':').ok_or_else(|| {
            format!("`{entry}` needs a port (NAME:PORT), or is an SRV name (_service._proto.NAME)")
        })?;
        let port = port
            .parse::<u16>()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| format!("`{entry}`: port `{port}` is not 1..=65535"))?;
        check_name(name)?;
        Ok(DnsTarget::Host {
            name: name.to_string(),
            port,
            weight,
        })
    }
}

fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 253
        && name.trim_end_matches('.').split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes()
                    .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
        });
    if ok {
        Ok(())
    } else {
        Err(format!("`{name}` is not a DNS name"))
    }
}

/// The resolver discovery asks: the configured server (UDP, then TCP for long answers), or
/// the system's. Its cache is off: the task keeps the TTL itself.
fn resolver(conf: &DnsConf) -> Result<TokioResolver, String> {
    let mut builder = match conf.resolver {
        Some(addr) => {
            let conn = |mut c: ConnectionConfig| {
                c.port = addr.port();
                c
            };
            let server = NameServerConfig::new(
                addr.ip(),
                true,
                vec![conn(ConnectionConfig::udp()), conn(ConnectionConfig::tcp())],
            );
            let config = ResolverConfig::from_parts(None, Vec::new(), vec![server]);
            let mut b = TokioResolver::builder_with_config(config, TokioRuntimeProvider::default());
            b.options_mut().use_hosts_file = ResolveHosts::Never;
            b
        }
        None => TokioResolver::builder_tokio()
            .map_err(|e| format!("cannot read the system's resolver config: {e}"))?,
    };
    let o = builder.options_mut();
    o.cache_size = 0;
    o.ip_strategy = LookupIpStrategy::Ipv4AndIpv6;
    o.timeout = Duration::from_secs(2);
    o.attempts = 2;
    builder.build().map_err(|e| e.to_string())
}

/// Resolve every target: the peers and the shortest TTL among the records.
async fn resolve_all(
    r: &TokioResolver,
    conf: &DnsConf,
) -> Result<(Vec<(SocketAddr, u32)>, Duration), String> {
    let mut peers = Vec::new();
    let mut ttl = conf.max_ttl;
    for t in &conf.targets {
        match t {
            DnsTarget::Host { name, port, weight } => {
                let (ips, t) = lookup_ips(r, name).await?;
                ttl = ttl.min(t);
                peers.extend(
                    ips.into_iter()
                        .map(|ip| (SocketAddr::new(ip, *port), *weight)),
                );
            }
            DnsTarget::Srv { name } => {
                let found = r
                    .lookup(name.as_str(), RecordType::SRV)
                    .await
                    .map_err(|e| format!("SRV {name}: {e}"))?;
                let mut records = Vec::new();
                for rec in found.answers() {
                    ttl = ttl.min(Duration::from_secs(rec.ttl.into()));
                    if let RData::SRV(srv) = &rec.data {
                        records.push(srv.clone());
                    }
                }
                let Some(best) = records.iter().map(|s| s.priority).min() else {
                    return Err(format!("SRV {name}: no records"));
                };
                for srv in records.iter().filter(|s| s.priority == best) {
                    let target = srv.target.to_utf8();
                    let (ips, t) = lookup_ips(r, &target).await?;
                    ttl = ttl.min(t);
                    let weight = u32::from(srv.weight).clamp(1, 1000);
                    peers.extend(
                        ips.into_iter()
                            .map(|ip| (SocketAddr::new(ip, srv.port), weight)),
                    );
                }
            }
        }
    }
    Ok((peers, ttl))
}

async fn lookup_ips(
    r: &TokioResolver,
    name: &str,
) -> Result<(Vec<std::net::IpAddr>, Duration), String> {
    let found = r
        .lookup_ip(name)
        .await
        .map_err(|e| format!("{name}: {e}"))?;
    let ttl = found
        .as_lookup()
        .answers()
        .iter()
        .map(|rec| Duration::from_secs(rec.ttl.into()))
        .min()
        .unwrap_or_default();
    let ips = found.iter().collect::<Vec<_>>();
    if ips.is_empty() {
        return Err(format!("{name}: no A or AAAA records"));
    }
    Ok((ips, ttl))
}

/// Keep `upstream`'s peers what DNS says, until the upstream is dropped.
pub async fn run(upstream: Weak<Upstream>, conf: DnsConf) {
    let r = match resolver(&conf) {
        Ok(r) => r,
        Err(e) => {
            if let Some(up) = upstream.upgrade() {
                tracing::error!(upstream = %up.name, "discovery: no DNS resolver: {e}");
                up.first_round_over();
            }
            return;
        }
    };
    let mut outage = Outage::default();
    loop {
        let Some(up) = upstream.upgrade() else { return };
        let wait = match resolve_all(&r, &conf).await {
            Ok((found, ttl)) if !found.is_empty() => {
                outage.ok(&up.name, "DNS");
                apply(&up, found).await;
                clamp(ttl, conf.min_ttl, conf.max_ttl)
            }
            Ok(_) => {
                outage.failed(&up.name, "DNS", &"no records");
                conf.min_ttl
            }
            Err(e) => {
                outage.failed(&up.name, "DNS", &e);
                conf.min_ttl
            }
        };
        up.first_round_over();
        drop(up);
        tokio::time::sleep(wait).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_targets() {
        assert_eq!(
            DnsTarget::parse("api.internal:8080", 2),
            Ok(DnsTarget::Host {
                name: "api.internal".into(),
                port: 8080,
                weight: 2
            })
        );
        assert!(matches!(
            DnsTarget::parse("_http._tcp.api.internal", 1),
            Ok(DnsTarget::Srv { .. })
        ));
        assert!(DnsTarget::parse("api.internal", 1).is_err());
        assert!(DnsTarget::parse("api.internal:0", 1).is_err());
        assert!(DnsTarget::parse("_http._tcp.x:80", 1).is_err());
        assert!(DnsTarget::parse("bad name:80", 1).is_err());
        assert!(DnsTarget::parse("a..b:80", 1).is_err());
    }
}
