//! `cors`: Cross-Origin Resource Sharing. Preflights are answered here, without reaching the
//! upstream; actual responses get the headers a browser needs.
//!
//! ```toml
//! [plugins.cors]
//! category = "cors"
//! allow_origins = ["https://app.example.com", "*.example.org", "~^https://.*[.]dev$"]  # or ["*"]
//! allow_methods = ["GET", "POST"]         # default GET, HEAD, POST
//! allow_headers = ["content-type"]        # default none; ["*"] allows whatever is asked
//! expose_headers = ["x-request-id"]       # readable by the page
//! allow_credentials = true                # default false
//! max_age = "1h"                          # how long a browser keeps a preflight (default 10m)
//! ```
//!
//! Origins match the whole `Origin` value (`scheme://host[:port]`), case-blind: exact,
//! `*` wildcard, or `~regex`. The allowed origin is echoed (`*` only for `["*"]` without
//! credentials, which the spec forbids together). A preflight from an origin, method or
//! header not allowed gets 403. Responses carry `Vary: Origin` unless every origin gets `*`.

use super::restrict::patterns::Patterns;
use super::{Answer, Flow, Plugin, PluginConfError, PluginError};
use crate::config::units::parse_duration;
use crate::proxy::ctx::Ctx;
use crate::proxy::exchange::Downstream;
use async_trait::async_trait;
use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method};
use pingora::http::ResponseHeader;
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CorsConf {
    pub allow_origins: Vec<String>,
    pub allow_methods: Option<Vec<String>>,
    #[serde(default)]
    pub allow_headers: Vec<String>,
    #[serde(default)]
    pub expose_headers: Vec<String>,
    #[serde(default)]
    pub allow_credentials: bool,
    pub max_age: Option<String>,
}

#[derive(Debug)]
pub struct Cors {
    /// `None`: every origin
    origins: Option<Patterns>,
    methods: Vec<Method>,
    methods_text: HeaderValue,
    /// `None`: every requested header
    headers: Option<Vec<HeaderName>>,
    expose: Option<HeaderValue>,
    credentials: bool,
    max_age: HeaderValue,
}

fn joined<T: AsRef<str>>(key: &str, items: &[T]) -> Result<HeaderValue, PluginConfError> {
    let text = items
        .iter()
        .map(|i| i.as_ref())
        .collect::<Vec<_>>()
        .join(", ");
    HeaderValue::from_str(&text).map_err(|_| PluginConfError::at(key, "not valid header text"))
}

