//! The admin API on its own listener (`[admin]`): the process's state as JSON, a reload,
//! the metrics, and `explain` over HTTP.
//!
//! ```toml
//! [admin]
//! addr = "127.0.0.1:6189"
//! token = "a long random string"     # or TIDEGATE_ADMIN_TOKEN; required beyond loopback
//! ```
//!
//! | endpoint | answer |
//! | --- | --- |
//! | `GET /status` | version, uptime, config version, reloads and the last reload error |
//! | `GET /upstreams` | every peer: address, health, circuit, requests in flight |
//! | `GET /stats` | the `stats` plugin's document (requests by class, servers, peers) |
//! | `GET /metrics` | the Prometheus exposition |
//! | `GET /certificates` | each certificate: domains, expiry, serial, default, ACME or not; ACME names still waiting for one |
//! | `POST /reload` | reload the config now; 200 with the version, or 422 with the errors |
//! | `GET /reloads` | the last 50 reloads that applied or were rejected: when, why, version, error |
//! | `GET /config` | the config's documents; its version as the ETag |
//! | `POST /lua/check?name=NAME` | compile a Lua script (the body): ok, or the error and its line |
//! | `GET /lua/scripts`, `GET`/`PUT /lua/script?path=P` | the config's scripts, read and written (`scripts.rs`) |
//! | `PUT /config` | a whole new config (one file): checked, written, applied; `If-Match`, `?dry_run=1` |
//! | `GET`/`PUT`/`DELETE /config/TABLE/NAME` | one entry (`entries.rs`): JSON keys, checked, written where it lives, applied |
//! | `GET /explain?method=GET&url=...` | `tidegate explain` (`&header=Name:%20value`, `&client_ip=`, `&server=`) |
//!
//! With a token every request needs `Authorization: Bearer TOKEN` (compared in constant
//! time); without one the listener must be on loopback (`check` refuses otherwise).

pub mod config_api;
pub mod entries;
pub mod gate;
pub mod scripts;
pub mod session;
pub mod tls;
pub mod ui;

use crate::reload::Reloader;
use crate::state::Live;
use async_trait::async_trait;
use http::{Method, Response, StatusCode};
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;
use serde_json::{json, Value};
use std::sync::Arc;

pub struct AdminApp {
    pub live: Live,
    pub reloader: Arc<Reloader>,
    /// logged-in users of the web UI
    pub sessions: session::Sessions,
}

fn reply(status: StatusCode, body: Value) -> Response<Vec<u8>> {
    let text = serde_json::to_vec_pretty(&body).unwrap_or_default();
    let mut r = Response::new(text);
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    h.insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-store"),
    );
    r
}

fn query_args(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (
                crate::plugins::request_parts::decode(k).into_owned(),
                crate::plugins::request_parts::decode(v).into_owned(),
            )
        })
        .collect()
}

impl AdminApp {
    fn status(&self) -> Value {
        let state = self.live.load();
        json!({
            "version": env!("CARGO_PKG_VERSION"),
            "uptime_seconds": crate::plugins::stats::started().elapsed().as_secs(),
            "config_version": state.version,
            "config": self.reloader.source().describe(),
            "last_reload_error": self.reloader.last_error(),
            "last_reload": self.reloader.history().pop(),
        })
    }

    fn upstreams(&self) -> Value {
        let state = self.live.load();
        let mut out = serde_json::Map::new();
        for u in &state.upstreams {
            let peers: Vec<Value> = u
                .peers()
                .iter()
                .map(|p| {
                    json!({
                        "peer": p.addr.to_string(),
                        "up": p.is_healthy(),
                        "circuit_open": p.circuit_open(),
                        "in_flight": p.inflight(),
                        "recent_failures": p.failures(),
                    })
                })
                .collect();
            out.insert(u.name.clone(), Value::Array(peers));
        }
        Value::Object(out)
    }

    fn certificates(&self) -> Value {
        let state = self.live.load();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        let serving: Vec<Value> = state
            .config
            .certificates
            .iter()
            .map(|c| {
                json!({
                    "name": c.name,
                    "domains": c.domains,
                    "not_after": httpdate::fmt_http_date(
                        std::time::UNIX_EPOCH + std::time::Duration::from_secs(c.not_after.max(0) as u64)
                    ),
                    "days_left": (c.not_after - now) / 86_400,
                    "serial": c.serial,
                    "default": c.default,
                    "acme": c.acme,
                })
            })
            .collect();
        // ACME certificates with nothing issued yet
        let waiting: Vec<Value> = state
            .config
            .acme
            .iter()
            .filter(|a| !state.config.certificates.iter().any(|c| c.name == a.name))
            .map(|a| json!({"name": a.name, "domains": a.domains, "directory": a.directory}))
            .collect();
        json!({"serving": serving, "acme_pending": waiting})
    }

