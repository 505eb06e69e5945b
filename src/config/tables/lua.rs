//! `[lua]`: the engine's limits, shared dicts and the outbound policy; then, with the other
//! steps that touch the world ([`load_modules`]), the `[lua] dir` modules read, compiled and
//! run on trial.

use super::super::builder::{Builder, Entry};
use super::super::raw::*;

pub(in crate::config) fn build_lua(
    b: &mut Builder<'_>,
    e: Option<&Entry>,
) -> crate::scripting::LuaSettings {
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
    s.dir = raw.dir.as_ref().map(std::path::PathBuf::from);
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
    s
}

/// Read, compile and run on trial every module under `[lua] dir` (`doc`: the document of
/// `[lua]`).
pub(in crate::config) fn load_modules(
    b: &mut Builder<'_>,
    doc: usize,
    s: &mut crate::scripting::LuaSettings,
) {
    let Some(path) = s.dir.clone() else { return };
    if !path.is_dir() {
        b.err(
            doc,
            "lua",
            Some("dir"),
            format!("`{}` is not a directory", path.display()),
        );
        return;
    }
    match crate::scripting::modules::load(&path) {
        Ok(m) => s.modules = m,
        Err(errors) => {
            for m in errors {
                b.err(doc, "lua", Some("dir"), m.to_string());
            }
            return;
        }
    }
    for m in crate::scripting::trial::run_modules(s) {
        b.err(doc, "lua", Some("dir"), m);
    }
}
