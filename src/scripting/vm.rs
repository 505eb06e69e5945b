//! Per-worker Lua VMs: one Luau VM per Pingora worker thread, sandboxed and limited.
//!
//! tidegate runs Pingora without work stealing when Lua plugins are configured, so a
//! connection, and every phase of each of its requests, stays on one worker thread. Each
//! thread keeps its own VM in a thread-local: no lock is shared by the workers, and a
//! request's `ctx` table lives in that VM from `on_request` to `on_log`.
//!
//! - Sandbox: Luau's sandbox (read-only builtins and globals); `debug`, `loadstring`,
//!   `getfenv`, `setfenv` and `require` are removed (Luau has no `io` and no `os.execute`).
//! - Module-level code runs once per VM and script version; its environment is then frozen.
//!   Hooks run in a scratch environment over it that is emptied after every call, so a global
//!   set by one request is never seen by another (and no table is made per call). `conf` is
//!   converted to a read-only Lua table once per VM.
//! - Time budget per hook call, enforced by Luau's interrupt (which also stops long-running
//!   builtins such as pattern matching); memory limit per VM. A VM that hit its memory limit
//!   takes no new requests; those under way on it finish there (slots.rs).

use super::api::{Current, Phase, Req, Resp};
use super::http_client;
use super::modules::Modules;
use super::slots::with_vm;
use super::wait::{self, Wait, Waited};
use mlua::{ChunkMode, Function, Lua, StdLib, Table, Thread, ThreadStatus, Value, VmState};
use rustc_hash::FxHashMap;
use std::cell::Cell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// The VM's memory limit, for API functions that bound what they bring into it.
pub struct MemoryLimit(pub usize);

/// What a script is and how it may run.
#[derive(Debug, Clone)]
pub struct Script {
    /// the same for the same text, `conf` and modules (identity.rs): an unchanged script
    /// keeps its loaded state across reloads, a changed one gets a new id
    pub id: u64,
    /// the plugin's name: a new version of a plugin's script replaces the old one in a VM
    pub plugin: String,
    /// shown in errors: the file path or `plugins.NAME`
    pub chunk_name: String,
    pub source: String,
    pub time_budget: Duration,
    pub memory_limit: usize,
    /// what `require` can load
    pub modules: Modules,
    /// what `tidegate.shared` holds
    pub shared: super::shared::SharedDicts,
    /// where `tidegate.http.request` may connect
    pub http_policy: std::sync::Arc<super::http_policy::HttpPolicy>,
}

pub struct Vm {
    pub(super) lua: Lua,
    pub(super) deadline: Rc<Cell<Option<Instant>>>,
    /// per script id, loaded in this VM
    /// shared with each call, so a call costs one count, not a handle copy per hook
    modules: FxHashMap<u64, Rc<Loaded>>,
    /// plugin name → the id of its script loaded here
    by_plugin: HashMap<String, u64>,
    /// the module set whose values `require` has cached
    module_set: Option<u64>,
    ctx: FxHashMap<u64, Table>,
    /// hook coroutines waiting for an outbound call, by request
    waiting: FxHashMap<u64, Thread>,
    /// the shared dicts `tidegate.shared` points at now (their address), so that a hook call
    /// on the same dicts skips `shared::switch`'s app-data lookup
    shared_now: usize,
    /// finished coroutines, reset and reused for the next request or upstream hook
    spare: Vec<Thread>,
    /// `req`, `resp` and `up`, passed to hooks by reference (a clone of a handle is a copy
    /// through mlua's reference thread)
    handles: Rc<Handles>,
    /// the key `ctx.limit_key` is read with, made once (a string made per lookup costs a
    /// protected call: ~2,000 instructions)
    limit_key: mlua::String,
    memory_limit: usize,
}

/// The userdata every hook is given.
struct Handles {
    req: mlua::AnyUserData,
    resp: mlua::AnyUserData,
    up: mlua::AnyUserData,
}

/// A script loaded in one VM (handles into that VM, which owns them).
pub(super) struct Loaded {
    /// on_request, on_upstream, on_response, on_body, on_log, looked up once
    hooks: [Option<Function>; 5],
    /// the hooks' environment: empty, reads fall through to the frozen module environment,
    /// and it is cleared after every call, so globals set by one call never reach the next
    scratch: Table,
    /// `conf`, converted once
    conf: Value,
}

impl Loaded {
    /// Which hooks the module has, by phase (`Phase as usize`).
    pub(super) fn has_hooks(&self) -> [bool; 5] {
        let mut has = [false; 5];
        for p in PHASES {
            has[p as usize] = self.hooks[slot(p)].is_some();
        }
        has
    }
}

