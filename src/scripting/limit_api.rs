//! Lua and the `limit` plugins: `tidegate.limit.take(name, key)` and `ctx.limit_key`.
//!
//! ```lua
//! function M.on_request(req, ctx, conf)
//!   local t = tidegate.limit.take("per-tenant", tenant_of(req))   -- a limit in the config
//!   if not t.allowed then
//!     return req:respond(429, "slow down", { ["retry-after"] = tostring(t.retry_after) })
//!   end
//!   ctx.limit_key = tenant_of(req)   -- or let a later `limit` with key = "ctx" count it
//! end
//! ```
//!
//! `take` waits like `tidegate.http.request` (a Redis-backed limit does I/O), so it can be
//! called from `on_request` and `on_upstream`. It returns a table `{allowed, limit,
//! remaining, retry_after, reset}`, or `nil, message` when no `limit` plugin has that name. An
//! in-flight limit's slot is held until the request ends.

use super::api::{only_in, Phase};
use super::wait::{yielding, Wait};
use std::cell::RefCell;

thread_local! {
    /// `ctx.limit_key` as the last request-phase hook on this thread left it
    static LIMIT_KEY: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// After a request-phase hook returned: keep its `ctx.limit_key` (a string or a number).
pub fn note_limit_key(ctx: &mlua::Table, name: &mlua::String) {
    let v: Option<mlua::Value> = ctx.raw_get(name).ok();
    let key = match v {
        Some(mlua::Value::String(s)) => Some(s.to_string_lossy()),
        Some(mlua::Value::Integer(i)) => Some(i.to_string()),
        Some(mlua::Value::Number(n)) => Some(n.to_string()),
        _ => None,
    };
    if key.is_some() {
        LIMIT_KEY.with(|k| *k.borrow_mut() = key);
    }
}

/// The key the last hook left, if any.
pub fn take_limit_key() -> Option<String> {
    LIMIT_KEY.with(|k| k.borrow_mut().take())
}

/// `tidegate.limit`.
pub fn register(lua: &mlua::Lua, tidegate: &mlua::Table) -> mlua::Result<()> {
    let take = yielding(
        lua,
        "tidegate.limit.take",
        |_, (name, key): (String, mlua::Value)| {
            only_in(&[Phase::Request, Phase::Upstream], "tidegate.limit.take")?;
            let key = match key {
                mlua::Value::String(s) => s.to_string_lossy(),
                mlua::Value::Integer(i) => i.to_string(),
                mlua::Value::Number(n) => n.to_string(),
                other => {
                    return Err(mlua::Error::runtime(format!(
                        "tidegate.limit.take: the key must be a string or a number, not {}",
                        other.type_name()
                    )))
                }
            };
            Ok(Wait::Limit { name, key })
        },
    )?;
    let t = lua.create_table()?;
    t.set("take", take)?;
    tidegate.set("limit", t)?;
    Ok(())
}

/// Do a take for a script: find the `limit` named `name` in the request's config.
pub async fn take(
    ctx: &mut crate::proxy::ctx::Ctx,
    name: &str,
    key: &str,
) -> Result<crate::plugins::limit::Taken, String> {
    let state = ctx.state.clone();
    let def = state
        .config
        .plugins
        .iter()
        .find(|p| p.name == name)
        .ok_or_else(|| format!("tidegate.limit.take: no plugin named `{name}`"))?;
    let limit = def.plugin.limiter().ok_or_else(|| {
        format!(
            "tidegate.limit.take: `{name}` is a `{}` plugin, not a `limit`",
            def.category
        )
    })?;
    Ok(limit.take(key, ctx).await)
}

/// The result table of a take.
pub fn to_lua(lua: &mlua::Lua, t: &crate::plugins::limit::Taken) -> mlua::Result<mlua::Table> {
    let r = lua.create_table()?;
    r.set("allowed", t.allowed)?;
    r.set("limit", t.limit)?;
    r.set("remaining", t.remaining)?;
    r.set("retry_after", t.retry_after)?;
    r.set("reset", t.reset)?;
    Ok(r)
}
