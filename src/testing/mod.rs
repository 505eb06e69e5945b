//! `tidegate test [-c CONFIG] [PATH...] [--junit FILE]`: run `*_test.lua` files offline, with
//! no listener and no network, through the real plugin engine.
//!
//! PATHs are test files or folders searched for `*_test.lua`; with none, the folders of the
//! config's Lua scripts and `lua/` are. Each file runs in a test VM of its own
//! ([`suite`]); each case prints one line with its time; a failure shows the assertion's
//! file, line and diff; the last line is `N passed, M failed`, and the exit status is 1 on
//! any failure. `--junit FILE` writes the results for CI systems ([`report`]).

pub mod exchange;
pub mod mock;
pub mod report;
pub mod suite;

use crate::config::source::Source;
use crate::state::State;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;

/// The command's arguments.
#[derive(Debug, Default)]
pub struct Options {
    /// `-c`: the config (`None`: conf/tidegate.toml when it exists)
    pub config: Option<String>,
    pub paths: Vec<PathBuf>,
    pub junit: Option<PathBuf>,
}

/// Load a config as `run` would, and build its state (plugins compiled, scripts loaded).
pub fn load_state(path: &str) -> Result<Arc<State>, String> {
    let source = Source::from_arg(Some(path)).map_err(|e| e.to_string())?;
    let (config, _) = crate::config::load(&source).map_err(|e| e.to_string())?;
    State::build(config)
        .map(Arc::new)
        .map_err(|e| e.to_string())
}

/// A state for `t.script` without any config: one server, no plugins.
pub fn empty_state() -> Result<Arc<State>, String> {
    let doc = crate::config::SourceDoc {
        name: "<tidegate test>".into(),
        text: "[servers.test]\naddr = \"127.0.0.1:1\"\nlocations = []\n".into(),
    };
    let config = crate::config::validate::build(&[doc]).map_err(|e| e.to_string())?;
    State::build(config)
        .map(Arc::new)
        .map_err(|e| e.to_string())
}

/// Every `*_test.lua` under `dir` (sorted, so runs are in the same order).
fn find(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            find(&p, out);
        } else if p
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.ends_with("_test.lua"))
        {
            out.push(p);
        }
    }
}

/// The files to run: the PATHs, or the folders of the config's scripts and `lua/`.
fn files(opts: &Options, state: Option<&State>) -> Vec<PathBuf> {
    let mut roots: Vec<PathBuf> = opts.paths.clone();
    if roots.is_empty() {
        if let Some(s) = state {
            for p in &s.config.plugins {
                if let Some(dir) = p.plugin.watched_files().first().and_then(|f| f.parent()) {
                    roots.push(dir.to_path_buf());
                }
            }
        }
        roots.push(PathBuf::from("lua"));
    }
    let mut out = Vec::new();
    for r in roots {
        if r.is_file() {
            out.push(r);
        } else {
            find(&r, &mut out);
        }
    }
    let mut seen = std::collections::HashSet::new();
    out.retain(|p| seen.insert(std::fs::canonicalize(p).unwrap_or_else(|_| p.clone())));
    out
}

/// Run the tests; the process's exit status.
pub fn run(opts: Options) -> i32 {
    let config = opts.config.clone().or_else(|| {
        Path::new(crate::cli::DEFAULT_CONFIG)
            .exists()
            .then(|| crate::cli::DEFAULT_CONFIG.to_string())
    });
    let state = match &config {
        Some(c) => match load_state(c) {
            Ok(s) => Some(s),
            Err(e) => {
                eprintln!("tidegate test: the config does not load:\n{e}");
                return 1;
            }
        },
        None => None,
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => Rc::new(rt),
        Err(e) => {
            eprintln!("tidegate test: cannot start a runtime: {e}");
            return 1;
        }
    };
    let files = files(&opts, state.as_deref());
    if files.is_empty() {
        eprintln!("tidegate test: no *_test.lua files found");
        return 1;
    }
    let mut results = Vec::new();
    for f in &files {
        let env = suite::Env {
            state: state.clone(),
            config_name: config.clone().unwrap_or_else(|| "no config".into()),
            rt: rt.clone(),
        };
        let r = suite::run_file(f, env);
        report::print_file(f, &r);
        results.push((f.clone(), r));
    }
    let (passed, failed) = report::totals(&results);
    println!("{passed} passed, {failed} failed");
    if let Some(path) = &opts.junit {
        if let Err(e) = std::fs::write(path, report::junit(&results)) {
            eprintln!("tidegate test: cannot write {}: {e}", path.display());
            return 1;
        }
    }
    i32::from(failed > 0)
}
