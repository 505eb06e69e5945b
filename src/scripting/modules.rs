//! `require`: Lua modules from the configured directory, read and compiled when the config
//! loads (never on the request path).
//!
//! ```toml
//! [lua]
//! dir = "lua"          # `require("lib.strings")` loads lua/lib/strings.lua (or lua/lib/strings/init.lua)
//! ```
//!
//! Only `.lua` files under `dir` can be required (not `*_test.lua`: those are for
//! `tidegate test`); names are dotted paths of letters, digits,
//! `_` and `-`. A module runs once per VM and config version, in its own environment over the
//! read-only globals, and what it returns is cached (`true` when it returns nothing). A cycle
//! of requires is an error that names the modules. Editing any file under `dir` reloads.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// At most this many module files are read from `dir`, each at most `MAX_FILE` bytes.
const MAX_FILES: usize = 2000;
const MAX_FILE: u64 = 4 << 20;

/// The modules of one config version.
#[derive(Debug, Clone, Default)]
pub struct Modules {
    /// the key of each VM's cache of required modules: the same for the same files and text
    pub id: u64,
    /// module name (`lib.strings`) → file and source
    pub sources: Arc<HashMap<String, (PathBuf, String)>>,
}

impl PartialEq for Modules {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
    }
}

impl Modules {
    pub fn get(&self, name: &str) -> Option<&(PathBuf, String)> {
        self.sources.get(name)
    }

    pub fn files(&self) -> impl Iterator<Item = &Path> {
        self.sources.values().map(|(p, _)| p.as_path())
    }
}

/// A module's problem, for the config error list.
#[derive(Debug, thiserror::Error)]
pub enum ModuleError {
    #[error("cannot read `{0}`: {1}")]
    Read(String, std::io::Error),
    #[error("{0}")]
    Compile(String),
    #[error("more than {MAX_FILES} .lua files under `{0}`")]
    TooMany(String),
    #[error("`{0}` is larger than {MAX_FILE} bytes")]
    TooLarge(String),
}

/// A `*_test.lua` file is for `tidegate test`, never a module (it may sit next to the
/// scripts it tests, under `dir`).
fn is_test(p: &Path) -> bool {
    p.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.ends_with("_test.lua"))
}

/// The module name of `file` under `dir`: `lib/strings.lua` → `lib.strings`,
/// `lib/init.lua` → `lib`.
fn module_name(dir: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(dir).ok()?.with_extension("");
    let mut parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_str().map(str::to_string))
        .collect::<Option<_>>()?;
    if parts.len() > 1 && parts.last().is_some_and(|l| l == "init") {
        parts.pop();
    }
    let ok = parts.iter().all(|p| {
        !p.is_empty()
            && p.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    });
    ok.then(|| parts.join("."))
}

/// Read and compile every `.lua` file under `dir`. Errors name the file and line; all are
/// returned, not just the first.
pub fn load(dir: &Path) -> Result<Modules, Vec<ModuleError>> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    let mut errors = Vec::new();
    while let Some(d) = stack.pop() {
        let entries = match std::fs::read_dir(&d) {
            Ok(e) => e,
            Err(e) => {
                errors.push(ModuleError::Read(d.display().to_string(), e));
                continue;
            }
        };
        let mut sorted: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        sorted.sort();
        for p in sorted {
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "lua") && !is_test(&p) {
                files.push(p);
            }
        }
        if files.len() > MAX_FILES {
            return Err(vec![ModuleError::TooMany(dir.display().to_string())]);
        }
    }
    let mut sources = HashMap::new();
    for f in files {
        let Some(name) = module_name(dir, &f) else {
            continue;
        };
        let shown = f.display().to_string();
        match std::fs::metadata(&f) {
            Ok(m) if m.len() > MAX_FILE => {
                errors.push(ModuleError::TooLarge(shown));
                continue;
            }
            Err(e) => {
                errors.push(ModuleError::Read(shown, e));
                continue;
            }
            Ok(_) => {}
        }
        match super::vm::read_source(&f) {
            Ok(text) => {
                if let Err(m) = super::vm::compile_check(&shown, &text) {
                    errors.push(ModuleError::Compile(m));
                }
                sources.insert(name, (f, text));
            }
            Err(m) => errors.push(ModuleError::Compile(m)),
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    // the same files with the same text keep their id across reloads (identity.rs)
    let mut names: Vec<&String> = sources.keys().collect();
    names.sort();
    let mut parts: Vec<&[u8]> = Vec::new();
    for n in names {
        let (path, text) = &sources[n];
        parts.extend([
            n.as_bytes(),
            path.as_os_str().as_encoded_bytes(),
            text.as_bytes(),
        ]);
    }
    Ok(Modules {
        id: super::identity::id_of("modules", &parts),
        sources: Arc::new(sources),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        let d = Path::new("/x/lua");
        assert_eq!(
            module_name(d, Path::new("/x/lua/lib/strings.lua")).as_deref(),
            Some("lib.strings")
        );
        assert_eq!(
            module_name(d, Path::new("/x/lua/lib/init.lua")).as_deref(),
            Some("lib")
        );
        assert_eq!(module_name(d, Path::new("/x/lua/a b.lua")), None);
    }
}
