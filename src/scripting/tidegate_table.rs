//! The `tidegate` table: `log.{debug,info,warn,error,set_field}`, `now()`, and the tables of
//! lib_util.rs, http_client.rs and shared.rs; then every table of it frozen.

use super::api::{only_in, Phase, FIELDS, REQUEST_BODY_CAP, REQ_BODY};
use mlua::Lua;

/// A script's log message is cut at this many bytes, a `set_field` value at
/// `MAX_FIELD_VALUE` (both go to logs that operators read, and a script must not fill them).
const MAX_LOG_MESSAGE: usize = 16 << 10;
const MAX_FIELD_VALUE: usize = 4 << 10;
const MAX_FIELD_NAME: usize = 128;

/// `s` cut to at most `max` bytes (on a character boundary), saying how much was cut.
fn truncate(mut s: String, max: usize) -> String {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    let cut = s.len() - end;
    s.truncate(end);
    s.push_str(&format!("...({cut} bytes more)"));
    s
}

/// A script's log message as one line: cut to `MAX_LOG_MESSAGE`, line breaks and other
/// control characters escaped (`\n`, `\x01`), so a message cannot forge a log line.
fn log_text(m: &str) -> String {
    let mut end = m.len().min(MAX_LOG_MESSAGE);
    while !m.is_char_boundary(end) {
        end -= 1;
    }
    let mut out = String::with_capacity(end + 32);
    for c in m[..end].chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push('\t'),
            c if c.is_control() => out.push_str(&format!("\\x{:02X}", c as u32)),
            c => out.push(c),
        }
    }
    if end < m.len() {
        out.push_str(&format!("...({} bytes more)", m.len() - end));
    }
    out
}

/// The `tidegate` table: `log.{debug,info,warn,error,set_field}`, `now()`.
pub fn register(lua: &Lua) -> mlua::Result<()> {
    let t = lua.create_table()?;
    let log = lua.create_table()?;
    log.set(
        "debug",
        lua.create_function(|_, m: mlua::String| {
            tracing::debug!(target: "lua", "{}", log_text(&m.to_string_lossy()));
            Ok(())
        })?,
    )?;
    log.set(
        "info",
        lua.create_function(|_, m: mlua::String| {
            tracing::info!(target: "lua", "{}", log_text(&m.to_string_lossy()));
            Ok(())
        })?,
    )?;
    log.set(
        "warn",
        lua.create_function(|_, m: mlua::String| {
            tracing::warn!(target: "lua", "{}", log_text(&m.to_string_lossy()));
            Ok(())
        })?,
    )?;
    log.set(
        "error",
        lua.create_function(|_, m: mlua::String| {
            tracing::error!(target: "lua", "{}", log_text(&m.to_string_lossy()));
            Ok(())
        })?,
    )?;
    log.set(
        "set_field",
        lua.create_function(|_, (k, v): (String, mlua::Value)| {
            let v = match v {
                mlua::Value::String(s) => s.to_str()?.to_string(),
                mlua::Value::Nil => return Ok(()),
                other => other.to_string()?,
            };
            if k.len() > MAX_FIELD_NAME {
                return Err(mlua::Error::runtime(format!(
                    "set_field: a field name is at most {MAX_FIELD_NAME} bytes"
                )));
            }
            FIELDS.with(|f| f.borrow_mut().push((k, truncate(v, MAX_FIELD_VALUE))));
            Ok(())
        })?,
    )?;
    t.set("log", log)?;
    t.set(
        "now",
        lua.create_function(|_, ()| {
            Ok(std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs_f64())
                .unwrap_or(0.0))
        })?,
    )?;
    super::lib_util::register(lua, &t)?;
    super::digests::register(lua, &t)?;
    super::http_client::register(lua, &t)?;
    super::shared::register(lua, &t)?;
    super::limit_api::register(lua, &t)?;
    let body = super::wait::yielding(lua, "req:body", |_, _req: mlua::AnyUserData| {
        only_in(&[Phase::Request], "req:body")?;
        Ok(super::wait::Wait::Body(REQUEST_BODY_CAP))
    })?;
    lua.set_named_registry_value(REQ_BODY, body)?;
    // every table of the API is shared by all requests and plugins of this VM: none may be
    // changed by a script (Luau's sandbox freezes only the top-level globals)
    freeze(&t);
    lua.globals().set("tidegate", t)?;
    Ok(())
}

/// Make `t`, every table reachable from it and their metatables read-only: assignment,
/// `rawset`, `table.clear`, `table.insert` and `setmetatable` on them all raise an error.
pub fn freeze(t: &mlua::Table) {
    let mut seen = std::collections::HashSet::new();
    freeze_inner(t, &mut seen);
}

fn freeze_inner(t: &mlua::Table, seen: &mut std::collections::HashSet<*const std::ffi::c_void>) {
    if !seen.insert(t.to_pointer()) {
        return;
    }
    t.set_readonly(true);
    if let Some(m) = t.metatable() {
        freeze_inner(&m, seen);
    }
    for (k, v) in t.pairs::<mlua::Value, mlua::Value>().flatten() {
        for x in [k, v] {
            if let mlua::Value::Table(inner) = x {
                freeze_inner(&inner, seen);
            }
        }
    }
}
