//! The Lua-facing handles `req` and `resp`, and the `tidegate` table.
//!
//! `req` and `resp` are long-lived userdata, created once per VM: a hook call points them at
//! the current request for its duration ([`Current`]) and clears them after, so no userdata
//! is created per request, and a handle kept by a script past its call can do nothing (it
//! errors with "used outside of a hook").

use crate::plugins::Answer;
use crate::proxy::exchange::{Downstream, RawDownstream};
use mlua::{Lua, UserData, UserDataFields, UserDataMethods};
use pingora::http::ResponseHeader;
use std::cell::{Cell, RefCell};

/// `req:body()` reads at most this much: Pingora keeps up to 64 KiB of a request body to send
/// it on to the upstream after a script has read it.
pub const REQUEST_BODY_CAP: usize = 64 << 10;

pub(super) const REQ_BODY: &str = "tidegate.req_body";

/// The phase a hook runs in; API functions that make no sense in a phase say so.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Request,
    Upstream,
    Response,
    Body,
    Log,
}

impl Phase {
    pub fn name(self) -> &'static str {
        match self {
            Phase::Request => "on_request",
            Phase::Upstream => "on_upstream",
            Phase::Response => "on_response",
            Phase::Body => "on_body",
            Phase::Log => "on_log",
        }
    }
}

thread_local! {
    static SESSION: Cell<Option<RawDownstream>> = const { Cell::new(None) };
    static RESPONSE: Cell<*mut ResponseHeader> = const { Cell::new(std::ptr::null_mut()) };
    static CTX: Cell<*const crate::proxy::ctx::Ctx> = const { Cell::new(std::ptr::null()) };
    static CHOICE: Cell<*mut crate::plugins::UpstreamChoice> = const { Cell::new(std::ptr::null_mut()) };
    static PHASE: Cell<Option<Phase>> = const { Cell::new(None) };
    static ANSWER: RefCell<Option<Answer>> = const { RefCell::new(None) };
    pub(super) static FIELDS: RefCell<Vec<(String, String)>> = const { RefCell::new(Vec::new()) };
}

/// Points `up` at the upstream choice for the duration of an `on_upstream` call.
pub struct CurrentChoice;

impl CurrentChoice {
    pub fn enter(choice: *mut crate::plugins::UpstreamChoice) -> CurrentChoice {
        CHOICE.with(|c| c.set(choice));
        CurrentChoice
    }
}

impl Drop for CurrentChoice {
    fn drop(&mut self) {
        CHOICE.with(|c| c.set(std::ptr::null_mut()));
    }
}

fn with_choice<R>(
    what: &str,
    f: impl FnOnce(&mut crate::plugins::UpstreamChoice) -> R,
) -> mlua::Result<R> {
    only_in(&[Phase::Upstream], what)?;
    let p = CHOICE.with(|c| c.get());
    // SAFETY: non-null only during an `on_upstream` call, pointing at the proxy's choice.
    match unsafe { p.as_mut() } {
        Some(c) => Ok(f(c)),
        None => Err(mlua::Error::runtime("up used outside of on_upstream")),
    }
}

/// The longest timeout a script may set: a day (a larger number is a mistake, and one past
/// `Duration`'s range would panic).
pub(crate) const MAX_SCRIPT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(86_400);

