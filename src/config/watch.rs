//! Watch the config file or directory and reload on change.
//!
//! The watch is on the directory (not the file), so editors that save by writing a temporary
//! file and renaming it over the original are seen too. Events are debounced: a reload starts
//! once the files have been quiet for 100 ms (or 1 s after the first event at most), and the
//! documents must read the same twice in a row, 30 ms apart, so a file still being written in
//! several chunks is not taken half-way. A half-written file that does not parse is rejected
//! like any bad config, and the next write event tries again.
//!
//! The directories of the files the config refers to (Lua scripts, certificates and keys)
//! are watched too, and `[lua] dir` with all its subdirectories (a module added anywhere
//! under it counts); a change to a `.lua` file there, or to a referenced file, rebuilds the
//! config even when the TOML did not change (a renewed certificate is served from the next
//! handshake on; one that does not load is rejected like any bad config).

use crate::reload::Reloader;
use notify::{RecursiveMode, Watcher};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const QUIET: Duration = Duration::from_millis(100);
const MAX_WAIT: Duration = Duration::from_secs(1);
const STABLE_GAP: Duration = Duration::from_millis(30);
/// How often the watch looks for versions applied by something else than itself.
const VERSION_CHECK: Duration = Duration::from_millis(500);

/// What changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Change {
    /// a config document
    Config,
    /// a file the config refers to (a Lua script): rebuild even if the documents are the same
    Referenced,
}

/// Start watching `path` (a file or a directory) and the directories of the files the
/// config refers to (Lua scripts). The returned watcher must be kept alive.
pub fn watch(
    path: &Path,
    reloader: Arc<Reloader>,
) -> notify::Result<Arc<Mutex<notify::RecommendedWatcher>>> {
    let path = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let (dir, file) = if path.is_dir() {
        (path.clone(), None)
    } else {
        let dir = path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        (dir, path.file_name().map(|f| f.to_os_string()))
    };
    let (tx, rx) = mpsc::channel::<Change>();
    let catch_up = tx.clone();
    let config_dir = dir.clone();
    let files: Referenced = Arc::default();
    let referenced_files = files.clone();
    let watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        let Ok(ev) = res else { return };
        if matches!(ev.kind, notify::EventKind::Access(_)) {
            return;
        }
        // a new directory (under `[lua] dir`): the files written into it may come before the
        // watch on it does, so rebuild anyway
        let new_dir = matches!(
            ev.kind,
            notify::EventKind::Create(notify::event::CreateKind::Folder)
        );
        for p in &ev.paths {
            let change = if new_dir
                || p.extension().is_some_and(|x| x == "lua")
                || lock(&referenced_files).contains(p)
            {
                Some(Change::Referenced)
            } else if p.parent() != Some(config_dir.as_path()) {
                None
            } else {
                match &file {
                    Some(f) => (p.file_name() == Some(f.as_os_str())).then_some(Change::Config),
                    None => p
                        .extension()
                        .is_some_and(|x| x == "toml")
                        .then_some(Change::Config),
                }
            };
            if let Some(c) = change {
                let _ = tx.send(c);
            }
        }
    })?;
    let watcher = Arc::new(Mutex::new(watcher));
    let mut dirs = HashSet::new();
    lock(&watcher).watch(&dir, RecursiveMode::NonRecursive)?;
    dirs.insert(dir);
    watch_referenced(&watcher, &reloader, &mut dirs, &files);
    // an edit made between loading the config and starting the watch would go unseen: look
    // once, below. Unchanged documents are a no-op; a script written since the first load
    // forces a rebuild.
    let script_changed = crate::reload::first_load().is_some_and(|t0| {
        reloader.watched_files().iter().any(|f| {
            std::fs::metadata(f)
                .and_then(|m| m.modified())
                .is_ok_and(|m| m >= t0)
        })
    });
    let w = watcher.clone();
    std::thread::Builder::new()
        .name("tidegate-config-watch".into())
        .spawn(move || debounce_loop(rx, reloader, w, dirs, files))
        .map_err(notify::Error::io)?;
    tracing::info!(path = %path.display(), "watching the config for changes");
    let _ = catch_up.send(if script_changed {
        Change::Referenced
    } else {
        Change::Config
    });
    Ok(watcher)
}

