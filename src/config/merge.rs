//! Step 1 of validation: parse each TOML document and merge the documents' tables by name.
//! `[basic]`, `[admin]`, `[lua]` and `[storage]` may be defined once; each named table (`[locations.api]`) in one
//! document only. Errors name both documents.

use super::builder::{Builder, Entry};
use super::locate::line_in;
use super::validate::SourceDoc;
use crate::error::ConfigError;
use std::collections::{BTreeMap, HashMap};

const SECTIONS: &[&str] = &[
    "basic",
    "admin",
    "lua",
    "servers",
    "locations",
    "upstreams",
    "plugins",
    "certificates",
    "storage",
];

/// Sections that are one table rather than a table of named tables.
const SINGLE: &[&str] = &["basic", "admin", "lua", "storage"];

/// The tables of all documents, by section and name.
pub(super) struct Merged {
    pub basic: Option<Entry>,
    pub admin: Option<Entry>,
    pub lua: Option<Entry>,
    pub storage: Option<Entry>,
    pub servers: BTreeMap<String, Entry>,
    pub locations: BTreeMap<String, Entry>,
    pub upstreams: BTreeMap<String, Entry>,
    pub plugins: BTreeMap<String, Entry>,
    pub certificates: BTreeMap<String, Entry>,
}

/// Parse every document and gather its tables by name; a name defined twice, an unknown
/// table or a document that does not parse is an error (with its line).
pub(super) fn merge(b: &mut Builder<'_>, docs: &[SourceDoc]) -> Merged {
    let mut singles: HashMap<&str, Entry> = HashMap::new();
    let mut named: HashMap<&str, BTreeMap<String, Entry>> = HashMap::new();
    for (doc, d) in docs.iter().enumerate() {
        let table: toml::Table = match toml::from_str(&d.text) {
            Ok(t) => t,
            Err(e) => {
                b.errors.push(ConfigError {
                    file: d.name.clone(),
                    line: e.span().map(|s| line_in(&d.text, s.start)),
                    table: String::new(),
                    key: None,
                    message: e.message().to_string(),
                });
                continue;
            }
        };
        for (section, value) in table {
            if !SECTIONS.contains(&section.as_str()) {
                b.err(
                    doc,
                    &section,
                    None,
                    format!(
                        "unknown table `[{section}]`; expected one of {}",
                        SECTIONS.join(", ")
                    ),
                );
                continue;
            }
            if let Some(single) = SINGLE.iter().find(|s| **s == section) {
                if let Some(prev) = singles.get(single) {
                    let first = docs[prev.doc].name.clone();
                    b.err(
                        doc,
                        single,
                        None,
                        format!("[{single}] is already defined in {first}"),
                    );
                } else {
                    singles.insert(single, Entry { doc, value });
                }
                continue;
            }
            let toml::Value::Table(items) = value else {
                b.err(
                    doc,
                    &section,
                    None,
                    format!("`{section}` must be a table of named tables, e.g. [{section}.NAME]"),
                );
                continue;
            };
            let sect = SECTIONS
                .iter()
                .find(|s| **s == section)
                .copied()
                .unwrap_or("basic");
            let map = named.entry(sect).or_default();
            for (name, value) in items {
                if let Some(prev) = map.get(&name) {
                    let first = docs[prev.doc].name.clone();
                    b.err(
                        doc,
                        &format!("{section}.{name}"),
                        None,
                        format!("already defined in {first}"),
                    );
                    continue;
                }
                map.insert(name, Entry { doc, value });
            }
        }
    }
    let take = |named: &mut HashMap<&str, BTreeMap<String, Entry>>, s: &str| {
        named.remove(s).unwrap_or_default()
    };
    let raw_servers = take(&mut named, "servers");
    let raw_locations = take(&mut named, "locations");
    let raw_upstreams = take(&mut named, "upstreams");
    let raw_plugins = take(&mut named, "plugins");
    let certificates = take(&mut named, "certificates");

    Merged {
        basic: singles.remove("basic"),
        admin: singles.remove("admin"),
        lua: singles.remove("lua"),
        storage: singles.remove("storage"),
        servers: raw_servers,
        locations: raw_locations,
        upstreams: raw_upstreams,
        plugins: raw_plugins,
        certificates,
    }
}