    pub(crate) async fn reload(&self) -> (StatusCode, Value) {
        let r = self.reloader.clone();
        match tokio::task::spawn_blocking(move || r.reload("admin API")).await {
            Ok(Ok(changed)) => (
                StatusCode::OK,
                json!({"applied": changed, "config_version": self.live.load().version}),
            ),
            Ok(Err(e)) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                json!({"applied": false, "error": e.to_string()}),
            ),
            Err(e) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                json!({"applied": false, "error": e.to_string()}),
            ),
        }
    }

    fn explain(&self, query: &str) -> (StatusCode, Value) {
        let args = query_args(query);
        let one = |k: &str| args.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        let asked = crate::explain::Asked {
            method: one("method").unwrap_or_else(|| "GET".into()),
            url: one("url").unwrap_or_default(),
            headers: args
                .iter()
                .filter(|(n, _)| n == "header")
                .map(|(_, v)| v.clone())
                .collect(),
            client_ip: one("client_ip"),
            server: one("server"),
        };
        match crate::explain::explain(self.live.load_full(), &asked) {
            // the command's text too, so the UI shows the very words `tidegate explain` prints
            Ok(mut v) => {
                v["text"] = json!(crate::explain::text(&v));
                (StatusCode::OK, v)
            }
            Err(e) => (StatusCode::BAD_REQUEST, json!({"error": e.to_string()})),
        }
    }
}

/// Compile a script as a Lua plugin's would be (source text only, Luau's compiler): ok, or
/// the error with the line it names.
pub(super) fn lua_check(name: &str, body: &[u8]) -> (StatusCode, Value) {
    let Ok(source) = std::str::from_utf8(body) else {
        return (
            StatusCode::BAD_REQUEST,
            json!({"ok": false, "error": "the script is not UTF-8"}),
        );
    };
    match crate::scripting::vm::compile_check(name, source) {
        Ok(()) => (StatusCode::OK, json!({"ok": true})),
        Err(e) => {
            // `syntax error: NAME:LINE: message`
            let at = format!("{name}:");
            let line = e
                .find(&at)
                .map(|i| &e[i + at.len()..])
                .and_then(|r| r.split(':').next())
                .and_then(|n| n.parse::<u64>().ok());
            (
                StatusCode::UNPROCESSABLE_ENTITY,
                json!({"ok": false, "error": e, "line": line}),
            )
        }
    }
}

