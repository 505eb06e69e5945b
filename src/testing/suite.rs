//! One `*_test.lua` file: its VM, the `tidegate.test` API, and its cases run one by one.
//!
//! ```lua
//! local t = tidegate.test
//! local auth = t.plugin("auth")                      -- from the config (-c or t.load)
//! -- or: t.script("lua/examples/api_key_auth.lua", { keys = { "k1" } })
//! describe("auth", function()
//!   it("refuses a request without a key", function()
//!     local res = t.run(auth, t.request{ path = "/", headers = { host = "a" } })
//!     t.assert_eq(res.status, 401)
//!   end)
//! end)
//! ```
//!
//! The test VM is a plain Luau VM with the safe libraries and `tidegate`'s helpers (json,
//! base64, ...); the plugins it runs are the real ones, on this thread's worker VM. Each case
//! starts with no HTTP mocks, no recorded calls and empty shared dicts.

use super::exchange::{self, Outcome, TestRequest, UpstreamAnswer};
use super::mock;
use crate::plugins::Plugin;
use crate::state::State;
use mlua::{AnyUserData, Lua, Table, UserData, Value};
use std::cell::RefCell;
use std::path::Path;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What a test file runs against: the loaded config (if any) and the runtime hooks wait on.
pub struct Env {
    pub state: Option<Arc<State>>,
    /// where the config came from, for messages
    pub config_name: String,
    pub rt: Rc<tokio::runtime::Runtime>,
}

/// One case's result.
#[derive(Debug)]
pub struct Case {
    pub name: String,
    pub time: Duration,
    /// the failure: the assertion's file and line, its message and diff
    pub failure: Option<String>,
}

/// A plugin a test runs: from the config or from a script.
struct PluginRef {
    name: String,
    plugin: Arc<dyn Plugin>,
}

impl UserData for PluginRef {
    fn add_fields<F: mlua::UserDataFields<Self>>(f: &mut F) {
        f.add_field_method_get("name", |_, p| Ok(p.name.clone()));
    }
}

fn err(m: impl std::fmt::Display) -> mlua::Error {
    mlua::Error::runtime(m.to_string())
}

/// Run every case of `path`. `Err`: the file itself did not load or run (no cases).
pub fn run_file(path: &Path, env: Env) -> Result<Vec<Case>, String> {
    let source = crate::scripting::vm::read_source(path)?;
    let lua = Lua::new_with(mlua::StdLib::ALL_SAFE, mlua::LuaOptions::default())
        .map_err(|e| e.to_string())?;
    let cases = setup(&lua, env).map_err(|e| format!("cannot start the test VM: {e}"))?;
    let name = path.display().to_string();
    lua.load(&source)
        .set_name(format!("={name}"))
        .exec()
        .map_err(|e| describe(&e))?;
    let mut out = Vec::new();
    for case in cases.sequence_values::<Table>() {
        let case = case.map_err(|e| e.to_string())?;
        let name: String = case.get("name").map_err(|e| e.to_string())?;
        let f: mlua::Function = case.get("fn").map_err(|e| e.to_string())?;
        begin_case(&lua);
        let t0 = Instant::now();
        let failure = f.call::<()>(()).err().map(|e| describe(&e));
        out.push(Case {
            name,
            time: t0.elapsed(),
            failure,
        });
    }
    Ok(out)
}

/// A fresh start for a case: no mocks or calls, empty shared dicts.
fn begin_case(lua: &Lua) {
    mock::begin();
    if let Some(env) = lua.app_data_ref::<Rc<RefCell<Env>>>() {
        if let Some(s) = &env.borrow().state {
            s.config.lua.shared.clear_all();
        }
    }
}

