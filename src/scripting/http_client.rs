//! `tidegate.http.request{...}`: an outbound HTTP call from `on_request` or `on_upstream`.
//!
//! ```lua
//! local res, err = tidegate.http.request{
//!   method = "POST",                       -- default GET
//!   url = "http://127.0.0.1:9000/check",   -- http or https
//!   headers = { authorization = req:header("authorization") },
//!   body = "...",                          -- optional string
//!   timeout = 2,                           -- seconds or "500ms"; default 5 s, for the whole call
//!   max_body = 1048576,                    -- response bytes kept; default 1 MiB
//! }
//! if not res then return req:respond(502, err) end
//! -- res.status, res.headers (lower-case names), res.body
//! ```
//!
//! The hook's coroutine yields while the call is made, so the worker keeps serving other
//! requests; the time budget applies to the Lua code only, not to the wait. The call uses
//! Pingora's connector (the same TLS stack and a shared keep-alive pool).

use super::http_policy::HttpPolicy;
use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method, Uri};
use pingora::connectors::http::Connector;
use pingora::http::RequestHeader;
use pingora::upstreams::peer::HttpPeer;
use std::sync::OnceLock;
use std::time::Duration;

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
const DEFAULT_MAX_BODY: usize = 1 << 20;
const MAX_TIMEOUT: Duration = Duration::from_secs(3600);

/// A validated outbound request, waiting for the proxy to send it.
#[derive(Debug)]
pub struct Outbound {
    method: Method,
    uri: Uri,
    tls: bool,
    host: String,
    port: u16,
    headers: Vec<(HeaderName, HeaderValue)>,
    /// a `Host` the script gave: it replaces the one made from the URL
    host_header: Option<HeaderValue>,
    body: Bytes,
    timeout: Duration,
    max_body: usize,
}

/// What came back.
#[derive(Debug)]
pub struct Inbound {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

fn bad(m: impl Into<String>) -> mlua::Error {
    mlua::Error::runtime(format!("tidegate.http.request: {}", m.into()))
}

/// An http(s) URL: the URI, TLS or not, host and port.
type Target = (Uri, bool, String, u16);

fn target(url: &str) -> Result<Target, String> {
    let uri: Uri = url.parse().map_err(|e| format!("bad url {url:?}: {e}"))?;
    let tls = match uri.scheme_str() {
        Some("http") => false,
        Some("https") => true,
        _ => return Err(format!("url {url:?} must start with http:// or https://")),
    };
    let host = uri
        .host()
        .ok_or_else(|| format!("url {url:?} has no host"))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
    Ok((uri, tls, host, port))
}

impl Outbound {
    /// A request tidegate makes itself (the Pushgateway push): no script involved.
    pub fn new(
        method: Method,
        url: &str,
        headers: Vec<(HeaderName, HeaderValue)>,
        body: Bytes,
        timeout: Duration,
    ) -> Result<Outbound, String> {
        Ok(Outbound::at(target(url)?, method, headers, body, timeout))
    }

    fn at(
        (uri, tls, host, port): Target,
        method: Method,
        headers: Vec<(HeaderName, HeaderValue)>,
        body: Bytes,
        timeout: Duration,
    ) -> Outbound {
        Outbound {
            method,
            uri,
            tls,
            host,
            port,
            headers,
            host_header: None,
            body,
            timeout,
            max_body: DEFAULT_MAX_BODY,
        }
    }

    /// Read and check the Lua argument table.
    pub fn from_lua(lua: &mlua::Lua, t: &mlua::Table) -> mlua::Result<Outbound> {
        let url: String = t
            .get::<Option<String>>("url")?
            .ok_or_else(|| bad("`url` is required"))?;
        let at = target(&url).map_err(bad)?;
        let method = match t.get::<Option<String>>("method")? {
            None => Method::GET,
            Some(m) => Method::from_bytes(m.to_ascii_uppercase().as_bytes())
                .map_err(|_| bad(format!("bad method {m:?}")))?,
        };
        let mut headers = Vec::new();
        let mut host_header = None;
        if let Some(h) = t.get::<Option<mlua::Table>>("headers")? {
            for pair in h.pairs::<String, String>() {
                let (k, v) = pair?;
                let name = HeaderName::from_bytes(k.as_bytes())
                    .map_err(|_| bad(format!("bad header name {k:?}")))?;
                let value =
                    super::api::header_value(&v).map_err(|e| bad(format!("header {k}: {e}")))?;
                // the framing is tidegate's to set from `body`: a script's own length or
                // encoding would let it smuggle a second request to the service
                if name == http::header::CONTENT_LENGTH || name == http::header::TRANSFER_ENCODING {
                    return Err(bad(format!(
                        "the {name} header is set from `body`; do not give it"
                    )));
                }
                if name == http::header::HOST {
                    host_header = Some(value);
                } else {
                    headers.push((name, value));
                }
            }
        }
        let body = match t.get::<Option<mlua::String>>("body")? {
            Some(b) => Bytes::copy_from_slice(&b.as_bytes()),
            None => Bytes::new(),
        };
        let timeout = super::api::duration(&t.get::<mlua::Value>("timeout")?)
            .map_err(|e| bad(format!("timeout: {e}")))?
            .unwrap_or(DEFAULT_TIMEOUT);
        if timeout.is_zero() || timeout > MAX_TIMEOUT {
            return Err(bad(format!(
                "timeout must be above zero and at most {MAX_TIMEOUT:?}"
            )));
        }
        let limit = lua
            .app_data_ref::<super::vm::MemoryLimit>()
            .map(|m| m.0)
            .unwrap_or(DEFAULT_MAX_BODY);
        let max_body = match t.get::<mlua::Value>("max_body")? {
            mlua::Value::Nil => DEFAULT_MAX_BODY.min(limit),
            mlua::Value::Integer(n) if n >= 0 && (n as u64) <= limit as u64 => n as usize,
            mlua::Value::Number(n) if n >= 0.0 && n <= limit as f64 && n.fract() == 0.0 => {
                n as usize
            }
            other => {
                return Err(bad(format!(
                    "max_body must be a whole number of bytes from 0 to the VM's memory limit \
                     ({limit}), not {}",
                    other
                        .to_string()
                        .unwrap_or_else(|_| other.type_name().to_string())
                )))
            }
        };
        Ok(Outbound {
            host_header,
            max_body,
            ..Outbound::at(at, method, headers, body, timeout)
        })
    }
}

fn connector() -> &'static Connector {
    static C: OnceLock<Connector> = OnceLock::new();
    C.get_or_init(|| Connector::new(None))
}

