//! `[servers.NAME]`: listeners, the locations routed to, limits, timeouts and the access log.

use super::super::builder::{Builder, Entry};
use super::super::model::*;
use super::super::raw::*;
use crate::observability::access_log::LogFormat;
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::time::Duration;

#[allow(clippy::too_many_arguments)]
pub(in crate::config) fn build_server(
    b: &mut Builder<'_>,
    doc: usize,
    t: &str,
    name: &str,
    raw: RawServer,
    location_names: &[&str],
    raw_locations: &BTreeMap<String, Entry>,
    listeners: &mut HashMap<SocketAddr, String>,
) -> Server {
    let mut addrs = Vec::new();
    let list = raw.addr.into_vec();
    if list.is_empty() {
        b.err(
            doc,
            t,
            Some("addr"),
            "a server needs at least one listen address",
        );
    }
    for a in list {
        match a.parse::<SocketAddr>() {
            Ok(sa) => {
                if let Some(other) = listeners.insert(sa, name.to_string()) {
                    b.err(
                        doc,
                        t,
                        Some("addr"),
                        format!("duplicate listener {sa}: also used by server `{other}`"),
                    );
                } else {
                    addrs.push(sa);
                }
            }
            Err(_) => b.err(
                doc,
                t,
                Some("addr"),
                format!("`{a}` is not IP:PORT (e.g. \"127.0.0.1:6188\")"),
            ),
        }
    }
    if raw.tls {
        b.err(
            doc,
            t,
            Some("tls"),
            "TLS listeners need [certificates], which this build does not have yet",
        );
    }
    if raw.metrics.as_deref().is_some_and(|m| !m.is_empty()) {
        b.err(
            doc,
            t,
            Some("metrics"),
            "the metrics endpoint is not available in this build yet",
        );
    }
    let mut locations = Vec::new();
    for l in &raw.locations {
        match location_names.iter().position(|n| n == l) {
            Some(i) => locations.push(i),
            None if raw_locations.contains_key(l) => {}
            None => b.err(doc, t, Some("locations"), format!("unknown location `{l}`")),
        }
    }
    let access_log = raw
        .access_log
        .as_deref()
        .filter(|s| !s.is_empty())
        .and_then(|s| {
            LogFormat::parse(s)
                .map_err(|m| b.err(doc, t, Some("access_log"), m))
                .ok()
        });
    let trusted_proxies = raw
        .trusted_proxies
        .iter()
        .filter_map(|p| {
            let parsed = p
                .parse::<ipnet::IpNet>()
                .or_else(|_| p.parse::<std::net::IpAddr>().map(ipnet::IpNet::from));
            parsed
                .map_err(|_| {
                    b.err(
                        doc,
                        t,
                        Some("trusted_proxies"),
                        format!("`{p}` is not an IP or CIDR"),
                    )
                })
                .ok()
        })
        .collect();
    let size = |b: &mut Builder<'_>,
                key: &str,
                v: &Option<crate::config::raw::Size>,
                default: u64|
     -> usize { b.size(doc, t, key, v).unwrap_or(default) as usize };
    let engine = match raw.engine.as_deref() {
        None | Some("native") => Engine::Native,
        Some("pingora") => Engine::Pingora,
        Some(other) => {
            b.err(
                doc,
                t,
                Some("engine"),
                format!("unknown engine `{other}`; one of native, pingora"),
            );
            Engine::Native
        }
    };
    Server {
        name: name.to_string(),
        addrs,
        locations,
        http2: raw.http2,
        engine,
        access_log,
        access_log_path: raw.access_log_path,
        trusted_proxies,
        forwarded_headers: raw.forwarded_headers.unwrap_or(true),
        max_header_size: size(b, "max_header_size", &raw.max_header_size, 64 << 10),
        max_uri_size: size(b, "max_uri_size", &raw.max_uri_size, 8 << 10),
        header_timeout: b.duration(
            doc,
            t,
            "header_timeout",
            &raw.header_timeout,
            Duration::from_secs(60),
        ),
        body_timeout: b.duration(
            doc,
            t,
            "body_timeout",
            &raw.body_timeout,
            Duration::from_secs(30),
        ),
        keepalive_timeout: b.duration(
            doc,
            t,
            "keepalive_timeout",
            &raw.keepalive_timeout,
            Duration::from_secs(60),
        ),
    }
}
