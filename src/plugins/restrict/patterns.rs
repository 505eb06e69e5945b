//! Lists of text patterns for `referer_restriction`, `ua_restriction` and `cors` origins:
//! `exact`, `*` wildcards (`*.example.com`, `*bot*`), and `~REGEX`. A list compiles into one
//! `RegexSet`, so a check is a single pass whatever the list's length.

use crate::plugins::PluginConfError;

/// A compiled list.
#[derive(Debug, Clone)]
pub struct Patterns {
    set: regex::RegexSet,
}

/// One pattern as a regex: anchored; `*` is any run of characters; `~` is a regex as given.
fn to_regex(p: &str) -> String {
    if let Some(r) = p.strip_prefix('~') {
        return r.to_string();
    }
    let mut out = String::from("^");
    for (i, part) in p.split('*').enumerate() {
        if i > 0 {
            out.push_str(".*");
        }
        out.push_str(&regex::escape(part));
    }
    out.push('$');
    out
}

impl Patterns {
    /// Compile `list` (of key `key`, for messages); `case_blind` for hosts and origins.
    pub fn new(key: &str, list: &[String], case_blind: bool) -> Result<Patterns, PluginConfError> {
        for (i, p) in list.iter().enumerate() {
            if p.is_empty() {
                return Err(PluginConfError::at(key, format!("{key}[{i}] is empty")));
            }
            if let Some(r) = p.strip_prefix('~') {
                regex::Regex::new(r).map_err(|e| {
                    PluginConfError::at(key, format!("{key}[{i}] `{p}`: bad regex: {e}"))
                })?;
            }
        }
        let set = regex::RegexSetBuilder::new(list.iter().map(|p| to_regex(p)))
            .case_insensitive(case_blind)
            .size_limit(1 << 20)
            .build()
            .map_err(|e| PluginConfError::at(key, format!("{e}")))?;
        Ok(Patterns { set })
    }

    pub fn matches(&self, text: &str) -> bool {
        self.set.is_match(text)
    }

    pub fn is_empty(&self) -> bool {
        self.set.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(list: &[&str]) -> Patterns {
        let l: Vec<String> = list.iter().map(|s| s.to_string()).collect();
        Patterns::new("k", &l, true).unwrap()
    }

    #[test]
    fn exact_wildcard_regex() {
        let s = p(&["example.com", "*.example.org", "~^api[0-9]+[.]test$"]);
        assert!(s.matches("example.com") && s.matches("EXAMPLE.com"));
        assert!(!s.matches("www.example.com") && !s.matches("example.com.evil"));
        assert!(s.matches("a.example.org") && s.matches("a.b.example.org"));
        assert!(!s.matches("example.org"));
        assert!(s.matches("api12.test") && !s.matches("api.test"));
        let bad = Patterns::new("k", &["~(".to_string()], true).unwrap_err();
        assert!(bad.message.contains("bad regex"));
    }
}
