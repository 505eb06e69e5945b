//! `tidegate explain [-c CONFIG] METHOD URL [-H 'Name: value']... [--client-ip IP] [--json]`:
//! what tidegate would do with a request, with no traffic.
//!
//! The config is loaded as `run` loads it (names resolved, scripts compiled) and the request
//! goes through the real routing, `trusted_proxies`, rewrite and upstream-header code of a
//! running proxy, on an offline stand-in for the client. It prints every location considered
//! and why the winner won (the same words as the per-request trace), the captures, the
//! rewritten URI, the plugin chain in order (listed, not run: plugins may answer, wait or
//! change the request), the upstream and the peer its balancer would pick first, and the
//! headers that would go upstream.

use crate::proxy::ctx::Ctx;
use crate::proxy::exchange::{Downstream, Standin};
use crate::state::State;
use pingora::http::RequestHeader;
use serde_json::{json, Value};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

/// A problem with the command's arguments.
#[derive(Debug, thiserror::Error)]
pub enum ExplainError {
    #[error("`{0}` is not an absolute http(s) URL (e.g. http://api.example.com/v1/items?x=1)")]
    Url(String),
    #[error("`{0}` is not an HTTP method")]
    Method(String),
    #[error("-H `{0}`: write it as `Name: value`")]
    Header(String),
    #[error("--client-ip `{0}` is not an IP address")]
    ClientIp(String),
    #[error("no server named `{0}`; the config has {1}")]
    Server(String, String),
    #[error("the config has no server")]
    NoServer,
    #[error("{0}")]
    Start(String),
}

/// The request as the command line describes it.
pub struct Asked {
    pub method: String,
    pub url: String,
    pub headers: Vec<String>,
    pub client_ip: Option<String>,
    pub server: Option<String>,
}

fn request(a: &Asked) -> Result<(RequestHeader, Option<u16>), ExplainError> {
    let uri: http::Uri = a
        .url
        .parse()
        .map_err(|_| ExplainError::Url(a.url.clone()))?;
    let (Some(scheme), Some(host)) = (uri.scheme_str(), uri.host()) else {
        return Err(ExplainError::Url(a.url.clone()));
    };
    if scheme != "http" && scheme != "https" {
        return Err(ExplainError::Url(a.url.clone()));
    }
    let method = http::Method::from_bytes(a.method.to_ascii_uppercase().as_bytes())
        .map_err(|_| ExplainError::Method(a.method.clone()))?;
    let pq = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let mut req = RequestHeader::build(method, pq.as_bytes(), None)
        .map_err(|e| ExplainError::Start(e.to_string()))?;
    let host_header = match uri.port_u16() {
        Some(p) => format!("{host}:{p}"),
        None => host.to_string(),
    };
    req.insert_header(http::header::HOST, host_header)
        .map_err(|_| ExplainError::Url(a.url.clone()))?;
    for h in &a.headers {
        let (n, v) = h
            .split_once(':')
            .ok_or_else(|| ExplainError::Header(h.clone()))?;
        let name = http::HeaderName::from_bytes(n.trim().as_bytes())
            .map_err(|_| ExplainError::Header(h.clone()))?;
        req.append_header(name, v.trim())
            .map_err(|_| ExplainError::Header(h.clone()))?;
    }
    let port = uri
        .port_u16()
        .or(Some(if scheme == "https" { 443 } else { 80 }));
    Ok((req, port))
}

/// The server that would take the request: `--server`, else the one listening on the URL's
/// port, else the first.
fn server_index(state: &State, a: &Asked, port: Option<u16>) -> Result<usize, ExplainError> {
    let servers = &state.config.servers;
    if servers.is_empty() {
        return Err(ExplainError::NoServer);
    }
    if let Some(name) = &a.server {
        let names: Vec<&str> = servers.iter().map(|s| s.name.as_str()).collect();
        return servers
            .iter()
            .position(|s| &s.name == name)
            .ok_or_else(|| ExplainError::Server(name.clone(), names.join(", ")));
    }
    Ok(servers
        .iter()
        .position(|s| s.addrs.iter().any(|a| Some(a.port()) == port))
        .unwrap_or(0))
}

