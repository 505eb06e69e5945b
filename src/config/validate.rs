//! From TOML documents to a valid [`Config`], collecting every error on the way.
//!
//! ```text
//! documents ──parse──▶ toml tables ──merge by name──▶ raw structs (serde, deny_unknown_fields)
//!     ──check & resolve──▶ model::Config
//! ```
//!
//! Each stage records errors and goes on where it can, so one run reports every problem, each
//! with its file, table, key and line.

use super::locate::{line_in, Locator};
use super::model::*;
use super::raw::*;
use super::units::{parse_duration, parse_size};
use crate::error::{ConfigError, ConfigErrors};
use crate::observability::access_log::LogFormat;
use crate::routing::rewrite::Rewrite;
use crate::routing::rules::{Condition, HostRule, PathRule};
use crate::routing::vars::{HeaderTemplate, Template};
use crate::upstream::balance::Algo;
use crate::upstream::health::HealthCheck;
use crate::upstream::{Alpn, UpstreamConf};
use serde::de::DeserializeOwned;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

/// One TOML document and where it came from (a file path, an etcd key, `<embedded>`).
#[derive(Debug, Clone)]
pub struct SourceDoc {
    pub name: String,
    pub text: String,
}

const SECTIONS: &[&str] = &[
    "basic",
    "lua",
    "servers",
    "locations",
    "upstreams",
    "plugins",
];

/// A table as written, with the document it came from.
struct Entry {
    doc: usize,
    value: toml::Value,
}

struct Builder<'a> {
    docs: &'a [SourceDoc],
    locators: Vec<Locator>,
    errors: Vec<ConfigError>,
}

impl Builder<'_> {
    fn err(&mut self, doc: usize, table: &str, key: Option<&str>, message: impl Into<String>) {
        let mut path: Vec<&str> = table.splitn(2, '.').collect();
        if let Some(k) = key {
            path.extend(k.split('.'));
        }
        self.errors.push(ConfigError {
            file: self.docs[doc].name.clone(),
            line: self.locators[doc].line(&path),
            table: table.to_string(),
            key: key.map(str::to_string),
            message: message.into(),
        });
    }

    /// Deserialize one table into its raw struct, recording the failing key on error.
    fn typed<T: DeserializeOwned>(&mut self, e: &Entry, table: &str) -> Option<T> {
        match serde_path_to_error::deserialize::<_, T>(e.value.clone()) {
            Ok(t) => Some(t),
            Err(err) => {
                let path = err.path().to_string();
                let msg = err.into_inner().to_string();
                let key = unknown_field(&msg).or_else(|| (path != ".").then_some(path));
                let key = key.map(|k| strip_index(&k));
                self.err(e.doc, table, key.as_deref(), msg);
                None
            }
        }
    }

    fn duration(
        &mut self,
        doc: usize,
        table: &str,
        key: &str,
        v: &Option<String>,
        default: Duration,
    ) -> Duration {
        match v {
            None => default,
            Some(s) => parse_duration(s).unwrap_or_else(|m| {
                self.err(doc, table, Some(key), m);
                default
            }),
        }
    }

    fn opt_duration(
        &mut self,
        doc: usize,
        table: &str,
        key: &str,
        v: &Option<String>,
    ) -> Option<Duration> {
        v.as_ref().and_then(|s| match parse_duration(s) {
            Ok(d) => Some(d),
            Err(m) => {
                self.err(doc, table, Some(key), m);
                None
            }
        })
    }

    fn size(
        &mut self,
        doc: usize,
        table: &str,
        key: &str,
        v: &Option<crate::config::raw::Size>,
    ) -> Option<u64> {
        use crate::config::raw::Size;
        v.as_ref().and_then(|s| match s {
            Size::Bytes(n) => Some(*n),
            Size::Text(s) => match parse_size(s) {
                Ok(n) => Some(n),
                Err(m) => {
                    self.err(doc, table, Some(key), m);
                    None
                }
            },
        })
    }
}

