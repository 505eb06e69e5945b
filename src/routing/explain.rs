//! Why a location won: every location of the server tried against the request, with the rank
//! it would have, for the per-request trace (`proxy/trace.rs`). A plain loop over all
//! locations: this runs only for traced requests, never on the normal path.

use super::rules::{HostRule, PathRule};
use super::{RouteInput, Router};

/// One location as the trace reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Considered {
    pub location: usize,
    /// it matched the request (host, path and conditions)
    pub matched: bool,
    /// how it ranks: explicit priority, path class, host class, prefix length, host length
    pub why: String,
    key: (i64, u8, u8, usize, usize),
}

fn host_matches(rule: &HostRule, host: &str) -> bool {
    match rule {
        HostRule::Exact(h) => h == host,
        HostRule::Wildcard(sfx) => host.ends_with(sfx.as_str()) && host.len() > sfx.len(),
        HostRule::Regex(re) => re.is_match(host),
    }
}

fn describe(prio: Option<i64>, path: &PathRule, host: Option<&HostRule>) -> String {
    let mut s = String::new();
    if let Some(p) = prio {
        s.push_str(&format!("priority {p}, "));
    }
    match path {
        PathRule::Exact(_) => s.push_str("exact path"),
        PathRule::Regex(_) => s.push_str("regex path"),
        PathRule::Prefix(p) => s.push_str(&format!("prefix {p} ({} bytes)", p.len())),
        PathRule::Any => s.push_str("any path"),
    }
    s.push_str(match host {
        Some(HostRule::Exact(_)) => ", exact host",
        Some(HostRule::Regex(_)) => ", regex host",
        Some(HostRule::Wildcard(_)) => ", wildcard host",
        None => ", any host",
    });
    s
}

impl Router {
    /// Every location, best rank first; the first matched one is what [`Router::lookup`]
    /// returns.
    pub fn explain(&self, input: &RouteInput<'_>) -> Vec<Considered> {
        let mut out: Vec<Considered> = Vec::new();
        for spec in &self.specs {
            let (pc, plen) = spec.path.rank();
            let prio = spec.priority.unwrap_or(0);
            let hosts: Vec<Option<&HostRule>> = if spec.hosts.is_empty() {
                vec![None]
            } else {
                spec.hosts.iter().map(Some).collect()
            };
            // the best of its host rules that matches, else its best one
            let mut best: Option<Considered> = None;
            for h in hosts {
                let (hc, hlen) = h.map_or((0, 0), |r| r.rank());
                let host_ok = h.is_none_or(|r| host_matches(r, input.host));
                let matched = host_ok && self.matches_rest(spec, input);
                let c = Considered {
                    location: spec.location,
                    matched,
                    why: describe(spec.priority, &spec.path, h),
                    key: (prio, pc, hc, plen, hlen),
                };
                let better = best
                    .as_ref()
                    .is_none_or(|b| (c.matched, c.key) > (b.matched, b.key));
                if better {
                    best = Some(c);
                }
            }
            out.extend(best);
        }
        out.sort_by_key(|c| std::cmp::Reverse(c.key));
        out
    }

    fn matches_rest(&self, spec: &super::RouteSpec, input: &RouteInput<'_>) -> bool {
        let path_ok = match &spec.path {
            PathRule::Any => true,
            PathRule::Prefix(p) => input.path.starts_with(p.as_str()),
            PathRule::Exact(p) => input.path == p,
            PathRule::Regex(re) => re.is_match(input.path),
        };
        path_ok
            && spec
                .headers
                .iter()
                .all(|c| c.holds((input.header)(&c.name)))
            && spec
                .query
                .iter()
                .all(|c| c.holds(super::rules::query_arg(input.query, &c.name)))
    }
}
