//! Route lookup cost with 10, 100, 1,000 and 10,000 locations, and variable expansion.
//!
//! Run: `cargo bench --bench routing`
//!
//! Two shapes: many hosts (one location per host, plus wildcards and host-less fallbacks:
//! the host index makes a lookup independent of the count), and one host with many path
//! prefixes (the worst case: the lookup scans that host's bucket in priority order).

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion};
use tidegate::routing::rules::{HostRule, PathRule};
use tidegate::routing::vars::{Template, Var, VarSource};
use tidegate::routing::{RouteInput, RouteSpec, Router};

fn spec(location: usize, host: Option<&str>, path: &str) -> RouteSpec {
    RouteSpec {
        location,
        hosts: host
            .map(|h| vec![HostRule::parse(h).unwrap()])
            .unwrap_or_default(),
        path: PathRule::parse(path).unwrap(),
        headers: vec![],
        query: vec![],
        priority: None,
    }
}

fn many_hosts(n: usize) -> Router {
    let mut specs = Vec::with_capacity(n);
    for i in 0..n {
        specs.push(match i % 10 {
            0 => spec(i, Some(&format!("*.zone{i}.example.com")), "/"),
            1 => spec(i, None, &format!("/static{i}/")),
            2 => spec(
                i,
                Some(&format!("svc{i}.example.com")),
                &format!("~^/v\\d+/item{i}"),
            ),
            _ => spec(i, Some(&format!("svc{i}.example.com")), &format!("/api{i}")),
        });
    }
    Router::new(specs)
}

fn one_host(n: usize) -> Router {
    Router::new(
        (0..n)
            .map(|i| spec(i, Some("api.example.com"), &format!("/p{i}/")))
            .collect(),
    )
}

fn lookup(r: &Router, host: &str, path: &str) -> Option<usize> {
    let none = |_: &str| None;
    r.lookup(&RouteInput {
        host,
        path,
        query: "",
        header: &none,
    })
    .map(|m| m.location)
}

fn bench_routing(c: &mut Criterion) {
    let mut g = c.benchmark_group("route_lookup");
    for n in [10usize, 100, 1_000, 10_000] {
        let r = many_hosts(n);
        let target = n / 2 + 3; // an `/api{i}` location in the middle
        let host = format!("svc{target}.example.com");
        let path = format!("/api{target}/users");
        assert_eq!(lookup(&r, &host, &path), Some(target));
        g.bench_with_input(BenchmarkId::new("many_hosts", n), &n, |b, _| {
            b.iter(|| lookup(&r, black_box(&host), black_box(&path)))
        });
        g.bench_with_input(BenchmarkId::new("many_hosts_miss", n), &n, |b, _| {
            b.iter(|| lookup(&r, black_box("unknown.example.org"), black_box("/nothing")))
        });
        let r1 = one_host(n);
        let p = format!("/p{}/x", n - 1);
        g.bench_with_input(BenchmarkId::new("one_host_prefixes", n), &n, |b, _| {
            b.iter(|| lookup(&r1, black_box("api.example.com"), black_box(&p)))
        });
    }
    g.finish();
}

struct Fixed;
impl VarSource for Fixed {
    fn write_var(&self, v: &Var, out: &mut String) {
        match v {
            Var::Host => out.push_str("api.example.com"),
            Var::RemoteAddr => out.push_str("203.0.113.7"),
            _ => out.push('x'),
        }
    }
}

fn bench_vars(c: &mut Criterion) {
    let t = Template::parse("for=$remote_addr;host=$host;proto=$scheme;id=$request_id").unwrap();
    c.bench_function("header_template_render", |b| {
        b.iter(|| black_box(t.render(&Fixed)))
    });
}

criterion_group!(benches, bench_routing, bench_vars);
criterion_main!(benches);
