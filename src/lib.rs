//! tidegate: a reverse proxy on Pingora, configured with TOML.
//!
//! # Request flow
//!
//! ```text
//! client ─▶ server (listener, TLS by SNI, h1/h2/h2c) ─▶ guard (limits, framing) ─▶ routing (host, path,
//! conditions → location) ─▶ request plugins (may answer early) ─▶ upstream (balancer picks a
//! peer; retry on connect failure) ─▶ response plugins ─▶ client ─▶ log (access log)
//! ```
//!
//! Errors on any step become a status in one place, [`error::status_for`].
//!
//! # Layout
//!
//! - [`cli`]: the command line.
//! - [`config`]: TOML → raw structs → validation (file, table, key, line) → typed model.
//! - [`state`]: one config version built for serving (routers, upstream pools, log writers).
//! - [`reload`]: applying a new config version without dropping a request.
//! - [`server`]: Pingora services, listeners, signals, background work.
//! - [`tls`]: TLS termination: certificates by SNI, handshake settings, the TLS stream.
//! - [`engine`]: the data paths: the own HTTP/1 loop and Pingora's `ProxyHttp` adapter.
//! - [`proxy`]: the engine-neutral phase chain, one module per step.
//! - [`routing`]: host/path rules, the host-indexed router, rewrites, variables.
//! - [`upstream`]: peers, balancing algorithms, active and passive health.
//! - [`plugins`]: the per-phase plugin trait, the registry, one file per built-in plugin.
//! - [`scripting`]: Lua plugins in per-worker Luau VMs.
//! - [`observability`]: the access log and Prometheus metrics.
//! - [`error`]: typed errors and the error → status mapping.
//! - [`logging`]: process logging.

pub mod admin;
pub mod cli;
pub mod config;
pub mod engine;
pub mod error;
pub mod explain;
pub mod fuzzing;
pub mod logging;
pub mod observability;
pub mod plugins;
pub mod proxy;
pub mod reload;
pub mod routing;
pub mod scripting;
pub mod server;
pub mod state;
pub mod testing;
pub mod tls;
pub mod upstream;