const PHASES: [Phase; 5] = [
    Phase::Request,
    Phase::Upstream,
    Phase::Response,
    Phase::Body,
    Phase::Log,
];

fn slot(p: Phase) -> usize {
    match p {
        Phase::Request => 0,
        Phase::Upstream => 1,
        Phase::Response => 2,
        Phase::Body => 3,
        Phase::Log => 4,
    }
}

/// A hook failed: the message names the script and line.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct HookError(pub String);

/// How a hook call ended.
#[derive(Debug)]
pub enum Outcome {
    /// the script has no such hook
    Absent,
    /// the hook returned; for `on_body`, the chunk it gave back (`None`: keep the chunk)
    Done(Option<bytes::Bytes>),
    /// the hook waits; do the I/O and call [`resume_hook`] with what came of it
    Wait(Wait),
}

/// The registry key of the table caching required modules, and of the "loading" marker.
const REQUIRED: &str = "tidegate.required";
const LOADING: &str = "tidegate.loading";

impl Vm {
    pub(super) fn new(memory_limit: usize) -> mlua::Result<Vm> {
        let lua = Lua::new_with(StdLib::ALL_SAFE, mlua::LuaOptions::default())?;
        let g = lua.globals();
        super::tidegate_table::register(&lua)?;
        for name in [
            "debug",
            "loadstring",
            "getfenv",
            "setfenv",
            "require",
            "load",
            "dofile",
            "loadfile",
        ] {
            g.raw_set(name, Value::Nil)?;
        }
        lua.set_named_registry_value(REQUIRED, lua.create_table()?)?;
        lua.set_named_registry_value(LOADING, lua.create_table()?)?;
        lua.sandbox(true)?;
        let deadline: Rc<Cell<Option<Instant>>> = Rc::new(Cell::new(None));
        let d = deadline.clone();
        // Luau calls this at every loop back-edge and call (and inside long builtins); reading
        // the clock each time would cost more than the loop body, so look every 64 calls
        let ticks = Cell::new(0u32);
        lua.set_interrupt(move |_| {
            let n = ticks.get().wrapping_add(1);
            ticks.set(n);
            if !n.is_multiple_of(64) {
                return Ok(VmState::Continue);
            }
            match d.get() {
                Some(t) if Instant::now() >= t => Err(mlua::Error::runtime("time budget exceeded")),
                _ => Ok(VmState::Continue),
            }
        });
        lua.set_memory_limit(memory_limit)?;
        lua.set_app_data(MemoryLimit(memory_limit));
        let req = lua.create_userdata(Req)?;
        let resp = lua.create_userdata(Resp)?;
        let up = lua.create_userdata(super::api::Up)?;
        let limit_key = lua.create_string("limit_key")?;
        Ok(Vm {
            lua,
            deadline,
            modules: FxHashMap::default(),
            by_plugin: HashMap::new(),
            module_set: None,
            ctx: FxHashMap::default(),
            waiting: FxHashMap::default(),
            shared_now: 0,
            spare: Vec::new(),
            handles: Rc::new(Handles { req, resp, up }),
            limit_key,
            memory_limit,
        })
    }

