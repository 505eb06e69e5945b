//! The data paths. Each serves connections and drives the same phase chain (`proxy/`):
//!
//! - [`h1`]: the own HTTP/1 loop, for the plain requests that make nearly all traffic.
//! - [`h2`]: the own HTTP/2 path: Pingora's HTTP/2 connection, each plain stream driven
//!   here to an HTTP/1 upstream (the others go to Pingora's path).
//! - [`pingora_adapter`]: Pingora's `ProxyHttp`, for HTTP/2 and for every HTTP/1 request
//!   that the own loop hands over (and every request of a server with `engine = "pingora"`).

pub mod h1;
pub mod h2;
pub mod pingora_adapter;