#[async_trait]
impl ServeHttp for AdminApp {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let req = session.req_header().clone();
        let ip = session
            .client_addr()
            .and_then(|a| a.as_inet().map(|i| i.ip()));
        if req.method == Method::GET {
            if let Some(r) = ui::asset(req.uri.path()) {
                return r;
            }
        }
        if let Some(r) = self.session_endpoint(session, &req, ip).await {
            return r;
        }
        let caller = match self.caller(&req) {
            Ok(c) => c,
            Err(r) => return *r,
        };
        let path = req.uri.path();
        let who = caller.describe(ip);
        let if_match = req
            .headers
            .get(http::header::IF_MATCH)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let dry_run = query_args(req.uri.query().unwrap_or(""))
            .iter()
            .any(|(k, v)| k == "dry_run" && (v == "1" || v == "true"));
        if let Some(rest) = path.strip_prefix("/config/") {
            let method = req.method.clone();
            let rest = rest.to_string();
            let body = match read_body(session, 1 << 20).await {
                Ok(b) => b,
                Err(r) => return r,
            };
            let (s, v) = self
                .entry(&method, &rest, &body, if_match.as_deref(), dry_run, &who)
                .await;
            let mut r = reply(s, v);
            if method == Method::GET {
                let version = self.live.load().version;
                if let Ok(tag) = http::HeaderValue::from_str(&config_api::etag(version)) {
                    r.headers_mut().insert(http::header::ETAG, tag);
                }
            }
            return r;
        }
        match (&req.method, path) {
            (&Method::GET, "/status") => reply(StatusCode::OK, self.status()),
            (&Method::GET, "/upstreams") => reply(StatusCode::OK, self.upstreams()),
            (&Method::GET, "/stats") => reply(
                StatusCode::OK,
                crate::plugins::stats::document(&self.live.load()),
            ),
            (&Method::GET, "/certificates") => reply(StatusCode::OK, self.certificates()),
            (&Method::GET, "/reloads") => reply(
                StatusCode::OK,
                json!({"config_version": self.live.load().version, "reloads": self.reloader.history()}),
            ),
            (&Method::GET, "/metrics") => {
                let a = crate::observability::metrics::endpoint::answer();
                let mut r = Response::new(a.body.to_vec());
                for (k, v) in a.headers {
                    r.headers_mut().insert(k, v);
                }
                r
            }
            (&Method::POST, "/reload") => {
                let (s, v) = self.reload().await;
                reply(s, v)
            }
            (&Method::GET, "/config") => {
                let (s, v, version) = self.config_text();
                let mut r = reply(s, v);
                if let Ok(tag) = http::HeaderValue::from_str(&config_api::etag(version)) {
                    r.headers_mut().insert(http::header::ETAG, tag);
                }
                r
            }
            (&Method::PUT, "/config") => {
                // one byte over the limit tells put_config the body was too large
                let body = match read_body(session, (1 << 20) + 1).await {
                    Ok(b) => b,
                    Err(r) => return r,
                };
                let (s, v) = self
                    .put_config(&body, if_match.as_deref(), dry_run, &who)
                    .await;
                reply(s, v)
            }
            (&Method::GET, "/lua/scripts") => {
                let (s, v) = self.list_scripts();
                reply(s, v)
            }
            (&Method::GET, "/lua/script") => {
                let path = query_args(req.uri.query().unwrap_or(""))
                    .into_iter()
                    .find(|(k, _)| k == "path")
                    .map(|(_, v)| v)
                    .unwrap_or_default();
                let (s, v) = self.read_script(&path);
                reply(s, v)
            }
            (&Method::PUT, "/lua/script") => {
                let path = query_args(req.uri.query().unwrap_or(""))
                    .into_iter()
                    .find(|(k, _)| k == "path")
                    .map(|(_, v)| v)
                    .unwrap_or_default();
                let body = match read_body(session, 1 << 20).await {
                    Ok(b) => b,
                    Err(r) => return r,
                };
                let (s, v) = self.write_script(&path, &body, &who).await;
                reply(s, v)
            }
            (&Method::POST, "/lua/check") => {
                let mut body = Vec::new();
                while let Ok(Some(b)) = session.read_request_body().await {
                    if body.len() + b.len() > (1 << 20) {
                        return reply(
                            StatusCode::PAYLOAD_TOO_LARGE,
                            json!({"error": "a script is at most 1 MiB"}),
                        );
                    }
                    body.extend_from_slice(&b);
                }
                let name = query_args(req.uri.query().unwrap_or(""))
                    .into_iter()
                    .find(|(k, _)| k == "name")
                    .map(|(_, v)| v)
                    .unwrap_or_else(|| "script.lua".into());
                let (s, v) = lua_check(&name, &body);
                reply(s, v)
            }
            (&Method::GET, "/explain") => {
                let (s, v) = self.explain(req.uri.query().unwrap_or(""));
                reply(s, v)
            }
            (
                _,
                "/status" | "/upstreams" | "/stats" | "/metrics" | "/certificates" | "/reload"
                | "/reloads" | "/explain" | "/config" | "/lua/check" | "/lua/scripts"
                | "/lua/script",
            ) => reply(
                StatusCode::METHOD_NOT_ALLOWED,
                json!({"error": format!("{} is not allowed on {path}", req.method)}),
            ),
            _ => reply(
                StatusCode::NOT_FOUND,
                json!({"error": format!("no endpoint {path}"), "endpoints": ["/status", "/upstreams", "/stats", "/metrics", "/certificates", "/reload", "/reloads", "/config", "/config/TABLE/NAME", "/lua/check", "/explain", "/login", "/logout", "/session"]}),
            ),
        }
    }
}

/// The request body, up to `limit` bytes (cut there: the caller sees it is too large).
async fn read_body(
    session: &mut ServerSession,
    limit: usize,
) -> Result<Vec<u8>, Response<Vec<u8>>> {
    let mut body = Vec::new();
    loop {
        match session.read_request_body().await {
            Ok(Some(b)) => {
                let room = limit.saturating_sub(body.len());
                body.extend_from_slice(&b[..b.len().min(room)]);
                if body.len() >= limit {
                    return Ok(body);
                }
            }
            Ok(None) => return Ok(body),
            Err(e) => {
                return Err(reply(
                    StatusCode::BAD_REQUEST,
                    json!({"error": format!("reading the body: {e}")}),
                ))
            }
        }
    }
}
