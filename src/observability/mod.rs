//! Observability: the access log and Prometheus metrics.

pub mod access_log;
pub mod log_writer;
pub mod metrics;
pub mod otel;
