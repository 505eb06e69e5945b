//! The OTLP/HTTP exporter's client. The SDK exports from its own thread, outside any async
//! runtime; this client hands each request to the background runtime and waits for the
//! answer there, sending it with the outbound client Lua's `tidegate.http.request` uses (one
//! TLS stack, one connection pool).

use crate::scripting::http_client::{send, Outbound};
use crate::scripting::http_policy::HttpPolicy;
use opentelemetry_http::{Bytes, HttpClient, HttpError, Request, Response};
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct OnRuntime {
    runtime: tokio::runtime::Handle,
}

impl OnRuntime {
    /// The client for the runtime this is called in.
    pub fn current() -> OnRuntime {
        OnRuntime {
            runtime: tokio::runtime::Handle::current(),
        }
    }
}

#[async_trait::async_trait]
impl HttpClient for OnRuntime {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let (parts, body) = request.into_parts();
        let headers = parts
            .headers
            .iter()
            .filter(|(k, _)| {
                *k != http::header::CONTENT_LENGTH && *k != http::header::TRANSFER_ENCODING
            })
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let out = Outbound::new(
            parts.method,
            &parts.uri.to_string(),
            headers,
            body,
            Duration::from_secs(10),
        )?;
        let answer = self
            .runtime
            .spawn(async move { send(out, &HttpPolicy::default()).await })
            .await??;
        let mut resp = Response::builder().status(answer.status);
        for (k, v) in answer.headers.iter() {
            resp = resp.header(k, v);
        }
        Ok(resp.body(answer.body)?)
    }
}
