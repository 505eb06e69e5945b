//! The own HTTP/2 path (`engine/h2/`): plain streams are served by it, the others (gRPC) by
//! Pingora's path on the same connection; request bodies with and without a declared length,
//! the body limit, answers, error pages, body filters, every upstream framing, and upstream
//! connections reused across streams. The access log's `{engine}` says which path served each
//! request.

mod common;

use common::*;
use std::time::Duration;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

use h2c::{H2Answer as Answer, H2Client as Client};

async fn h2c(port: u16) -> Client {
    h2c::connect(port).await
}

/// One request on an open h2c connection.
async fn call(client: &Client, method: &str, path: &str, body: &[u8]) -> Answer {
    call_with(client, method, path, &[], body).await
}

/// One request with extra header fields.
async fn call_with(
    client: &Client,
    method: &str,
    path: &str,
    fields: &[(&str, &str)],
    body: &[u8],
) -> Answer {
    let mut req = http::Request::builder()
        .method(method)
        .uri(format!("http://app.test{path}"));
    for (k, v) in fields {
        req = req.header(*k, *v);
    }
    h2c::request(client, req.body(()).unwrap(), body).await
}

/// The origin: `/chunked` answers in three chunks, `/close` with a body ended by closing the
/// connection, `/html` with a page for the body filter; anything else with
/// `METHOD PATH BODY-LENGTH`.
fn origin() -> Origin {
    Origin::start(|r| match r.path.as_str() {
        "/chunked" => Action::Chunked(
            200,
            vec![],
            vec![b"one-".to_vec(), b"two-".to_vec(), b"three".to_vec()],
        ),
        "/html/page" => Action::Respond(
            200,
            vec![("content-type".into(), "text/html".into())],
            b"<p>hello old world</p>".to_vec(),
        ),
        "/empty" => Action::Respond(204, vec![], vec![]),
        _ => ok(&format!("{} {} {}", r.method, r.path, r.body.len())),
    })
}

fn config(port: u16, upstream: &str, log: &std::path::Path) -> String {
    format!(
        r#"{BASIC}
[servers.main]
addr = "127.0.0.1:{port}"
http2 = true
access_log = "{{engine}} {{method}} {{path}} {{status}} {{proto}}"
access_log_path = "{log}"
locations = ["mock", "html", "all"]

[locations.all]
host = "app.test"
upstream = "backend"

[locations.mock]
host = "app.test"
path = "/mock"
plugins = ["stub"]

[locations.html]
host = "app.test"
path = "/html/"
upstream = "backend"
plugins = ["rebrand"]

[plugins.stub]
category = "mock"
status = 201
body = "stubbed"

[plugins.rebrand]
category = "sub_filter"
rules = [{{ find = "old", replace = "new" }}]

[upstreams.backend]
addrs = ["{upstream}"]
"#,
        log = log.display()
    )
}

