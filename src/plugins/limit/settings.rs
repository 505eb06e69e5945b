//! A `limit`'s TOML, checked: the rate text, the burst, the store and its failure mode.

use super::gcra::Gcra;
use super::key::KeySource;
use crate::config::units::parse_duration;
use crate::plugins::PluginConfError;
use serde::Deserialize;
use std::time::Duration;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitConf {
    #[serde(default = "rate_kind")]
    pub kind: String,
    pub key: Option<String>,
    pub rate: Option<String>,
    pub burst: Option<u64>,
    pub max: Option<u64>,
    pub status: Option<u16>,
    pub body: Option<String>,
    #[serde(default = "crate::plugins::default_true")]
    pub headers: bool,
    pub store: Option<String>,
    pub on_store_error: Option<String>,
    pub store_timeout: Option<String>,
    pub prefix: Option<String>,
}

fn rate_kind() -> String {
    "rate".into()
}

/// What to do when the Redis store cannot answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnStoreError {
    /// let the request through
    Allow,
    /// refuse it
    Deny,
    /// count it in this process instead (the default)
    Local,
}

impl OnStoreError {
    pub fn name(self) -> &'static str {
        match self {
            OnStoreError::Allow => "allow",
            OnStoreError::Deny => "deny",
            OnStoreError::Local => "local",
        }
    }
}

pub enum Kind {
    Rate(Gcra),
    Inflight(u64),
}

pub struct Settings {
    pub kind: Kind,
    pub key: KeySource,
    pub status: u16,
    pub body: String,
    pub headers: bool,
    pub store: Option<String>,
    pub on_store_error: OnStoreError,
    pub store_timeout: Duration,
    pub prefix: String,
}

/// `"100/s"`, `"5/m"`, `"1000/h"`, `"10/30s"`: the count and the period in nanoseconds.
pub fn parse_rate(s: &str) -> Result<(u64, u64), String> {
    let hint = "write it as COUNT/PERIOD, e.g. \"100/s\", \"5/m\", \"1000/h\", \"10/30s\"";
    let (n, per) = s.split_once('/').ok_or_else(|| format!("`{s}`: {hint}"))?;
    let n: u64 = n
        .trim()
        .parse()
        .map_err(|_| format!("`{s}`: `{}` is not a count; {hint}", n.trim()))?;
    if n == 0 {
        return Err(format!("`{s}`: the count must be at least 1"));
    }
    let per = per.trim();
    let period = match per {
        "s" => Duration::from_secs(1),
        "m" => Duration::from_secs(60),
        "h" => Duration::from_secs(3600),
        "d" => Duration::from_secs(86400),
        other => parse_duration(other).map_err(|e| format!("`{s}`: {e}; {hint}"))?,
    };
    let ns = period.as_nanos().min(u128::from(u64::MAX)) as u64;
    if ns == 0 {
        return Err(format!("`{s}`: the period must be longer than zero"));
    }
    if ns / n == 0 {
        return Err(format!("`{s}`: more than one request per nanosecond"));
    }
    Ok((n, ns))
}

pub fn check(c: LimitConf, name: &str) -> Result<Settings, PluginConfError> {
    let key = KeySource::parse(c.key.as_deref().unwrap_or("ip"))?;
    let kind = match c.kind.as_str() {
        "rate" => {
            if c.max.is_some() {
                return Err(PluginConfError::at(
                    "max",
                    "`max` is for kind = \"inflight\"; a rate limit takes `rate` and `burst`",
                ));
            }
            let rate = c.rate.as_deref().ok_or_else(|| {
                PluginConfError::at("rate", "a rate limit needs `rate`, e.g. rate = \"100/s\"")
            })?;
            let (n, ns) = parse_rate(rate).map_err(|m| PluginConfError::at("rate", m))?;
            let burst = c.burst.unwrap_or(n);
            if burst == 0 {
                return Err(PluginConfError::at("burst", "burst must be at least 1"));
            }
            Kind::Rate(Gcra::new(n, ns, burst))
        }
        "inflight" => {
            for (k, set) in [
                ("rate", c.rate.is_some()),
                ("burst", c.burst.is_some()),
                ("store", c.store.is_some()),
            ] {
                if set {
                    return Err(PluginConfError::at(
                        k,
                        format!(
                            "`{k}` is for kind = \"rate\"; an in-flight limit takes `max` \
                             (and counts in this process)"
                        ),
                    ));
                }
            }
            let max = c.max.ok_or_else(|| {
                PluginConfError::at("max", "an in-flight limit needs `max`, e.g. max = 10")
            })?;
            if max == 0 {
                return Err(PluginConfError::at("max", "max must be at least 1"));
            }
            Kind::Inflight(max)
        }
        other => {
            return Err(PluginConfError::at(
                "kind",
                format!("unknown kind `{other}`; \"rate\" or \"inflight\""),
            ))
        }
    };
    let status = c.status.unwrap_or(429);
    if !(400..=599).contains(&status) {
        return Err(PluginConfError::at(
            "status",
            format!("{status}: a refusal is a 4xx or 5xx status"),
        ));
    }
    let on_store_error = match c.on_store_error.as_deref() {
        None | Some("local") => OnStoreError::Local,
        Some("allow") => OnStoreError::Allow,
        Some("deny") => OnStoreError::Deny,
        Some(o) => {
            return Err(PluginConfError::at(
                "on_store_error",
                format!("unknown `{o}`; one of allow, deny, local"),
            ))
        }
    };
    if c.store.is_none() {
        for (k, set) in [
            ("on_store_error", c.on_store_error.is_some()),
            ("store_timeout", c.store_timeout.is_some()),
            ("prefix", c.prefix.is_some()),
        ] {
            if set {
                return Err(PluginConfError::at(
                    k,
                    format!("`{k}` applies to a Redis store; set `store` too or remove it"),
                ));
            }
        }
    }
    if let Some(url) = &c.store {
        if !(url.starts_with("redis://")
            || url.starts_with("rediss://")
            || url.starts_with("unix://"))
        {
            return Err(PluginConfError::at(
                "store",
                format!(
                    "`{}`: a store is a Redis URL, e.g. \"redis://127.0.0.1:6379/0\"",
                    super::redis::hide_password(url)
                ),
            ));
        }
    }
    let store_timeout = match c.store_timeout.as_deref() {
        Some(t) => parse_duration(t).map_err(|m| PluginConfError::at("store_timeout", m))?,
        None => Duration::from_millis(200),
    };
    if store_timeout.is_zero() {
        return Err(PluginConfError::at(
            "store_timeout",
            "store_timeout must be longer than zero",
        ));
    }
    Ok(Settings {
        kind,
        key,
        status,
        body: c.body.unwrap_or_else(|| "Too Many Requests\n".into()),
        headers: c.headers,
        store: c.store,
        on_store_error,
        store_timeout,
        prefix: c
            .prefix
            .unwrap_or_else(|| format!("tidegate:limit:{name}:")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates() {
        assert_eq!(parse_rate("100/s"), Ok((100, 1_000_000_000)));
        assert_eq!(parse_rate("5/m"), Ok((5, 60_000_000_000)));
        assert_eq!(parse_rate("10/30s"), Ok((10, 30_000_000_000)));
        assert!(parse_rate("0/s").is_err());
        assert!(parse_rate("ten/s").unwrap_err().contains("not a count"));
        assert!(parse_rate("100").unwrap_err().contains("COUNT/PERIOD"));
        assert!(parse_rate("5/fortnight").is_err());
    }
}
