//! gRPC-web (`grpc_web = true`): a browser-style request over HTTP/1.1, binary and `-text`,
//! reaches a real gRPC server (tonic, over h2c) and the answer comes back as gRPC-web with
//! the trailers as the body's last frame.

mod common;
use base64::Engine;
use common::grpc::grpc_receiver;
use common::*;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;
const PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

/// A gRPC message frame: flag 0, big-endian length, the message.
fn frame(msg: &[u8]) -> Vec<u8> {
    let mut f = vec![0u8];
    f.extend_from_slice(&(msg.len() as u32).to_be_bytes());
    f.extend_from_slice(msg);
    f
}

fn request_with(span: &str) -> Vec<u8> {
    let req = ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans: vec![Span {
                    name: span.into(),
                    trace_id: vec![1; 16],
                    span_id: vec![2; 8],
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    frame(&req.encode_to_vec())
}

/// The frames of a gRPC-web body: (flag, payload).
fn frames(mut body: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut out = Vec::new();
    while body.len() >= 5 {
        let len = u32::from_be_bytes([body[1], body[2], body[3], body[4]]) as usize;
        out.push((body[0], body[5..5 + len].to_vec()));
        body = &body[5 + len..];
    }
    assert!(body.is_empty(), "trailing bytes: {body:?}");
    out
}

/// Base64 in padded groups (a server may pad each piece), decoded 4 characters at a time.
fn decode_text(text: &[u8]) -> Vec<u8> {
    text.chunks(4)
        .flat_map(|g| B64.decode(g).expect("base64"))
        .collect()
}

#[test]
fn grpc_web_binary_and_text_reach_a_grpc_server() {
    let (rx, grpc, _rt) = grpc_receiver();
    let port = free_port();
    let cfg = format!(
        r#"
[servers.main]
addr = "127.0.0.1:{port}"
locations = ["grpc"]

[locations.grpc]
path = "/opentelemetry.proto"
upstream = "grpc"
grpc_web = true

[upstreams.grpc]
addrs = ["127.0.0.1:{grpc}"]
alpn = "h2"
"#
    );
    let t = Tidegate::start(&cfg, &[port]);
    for (ct, span) in [
        ("application/grpc-web+proto", "binary"),
        ("application/grpc-web-text+proto", "text"),
    ] {
        let text = ct.contains("text");
        let body = request_with(span);
        let body = if text {
            B64.encode(&body).into_bytes()
        } else {
            body
        };
        let r = request(
            port,
            "POST",
            "h",
            PATH,
            &[
                ("content-type", ct),
                ("x-grpc-web", "1"),
                ("x-user-agent", "grpc-web-javascript/0.1"),
            ],
            &body,
        );
        assert_eq!(r.status, 200, "{ct}: {}", t.stderr());
        // the upstream's content type (tonic says `application/grpc`), turned back to gRPC-web
        let want = if text {
            "application/grpc-web-text"
        } else {
            "application/grpc-web"
        };
        assert_eq!(r.header("content-type"), Some(want), "{ct}");
        let raw = if text {
            decode_text(&r.body)
        } else {
            r.body.clone()
        };
        let fs = frames(&raw);
        assert_eq!(fs.len(), 2, "{ct}: a message and the trailers: {fs:?}");
        assert_eq!(fs[0].0, 0, "a data frame");
        assert_eq!(fs[1].0, 0x80, "the trailer frame");
        let trailers = String::from_utf8(fs[1].1.clone()).unwrap();
        assert!(trailers.contains("grpc-status:0\r\n"), "{trailers:?}");
        assert!(
            wait_until(WAIT, || rx.spans().iter().any(|s| s.name == span)),
            "{ct}: the gRPC server got the call"
        );
    }
    // an unknown method: the gRPC error comes back in the trailers (or the headers)
    let r = request(
        port,
        "POST",
        "h",
        "/opentelemetry.proto.collector.trace.v1.TraceService/Nope",
        &[("content-type", "application/grpc-web+proto")],
        &frame(b""),
    );
    assert_eq!(r.status, 200, "{}", t.stderr());
    let status = r.header("grpc-status").map(str::to_string).or_else(|| {
        frames(&r.body)
            .into_iter()
            .find(|f| f.0 == 0x80)
            .map(|f| String::from_utf8_lossy(&f.1).to_string())
    });
    assert!(
        status.unwrap_or_default().contains("12"),
        "UNIMPLEMENTED (12): {:?}",
        r.headers
    );
}

#[test]
fn check_accepts_grpc_web_only_as_a_flag() {
    let (code, out) = common::plugins::check_text(
        "[servers.s]\naddr = \"127.0.0.1:1\"\nlocations = [\"l\"]\n[locations.l]\npath = \"/\"\ngrpc_web = \"yes\"\n",
    );
    assert_ne!(code, 0);
    assert!(out.contains("grpc_web"), "{out}");
}
