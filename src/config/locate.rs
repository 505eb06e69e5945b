//! Line numbers for error messages: where each table and key of a TOML file is.
//!
//! The file is parsed once more with `toml`'s span-keeping parser and every dotted key path
//! (`servers.web.addr`) is recorded with the line its key is on.

use std::collections::HashMap;
use toml::de::{DeTable, DeValue};

#[derive(Debug, Default, Clone)]
pub struct Locator {
    lines: HashMap<String, usize>,
}

impl Locator {
    /// Index a document; a document that does not parse gives an empty index.
    pub fn new(text: &str) -> Locator {
        let mut lines = HashMap::new();
        if let Ok(root) = DeTable::parse(text) {
            let starts = line_starts(text);
            walk(root.get_ref(), "", &starts, &mut lines);
        }
        Locator { lines }
    }

    /// The line of the deepest known prefix of `path` (a key, else its table).
    pub fn line(&self, path: &[&str]) -> Option<usize> {
        (1..=path.len())
            .rev()
            .find_map(|n| self.lines.get(&path[..n].join(".")).copied())
    }
}

fn line_starts(text: &str) -> Vec<usize> {
    std::iter::once(0)
        .chain(text.match_indices('\n').map(|(i, _)| i + 1))
        .collect()
}

/// 1-based line of a byte offset.
pub fn line_of(starts: &[usize], offset: usize) -> usize {
    match starts.binary_search(&offset) {
        Ok(i) => i + 1,
        Err(i) => i,
    }
}

/// 1-based line of a byte offset in `text`.
pub fn line_in(text: &str, offset: usize) -> usize {
    line_of(&line_starts(text), offset)
}

fn walk(table: &DeTable<'_>, prefix: &str, starts: &[usize], out: &mut HashMap<String, usize>) {
    for (k, v) in table.iter() {
        let path = if prefix.is_empty() {
            k.get_ref().to_string()
        } else {
            format!("{prefix}.{}", k.get_ref())
        };
        out.entry(path.clone())
            .or_insert_with(|| line_of(starts, k.span().start));
        if let DeValue::Table(t) = v.get_ref() {
            walk(t, &path, starts, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_keys_and_tables() {
        let text = "[basic]\nthreads = 2\n\n[servers.web]\naddr = \"x\"\n";
        let l = Locator::new(text);
        assert_eq!(l.line(&["basic", "threads"]), Some(2));
        assert_eq!(l.line(&["servers", "web", "addr"]), Some(5));
        assert_eq!(l.line(&["servers", "web", "nope"]), Some(4));
    }
}
