//! A trial run of module-level code when the config loads, so that `tidegate check` and a
//! reload reject a script or module whose top-level code fails, with its file and line,
//! instead of accepting it and failing every request.
//!
//! The trial runs in a scratch VM of its own (the same sandbox, time budget and memory limit
//! as a worker's), which is dropped at once: no worker VM sees it. The trial's
//! `tidegate.shared` dicts are empty copies of the declared ones, so module code that writes
//! to a dict at load changes nothing live.

use super::vm::{require_fn, Script, Vm};
use super::LuaSettings;
use std::time::Instant;

/// The error without Lua's stack traceback: a config error names the file and line already,
/// and the traceback of a load is the loader's own frames.
fn describe(e: &mlua::Error) -> String {
    let full = super::vm::describe(e);
    let mut out: Vec<&str> = Vec::new();
    for line in full.lines() {
        if line.trim_start().starts_with("stack traceback:") {
            break;
        }
        out.push(line);
    }
    out.join("\n")
}

/// Run `script`'s module-level code (and whatever it requires) once; which hooks its
/// module table has, by phase (`Phase as usize`).
pub fn run_script(script: &Script, conf: &serde_json::Value) -> Result<[bool; 5], String> {
    let mut vm = Vm::new(script.memory_limit).map_err(|e| describe(&e))?;
    let trial = Script {
        shared: script.shared.detached(),
        ..script.clone()
    };
    vm.module(&trial, conf)
        .map(|l| l.has_hooks())
        .map_err(|e| describe(&e))
}

/// Require every module under `[lua] dir` once; the errors, one per failing module.
pub fn run_modules(settings: &LuaSettings) -> Vec<String> {
    if settings.modules.sources.is_empty() {
        return Vec::new();
    }
    let vm = match Vm::new(settings.memory_limit) {
        Ok(vm) => vm,
        Err(e) => return vec![describe(&e)],
    };
    super::shared::switch(&vm.lua, &settings.shared.detached());
    let require = match require_fn(&vm.lua, &settings.modules) {
        Ok(f) => f,
        Err(e) => return vec![describe(&e)],
    };
    let mut names: Vec<&String> = settings.modules.sources.keys().collect();
    names.sort();
    let mut errors = Vec::new();
    for name in names {
        vm.deadline.set(Some(Instant::now() + settings.time_budget));
        let r = require.call::<mlua::Value>(name.as_str());
        vm.deadline.set(None);
        if let Err(e) = r {
            errors.push(format!("module `{name}`: {}", describe(&e)));
        }
    }
    errors
}
