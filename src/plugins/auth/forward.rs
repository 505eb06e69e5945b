//! `forward_auth`: ask an auth service whether a request may go on.
//!
//! ```toml
//! [plugins.sso]
//! category = "forward_auth"
//! url = "http://127.0.0.1:9000/verify"        # called for every request (http or https)
//! request_headers = ["authorization", "cookie"]   # sent to the service (this is the default)
//! upstream_headers = ["x-user", "x-groups"]   # copied from its 2xx answer to the upstream request
//! user_header = "x-user"                      # optional: its header naming the user ($remote_user)
//! timeout = "2s"                              # default 5s
//! on_error = "deny"                           # default: 503 when the service fails; or "allow"
//! cache = "5s"                                # optional: remember verdicts this long
//! hide_credentials = true                     # default: request_headers are not sent upstream
//! ```
//!
//! The service gets the request's method, the chosen headers, and `X-Forwarded-Method`,
//! `X-Forwarded-Proto`, `X-Forwarded-Host`, `X-Forwarded-Uri` and `X-Forwarded-For`; no body.
//! A 2xx answer lets the request on; any other answer (a 401, a 302 to a login page) goes
//! back to the client as it is (status, headers, body). With `cache`, a verdict is kept per
//! method, host, URI and the values of `request_headers` (as a digest; at most 10,000).

use super::{Admit, Authenticator, Verdict};
use crate::config::units::parse_duration;
use crate::plugins::{Answer, PluginConfError, PluginError};
use crate::proxy::ctx::Ctx;
use crate::proxy::exchange::Downstream;
use crate::scripting::http_client::{send, Outbound};
use async_trait::async_trait;
use http::{HeaderName, HeaderValue};
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForwardConf {
    pub url: String,
    pub request_headers: Option<Vec<String>>,
    #[serde(default)]
    pub upstream_headers: Vec<String>,
    pub user_header: Option<String>,
    pub timeout: Option<String>,
    pub on_error: Option<String>,
    pub cache: Option<String>,
    #[serde(default = "crate::plugins::default_true")]
    pub hide_credentials: bool,
}

const CACHE_MAX: usize = 10_000;

type Verdicts = Mutex<HashMap<[u8; 32], (Instant, Cached)>>;

#[derive(Debug)]
pub struct ForwardAuth {
    url: String,
    request_headers: Vec<HeaderName>,
    upstream_headers: Vec<HeaderName>,
    user_header: Option<HeaderName>,
    timeout: Duration,
    allow_on_error: bool,
    hide: bool,
    /// how long a verdict is kept, and the verdicts by request digest
    cache: Option<(Duration, Verdicts)>,
}

#[derive(Debug, Clone)]
enum Cached {
    Pass(Vec<(HeaderName, HeaderValue)>, Option<String>),
    Refuse(Answer),
}

fn names(key: &str, list: &[String]) -> Result<Vec<HeaderName>, PluginConfError> {
    list.iter()
        .map(|h| {
            HeaderName::from_bytes(h.to_ascii_lowercase().as_bytes())
                .map_err(|_| PluginConfError::at(key, format!("`{h}` is not a header name")))
        })
        .collect()
}

impl ForwardAuth {
    pub fn new(c: ForwardConf) -> Result<ForwardAuth, PluginConfError> {
        Outbound::new(
            http::Method::GET,
            &c.url,
            Vec::new(),
            bytes::Bytes::new(),
            Duration::from_secs(1),
        )
        .map_err(|m| PluginConfError::at("url", m))?;
        let request_headers = match &c.request_headers {
            Some(l) => names("request_headers", l)?,
            None => vec![http::header::AUTHORIZATION, http::header::COOKIE],
        };
        let timeout = match c.timeout.as_deref() {
            Some(t) => parse_duration(t).map_err(|m| PluginConfError::at("timeout", m))?,
            None => Duration::from_secs(5),
        };
        if timeout.is_zero() {
            return Err(PluginConfError::at("timeout", "must be longer than zero"));
        }
        let allow_on_error = match c.on_error.as_deref() {
            None | Some("deny") => false,
            Some("allow") => true,
            Some(o) => {
                return Err(PluginConfError::at(
                    "on_error",
                    format!("unknown `{o}`; \"deny\" or \"allow\""),
                ))
            }
        };
        let cache = match c.cache.as_deref() {
            Some(t) => Some((
                parse_duration(t).map_err(|m| PluginConfError::at("cache", m))?,
                Mutex::new(HashMap::new()),
            )),
            None => None,
        };
        let user_header = match &c.user_header {
            Some(h) => Some(names("user_header", std::slice::from_ref(h))?.remove(0)),
            None => None,
        };
        Ok(ForwardAuth {
            url: c.url,
            request_headers,
            upstream_headers: names("upstream_headers", &c.upstream_headers)?,
            user_header,
            timeout,
            allow_on_error,
            hide: c.hide_credentials,
            cache,
        })
    }

