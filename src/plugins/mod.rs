//! Plugins: the per-location chain, the phase trait, and the registry from `category` to
//! constructor.
//!
//! ```toml
//! [locations.api]
//! plugins = ["req-id", "pong", "headers"]   # run in this order
//!
//! [plugins.req-id]
//! category = "request_id"                  # the rest of the table is the plugin's own config
//! ```
//!
//! A plugin implements the phases it needs; the others default to doing nothing:
//!
//! - [`Plugin::on_request`] runs after routing, before an upstream is chosen. It may edit the
//!   request, or answer early with [`Flow::Respond`], which stops the chain and the proxying.
//! - [`Plugin::on_upstream`] runs once, before the balancer picks a peer: it may choose the
//!   upstream by name, a peer directly, or timeouts, in an [`UpstreamChoice`].
//! - [`Plugin::on_response`] runs on the response header before it goes to the client, the
//!   upstream's or an early answer's alike (so headers a plugin adds reach every response).
//! - [`Plugin::on_body`] runs on each chunk of the response body, and may replace it.
//! - [`Plugin::on_log`] runs after the response is sent; it cannot fail the request.
//!
//! Each plugin's own config is deserialized with unknown keys refused, so a typo names the key.

pub mod auth;
pub mod body_filter;
pub mod body_source;
pub mod cache;
pub mod compression;
pub mod cors;
pub mod csrf;
pub mod directory;
pub mod limit;
pub mod mock;
pub mod openresty;
pub mod ping;
pub mod redirect;
pub mod request_id;
pub mod request_parts;
pub mod response_headers;
pub mod restrict;
pub mod state;
pub mod stats;
pub mod sub_filter;
pub mod traffic_split;

use crate::proxy::ctx::Ctx;
use crate::proxy::exchange::Downstream;
use async_trait::async_trait;
use bytes::Bytes;
use pingora::http::ResponseHeader;
use serde::de::DeserializeOwned;
use std::sync::Arc;

/// What upstream-phase plugins decided; `None` everywhere keeps the location's choice.
#[derive(Debug, Clone, Default)]
pub struct UpstreamChoice {
    /// an upstream by name
    pub upstream: Option<String>,
    /// a peer directly: address, TLS, SNI
    pub peer: Option<(std::net::SocketAddr, bool, String)>,
    pub connect_timeout: Option<std::time::Duration>,
    pub read_timeout: Option<std::time::Duration>,
    pub write_timeout: Option<std::time::Duration>,
    /// the upstream the location would use, for scripts to read
    pub selected: Option<String>,
}

/// A response a plugin gives instead of proxying.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(http::HeaderName, http::HeaderValue)>,
    pub body: Bytes,
}

/// What the chain does after a plugin's `on_request`.
#[derive(Debug)]
pub enum Flow {
    Continue,
    Respond(Answer),
}

/// A plugin failed at request time; the request gets 500 and the error is logged.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    #[error("{plugin}: {message}")]
    Failed {
        plugin: &'static str,
        message: String,
    },
}

/// One phase-aware plugin instance, built once per config version.
#[async_trait]
pub trait Plugin: Send + Sync + std::fmt::Debug {
    /// Request phase, in location order. Return [`Flow::Respond`] to answer and stop.
    async fn on_request(
        &self,
        _session: &mut dyn Downstream,
        _ctx: &mut Ctx,
    ) -> Result<Flow, PluginError> {
        Ok(Flow::Continue)
    }

    /// Whether [`Plugin::on_upstream`] does anything: when no plugin of a location says so,
    /// the upstream phase is skipped (no choice is built, no hook future boxed). A plugin
    /// that implements `on_upstream` must return `true` (the Lua plugin: when its script has
    /// the hook).
    fn wants_upstream(&self) -> bool {
        false
    }

    /// Upstream phase: choose the upstream or the peer (before the balancer), set timeouts.
    async fn on_upstream(
        &self,
        _session: &mut dyn Downstream,
        _choice: &mut UpstreamChoice,
        _ctx: &mut Ctx,
    ) -> Result<(), PluginError> {
        Ok(())
    }

