//! Pushing to a Prometheus Pushgateway, off the request path.
//!
//! ```toml
//! [servers.web]
//! metrics = "http://127.0.0.1:9091/metrics/job/tidegate?interval=10s&instance=web-1"
//! ```
//!
//! Every `interval` (default 10 s) the whole exposition is PUT to
//! `URL/instance/INSTANCE` (INSTANCE defaults to the host name), replacing what this instance
//! pushed before. A failed push is logged (once per minute at most) and tried again at the
//! next interval; nothing waits on it. The request goes through the same outbound client
//! Lua's `tidegate.http.request` uses.

use crate::scripting::http_client::{send, Outbound};
use crate::scripting::http_policy::HttpPolicy;
use std::time::{Duration, Instant};

/// A validated push target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushTarget {
    /// `http://HOST:PORT/metrics/job/NAME/instance/INSTANCE`
    pub url: String,
    pub interval: Duration,
}

impl PushTarget {
    pub fn parse(s: &str) -> Result<PushTarget, String> {
        let (base, query) = s.split_once('?').unwrap_or((s, ""));
        if !base.contains("/metrics/job/") {
            return Err(format!(
                "`{s}`: a Pushgateway URL names a job: http://HOST:9091/metrics/job/NAME"
            ));
        }
        let mut interval = Duration::from_secs(10);
        let mut instance = hostname();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            match pair.split_once('=') {
                Some(("interval", v)) => {
                    interval = crate::config::units::parse_duration(v)
                        .map_err(|m| format!("`{s}`: interval: {m}"))?;
                    if interval < Duration::from_millis(100) {
                        return Err(format!("`{s}`: interval must be at least 100ms"));
                    }
                }
                Some(("instance", v)) if !v.is_empty() && !v.contains('/') => {
                    instance = v.to_string()
                }
                _ => {
                    return Err(format!(
                        "`{s}`: unknown `{pair}`; the query takes interval=10s and instance=NAME"
                    ))
                }
            }
        }
        let url = format!("{}/instance/{instance}", base.trim_end_matches('/'));
        url.parse::<http::Uri>()
            .map_err(|e| format!("`{s}`: {e}"))?;
        Ok(PushTarget { url, interval })
    }
}

fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname writes at most that much
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    let name = if rc == 0 {
        let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
        String::from_utf8_lossy(&buf[..end]).into_owned()
    } else {
        String::new()
    };
    if name.is_empty() {
        "tidegate".into()
    } else {
        name
    }
}

/// Push to `target` every interval until the task is dropped.
pub async fn run(target: PushTarget) {
    let mut last_warning: Option<Instant> = None;
    let policy = HttpPolicy::default();
    loop {
        tokio::time::sleep(target.interval).await;
        let body = bytes::Bytes::from(super::encode());
        let headers = vec![(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("text/plain; version=0.0.4"),
        )];
        let timeout = target.interval.min(Duration::from_secs(10));
        let result = match Outbound::new(http::Method::PUT, &target.url, headers, body, timeout) {
            Ok(o) => send(o, &policy).await.and_then(|r| {
                if (200..300).contains(&r.status) {
                    Ok(())
                } else {
                    Err(format!(
                        "status {}: {}",
                        r.status,
                        String::from_utf8_lossy(&r.body).trim()
                    ))
                }
            }),
            Err(e) => Err(e),
        };
        match result {
            Ok(()) => tracing::debug!(url = %target.url, "metrics pushed"),
            Err(e) => {
                if last_warning.is_none_or(|t| t.elapsed() >= Duration::from_secs(60)) {
                    last_warning = Some(Instant::now());
                    tracing::warn!(url = %target.url, "metrics push failed: {e}");
                }
            }
        }
    }
}
