//! Lua plugins: scripts with hooks at every phase (request, upstream, response, body, log),
//! run in per-worker Luau VMs (see `vm.rs`), with the `req`/`resp`/`up`/`tidegate` API of
//! `api.rs` and `tidegate_table.rs`.
//!
//! ```toml
//! [lua]
//! time_budget = "50ms"     # per hook call, builtins included
//! memory_limit = "64MB"    # per VM
//!
//! [plugins.auth]
//! category = "lua"
//! path = "lua/auth.lua"    # or: source = '''...'''
//! config = { header = "x-api-key" }   # handed to every hook as `conf`
//! ```
//!
//! ```lua
//! local M = {}
//! function M.on_request(req, ctx, conf)       -- may answer: req:respond / req:redirect
//! function M.on_upstream(req, up, ctx, conf)   -- may choose: up:set_upstream / set_peer
//! function M.on_response(req, resp, ctx, conf)
//! function M.on_body(resp, chunk, eof, ctx, conf)   -- may return a replacement chunk
//! function M.on_log(req, resp, ctx, conf)
//! return M
//! ```
//!
//! A hook that returns without answering lets the chain go on. A Lua error, a budget or
//! memory overrun in `on_request` gives the request 500, logged with the script, line and
//! request id; in later phases it is logged and the response goes on.

pub mod api;
pub mod digests;
pub mod headroom;
pub mod http_client;
pub mod http_policy;
pub mod identity;
pub mod lib_util;
pub mod limit_api;
pub mod marshal;
pub mod modules;
pub mod shared;
pub mod shared_store;
pub mod slots;
pub mod tidegate_table;
pub mod tls_info;
pub mod trial;
pub mod vm;
pub mod wait;

use crate::plugins::{Flow, Plugin, PluginConfError, PluginError};
use crate::proxy::ctx::Ctx;
use crate::proxy::exchange::Downstream;
use api::Phase;
use async_trait::async_trait;
use pingora::http::ResponseHeader;
use serde::Deserialize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// `[lua]`, typed.
#[derive(Debug, Clone, PartialEq)]
pub struct LuaSettings {
    pub time_budget: Duration,
    pub memory_limit: usize,
    /// `[lua] dir`: where `require` finds modules
    pub dir: Option<std::path::PathBuf>,
    /// the modules under `dir`, read and compiled at load
    pub modules: modules::Modules,
    /// `[lua] shared`: the shared dictionaries
    pub shared: shared::SharedDicts,
    /// `[lua] http_deny`, `http_allow`: where `tidegate.http.request` may connect
    pub http_policy: std::sync::Arc<http_policy::HttpPolicy>,
    /// count hook calls in the metrics (some server exposes them; set by the config builder)
    pub metrics: bool,
}

