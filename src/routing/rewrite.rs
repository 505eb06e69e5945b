//! `rewrite = "REGEX REPLACEMENT"`: rewrite the path before it goes upstream.
//!
//! ```toml
//! [locations.api]
//! path = "/api"
//! rewrite = "^/api/(.*)$ /$1"     # /api/users?id=1 → /users?id=1 (the query is kept)
//! ```
//!
//! The replacement uses the regex crate's syntax: `$1`, `${name}`.

use regex::Regex;

#[derive(Debug, Clone)]
pub struct Rewrite {
    pub pattern: Regex,
    pub replacement: String,
}

impl Rewrite {
    pub fn parse(s: &str) -> Result<Rewrite, String> {
        let mut parts = s.split_whitespace();
        let (Some(re), Some(rep), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err(format!(
                "rewrite `{s}` must be `REGEX REPLACEMENT`, e.g. \"^/api/(.*)$ /$1\""
            ));
        };
        let pattern = Regex::new(re).map_err(|e| format!("bad rewrite regex `{re}`: {e}"))?;
        Ok(Rewrite {
            pattern,
            replacement: rep.to_string(),
        })
    }

    /// The new path for `path`, or `None` when the pattern does not match.
    pub fn apply(&self, path: &str) -> Option<String> {
        if !self.pattern.is_match(path) {
            return None;
        }
        let out = self.pattern.replace(path, self.replacement.as_str());
        Some(if out.starts_with('/') {
            out.into_owned()
        } else {
            format!("/{out}")
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrites_path() {
        let r = Rewrite::parse("^/api/(.*)$ /$1").unwrap();
        assert_eq!(r.apply("/api/users").as_deref(), Some("/users"));
        assert_eq!(r.apply("/other"), None);
        assert!(Rewrite::parse("onlyone").is_err());
        assert!(Rewrite::parse("(( /x").is_err());
    }
}