    fn cache_key(&self, session: &dyn Downstream, ctx: &Ctx) -> [u8; 32] {
        let req = session.req();
        let mut d = ring::digest::Context::new(&ring::digest::SHA256);
        d.update(req.method.as_str().as_bytes());
        d.update(b"\0");
        d.update(ctx.host.as_bytes());
        d.update(b"\0");
        d.update(req.uri.to_string().as_bytes());
        for h in &self.request_headers {
            for v in req.headers.get_all(h) {
                d.update(b"\0");
                d.update(v.as_bytes());
            }
        }
        let mut out = [0u8; 32];
        out.copy_from_slice(d.finish().as_ref());
        out
    }

    fn cached(&self, key: &[u8; 32]) -> Option<Cached> {
        let (ttl, map) = self.cache.as_ref()?;
        let map = map.lock().unwrap_or_else(|p| p.into_inner());
        map.get(key)
            .filter(|(at, _)| at.elapsed() < *ttl)
            .map(|(_, c)| c.clone())
    }

    fn remember(&self, key: [u8; 32], c: &Cached) {
        let Some((ttl, map)) = self.cache.as_ref() else {
            return;
        };
        let mut map = map.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= CACHE_MAX {
            map.retain(|_, (at, _)| at.elapsed() < *ttl);
            if map.len() >= CACHE_MAX {
                map.clear();
            }
        }
        map.insert(key, (Instant::now(), c.clone()));
    }

    /// The request to the service.
    fn request(&self, session: &dyn Downstream, ctx: &Ctx) -> Result<Outbound, String> {
        let req = session.req();
        let mut headers: Vec<(HeaderName, HeaderValue)> = Vec::new();
        for h in &self.request_headers {
            for v in req.headers.get_all(h) {
                headers.push((h.clone(), v.clone()));
            }
        }
        let fwd = |n: &'static str, v: &str| {
            HeaderValue::from_str(v)
                .ok()
                .map(|v| (HeaderName::from_static(n), v))
        };
        let uri = req.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
        let client = ctx.client_ip.map(|ip| ip.to_string()).unwrap_or_default();
        headers.extend(
            [
                fwd("x-forwarded-method", req.method.as_str()),
                fwd("x-forwarded-proto", ctx.scheme()),
                fwd("x-forwarded-host", &ctx.host),
                fwd("x-forwarded-uri", uri),
                fwd("x-forwarded-for", &client),
            ]
            .into_iter()
            .flatten(),
        );
        Outbound::new(
            req.method.clone(),
            &self.url,
            headers,
            bytes::Bytes::new(),
            self.timeout,
        )
    }

    /// Ask the service.
    async fn ask(&self, out: Outbound) -> Result<Cached, String> {
        // the policy tidegate's own calls use (metrics pushes, OTLP): link-local denied
        let policy = crate::scripting::http_policy::HttpPolicy::default();
        let r = send(out, &policy).await?;
        if (200..300).contains(&r.status) {
            let copied = self
                .upstream_headers
                .iter()
                .flat_map(|h| {
                    r.headers
                        .get_all(h)
                        .iter()
                        .map(move |v| (h.clone(), v.clone()))
                })
                .collect();
            let user = self
                .user_header
                .as_ref()
                .and_then(|h| r.headers.get(h))
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            return Ok(Cached::Pass(copied, user));
        }
        let headers = r
            .headers
            .iter()
            .filter(|(k, _)| {
                // its framing is the answer's own; the rest ends at this hop
                *k != http::header::CONTENT_LENGTH && !crate::proxy::names::hop_by_hop(k)
            })
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        Ok(Cached::Refuse(Answer {
            status: r.status,
            headers,
            body: r.body,
        }))
    }
}

#[async_trait]
impl Authenticator for ForwardAuth {
    async fn authenticate(
        &self,
        session: &mut dyn Downstream,
        ctx: &mut Ctx,
    ) -> Result<Verdict, PluginError> {
        let key = self.cache.as_ref().map(|_| self.cache_key(&*session, ctx));
        let cached = key.as_ref().and_then(|k| self.cached(k));
        let verdict = match cached {
            Some(c) => c,
            None => match match self.request(&*session, ctx) {
                Ok(out) => self.ask(out).await,
                Err(e) => Err(e),
            } {
                Ok(c) => {
                    if let Some(k) = key {
                        self.remember(k, &c);
                    }
                    c
                }
                Err(e) => {
                    tracing::warn!(url = %self.url, allow = self.allow_on_error, "forward_auth: the auth service failed: {e}");
                    if self.allow_on_error {
                        Cached::Pass(Vec::new(), None)
                    } else {
                        Cached::Refuse(Answer {
                            status: 503,
                            headers: vec![(
                                http::header::CONTENT_TYPE,
                                HeaderValue::from_static("text/plain; charset=utf-8"),
                            )],
                            body: bytes::Bytes::from_static(
                                b"Authentication service unavailable\n",
                            ),
                        })
                    }
                }
            },
        };
        Ok(match verdict {
            Cached::Pass(headers, user) => Ok(Admit {
                user,
                headers,
                remove: self.upstream_headers.clone(),
            }),
            Cached::Refuse(a) => Err(a),
        })
    }

    /// The headers the service saw are the credentials: removed unless `hide_credentials =
    /// false` (an upstream that needs the session cookie too).
    fn hide(&self, session: &mut dyn Downstream) {
        if self.hide {
            for h in &self.request_headers {
                session.req_mut().remove_header(h);
            }
        }
    }
}

super::auth_plugin!(ForwardAuth);