impl Default for LuaSettings {
    fn default() -> Self {
        LuaSettings {
            time_budget: Duration::from_millis(50),
            memory_limit: 64 << 20,
            dir: None,
            modules: modules::Modules::default(),
            shared: shared::SharedDicts::default(),
            http_policy: Default::default(),
            metrics: false,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LuaConf {
    pub path: Option<String>,
    pub source: Option<String>,
    pub config: Option<toml::Value>,
}

#[derive(Debug)]
pub struct LuaPlugin {
    script: vm::Script,
    conf: serde_json::Value,
    /// the script file, when it came from `path`
    file: Option<std::path::PathBuf>,
    /// its metrics handles, when metrics are on
    metrics: Option<crate::observability::metrics::handles::LuaMetrics>,
    /// the hooks its module table has, by phase (`Phase as usize`), from the trial load: a
    /// phase without one costs no VM call
    hooks: [bool; 5],
}

static REQUEST_IDS: AtomicU64 = AtomicU64::new(1);

impl LuaPlugin {
    pub fn new(
        c: LuaConf,
        name: &str,
        settings: &LuaSettings,
    ) -> Result<LuaPlugin, PluginConfError> {
        let (key, chunk_name, source) = match (&c.path, c.source) {
            (Some(p), None) => {
                let text = vm::read_source(std::path::Path::new(p))
                    .map_err(|m| PluginConfError::at("path", m))?;
                ("path", p.clone(), text)
            }
            (None, Some(s)) => ("source", format!("plugins.{name}"), s),
            _ => {
                return Err(PluginConfError::at(
                    "path",
                    "give exactly one of `path` or `source`",
                ))
            }
        };
        let file = c.path.map(std::path::PathBuf::from);
        Self::from_source(chunk_name, source, file, c.config, name, settings, key)
    }

    /// A plugin from module source (a script's, or one tidegate made, as `openresty` does):
    /// compiled, its module code tried once. Errors are reported at `key`.
    pub fn from_source(
        chunk_name: String,
        source: String,
        file: Option<std::path::PathBuf>,
        config: Option<toml::Value>,
        name: &str,
        settings: &LuaSettings,
        key: &str,
    ) -> Result<LuaPlugin, PluginConfError> {
        vm::compile_check(&chunk_name, &source).map_err(|m| PluginConfError::at(key, m))?;
        let conf = match config {
            None => serde_json::Value::Object(Default::default()),
            Some(v) => {
                serde_json::to_value(v).map_err(|e| PluginConfError::at("config", e.to_string()))?
            }
        };
        let script = vm::Script {
            id: identity::id_of(
                "script",
                &[
                    chunk_name.as_bytes(),
                    source.as_bytes(),
                    &settings.modules.id.to_le_bytes(),
                    conf.to_string().as_bytes(),
                    // Luau resolves `tidegate.shared.NAME` once, when the script loads (its
                    // environment is safeenv), so the dicts' limits are part of what it loaded
                    settings.shared.describe().as_bytes(),
                ],
            ),
            plugin: name.to_string(),
            chunk_name,
            source,
            time_budget: settings.time_budget,
            memory_limit: settings.memory_limit,
            modules: settings.modules.clone(),
            shared: settings.shared.clone(),
            http_policy: settings.http_policy.clone(),
        };
        let hooks = trial::run_script(&script, &conf)
            .map_err(|m| PluginConfError::at(key, format!("module-level code failed: {m}")))?;
        let metrics = settings
            .metrics
            .then(|| crate::observability::metrics::handles::LuaMetrics::new(name));
        Ok(LuaPlugin {
            script,
            conf,
            file,
            metrics,
            hooks,
        })
    }

    fn fail(&self, ctx: &Ctx, phase: Phase, e: vm::HookError) -> PluginError {
        let rid = match (&ctx.request_id, &ctx.lua) {
            (Some(id), _) => id.clone(),
            (None, Some(l)) => format!("lua-{}", l.0),
            (None, None) => "-".into(),
        };
        tracing::error!(
            "lua error: script={} hook={} request_id={rid}: {e}",
            self.script.chunk_name,
            phase.name()
        );
        PluginError::Failed {
            plugin: "lua",
            message: e.0,
        }
    }
}

/// The per-request key of the Lua `ctx` table; forgets the table when the request ends.
#[derive(Debug)]
pub struct LuaRequest(pub u64);

impl Drop for LuaRequest {
    fn drop(&mut self) {
        vm::end_request(self.0);
    }
}

fn rid(ctx: &mut Ctx) -> u64 {
    ctx.lua
        .get_or_insert_with(|| LuaRequest(REQUEST_IDS.fetch_add(1, Ordering::Relaxed)))
        .0
}

/// The pointers a hook call borrows, taken afresh for each call or resume (never held
/// across an await).
fn lend(session: &mut dyn Downstream, ctx: &Ctx) -> vm::Lent {
    vm::Lent {
        session: Some(crate::proxy::exchange::erase(session)),
        response: std::ptr::null_mut(),
        ctx: ctx as *const Ctx,
    }
}

/// Collect what the last synchronous stretch of a hook left behind (log fields, an answer).
fn settle(ctx: &mut Ctx, answer: &mut Option<crate::plugins::Answer>) {
    ctx.log_fields.extend(api::take_fields());
    if let Some(k) = limit_api::take_limit_key() {
        ctx.plugin.limit_key = Some(k);
    }
    if let Some(a) = api::take_answer() {
        *answer = Some(a);
    }
}

/// The response header already sent, for hooks after it (null before).
fn written(session: &dyn Downstream) -> *mut ResponseHeader {
    session
        .sent_head()
        .map(|r| r as *const ResponseHeader as *mut ResponseHeader)
        .unwrap_or(std::ptr::null_mut())
}

impl LuaPlugin {
    /// Call a synchronous hook (on_response, on_body, on_log) and collect its log fields; an
    /// error is logged with script, line and request id.
    fn call_sync(
        &self,
        session: &dyn Downstream,
        response: *mut ResponseHeader,
        ctx: &mut Ctx,
        phase: Phase,
        chunk: Option<(&bytes::Bytes, bool)>,
    ) -> Result<vm::Outcome, PluginError> {
        if !self.hooks[phase as usize] {
            return Ok(vm::Outcome::Absent);
        }
        let id = rid(ctx);
        let t0 = (self.metrics.is_some() || ctx.trace.is_some() || ctx.otel.is_some())
            .then(std::time::Instant::now);
        let r = vm::call_hook(
            &self.script,
            phase,
            id,
            &self.conf,
            vm::Lent {
                session: Some(crate::proxy::exchange::erase_shared(session)),
                response,
                ctx: &*ctx as *const Ctx,
            },
            chunk,
        );
        ctx.log_fields.extend(api::take_fields());
        self.observe(ctx, phase, t0, &r);
        r.map_err(|e| self.fail(ctx, phase, e))
    }

    /// After a hook call that found the hook (`t0`: when it began, if anyone is watching):
    /// the metrics' count and duration, the OpenTelemetry span, and for a traced request the
    /// time and the share of its budget (for a hook that waited, the time includes the
    /// wait, which the budget does not count).
    fn observe(
        &self,
        ctx: &Ctx,
        phase: Phase,
        t0: Option<std::time::Instant>,
        r: &Result<vm::Outcome, vm::HookError>,
    ) {
        let Some(t0) = t0 else { return };
        if matches!(r, Ok(vm::Outcome::Absent)) {
            return;
        }
        let took = t0.elapsed();
        let error = r.as_ref().err().map(|e| e.0.as_str());
        if let Some(m) = &self.metrics {
            m.call(phase as usize, took.as_secs_f64(), error);
        }
        crate::observability::otel::spans::hook(ctx, &self.script.plugin, phase.name(), t0, error);
        let budget = self.script.time_budget;
        crate::proxy::trace::note(ctx, || {
            format!(
                "lua {} {}: {} ({:.3}ms, {:.1}% of the {:?} budget)",
                self.script.plugin,
                phase.name(),
                if r.is_ok() { "ok" } else { "error" },
                took.as_secs_f64() * 1000.0,
                100.0 * took.as_secs_f64() / budget.as_secs_f64().max(1e-9),
                budget
            )
        });
    }

    /// Do what a waiting hook asked for.
    async fn wait(
        &self,
        session: &mut dyn Downstream,
        ctx: &mut Ctx,
        w: wait::Wait,
    ) -> wait::Waited {
        match w {
            wait::Wait::Http(o) => {
                wait::Waited::Http(http_client::send(*o, &self.script.http_policy).await)
            }
            wait::Wait::Body(cap) => {
                wait::Waited::Body(crate::proxy::request::read_body(session, ctx, cap).await)
            }
            wait::Wait::Limit { name, key } => {
                wait::Waited::Limit(limit_api::take(ctx, &name, &key).await)
            }
        }
    }

    /// Run a coroutine hook (`on_request`, `on_upstream`) to its end, doing its waits.
    async fn run_waiting(
        &self,
        session: &mut dyn Downstream,
        ctx: &mut Ctx,
        phase: Phase,
        choice: Option<&mut crate::plugins::UpstreamChoice>,
    ) -> Result<Option<crate::plugins::Answer>, PluginError> {
        if !self.hooks[phase as usize] {
            return Ok(None);
        }
        let id = rid(ctx);
        let choice = choice.map(|c| c as *mut crate::plugins::UpstreamChoice as usize);
        let enter = |c: Option<usize>| {
            c.map(|p| api::CurrentChoice::enter(p as *mut crate::plugins::UpstreamChoice))
        };
        let mut answer = None;
        let t0 = (self.metrics.is_some() || ctx.trace.is_some() || ctx.otel.is_some())
            .then(std::time::Instant::now);
        let mut outcome = {
            let _choice = enter(choice);
            vm::call_hook(
                &self.script,
                phase,
                id,
                &self.conf,
                lend(session, ctx),
                None,
            )
        };
        settle(ctx, &mut answer);
        while let Ok(vm::Outcome::Wait(w)) = outcome {
            let waited = self.wait(session, ctx, w).await;
            outcome = {
                let _choice = enter(choice);
                vm::resume_hook(
                    &self.script,
                    phase,
                    id,
                    &self.conf,
                    lend(session, ctx),
                    waited,
                )
            };
            settle(ctx, &mut answer);
        }
        self.observe(ctx, phase, t0, &outcome);
        match outcome {
            Ok(_) => Ok(answer),
            Err(e) => Err(self.fail(ctx, phase, e)),
        }
    }
}

#[async_trait]
impl Plugin for LuaPlugin {
    async fn on_request(
        &self,
        session: &mut dyn Downstream,
        ctx: &mut Ctx,
    ) -> Result<Flow, PluginError> {
        let answer = self.run_waiting(session, ctx, Phase::Request, None).await?;
        if let Some(a) = answer {
            return Ok(Flow::Respond(a));
        }
        if let Some(status) = ctx.body_failed {
            // the hook read part of a body it could not keep, and did not answer itself
            return Ok(Flow::Respond(crate::plugins::Answer {
                status,
                headers: Vec::new(),
                body: bytes::Bytes::new(),
            }));
        }
        Ok(Flow::Continue)
    }

    fn on_response(
        &self,
        session: &dyn Downstream,
        resp: &mut ResponseHeader,
        ctx: &mut Ctx,
    ) -> Result<(), PluginError> {
        // the request is only read in this phase (the API refuses writes outside on_request)
        let r = self.call_sync(session, resp, ctx, Phase::Response, None);
        if crate::plugins::body_filter::has_body(session, resp) && self.hooks[Phase::Body as usize]
        {
            // on_body may change the length: send the body chunked (or close-delimited)
            crate::plugins::body_filter::filter_body(session, resp, ctx);
        }
        r.map(|_| ())
    }

    fn on_body(
        &self,
        session: &dyn Downstream,
        body: &mut Option<bytes::Bytes>,
        eof: bool,
        ctx: &mut Ctx,
    ) -> Result<(), PluginError> {
        let empty = bytes::Bytes::new();
        let chunk = body.as_ref().unwrap_or(&empty);
        let resp = written(session);
        let r = self.call_sync(session, resp, ctx, Phase::Body, Some((chunk, eof)));
        match r {
            Ok(vm::Outcome::Done(Some(new))) => {
                *body = Some(new);
                Ok(())
            }
            Ok(_) => Ok(()),
            Err(e) => Err(e),
        }
    }

    fn wants_upstream(&self) -> bool {
        self.hooks[Phase::Upstream as usize]
    }

    async fn on_upstream(
        &self,
        session: &mut dyn Downstream,
        choice: &mut crate::plugins::UpstreamChoice,
        ctx: &mut Ctx,
    ) -> Result<(), PluginError> {
        self.run_waiting(session, ctx, Phase::Upstream, Some(choice))
            .await
            .map(|_| ())
    }

    fn watched_files(&self) -> Vec<std::path::PathBuf> {
        let modules = self.script.modules.files().map(|p| p.to_path_buf());
        self.file.iter().cloned().chain(modules).collect()
    }

    fn on_log(&self, session: &dyn Downstream, ctx: &mut Ctx) {
        // an error is logged by call_sync; the log phase cannot fail the request
        let _ = self.call_sync(session, written(session), ctx, Phase::Log, None);
    }
}
