//! Observability: the access log (metrics and traces come with the observability issue).

pub mod access_log;
pub mod log_writer;
