//! RFC 9111 for a shared cache: whether a response may be stored, how long it stays fresh,
//! how long it may be served stale, and what a request's own `Cache-Control` asks.

use http::HeaderMap;
use std::time::{Duration, SystemTime};

/// The directives of one `Cache-Control` (and `Pragma: no-cache`) that matter here.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Directives {
    pub no_store: bool,
    pub no_cache: bool,
    pub private: bool,
    pub public: bool,
    pub must_revalidate: bool,
    pub max_age: Option<u64>,
    pub s_maxage: Option<u64>,
    pub stale_while_revalidate: Option<u64>,
    pub stale_if_error: Option<u64>,
    pub only_if_cached: bool,
}

impl Directives {
    pub fn of(headers: &HeaderMap) -> Directives {
        let mut d = Directives::default();
        for v in headers.get_all(http::header::CACHE_CONTROL) {
            let Ok(v) = v.to_str() else { continue };
            for item in v.split(',') {
                let item = item.trim();
                let (name, value) = match item.split_once('=') {
                    Some((n, v)) => (n.trim(), Some(v.trim().trim_matches('"'))),
                    None => (item, None),
                };
                let secs = || value.and_then(|v| v.parse::<u64>().ok());
                match name.to_ascii_lowercase().as_str() {
                    "no-store" => d.no_store = true,
                    "no-cache" => d.no_cache = true,
                    "private" => d.private = true,
                    "public" => d.public = true,
                    "must-revalidate" | "proxy-revalidate" => d.must_revalidate = true,
                    "max-age" => d.max_age = secs(),
                    "s-maxage" => d.s_maxage = secs(),
                    "stale-while-revalidate" => d.stale_while_revalidate = secs(),
                    "stale-if-error" => d.stale_if_error = secs(),
                    "only-if-cached" => d.only_if_cached = true,
                    _ => {}
                }
            }
        }
        if headers
            .get(http::header::PRAGMA)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.to_ascii_lowercase().contains("no-cache"))
            && headers.get(http::header::CACHE_CONTROL).is_none()
        {
            d.no_cache = true;
        }
        d
    }
}

/// Statuses a shared cache may store without explicit freshness (RFC 9110 §15.1 "heuristically
/// cacheable"), plus 200 and 203; others only with `max-age`/`s-maxage`/`Expires`.
fn heuristic_status(status: u16) -> bool {
    matches!(
        status,
        200 | 203 | 204 | 300 | 301 | 308 | 404 | 405 | 410 | 414 | 501
    )
}

/// How long a stored response lives: fresh for `fresh`, then servable stale for `swr` (while
/// one request refreshes it) or `sie` (when the upstream fails).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Lifetime {
    pub fresh: Duration,
    pub swr: Duration,
    pub sie: Duration,
    /// age the response already had when it arrived (its `Age`, and `Date` in the past)
    pub initial_age: Duration,
}

/// The defaults the plugin's config gives when the response says nothing.
#[derive(Debug, Clone, Copy)]
pub struct Defaults {
    pub ttl: Duration,
    pub swr: Duration,
    pub sie: Duration,
}

/// Whether and how long the response to a request may be stored; `None`: not at all.
pub fn storable(
    req: &HeaderMap,
    status: u16,
    resp: &HeaderMap,
    defaults: Defaults,
    now: SystemTime,
) -> Option<Lifetime> {
    let rq = Directives::of(req);
    let rs = Directives::of(resp);
    if rq.no_store || rs.no_store || rs.private || rs.no_cache {
        return None;
    }
    if resp.contains_key(http::header::SET_COOKIE) {
        return None;
    }
    if resp
        .get(http::header::VARY)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|n| n.trim() == "*"))
    {
        return None;
    }
    // a request with credentials: only when the response says a shared cache may keep it
    if req.contains_key(http::header::AUTHORIZATION)
        && !(rs.public || rs.s_maxage.is_some() || rs.must_revalidate)
    {
        return None;
    }
    let date = header_time(resp, http::header::DATE);
    let explicit = rs
        .s_maxage
        .or(rs.max_age)
        .map(Duration::from_secs)
        .or_else(|| {
            let expires = resp.get(http::header::EXPIRES)?;
            // an invalid Expires means "already expired"
            let at = expires
                .to_str()
                .ok()
                .and_then(|v| httpdate::parse_http_date(v).ok())
                .unwrap_or(SystemTime::UNIX_EPOCH);
            Some(at.duration_since(date.unwrap_or(now)).unwrap_or_default())
        });
    let fresh = match explicit {
        Some(f) => f,
        None if heuristic_status(status) && !defaults.ttl.is_zero() => defaults.ttl,
        None => return None,
    };
    let age = resp
        .get(http::header::AGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
        .unwrap_or_default();
    let apparent = date
        .and_then(|d| now.duration_since(d).ok())
        .unwrap_or_default();
    let stale = |given: Option<u64>, default: Duration| {
        if rs.must_revalidate {
            Duration::ZERO
        } else {
            given.map(Duration::from_secs).unwrap_or(default)
        }
    };
    let life = Lifetime {
        fresh,
        swr: stale(rs.stale_while_revalidate, defaults.swr),
        sie: stale(rs.stale_if_error, defaults.sie),
        initial_age: age.max(apparent),
    };
    (!life.fresh.is_zero() || !life.swr.is_zero() || !life.sie.is_zero()).then_some(life)
}

