//! Applying a new configuration to a running proxy, without dropping a request.
//!
//! ```text
//! trigger (file watch | SIGHUP | etcd watch | admin) → Reloader::reload
//!   load documents → validate → build State (routers, upstreams, plugins) off the request path
//!   → one atomic pointer swap → new requests use the new version
//! ```
//!
//! - A request keeps the version it started with (it holds an `Arc` to it), so in-flight
//!   requests finish on the old config.
//! - An upstream whose settings did not change is carried over as the same object: its health
//!   state, circuit breakers, balancer position and in-flight counts survive the reload, and
//!   Pingora's connection pool (keyed by peer) keeps its connections.
//! - A config that fails to load or validate is rejected whole; the old one keeps serving, and
//!   the errors are logged and kept in [`Reloader::last_error`] (for the admin API).
//! - Applies are serialized: one builds at a time, from the documents current when it starts,
//!   and versions only increase.
//! - Listener and `threads` changes cannot be applied to a running process: they are logged
//!   and take effect with the zero-downtime upgrade (`--upgrade`, see docs/operations.md).

use crate::config::source::Source;
use crate::state::{Live, State};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Why a reload did not apply.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error(transparent)]
    Start(#[from] crate::error::StartError),
    #[error(transparent)]
    Config(#[from] crate::error::ConfigErrors),
}

static FIRST_LOAD: std::sync::OnceLock<std::time::SystemTime> = std::sync::OnceLock::new();

/// Note when the process starts reading its first config (once; later calls do nothing).
pub fn mark_first_load() {
    let _ = FIRST_LOAD.set(std::time::SystemTime::now());
}

/// When the first config started being read: a file changed after this may be missing from
/// the running config if the watch was not running yet.
pub fn first_load() -> Option<std::time::SystemTime> {
    FIRST_LOAD.get().copied()
}

pub struct Reloader {
    live: Live,
    source: Source,
    /// `threads` of the running process (cannot change without an upgrade)
    threads: usize,
    /// text of the documents last applied, to skip reloads that change nothing
    applied: Mutex<Vec<(String, String)>>,
    last_error: Mutex<Option<String>>,
    /// the next apply rebuilds even if the documents did not change
    force: std::sync::atomic::AtomicBool,
    runtime: Mutex<Option<tokio::runtime::Handle>>,
    /// held through a whole apply: a SIGHUP, a file event and an etcd event build one at a
    /// time, each from what is current when it starts, so versions only increase and an
    /// older build is never stored over a newer one
    applying: Mutex<()>,
    /// the last reloads, newest last (at most [`HISTORY`])
    history: Mutex<std::collections::VecDeque<Reloaded>>,
}

/// Reloads kept in the history.
pub const HISTORY: usize = 50;

/// One reload that applied a change or was rejected, for the admin's history.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Reloaded {
    /// seconds since the epoch
    pub at: i64,
    pub reason: String,
    /// the version serving after it
    pub version: u64,
    pub applied: bool,
    pub error: Option<String>,
}

impl Reloader {
    pub fn new(
        live: Live,
        source: Source,
        threads: usize,
        applied_docs: Vec<(String, String)>,
    ) -> Reloader {
        Reloader {
            live,
            source,
            threads,
            applied: Mutex::new(applied_docs),
            last_error: Mutex::new(None),
            force: std::sync::atomic::AtomicBool::new(false),
            runtime: Mutex::new(None),
            applying: Mutex::new(()),
            history: Mutex::new(std::collections::VecDeque::new()),
        }
    }

    pub fn source(&self) -> &Source {
        &self.source
    }

    /// The runtime where new health checks are spawned (set by the background service).
    pub fn set_runtime(&self, handle: tokio::runtime::Handle) {
        *self.runtime.lock().unwrap_or_else(|p| p.into_inner()) = Some(handle);
    }

    /// The last reloads that applied or were rejected, oldest first.
    pub fn history(&self) -> Vec<Reloaded> {
        self.history
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .cloned()
            .collect()
    }

