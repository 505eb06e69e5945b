//! The steps of validation that touch the world: files (scripts, modules, CA bundles,
//! certificates), DNS (upstream peers) and Lua (compiling scripts, running module code on
//! trial). They run after every table has passed its own checks (`tables/*.rs`), in this
//! order, each still recording its errors with file, table, key and line:
//!
//! ```text
//! [lua] dir modules → upstream peers and CA files → plugins (Lua scripts compiled) →
//! client CAs → certificates → TLS servers' handshake settings
//! ```
//!
//! So a config with a typo is reported whole before anything is resolved or compiled, and the
//! order of effects is one place to read.

use super::builder::{Builder, Entry};
use super::model::{PluginDef, Server};
use super::tables::{
    certificate::build_certificates, lua::load_modules, plugin::build_plugin,
    upstream::resolve_upstream, upstream::PendingUpstream,
};
use crate::error::ConfigError;
use crate::tls::acme::storage::Storage;
use crate::tls::acme::AcmeCert;
use crate::tls::certs::Certificate;
use crate::upstream::UpstreamConf;
use std::collections::BTreeMap;
use std::sync::Arc;

/// What the table builders left for this stage.
pub(super) struct Pending<'a> {
    /// the document `[lua]` is in
    pub lua_doc: usize,
    /// per upstream built: its document, table name and pending work
    pub upstreams: Vec<(usize, String, PendingUpstream)>,
    pub raw_plugins: &'a BTreeMap<String, Entry>,
    /// per server built: its document, table name and TLS settings, if `tls = true`
    pub tls: Vec<(usize, String, Option<crate::tls::settings::Spec>)>,
    pub raw_certificates: &'a BTreeMap<String, Entry>,
}

/// What this stage made.
pub(super) struct Done {
    pub plugins: Vec<PluginDef>,
    pub certificates: Vec<Certificate>,
    pub acme: Vec<AcmeCert>,
    pub warnings: Vec<ConfigError>,
    /// the certificates by name, for TLS listeners outside `[servers]` (the admin's)
    pub store: Arc<crate::tls::sni::CertStore>,
}

pub(super) fn run(
    b: &mut Builder<'_>,
    pending: Pending<'_>,
    lua: &mut crate::scripting::LuaSettings,
    upstreams: &mut [UpstreamConf],
    servers: &mut [Server],
    storage: &Storage,
) -> Done {
    // 1. modules first: scripts may `require` them
    load_modules(b, pending.lua_doc, lua);

    // 2. upstream peers resolved, CA files read
    for (conf, (doc, table, p)) in upstreams.iter_mut().zip(pending.upstreams) {
        resolve_upstream(b, doc, &table, conf, p);
    }

    // 3. plugins, in name order: locations refer to them by that position (Lua plugins count
    // their hook calls when some server exposes metrics)
    lua.metrics = servers.iter().any(|s| s.metrics.is_some());
    // plugins made of others (`combined_auth`) come after the rest, then all go in name order
    let composite =
        |e: &Entry| e.value.get("category").and_then(|c| c.as_str()) == Some("combined_auth");
    let mut plugins: Vec<PluginDef> = Vec::new();
    let upstream_names: Vec<String> = upstreams.iter().map(|u| u.name.clone()).collect();
    for pass in [false, true] {
        for (name, e) in pending.raw_plugins {
            if composite(e) != pass {
                continue;
            }
            let table = format!("plugins.{name}");
            let built: Vec<_> = if pass {
                plugins
                    .iter()
                    .map(|p| (p.name.clone(), p.plugin.clone()))
                    .collect()
            } else {
                Vec::new()
            };
            if let Some(p) = build_plugin(b, e, &table, name, lua, built, &upstream_names) {
                plugins.push(p);
            }
        }
    }
    plugins.sort_by(|a, b| a.name.cmp(&b.name));

    // 4. certificates, then each TLS server's settings over them (client CAs read here)
    let mut warnings = Vec::new();
    let (certificates, acme) =
        build_certificates(b, pending.raw_certificates, storage, &mut warnings);
    let store = Arc::new(crate::tls::sni::CertStore::new(&certificates));
    for (server, (doc, table, spec)) in servers.iter_mut().zip(pending.tls) {
        let Some(mut spec) = spec else { continue };
        if let Some(v) = spec.client_ca_source.as_deref() {
            match crate::tls::pem::read(v).and_then(|p| p.certs()) {
                Ok(cas) => spec.client_ca = Some(cas),
                Err(m) => {
                    b.err(doc, &table, Some("client_ca"), m);
                    continue;
                }
            }
        }
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
            Ok(t) => server.tls = Some(Arc::new(t)),
            Err(p) => b.err(doc, &table, Some(p.key), p.message),
        }
    }
    Done {
        plugins,
        certificates,
        acme,
        warnings,
        store,
    }
}