/// The access log's lines, once it holds `n`.
fn log_lines(path: &std::path::Path, n: usize) -> Vec<String> {
    let read = || {
        std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    assert!(
        wait_until(Duration::from_secs(10), || read().len() >= n),
        "the access log has {} lines, not {n}: {:?}",
        read().len(),
        read()
    );
    read()
}

#[test]
fn streams_are_served_here_and_grpc_by_pingoras_path() {
    let origin = origin();
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    let _t = Tidegate::start(&config(port, &origin.addr.to_string(), &log), &[port]);
    rt().block_on(async {
        let client = h2c(port).await;
        // 30 GETs at once, a POST with a body and a HEAD among them, on one connection
        let mut tasks = Vec::new();
        for i in 0..30 {
            let c = client.clone();
            tasks.push(tokio::spawn(async move {
                call(&c, "GET", &format!("/g{i}"), b"").await
            }));
        }
        let c = client.clone();
        let post = tokio::spawn(async move { call(&c, "POST", "/p", b"hello").await });
        let c = client.clone();
        let sized = tokio::spawn(async move {
            call_with(&c, "PUT", "/q", &[("content-length", "3")], b"abc").await
        });
        let c = client.clone();
        let grpc = tokio::spawn(async move {
            call_with(
                &c,
                "POST",
                "/r",
                &[("content-type", "application/grpc")],
                b"xy",
            )
            .await
        });
        let c = client.clone();
        let head = tokio::spawn(async move { call(&c, "HEAD", "/h", b"").await });
        for (i, t) in tasks.into_iter().enumerate() {
            let a = t.await.unwrap();
            assert_eq!(a.status, 200);
            assert_eq!(String::from_utf8_lossy(&a.body), format!("GET /g{i} 0"));
        }
        let post = post.await.unwrap();
        assert_eq!(
            (post.status, post.body.as_slice()),
            (200, &b"POST /p 5"[..])
        );
        let sized = sized.await.unwrap();
        assert_eq!(
            (sized.status, sized.body.as_slice()),
            (200, &b"PUT /q 3"[..])
        );
        let grpc = grpc.await.unwrap();
        assert_eq!(
            (grpc.status, grpc.body.as_slice()),
            (200, &b"POST /r 2"[..])
        );
        let head = head.await.unwrap();
        assert_eq!(head.status, 200);
        assert!(head.body.is_empty(), "HEAD has no body");
        assert_eq!(
            head.headers.get("content-length").map(|v| v.as_bytes()),
            Some(&b"9"[..]),
            "HEAD keeps the origin's length (of `HEAD /h 0`)"
        );
        // one after the other: the upstream connections are reused
        let before = origin.connections.load(std::sync::atomic::Ordering::SeqCst);
        for i in 0..20 {
            let a = call(&client, "GET", &format!("/s{i}"), b"").await;
            assert_eq!(String::from_utf8_lossy(&a.body), format!("GET /s{i} 0"));
        }
        let after = origin.connections.load(std::sync::atomic::Ordering::SeqCst);
        assert!(
            after - before <= 1,
            "20 sequential streams opened {} upstream connections",
            after - before
        );
    });
    // what the upstream got: Host from :authority, the forwarding headers, no h2 pseudo-fields
    let seen = origin.seen.lock().unwrap().clone();
    let g0 = seen.iter().find(|r| r.path == "/g0").unwrap();
    assert_eq!(g0.header("host"), Some("app.test"));
    assert_eq!(g0.header("x-forwarded-for"), Some("127.0.0.1"));
    assert_eq!(g0.header("x-forwarded-proto"), Some("http"));
    // a body of no declared length goes on chunked; a declared one with its length
    let p = seen.iter().find(|r| r.path == "/p").unwrap();
    assert_eq!(p.header("transfer-encoding"), Some("chunked"));
    assert_eq!(p.body, b"hello");
    let q = seen.iter().find(|r| r.path == "/q").unwrap();
    assert_eq!(q.header("content-length"), Some("3"));
    assert_eq!(q.header("transfer-encoding"), None);
    assert_eq!(q.body, b"abc");
    let lines = log_lines(&log, 54);
    let engine_of = |path: &str| {
        let line = lines
            .iter()
            .find(|l| l.split(' ').nth(2) == Some(path))
            .unwrap_or_else(|| panic!("no log line for {path}: {lines:?}"));
        line.split(' ').next().unwrap().to_string()
    };
    assert_eq!(engine_of("/g7"), "h2");
    assert_eq!(engine_of("/h"), "h2");
    assert_eq!(engine_of("/s3"), "h2");
    assert_eq!(engine_of("/p"), "h2");
    assert_eq!(engine_of("/q"), "h2");
    assert_eq!(engine_of("/r"), "pingora", "gRPC goes to Pingora's path");
    assert!(lines.iter().all(|l| l.ends_with(" HTTP/2.0")), "{lines:?}");
}

#[test]
fn answers_error_pages_filters_and_framings_on_the_own_path() {
    let origin = origin();
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    // a second upstream on a port nothing listens on
    let down = free_port();
    let cfg = config(port, &origin.addr.to_string(), &log).replace(
        "locations = [\"mock\", \"html\", \"all\"]",
        "locations = [\"mock\", \"html\", \"down\", \"all\"]",
    ) + &format!(
        "\n[locations.down]\nhost = \"app.test\"\npath = \"/down\"\nupstream = \"gone\"\n\n\
         [upstreams.gone]\naddrs = [\"127.0.0.1:{down}\"]\n"
    );
    let _t = Tidegate::start(&cfg, &[port]);
    rt().block_on(async {
        let client = h2c(port).await;
        let a = call(&client, "GET", "/mock", b"").await;
        assert_eq!((a.status, a.body.as_slice()), (201, &b"stubbed"[..]));
        let a = call(&client, "GET", "/chunked", b"").await;
        assert_eq!((a.status, a.body.as_slice()), (200, &b"one-two-three"[..]));
        let a = call(&client, "GET", "/html/page", b"").await;
        assert_eq!(a.body, b"<p>hello new world</p>", "the body filter ran");
        assert!(a.headers.get("content-length").is_none());
        let a = call(&client, "GET", "/empty", b"").await;
        assert_eq!((a.status, a.body.len()), (204, 0));
        let a = call(&client, "GET", "/down/x", b"").await;
        assert_eq!(a.status, 502);
        assert!(
            String::from_utf8_lossy(&a.body).contains("502"),
            "the error page"
        );
        // another host: no location
        let req = http::Request::builder()
            .uri("http://nowhere.test/")
            .body(())
            .unwrap();
        let mut c = client.clone().ready().await.unwrap();
        let (resp, _) = c.send_request(req, true).unwrap();
        assert_eq!(resp.await.unwrap().status(), 404);
    });
    let lines = log_lines(&log, 6);
    for l in &lines {
        assert!(l.starts_with("h2 "), "served by the own path: {l}");
    }
    assert!(
        lines.iter().any(|l| l.contains(" /down/x 502 ")),
        "{lines:?}"
    );
    assert!(lines.iter().any(|l| l.contains(" / 404 ")), "{lines:?}");
}

#[test]
fn request_bodies_over_the_limit_get_413_declared_or_counted() {
    let origin = origin();
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    let cfg = config(port, &origin.addr.to_string(), &log).replace(
        "[locations.all]\n",
        "[locations.all]\nclient_max_body_size = \"10B\"\n",
    );
    let _t = Tidegate::start(&cfg, &[port]);
    rt().block_on(async {
        let client = h2c(port).await;
        // declared: refused before any of it is read
        let big = [b'x'; 20];
        let a = call_with(&client, "POST", "/d", &[("content-length", "20")], &big).await;
        assert_eq!(a.status, 413);
        // not declared: counted as it streams
        let a = call(&client, "POST", "/c", &big).await;
        assert_eq!(a.status, 413);
        // within the limit
        let a = call(&client, "POST", "/ok", b"small").await;
        assert_eq!((a.status, a.body.as_slice()), (200, &b"POST /ok 5"[..]));
    });
    let seen = origin.seen.lock().unwrap().clone();
    assert!(
        seen.iter().all(|r| r.path != "/d"),
        "a declared body over the limit never reaches the origin"
    );
    let lines = log_lines(&log, 3);
    assert!(lines.iter().all(|l| l.starts_with("h2 ")), "{lines:?}");
}