/// A timeout from Lua: seconds (a number, or a string of one, as header values are) or a
/// duration string such as "500ms"; nil is none. NaN, infinities, negatives and anything
/// over [`MAX_SCRIPT_TIMEOUT`] are errors, never a panic.
pub(crate) fn duration(v: &mlua::Value) -> mlua::Result<Option<std::time::Duration>> {
    let secs = |n: f64| -> mlua::Result<std::time::Duration> {
        match std::time::Duration::try_from_secs_f64(n) {
            Ok(d) if d <= MAX_SCRIPT_TIMEOUT => Ok(d),
            _ => Err(mlua::Error::runtime(format!(
                "a timeout must be between 0 and {} seconds, not {n}",
                MAX_SCRIPT_TIMEOUT.as_secs()
            ))),
        }
    };
    Ok(match v {
        mlua::Value::Nil => None,
        mlua::Value::Integer(n) => Some(secs(*n as f64)?),
        mlua::Value::Number(n) => Some(secs(*n)?),
        mlua::Value::String(s) => {
            let s = s.to_str()?;
            match s.trim().parse::<f64>() {
                Ok(n) => Some(secs(n)?),
                Err(_) => {
                    let d =
                        crate::config::units::parse_duration(&s).map_err(mlua::Error::runtime)?;
                    Some(secs(d.as_secs_f64())?)
                }
            }
        }
        other => {
            return Err(mlua::Error::runtime(format!(
                "a timeout is seconds or a string like \"2s\", not {}",
                other.type_name()
            )))
        }
    })
}

/// `up`: where the request goes (on_upstream only).
pub struct Up;

impl UserData for Up {
    fn add_fields<F: UserDataFields<Self>>(fields: &mut F) {
        fields.add_field_method_get("selected", |_, _| {
            with_choice("up.selected", |c| c.upstream.clone().or(c.selected.clone()))
        });
    }

    fn add_methods<M: UserDataMethods<Self>>(methods: &mut M) {
        methods.add_method("set_upstream", |_, _, name: String| {
            with_choice("up:set_upstream", |c| c.upstream = Some(name))
        });
        methods.add_method(
            "set_peer",
            |_, _, (addr, opts): (String, Option<mlua::Table>)| {
                // an IP:PORT only: resolving a name here would block the worker
                let sa: std::net::SocketAddr = addr.parse().map_err(|_| {
                    mlua::Error::runtime(format!("set_peer: `{addr}` is not IP:PORT"))
                })?;
                let tls = opts
                    .as_ref()
                    .map(|o| o.get::<Option<bool>>("tls"))
                    .transpose()?
                    .flatten()
                    .unwrap_or(false);
                let sni = opts
                    .as_ref()
                    .map(|o| o.get::<Option<String>>("sni"))
                    .transpose()?
                    .flatten()
                    .unwrap_or_else(|| sa.ip().to_string());
                with_choice("up:set_peer", |c| c.peer = Some((sa, tls, sni)))
            },
        );
        methods.add_method("set_timeouts", |_, _, t: mlua::Table| {
            let (connect, read, write) = (
                duration(&t.get::<mlua::Value>("connect")?)?,
                duration(&t.get::<mlua::Value>("read")?)?,
                duration(&t.get::<mlua::Value>("write")?)?,
            );
            with_choice("up:set_timeouts", |c| {
                c.connect_timeout = connect.or(c.connect_timeout);
                c.read_timeout = read.or(c.read_timeout);
                c.write_timeout = write.or(c.write_timeout);
            })
        });
    }
}

/// Points the handles at one request for the duration of a hook call.
pub struct Current;

impl Current {
    /// # Safety contract (upheld by the callers in `vm.rs`)
    /// The pointers are used only by Lua code called synchronously on this thread before the
    /// returned guard drops; the guard clears them.
    pub fn enter(
        session: Option<RawDownstream>,
        response: *mut ResponseHeader,
        ctx: *const crate::proxy::ctx::Ctx,
        phase: Phase,
    ) -> Current {
        SESSION.with(|s| s.set(session));
        CTX.with(|c| c.set(ctx));
        RESPONSE.with(|r| r.set(response));
        PHASE.with(|p| p.set(Some(phase)));
        Current
    }
}

impl Drop for Current {
    fn drop(&mut self) {
        SESSION.with(|s| s.set(None));
        RESPONSE.with(|r| r.set(std::ptr::null_mut()));
        CTX.with(|c| c.set(std::ptr::null()));
        PHASE.with(|p| p.set(None));
    }
}