fn unknown_field(msg: &str) -> Option<String> {
    let rest = msg.split("unknown field `").nth(1)?;
    Some(rest.split('`').next()?.to_string())
}

fn strip_index(k: &str) -> String {
    k.split('[').next().unwrap_or(k).to_string()
}

/// Parse, merge and validate `docs` into a [`Config`].
pub fn build(docs: &[SourceDoc]) -> Result<Config, ConfigErrors> {
    let mut b = Builder {
        docs,
        locators: docs.iter().map(|d| Locator::new(&d.text)).collect(),
        errors: Vec::new(),
    };

    // 1. parse and merge: each named table may be defined once across all documents
    let mut basic: Option<Entry> = None;
    let mut lua: Option<Entry> = None;
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
            if section == "lua" {
                if let Some(prev) = &lua {
                    let first = docs[prev.doc].name.clone();
                    b.err(
                        doc,
                        "lua",
                        None,
                        format!("[lua] is already defined in {first}"),
                    );
                } else {
                    lua = Some(Entry { doc, value });
                }
                continue;
            }
            if section == "basic" {
                if let Some(prev) = &basic {
                    let first = docs[prev.doc].name.clone();
                    b.err(
                        doc,
                        "basic",
                        None,
                        format!("[basic] is already defined in {first}"),
                    );
                } else {
                    basic = Some(Entry { doc, value });
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

fn build_basic(b: &mut Builder<'_>, e: Option<&Entry>) -> Basic {
    let (doc, raw) = match e {
        Some(e) => (e.doc, b.typed::<RawBasic>(e, "basic").unwrap_or_default()),
        None => (0, RawBasic::default()),
    };
    let t = "basic";
    let threads = raw.threads.unwrap_or(1);
    if threads == 0 || threads > 1024 {
        b.err(
            doc,
            t,
            Some("threads"),
            "threads must be between 1 and 1024",
        );
    }
    let log_level = raw.log_level.unwrap_or_else(|| "info".into());
    if tracing_subscriber::EnvFilter::try_new(&log_level).is_err() {
        b.err(
            doc,
            t,
            Some("log_level"),
            format!("`{log_level}` is not a log level or filter"),
        );
    }
    Basic {
        threads: threads.max(1),
        log_level,
        grace_period: b.duration(
            doc,
            t,
            "grace_period",
            &raw.grace_period,
            Duration::from_secs(30),
        ),
        graceful_shutdown_timeout: b.duration(
            doc,
            t,
            "graceful_shutdown_timeout",
            &raw.graceful_shutdown_timeout,
            Duration::from_secs(10),
        ),
        pid_file: raw.pid_file,
        upgrade_sock: raw.upgrade_sock,
        error_log: raw.error_log,
        // off by default: Lua plugins need each connection to stay on one worker thread
        work_stealing: raw.work_stealing.unwrap_or(false),
        upstream_keepalive_pool_size: raw.upstream_keepalive_pool_size.unwrap_or(128),
        watch: raw.watch.unwrap_or(true),
        error_page: match &raw.error_template {
            None => Default::default(),
            Some(t) => crate::proxy::error_page::ErrorPage::parse(t).unwrap_or_else(|m| {
                b.err(doc, t, Some("error_template"), m);
                Default::default()
            }),
        },
    }
}

fn build_upstream(
    b: &mut Builder<'_>,
    doc: usize,
    t: &str,
    name: &str,
    raw: RawUpstream,
) -> Option<UpstreamConf> {
    let before = b.errors.len();
    if let Some(d) = &raw.discovery {
        if d != "static" {
            b.err(
                doc,
                t,
                Some("discovery"),
                format!("discovery `{d}` is not available in this build; use \"static\""),
            );
        }
    }
    if raw.addrs.is_empty() {
        b.err(
            doc,
            t,
            Some("addrs"),
            "an upstream needs at least one address",
        );
    }
    let mut addrs = Vec::new();
    for a in &raw.addrs {
        let mut parts = a.split_whitespace();
        let host = parts.next().unwrap_or("");
        let weight = match parts.next().map(str::parse::<u32>) {
            None => 1,
            Some(Ok(w)) if (1..=1000).contains(&w) => w,
            Some(_) => {
                b.err(
                    doc,
                    t,
                    Some("addrs"),
                    format!("`{a}`: weight must be 1..=1000"),
                );
                continue;
            }
        };
        match resolve(host) {
            Some(sa) => addrs.push((sa, weight)),
            _ => b.err(
                doc,
                t,
                Some("addrs"),
                format!("`{host}` is not HOST:PORT that resolves"),
            ),
        }
    }
    let algo = Algo::parse(raw.algo.as_deref().unwrap_or("round_robin")).unwrap_or_else(|m| {
        b.err(doc, t, Some("algo"), m);
        Algo::RoundRobin
    });
    let health = raw
        .health_check
        .as_deref()
        .filter(|s| !s.is_empty())
        .and_then(|s| {
            HealthCheck::parse(s)
                .map_err(|m| b.err(doc, t, Some("health_check"), m))
                .ok()
        });
    let alpn = match raw.alpn.as_deref().unwrap_or("h1") {
        "h1" => Alpn::H1,
        "h2" => Alpn::H2,
        "h2h1" => Alpn::H2H1,
        other => {
            b.err(
                doc,
                t,
                Some("alpn"),
                format!("alpn `{other}`: use h1, h2 or h2h1"),
            );
            Alpn::H1
        }
    };
    let ca = raw.ca_file.as_deref().and_then(|path| {
        load_ca(path)
            .map_err(|m| b.err(doc, t, Some("ca_file"), m))
            .ok()
    });
    let conf = UpstreamConf {
        name: name.to_string(),
        addrs,
        algo,
        health,
        alpn,
        tls: raw.tls,
        sni: raw.sni.unwrap_or_default(),
        verify_cert: raw.verify_cert.unwrap_or(true),
        ca,
        connect_timeout: b.duration(
            doc,
            t,
            "connect_timeout",
            &raw.connect_timeout,
            Duration::from_secs(2),
        ),
        read_timeout: Some(b.duration(
            doc,
            t,
            "read_timeout",
            &raw.read_timeout,
            Duration::from_secs(30),
        )),
        write_timeout: Some(b.duration(
            doc,
            t,
            "write_timeout",
            &raw.write_timeout,
            Duration::from_secs(30),
        )),
        idle_timeout: Some(b.duration(
            doc,
            t,
            "idle_timeout",
            &raw.idle_timeout,
            Duration::from_secs(60),
        )),
        retries: raw.retries.unwrap_or(1),
        max_fails: raw.max_fails.unwrap_or(3),
        fail_timeout: b.duration(
            doc,
            t,
            "fail_timeout",
            &raw.fail_timeout,
            Duration::from_secs(10),
        ),
    };
    (b.errors.len() == before).then_some(conf)
}

/// Read a PEM file of CA certificates; every certificate must parse (Pingora would panic on
/// a bad one later, on the request path).
fn load_ca(path: &str) -> Result<Vec<Vec<u8>>, String> {
    let pem = std::fs::read(path).map_err(|e| format!("cannot read `{path}`: {e}"))?;
    let mut ders = Vec::new();
    for item in rustls_pemfile::certs(&mut pem.as_slice()) {
        let der = item.map_err(|e| format!("`{path}`: bad PEM: {e}"))?;
        x509_parser::parse_x509_certificate(der.as_ref())
            .map_err(|e| format!("`{path}`: a certificate does not parse: {e}"))?;
        ders.push(der.as_ref().to_vec());
    }
    if ders.is_empty() {
        return Err(format!("`{path}` holds no PEM certificate"));
    }
    Ok(ders)
}

fn build_lua(b: &mut Builder<'_>, e: Option<&Entry>) -> crate::scripting::LuaSettings {
    let mut s = crate::scripting::LuaSettings::default();
    let Some(e) = e else { return s };
    let Some(raw) = b.typed::<RawLua>(e, "lua") else {
        return s;
    };
    s.time_budget = b.duration(e.doc, "lua", "time_budget", &raw.time_budget, s.time_budget);
    if s.time_budget.is_zero() {
        b.err(
            e.doc,
            "lua",
            Some("time_budget"),
            "time_budget must be above zero",
        );
    }
    if let Some(m) = b.size(e.doc, "lua", "memory_limit", &raw.memory_limit) {
        if m < (1 << 20) {
            b.err(
                e.doc,
                "lua",
                Some("memory_limit"),
                "memory_limit must be at least 1MB",
            );
        }
        s.memory_limit = m as usize;
    }
    if let Some(dir) = &raw.dir {
        let path = std::path::PathBuf::from(dir);
        if !path.is_dir() {
            b.err(
                e.doc,
                "lua",
                Some("dir"),
                format!("`{dir}` is not a directory"),
            );
        } else {
            match crate::scripting::modules::load(&path) {
                Ok(m) => s.modules = m,
                Err(errors) => {
                    for m in errors {
                        b.err(e.doc, "lua", Some("dir"), m.to_string());
                    }
                }
            }
        }
        s.dir = Some(path);
    }
    if let Some(list) = &raw.http_deny {
        match crate::scripting::http_policy::parse_nets(list) {
            Ok(n) => std::sync::Arc::make_mut(&mut s.http_policy).deny = n,
            Err(m) => b.err(e.doc, "lua", Some("http_deny"), m),
        }
    }
    if let Some(list) = &raw.http_allow {
        match crate::scripting::http_policy::parse_nets(list) {
            Ok(n) => std::sync::Arc::make_mut(&mut s.http_policy).allow = Some(n),
            Err(m) => b.err(e.doc, "lua", Some("http_allow"), m),
        }
    }
    let mut decl = Vec::new();
    for (name, v) in raw.shared.iter().flatten() {
        match crate::scripting::shared::parse_limits(v) {
            Ok(l) => decl.push((name.clone(), l)),
            Err(m) => b.err(
                e.doc,
                "lua",
                Some("shared"),
                format!("shared dict `{name}`: {m}"),
            ),
        }
    }
    s.shared = crate::scripting::shared::dicts(&decl);
    for m in crate::scripting::trial::run_modules(&s) {
        b.err(e.doc, "lua", Some("dir"), m);
    }
    s
}

fn build_plugin(
    b: &mut Builder<'_>,
    e: &Entry,
    t: &str,
    name: &str,
    lua: &crate::scripting::LuaSettings,
) -> Option<PluginDef> {
    let toml::Value::Table(mut table) = e.value.clone() else {
        b.err(e.doc, t, None, "a plugin must be a table");
        return None;
    };
    let category = match table.remove("category") {
        Some(toml::Value::String(c)) => c,
        Some(_) => {
            b.err(e.doc, t, Some("category"), "category must be a string");
            return None;
        }
        None => {
            b.err(
                e.doc,
                t,
                Some("category"),
                format!(
                    "missing `category`; one of {}",
                    crate::plugins::CATEGORIES.join(", ")
                ),
            );
            return None;
        }
    };
    let env = crate::plugins::BuildEnv {
        name: name.to_string(),
        lua: lua.clone(),
    };
    match crate::plugins::build(&category, toml::Value::Table(table), &env) {
        Ok(plugin) => Some(PluginDef {
            name: name.to_string(),
            category,
            plugin,
        }),
        Err(pe) => {
            b.err(e.doc, t, pe.key.as_deref(), pe.message);
            None
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn build_location(
    b: &mut Builder<'_>,
    doc: usize,
    t: &str,
    name: &str,
    raw: RawLocation,
    upstream_names: &HashSet<&str>,
    upstreams: &[UpstreamConf],
    plugin_names: &[&str],
    raw_plugins: &BTreeMap<String, Entry>,
) -> Location {
    let hosts: Vec<HostRule> = raw
        .host
        .into_vec()
        .iter()
        .filter_map(|h| {
            HostRule::parse(h)
                .map_err(|m| b.err(doc, t, Some("host"), m))
                .ok()
        })
        .collect();
    let path = PathRule::parse(raw.path.as_deref().unwrap_or("")).unwrap_or_else(|m| {
        b.err(doc, t, Some("path"), m);
        PathRule::Any
    });
    let conds = |b: &mut Builder<'_>, list: &[String], sep: char, key: &str| -> Vec<Condition> {
        list.iter()
            .filter_map(|c| {
                Condition::parse(c, sep)
                    .map_err(|m| b.err(doc, t, Some(key), m))
                    .ok()
            })
            .collect()
    };
    let headers = conds(b, &raw.match_headers, ':', "match_headers");
    let query = conds(b, &raw.match_query, '=', "match_query");
    let rewrite = raw.rewrite.as_deref().and_then(|r| {
        Rewrite::parse(r)
            .map_err(|m| b.err(doc, t, Some("rewrite"), m))
            .ok()
    });

    // names that `$name` may refer to
    let mut captures: HashSet<String> = HashSet::new();
    for h in &hosts {
        if let HostRule::Regex(re) = h {
            captures.extend(re.capture_names().flatten().map(String::from));
        }
    }
    if let PathRule::Regex(re) = &path {
        captures.extend(re.capture_names().flatten().map(String::from));
    }
    let check_vars = |b: &mut Builder<'_>, tpl: &Template, key: &str| {
        for c in tpl.captures() {
            if !captures.contains(c) {
                b.err(doc, t, Some(key), format!(
                    "unknown variable `${c}`: not a built-in and not a named capture of this location's host or path regex"
                ));
            }
        }
    };

    let upstream = match raw.upstream.as_deref().map(str::trim) {
        None | Some("") => UpstreamRef::None,
        Some(u) if u.contains('$') => match Template::parse(u) {
            Ok(tpl) => {
                check_vars(b, &tpl, "upstream");
                UpstreamRef::Var(tpl)
            }
            Err(m) => {
                b.err(doc, t, Some("upstream"), m);
                UpstreamRef::None
            }
        },
        Some(u) => {
            if !upstream_names.contains(u) {
                b.err(doc, t, Some("upstream"), format!("unknown upstream `{u}`"));
            }
            upstreams
                .iter()
                .position(|x| x.name == u)
                .map(UpstreamRef::Fixed)
                .unwrap_or(UpstreamRef::None)
        }
    };
    let header_list = |b: &mut Builder<'_>, list: &[String], key: &str| -> Vec<HeaderTemplate> {
        list.iter()
            .filter_map(|h| match HeaderTemplate::parse(h) {
                Ok(ht) => {
                    check_vars(b, &ht.value, key);
                    Some(ht)
                }
                Err(m) => {
                    b.err(doc, t, Some(key), m);
                    None
                }
            })
            .collect()
    };
    let set_headers = header_list(b, &raw.proxy_set_headers, "proxy_set_headers");
    let add_headers = header_list(b, &raw.proxy_add_headers, "proxy_add_headers");
    let mut plugins = Vec::new();
    for p in &raw.plugins {
        match plugin_names.iter().position(|n| n == p) {
            Some(i) => plugins.push(i),
            // a plugin that failed to build has its own error already
            None if raw_plugins.contains_key(p) => {}
            None => b.err(doc, t, Some("plugins"), format!("unknown plugin `{p}`")),
        }
    }
    Location {
        name: name.to_string(),
        hosts,
        path,
        headers,
        query,
        priority: raw.priority,
        rewrite,
        upstream,
        set_headers,
        add_headers,
        plugins,
        client_max_body_size: b.size(doc, t, "client_max_body_size", &raw.client_max_body_size),
        timeout: b.opt_duration(doc, t, "timeout", &raw.timeout),
    }
}

#[allow(clippy::too_many_arguments)]
fn build_server(
    b: &mut Builder<'_>,
    doc: usize,
    t: &str,
    name: &str,
    raw: RawServer,
    location_names: &[&str],
    raw_locations: &BTreeMap<String, Entry>,
    listeners: &mut HashMap<SocketAddr, String>,
) -> Server {
    let mut addrs = Vec::new();
    let list = raw.addr.into_vec();
    if list.is_empty() {
        b.err(
            doc,
            t,
            Some("addr"),
            "a server needs at least one listen address",
        );
    }
    for a in list {
        match a.parse::<SocketAddr>() {
            Ok(sa) => {
                if let Some(other) = listeners.insert(sa, name.to_string()) {
                    b.err(
                        doc,
                        t,
                        Some("addr"),
                        format!("duplicate listener {sa}: also used by server `{other}`"),
                    );
                } else {
                    addrs.push(sa);
                }
            }
            Err(_) => b.err(
                doc,
                t,
                Some("addr"),
                format!("`{a}` is not IP:PORT (e.g. \"127.0.0.1:6188\")"),
            ),
        }
    }
    if raw.tls {
        b.err(
            doc,
            t,
            Some("tls"),
            "TLS listeners need [certificates], which this build does not have yet",
        );
    }
    if raw.metrics.as_deref().is_some_and(|m| !m.is_empty()) {
        b.err(
            doc,
            t,
            Some("metrics"),
            "the metrics endpoint is not available in this build yet",
        );
    }
    let mut locations = Vec::new();
    for l in &raw.locations {
        match location_names.iter().position(|n| n == l) {
            Some(i) => locations.push(i),
            None if raw_locations.contains_key(l) => {}
            None => b.err(doc, t, Some("locations"), format!("unknown location `{l}`")),
        }
    }
    let access_log = raw
        .access_log
        .as_deref()
        .filter(|s| !s.is_empty())
        .and_then(|s| {
            LogFormat::parse(s)
                .map_err(|m| b.err(doc, t, Some("access_log"), m))
                .ok()
        });
    let trusted_proxies = raw
        .trusted_proxies
        .iter()
        .filter_map(|p| {
            let parsed = p
                .parse::<ipnet::IpNet>()
                .or_else(|_| p.parse::<std::net::IpAddr>().map(ipnet::IpNet::from));
            parsed
                .map_err(|_| {
                    b.err(
                        doc,
                        t,
                        Some("trusted_proxies"),
                        format!("`{p}` is not an IP or CIDR"),
                    )
                })
                .ok()
        })
        .collect();
    let size = |b: &mut Builder<'_>,
                key: &str,
                v: &Option<crate::config::raw::Size>,
                default: u64|
     -> usize { b.size(doc, t, key, v).unwrap_or(default) as usize };
    Server {
        name: name.to_string(),
        addrs,
        locations,
        http2: raw.http2,
        access_log,
        access_log_path: raw.access_log_path,
        trusted_proxies,
        forwarded_headers: raw.forwarded_headers.unwrap_or(true),
        max_header_size: size(b, "max_header_size", &raw.max_header_size, 64 << 10),
        max_uri_size: size(b, "max_uri_size", &raw.max_uri_size, 8 << 10),
        header_timeout: b.duration(
            doc,
            t,
            "header_timeout",
            &raw.header_timeout,
            Duration::from_secs(60),
        ),
        body_timeout: b.duration(
            doc,
            t,
            "body_timeout",
            &raw.body_timeout,
            Duration::from_secs(30),
        ),
        keepalive_timeout: b.duration(
            doc,
            t,
            "keepalive_timeout",
            &raw.keepalive_timeout,
            Duration::from_secs(60),
        ),
    }
}

/// `HOST:PORT` to an address: an IP literal as is, a name by the system's resolver (never
/// while fuzzing: a fuzzer must not send DNS queries).
fn resolve(host: &str) -> Option<std::net::SocketAddr> {
    if let Ok(sa) = host.parse() {
        return Some(sa);
    }
    if cfg!(fuzzing) {
        return None;
    }
    host.to_socket_addrs().ok()?.next()
}
