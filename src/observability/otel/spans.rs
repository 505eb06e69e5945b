//! The spans of one sampled request: the server span, and a client span per upstream try.

use crate::proxy::ctx::Ctx;
use crate::proxy::exchange::Downstream;
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{Span as _, SpanKind, Status, TraceContextExt, Tracer as _};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::trace::Span;
use std::time::SystemTime;

/// A sampled request's open spans.
pub struct RequestSpans {
    server: Span,
    upstream: Option<Span>,
}

impl std::fmt::Debug for RequestSpans {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RequestSpans({})", self.server.span_context().trace_id())
    }
}

impl RequestSpans {
    /// The trace id, as 32 hex digits.
    pub fn trace_id(&self) -> String {
        self.server.span_context().trace_id().to_string()
    }
}

/// Open the server span, under the client's `traceparent` when the client is trusted. An
/// unsampled request keeps nothing.
pub fn begin(session: &dyn Downstream, ctx: &mut Ctx) {
    let Some(tracer) = super::tracer() else {
        return;
    };
    let req = session.req();
    let trusted = session.peer_addr().is_some_and(|p| {
        ctx.server()
            .trusted_proxies
            .iter()
            .any(|n| n.contains(&p.ip()))
    });
    let parent = if trusted {
        opentelemetry_sdk::propagation::TraceContextPropagator::new()
            .extract(&opentelemetry_http::HeaderExtractor(&req.headers))
    } else {
        Context::new()
    };
    let start = SystemTime::now()
        .checked_sub(ctx.start.elapsed())
        .unwrap_or_else(SystemTime::now);
    let span = tracer
        .span_builder(req.method.as_str().to_string())
        .with_kind(SpanKind::Server)
        .with_start_time(start)
        .start_with_context(tracer, &parent);
    if span.span_context().is_sampled() {
        ctx.otel = Some(Box::new(RequestSpans {
            server: span,
            upstream: None,
        }));
    }
}

/// A new upstream try: a client span under the server span (ending the previous try's).
pub fn try_started(ctx: &mut Ctx, peer: std::net::SocketAddr, upstream: &str) {
    let (Some(tracer), Some(spans)) = (super::tracer(), ctx.otel.as_mut()) else {
        return;
    };
    if let Some(mut old) = spans.upstream.take() {
        old.set_status(Status::error("retried on another try"));
        old.end();
    }
    let parent = Context::new().with_remote_span_context(spans.server.span_context().clone());
    let span = tracer
        .span_builder(format!("upstream {upstream}"))
        .with_kind(SpanKind::Client)
        .with_attributes([
            KeyValue::new("server.address", peer.ip().to_string()),
            KeyValue::new("server.port", i64::from(peer.port())),
        ])
        .start_with_context(tracer, &parent);
    spans.upstream = Some(span);
}

/// The try's new connection is made, `took` after the try began: a `connect` span under the
/// try's span.
pub fn connected(ctx: &Ctx, took: std::time::Duration) {
    let (Some(tracer), Some(up)) = (
        super::tracer(),
        ctx.otel.as_ref().and_then(|s| s.upstream.as_ref()),
    ) else {
        return;
    };
    let parent = Context::new().with_remote_span_context(up.span_context().clone());
    let begin = SystemTime::now()
        .checked_sub(took)
        .unwrap_or_else(SystemTime::now);
    let mut span = tracer
        .span_builder("connect")
        .with_kind(SpanKind::Internal)
        .with_start_time(begin)
        .start_with_context(tracer, &parent);
    span.end();
}

/// The upstream request carries a trace context (`traceparent`).
pub fn traces_upstream(ctx: &Ctx) -> bool {
    ctx.otel.as_ref().is_some_and(|o| o.upstream.is_some())
}

/// The `traceparent` for the upstream request: the current try's span.
pub fn traceparent(ctx: &Ctx) -> Option<String> {
    let s = ctx.otel.as_ref()?.upstream.as_ref()?.span_context().clone();
    Some(format!(
        "00-{}-{}-{:02x}",
        s.trace_id(),
        s.span_id(),
        s.trace_flags().to_u8()
    ))
}

/// The try ended: with the upstream's status, or failed.
pub fn try_ended(ctx: &mut Ctx, status: Option<u16>, failure: Option<&str>) {
    let Some(mut span) = ctx.otel.as_mut().and_then(|s| s.upstream.take()) else {
        return;
    };
    if let Some(code) = status {
        span.set_attribute(KeyValue::new("http.response.status_code", i64::from(code)));
    }
    if let Some(kind) = failure {
        span.set_status(Status::error(kind.to_string()));
    }
    span.end();
}

/// A Lua hook call of a sampled request, as a child span of the request (its start and end
/// already known).
pub fn hook(ctx: &Ctx, plugin: &str, hook: &str, start: std::time::Instant, error: Option<&str>) {
    let (Some(tracer), Some(spans)) = (super::tracer(), ctx.otel.as_ref()) else {
        return;
    };
    let took = start.elapsed();
    let begin = SystemTime::now()
        .checked_sub(took)
        .unwrap_or_else(SystemTime::now);
    let parent = Context::new().with_remote_span_context(spans.server.span_context().clone());
    let mut span = tracer
        .span_builder(format!("lua {plugin} {hook}"))
        .with_kind(SpanKind::Internal)
        .with_start_time(begin)
        .start_with_context(tracer, &parent);
    if let Some(e) = error {
        span.set_status(Status::error(e.to_string()));
    }
    span.end();
}

/// Close the server span with what the request came to.
pub fn end(session: &dyn Downstream, ctx: &mut Ctx) {
    let Some(mut spans) = ctx.otel.take() else {
        return;
    };
    if let Some(mut up) = spans.upstream.take() {
        up.end();
    }
    let req = session.req();
    let route = ctx.location().map(|l| l.name.clone());
    let mut attrs = vec![
        KeyValue::new("http.request.method", req.method.as_str().to_string()),
        KeyValue::new("http.response.status_code", i64::from(ctx.status)),
        KeyValue::new("url.path", req.uri.path().to_string()),
        KeyValue::new("server.address", ctx.host.clone()),
        KeyValue::new("tidegate.server", ctx.server().name.clone()),
    ];
    if let Some(r) = &route {
        attrs.push(KeyValue::new("http.route", r.clone()));
        spans
            .server
            .update_name(format!("{} {r}", req.method.as_str()));
    }
    if let Some(ip) = ctx.client_ip {
        attrs.push(KeyValue::new("client.address", ip.to_string()));
    }
    if let Some(ua) = req
        .headers
        .get(http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
    {
        attrs.push(KeyValue::new("user_agent.original", ua.to_string()));
    }
    spans.server.set_attributes(attrs);
    if ctx.status >= 500 {
        spans
            .server
            .set_status(Status::error(format!("{}", ctx.status)));
    }
    spans.server.end();
}
