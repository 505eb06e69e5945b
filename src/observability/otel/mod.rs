//! OpenTelemetry traces, exported over OTLP (gRPC or HTTP), batched off the request path.
//!
//! ```toml
//! [basic]
//! otlp = { endpoint = "http://127.0.0.1:4317", protocol = "grpc", sample = 0.1, service_name = "tidegate" }
//! # protocol = "http": endpoint "http://127.0.0.1:4318" (/v1/traces is added)
//! ```
//!
//! A sampled request gets a server span (`GET api`: method, route/location, status, server
//! address, client address, user agent, path) and, per upstream try, a client span (peer,
//! status or failure). A `traceparent` from a trusted client (its address in the server's
//! `trusted_proxies`) makes the request part of that trace and follows its sampling decision;
//! the upstream request carries a `traceparent` naming the try's span. The trace id is the
//! access-log field `{trace_id}` and Lua's `req.trace_id`.
//!
//! ```text
//! spans.rs   the spans of one request
//! http.rs    the OTLP/HTTP exporter's client: tidegate's outbound client, on its runtime
//! export.rs  the exporter, its failures logged at most once a minute
//! ```
//!
//! The exporter batches in its own thread (the SDK's batch processor); an unreachable
//! collector costs nothing on the request path and a warning a minute at most.
//! Read at start (an upgrade applies a change).

pub mod export;
pub mod http;
pub mod spans;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider, Tracer};
use std::sync::OnceLock;

/// `[basic] otlp`, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct OtlpConf {
    pub endpoint: String,
    /// gRPC (true) or HTTP/protobuf
    pub grpc: bool,
    /// the share of requests traced, 0 to 1
    pub sample: f64,
    pub service_name: String,
}

struct Otel {
    provider: SdkTracerProvider,
    tracer: Tracer,
}

static OTEL: OnceLock<Otel> = OnceLock::new();

/// The tracer, when OTLP export is on.
pub fn tracer() -> Option<&'static Tracer> {
    OTEL.get().map(|o| &o.tracer)
}

/// Start the exporter (inside the runtime it will use: tonic's channel and the HTTP client
/// run their I/O there).
pub fn start(conf: &OtlpConf) -> Result<(), String> {
    let exporter = if conf.grpc {
        opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(conf.endpoint.clone())
            .build()
    } else {
        use opentelemetry_otlp::WithHttpConfig;
        opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_endpoint(format!("{}/v1/traces", conf.endpoint.trim_end_matches('/')))
            .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
            .with_http_client(http::OnRuntime::current())
            .build()
    }
    .map_err(|e| format!("OTLP exporter: {e}"))?;
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(export::Logged::new(exporter, &conf.endpoint))
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
            conf.sample,
        ))))
        .with_resource(
            opentelemetry_sdk::Resource::builder()
                .with_service_name(conf.service_name.clone())
                .build(),
        )
        .build();
    let tracer = provider.tracer("tidegate");
    let _ = OTEL.set(Otel { provider, tracer });
    tracing::info!(endpoint = %conf.endpoint, grpc = conf.grpc, sample = conf.sample, "exporting traces over OTLP");
    Ok(())
}

/// Export what is batched (at exit).
pub fn shutdown() {
    if let Some(o) = OTEL.get() {
        if let Err(e) = o.provider.shutdown() {
            tracing::debug!("OTLP shutdown: {e}");
        }
    }
}