    /// `script` loaded in this VM, running its module code the first time.
    pub(super) fn module(
        &mut self,
        script: &Script,
        conf: &serde_json::Value,
    ) -> mlua::Result<Rc<Loaded>> {
        use mlua::LuaSerdeExt;
        let dicts = std::sync::Arc::as_ptr(&script.shared.0) as usize;
        if self.shared_now != dicts {
            super::shared::switch(&self.lua, &script.shared);
            self.shared_now = dicts;
        }
        if let Some(l) = self.modules.get(&script.id) {
            return Ok(l.clone());
        }
        // a new version of this plugin's script replaces the one loaded before (a request
        // still waiting on the old version holds its coroutine, which keeps what it needs)
        if let Some(old) = self.by_plugin.insert(script.plugin.clone(), script.id) {
            self.modules.remove(&old);
        }
        if self.modules.len() >= 256 {
            // many plugins: drop them all, they load again when needed
            self.modules.clear();
            self.by_plugin.clear();
            self.by_plugin.insert(script.plugin.clone(), script.id);
        }
        self.forget_old_module_sets(&script.modules)?;
        let env = self.lua.create_table()?;
        let meta = self.lua.create_table()?;
        meta.set("__index", self.lua.globals())?;
        env.set_metatable(Some(meta))?;
        env.raw_set("require", require_fn(&self.lua, &script.modules)?)?;
        let f = self
            .lua
            .load(&script.source)
            .set_mode(ChunkMode::Text)
            .set_name(format!("={}", script.chunk_name))
            .set_environment(env.clone())
            .into_function()?;
        self.deadline.set(Some(Instant::now() + script.time_budget));
        let result = f.call::<Value>(());
        self.deadline.set(None);
        let module = match result? {
            Value::Table(t) => t,
            other => {
                return Err(mlua::Error::runtime(format!(
                    "{} must return a table of hooks, not {}",
                    script.chunk_name,
                    other.type_name()
                )))
            }
        };
        env.set_readonly(true);
        // `safeenv` lets Luau use the builtins it resolved at load (string.byte, pairs, ...)
        // directly and take its fast paths, instead of looking each one up through the two
        // environments at every use
        env.set_safeenv(true);
        let scratch = self.lua.create_table()?;
        let smeta = self.lua.create_table()?;
        smeta.set("__index", env)?;
        scratch.set_metatable(Some(smeta))?;
        scratch.set_safeenv(true);
        let mut hooks: [Option<Function>; 5] = Default::default();
        for hook in PHASES {
            if let Some(f) = module.get::<Option<Function>>(hook.name())? {
                f.set_environment(scratch.clone())?;
                hooks[slot(hook)] = Some(f);
            }
        }
        let conf = self.lua.to_value(conf)?;
        if let Value::Table(t) = &conf {
            // every level: `conf` is shared by all requests of this script version
            super::tidegate_table::freeze(t);
        }
        let loaded = Rc::new(Loaded {
            hooks,
            scratch,
            conf,
        });
        self.modules.insert(script.id, loaded.clone());
        Ok(loaded)
    }

    /// Required modules are cached per module set; when a script of a new set loads, the
    /// values of other sets go (module state lives as long as its files are unchanged).
    fn forget_old_module_sets(&mut self, modules: &Modules) -> mlua::Result<()> {
        if self.module_set == Some(modules.id) {
            return Ok(());
        }
        if self.module_set.is_some() {
            self.lua
                .set_named_registry_value(REQUIRED, self.lua.create_table()?)?;
        }
        self.module_set = Some(modules.id);
        Ok(())
    }

    /// Does request `rid` live here (a `ctx` table or a waiting coroutine)?
    pub(super) fn holds(&self, rid: u64) -> bool {
        self.ctx.contains_key(&rid) || self.waiting.contains_key(&rid)
    }

    /// No request lives here.
    pub(super) fn is_idle(&self) -> bool {
        self.ctx.is_empty() && self.waiting.is_empty()
    }

    /// How many requests live here.
    pub(super) fn requests(&self) -> usize {
        self.ctx.len().max(self.waiting.len())
    }

    pub(super) fn memory_limit(&self) -> usize {
        self.memory_limit
    }

    /// Drop request `rid`'s `ctx` and coroutine (a request dropped while it waited: the
    /// client went away).
    pub(super) fn forget(&mut self, rid: u64) {
        self.ctx.remove(&rid);
        self.waiting.remove(&rid);
    }

    /// The `ctx` table of request `rid`, created on first use.
    fn ctx_table(&mut self, rid: u64) -> mlua::Result<Table> {
        if let Some(t) = self.ctx.get(&rid) {
            return Ok(t.clone());
        }
        let t = super::headroom::within(&self.lua, 256, || self.lua.create_table())?;
        self.ctx.insert(rid, t.clone());
        Ok(t)
    }

    /// Run (or resume) a hook's coroutine until it returns or waits for an outbound call.
    fn drive(
        &mut self,
        hook: Phase,
        thread: Thread,
        scratch: &Table,
        rid: u64,
        budget: Duration,
        args: impl mlua::IntoLuaMulti,
    ) -> mlua::Result<Outcome> {
        wait::set_active(thread.to_pointer() as usize);
        self.deadline.set(Some(Instant::now() + budget));
        let r = thread.resume::<Value>(args);
        self.deadline.set(None);
        wait::set_active(0);
        // globals set by the hook go with it, and with each wait (another request may run)
        let cleared = scratch.clear();
        let pending = wait::take_pending();
        let returned = r?;
        cleared?;
        if thread.status() == ThreadStatus::Resumable {
            return match pending {
                Some(o) => {
                    self.waiting.insert(rid, thread);
                    Ok(Outcome::Wait(o))
                }
                None => Err(mlua::Error::runtime(
                    "a hook may not yield (coroutine.yield); only tidegate.http.request and req:body() wait",
                )),
            };
        }
        if self.spare.len() < 8 {
            self.spare.push(thread);
        }
        if hook == Phase::Request {
            if let Some(t) = self.ctx.get(&rid) {
                super::limit_api::note_limit_key(t, &self.limit_key);
            }
        }
        nothing_returned(hook, &returned)?;
        Ok(Outcome::Done(None))
    }
}