    /// The error of the last rejected reload, until a reload succeeds.
    pub fn last_error(&self) -> Option<String> {
        self.last_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Files the current config was built from besides its documents (Lua scripts).
    pub fn watched_files(&self) -> Vec<std::path::PathBuf> {
        let live = self.live.load();
        let config = &live.config;
        let scripts = config.plugins.iter().flat_map(|p| p.plugin.watched_files());
        let certs = config.certificates.iter().flat_map(|c| c.files.clone());
        scripts.chain(certs).collect()
    }

    /// `[lua] dir` of the current config, if set.
    pub fn lua_dir(&self) -> Option<std::path::PathBuf> {
        self.live.load().config.lua.dir.clone()
    }

    /// The documents the current config was built from (name, text).
    pub fn applied_docs(&self) -> Vec<(String, String)> {
        self.applied
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The current config version (1 at start).
    pub fn version(&self) -> u64 {
        self.live.load().version
    }

    /// Load the source again and apply it, even if the documents are the same (files they
    /// refer to, such as Lua scripts, may have changed).
    pub fn reload(&self, reason: &str) -> Result<bool, ReloadError> {
        self.force.store(true, Ordering::Relaxed);
        self.apply(reason, None)
    }

    /// Apply `docs` (already read by the caller, e.g. the file watch or etcd), or load the
    /// source when `None`. A rejected config is logged and kept as [`Self::last_error`].
    pub fn apply(
        &self,
        reason: &str,
        docs: Option<Vec<crate::config::SourceDoc>>,
    ) -> Result<bool, ReloadError> {
        let _one_at_a_time = self.applying.lock().unwrap_or_else(|p| p.into_inner());
        let result = self.try_apply(reason, docs);
        let f = crate::observability::metrics::families();
        match &result {
            Ok(true) => {
                f.reloads.with_label_values(&["applied"]).inc();
                f.last_reload.set(unix_now());
                f.version.set(self.version() as i64);
            }
            Ok(false) => {}
            Err(_) => f.reloads.with_label_values(&["rejected"]).inc(),
        }
        if !matches!(result, Ok(false)) {
            let mut h = self.history.lock().unwrap_or_else(|p| p.into_inner());
            if h.len() == HISTORY {
                h.pop_front();
            }
            h.push_back(Reloaded {
                at: unix_now(),
                reason: reason.to_string(),
                version: self.version(),
                applied: result.is_ok(),
                error: result.as_ref().err().map(|e| e.to_string()),
            });
        }
        if let Err(e) = &result {
            let text = e.to_string();
            tracing::error!(
                reason,
                version = self.version(),
                "config rejected, the previous config keeps serving:\n{text}"
            );
            *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(text);
        }
        result
    }

    fn try_apply(
        &self,
        reason: &str,
        docs: Option<Vec<crate::config::SourceDoc>>,
    ) -> Result<bool, ReloadError> {
        let t0 = Instant::now();
        let docs = match docs {
            Some(d) => d,
            None => self.source.load()?,
        };
        let texts: Vec<(String, String)> = docs
            .iter()
            .map(|d| (d.name.clone(), d.text.clone()))
            .collect();
        let forced = self.force.swap(false, Ordering::Relaxed);
        if !forced && *self.applied.lock().unwrap_or_else(|p| p.into_inner()) == texts {
            return Ok(false);
        }
        let config = crate::config::build(&docs)?;
        for w in &config.warnings {
            tracing::warn!("config warning: {w}");
        }
        if config.basic.threads != self.threads {
            tracing::warn!(
                running = self.threads,
                configured = config.basic.threads,
                "`threads` changed: applies after a zero-downtime upgrade (tidegate --upgrade)"
            );
        }
        let prev = self.live.load_full();
        let state = State::next(config, &prev)?;
        for note in &state.pending_upgrade {
            tracing::warn!("{note}: applies after a zero-downtime upgrade (tidegate --upgrade)");
        }
        let version = state.version;
        let reused = state.reused_upstreams;
        let state = Arc::new(state);
        self.live.store(state.clone());
        if let Some(rt) = self
            .runtime
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
        {
            let _guard = rt.enter();
            crate::upstream::health::spawn_all(&state.upstreams);
            crate::upstream::discovery::spawn_all(&state.upstreams);
        }
        *self.applied.lock().unwrap_or_else(|p| p.into_inner()) = texts;
        *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = None;
        tracing::info!(
            reason,
            version,
            upstreams_kept = reused,
            took_ms = t0.elapsed().as_millis() as u64,
            "config applied"
        );
        Ok(true)
    }
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}
