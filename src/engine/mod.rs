//! The data paths. Each serves connections and drives the same phase chain (`proxy/`):
//!
//! - [`h1`]: the own HTTP/1 loop, for the plain requests that make nearly all traffic.
//! - [`pingora_adapter`]: Pingora's `ProxyHttp`, for HTTP/2 and for every HTTP/1 request
//!   that the own loop hands over (and every request of a server with `engine = "pingora"`).

pub mod h1;
pub mod pingora_adapter;
