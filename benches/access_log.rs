//! Access-log line rendering: the `combined` and `json` presets and a 12-field template.
//!
//! Run: `cargo bench --bench access_log`
//!
//! The values come from a fixed source, so this measures the formatter alone (the proxy's
//! source reads the same values from the session and the request context).

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use tidegate::observability::access_log::{Field, LogFormat, LogSource};

struct Fixed;

impl LogSource for Fixed {
    fn write_field(&self, f: &Field, out: &mut String) {
        out.push_str(match f {
            Field::Method => "GET",
            Field::Path => "/api/v1/items",
            Field::Query => "page=2&sort=asc",
            Field::Uri => "/api/v1/items?page=2&sort=asc",
            Field::Proto => "HTTP/1.1",
            Field::Status => "200",
            Field::Size => "5123",
            Field::Latency => "3",
            Field::ClientIp | Field::Remote => "203.0.113.7",
            Field::Host => "api.example.com",
            Field::UpstreamAddr => "10.0.0.12:8080",
            Field::RequestId => "3f2a9c1e5b7d4e6fa1b2c3d4e5f60718",
            Field::Time => "2026-11-27T04:30:00Z",
            Field::ReqHeader(_) => "Mozilla/5.0 (X11; Linux x86_64) \"quoted\"",
            _ => "-",
        })
    }
}

fn bench(c: &mut Criterion) {
    let combined = LogFormat::parse("combined").unwrap();
    let json = LogFormat::parse("json").unwrap();
    let template = LogFormat::parse(
        "{time} {client_ip} {method} {path} {query} {status} {size} {latency}ms {host} {upstream_addr} {request_id} \"{>user-agent}\"",
    )
    .unwrap();
    c.bench_function("access_log_combined", |b| {
        b.iter(|| black_box(combined.render(&Fixed)))
    });
    c.bench_function("access_log_json", |b| {
        b.iter(|| black_box(json.render(&Fixed)))
    });
    c.bench_function("access_log_template_12_fields", |b| {
        b.iter(|| black_box(template.render(&Fixed)))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
