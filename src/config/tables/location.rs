//! `[locations.NAME]`: match rules, rewrite, headers, the upstream and the plugin chain.

use super::super::builder::{Builder, Entry};
use super::super::model::*;
use super::super::raw::*;
use crate::routing::rewrite::Rewrite;
use crate::routing::rules::{Condition, HostRule, PathRule};
use crate::routing::vars::{HeaderTemplate, Template};
use crate::upstream::UpstreamConf;
use std::collections::{BTreeMap, HashSet};

#[allow(clippy::too_many_arguments)]
pub(in crate::config) fn build_location(
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
        https_redirect: raw.https_redirect.unwrap_or(false),
        grpc_web: raw.grpc_web.unwrap_or(false),
    }
}