fn with_ctx<R>(f: impl FnOnce(&crate::proxy::ctx::Ctx) -> R) -> mlua::Result<R> {
    phase()?;
    let p = CTX.with(|c| c.get());
    // SAFETY: non-null only while `Current` is alive (a synchronous hook call on this thread);
    // the proxy's request context outlives the call and is only read.
    match unsafe { p.as_ref() } {
        Some(c) => Ok(f(c)),
        None => Err(mlua::Error::runtime("req used outside of a hook")),
    }
}

/// A table of header name → value (several values of one name joined with ", ").
pub(crate) fn headers_table(lua: &Lua, map: &http::HeaderMap) -> mlua::Result<mlua::Table> {
    let t = lua.create_table()?;
    for (k, v) in map {
        let v = String::from_utf8_lossy(v.as_bytes());
        match t.raw_get::<Option<String>>(k.as_str())? {
            Some(prev) => t.raw_set(k.as_str(), format!("{prev}, {v}"))?,
            None => t.raw_set(k.as_str(), v.as_ref())?,
        }
    }
    Ok(t)
}

/// Rebuild a request URI from a path and a query (`None`: no query).
fn set_uri(s: &mut dyn Downstream, path: &str, query: Option<&str>) -> mlua::Result<()> {
    let pq = match query {
        Some(q) if !q.is_empty() => format!("{path}?{q}"),
        _ => path.to_string(),
    };
    let uri = http::Uri::builder()
        .path_and_query(pq.as_str())
        .build()
        .map_err(|_| mlua::Error::runtime(format!("invalid path or query {pq:?}")))?;
    s.req_mut().set_uri(uri);
    Ok(())
}

/// The answer a hook gave with `req:respond` / `req:redirect`, if any.
pub fn take_answer() -> Option<Answer> {
    ANSWER.with(|a| a.borrow_mut().take())
}

/// Fields set with `tidegate.log.set_field` during the last call.
pub fn take_fields() -> Vec<(String, String)> {
    FIELDS.with(|f| std::mem::take(&mut *f.borrow_mut()))
}

fn phase() -> mlua::Result<Phase> {
    PHASE
        .with(|p| p.get())
        .ok_or_else(|| mlua::Error::runtime("req/resp used outside of a hook"))
}

pub(crate) fn only_in(allowed: &[Phase], what: &str) -> mlua::Result<()> {
    let p = phase()?;
    if allowed.contains(&p) {
        Ok(())
    } else {
        Err(mlua::Error::runtime(format!(
            "{what} is not available in {}",
            p.name()
        )))
    }
}

fn with_session<R>(f: impl FnOnce(&dyn Downstream) -> R) -> mlua::Result<R> {
    phase()?;
    let p = SESSION.with(|s| s.get());
    // SAFETY: non-null only while `Current` is alive, during a synchronous hook call on this
    // thread, pointing at the session the proxy lent for that call.
    match p.and_then(|p| unsafe { p.as_ref() }) {
        Some(s) => Ok(f(s)),
        None => Err(mlua::Error::runtime("req used outside of a hook")),
    }
}

fn with_session_mut<R>(what: &str, f: impl FnOnce(&mut dyn Downstream) -> R) -> mlua::Result<R> {
    only_in(&[Phase::Request], what)?;
    let p = SESSION.with(|s| s.get());
    // SAFETY: as in `with_session`; the request phase lends the session mutably.
    match p.and_then(|p| unsafe { p.as_mut() }) {
        Some(s) => Ok(f(s)),
        None => Err(mlua::Error::runtime("req used outside of a hook")),
    }
}

fn with_response<R>(what: &str, f: impl FnOnce(&mut ResponseHeader) -> R) -> mlua::Result<R> {
    only_in(&[Phase::Response], what)?;
    let p = RESPONSE.with(|r| r.get());
    // SAFETY: non-null only during an `on_response` call, pointing at the header being sent.
    match unsafe { p.as_mut() } {
        Some(r) => Ok(f(r)),
        None => Err(mlua::Error::runtime("resp used outside of on_response")),
    }
}

/// The longest header value a script may set (a request or response header, or an outbound
/// call's): nginx's whole header buffer is 8 KiB by default, so this is generous, and it keeps
/// a script from sending megabytes of headers on.
pub(crate) const MAX_HEADER_VALUE: usize = 64 << 10;