/// An error as the report shows it: the message with its file and line, without Lua's
/// traceback.
fn describe(e: &mlua::Error) -> String {
    let text = match e {
        mlua::Error::CallbackError { cause, .. } => return describe(cause),
        mlua::Error::RuntimeError(m) => m.clone(),
        other => other.to_string(),
    };
    text.lines()
        .take_while(|l| !l.trim_start().starts_with("stack traceback:"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The globals of the test VM; the list the prelude fills with cases.
fn setup(lua: &Lua, env: Env) -> mlua::Result<Table> {
    crate::scripting::tidegate_table::register(lua)?;
    let env = Rc::new(RefCell::new(env));
    lua.set_app_data(env.clone());
    let t = lua.create_table()?;
    let e = env.clone();
    t.set(
        "plugin",
        lua.create_function(move |_, name: String| {
            let env = e.borrow();
            let state = env.state.as_ref().ok_or_else(|| {
                err("t.plugin: no config is loaded (give -c CONFIG, or call t.load first)")
            })?;
            let found = state.config.plugins.iter().find(|p| p.name == name);
            match found {
                Some(p) => Ok(PluginRef {
                    name: p.name.clone(),
                    plugin: p.plugin.clone(),
                }),
                None => {
                    let names: Vec<&str> = state
                        .config
                        .plugins
                        .iter()
                        .map(|p| p.name.as_str())
                        .collect();
                    Err(err(format!(
                        "t.plugin: no plugin `{name}` in {}; it has: {}",
                        env.config_name,
                        names.join(", ")
                    )))
                }
            }
        })?,
    )?;
    let e = env.clone();
    t.set(
        "script",
        lua.create_function(move |_, (path, conf): (String, Option<Value>)| {
            let env = e.borrow();
            let settings = env
                .state
                .as_ref()
                .map(|s| s.config.lua.clone())
                .unwrap_or_default();
            let config = match conf {
                None | Some(Value::Nil) => None,
                Some(v) => Some(
                    serde_json::to_value(&v)
                        .ok()
                        .and_then(|j| toml::Value::try_from(j).ok())
                        .ok_or_else(|| err("t.script: conf must be a table of plain values"))?,
                ),
            };
            let c = crate::scripting::LuaConf {
                path: Some(path.clone()),
                source: None,
                config,
            };
            let plugin = crate::scripting::LuaPlugin::new(c, &path, &settings)
                .map_err(|e| err(format!("t.script({path}): {}", e.message)))?;
            Ok(PluginRef {
                name: path,
                plugin: Arc::new(plugin),
            })
        })?,
    )?;
    let e = env.clone();
    t.set(
        "load",
        lua.create_function(move |_, path: String| {
            let state = super::load_state(&path).map_err(err)?;
            let mut env = e.borrow_mut();
            env.state = Some(state);
            env.config_name = path;
            Ok(())
        })?,
    )?;
    t.set("request", lua.create_function(|_, r: Table| Ok(r))?)?;
    let e = env.clone();
    t.set(
        "run",
        lua.create_function(
            move |lua, (p, req, opts): (AnyUserData, Table, Option<Table>)| {
                let p = p.borrow::<PluginRef>()?;
                let req = request(&req)?;
                let mut upstream = match opts
                    .as_ref()
                    .map(|o| o.get::<Option<Table>>("upstream_response"))
                    .transpose()?
                    .flatten()
                {
                    Some(u) => upstream_answer(&u)?,
                    None => UpstreamAnswer::default(),
                };
                upstream.selected = opts
                    .map(|o| o.get::<Option<String>>("location_upstream"))
                    .transpose()?
                    .flatten();
                let (state, rt) = {
                    let env = e.borrow();
                    let state = match &env.state {
                        Some(s) => s.clone(),
                        None => super::empty_state().map_err(err)?,
                    };
                    (state, env.rt.clone())
                };
                let plugin = p.plugin.clone();
                drop(p);
                let out = rt
                    .block_on(exchange::run(plugin.as_ref(), state, &req, &upstream))
                    .map_err(err)?;
                outcome(lua, out)
            },
        )?,
    )?;
    t.set(
        "http_mock",
        lua.create_function(|_, (pattern, r): (String, Table)| {
            mock::add(mock::Mock {
                pattern,
                status: r.get::<Option<u16>>("status")?.unwrap_or(200),
                headers: header_map(r.get::<Option<Table>>("headers")?)?,
                body: bytes::Bytes::from(
                    r.get::<Option<mlua::String>>("body")?
                        .map(|s| s.as_bytes().to_vec())
                        .unwrap_or_default(),
                ),
                error: r.get("error")?,
            });
            Ok(())
        })?,
    )?;
    t.set(
        "http_calls",
        lua.create_function(|lua, ()| {
            let list = lua.create_table()?;
            for c in mock::calls() {
                let row = lua.create_table()?;
                row.set("method", c.method)?;
                row.set("url", c.url)?;
                let h = lua.create_table()?;
                for (k, v) in c.headers {
                    h.set(k, v)?;
                }
                row.set("headers", h)?;
                row.set("body", lua.create_string(&c.body)?)?;
                list.push(row)?;
            }
            Ok(list)
        })?,
    )?;
    // `tidegate` as scripts see it (frozen), with `test` added through a new table
    let base: Table = lua.globals().get("tidegate")?;
    let tidegate = lua.create_table()?;
    tidegate.set("test", t.clone())?;
    let meta = lua.create_table()?;
    meta.set("__index", base)?;
    tidegate.set_metatable(Some(meta))?;
    lua.globals().set("tidegate", tidegate)?;
    lua.load(include_str!("prelude.lua"))
        .set_name("=tidegate.test")
        .call::<Table>(t)
}

fn text(t: &Table, key: &str) -> mlua::Result<Option<String>> {
    t.get::<Option<String>>(key)
}

fn pairs_of(t: Option<Table>) -> mlua::Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    let Some(t) = t else { return Ok(out) };
    for pair in t.pairs::<String, Value>() {
        let (k, v) = pair?;
        match v {
            Value::Table(list) => {
                for v in list.sequence_values::<String>() {
                    out.push((k.clone(), v?));
                }
            }
            other => out.push((k, other.to_string()?)),
        }
    }
    Ok(out)
}

fn header_map(t: Option<Table>) -> mlua::Result<http::HeaderMap> {
    let mut m = http::HeaderMap::new();
    for (k, v) in pairs_of(t)? {
        let name = http::HeaderName::from_bytes(k.as_bytes()).map_err(err)?;
        m.append(name, http::HeaderValue::from_str(&v).map_err(err)?);
    }
    Ok(m)
}

fn body(t: &Table) -> mlua::Result<bytes::Bytes> {
    Ok(t.get::<Option<mlua::String>>("body")?
        .map(|s| bytes::Bytes::from(s.as_bytes().to_vec()))
        .unwrap_or_default())
}

/// `t.request{ method, path, headers, body, client_ip }`.
fn request(t: &Table) -> mlua::Result<TestRequest> {
    let client_ip = match text(t, "client_ip")? {
        None => std::net::IpAddr::from([127, 0, 0, 1]),
        Some(s) => s
            .parse()
            .map_err(|_| err(format!("t.request: client_ip `{s}` is not an IP address")))?,
    };
    let mut headers = pairs_of(t.get("headers")?)?;
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        headers.insert(0, ("host".into(), "test".into()));
    }
    Ok(TestRequest {
        method: text(t, "method")?.unwrap_or_else(|| "GET".into()),
        path: text(t, "path")?.unwrap_or_else(|| "/".into()),
        headers,
        body: body(t)?,
        client_ip,
    })
}

/// `upstream_response = { status, headers, body }` (`body` a string or a list of chunks).
fn upstream_answer(t: &Table) -> mlua::Result<UpstreamAnswer> {
    let chunks = match t.get::<Value>("body")? {
        Value::Nil => Vec::new(),
        Value::Table(list) => list
            .sequence_values::<mlua::String>()
            .map(|s| s.map(|s| bytes::Bytes::from(s.as_bytes().to_vec())))
            .collect::<mlua::Result<Vec<_>>>()?,
        _ => vec![body(t)?],
    };
    Ok(UpstreamAnswer {
        status: t.get::<Option<u16>>("status")?.unwrap_or(200),
        headers: pairs_of(t.get("headers")?)?,
        chunks,
        selected: None,
    })
}

fn headers_table(lua: &Lua, h: &[(String, String)]) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    for (k, v) in h {
        let joined = match t.get::<Option<String>>(k.as_str())? {
            Some(prev) => format!("{prev}, {v}"),
            None => v.clone(),
        };
        t.set(k.as_str(), joined)?;
    }
    Ok(t)
}

/// What `t.run` returns.
fn outcome(lua: &Lua, o: Outcome) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    t.set("status", o.status)?;
    t.set("headers", headers_table(lua, &o.headers)?)?;
    t.set("body", lua.create_string(&o.body)?)?;
    t.set("answered", o.answered)?;
    t.set("upstream", o.upstream)?;
    t.set("peer", o.peer)?;
    t.set("user", o.user)?;
    let log = lua.create_table()?;
    for (k, v) in o.log {
        log.set(k, v)?;
    }
    t.set("log", log)?;
    t.set("errors", o.errors)?;
    if let Some(up) = o.upstream_request {
        let r = lua.create_table()?;
        r.set("method", up.method)?;
        r.set("path", up.path)?;
        r.set("headers", headers_table(lua, &up.headers)?)?;
        t.set("request", r)?;
    }
    Ok(t)
}
