//! The data paths. Each serves connections and drives the same phase chain (`proxy/`):
//!
//! - [`pingora_adapter`]: Pingora's `ProxyHttp`, for HTTP/2 and for every HTTP/1 request
//!   that the own loop hands over.

pub mod pingora_adapter;