    /// Response phase: edit the status and headers going to the client.
    fn on_response(
        &self,
        _session: &dyn Downstream,
        _resp: &mut ResponseHeader,
        _ctx: &mut Ctx,
    ) -> Result<(), PluginError> {
        Ok(())
    }

    /// Body phase: each chunk of the response body on its way to the client (synchronous,
    /// as Pingora's body filter is). Replace `*body` to change it; `eof` marks the last call.
    fn on_body(
        &self,
        _session: &dyn Downstream,
        _body: &mut Option<Bytes>,
        _eof: bool,
        _ctx: &mut Ctx,
    ) -> Result<(), PluginError> {
        Ok(())
    }

    /// Body phase, read-only: each chunk of the response body as it passes, unchanged and
    /// with its framing kept (`cache` stores it). Called only when a plugin set
    /// `ctx.body_watched` in its response phase; `eof` marks the last call (with an empty
    /// chunk after a body that ended).
    fn on_body_seen(&self, _session: &dyn Downstream, _chunk: &[u8], _eof: bool, _ctx: &mut Ctx) {}

    /// The upstream failed (no answer: refused, reset, timed out) and the client would get
    /// the error page `code`: a plugin may answer instead (`cache`'s `stale-if-error`).
    fn on_error(&self, _session: &dyn Downstream, _ctx: &mut Ctx, _code: u16) -> Option<Answer> {
        None
    }

    /// Log phase, after the response is sent.
    fn on_log(&self, _session: &dyn Downstream, _ctx: &mut Ctx) {}

    /// This plugin as an authenticator, for `combined_auth`.
    fn authenticator(&self) -> Option<&dyn auth::Authenticator> {
        None
    }

    /// This plugin as a `limit`, for `tidegate.limit.take` to find it by name.
    fn limiter(&self) -> Option<&limit::Limit> {
        None
    }

    /// Files this plugin was built from (a Lua script): the config watch reloads when they change.
    fn watched_files(&self) -> Vec<std::path::PathBuf> {
        Vec::new()
    }
}

/// A plugin's config problem: which key (if known) and what is wrong.
#[derive(Debug, Clone)]
pub struct PluginConfError {
    pub key: Option<String>,
    pub message: String,
}

impl PluginConfError {
    pub fn at(key: &str, message: impl Into<String>) -> Self {
        PluginConfError {
            key: Some(key.to_string()),
            message: message.into(),
        }
    }
}

/// Every category this build knows.
pub const CATEGORIES: &[&str] = &[
    "ping",
    "mock",
    "request_id",
    "response_headers",
    "redirect",
    "limit",
    "basic_auth",
    "key_auth",
    "jwt",
    "combined_auth",
    "forward_auth",
    "ip_restriction",
    "referer_restriction",
    "ua_restriction",
    "cors",
    "csrf",
    "compression",
    "traffic_split",
    "stats",
    "sub_filter",
    "directory",
    "lua",
    "openresty",
    "cache",
];

/// What a plugin may need from the rest of the config while it is built.
#[derive(Debug, Clone, Default)]
pub struct BuildEnv {
    /// the plugin's name (`[plugins.NAME]`)
    pub name: String,
    pub lua: crate::scripting::LuaSettings,
    /// the plugins built before this one (`combined_auth` is built after all others)
    pub built: Vec<(String, Arc<dyn Plugin>)>,
    /// the names of the config's upstreams
    pub upstreams: Vec<String>,
}