/// The files the current config refers to, as the watch sees their paths.
type Referenced = Arc<Mutex<HashSet<PathBuf>>>;

fn lock<T>(w: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    w.lock().unwrap_or_else(|p| p.into_inner())
}

/// Watch the directories of the files the current config refers to, once each.
fn watch_referenced(
    watcher: &Mutex<notify::RecommendedWatcher>,
    reloader: &Reloader,
    dirs: &mut HashSet<PathBuf>,
    files: &Referenced,
) {
    // `[lua] dir` as a whole, with its subdirectories (new ones too): a module added to a
    // directory that held none yet reloads like an edit
    if let Some(d) = reloader.lua_dir() {
        let d = std::fs::canonicalize(&d).unwrap_or(d);
        // its own key: the same directory may be watched without its subdirectories already
        let key = d.join("**");
        if !dirs.contains(&key) {
            match lock(watcher).watch(&d, RecursiveMode::Recursive) {
                Ok(()) => {
                    dirs.insert(key);
                }
                Err(e) => tracing::warn!("cannot watch {} for module changes: {e}", d.display()),
            }
        }
    }
    let mut now = HashSet::new();
    for f in reloader.watched_files() {
        let f = std::fs::canonicalize(&f).unwrap_or(f);
        now.insert(f.clone());
        let Some(d) = f.parent().map(Path::to_path_buf) else {
            continue;
        };
        if dirs.contains(&d) {
            continue;
        }
        match lock(watcher).watch(&d, RecursiveMode::NonRecursive) {
            Ok(()) => {
                dirs.insert(d);
            }
            Err(e) => tracing::warn!("cannot watch {} for changes: {e}", d.display()),
        }
    }
    *lock(files) = now;
}

fn debounce_loop(
    rx: mpsc::Receiver<Change>,
    reloader: Arc<Reloader>,
    watcher: Arc<Mutex<notify::RecommendedWatcher>>,
    mut dirs: HashSet<PathBuf>,
    files: Referenced,
) {
    let mut watched_version = reloader.version();
    loop {
        let first_change = match rx.recv_timeout(VERSION_CHECK) {
            Ok(c) => c,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                // a version applied another way (SIGHUP, etcd, an ACME certificate) may
                // refer to files in directories not watched yet
                if reloader.version() != watched_version {
                    watched_version = reloader.version();
                    watch_referenced(&watcher, &reloader, &mut dirs, &files);
                }
                continue;
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => return,
        };
        let mut referenced = first_change == Change::Referenced;
        let first = Instant::now();
        // wait for a quiet period
        loop {
            let left = MAX_WAIT.saturating_sub(first.elapsed());
            if left.is_zero() {
                break;
            }
            match rx.recv_timeout(QUIET.min(left)) {
                Ok(c) => referenced |= c == Change::Referenced,
                Err(mpsc::RecvTimeoutError::Timeout) => break,
                Err(mpsc::RecvTimeoutError::Disconnected) => return,
            }
        }
        if referenced {
            // a script or certificate changed: rebuild (files are read while building)
            std::thread::sleep(STABLE_GAP);
            let _ = reloader.reload("referenced file change");
            watch_referenced(&watcher, &reloader, &mut dirs, &files);
            watched_version = reloader.version();
            continue;
        }
        // the documents must read the same twice in a row before they are applied
        for _ in 0..50 {
            let first = reloader.source().load();
            std::thread::sleep(STABLE_GAP);
            let second = reloader.source().load();
            match (first, second) {
                (Ok(a), Ok(b)) if same(&a, &b) => {
                    let _ = reloader.apply("file change", Some(a));
                    break;
                }
                // still being written, or briefly missing during a rename: look again
                _ => std::thread::sleep(QUIET),
            }
        }
        watch_referenced(&watcher, &reloader, &mut dirs, &files);
        watched_version = reloader.version();
    }
}

fn same(a: &[crate::config::SourceDoc], b: &[crate::config::SourceDoc]) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(x, y)| x.name == y.name && x.text == y.text)
}
