//! From TOML documents to a valid [`Config`], collecting every error on the way.
//!
//! ```text
//! documents ──parse──▶ toml tables ──merge by name──▶ raw structs (serde, deny_unknown_fields)
//!     ──check & resolve──▶ model::Config
//! ```
//!
//! Each stage records errors and goes on where it can, so one run reports every problem, each
//! with its file, table, key and line.
//!
//! ```text
//! merge.rs          parse each document, gather tables by name (duplicates are errors)
//! builder.rs        the error list and the shared parsing of durations and sizes
//! tables/*.rs       one builder per table: basic, lua, upstream, plugin, location, server
//! validate.rs       the order: [basic], [lua], upstreams and plugins, locations, servers
//! ```

use super::builder::Builder;
use super::locate::Locator;
use super::merge::{merge, Merged};
use super::model::*;
use super::raw::*;
use super::tables::{
    basic::build_basic, location::build_location, lua::build_lua, plugin::build_plugin,
    server::build_server, upstream::build_upstream,
};
use crate::error::{ConfigError, ConfigErrors};
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;

/// One TOML document and where it came from (a file path, an etcd key, `<embedded>`).
#[derive(Debug, Clone)]
pub struct SourceDoc {
    pub name: String,
    pub text: String,
}

/// Parse, merge and validate `docs` into a [`Config`].
pub fn build(docs: &[SourceDoc]) -> Result<Config, ConfigErrors> {
    let mut b = Builder {
        docs,
        locators: docs.iter().map(|d| Locator::new(&d.text)).collect(),
        errors: Vec::new(),
    };

    // 1. parse and merge: each named table may be defined once across all documents
    let Merged {
        basic,
        lua,
        servers: raw_servers,
        locations: raw_locations,
        upstreams: raw_upstreams,
        plugins: raw_plugins,
    } = merge(&mut b, docs);

    // 2. [basic] and [lua]
    let basic = build_basic(&mut b, basic.as_ref());
    let lua = build_lua(&mut b, lua.as_ref());

    // 3. [upstreams] and [plugins] first: locations refer to them
    let mut upstreams = Vec::new();
    for (name, e) in &raw_upstreams {
        let table = format!("upstreams.{name}");
        if let Some(raw) = b.typed::<RawUpstream>(e, &table) {
            if let Some(u) = build_upstream(&mut b, e.doc, &table, name, raw) {
                upstreams.push(u);
            }
        }
    }
    let mut plugins = Vec::new();
    for (name, e) in &raw_plugins {
        let table = format!("plugins.{name}");
        if let Some(p) = build_plugin(&mut b, e, &table, name, &lua) {
            plugins.push(p);
        }
    }

    // 4. [locations]
    let upstream_names: HashSet<&str> = raw_upstreams.keys().map(String::as_str).collect();
    let plugin_names: Vec<&str> = plugins
        .iter()
        .map(|p: &PluginDef| p.name.as_str())
        .collect();
    let mut locations = Vec::new();
    for (name, e) in &raw_locations {
        let table = format!("locations.{name}");
        if let Some(raw) = b.typed::<RawLocation>(e, &table) {
            let loc = build_location(
                &mut b,
                e.doc,
                &table,
                name,
                raw,
                &upstream_names,
                &upstreams,
                &plugin_names,
                &raw_plugins,
            );
            locations.push(loc);
        }
    }

    // 5. [servers]
    let location_names: Vec<&str> = locations
        .iter()
        .map(|l: &Location| l.name.as_str())
        .collect();
    let mut servers = Vec::new();
    let mut listeners: HashMap<SocketAddr, String> = HashMap::new();
    for (name, e) in &raw_servers {
        let table = format!("servers.{name}");
        if let Some(raw) = b.typed::<RawServer>(e, &table) {
            let s = build_server(
                &mut b,
                e.doc,
                &table,
                name,
                raw,
                &location_names,
                &raw_locations,
                &mut listeners,
            );
            servers.push(s);
        }
    }
    if servers.is_empty() && b.errors.is_empty() {
        b.errors.push(ConfigError {
            file: docs.first().map(|d| d.name.clone()).unwrap_or_default(),
            line: None,
            table: "servers".into(),
            key: None,
            message: "no [servers.NAME] table: nothing would listen".into(),
        });
    }

    if basic.work_stealing && plugins.iter().any(|p: &PluginDef| p.category == "lua") {
        let doc = docs.iter().position(|_| true).unwrap_or(0);
        b.err(
            doc,
            "basic",
            Some("work_stealing"),
            "Lua plugins need work_stealing = false (each worker thread keeps its own Lua VM)",
        );
    }
    if b.errors.is_empty() {
        Ok(Config {
            basic,
            servers,
            locations,
            upstreams,
            plugins,
            lua,
        })
    } else {
        Err(ConfigErrors(b.errors))
    }
}