pub(crate) fn header_value(s: &str) -> mlua::Result<http::HeaderValue> {
    if s.len() > MAX_HEADER_VALUE {
        return Err(mlua::Error::runtime(format!(
            "a header value is at most {MAX_HEADER_VALUE} bytes, not {}",
            s.len()
        )));
    }
    http::HeaderValue::from_str(s)
        .map_err(|_| mlua::Error::runtime(format!("invalid header value {s:?}")))
}

pub(crate) fn header_name(s: &str) -> mlua::Result<http::HeaderName> {
    // scripts use the same few names on every request: kept per thread, not parsed again
    thread_local! {
        static NAMES: std::cell::RefCell<crate::proxy::names::Names> = Default::default();
    }
    NAMES
        .with(|n| n.borrow_mut().get(s.as_bytes()))
        .ok_or_else(|| mlua::Error::runtime(format!("invalid header name {s:?}")))
}

/// A header's value as a Lua string, made without a protected call when the VM has room
/// (`headroom.rs`); `nil` when absent or not text.
fn header_text(
    lua: &mlua::Lua,
    headers: &http::HeaderMap,
    name: &str,
) -> mlua::Result<Option<mlua::String>> {
    text_string(lua, headers.get(name).map(|v| v.as_bytes()))
}

/// A field value as a Lua string (as [`header_text`]); `nil` when absent or not text.
fn text_string(lua: &mlua::Lua, value: Option<&[u8]>) -> mlua::Result<Option<mlua::String>> {
    match value.and_then(crate::proxy::exchange::text) {
        Some(v) => super::headroom::within(lua, v.len() + 64, || lua.create_string(v)).map(Some),
        None => Ok(None),
    }
}

/// `req`: the request.
pub struct Req;

impl UserData for Req {
    fn add_fields<F: UserDataFields<Self>>(fields: &mut F) {
        fields.add_field_method_get("method", |_, _| {
            with_session(|s| s.method().as_str().to_string())
        });
        fields.add_field_method_get("path", |_, _| with_session(|s| s.uri().path().to_string()));
        fields.add_field_method_get("query", |_, _| {
            with_session(|s| s.uri().query().map(str::to_string))
        });
        fields.add_field_method_get("host", |_, _| with_session(crate::proxy::route::host_of));
        // the client as `trusted_proxies` resolved it (the peer when it is not trusted)
        fields.add_field_method_get("client_ip", |_, _| {
            with_ctx(|c| c.client_ip.map(|ip| ip.to_string()))
        });
        // who an auth plugin let in (nil when none did)
        fields.add_field_method_get("user", |_, _| with_ctx(|c| c.plugin.user.clone()));
        fields.add_field_method_set("path", |_, _, path: String| {
            with_session_mut("setting req.path", |s| {
                let q = s.uri().query().map(str::to_string);
                set_uri(s, &path, q.as_deref())
            })?
        });
        fields.add_field_method_set("query", |_, _, query: Option<String>| {
            with_session_mut("setting req.query", |s| {
                let p = s.uri().path().to_string();
                set_uri(s, &p, query.as_deref())
            })?
        });
        fields.add_field_method_get("scheme", |_, _| with_ctx(|c| c.scheme()));
        fields.add_field_method_get("tls", |lua, _| {
            let info = with_ctx(|c| c.tls.clone())?;
            info.map(|t| super::tls_info::table(lua, &t)).transpose()
        });
        // `req:body()`: a Lua function that yields while the proxy reads the body
        fields.add_field_method_get("body", |lua, _| {
            lua.named_registry_value::<mlua::Function>(REQ_BODY)
        });
        fields.add_field_method_get("id", |_, _| with_ctx(|c| c.request_id.clone()));
        fields.add_field_method_get("trace_id", |_, _| {
            with_ctx(|c| c.otel.as_ref().map(|s| s.trace_id()))
        });
        fields.add_field_method_get("location", |_, _| {
            with_ctx(|c| c.location().map(|l| l.name.clone()))
        });
    }

