//! Bad input: request smuggling, size limits, malformed headers, slow clients.
//! Each case asserts the status, and that the origin never saw a request it should not have.

mod common;
use common::*;
use std::io::{Read, Write};
use std::time::Duration;

fn setup(server_extra: &str, location_extra: &str) -> (Tidegate, u16, Origin) {
    let port = free_port();
    let origin = Origin::start(|r| ok(&format!("{} {}", r.method, r.path)));
    let cfg = format!(
        r#"
[basic]
threads = 2
[servers.main]
addr = "127.0.0.1:{port}"
locations = ["all"]
{server_extra}
[locations.all]
upstream = "backend"
{location_extra}
[upstreams.backend]
addrs = ["{}"]
"#,
        origin.addr
    );
    (Tidegate::start(&cfg, &[port]), port, origin)
}

/// The start of a raw request, for assertion messages.
fn show(raw: &[u8]) -> String {
    let s = String::from_utf8_lossy(raw);
    s.chars().take(160).collect()
}

/// Send `raw`, expect `status`, and expect nothing after it on the wire: when tidegate closes
/// the connection, no second response before the close; when it keeps it (a request read
/// whole), the next response is the one to the next request, so nothing of `raw` was taken
/// as a request.
fn refused(port: u16, raw: &[u8], status: u16) {
    let s = connect(port);
    (&s).write_all(raw).unwrap();
    let mut r = std::io::BufReader::new(s);
    let resp = read_response(&mut r, false).unwrap_or_else(|e| panic!("{e} for {:?}", show(raw)));
    assert_eq!(resp.status, status, "for {:?}", show(raw));
    if resp.header("connection") == Some("close") {
        let mut rest = Vec::new();
        let _ = r.read_to_end(&mut rest);
        assert!(
            !String::from_utf8_lossy(&rest).contains("HTTP/1.1"),
            "a second response followed: {:?}",
            String::from_utf8_lossy(&rest)
        );
    } else {
        (r.get_ref())
            .write_all(b"GET /after HTTP/1.1\r\nHost: a\r\n\r\n")
            .unwrap();
        let next = read_response(&mut r, false).expect("the next response");
        assert_eq!(next.text(), "GET /after", "after {:?}", show(raw));
    }
}

#[test]
fn smuggling_attempts_get_400_and_never_reach_the_origin() {
    let (_t, port, origin) = setup("", "");
    let smuggled = "GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n";
    let cases = [
        // CL + TE together
        format!("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n{smuggled}"),
        format!("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\ncontent-length: 40\r\n\r\n0\r\n\r\n{smuggled}"),
        // obfuscated transfer encodings
        format!("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n{smuggled}"),
        format!("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n{smuggled}"),
        format!("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity, chunked\r\n\r\n0\r\n\r\n{smuggled}"),
        format!("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n{smuggled}"),
        format!("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n{smuggled}"),
        // duplicate or signed Content-Length
        format!("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcd{smuggled}"),
        format!("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +4\r\n\r\nabcd{smuggled}"),
        format!("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n{smuggled}"),
        // HTTP/1.0 with Transfer-Encoding
        format!("POST / HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n{smuggled}"),
    ];
    for raw in &cases {
        refused(port, raw.as_bytes(), 400);
    }
    assert_eq!(origin.count(), 0, "origin saw: {:?}", origin.requests());
}

#[test]
fn bad_chunk_sizes_are_refused() {
    let (_t, port, origin) = setup("", "");
    for size in ["zz", "-1", "fffffffffffffffffffff", "5 5"] {
        let raw = format!("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n{size}\r\nhello\r\n0\r\n\r\n");
        refused(port, raw.as_bytes(), 400);
    }
    // the framing is checked before any upstream is chosen: no connection was ever made
    assert_eq!(
        origin.connections.load(std::sync::atomic::Ordering::SeqCst),
        0
    );
    assert_eq!(origin.count(), 0);
}

#[test]
fn malformed_header_names_get_400() {
    let (_t, port, origin) = setup("", "");
    for raw in [
        &b"GET / HTTP/1.1\r\nHost: a\r\nBad\0Name: x\r\n\r\n"[..],
        &b"GET / HTTP/1.1\r\nHost: a\r\nBad Name: x\r\n\r\n"[..],
        &b"GET / HTTP/1.1\r\nHost: a\r\nBad\rName: x\r\n\r\n"[..],
        &b"GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n"[..],
    ] {
        refused(port, raw, 400);
    }
    assert_eq!(origin.count(), 0);
}

#[test]
fn size_limits_431_414_413() {
    let (_t, port, origin) = setup("", "client_max_body_size = \"1KB\"");
    // header block over 64 KiB
    let big = "a".repeat(70 * 1024);
    refused(
        port,
        format!("GET / HTTP/1.1\r\nHost: a\r\nX-Big: {big}\r\n\r\n").as_bytes(),
        431,
    );
    // a 60 KiB header is fine
    let fine = "a".repeat(60 * 1024);
    assert_eq!(get(port, "a", "/", &[("x-big", &fine)]).status, 200);
    // URI over 8 KiB
    let long = "b".repeat(9 * 1024);
    refused(
        port,
        format!("GET /{long} HTTP/1.1\r\nHost: a\r\n\r\n").as_bytes(),
        414,
    );
    // declared body over client_max_body_size
    let before = origin.count();
    let body = vec![b'x'; 2048];
    assert_eq!(request(port, "POST", "a", "/", &[], &body).status, 413);
    // chunked body over the limit
    let mut raw = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for _ in 0..4 {
        raw.extend_from_slice(b"200\r\n");
        raw.extend_from_slice(&[b'y'; 512]);
        raw.extend_from_slice(b"\r\n");
    }
    raw.extend_from_slice(b"0\r\n\r\n");
    refused(port, &raw, 413);
    assert_eq!(
        origin.count(),
        before,
        "the chunked body over the limit reached the origin"
    );
    // a body under the limit passes
    assert_eq!(
        request(port, "POST", "a", "/", &[], &[b'z'; 1000]).status,
        200
    );
}