impl Cors {
    pub fn new(c: CorsConf) -> Result<Cors, PluginConfError> {
        if c.allow_origins.is_empty() {
            return Err(PluginConfError::at(
                "allow_origins",
                "list the origins, e.g. [\"https://app.example.com\"], or [\"*\"] for any",
            ));
        }
        let any = c.allow_origins.iter().any(|o| o == "*");
        if any && c.allow_origins.len() > 1 {
            return Err(PluginConfError::at(
                "allow_origins",
                "\"*\" allows every origin; list it alone",
            ));
        }
        let origins = (!any)
            .then(|| Patterns::new("allow_origins", &c.allow_origins, true))
            .transpose()?;
        let names = c
            .allow_methods
            .unwrap_or_else(|| vec!["GET".into(), "HEAD".into(), "POST".into()]);
        let methods = names
            .iter()
            .map(|m| {
                Method::from_bytes(m.to_ascii_uppercase().as_bytes()).map_err(|_| {
                    PluginConfError::at("allow_methods", format!("`{m}` is not a method"))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let headers = if c.allow_headers.iter().any(|h| h == "*") {
            None
        } else {
            Some(
                c.allow_headers
                    .iter()
                    .map(|h| {
                        HeaderName::from_bytes(h.to_ascii_lowercase().as_bytes()).map_err(|_| {
                            PluginConfError::at(
                                "allow_headers",
                                format!("`{h}` is not a header name"),
                            )
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()?,
            )
        };
        let max_age = match c.max_age.as_deref() {
            Some(t) => parse_duration(t).map_err(|m| PluginConfError::at("max_age", m))?,
            None => std::time::Duration::from_secs(600),
        };
        Ok(Cors {
            origins,
            methods_text: joined(
                "allow_methods",
                &methods.iter().map(|m| m.as_str()).collect::<Vec<_>>(),
            )?,
            methods,
            headers,
            expose: (!c.expose_headers.is_empty())
                .then(|| joined("expose_headers", &c.expose_headers))
                .transpose()?,
            credentials: c.allow_credentials,
            max_age: HeaderValue::from(max_age.as_secs()),
        })
    }

    /// The `Access-Control-Allow-Origin` value for `origin`, if it is allowed.
    fn allow_origin(&self, origin: &HeaderValue) -> Option<HeaderValue> {
        match &self.origins {
            None if !self.credentials => Some(HeaderValue::from_static("*")),
            None => Some(origin.clone()),
            Some(p) => origin
                .to_str()
                .ok()
                .filter(|o| p.matches(o))
                .map(|_| origin.clone()),
        }
    }

    fn varies(&self) -> bool {
        self.origins.is_some() || self.credentials
    }

    fn preflight(&self, session: &dyn Downstream) -> Answer {
        let req = session.req();
        let refuse = |why: &'static str| Answer {
            status: 403,
            headers: vec![
                (http::header::VARY, HeaderValue::from_static("Origin")),
                (
                    http::header::CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; charset=utf-8"),
                ),
            ],
            body: Bytes::from_static(why.as_bytes()),
        };
        let Some(allowed) = req
            .headers
            .get(http::header::ORIGIN)
            .and_then(|o| self.allow_origin(o))
        else {
            return refuse("CORS: origin not allowed\n");
        };
        let method_ok = req
            .headers
            .get(http::header::ACCESS_CONTROL_REQUEST_METHOD)
            .and_then(|m| Method::from_bytes(m.as_bytes()).ok())
            .is_some_and(|m| self.methods.contains(&m));
        if !method_ok {
            return refuse("CORS: method not allowed\n");
        }
        let asked = req
            .headers
            .get(http::header::ACCESS_CONTROL_REQUEST_HEADERS)
            .cloned();
        if let (Some(list), Some(a)) = (&self.headers, &asked) {
            let all_ok = a
                .to_str()
                .unwrap_or("")
                .split(',')
                .map(|h| h.trim().to_ascii_lowercase())
                .filter(|h| !h.is_empty())
                .all(|h| list.iter().any(|l| l.as_str() == h));
            if !all_ok {
                return refuse("CORS: header not allowed\n");
            }
        }
        let mut headers = vec![
            (http::header::ACCESS_CONTROL_ALLOW_ORIGIN, allowed),
            (
                http::header::ACCESS_CONTROL_ALLOW_METHODS,
                self.methods_text.clone(),
            ),
            (http::header::ACCESS_CONTROL_MAX_AGE, self.max_age.clone()),
            (
                http::header::VARY,
                HeaderValue::from_static(
                    "Origin, Access-Control-Request-Method, Access-Control-Request-Headers",
                ),
            ),
        ];
        if let Some(a) = asked.filter(|a| !a.is_empty()) {
            headers.push((http::header::ACCESS_CONTROL_ALLOW_HEADERS, a));
        }
        if self.credentials {
            headers.push((
                http::header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            ));
        }
        Answer {
            status: 204,
            headers,
            body: Bytes::new(),
        }
    }
}

#[async_trait]
impl Plugin for Cors {
    async fn on_request(
        &self,
        session: &mut dyn Downstream,
        _ctx: &mut Ctx,
    ) -> Result<Flow, PluginError> {
        let req = session.req();
        let is_preflight = req.method == Method::OPTIONS
            && req.headers.contains_key(http::header::ORIGIN)
            && req
                .headers
                .contains_key(http::header::ACCESS_CONTROL_REQUEST_METHOD);
        Ok(if is_preflight {
            Flow::Respond(self.preflight(&*session))
        } else {
            Flow::Continue
        })
    }

    fn on_response(
        &self,
        session: &dyn Downstream,
        resp: &mut ResponseHeader,
        _ctx: &mut Ctx,
    ) -> Result<(), PluginError> {
        let req = session.req();
        // a preflight answer already has its headers
        if resp
            .headers
            .contains_key(http::header::ACCESS_CONTROL_ALLOW_METHODS)
        {
            return Ok(());
        }
        if self.varies() {
            let _ = resp.append_header(http::header::VARY, "Origin");
        }
        let Some(allowed) = req
            .headers
            .get(http::header::ORIGIN)
            .and_then(|o| self.allow_origin(o))
        else {
            return Ok(());
        };
        let _ = resp.insert_header(http::header::ACCESS_CONTROL_ALLOW_ORIGIN, allowed);
        if self.credentials {
            let _ = resp.insert_header(http::header::ACCESS_CONTROL_ALLOW_CREDENTIALS, "true");
        }
        if let Some(e) = &self.expose {
            let _ = resp.insert_header(http::header::ACCESS_CONTROL_EXPOSE_HEADERS, e.clone());
        }
        Ok(())
    }
}
