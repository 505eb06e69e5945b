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
//!   is dropped and rebuilt on the next call.

use super::api::{self, Current, Phase, Req, Resp};
use mlua::{Function, Lua, StdLib, Table, Value, VmState};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// What a script is and how it may run.
#[derive(Debug)]
pub struct Script {
    /// unique per load of a script: a new config version with new text gets a new id
    pub id: u64,
    /// shown in errors: the file path or `plugins.NAME`
    pub chunk_name: String,
    pub source: String,
    pub time_budget: Duration,
    pub memory_limit: usize,
}

pub struct Vm {
    lua: Lua,
    deadline: Rc<Cell<Option<Instant>>>,
    /// per script id, loaded in this VM
    modules: HashMap<u64, Loaded>,
    ctx: HashMap<u64, Table>,
    req: mlua::AnyUserData,
    resp: mlua::AnyUserData,
    up: mlua::AnyUserData,
    memory_limit: usize,
}

/// A script loaded in one VM (handles into that VM, which owns them).
#[derive(Clone)]
struct Loaded {
    /// on_request, on_upstream, on_response, on_log, looked up once
    hooks: [Option<Function>; 4],
    /// the hooks' environment: empty, reads fall through to the frozen module environment,
    /// and it is cleared after every call, so globals set by one call never reach the next
    scratch: Table,
    /// `conf`, converted once
    conf: Value,
}

fn slot(p: Phase) -> usize {
    match p {
        Phase::Request => 0,
        Phase::Upstream => 1,
        Phase::Response => 2,
        Phase::Log => 3,
    }
}

thread_local! {
    static VM: RefCell<Option<Vm>> = const { RefCell::new(None) };
}

/// A hook failed: the message names the script and line.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct HookError(pub String);

impl Vm {
    fn new(memory_limit: usize) -> mlua::Result<Vm> {
        let lua = Lua::new_with(StdLib::ALL_SAFE, mlua::LuaOptions::default())?;
        let g = lua.globals();
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
        api::register(&lua)?;
        lua.sandbox(true)?;
        let deadline: Rc<Cell<Option<Instant>>> = Rc::new(Cell::new(None));
        let d = deadline.clone();
        lua.set_interrupt(move |_| match d.get() {
            Some(t) if Instant::now() >= t => Err(mlua::Error::runtime("time budget exceeded")),
            _ => Ok(VmState::Continue),
        });
        lua.set_memory_limit(memory_limit)?;
        let req = lua.create_userdata(Req)?;
        let resp = lua.create_userdata(Resp)?;
        let up = lua.create_userdata(super::api::Up)?;
        Ok(Vm {
            lua,
            deadline,
            modules: HashMap::new(),
            ctx: HashMap::new(),
            req,
            resp,
            up,
            memory_limit,
        })
    }

    /// `script` loaded in this VM, running its module code the first time.
    fn module(&mut self, script: &Script, conf: &serde_json::Value) -> mlua::Result<Loaded> {
        use mlua::LuaSerdeExt;
        if let Some(l) = self.modules.get(&script.id) {
            return Ok(l.clone());
        }
        if self.modules.len() >= 256 {
            // old versions after many reloads: drop them all, they load again when needed
            self.modules.clear();
        }
        let env = self.lua.create_table()?;
        let meta = self.lua.create_table()?;
        meta.set("__index", self.lua.globals())?;
        env.set_metatable(Some(meta))?;
        let f = self
            .lua
            .load(&script.source)
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
        let scratch = self.lua.create_table()?;
        let smeta = self.lua.create_table()?;
        smeta.set("__index", env)?;
        scratch.set_metatable(Some(smeta))?;
        let mut hooks: [Option<Function>; 4] = [None, None, None, None];
        for hook in [Phase::Request, Phase::Upstream, Phase::Response, Phase::Log] {
            if let Some(f) = module.get::<Option<Function>>(hook.name())? {
                f.set_environment(scratch.clone())?;
                hooks[slot(hook)] = Some(f);
            }
        }
        let conf = self.lua.to_value(conf)?;
        if let Value::Table(t) = &conf {
            t.set_readonly(true);
        }
        let loaded = Loaded {
            hooks,
            scratch,
            conf,
        };
        self.modules.insert(script.id, loaded.clone());
        Ok(loaded)
    }