/// Send `o` and read the answer, all within its timeout. The error is a short sentence for
/// the script (`nil, err`).
pub async fn send(o: Outbound, policy: &HttpPolicy) -> Result<Inbound, String> {
    let timeout = o.timeout;
    match tokio::time::timeout(timeout, exchange(o, policy)).await {
        Ok(r) => r,
        Err(_) => Err(format!("timed out after {timeout:?}")),
    }
}

async fn exchange(o: Outbound, policy: &HttpPolicy) -> Result<Inbound, String> {
    if crate::testing::mock::active() {
        return crate::testing::mock::answer(crate::testing::mock::Call {
            method: o.method.to_string(),
            url: o.uri.to_string(),
            headers: o
                .headers
                .iter()
                .map(|(k, v)| {
                    (
                        k.to_string(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect(),
            body: o.body.clone(),
        });
    }
    let addr = match o.host.parse::<std::net::IpAddr>() {
        Ok(ip) => std::net::SocketAddr::new(ip, o.port),
        Err(_) => tokio::net::lookup_host((o.host.as_str(), o.port))
            .await
            .map_err(|e| format!("cannot resolve {}: {e}", o.host))?
            .next()
            .ok_or_else(|| format!("{} has no address", o.host))?,
    };
    policy.check(addr.ip())?;
    let mut peer = HttpPeer::new(addr, o.tls, o.host.clone());
    peer.options.connection_timeout = Some(o.timeout);
    peer.options.read_timeout = Some(o.timeout);
    peer.options.write_timeout = Some(o.timeout);
    let (mut session, _reused) = connector()
        .get_http_session(&peer)
        .await
        .map_err(|e| format!("connect to {addr}: {}", e.etype().as_str()))?;
    let path = o
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/")
        .to_string();
    let mut req = RequestHeader::build(o.method.clone(), path.as_bytes(), None)
        .map_err(|e| format!("bad request: {e}"))?;
    let host = match (o.tls, o.port) {
        (false, 80) | (true, 443) => o.host.clone(),
        _ => format!("{}:{}", o.host, o.port),
    };
    match o.host_header {
        Some(h) => {
            let _ = req.insert_header(http::header::HOST, h);
        }
        None => {
            let _ = req.insert_header(http::header::HOST, host);
        }
    }
    for (k, v) in o.headers {
        req.append_header(k, v)
            .map_err(|e| format!("bad header: {e}"))?;
    }
    if !o.body.is_empty() || matches!(o.method, Method::POST | Method::PUT | Method::PATCH) {
        let _ = req.insert_header(http::header::CONTENT_LENGTH, o.body.len());
    }
    let io = |e: Box<pingora::Error>| e.etype().as_str().to_string();
    session
        .write_request_header(Box::new(req))
        .await
        .map_err(io)?;
    if !o.body.is_empty() {
        session.write_request_body(o.body, true).await.map_err(io)?;
    }
    session.finish_request_body().await.map_err(io)?;
    session.read_response_header().await.map_err(io)?;
    let (status, headers) = match session.response_header() {
        Some(h) => (h.status.as_u16(), h.headers.clone()),
        None => return Err("no response header".into()),
    };
    let mut body = bytes::BytesMut::new();
    while let Some(chunk) = session.read_response_body().await.map_err(io)? {
        if body.len() + chunk.len() > o.max_body {
            return Err(format!("response body larger than {} bytes", o.max_body));
        }
        body.extend_from_slice(&chunk);
    }
    if session.response_done() {
        connector()
            .release_http_session(session, &peer, Some(Duration::from_secs(60)))
            .await;
    }
    Ok(Inbound {
        status,
        headers,
        body: body.freeze(),
    })
}

/// `res` as a Lua table: `status`, `headers` (joined with ", " when repeated), `body`.
pub fn to_lua(lua: &mlua::Lua, r: &Inbound) -> mlua::Result<mlua::Table> {
    let t = lua.create_table()?;
    t.set("status", r.status)?;
    t.set("headers", super::api::headers_table(lua, &r.headers)?)?;
    t.set("body", lua.create_string(&r.body)?)?;
    Ok(t)
}

/// `tidegate.http`: `request` checks its argument here (in Rust), then yields from Lua.
pub fn register(lua: &mlua::Lua, tidegate: &mlua::Table) -> mlua::Result<()> {
    let request = super::wait::yielding(lua, "tidegate.http.request", |lua, t: mlua::Table| {
        super::api::only_in(
            &[super::api::Phase::Request, super::api::Phase::Upstream],
            "tidegate.http.request",
        )?;
        Ok(super::wait::Wait::Http(Box::new(Outbound::from_lua(
            lua, &t,
        )?)))
    })?;
    let http = lua.create_table()?;
    http.set("request", request)?;
    tidegate.set("http", http)?;
    Ok(())
}