    fn add_methods<M: UserDataMethods<Self>>(methods: &mut M) {
        methods.add_method("header", |lua, _, name: String| {
            // a name no field can have has no value
            let Ok(name) = header_name(&name) else {
                return Ok(None);
            };
            // read in place: the head's field map is not built for it (`engine/h1/req_head.rs`)
            with_session(|s| text_string(lua, s.header(&name)))?
        });
        methods.add_method("set_header", |_, _, (name, value): (String, String)| {
            let (n, v) = (header_name(&name)?, header_value(&value)?);
            with_session_mut("req:set_header", |s| {
                crate::proxy::fields::set_request(s.req_mut(), n, v, true)
            })?
            .map_err(|e| mlua::Error::runtime(e.to_string()))
        });
        methods.add_method("add_header", |_, _, (name, value): (String, String)| {
            let (n, v) = (header_name(&name)?, header_value(&value)?);
            with_session_mut("req:add_header", |s| {
                crate::proxy::fields::set_request(s.req_mut(), n, v, false)
            })?
            .map_err(|e| mlua::Error::runtime(e.to_string()))
        });
        methods.add_method("headers", |lua, _, ()| {
            let p = SESSION.with(|s| s.get());
            phase()?;
            // SAFETY: as in `with_session`; reading only.
            match p.and_then(|p| unsafe { p.as_ref() }) {
                Some(s) => headers_table(lua, &s.req().headers),
                None => Err(mlua::Error::runtime("req used outside of a hook")),
            }
        });
        methods.add_method("var", |_, _, name: String| {
            // a named capture of the location's regexes, else a built-in variable
            let (capture, scheme) = with_ctx(|c| {
                let capture = c
                    .route
                    .as_ref()
                    .and_then(|r| r.capture(&name))
                    .map(str::to_string)
                    .or_else(|| {
                        let t = crate::tls::conn::TlsVar::from_name(&name)?;
                        c.tls.as_ref()?.var(t).map(str::to_string)
                    });
                (capture, c.scheme())
            })?;
            if capture.is_some() {
                return Ok(capture);
            }
            with_session(|s| match name.as_str() {
                "host" => Some(crate::proxy::route::host_of(s)),
                "uri" => Some(s.uri().path().to_string()),
                "args" => s.uri().query().map(str::to_string),
                "request_uri" => s.uri().path_and_query().map(|p| p.as_str().to_string()),
                "method" => Some(s.method().as_str().to_string()),
                "scheme" => Some(scheme.to_string()),
                _ => None,
            })
        });
        methods.add_method("query_arg", |_, _, name: String| {
            with_session(|s| {
                s.req()
                    .uri
                    .query()
                    .and_then(|q| crate::routing::rules::query_arg(q, &name))
                    .map(str::to_string)
            })
        });
        methods.add_method(
            "set_query_arg",
            |_, _, (name, value): (String, Option<String>)| {
                with_session_mut("req:set_query_arg", |s| {
                    let path = s.uri().path().to_string();
                    let mut pairs: Vec<String> = s
                        .req()
                        .uri
                        .query()
                        .unwrap_or("")
                        .split('&')
                        .filter(|p| !p.is_empty() && p.split('=').next() != Some(name.as_str()))
                        .map(str::to_string)
                        .collect();
                    if let Some(v) = &value {
                        pairs.push(format!("{name}={v}"));
                    }
                    set_uri(s, &path, Some(&pairs.join("&")))
                })?
            },
        );
        methods.add_method("remove_header", |_, _, name: String| {
            with_session_mut("req:remove_header", |s| {
                s.req_mut().remove_header(name.as_str());
            })
        });
        methods.add_method(
            "respond",
            |lua, _, (status, body, headers): (u16, Option<mlua::Value>, Option<mlua::Table>)| {
                only_in(&[Phase::Request], "req:respond")?;
                if !(100..=999).contains(&status) {
                    return Err(mlua::Error::runtime(format!(
                        "{status} is not an HTTP status"
                    )));
                }
                let mut hs = Vec::new();
                let mut body_bytes = bytes::Bytes::new();
                match body {
                    Some(mlua::Value::String(s)) => {
                        body_bytes = bytes::Bytes::copy_from_slice(&s.as_bytes())
                    }
                    Some(mlua::Value::Table(t)) => {
                        let json =
                            super::marshal::to_json(lua, "req:respond", mlua::Value::Table(t))?;
                        body_bytes = bytes::Bytes::from(json.to_string());
                        hs.push((
                            http::header::CONTENT_TYPE,
                            http::HeaderValue::from_static("application/json"),
                        ));
                    }
                    Some(mlua::Value::Nil) | None => {}
                    Some(other) => {
                        return Err(mlua::Error::runtime(format!(
                            "respond: body must be a string or a table, not {}",
                            other.type_name()
                        )))
                    }
                }
                if let Some(t) = headers {
                    for pair in t.pairs::<String, String>() {
                        let (k, v) = pair?;
                        hs.push((header_name(&k)?, header_value(&v)?));
                    }
                }
                ANSWER.with(|a| {
                    *a.borrow_mut() = Some(Answer {
                        status,
                        headers: hs,
                        body: body_bytes,
                    });
                });
                Ok(())
            },
        );
        methods.add_method("redirect", |_, _, (url, status): (String, Option<u16>)| {
            only_in(&[Phase::Request], "req:redirect")?;
            let status = status.unwrap_or(302);
            let location = header_value(&url)?;
            ANSWER.with(|a| {
                *a.borrow_mut() = Some(Answer {
                    status,
                    headers: vec![(http::header::LOCATION, location)],
                    body: bytes::Bytes::new(),
                });
            });
            Ok(())
        });
    }
}