    /// The `ctx` table of request `rid`, created on first use.
    fn ctx_table(&mut self, rid: u64) -> mlua::Result<Table> {
        if let Some(t) = self.ctx.get(&rid) {
            return Ok(t.clone());
        }
        let t = self.lua.create_table()?;
        self.ctx.insert(rid, t.clone());
        Ok(t)
    }
}

/// Compile `source` without running it (for `tidegate check` and config load).
pub fn compile_check(chunk_name: &str, source: &str) -> Result<(), String> {
    let lua =
        Lua::new_with(StdLib::NONE, mlua::LuaOptions::default()).map_err(|e| e.to_string())?;
    lua.load(source)
        .set_name(format!("={chunk_name}"))
        .into_function()
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// What the proxy lends a hook call: pointers valid for the duration of the call only.
#[derive(Clone, Copy)]
pub struct Lent {
    pub session: *mut pingora::proxy::Session,
    /// null outside on_response / on_log
    pub response: *mut pingora::http::ResponseHeader,
    pub ctx: *const crate::proxy::ctx::Ctx,
}

/// Call `hook` of `script` on this thread's VM. `Ok(false)`: the script has no such hook.
pub fn call_hook(
    script: &Script,
    hook: Phase,
    rid: u64,
    conf: &serde_json::Value,
    lent: Lent,
) -> Result<bool, HookError> {
    VM.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot
            .as_ref()
            .is_some_and(|vm| vm.memory_limit != script.memory_limit)
        {
            *slot = None;
        }
        if slot.is_none() {
            *slot = Some(
                Vm::new(script.memory_limit)
                    .map_err(|e| HookError(format!("cannot start a Lua VM: {e}")))?,
            );
        }
        let Some(vm) = slot.as_mut() else {
            return Err(HookError("no Lua VM".into()));
        };
        let result = run(vm, script, hook, rid, conf, lent);
        if let Err(mlua::Error::MemoryError(_)) = &result {
            // a VM that ran out of memory may be half-way through anything: start afresh
            *slot = None;
        }
        result.map_err(|e| HookError(describe(&e)))
    })
}

fn run(
    vm: &mut Vm,
    script: &Script,
    hook: Phase,
    rid: u64,
    conf: &serde_json::Value,
    lent: Lent,
) -> mlua::Result<bool> {
    let loaded = vm.module(script, conf)?;
    let Some(f) = &loaded.hooks[slot(hook)] else {
        return Ok(false);
    };
    let (scratch, conf) = (&loaded.scratch, loaded.conf.clone());
    let ctx = vm.ctx_table(rid)?;
    let _current = Current::enter(lent.session, lent.response, lent.ctx, hook);
    vm.deadline.set(Some(Instant::now() + script.time_budget));
    let r = match hook {
        Phase::Request => f.call::<Value>((vm.req.clone(), ctx, conf)),
        Phase::Upstream => f.call::<Value>((vm.req.clone(), vm.up.clone(), ctx, conf)),
        Phase::Response | Phase::Log => {
            f.call::<Value>((vm.req.clone(), vm.resp.clone(), ctx, conf))
        }
    };
    vm.deadline.set(None);
    // whatever the call set as globals goes with it
    scratch.clear()?;
    r?;
    Ok(true)
}

/// Forget request `rid`'s `ctx` (at the end of the request).
pub fn end_request(rid: u64) {
    VM.with(|cell| {
        if let Ok(mut slot) = cell.try_borrow_mut() {
            if let Some(vm) = slot.as_mut() {
                vm.ctx.remove(&rid);
            }
        }
    });
}

fn describe(e: &mlua::Error) -> String {
    match e {
        mlua::Error::CallbackError { traceback, cause } => {
            format!("{}\n{traceback}", describe(cause))
        }
        mlua::Error::MemoryError(m) => format!("memory limit exceeded: {m}"),
        other => other.to_string(),
    }
}
