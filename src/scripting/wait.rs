//! Hooks that wait: `tidegate.http.request` and `req:body()` suspend the hook's coroutine
//! while the proxy does the I/O, so a worker never blocks on a script.
//!
//! A waiting function checks its arguments in Rust, leaves a [`Wait`] here, and yields from
//! Lua. The VM (`vm.rs`) sees the yield, takes the `Wait`, and hands it to the plugin, which
//! does the I/O and resumes the coroutine with a [`Waited`]. Only `on_request` and
//! `on_upstream` run as coroutines; a yield anywhere else, or one not made by these functions
//! (a bare `coroutine.yield`), is an error.

use super::http_client::{Inbound, Outbound};
use std::cell::{Cell, RefCell};

/// What a hook waits for.
#[derive(Debug)]
pub enum Wait {
    /// an outbound HTTP call
    Http(Box<Outbound>),
    /// the request body, up to this many bytes
    Body(usize),
    /// a take of a `limit` plugin (`limit_api.rs`)
    Limit { name: String, key: String },
}

/// What it got.
#[derive(Debug)]
pub enum Waited {
    Http(Result<Inbound, String>),
    Body(Result<bytes::Bytes, String>),
    Limit(Result<crate::plugins::limit::Taken, String>),
}

thread_local! {
    static PENDING: RefCell<Option<Wait>> = const { RefCell::new(None) };
    /// the running hook's coroutine (a pointer; 0 when none): waiting functions must be
    /// called from it, not from a coroutine of the script's own
    static ACTIVE: Cell<usize> = const { Cell::new(0) };
}

/// Mark `thread` (a pointer) as the running hook's coroutine; 0 when none.
pub fn set_active(thread: usize) {
    ACTIVE.with(|a| a.set(thread));
}

/// What the hook yielded for, if it did.
pub fn take_pending() -> Option<Wait> {
    PENDING.with(|p| p.borrow_mut().take())
}

/// A Lua function that runs `check` and then yields, for the VM to do the wait.
pub fn yielding<A: mlua::FromLuaMulti + 'static>(
    lua: &mlua::Lua,
    what: &'static str,
    check: impl Fn(&mlua::Lua, A) -> mlua::Result<Wait> + 'static,
) -> mlua::Result<mlua::Function> {
    let prepare = lua.create_function(move |lua, args: A| {
        // the phase and the arguments first: their errors say more
        let w = check(lua, args)?;
        let current = lua.current_thread().to_pointer() as usize;
        if ACTIVE.with(|a| a.get()) != current {
            return Err(mlua::Error::runtime(format!(
                "{what} can only be called from on_request or on_upstream themselves, not from \
                 a coroutine of the script's own"
            )));
        }
        PENDING.with(|p| *p.borrow_mut() = Some(w));
        Ok(())
    })?;
    let co: mlua::Table = lua.globals().get("coroutine")?;
    let yield_fn: mlua::Function = co.get("yield")?;
    lua.load(
        "local prepare, yield = ...\n\
         return function(...) prepare(...) return yield() end",
    )
    .set_name(format!("={what}"))
    .call((prepare, yield_fn))
}
