//! OpenTelemetry traces through real sockets: a receiver in the test process (a tonic gRPC
//! server on the generated OTLP types, and a plain HTTP one decoding the protobuf body) gets
//! the spans, with their parent/child links and attributes; a trusted client's traceparent
//! continues its trace, and the upstream is sent the try's traceparent.

mod common;

use common::grpc::{grpc_receiver, Received};
use common::*;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::Span;
use std::sync::{Arc, Mutex};

fn attr(s: &Span, key: &str) -> Option<String> {
    use opentelemetry_proto::tonic::common::v1::any_value::Value;
    s.attributes
        .iter()
        .find(|a| a.key == key)
        .and_then(|a| a.value.as_ref()?.value.as_ref())
        .map(|v| match v {
            Value::StringValue(s) => s.clone(),
            Value::IntValue(i) => i.to_string(),
            other => format!("{other:?}"),
        })
}

fn config(port: u16, origin: u16, otlp: &str) -> String {
    format!(
        r#"
[basic]
threads = 1
otlp = {otlp}

[servers.main]
addr = "127.0.0.1:{port}"
locations = ["api"]
trusted_proxies = ["127.0.0.1"]
access_log = "{{trace_id}} {{status}}"

[locations.api]
path = "/api"
upstream = "backend"
plugins = ["check"]

[plugins.check]
category = "lua"
source = '''
return {{ on_request = function(req) req:set_header("x-trace", req.trace_id or "none") end }}
'''

[upstreams.backend]
addrs = ["127.0.0.1:{origin}"]
"#
    )
}

/// Start tidegate and wait until its exporter is up: the background service installs it
/// just after the listeners open, and a request in between is not traced.
fn start_exporting(config: &str, port: u16) -> Tidegate {
    let t = Tidegate::start(config, &[port]);
    assert!(
        wait_until(WAIT, || t.stderr().contains("exporting traces over OTLP")),
        "{}",
        t.stderr()
    );
    t
}

#[test]
fn spans_reach_a_grpc_receiver_linked_to_the_clients_trace_and_the_upstream() {
    let (rx, grpc, _rt) = grpc_receiver();
    let origin = Origin::named("o");
    let port = free_port();
    let otlp =
        format!("{{ endpoint = \"http://127.0.0.1:{grpc}\", protocol = \"grpc\", sample = 1.0 }}");
    let t = start_exporting(&config(port, origin.port(), &otlp), port);
    let client_trace = "0af7651916cd43dd8448eb211c80319c";
    let tp = format!("00-{client_trace}-b7ad6b7169203331-01");
    let r = get(
        port,
        "h",
        "/api/x",
        &[("traceparent", &tp), ("user-agent", "otel-test")],
    );
    assert_eq!(r.status, 200);
    // the upstream got a traceparent of the same trace, naming tidegate's try span
    let sent = origin
        .requests()
        .last()
        .unwrap()
        .header("traceparent")
        .unwrap()
        .to_string();
    assert!(
        sent.starts_with(&format!("00-{client_trace}-")) && sent.ends_with("-01"),
        "{sent}"
    );
    // Lua saw the trace id
    assert_eq!(
        origin.requests().last().unwrap().header("x-trace"),
        Some(client_trace)
    );
    let got = wait_until(WAIT, || rx.spans().len() >= 4);
    assert!(got, "spans: {:?}\n{}", rx.spans(), t.stderr());
    let spans = rx.spans();
    let server = spans.iter().find(|s| s.kind == 2).expect("a server span");
    let client = spans.iter().find(|s| s.kind == 3).expect("a client span");
    assert_eq!(hex::encode(&server.trace_id), client_trace);
    assert_eq!(hex::encode(&server.parent_span_id), "b7ad6b7169203331");
    assert_eq!(
        client.parent_span_id, server.span_id,
        "the try is a child of the request"
    );
    assert_eq!(
        hex::encode(&client.span_id),
        sent.split('-').nth(2).unwrap()
    );
    assert_eq!(server.name, "GET api");
    assert_eq!(
        attr(server, "http.response.status_code").as_deref(),
        Some("200")
    );
    assert_eq!(attr(server, "http.route").as_deref(), Some("api"));
    assert_eq!(
        attr(server, "user_agent.original").as_deref(),
        Some("otel-test")
    );
    assert_eq!(
        attr(client, "http.response.status_code").as_deref(),
        Some("200")
    );
    // the try's new connection, under the try
    let connect = spans
        .iter()
        .find(|s| s.name == "connect")
        .expect("a connect span");
    assert_eq!(connect.parent_span_id, client.span_id);
    let hook = spans
        .iter()
        .find(|s| s.name == "lua check on_request")
        .expect("a span for the Lua hook");
    assert_eq!(hook.parent_span_id, server.span_id);
    assert!(hook.start_time_unix_nano >= server.start_time_unix_nano);
    // the trace id is an access-log field
    let ok = wait_until(WAIT, || t.stdout().contains(&format!("{client_trace} 200")));
    assert!(ok, "{}", t.stdout());
}