/// Explain the request `a` against the config's state: the report as JSON.
pub fn explain(state: Arc<State>, a: &Asked) -> Result<Value, ExplainError> {
    let (req, port) = request(a)?;
    let ip: IpAddr = match &a.client_ip {
        Some(s) => s.parse().map_err(|_| ExplainError::ClientIp(s.clone()))?,
        None => IpAddr::from([127, 0, 0, 1]),
    };
    let server = server_index(&state, a, port)?;
    let mut session = Standin::new(req, SocketAddr::new(ip, 40000), None);
    let mut ctx = Ctx::new(state.clone(), server);
    let matched = crate::proxy::route::route(&mut session, &mut ctx);
    crate::proxy::forwarded::identify(&session, &mut ctx);
    let names = &state.config.locations;
    let name = |i: usize| names.get(i).map_or("?", |l| l.name.as_str());
    let req = session.req();
    let header = |n: &str| req.headers.get(n).and_then(|v| v.to_str().ok());
    let input = crate::routing::RouteInput {
        host: &ctx.host,
        path: req.uri.path(),
        query: req.uri.query().unwrap_or(""),
        header: &header,
    };
    let considered: Vec<Value> = state.servers[server]
        .router
        .explain(&input)
        .iter()
        .map(|c| json!({"location": name(c.location), "matched": c.matched, "why": c.why}))
        .collect();
    let mut out = json!({
        "server": state.config.servers[server].name,
        "host": ctx.host,
        "client_ip": ctx.client_ip.map(|i| i.to_string()),
        "considered": considered,
    });
    if !matched {
        out["location"] = Value::Null;
        return Ok(out);
    }
    let Some(loc) = ctx.location() else {
        return Ok(out);
    };
    out["location"] = json!(loc.name);
    out["captures"] = ctx
        .route
        .as_ref()
        .map(|r| {
            r.captures
                .iter()
                .map(|(k, v)| (k.to_string(), json!(v)))
                .collect::<serde_json::Map<_, _>>()
        })
        .map(Value::Object)
        .unwrap_or(Value::Null);
    out["plugins"] = json!(loc
        .plugins
        .iter()
        .filter_map(|i| state.config.plugins.get(*i))
        .map(|p| json!({"name": p.name, "category": p.category}))
        .collect::<Vec<_>>());
    let upstream = crate::proxy::upstream::location_upstream(&session, &ctx);
    let mut up_req = session.req().clone();
    if let Err(e) = crate::proxy::upstream::prepare_request(&session, &ctx, &mut up_req, true) {
        return Err(ExplainError::Start(format!(
            "preparing the upstream request: {e}"
        )));
    }
    out["upstream_uri"] = json!(up_req
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/"));
    let mut headers: Vec<Value> = Vec::new();
    for (k, v) in up_req.headers.iter() {
        headers.push(json!([k.as_str(), String::from_utf8_lossy(v.as_bytes())]));
    }
    out["upstream_headers"] = Value::Array(headers);
    out["upstream"] = match upstream {
        None => Value::Null,
        Some(up) => {
            let key = crate::proxy::upstream::hash_key(&session, &ctx, &up.algo);
            let first = up.select(key.as_deref(), &[]);
            json!({
                "name": up.name,
                "discovery": up.conf.discovery.kind(),
                "first_peer": first.map(|p| p.addr.to_string()),
                "peers": up.peers().iter().map(|p| json!({"addr": p.addr.to_string(), "up": p.is_healthy()})).collect::<Vec<_>>(),
            })
        }
    };
    Ok(out)
}

/// The report as text, for people.
pub fn text(v: &Value) -> String {
    use std::fmt::Write;
    let s = |v: &Value| {
        v.as_str()
            .map(str::to_string)
            .unwrap_or_else(|| v.to_string())
    };
    let mut out = String::new();
    let _ = writeln!(
        out,
        "server {} (host `{}`, client {})",
        s(&v["server"]),
        s(&v["host"]),
        s(&v["client_ip"])
    );
    match v["location"].as_str() {
        Some(l) => {
            let _ = writeln!(out, "location {l}");
        }
        None => {
            let _ = writeln!(out, "no location matched: the request would get 404");
        }
    }
    let _ = writeln!(out, "considered, best first:");
    for c in v["considered"].as_array().into_iter().flatten() {
        let mark = if c["matched"] == true {
            "matched"
        } else {
            "no match"
        };
        let _ = writeln!(
            out,
            "  {:<20} {:<9} {}",
            s(&c["location"]),
            mark,
            s(&c["why"])
        );
    }
    if v["location"].is_null() {
        return out;
    }
    if let Some(caps) = v["captures"].as_object().filter(|c| !c.is_empty()) {
        let list: Vec<String> = caps
            .iter()
            .map(|(k, x)| format!("${k} = {}", s(x)))
            .collect();
        let _ = writeln!(out, "captures: {}", list.join(", "));
    }
    let plugins: Vec<String> = v["plugins"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| format!("{} ({})", s(&p["name"]), s(&p["category"])))
        .collect();
    let _ = writeln!(
        out,
        "plugins, in order (listed, not run): {}",
        if plugins.is_empty() {
            "none".to_string()
        } else {
            plugins.join(" -> ")
        }
    );
    match v["upstream"].as_object() {
        None => {
            let _ = writeln!(out, "upstream: none (a plugin must answer or choose one)");
        }
        Some(u) if u["discovery"] != "static" => {
            let _ = writeln!(
                out,
                "upstream {}: peers by {} discovery, found at run time",
                s(&u["name"]),
                s(&u["discovery"])
            );
        }
        Some(u) => {
            let _ = writeln!(
                out,
                "upstream {}: first pick {}",
                s(&u["name"]),
                u.get("first_peer").map(s).unwrap_or_default()
            );
        }
    }
    let _ = writeln!(out, "upstream request: {}", s(&v["upstream_uri"]));
    for h in v["upstream_headers"].as_array().into_iter().flatten() {
        let _ = writeln!(out, "  {}: {}", s(&h[0]), s(&h[1]));
    }
    out
}
