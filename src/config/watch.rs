//! Watch the config file or directory and reload on change.
//!
//! The watch is on the directory (not the file), so editors that save by writing a temporary
//! file and renaming it over the original are seen too. Events are debounced: a reload starts
//! once the files have been quiet for 100 ms (or 1 s after the first event at most), and the
//! documents must read the same twice in a row, 30 ms apart, so a file still being written in
//! several chunks is not taken half-way. A half-written file that does not parse is rejected
//! like any bad config, and the next write event tries again.

use crate::reload::Reloader;
use notify::{RecursiveMode, Watcher};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

const QUIET: Duration = Duration::from_millis(100);
const MAX_WAIT: Duration = Duration::from_secs(1);
const STABLE_GAP: Duration = Duration::from_millis(30);

/// Start watching `path` (a file or a directory). The returned watcher must be kept alive.
pub fn watch(path: &Path, reloader: Arc<Reloader>) -> notify::Result<notify::RecommendedWatcher> {
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
    let (tx, rx) = mpsc::channel::<()>();
    let mut watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        let Ok(ev) = res else { return };
        if matches!(ev.kind, notify::EventKind::Access(_)) {
            return;
        }
        let relevant = ev.paths.iter().any(|p| match &file {
            Some(f) => p.file_name() == Some(f.as_os_str()),
            None => p.extension().is_some_and(|x| x == "toml"),
        });
        if relevant {
            let _ = tx.send(());
        }
    })?;
    watcher.watch(&dir, RecursiveMode::NonRecursive)?;
    std::thread::Builder::new()
        .name("tidegate-config-watch".into())
        .spawn(move || debounce_loop(rx, reloader))
        .map_err(notify::Error::io)?;
    tracing::info!(path = %path.display(), "watching the config for changes");
    Ok(watcher)
}

fn debounce_loop(rx: mpsc::Receiver<()>, reloader: Arc<Reloader>) {
    while rx.recv().is_ok() {
        let first = Instant::now();
        // wait for a quiet period
        loop {
            let left = MAX_WAIT.saturating_sub(first.elapsed());
            if left.is_zero() {
                break;
            }
            match rx.recv_timeout(QUIET.min(left)) {
                Ok(()) => continue,
                Err(mpsc::RecvTimeoutError::Timeout) => break,
                Err(mpsc::RecvTimeoutError::Disconnected) => return,
            }
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
    }
}

fn same(a: &[crate::config::SourceDoc], b: &[crate::config::SourceDoc]) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(x, y)| x.name == y.name && x.text == y.text)
}
