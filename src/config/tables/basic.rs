//! `[basic]`: threads, logging, shutdown, the pid file and upgrade socket, the error page.

use super::super::builder::{Builder, Entry};
use super::super::model::*;
use super::super::raw::*;
use std::time::Duration;

pub(in crate::config) fn build_basic(b: &mut Builder<'_>, e: Option<&Entry>) -> Basic {
    let (doc, raw) = match e {
        Some(e) => (e.doc, b.typed::<RawBasic>(e, "basic").unwrap_or_default()),
        None => (0, RawBasic::default()),
    };
    let t = "basic";
    let threads = raw.threads.unwrap_or(1);
    if threads == 0 || threads > 1024 {
        b.err(
            doc,
            t,
            Some("threads"),
            "threads must be between 1 and 1024",
        );
    }
    let log_level = raw.log_level.unwrap_or_else(|| "info".into());
    if tracing_subscriber::EnvFilter::try_new(&log_level).is_err() {
        b.err(
            doc,
            t,
            Some("log_level"),
            format!("`{log_level}` is not a log level or filter"),
        );
    }
    Basic {
        threads: threads.max(1),
        log_level,
        grace_period: b.duration(
            doc,
            t,
            "grace_period",
            &raw.grace_period,
            Duration::from_secs(30),
        ),
        graceful_shutdown_timeout: b.duration(
            doc,
            t,
            "graceful_shutdown_timeout",
            &raw.graceful_shutdown_timeout,
            Duration::from_secs(10),
        ),
        pid_file: raw.pid_file,
        upgrade_sock: raw.upgrade_sock,
        error_log: raw.error_log,
        // off by default: Lua plugins need each connection to stay on one worker thread
        work_stealing: raw.work_stealing.unwrap_or(false),
        upstream_keepalive_pool_size: raw.upstream_keepalive_pool_size.unwrap_or(128),
        watch: raw.watch.unwrap_or(true),
        error_page: match &raw.error_template {
            None => Default::default(),
            Some(tpl) => crate::proxy::error_page::ErrorPage::parse(tpl).unwrap_or_else(|m| {
                b.err(doc, t, Some("error_template"), m);
                Default::default()
            }),
        },
        metrics_buckets: buckets(b, doc, raw.metrics_buckets),
        otlp: raw.otlp.and_then(|o| otlp(b, doc, o)),
        resolver: raw.resolver.as_deref().and_then(|r| resolver(b, doc, r)),
        docker_host: docker_host(b, doc, raw.docker_host),
        trace_token: match raw.trace_token {
            Some(t) if t.len() < 16 || t.contains(char::is_whitespace) => {
                b.err(
                    doc,
                    "basic",
                    Some("trace_token"),
                    "trace_token must be at least 16 characters, without spaces (it is a secret)",
                );
                None
            }
            other => other,
        },
    }
}

/// `otlp = { endpoint, protocol, sample, service_name }`.
fn otlp(
    b: &mut Builder<'_>,
    doc: usize,
    o: RawOtlp,
) -> Option<crate::observability::otel::OtlpConf> {
    let before = b.errors.len();
    let key = Some("otlp");
    if !o.endpoint.starts_with("http://") || o.endpoint.parse::<http::Uri>().is_err() {
        b.err(
            doc,
            "basic",
            key,
            format!(
                "otlp endpoint `{}` is not an http:// URL (e.g. \"http://127.0.0.1:4317\")",
                o.endpoint
            ),
        );
    }
    let grpc = match o.protocol.as_deref() {
        None | Some("grpc") => true,
        Some("http") => false,
        Some(other) => {
            b.err(
                doc,
                "basic",
                key,
                format!("otlp protocol `{other}`: use \"grpc\" or \"http\""),
            );
            true
        }
    };
    let sample = o.sample.unwrap_or(1.0);
    if !(0.0..=1.0).contains(&sample) {
        b.err(
            doc,
            "basic",
            key,
            "otlp sample is the share of requests traced, from 0 to 1",
        );
    }
    (b.errors.len() == before).then(|| crate::observability::otel::OtlpConf {
        endpoint: o.endpoint,
        grpc,
        sample,
        service_name: o.service_name.unwrap_or_else(|| "tidegate".into()),
    })
}

/// `resolver`: an IP, or IP:PORT (port 53 by default).
fn resolver(b: &mut Builder<'_>, doc: usize, r: &str) -> Option<std::net::SocketAddr> {
    let parsed = r.parse::<std::net::SocketAddr>().ok().or_else(|| {
        r.trim_matches(|c| c == '[' || c == ']')
            .parse::<std::net::IpAddr>()
            .ok()
            .map(|ip| std::net::SocketAddr::new(ip, 53))
    });
    if parsed.is_none() {
        b.err(
            doc,
            "basic",
            Some("resolver"),
            format!("resolver `{r}` is not an IP address or IP:PORT (e.g. \"127.0.0.1:53\")"),
        );
    }
    parsed
}

/// `docker_host`: `unix:///path` or `tcp://host:port`.
fn docker_host(b: &mut Builder<'_>, doc: usize, h: Option<String>) -> String {
    let h = h.unwrap_or_else(|| "unix:///var/run/docker.sock".into());
    let ok = h
        .strip_prefix("unix://")
        .is_some_and(|p| p.starts_with('/'))
        || h.strip_prefix("tcp://").is_some_and(|a| !a.is_empty());
    if !ok {
        b.err(
            doc,
            "basic",
            Some("docker_host"),
            format!("docker_host `{h}`: use unix:///path/to/docker.sock or tcp://HOST:PORT"),
        );
    }
    h
}

/// `metrics_buckets`: seconds, above zero, finite, strictly increasing; at most 50.
fn buckets(b: &mut Builder<'_>, doc: usize, v: Option<Vec<f64>>) -> Vec<f64> {
    let default = crate::observability::metrics::families::DEFAULT_BUCKETS.to_vec();
    let Some(v) = v else { return default };
    let ok = !v.is_empty()
        && v.len() <= 50
        && v.iter().all(|x| x.is_finite() && *x > 0.0)
        && v.windows(2).all(|w| w[0] < w[1]);
    if ok {
        v
    } else {
        b.err(
            doc,
            "basic",
            Some("metrics_buckets"),
            "metrics_buckets: 1 to 50 durations in seconds, above zero and increasing, e.g. [0.01, 0.1, 1]",
        );
        default
    }
}
