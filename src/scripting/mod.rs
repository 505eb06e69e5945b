//! Lua plugins: scripts with hooks at the request, response and log phases, run in
//! per-worker Luau VMs (see `vm.rs`), with the `req`/`resp`/`tidegate` API of `api.rs`.
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
//! function M.on_response(req, resp, ctx, conf)
//! function M.on_log(req, resp, ctx, conf)
//! return M
//! ```
//!
//! A hook that returns without answering lets the chain go on. A Lua error, a budget or
//! memory overrun in `on_request` gives the request 500, logged with the script, line and
//! request id; in later phases it is logged and the response goes on.

pub mod api;
pub mod lib_util;
pub mod vm;

use crate::plugins::{Flow, Plugin, PluginConfError, PluginError};
use crate::proxy::ctx::Ctx;
use api::Phase;
use async_trait::async_trait;
use pingora::http::ResponseHeader;
use pingora::proxy::Session;
use serde::Deserialize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// `[lua]`, typed.
#[derive(Debug, Clone, PartialEq)]
pub struct LuaSettings {
    pub time_budget: Duration,
    pub memory_limit: usize,
}

impl Default for LuaSettings {
    fn default() -> Self {
        LuaSettings {
            time_budget: Duration::from_millis(50),
            memory_limit: 64 << 20,
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
}

static SCRIPT_IDS: AtomicU64 = AtomicU64::new(1);
static REQUEST_IDS: AtomicU64 = AtomicU64::new(1);

impl LuaPlugin {
    pub fn new(
        c: LuaConf,
        name: &str,
        settings: &LuaSettings,
    ) -> Result<LuaPlugin, PluginConfError> {
        let file = c.path.as_ref().map(std::path::PathBuf::from);
        let (chunk_name, source) = match (c.path, c.source) {
            (Some(p), None) => {
                let text = std::fs::read_to_string(&p)
                    .map_err(|e| PluginConfError::at("path", format!("cannot read `{p}`: {e}")))?;
                (p, text)
            }
            (None, Some(s)) => (format!("plugins.{name}"), s),
            _ => {
                return Err(PluginConfError::at(
                    "path",
                    "give exactly one of `path` or `source`",
                ))
            }
        };
        vm::compile_check(&chunk_name, &source).map_err(|m| {
            PluginConfError::at(
                if chunk_name.starts_with("plugins.") {
                    "source"
                } else {
                    "path"
                },
                m,
            )
        })?;
        let conf = match c.config {
            None => serde_json::Value::Object(Default::default()),
            Some(v) => {
                serde_json::to_value(v).map_err(|e| PluginConfError::at("config", e.to_string()))?
            }
        };
        Ok(LuaPlugin {
            script: vm::Script {
                id: SCRIPT_IDS.fetch_add(1, Ordering::Relaxed),
                chunk_name,
                source,
                time_budget: settings.time_budget,
                memory_limit: settings.memory_limit,
            },
            conf,
            file,
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

#[async_trait]
impl Plugin for LuaPlugin {
    async fn on_request(&self, session: &mut Session, ctx: &mut Ctx) -> Result<Flow, PluginError> {
        let id = rid(ctx);
        let r = vm::call_hook(
            &self.script,
            Phase::Request,
            id,
            &self.conf,
            vm::Lent {
                session: session as *mut Session,
                response: std::ptr::null_mut(),
                ctx: &*ctx as *const Ctx,
            },
        );
        ctx.log_fields.extend(api::take_fields());
        let answer = api::take_answer();
        match r {
            Ok(_) => Ok(answer.map(Flow::Respond).unwrap_or(Flow::Continue)),
            Err(e) => Err(self.fail(ctx, Phase::Request, e)),
        }
    }

    fn on_response(
        &self,
        session: &Session,
        resp: &mut ResponseHeader,
        ctx: &mut Ctx,
    ) -> Result<(), PluginError> {
        let id = rid(ctx);
        // the request is only read in this phase (the API refuses writes outside on_request)
        let r = vm::call_hook(
            &self.script,
            Phase::Response,
            id,
            &self.conf,
            vm::Lent {
                session: session as *const Session as *mut Session,
                response: resp as *mut ResponseHeader,
                ctx: &*ctx as *const Ctx,
            },
        );
        ctx.log_fields.extend(api::take_fields());
        r.map(|_| ())
            .map_err(|e| self.fail(ctx, Phase::Response, e))
    }

    fn on_upstream(
        &self,
        session: &Session,
        choice: &mut crate::plugins::UpstreamChoice,
        ctx: &mut Ctx,
    ) -> Result<(), PluginError> {
        let id = rid(ctx);
        let _choice = api::CurrentChoice::enter(choice as *mut crate::plugins::UpstreamChoice);
        let r = vm::call_hook(
            &self.script,
            Phase::Upstream,
            id,
            &self.conf,
            vm::Lent {
                session: session as *const Session as *mut Session,
                response: std::ptr::null_mut(),
                ctx: &*ctx as *const Ctx,
            },
        );
        ctx.log_fields.extend(api::take_fields());
        r.map(|_| ())
            .map_err(|e| self.fail(ctx, Phase::Upstream, e))
    }

    fn watched_files(&self) -> Vec<std::path::PathBuf> {
        self.file.iter().cloned().collect()
    }

    fn on_log(&self, session: &Session, ctx: &mut Ctx) {
        let id = rid(ctx);
        let resp = session
            .response_written()
            .map(|r| r as *const ResponseHeader as *mut ResponseHeader)
            .unwrap_or(std::ptr::null_mut());
        let r = vm::call_hook(
            &self.script,
            Phase::Log,
            id,
            &self.conf,
            vm::Lent {
                session: session as *const Session as *mut Session,
                response: resp,
                ctx: &*ctx as *const Ctx,
            },
        );
        ctx.log_fields.extend(api::take_fields());
        if let Err(e) = r {
            let _ = self.fail(ctx, Phase::Log, e);
        }
    }
}
