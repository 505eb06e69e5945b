//! The phase chain, engine-neutral: one short module per step of the request flow, in flow
//! order. The engines (`engine/`) call these; plugins and Lua see a [`exchange::Downstream`]
//! and request/response heads, never an engine's session type.
//!
//! ```text
//! guard.rs       size limits, framing (smuggling) checks               → 400/414/431
//! trace.rs       the per-request trace a trusted client asks for (X-Tidegate-Trace)
//! route.rs       pick the location                                      → 404
//! acme.rs        ACME HTTP-01 challenges of tidegate's own orders        → 200
//! redirect.rs    plain HTTP sent to HTTPS (https_redirect)              → 308/301
//! forwarded.rs   who the client is
//! request.rs     body limit, plugin chain                               → 413, early answer
//! upstream.rs    upstream and peer (again on each retry); rewrite,      → 502
//!                forwarding and configured headers on the upstream request
//! response.rs    plugins edit status and headers; transform the body (Lua on_body)
//! failure.rs     passive health, retries, one error → status mapping    → 502/504/…
//! log.rs         access log line
//! ```

pub mod acme;
pub mod ctx;
pub mod error_page;
pub mod exchange;
pub mod failure;
pub mod fields;
pub mod forwarded;
pub mod grpc_web;
pub mod guard;
pub mod log;
pub mod names;
pub mod redirect;
pub mod request;
pub mod response;
pub mod route;
pub mod trace;
pub mod upstream;
