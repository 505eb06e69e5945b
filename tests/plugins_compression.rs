//! `compression` through real sockets: each coding decoded in the test and compared with
//! the origin's body, q-values, a chunked body of unknown length streamed, the responses left
//! alone, HTTP/2, and bad configs.

mod common;
use common::plugins::*;
use common::*;
use std::io::Read;

/// A body that compresses well but is not trivial: numbered lines.
fn page(lines: usize) -> Vec<u8> {
    (0..lines)
        .map(|i| format!("<p>line {i} of a page served by the origin</p>\n"))
        .collect::<String>()
        .into_bytes()
}

fn decode(coding: &str, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    match coding {
        "gzip" => {
            flate2::read::GzDecoder::new(body)
                .read_to_end(&mut out)
                .expect("gzip");
        }
        "br" => {
            brotli::Decompressor::new(body, 4096)
                .read_to_end(&mut out)
                .expect("brotli");
        }
        "zstd" => out = zstd::decode_all(body).expect("zstd"),
        other => panic!("unexpected coding {other}"),
    }
    out
}

fn origin() -> Origin {
    Origin::start(|r| {
        let html = (
            "content-type".to_string(),
            "text/html; charset=utf-8".to_string(),
        );
        let etag = ("etag".to_string(), "\"v1\"".to_string());
        match r.path.as_str() {
            "/page" => Action::Respond(200, vec![html, etag], page(500)),
            "/stream" => Action::Chunked(200, vec![html], (0..40).map(|_| page(50)).collect()),
            "/png" => Action::Respond(
                200,
                vec![("content-type".into(), "image/png".into())],
                page(500),
            ),
            "/small" => Action::Respond(200, vec![html], b"<p>tiny</p>".to_vec()),
            "/encoded" => Action::Respond(
                200,
                vec![html, ("content-encoding".into(), "gzip".into())],
                page(10),
            ),
            "/no-transform" => Action::Respond(
                200,
                vec![
                    html,
                    ("cache-control".into(), "public, no-transform".into()),
                ],
                page(500),
            ),
            "/range" => Action::Respond(
                206,
                vec![html, ("content-range".into(), "bytes 0-99/1000".into())],
                page(500),
            ),
            _ => Action::Respond(404, vec![html], page(500)),
        }
    })
}

fn config(port: u16, o: &Origin) -> String {
    format!(
        r#"
[servers.main]
addr = "127.0.0.1:{port}"
http2 = true
locations = ["mock", "all"]

[locations.all]
path = "/"
upstream = "backend"
plugins = ["gz"]

[locations.mock]
path = "/mock"
plugins = ["gz", "answer"]

[upstreams.backend]
addrs = ["{}"]

[plugins.gz]
category = "compression"
min_length = "1KB"
levels = {{ gzip = 5, br = 4, zstd = 3 }}

[plugins.answer]
category = "mock"
headers = ["content-type: text/html"]
body = "{}"
"#,
        o.addr,
        "x".repeat(3000)
    )
}

#[test]
fn each_coding_round_trips_and_the_headers_follow_rfc_9110() {
    let o = origin();
    let port = free_port();
    let t = Tidegate::start(&config(port, &o), &[port]);
    let want = page(500);
    for (accept, coding) in [
        ("gzip", "gzip"),
        ("br", "br"),
        ("zstd", "zstd"),
        ("gzip, deflate, br, zstd", "zstd"),
        ("gzip;q=1, br;q=0.5, zstd;q=0.1", "gzip"),
        ("*", "zstd"),
    ] {
        let r = get(port, "h", "/page", &[("accept-encoding", accept)]);
        assert_eq!(r.status, 200, "{}", t.stderr());
        assert_eq!(r.header("content-encoding"), Some(coding), "{accept}");
        assert!(
            r.header("content-length").is_none(),
            "{accept}: {:?}",
            r.headers
        );
        assert_eq!(r.header("vary"), Some("Accept-Encoding"));
        assert_eq!(r.header("etag"), Some("W/\"v1\""), "a weak validator");
        assert!(
            r.body.len() < want.len() / 4,
            "{accept}: {} bytes",
            r.body.len()
        );
        assert_eq!(decode(coding, &r.body), want, "{accept}");
    }
    // no acceptable coding: as it is, but still marked as varying
    for accept in ["", "identity", "gzip;q=0", "deflate"] {
        let headers: Vec<(&str, &str)> = if accept.is_empty() {
            vec![]
        } else {
            vec![("accept-encoding", accept)]
        };
        let r = get(port, "h", "/page", &headers);
        assert!(r.header("content-encoding").is_none(), "{accept}");
        assert_eq!(r.body, want);
        assert_eq!(r.header("etag"), Some("\"v1\""));
        assert_eq!(r.header("vary"), Some("Accept-Encoding"));
    }
}

#[test]
fn a_chunked_body_is_compressed_as_it_streams() {
    let o = origin();
    let port = free_port();
    let t = Tidegate::start(&config(port, &o), &[port]);
    let want: Vec<u8> = (0..40).flat_map(|_| page(50)).collect();
    for coding in ["gzip", "br", "zstd"] {
        let r = get(port, "h", "/stream", &[("accept-encoding", coding)]);
        assert_eq!(r.status, 200, "{}", t.stderr());
        assert_eq!(r.header("content-encoding"), Some(coding));
        assert_eq!(decode(coding, &r.body), want, "{coding}");
    }
    // and over HTTP/2 (Pingora's path)
    let (status, _headers, body) = common::lua::h2_request(port, "GET", "/stream", b"");
    assert_eq!(status, 200);
    assert_eq!(body, want, "no Accept-Encoding over h2: identity");
}

#[test]
fn responses_it_must_leave_alone() {
    let o = origin();
    let port = free_port();
    let t = Tidegate::start(&config(port, &o), &[port]);
    let gz = [("accept-encoding", "gzip, br, zstd")];
    for path in ["/png", "/small", "/no-transform", "/range", "/encoded"] {
        let r = get(port, "h", path, &gz);
        assert!(r.status == 200 || r.status == 206, "{path}: {}", t.stderr());
        let enc = r.header("content-encoding");
        assert!(
            enc.is_none() || (path == "/encoded" && enc == Some("gzip")),
            "{path}: {enc:?}"
        );
        assert!(
            r.header("content-length").is_some(),
            "{path} keeps its length"
        );
    }
    let r = get(port, "h", "/encoded", &gz);
    assert_eq!(r.body, page(10), "an encoded body passes through untouched");
    // HEAD: no body, no coding
    let r = request(port, "HEAD", "h", "/page", &gz, b"");
    assert!(r.header("content-encoding").is_none());
    // an answer tidegate made itself (mock) is sent as it is
    let r = get(port, "h", "/mock", &gz);
    assert_eq!(r.status, 200);
    assert!(r.header("content-encoding").is_none());
    assert_eq!(r.body.len(), 3000);
}

#[test]
fn check_names_the_key_of_a_bad_compression_config() {
    for (body, key, says) in [
        ("algorithms = [\"deflate\"]", "algorithms", "not one of"),
        ("algorithms = []", "algorithms", "at least one"),
        ("min_length = \"big\"", "min_length", "not a size"),
        ("types = [\"html\"]", "types", "not a type"),
        ("levels = { gzip = 12 }", "levels", "out of 1..=9"),
        ("levels = { lz4 = 1 }", "levels", "not one of"),
    ] {
        assert_check_refuses("compression", body, key, says);
    }
}
