//! The rules a location matches on: host, path, and extra header/query conditions.
//!
//! ```toml
//! [locations.api]
//! host = ["api.example.com", "*.api.example.com", "~^api(?<n>\\d+)\\."]
//! path = "/api"                    # prefix | "=/exact" | "~^/v(?<ver>\\d+)/"
//! match_headers = ["x-canary:1", "x-beta"]   # NAME:VALUE must equal, NAME alone must exist
//! match_query = ["debug=1", "trace"]         # same, for query arguments
//! ```

use regex::Regex;

/// How a location matches the request's host (lower-cased, port removed).
#[derive(Debug, Clone)]
pub enum HostRule {
    /// `api.example.com`
    Exact(String),
    /// `*.example.com`, stored as the suffix `.example.com`
    Wildcard(String),
    /// `~regex`; named groups become variables
    Regex(Regex),
}

impl HostRule {
    /// Parse one entry of `host`. The error explains what is wrong with the pattern.
    pub fn parse(s: &str) -> Result<HostRule, String> {
        let s = s.trim();
        if let Some(re) = s.strip_prefix('~') {
            return Regex::new(re)
                .map(HostRule::Regex)
                .map_err(|e| format!("bad host regex `{re}`: {e}"));
        }
        if let Some(suffix) = s.strip_prefix("*.") {
            if suffix.is_empty() || suffix.contains('*') {
                return Err(format!("bad wildcard host `{s}`: write `*.example.com`"));
            }
            return Ok(HostRule::Wildcard(format!(
                ".{}",
                suffix.to_ascii_lowercase()
            )));
        }
        if s.is_empty() || s.contains('*') || s.contains(char::is_whitespace) {
            return Err(format!(
                "bad host `{s}`: write `example.com`, `*.example.com` or `~regex`"
            ));
        }
        Ok(HostRule::Exact(s.to_ascii_lowercase()))
    }

    /// Specificity used in route priority: exact beats regex beats wildcard.
    pub fn rank(&self) -> (u8, usize) {
        match self {
            HostRule::Exact(h) => (3, h.len()),
            HostRule::Regex(_) => (2, 0),
            HostRule::Wildcard(s) => (1, s.len()),
        }
    }
}

/// How a location matches the request path (query excluded).
#[derive(Debug, Clone)]
pub enum PathRule {
    /// No `path`: any path.
    Any,
    /// `/api`: plain string prefix, as nginx's `location /api`.
    Prefix(String),
    /// `=/exact`
    Exact(String),
    /// `~regex`; named groups become variables
    Regex(Regex),
}

impl PathRule {
    pub fn parse(s: &str) -> Result<PathRule, String> {
        let s = s.trim();
        if s.is_empty() {
            return Ok(PathRule::Any);
        }
        if let Some(exact) = s.strip_prefix('=') {
            return Ok(PathRule::Exact(exact.trim().to_string()));
        }
        if let Some(re) = s.strip_prefix('~') {
            return Regex::new(re.trim())
                .map(PathRule::Regex)
                .map_err(|e| format!("bad path regex `{}`: {e}", re.trim()));
        }
        if !s.starts_with('/') {
            return Err(format!(
                "path `{s}` must start with `/` (prefix), `=` (exact) or `~` (regex)"
            ));
        }
        Ok(PathRule::Prefix(s.to_string()))
    }

    /// Class used in route priority: exact, then regex, then prefix, then any.
    pub fn rank(&self) -> (u8, usize) {
        match self {
            PathRule::Exact(p) => (3, p.len()),
            PathRule::Regex(_) => (2, 0),
            PathRule::Prefix(p) => (1, p.len()),
            PathRule::Any => (0, 0),
        }
    }
}

/// `NAME:VALUE` (must equal) or `NAME` (must be present), for headers and query arguments.
#[derive(Debug, Clone)]
pub struct Condition {
    pub name: String,
    pub value: Option<String>,
}

impl Condition {
    /// Parse `NAME<sep>VALUE` or `NAME`.
    pub fn parse(s: &str, sep: char) -> Result<Condition, String> {
        let (name, value) = match s.split_once(sep) {
            Some((n, v)) => (n.trim(), Some(v.trim().to_string())),
            None => (s.trim(), None),
        };
        if name.is_empty() {
            return Err(format!("condition `{s}` has no name"));
        }
        Ok(Condition {
            name: name.to_ascii_lowercase(),
            value,
        })
    }

    pub fn holds(&self, actual: Option<&str>) -> bool {
        match (&self.value, actual) {
            (_, None) => false,
            (None, Some(_)) => true,
            (Some(want), Some(got)) => want == got,
        }
    }
}

/// Find a query argument's raw value (no percent-decoding) in `a=1&b=2`.
pub fn query_arg<'a>(query: &'a str, name: &str) -> Option<&'a str> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == name).then_some(v)
    })
}