/// Hooks other than on_body return nothing: a value is a mistake (say, `return 401` meant as
/// an answer), and an error says what to do instead.
fn nothing_returned(hook: Phase, v: &Value) -> mlua::Result<()> {
    if v.is_nil() {
        return Ok(());
    }
    let hint = if hook == Phase::Request {
        "; answer with `return req:respond(status, body)`"
    } else {
        ""
    };
    Err(mlua::Error::runtime(format!(
        "{} returned a value ({}); hooks return nothing{hint}",
        hook.name(),
        v.type_name()
    )))
}

/// `require` for one set of modules: each module runs once per VM, in its own environment.
pub(super) fn require_fn(lua: &Lua, modules: &Modules) -> mlua::Result<Function> {
    let modules = modules.clone();
    lua.create_function(move |lua, name: String| {
        let cache: Table = lua.named_registry_value(REQUIRED)?;
        let loading: Table = lua.named_registry_value(LOADING)?;
        let key = format!("{}:{name}", modules.id);
        if loading.raw_get::<bool>(key.as_str())? {
            return Err(mlua::Error::runtime(format!(
                "require cycle: `{name}` is already being loaded"
            )));
        }
        let cached: Value = cache.raw_get(key.as_str())?;
        if !cached.is_nil() {
            return Ok(cached);
        }
        let Some((path, source)) = modules.get(&name) else {
            return Err(mlua::Error::runtime(if modules.sources.is_empty() {
                format!("module `{name}` not found: no modules ([lua] dir is not set or empty)")
            } else {
                format!("module `{name}` not found under [lua] dir")
            }));
        };
        let env = lua.create_table()?;
        let meta = lua.create_table()?;
        meta.set("__index", lua.globals())?;
        env.set_metatable(Some(meta))?;
        env.raw_set("require", require_fn(lua, &modules)?)?;
        loading.raw_set(key.as_str(), true)?;
        let r = lua
            .load(source.as_str())
            .set_mode(ChunkMode::Text)
            .set_name(format!("={}", path.display()))
            .set_environment(env.clone())
            .call::<Value>(name.as_str());
        loading.raw_set(key.as_str(), Value::Nil)?;
        let value = match r? {
            Value::Nil => Value::Boolean(true),
            v => v,
        };
        env.set_readonly(true);
        env.set_safeenv(true);
        cache.raw_set(key.as_str(), value.clone())?;
        Ok(value)
    })
}

/// Does `bytes` look like compiled Luau bytecode (as Luau's own loader decides: a first byte
/// below a tab)?
fn is_bytecode(bytes: &[u8]) -> bool {
    bytes.first().is_some_and(|b| *b < b'\t')
}

/// Read a script or module file as Lua source text: compiled bytecode and text that is not
/// UTF-8 are errors that name the file.
pub fn read_source(path: &std::path::Path) -> Result<String, String> {
    let shown = path.display();
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read `{shown}`: {e}"))?;
    if is_bytecode(&bytes) {
        return Err(format!(
            "{shown} looks like compiled Luau bytecode; tidegate loads Lua source text only"
        ));
    }
    String::from_utf8(bytes).map_err(|e| {
        format!(
            "{shown} is not UTF-8 text (byte {} is not valid)",
            e.utf8_error().valid_up_to()
        )
    })
}

