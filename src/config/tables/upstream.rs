//! `[upstreams.NAME]`: peers, balancing, health checks, timeouts, TLS. The steps that touch
//! the world (resolving host names, reading the CA file) are [`resolve_upstream`], which
//! `validate.rs` runs after every table's own checks.

use super::super::builder::Builder;
use super::super::raw::*;
use crate::upstream::balance::Algo;
use crate::upstream::discovery::dns::{DnsConf, DnsTarget};
use crate::upstream::discovery::docker::DockerConf;
use crate::upstream::discovery::Discovery;
use crate::upstream::health::HealthCheck;
use crate::upstream::{Alpn, UpstreamConf};
use std::net::ToSocketAddrs;
use std::time::Duration;

/// What is left to do for an upstream once every table is checked: its peers to resolve
/// (host, weight) and its CA file to read.
pub(in crate::config) struct PendingUpstream {
    peers: Vec<(String, u32)>,
    ca_file: Option<String>,
}

/// The upstream without its peers' addresses, and what [`resolve_upstream`] fills in.
pub(in crate::config) fn build_upstream(
    b: &mut Builder<'_>,
    doc: usize,
    t: &str,
    name: &str,
    raw: RawUpstream,
    basic: &crate::config::model::Basic,
) -> Option<(UpstreamConf, PendingUpstream)> {
    let before = b.errors.len();
    let kind = raw.discovery.as_deref().unwrap_or("static");
    if !matches!(kind, "static" | "dns" | "docker") {
        b.err(
            doc,
            t,
            Some("discovery"),
            format!("discovery `{kind}`: use \"static\", \"dns\" or \"docker\""),
        );
    }
    let only = |b: &mut Builder<'_>, key: &str, set: bool, needs: &str| {
        if set && kind != needs {
            b.err(
                doc,
                t,
                Some(key),
                format!("`{key}` applies to discovery = \"{needs}\" only"),
            );
        }
    };
    only(b, "dns_min_ttl", raw.dns_min_ttl.is_some(), "dns");
    only(b, "dns_max_ttl", raw.dns_max_ttl.is_some(), "dns");
    only(b, "docker_network", raw.docker_network.is_some(), "docker");
    if kind == "docker" && !raw.addrs.is_empty() {
        b.err(
            doc,
            t,
            Some("addrs"),
            "with discovery = \"docker\" the peers are the containers labelled \
             tidegate.upstream=NAME: remove addrs",
        );
    } else if kind != "docker" && raw.addrs.is_empty() {
        b.err(
            doc,
            t,
            Some("addrs"),
            "an upstream needs at least one address",
        );
    }
    let mut peers = Vec::new();
    let mut targets = Vec::new();
    for a in &raw.addrs {
        let mut parts = a.split_whitespace();
        let host = parts.next().unwrap_or("");
        let weight = match parts.next().map(str::parse::<u32>) {
            None => 1,
            Some(Ok(w)) if (1..=1000).contains(&w) => w,
            Some(_) => {
                b.err(
                    doc,
                    t,
                    Some("addrs"),
                    format!("`{a}`: weight must be 1..=1000"),
                );
                continue;
            }
        };
        if kind == "dns" {
            match DnsTarget::parse(host, weight) {
                Ok(target) => targets.push(target),
                Err(m) => b.err(doc, t, Some("addrs"), m),
            }
        } else {
            peers.push((host.to_string(), weight));
        }
    }
    let discovery = match kind {
        "dns" => {
            let min_ttl = b.duration(
                doc,
                t,
                "dns_min_ttl",
                &raw.dns_min_ttl,
                Duration::from_secs(1),
            );
            let max_ttl = b.duration(
                doc,
                t,
                "dns_max_ttl",
                &raw.dns_max_ttl,
                Duration::from_secs(300),
            );
            if min_ttl.is_zero() || min_ttl > max_ttl {
                b.err(
                    doc,
                    t,
                    Some("dns_min_ttl"),
                    "dns_min_ttl must be above zero and not above dns_max_ttl",
                );
            }
            Discovery::Dns(DnsConf {
                targets,
                resolver: basic.resolver,
                min_ttl,
                max_ttl,
            })
        }
        "docker" => Discovery::Docker(DockerConf {
            host: basic.docker_host.clone(),
            network: raw.docker_network.unwrap_or_else(|| "bridge".into()),
        }),
        _ => Discovery::Static,
    };
    let algo = Algo::parse(raw.algo.as_deref().unwrap_or("round_robin")).unwrap_or_else(|m| {
        b.err(doc, t, Some("algo"), m);
        Algo::RoundRobin
    });
    let health = raw
        .health_check
        .as_deref()
        .filter(|s| !s.is_empty())
        .and_then(|s| {
            HealthCheck::parse(s)
                .map_err(|m| b.err(doc, t, Some("health_check"), m))
                .ok()
        });
    let alpn = match raw.alpn.as_deref().unwrap_or("h1") {
        "h1" => Alpn::H1,
        "h2" => Alpn::H2,
        "h2h1" => Alpn::H2H1,
        other => {
            b.err(
                doc,
                t,
                Some("alpn"),
                format!("alpn `{other}`: use h1, h2 or h2h1"),
            );
            Alpn::H1
        }
    };
    let conf = UpstreamConf {
        name: name.to_string(),
        addrs: Vec::new(),
        discovery,
        algo,
        health,
        alpn,
        tls: raw.tls,
        sni: raw.sni.unwrap_or_default(),
        verify_cert: raw.verify_cert.unwrap_or(true),
        ca: None,
        connect_timeout: b.duration(
            doc,
            t,
            "connect_timeout",
            &raw.connect_timeout,
            Duration::from_secs(2),
        ),
        read_timeout: Some(b.duration(
            doc,
            t,
            "read_timeout",
            &raw.read_timeout,
            Duration::from_secs(30),
        )),
        write_timeout: Some(b.duration(
            doc,
            t,
            "write_timeout",
            &raw.write_timeout,
            Duration::from_secs(30),
        )),
        idle_timeout: Some(b.duration(
            doc,
            t,
            "idle_timeout",
            &raw.idle_timeout,
            Duration::from_secs(60),
        )),
        retries: raw.retries.unwrap_or(1),
        max_fails: raw.max_fails.unwrap_or(3),
        fail_timeout: b.duration(
            doc,
            t,
            "fail_timeout",
            &raw.fail_timeout,
            Duration::from_secs(10),
        ),
    };
    let pending = PendingUpstream {
        peers,
        ca_file: raw.ca_file,
    };
    (b.errors.len() == before).then_some((conf, pending))
}

