//! Routing: from a request's host, path, headers and query to one location.
//!
//! A [`Router`] is built once per server per config version. It indexes locations by host so
//! that a lookup looks only at the locations that could match:
//!
//! - exact hosts in a hash map,
//! - wildcard hosts (`*.example.com`) in a hash map by suffix, probed once per dot in the host,
//! - regex hosts in a list,
//! - locations without a host in a list.
//!
//! Inside a bucket, exact paths are found with one hash lookup and prefixes with one hash
//! lookup per distinct prefix length present (longest first); only regex paths, host-less
//! "any path" entries and entries with an explicit `priority` are scanned, in priority order.
//! The best of the bucket winners is the route. Priority, highest first: an explicit `priority`, then the path
//! class (exact, regex, prefix, any), then the host class (exact, regex, wildcard, none), then
//! the longer path prefix, then the longer host.

pub mod explain;
pub mod rewrite;
pub mod rules;
pub mod vars;

use rules::{query_arg, Condition, HostRule, PathRule};
use std::collections::HashMap;
use std::sync::Arc;

/// What the router needs to know about one location.
#[derive(Debug, Clone)]
pub struct RouteSpec {
    pub location: usize,
    pub hosts: Vec<HostRule>,
    pub path: PathRule,
    pub headers: Vec<Condition>,
    pub query: Vec<Condition>,
    pub priority: Option<i64>,
}

/// The result of a lookup: the location and the named captures of its regexes.
#[derive(Debug, Clone, Default)]
pub struct RouteMatch {
    pub location: usize,
    pub captures: Vec<(Arc<str>, String)>,
}