/// `resp`: the response going to the client.
pub struct Resp;

impl UserData for Resp {
    fn add_fields<F: UserDataFields<Self>>(fields: &mut F) {
        fields.add_field_method_get("status", |_, _| {
            let p = RESPONSE.with(|r| r.get());
            // SAFETY: see `with_response`; reading only.
            Ok(unsafe { p.as_ref() }.map(|r| r.status.as_u16()))
        });
        fields.add_field_method_set("status", |_, _, status: u16| {
            with_response("setting resp.status", |r| r.set_status(status))?
                .map_err(|e| mlua::Error::runtime(e.to_string()))
        });
    }

    fn add_methods<M: UserDataMethods<Self>>(methods: &mut M) {
        methods.add_method("header", |lua, _, name: String| {
            let p = RESPONSE.with(|r| r.get());
            // SAFETY: see `with_response`; reading only.
            match unsafe { p.as_ref() } {
                Some(r) => header_text(lua, &r.headers, &name),
                None => Ok(None),
            }
        });
        methods.add_method("set_header", |_, _, (name, value): (String, String)| {
            let (n, v) = (header_name(&name)?, header_value(&value)?);
            with_response("resp:set_header", |r| {
                crate::proxy::fields::set_response(r, n, v, true)
            })?
            .map_err(|e| mlua::Error::runtime(e.to_string()))
        });
        methods.add_method("remove_header", |_, _, name: String| {
            with_response("resp:remove_header", |r| {
                r.remove_header(name.as_str());
            })
        });
        methods.add_method("add_header", |_, _, (name, value): (String, String)| {
            let (n, v) = (header_name(&name)?, header_value(&value)?);
            with_response("resp:add_header", |r| {
                crate::proxy::fields::set_response(r, n, v, false)
            })?
            .map_err(|e| mlua::Error::runtime(e.to_string()))
        });
        methods.add_method("headers", |lua, _, ()| {
            let p = RESPONSE.with(|r| r.get());
            phase()?;
            // SAFETY: see `with_response`; reading only.
            match unsafe { p.as_ref() } {
                Some(r) => headers_table(lua, &r.headers),
                None => Ok(lua.create_table()?),
            }
        });
    }
}