/// Compile `source` without running it (for `tidegate check` and config load).
///
/// Only source text is loaded, never Luau bytecode (which the VM does not verify: crafted
/// bytecode can read and write outside the VM). Every load forces text mode; a file that
/// looks like bytecode (its first byte below a tab, as Luau's own detection has it) is named
/// here as such, so the error says what is wrong rather than showing a syntax error.
pub fn compile_check(chunk_name: &str, source: &str) -> Result<(), String> {
    if is_bytecode(source.as_bytes()) {
        return Err(format!(
            "{chunk_name} looks like compiled Luau bytecode; tidegate loads Lua source text only"
        ));
    }
    let lua =
        Lua::new_with(StdLib::NONE, mlua::LuaOptions::default()).map_err(|e| e.to_string())?;
    lua.load(source)
        .set_mode(ChunkMode::Text)
        .set_name(format!("={chunk_name}"))
        .into_function()
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// What the proxy lends a hook call: pointers valid for the duration of the call only.
#[derive(Clone, Copy)]
pub struct Lent {
    pub session: Option<crate::proxy::exchange::RawDownstream>,
    /// null outside on_response / on_body / on_log
    pub response: *mut pingora::http::ResponseHeader,
    pub ctx: *const crate::proxy::ctx::Ctx,
}

/// Call `hook` of `script` on this thread's VM. `chunk` is the body chunk and end-of-stream
/// flag, for `on_body` only.
pub fn call_hook(
    script: &Script,
    hook: Phase,
    rid: u64,
    conf: &serde_json::Value,
    lent: Lent,
    chunk: Option<(&bytes::Bytes, bool)>,
) -> Result<Outcome, HookError> {
    with_vm(script.memory_limit, Some(rid), |vm| {
        let loaded = vm.module(script, conf)?;
        let Some(f) = &loaded.hooks[slot(hook)] else {
            return Ok(Outcome::Absent);
        };
        let (scratch, conf) = (&loaded.scratch, &loaded.conf);
        let ctx = vm.ctx_table(rid)?;
        let h = vm.handles.clone();
        let _current = Current::enter(lent.session, lent.response, lent.ctx, hook);
        match hook {
            Phase::Request | Phase::Upstream => {
                let thread = match vm.spare.pop() {
                    Some(t) => {
                        t.reset(f.clone())?;
                        t
                    }
                    None => vm.lua.create_thread(f.clone())?,
                };
                let budget = script.time_budget;
                if hook == Phase::Request {
                    vm.drive(hook, thread, scratch, rid, budget, (&h.req, &ctx, conf))
                } else {
                    let args = (&h.req, &h.up, &ctx, conf);
                    vm.drive(hook, thread, scratch, rid, budget, args)
                }
            }
            Phase::Response | Phase::Log | Phase::Body => {
                vm.deadline.set(Some(Instant::now() + script.time_budget));
                let r = match (hook, chunk) {
                    (Phase::Body, Some((data, eof))) => {
                        let data = vm.lua.create_string(data)?;
                        f.call::<Value>((&h.resp, data, eof, &ctx, conf))
                    }
                    (Phase::Body, None) => Ok(Value::Nil),
                    _ => f.call::<Value>((&h.req, &h.resp, &ctx, conf)),
                };
                vm.deadline.set(None);
                // whatever the call set as globals goes with it
                scratch.clear()?;
                let v = r?;
                if hook != Phase::Body {
                    nothing_returned(hook, &v)?;
                    return Ok(Outcome::Done(None));
                }
                match v {
                    Value::String(s) => Ok(Outcome::Done(Some(bytes::Bytes::copy_from_slice(
                        &s.as_bytes(),
                    )))),
                    Value::Nil => Ok(Outcome::Done(None)),
                    other => Err(mlua::Error::runtime(format!(
                        "on_body must return a string or nil, not {}",
                        other.type_name()
                    ))),
                }
            }
        }
    })
}

/// Resume request `rid`'s hook, which waited for an outbound call, with its answer.
pub fn resume_hook(
    script: &Script,
    hook: Phase,
    rid: u64,
    conf: &serde_json::Value,
    lent: Lent,
    answer: Waited,
) -> Result<Outcome, HookError> {
    with_vm(script.memory_limit, Some(rid), |vm| {
        let Some(thread) = vm.waiting.remove(&rid) else {
            return Err(mlua::Error::runtime(
                "the Lua VM was restarted while this request waited",
            ));
        };
        let loaded = vm.module(script, conf)?;
        let _current = Current::enter(lent.session, lent.response, lent.ctx, hook);
        let lua = &vm.lua;
        let args = match answer {
            Waited::Http(Ok(r)) => (Value::Table(http_client::to_lua(lua, &r)?), Value::Nil),
            Waited::Body(Ok(b)) => (Value::String(lua.create_string(&b)?), Value::Nil),
            Waited::Limit(Ok(t)) => (Value::Table(super::limit_api::to_lua(lua, &t)?), Value::Nil),
            Waited::Http(Err(e)) | Waited::Body(Err(e)) | Waited::Limit(Err(e)) => {
                (Value::Nil, Value::String(lua.create_string(&e)?))
            }
        };
        vm.drive(hook, thread, &loaded.scratch, rid, script.time_budget, args)
    })
}

/// Forget request `rid`'s `ctx` and coroutine (at the end of the request), on whichever VM
/// of this thread holds them.
pub fn end_request(rid: u64) {
    super::slots::end_request(rid);
}

pub(super) fn describe(e: &mlua::Error) -> String {
    match e {
        mlua::Error::CallbackError { traceback, cause } => {
            format!("{}\n{traceback}", describe(cause))
        }
        mlua::Error::MemoryError(m) => format!("memory limit exceeded: {m}"),
        other => other.to_string(),
    }
}