/// Resolve the peers and read the CA file of an upstream [`build_upstream`] checked.
pub(in crate::config) fn resolve_upstream(
    b: &mut Builder<'_>,
    doc: usize,
    t: &str,
    conf: &mut UpstreamConf,
    pending: PendingUpstream,
) {
    if let Discovery::Docker(d) = &conf.discovery {
        let missing = crate::upstream::discovery::docker::socket_path(&d.host)
            .filter(|p| !cfg!(fuzzing) && !std::path::Path::new(p).exists());
        if let Some(path) = missing {
            b.err(
                doc,
                t,
                Some("discovery"),
                format!(
                    "discovery = \"docker\": the Docker socket {path} does not exist \
                     (is the engine running? [basic] docker_host names another)"
                ),
            );
        }
    }
    for (host, weight) in pending.peers {
        match resolve(&host) {
            Some(sa) => conf.addrs.push((sa, weight)),
            None => b.err(
                doc,
                t,
                Some("addrs"),
                format!("`{host}` is not HOST:PORT that resolves"),
            ),
        }
    }
    conf.ca = pending.ca_file.as_deref().and_then(|path| {
        crate::tls::pem::ca_file(path)
            .map_err(|m| b.err(doc, t, Some("ca_file"), m))
            .ok()
    });
}

/// `HOST:PORT` to an address: an IP literal as is, a name by the system's resolver (never
/// while fuzzing: a fuzzer must not send DNS queries).
fn resolve(host: &str) -> Option<std::net::SocketAddr> {
    if let Ok(sa) = host.parse() {
        return Some(sa);
    }
    if cfg!(fuzzing) {
        return None;
    }
    host.to_socket_addrs().ok()?.next()
}