impl RouteMatch {
    pub fn capture(&self, name: &str) -> Option<&str> {
        self.captures
            .iter()
            .find(|(n, _)| n.as_ref() == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Sort key; bigger wins.
type Key = (i64, u8, u8, usize, usize);

#[derive(Debug, Clone)]
struct Entry {
    key: Key,
    spec: u32,
    /// index into the spec's `hosts` for regex-host entries
    host: u32,
}

/// The request facts routing looks at.
pub struct RouteInput<'a> {
    /// lower-case, without port
    pub host: &'a str,
    pub path: &'a str,
    pub query: &'a str,
    pub header: &'a dyn Fn(&str) -> Option<&'a str>,
}

/// The locations that share a host rule, indexed by path.
#[derive(Debug, Default)]
struct Bucket {
    exact: HashMap<String, Vec<Entry>>,
    prefix: HashMap<String, Vec<Entry>>,
    /// distinct prefix lengths in `prefix`, longest first
    prefix_lens: Vec<usize>,
    /// everything else, sorted by key, best first
    scan: Vec<Entry>,
}

impl Bucket {
    fn add(&mut self, e: Entry, spec: &RouteSpec) {
        match (&spec.path, spec.priority) {
            (PathRule::Exact(p), None) => self.exact.entry(p.clone()).or_default().push(e),
            (PathRule::Prefix(p), None) => self.prefix.entry(p.clone()).or_default().push(e),
            _ => self.scan.push(e),
        }
    }

    fn finish(&mut self) {
        let sort = |v: &mut Vec<Entry>| v.sort_by_key(|e| std::cmp::Reverse(e.key));
        self.exact.values_mut().for_each(sort);
        self.prefix.values_mut().for_each(sort);
        sort(&mut self.scan);
        self.prefix_lens = self.prefix.keys().map(String::len).collect();
        self.prefix_lens.sort_unstable_by(|a, b| b.cmp(a));
        self.prefix_lens.dedup();
    }
}

#[derive(Debug, Default)]
pub struct Router {
    specs: Vec<RouteSpec>,
    exact: HashMap<String, Bucket>,
    wildcard: HashMap<String, Bucket>,
    regex: Bucket,
    any_host: Bucket,
}

impl Router {
    pub fn new(specs: Vec<RouteSpec>) -> Router {
        let mut r = Router::default();
        for (i, spec) in specs.iter().enumerate() {
            let (pc, plen) = spec.path.rank();
            let prio = spec.priority.unwrap_or(0);
            if spec.hosts.is_empty() {
                let e = Entry {
                    key: (prio, pc, 0, plen, 0),
                    spec: i as u32,
                    host: 0,
                };
                r.any_host.add(e, spec);
            }
            for (h, rule) in spec.hosts.iter().enumerate() {
                let (hc, hlen) = rule.rank();
                let e = Entry {
                    key: (prio, pc, hc, plen, hlen),
                    spec: i as u32,
                    host: h as u32,
                };
                match rule {
                    HostRule::Exact(name) => r.exact.entry(name.clone()).or_default().add(e, spec),
                    HostRule::Wildcard(sfx) => {
                        r.wildcard.entry(sfx.clone()).or_default().add(e, spec)
                    }
                    HostRule::Regex(_) => r.regex.add(e, spec),
                }
            }
        }
        r.specs = specs;
        r.exact.values_mut().for_each(Bucket::finish);
        r.wildcard.values_mut().for_each(Bucket::finish);
        r.regex.finish();
        r.any_host.finish();
        r
    }

    pub fn is_empty(&self) -> bool {
        self.specs.is_empty()
    }

    /// Find the best location for a request, or `None` (the caller answers 404).
    pub fn lookup(&self, input: &RouteInput<'_>) -> Option<RouteMatch> {
        let mut best: Option<(Key, RouteMatch)> = None;
        if let Some(bucket) = self.exact.get(input.host) {
            self.search(bucket, input, &mut best);
        }
        // every suffix starting at a dot: a.b.example.com → .b.example.com, .example.com, .com
        if !self.wildcard.is_empty() {
            for (i, _) in input.host.match_indices('.') {
                if let Some(bucket) = self.wildcard.get(&input.host[i..]) {
                    self.search(bucket, input, &mut best);
                }
            }
        }
        self.search(&self.regex, input, &mut best);
        self.search(&self.any_host, input, &mut best);
        best.map(|(_, m)| m)
    }

    fn search(
        &self,
        bucket: &Bucket,
        input: &RouteInput<'_>,
        best: &mut Option<(Key, RouteMatch)>,
    ) {
        if let Some(entries) = bucket.exact.get(input.path) {
            self.first(entries, input, best);
        }
        for &len in &bucket.prefix_lens {
            if len > input.path.len() || !input.path.is_char_boundary(len) {
                continue;
            }
            if let Some(entries) = bucket.prefix.get(&input.path[..len]) {
                if self.first(entries, input, best) {
                    break; // shorter prefixes rank lower
                }
            }
        }
        self.first(&bucket.scan, input, best);
    }

    /// Try `entries` (sorted, best first); true when one of them became the best so far.
    fn first(
        &self,
        entries: &[Entry],
        input: &RouteInput<'_>,
        best: &mut Option<(Key, RouteMatch)>,
    ) -> bool {
        for e in entries {
            if let Some((k, _)) = best {
                if e.key <= *k {
                    return false; // sorted: nothing later here can win
                }
            }
            if let Some(m) = self.try_entry(e, input) {
                *best = Some((e.key, m));
                return true;
            }
        }
        false
    }

    fn try_entry(&self, e: &Entry, input: &RouteInput<'_>) -> Option<RouteMatch> {
        let spec = &self.specs[e.spec as usize];
        let mut captures = Vec::new();
        if let Some(HostRule::Regex(re)) = spec.hosts.get(e.host as usize) {
            let caps = re.captures(input.host)?;
            collect(re, &caps, &mut captures);
        }
        match &spec.path {
            PathRule::Any => {}
            PathRule::Prefix(p) => {
                if !input.path.starts_with(p.as_str()) {
                    return None;
                }
            }
            PathRule::Exact(p) => {
                if input.path != p {
                    return None;
                }
            }
            PathRule::Regex(re) => {
                let caps = re.captures(input.path)?;
                collect(re, &caps, &mut captures);
            }
        }
        if !spec
            .headers
            .iter()
            .all(|c| c.holds((input.header)(&c.name)))
        {
            return None;
        }
        if !spec
            .query
            .iter()
            .all(|c| c.holds(query_arg(input.query, &c.name)))
        {
            return None;
        }
        Some(RouteMatch {
            location: spec.location,
            captures,
        })
    }
}

fn collect(re: &regex::Regex, caps: &regex::Captures<'_>, out: &mut Vec<(Arc<str>, String)>) {
    for name in re.capture_names().flatten() {
        if let Some(m) = caps.name(name) {
            out.push((Arc::from(name), m.as_str().to_string()));
        }
    }
}

/// Lower-case the host and drop the port (`Example.COM:8080` → `example.com`).
pub fn normalize_host(raw: &str) -> String {
    let mut out = String::new();
    normalize_host_into(raw, &mut out);
    out
}

/// [`normalize_host`] into `out` (cleared first), so a kept `String` is reused.
pub fn normalize_host_into(raw: &str, out: &mut String) {
    let h = raw.trim();
    let b = h.as_bytes();
    // `[`, `]` and `:` are ASCII: the cut is on a character boundary
    let end = if b.first() == Some(&b'[') {
        // IPv6 literal: keep the brackets, drop the port
        b.iter().position(|&c| c == b']').map_or(b.len(), |i| i + 1)
    } else {
        b.iter().rposition(|&c| c == b':').unwrap_or(b.len())
    };
    out.clear();
    out.push_str(&h[..end]);
    out.make_ascii_lowercase();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(location: usize, hosts: &[&str], path: &str) -> RouteSpec {
        RouteSpec {
            location,
            hosts: hosts.iter().map(|h| HostRule::parse(h).unwrap()).collect(),
            path: PathRule::parse(path).unwrap(),
            headers: vec![],
            query: vec![],
            priority: None,
        }
    }

    fn find(r: &Router, host: &str, path: &str) -> Option<usize> {
        let none = |_: &str| None;
        r.lookup(&RouteInput {
            host,
            path,
            query: "",
            header: &none,
        })
        .map(|m| m.location)
    }

    #[test]
    fn priority_rules() {
        let r = Router::new(vec![
            spec(0, &[], "/"),
            spec(1, &[], "/api"),
            spec(2, &[], "=/api/exact"),
            spec(3, &[], "~^/api/v(?<ver>\\d+)"),
            spec(4, &["*.example.com"], "/api"),
            spec(5, &["a.example.com"], "/api"),
        ]);
        assert_eq!(find(&r, "x.org", "/zzz"), Some(0));
        assert_eq!(find(&r, "x.org", "/api/1"), Some(1));
        assert_eq!(find(&r, "x.org", "/api/exact"), Some(2));
        assert_eq!(find(&r, "x.org", "/api/v2/x"), Some(3));
        assert_eq!(find(&r, "b.example.com", "/api/1"), Some(4));
        assert_eq!(find(&r, "a.example.com", "/api/1"), Some(5));
        assert_eq!(normalize_host("Example.COM:8080"), "example.com");
        // an explicit priority beats a longer, indexed prefix
        let mut low = spec(0, &[], "/a");
        low.priority = Some(5);
        let r = Router::new(vec![low, spec(1, &[], "/a/b/c"), spec(2, &[], "=/a/b/c")]);
        assert_eq!(find(&r, "h", "/a/b/c/d"), Some(0));
        assert_eq!(find(&r, "h", "/a/b/c"), Some(0));
        // conditions are checked on indexed entries, falling back to a shorter prefix
        let mut cond = spec(0, &[], "/x/y");
        cond.headers = vec![Condition::parse("x-a:1", ':').unwrap()];
        let r = Router::new(vec![cond, spec(1, &[], "/x")]);
        assert_eq!(find(&r, "h", "/x/y/z"), Some(1));
        assert_eq!(normalize_host("[::1]:80"), "[::1]");
    }
}
