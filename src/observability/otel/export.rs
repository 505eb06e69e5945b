//! The exporter as the SDK sees it: OTLP's, with its failures logged at most once a minute
//! (an unreachable collector costs a warning, never a request's time: the SDK exports from a
//! thread of its own).

use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SpanData, SpanExporter};
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug)]
pub struct Logged {
    inner: opentelemetry_otlp::SpanExporter,
    endpoint: String,
    last_warning: Mutex<Option<Instant>>,
}

impl Logged {
    pub fn new(inner: opentelemetry_otlp::SpanExporter, endpoint: &str) -> Logged {
        Logged {
            inner,
            endpoint: endpoint.to_string(),
            last_warning: Mutex::new(None),
        }
    }
}

impl SpanExporter for Logged {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let n = batch.len();
        let r = self.inner.export(batch).await;
        if let Err(e) = &r {
            let mut last = self.last_warning.lock().unwrap_or_else(|p| p.into_inner());
            if last.is_none_or(|t| t.elapsed() >= Duration::from_secs(60)) {
                *last = Some(Instant::now());
                tracing::warn!(endpoint = %self.endpoint, spans = n, "traces not exported: {e}");
            }
        }
        r
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &opentelemetry_sdk::Resource) {
        self.inner.set_resource(resource)
    }
}
