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
//! tables/*.rs       one builder per table: basic, storage, lua, upstream, location, server,
//!                   plugin, certificate; each checks its table without touching the world
//! world.rs          then what touches files, DNS and Lua, in one place and order
//! validate.rs       the order: [basic], [storage], [lua], upstreams, locations, servers, world
//! ```

use super::builder::Builder;
use super::locate::Locator;
use super::merge::{merge, Merged};
use super::model::*;
use super::raw::*;
use super::tables::{
    admin::build_admin, basic::build_basic, location::build_location, lua::build_lua,
    server::build_server, storage::build_storage, upstream::build_upstream,
};
use super::world::{self, Done, Pending};
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
        admin,
        lua,
        servers: raw_servers,
        locations: raw_locations,
        upstreams: raw_upstreams,
        plugins: raw_plugins,
        certificates: raw_certificates,
        storage,
    } = merge(&mut b, docs);
    let storage = build_storage(&mut b, storage.as_ref());

    // 2. [basic] and [lua] (its modules are read with the world, below)
    let basic = build_basic(&mut b, basic.as_ref());
    let admin_doc = admin.as_ref().map_or(0, |e| e.doc);
    let admin = build_admin(&mut b, admin.as_ref());
    let lua_doc = lua.as_ref().map_or(0, |e| e.doc);
    let mut lua = build_lua(&mut b, lua.as_ref());

    // 3. [upstreams] (their peers are resolved with the world, below)
    let mut upstreams = Vec::new();
    let mut pending_upstreams = Vec::new();
    for (name, e) in &raw_upstreams {
        let table = format!("upstreams.{name}");
        if let Some(raw) = b.typed::<RawUpstream>(e, &table) {
            if let Some((u, p)) = build_upstream(&mut b, e.doc, &table, name, raw, &basic) {
                upstreams.push(u);
                pending_upstreams.push((e.doc, table, p));
            }
        }
    }

    // 4. [locations]: plugins are referred to by their position in name order, the order
    // they are built in (with the world, below)
    let upstream_names: HashSet<&str> = raw_upstreams.keys().map(String::as_str).collect();
    let plugin_names: Vec<&str> = raw_plugins.keys().map(String::as_str).collect();
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

    if let Some(server) = admin.as_ref().and_then(|a| listeners.get(&a.addr)) {
        b.err(
            admin_doc,
            "admin",
            Some("addr"),
            format!("server `{server}` listens there already"),
        );
    }

    // 6. the world: modules, DNS, CA files, Lua scripts, certificates (world.rs)
    let pending = Pending {
        lua_doc,
        upstreams: pending_upstreams,
        raw_plugins: &raw_plugins,
        tls: tls_specs,
        raw_certificates: &raw_certificates,
    };
    let Done {
        plugins,
        certificates,
        acme,
        warnings,
        store,
    } = world::run(
        &mut b,
        pending,
        &mut lua,
        &mut upstreams,
        &mut servers,
        &storage,
    );
    if servers.is_empty() && b.errors.is_empty() {
        b.errors.push(ConfigError {
            file: docs.first().map(|d| d.name.clone()).unwrap_or_default(),
            line: None,
            table: "servers".into(),
            key: None,
            message: "no [servers.NAME] table: nothing would listen".into(),
        });
    }

    if basic.work_stealing
        && plugins
            .iter()
            .any(|p: &PluginDef| p.category == "lua" || p.category == "openresty")
    {
        let doc = docs.iter().position(|_| true).unwrap_or(0);
        b.err(
            doc,
            "basic",
            Some("work_stealing"),
            "Lua plugins need work_stealing = false (each worker thread keeps its own Lua VM)",
        );
    }
    // the admin over TLS: the servers' certificates, default settings
    let admin_tls = match admin.as_ref().filter(|a| a.tls) {
        None => None,
        Some(_) if store.is_empty() && acme.is_empty() => {
            b.err(
                admin_doc,
                "admin",
                Some("tls"),
                "tls = true needs at least one [certificates.NAME]",
            );
            None
        }
        Some(_) => crate::tls::settings::build(&Default::default(), store)
            .map(std::sync::Arc::new)
            .map_err(|p| b.err(admin_doc, "admin", Some(p.key), p.message))
            .ok(),
    };
    if b.errors.is_empty() {
        Ok(Config {
            admin_tls,
            basic,
            servers,
            locations,
            upstreams,
            plugins,
            lua,
            certificates,
            acme,
            storage,
            admin,
            warnings,
        })
    } else {
        Err(ConfigErrors(b.errors))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_table_is_checked_before_the_world_is_touched() {
        // the file error (a missing CA file, world.rs) is in the first table; the typo (a
        // table's own check) in the last: the typo is still reported first
        let text = r#"
[upstreams.a]
addrs = ["127.0.0.1:9"]
ca_file = "/nonexistent/ca.pem"

[servers.s]
addr = "127.0.0.1:1"
locations = ["l"]

[locations.l]
upstream = "a"
pth = "/x"
"#;
        let docs = [SourceDoc {
            name: "t.toml".into(),
            text: text.into(),
        }];
        let errors = build(&docs).expect_err("two errors").0;
        let keys: Vec<_> = errors
            .iter()
            .map(|e| e.key.clone().unwrap_or_default())
            .collect();
        assert_eq!(keys, ["pth", "ca_file"], "{errors:?}");
    }
}