fn header_time(h: &HeaderMap, name: http::header::HeaderName) -> Option<SystemTime> {
    h.get(name)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| httpdate::parse_http_date(v).ok())
}

/// What a stored entry is to a request at `age`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    Fresh,
    /// past fresh, within stale-while-revalidate
    Revalidating,
    /// past that, within stale-if-error only
    ErrorOnly,
    Dead,
}

pub fn standing(life: &Lifetime, age: Duration, req: &Directives) -> Standing {
    let mut fresh = life.fresh;
    if let Some(max) = req.max_age {
        fresh = fresh.min(Duration::from_secs(max));
    }
    if age < fresh {
        Standing::Fresh
    } else if age < life.fresh + life.swr {
        Standing::Revalidating
    } else if age < life.fresh + life.sie {
        Standing::ErrorOnly
    } else {
        Standing::Dead
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        m
    }

    const D: Defaults = Defaults {
        ttl: Duration::ZERO,
        swr: Duration::ZERO,
        sie: Duration::ZERO,
    };

    #[test]
    fn freshness_from_the_response() {
        let now = SystemTime::now();
        let l = storable(
            &h(&[]),
            200,
            &h(&[("cache-control", "public, max-age=60, s-maxage=30")]),
            D,
            now,
        )
        .unwrap();
        assert_eq!(l.fresh, Duration::from_secs(30));
        assert!(storable(
            &h(&[]),
            200,
            &h(&[("cache-control", "private, max-age=60")]),
            D,
            now
        )
        .is_none());
        assert!(storable(&h(&[]), 200, &h(&[("cache-control", "no-store")]), D, now).is_none());
        assert!(storable(
            &h(&[("cache-control", "no-store")]),
            200,
            &h(&[("cache-control", "max-age=9")]),
            D,
            now
        )
        .is_none());
        assert!(
            storable(&h(&[]), 200, &h(&[]), D, now).is_none(),
            "no freshness, no default"
        );
        let d = Defaults {
            ttl: Duration::from_secs(5),
            ..D
        };
        assert_eq!(
            storable(&h(&[]), 200, &h(&[]), d, now).unwrap().fresh,
            Duration::from_secs(5)
        );
        assert!(storable(&h(&[]), 500, &h(&[]), d, now).is_none());
        assert!(storable(
            &h(&[("authorization", "x")]),
            200,
            &h(&[("cache-control", "max-age=9")]),
            D,
            now
        )
        .is_none());
        assert!(storable(
            &h(&[]),
            200,
            &h(&[("cache-control", "max-age=9"), ("vary", "*")]),
            D,
            now
        )
        .is_none());
        let l = storable(
            &h(&[]),
            200,
            &h(&[
                (
                    "cache-control",
                    "max-age=10, stale-while-revalidate=5, stale-if-error=100",
                ),
                ("age", "3"),
            ]),
            D,
            now,
        )
        .unwrap();
        assert_eq!(
            (l.swr, l.sie, l.initial_age),
            (
                Duration::from_secs(5),
                Duration::from_secs(100),
                Duration::from_secs(3)
            )
        );
        assert_eq!(
            standing(&l, Duration::from_secs(12), &Directives::default()),
            Standing::Revalidating
        );
        assert_eq!(
            standing(&l, Duration::from_secs(50), &Directives::default()),
            Standing::ErrorOnly
        );
        assert_eq!(
            standing(&l, Duration::from_secs(200), &Directives::default()),
            Standing::Dead
        );
        let past = httpdate::fmt_http_date(now - Duration::from_secs(100));
        assert!(storable(&h(&[]), 200, &h(&[("expires", &past)]), D, now).is_none());
    }
}