/// Build a plugin of `category` from the rest of its table.
pub fn build(
    category: &str,
    conf: toml::Value,
    env: &BuildEnv,
) -> Result<Arc<dyn Plugin>, PluginConfError> {
    Ok(match category {
        "ping" => Arc::new(ping::Ping::new(typed(conf)?)),
        "mock" => Arc::new(mock::Mock::new(typed(conf)?)?),
        "request_id" => Arc::new(request_id::RequestId::new(typed(conf)?)?),
        "response_headers" => Arc::new(response_headers::ResponseHeaders::new(typed(conf)?)?),
        "redirect" => Arc::new(redirect::Redirect::new(typed(conf)?)?),
        "limit" => Arc::new(limit::Limit::new(typed(conf)?, &env.name)?),
        "basic_auth" => Arc::new(auth::basic::BasicAuth::new(typed(conf)?)?),
        "key_auth" => Arc::new(auth::key::KeyAuth::new(typed(conf)?)?),
        "jwt" => Arc::new(auth::jwt::Jwt::new(typed(conf)?)?),
        "forward_auth" => Arc::new(auth::forward::ForwardAuth::new(typed(conf)?)?),
        "ip_restriction" => Arc::new(restrict::ip::IpRestriction::new(typed(conf)?)?),
        "referer_restriction" => {
            Arc::new(restrict::referer::RefererRestriction::new(typed(conf)?)?)
        }
        "ua_restriction" => Arc::new(restrict::ua::UaRestriction::new(typed(conf)?)?),
        "cors" => Arc::new(cors::Cors::new(typed(conf)?)?),
        "compression" => Arc::new(compression::Compression::new(typed(conf)?)?),
        "stats" => Arc::new(stats::Stats::new(typed(conf)?)?),
        "directory" => Arc::new(directory::Directory::new(typed(conf)?)?),
        "sub_filter" => Arc::new(sub_filter::SubFilter::new(typed(conf)?)?),
        "traffic_split" => Arc::new(traffic_split::TrafficSplit::new(
            typed(conf)?,
            &env.upstreams,
        )?),
        "csrf" => Arc::new(csrf::Csrf::new(typed(conf)?)?),
        "combined_auth" => Arc::new(auth::combined::CombinedAuth::new(typed(conf)?, &env.built)?),
        "cache" => Arc::new(cache::Cache::new(typed(conf)?, &env.name)?),
        "openresty" => Arc::new(openresty::build(typed(conf)?, &env.name, &env.lua)?),
        "lua" => Arc::new(crate::scripting::LuaPlugin::new(
            typed(conf)?,
            &env.name,
            &env.lua,
        )?),
        other => {
            return Err(PluginConfError::at(
                "category",
                format!(
                    "unknown category `{other}`; one of {}",
                    CATEGORIES.join(", ")
                ),
            ))
        }
    })
}

/// `true`, for serde defaults of plugin keys that are on unless turned off.
pub fn default_true() -> bool {
    true
}

/// Deserialize a plugin's config, naming the failing key.
pub fn typed<T: DeserializeOwned>(conf: toml::Value) -> Result<T, PluginConfError> {
    serde_path_to_error::deserialize(conf).map_err(|e| {
        let path = e.path().to_string();
        let message = e.into_inner().to_string();
        let key = message
            .split("unknown field `")
            .nth(1)
            .and_then(|r| r.split('`').next())
            .map(str::to_string)
            .or_else(|| (path != ".").then_some(path));
        PluginConfError { key, message }
    })
}

/// Parse `NAME: VALUE` header lines for a plugin key.
pub fn header_pairs(
    key: &str,
    list: &[String],
) -> Result<Vec<(http::HeaderName, http::HeaderValue)>, PluginConfError> {
    list.iter()
        .map(|h| {
            let (n, v) = h
                .split_once(':')
                .ok_or_else(|| PluginConfError::at(key, format!("`{h}` must be `NAME: VALUE`")))?;
            let name = http::HeaderName::from_bytes(n.trim().as_bytes()).map_err(|_| {
                PluginConfError::at(key, format!("`{}` is not a header name", n.trim()))
            })?;
            let value = http::HeaderValue::from_str(v.trim()).map_err(|_| {
                PluginConfError::at(key, format!("`{}` is not a header value", v.trim()))
            })?;
            Ok((name, value))
        })
        .collect()
}
