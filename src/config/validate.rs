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
    basic::build_basic, certificate::build_certificates, location::build_location, lua::build_lua,
    plugin::build_plugin, server::build_server, storage::build_storage, upstream::build_upstream,
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
        certificates: raw_certificates,
        storage,
    } = merge(&mut b, docs);
    let storage = build_storage(&mut b, storage.as_ref());

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
    let mut tls_specs = Vec::new();
    let mut listeners: HashMap<SocketAddr, String> = HashMap::new();
    for (name, e) in &raw_servers {
        let table = format!("servers.{name}");
        if let Some(raw) = b.typed::<RawServer>(e, &table) {
            let (s, tls) = build_server(
                &mut b,
                e.doc,
                &table,
                name,
                raw,
                &location_names,
                &raw_locations,
                &mut listeners,
            );
            tls_specs.push((e.doc, table, tls));
            servers.push(s);
        }
    }

    // 6. [certificates], and the TLS servers' handshake settings over them
    let mut warnings = Vec::new();
    let (certificates, acme) =
        build_certificates(&mut b, &raw_certificates, &storage, &mut warnings);
    let store = std::sync::Arc::new(crate::tls::sni::CertStore::new(&certificates));
    for (server, (doc, table, spec)) in servers.iter_mut().zip(tls_specs) {
        let Some(spec) = spec else { continue };
        if store.is_empty() && acme.is_empty() {
            b.err(
                doc,
                &table,
                Some("tls"),
                "a TLS server needs at least one [certificates.NAME]",
            );
            continue;
        }
        match crate::tls::settings::build(&spec, store.clone()) {
            Ok(t) => server.tls = Some(std::sync::Arc::new(t)),
            Err(p) => b.err(doc, &table, Some(p.key), p.message),
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
            certificates,
            acme,
            storage,
            warnings,
        })
    } else {
        Err(ConfigErrors(b.errors))
    }
}
