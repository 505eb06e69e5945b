//! The typed configuration: what `validate.rs` produces and the proxy reads.
//!
//! Everything here is already checked: addresses are `SocketAddr`s, durations are
//! `Duration`s, regexes are compiled, and references between tables are indices.

use crate::observability::access_log::LogFormat;
use crate::plugins::Plugin;
use crate::routing::rewrite::Rewrite;
use crate::routing::rules::{Condition, HostRule, PathRule};
use crate::routing::vars::{HeaderTemplate, Template};
use crate::upstream::UpstreamConf;
use ipnet::IpNet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// One complete, valid configuration.
#[derive(Debug)]
pub struct Config {
    /// the admin listener's TLS settings (`[admin] tls = true`)
    pub admin_tls: Option<std::sync::Arc<crate::tls::TlsServer>>,
    pub basic: Basic,
    pub servers: Vec<Server>,
    pub locations: Vec<Location>,
    pub upstreams: Vec<UpstreamConf>,
    pub plugins: Vec<PluginDef>,
    pub lua: crate::scripting::LuaSettings,
    /// the certificates that serve: given ones, and ACME ones already issued
    pub certificates: Vec<crate::tls::certs::Certificate>,
    /// the certificates tidegate orders and renews itself
    pub acme: Vec<crate::tls::acme::AcmeCert>,
    /// `[storage]`
    pub storage: crate::tls::acme::storage::Storage,
    /// `[admin]`: the admin API (`None`: off)
    pub admin: Option<Admin>,
    /// problems that do not stop the config (a certificate about to expire): `check` prints
    /// them, a load or reload logs them
    pub warnings: Vec<crate::error::ConfigError>,
}

/// `[admin]`
#[derive(Debug, Clone, PartialEq)]
pub struct Admin {
    pub addr: SocketAddr,
    /// the bearer token every request needs (`None`: only on loopback, open)
    pub token: Option<String>,
    /// the web UI's user and its password hash (bcrypt or argon2)
    pub user: Option<(String, String)>,
    /// `tls = true`: HTTPS with the servers' certificates
    pub tls: bool,
}

/// `[basic]`
#[derive(Debug, Clone, PartialEq)]
pub struct Basic {
    pub threads: usize,
    pub log_level: String,
    pub grace_period: Duration,
    pub graceful_shutdown_timeout: Duration,
    pub pid_file: Option<String>,
    pub upgrade_sock: Option<String>,
    pub error_log: Option<String>,
    pub work_stealing: bool,
    pub upstream_keepalive_pool_size: usize,
    /// reload when the config files change (SIGHUP works either way)
    pub watch: bool,
    /// `error_template`: the page of every error tidegate answers
    pub error_page: crate::proxy::error_page::ErrorPage,
    /// `metrics_buckets`: the duration histograms' buckets, in seconds
    pub metrics_buckets: Vec<f64>,
    /// `trace_token`: the secret that turns the per-request trace on
    pub trace_token: Option<String>,
    /// `otlp`: OpenTelemetry export
    pub otlp: Option<crate::observability::otel::OtlpConf>,
    /// `resolver`: the DNS server of DNS discovery (`None`: the system's)
    pub resolver: Option<std::net::SocketAddr>,
    /// `docker_host`: the Docker engine of Docker discovery
    pub docker_host: String,
}

/// `[servers.NAME] engine`: the data path for HTTP/1 connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// the own HTTP/1 loop (`engine/h1/`); requests it does not serve go to Pingora's
    Native,
    /// Pingora's HTTP/1 proxy for every request
    Pingora,
}

/// `[servers.NAME]`
#[derive(Debug, Clone)]
pub struct Server {
    pub name: String,
    pub addrs: Vec<SocketAddr>,
    pub locations: Vec<usize>,
    pub http2: bool,
    /// which data path serves its HTTP/1 connections
    pub engine: Engine,
    pub access_log: Option<LogFormat>,
    pub access_log_path: Option<String>,
    pub trusted_proxies: Vec<IpNet>,
    /// set X-Forwarded-For, X-Real-IP and X-Forwarded-Proto on upstream requests
    pub forwarded_headers: bool,
    pub max_header_size: usize,
    pub max_uri_size: usize,
    pub header_timeout: Duration,
    pub body_timeout: Duration,
    pub keepalive_timeout: Duration,
    /// `tls = true`: the handshake settings and certificates (built with the config, so a
    /// reload applies to new handshakes)
    pub tls: Option<Arc<crate::tls::TlsServer>>,
    pub redirect: HttpsRedirect,
    /// `metrics`: a path to serve them on, or a Pushgateway to push them to
    pub metrics: Option<crate::observability::metrics::MetricsTarget>,
}

/// Answering plain-HTTP requests with a redirect to HTTPS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpsRedirect {
    /// `https_redirect = true` on the server: every request (a location can ask for it too)
    pub all: bool,
    /// `https_port`: the port of the redirect target (443 is left out of the URL)
    pub port: u16,
    /// `https_redirect_status`: 308, or 301 for GET and HEAD (other methods always 308)
    pub status_get: u16,
}

/// Where a location sends its requests.
#[derive(Debug, Clone)]
pub enum UpstreamRef {
    /// No upstream: a plugin must answer, or the request gets 502.
    None,
    Fixed(usize),
    /// `upstream = "$var"`: the upstream's name comes from a variable at request time.
    Var(Template),
}

/// `[locations.NAME]`
#[derive(Debug, Clone)]
pub struct Location {
    pub name: String,
    pub hosts: Vec<HostRule>,
    pub path: PathRule,
    pub headers: Vec<Condition>,
    pub query: Vec<Condition>,
    pub priority: Option<i64>,
    pub rewrite: Option<Rewrite>,
    pub upstream: UpstreamRef,
    pub set_headers: Vec<HeaderTemplate>,
    pub add_headers: Vec<HeaderTemplate>,
    pub plugins: Vec<usize>,
    pub client_max_body_size: Option<u64>,
    pub timeout: Option<Duration>,
    /// `https_redirect = true`: plain-HTTP requests here are sent to HTTPS
    pub https_redirect: bool,
    /// `grpc_web = true`: gRPC-web requests are bridged to gRPC upstream (`proxy/grpc_web.rs`)
    pub grpc_web: bool,
}

/// `[plugins.NAME]`, built.
#[derive(Debug, Clone)]
pub struct PluginDef {
    pub name: String,
    pub category: String,
    pub plugin: Arc<dyn Plugin>,
}

impl Config {
    /// Whether requests are counted: some server exposes or pushes metrics, a `stats`
    /// plugin reads the counters, or the admin (its dashboard) does.
    pub fn metrics_on(&self) -> bool {
        self.servers.iter().any(|s| s.metrics.is_some())
            || self.plugins.iter().any(|p| p.category == "stats")
            || self.admin.is_some()
    }

    pub fn upstream_index(&self, name: &str) -> Option<usize> {
        self.upstreams.iter().position(|u| u.name == name)
    }
}