#[test]
fn spans_reach_an_http_receiver_and_sample_zero_sends_none() {
    // OTLP/HTTP: a POST of the protobuf request to /v1/traces
    let bodies = Arc::new(Mutex::new(Vec::<Vec<u8>>::new()));
    let b2 = bodies.clone();
    let receiver = Origin::start(move |r| {
        if r.path == "/v1/traces" {
            b2.lock().unwrap().push(r.body.clone());
        }
        Action::Respond(200, vec![], Vec::new())
    });
    let origin = Origin::named("o");
    let port = free_port();
    let otlp = format!(
        "{{ endpoint = \"http://127.0.0.1:{}\", protocol = \"http\" }}",
        receiver.port()
    );
    let t = start_exporting(&config(port, origin.port(), &otlp), port);
    assert_eq!(get(port, "h", "/api/y", &[]).status, 200);
    let got = wait_until(WAIT, || !bodies.lock().unwrap().is_empty());
    assert!(got, "{}", t.stderr());
    use prost::Message;
    let rx = Received::default();
    for b in bodies.lock().unwrap().iter() {
        rx.add(ExportTraceServiceRequest::decode(b.as_slice()).expect("OTLP protobuf"));
    }
    assert!(
        rx.spans().iter().any(|s| s.name == "GET api"),
        "{:?}",
        rx.spans()
    );
    // a new trace (no traceparent from the client): no parent
    let server = rx.spans().into_iter().find(|s| s.kind == 2).unwrap();
    assert!(server.parent_span_id.is_empty());

    // sample = 0: nothing is exported, no traceparent is made up for the upstream
    let (rx0, grpc, _rt) = grpc_receiver();
    let port0 = free_port();
    let otlp0 = format!("{{ endpoint = \"http://127.0.0.1:{grpc}\", sample = 0.0 }}");
    let t0 = Tidegate::start(&config(port0, origin.port(), &otlp0), &[port0]);
    let before = origin.count();
    assert_eq!(get(port0, "h", "/api/z", &[]).status, 200);
    assert!(origin.requests()[before].header("traceparent").is_none());
    // the access log line says no trace
    assert!(
        wait_until(WAIT, || t0.stdout().contains("- 200")),
        "{}",
        t0.stdout()
    );
    assert!(rx0.spans().is_empty());
}

#[test]
fn an_unreachable_collector_costs_a_warning_and_nothing_else() {
    let origin = Origin::named("o");
    let port = free_port();
    let dead = free_port();
    let otlp = format!("{{ endpoint = \"http://127.0.0.1:{dead}\" }}");
    let t = Tidegate::start(&config(port, origin.port(), &otlp), &[port]);
    for _ in 0..20 {
        assert_eq!(get(port, "h", "/api/q", &[]).status, 200);
    }
    let warned = wait_until(WAIT, || t.stderr().contains("traces not exported"));
    assert!(warned, "{}", t.stderr());
    assert_eq!(
        t.stderr().matches("traces not exported").count(),
        1,
        "{}",
        t.stderr()
    );
    assert_eq!(get(port, "h", "/api/q", &[]).status, 200);
}