#[test]
fn limits_are_configurable() {
    // sizes as a string with a unit or as a plain number of bytes
    let (_t, port, _o) = setup("max_header_size = \"2KB\"\nmax_uri_size = 100", "");
    refused(
        port,
        format!(
            "GET / HTTP/1.1\r\nHost: a\r\nX: {}\r\n\r\n",
            "c".repeat(3000)
        )
        .as_bytes(),
        431,
    );
    refused(
        port,
        format!("GET /{} HTTP/1.1\r\nHost: a\r\n\r\n", "d".repeat(150)).as_bytes(),
        414,
    );
    assert_eq!(get(port, "a", "/short", &[]).status, 200);
}

#[test]
fn slowloris_is_cut_at_the_header_timeout_while_others_are_served() {
    let (_t, port, _o) = setup("header_timeout = \"1s\"", "");
    let slow = connect(port);
    (&slow).write_all(b"GET / HTTP/1.1\r\nHost: a\r\n").unwrap();
    let dripper = {
        let slow = slow.try_clone().unwrap();
        std::thread::spawn(move || {
            // one header line every 200 ms, at most 100 of them (20 s)
            for i in 0..100 {
                std::thread::sleep(Duration::from_millis(200));
                if (&slow)
                    .write_all(format!("X-{i}: y\r\n").as_bytes())
                    .is_err()
                {
                    return i;
                }
            }
            100
        })
    };
    // normal clients keep getting answers meanwhile
    for _ in 0..5 {
        assert_eq!(get(port, "a", "/", &[]).status, 200);
    }
    // the slow connection is closed by tidegate: read sees EOF or reset, not our read timeout
    // (20 s, while the dripper would keep the header coming for 20 s)
    let mut buf = [0u8; 64];
    let res = (&slow).read(&mut buf);
    assert!(
        matches!(res, Ok(0))
            || matches!(&res, Err(e) if e.kind() != std::io::ErrorKind::WouldBlock && e.kind() != std::io::ErrorKind::TimedOut),
        "slow client not cut: {res:?}"
    );
    let lines_sent = dripper.join().unwrap();
    assert!(lines_sent < 100, "dripper was never cut off");
}

#[test]
fn slow_body_is_cut_at_the_body_timeout() {
    let (_t, port, origin) = setup("body_timeout = \"1s\"", "");
    let s = connect(port);
    (&s).write_all(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\nonly-ten!!")
        .unwrap();
    let mut r = std::io::BufReader::new(s);
    // the client's own read timeout (20 s) is far past the 1 s body timeout: a 408 means
    // tidegate cut it
    let resp = read_response(&mut r, false).expect("a 408 before the client gives up");
    assert_eq!(resp.status, 408);
    assert_eq!(resp.header("connection"), Some("close"));
    // the origin never got a request it could take as complete
    assert_eq!(origin.count(), 0, "{:?}", origin.requests());
    assert_eq!(get(port, "a", "/", &[]).status, 200);
}

#[test]
fn pipelined_request_after_a_refused_upgrade_does_not_reach_the_origin() {
    let port = free_port();
    // the origin refuses the upgrade with a plain 200
    let origin = Origin::start(|r| ok(&r.path));
    let cfg = simple_config(port, &[origin.addr.to_string()], "", "");
    let _t = Tidegate::start(&cfg, &[port]);
    let raw = b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\nGET /second HTTP/1.1\r\nHost: a\r\n\r\n";
    let s = connect(port);
    (&s).write_all(raw).unwrap();
    let mut r = std::io::BufReader::new(s);
    let first = read_response(&mut r, false).expect("a response to the upgrade request");
    assert_eq!(first.text(), "/ws");
    let mut rest = Vec::new();
    let _ = r.read_to_end(&mut rest);
    let rest = String::from_utf8_lossy(&rest);
    assert!(
        !rest.contains("/second") || rest.contains(" 400 "),
        "second request proxied: {rest:?}"
    );
    assert!(
        origin.requests().iter().all(|r| r.path != "/second"),
        "the origin saw the pipelined request: {:?}",
        origin.requests()
    );
}

#[test]
fn garbage_never_crashes_the_proxy() {
    let (t, port, _o) = setup("", "");
    let inputs: Vec<Vec<u8>> = vec![
        b"\r\n\r\n".to_vec(),
        b"GET\r\n\r\n".to_vec(),
        b"GET / HTTP/9.9\r\n\r\n".to_vec(),
        vec![0u8; 5000],
        (0..=255u8).cycle().take(20_000).collect(),
        b"GET /%00%ff HTTP/1.1\r\nHost: \xff\xfe\r\n\r\n".to_vec(),
        b"GET http://evil/ HTTP/1.1\r\nHost: a\r\n\r\n".to_vec(),
        b"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n".to_vec(),
        b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n".to_vec(),
        format!("GET / HTTP/1.1\r\n{}\r\n", "X: y\r\n".repeat(300)).into_bytes(),
    ];
    for raw in inputs {
        let s = connect(port);
        let _ = (&s).write_all(&raw);
        // end of input: a kept connection then closes too
        let _ = s.shutdown(std::net::Shutdown::Write);
        let mut sink = Vec::new();
        let _ = (&s).take(1 << 20).read_to_end(&mut sink);
    }
    assert_eq!(get(port, "a", "/", &[]).status, 200, "still serving");
    assert!(!t.stderr().contains("panicked"), "{}", t.stderr());
}
