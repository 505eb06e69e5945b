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
) -> (Server, Option<crate::tls::settings::Spec>) {
    let mut addrs = Vec::new();
    let list = raw.addr.clone().into_vec();
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
    let tls = tls_spec(b, doc, t, &raw);
    let redirect = redirect(b, doc, t, &raw);
    let metrics = raw
        .metrics
        .as_deref()
        .filter(|m| !m.is_empty())
        .and_then(|m| {
            crate::observability::metrics::MetricsTarget::parse(m)
                .map_err(|e| b.err(doc, t, Some("metrics"), e))
                .ok()
        });
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
    let server = Server {
        name: name.to_string(),
        tls: None,
        redirect,
        metrics,
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
    };
    (server, tls)
}

/// `tls = true` and its keys: the handshake settings, built into a rustls config once the
/// client CAs and certificates are read (`world.rs`). TLS keys without `tls = true` are an
/// error.
fn tls_spec(
    b: &mut Builder<'_>,
    doc: usize,
    t: &str,
    raw: &RawServer,
) -> Option<crate::tls::settings::Spec> {
    if !raw.tls {
        for (key, set) in [
            ("tls_min_version", raw.tls_min_version.is_some()),
            ("tls_ciphers", raw.tls_ciphers.is_some()),
            ("client_ca", raw.client_ca.is_some()),
        ] {
            if set {
                b.err(doc, t, Some(key), format!("`{key}` needs `tls = true`"));
            }
        }
        return None;
    }
    Some(crate::tls::settings::Spec {
        http2: raw.http2,
        min_version: raw.tls_min_version.clone(),
        ciphers: raw.tls_ciphers.clone().unwrap_or_default(),
        client_ca_source: raw.client_ca.clone(),
        client_ca: None,
    })
}

/// `https_redirect`, `https_port`, `https_redirect_status`.
fn redirect(b: &mut Builder<'_>, doc: usize, t: &str, raw: &RawServer) -> HttpsRedirect {
    let status_get = match raw.https_redirect_status {
        None | Some(308) => 308,
        Some(301) => 301,
        Some(other) => {
            b.err(
                doc,
                t,
                Some("https_redirect_status"),
                format!("{other}: use 308 (the default; keeps the method) or 301 (GET and HEAD get 301, other methods 308)"),
            );
            308
        }
    };
    if raw.tls && raw.https_redirect == Some(true) {
        b.err(
            doc,
            t,
            Some("https_redirect"),
            "a TLS server's requests are HTTPS already; set https_redirect on the plain-HTTP server",
        );
    }
    HttpsRedirect {
        all: raw.https_redirect.unwrap_or(false),
        port: raw.https_port.unwrap_or(443),
        status_get,
    }
}
