//! Differential test of the two HTTP/1 engines: the same raw requests go to a tidegate on the
//! own loop (`engine = "native"`) and to one on Pingora's path (`engine = "pingora"`), each
//! in front of its own recording origin. For every request the status must agree, and so
//! must the bytes the origin received (header names compared without case: the own loop
//! sends them in lower case when a plugin built the head into a map). The requests are the
//! smuggling corpus plus variants generated from a plain request: methods, targets,
//! versions, line ends, Host, Content-Length,
//! chunked bodies, `Expect`, upgrades (refused by this origin), Connection, hop-by-hop fields
//! and field whitespace. No difference is allowed here (the
//! ones the fuzz target `h1_head` allows are about refusal statuses of heads that are not in
//! this corpus; `docs/request-lifecycle.md` lists them).

mod common;

use common::*;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener};
use std::sync::{Arc, Mutex};
use std::time::Duration;

type Seen = Arc<Mutex<Vec<Vec<u8>>>>;

/// An origin that records each request's raw head and body (Content-Length framed, or
/// chunked up to the last chunk) and answers 200 "ok".
fn recording_origin() -> (u16, Seen) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen: Seen = Arc::default();
    let s2 = seen.clone();
    std::thread::spawn(move || {
        for s in listener.incoming() {
            let Ok(s) = s else { continue };
            let seen = s2.clone();
            std::thread::spawn(move || serve(s, seen));
        }
    });
    (port, seen)
}

fn serve(s: std::net::TcpStream, seen: Seen) {
    s.set_read_timeout(Some(Duration::from_secs(10))).ok();
    let Ok(mut w) = s.try_clone() else { return };
    let mut r = BufReader::new(s);
    loop {
        let mut raw = Vec::new();
        let (mut len, mut chunked) = (0usize, false);
        loop {
            let mut line = Vec::new();
            if r.read_until(b'\n', &mut line).unwrap_or(0) == 0 {
                return;
            }
            raw.extend_from_slice(&line);
            let l = String::from_utf8_lossy(&line).to_ascii_lowercase();
            if let Some(v) = l.strip_prefix("content-length:") {
                len = v.trim().parse().unwrap_or(0);
            }
            if l.starts_with("transfer-encoding:") && l.contains("chunked") {
                chunked = true;
            }
            if line == b"\r\n" {
                break;
            }
        }
        if chunked {
            while !raw.ends_with(b"\r\n0\r\n\r\n") && !raw.ends_with(b"\n\r\n0\r\n\r\n") {
                let mut line = Vec::new();
                if r.read_until(b'\n', &mut line).unwrap_or(0) == 0 {
                    return;
                }
                raw.extend_from_slice(&line);
            }
        } else {
            let mut body = vec![0; len];
            if r.read_exact(&mut body).is_err() {
                return;
            }
            raw.extend_from_slice(&body);
        }
        seen.lock().unwrap().push(raw);
        if w.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            .is_err()
        {
            return;
        }
    }
}

/// A request as the origin saw it, for comparison: the request line, then each field as
/// `name: value` with the name in lower case, then the body.
fn normalize(raw: &[u8]) -> String {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.split("\r\n");
    let mut out = vec![lines.next().unwrap_or("").to_string()];
    for l in lines {
        let (n, v) = l.split_once(':').unwrap_or((l, ""));
        out.push(format!("{}: {}", n.to_ascii_lowercase(), v.trim()));
    }
    out.push(body.to_string());
    out.join("\n")
}

struct Side {
    _t: Tidegate,
    port: u16,
    seen: Seen,
}

fn side(engine: &str) -> Side {
    let port = free_port();
    let (origin, seen) = recording_origin();
    let cfg = format!(
        r#"
[basic]
threads = 2
grace_period = "1s"
graceful_shutdown_timeout = "1s"
[servers.main]
addr = "127.0.0.1:{port}"
locations = ["all"]
engine = "{engine}"
max_uri_size = "300"
max_header_size = "2KB"
[locations.all]
upstream = "backend"
[upstreams.backend]
addrs = ["127.0.0.1:{origin}"]
"#
    );
    Side {
        _t: Tidegate::start(&cfg, &[port]),
        port,
        seen,
    }
}

/// Status of the first final response to `raw` (0: closed without one) and what the origin
/// got.
fn exchange(side: &Side, raw: &[u8]) -> (u16, Vec<String>) {
    side.seen.lock().unwrap().clear();
    let s = connect(side.port);
    s.set_read_timeout(Some(Duration::from_secs(10))).ok();
    let _ = (&s).write_all(raw);
    let mut r = BufReader::new(s);
    // the final response: the own loop answers `Expect: 100-continue` itself with
    // `100 Continue`, Pingora's path relays the origin's (this origin sends none)
    let mut status = 100;
    while (100..200).contains(&status) && status != 101 {
        status = read_response(&mut r, false).map_or(0, |resp| resp.status);
    }
    let _ = r.get_ref().shutdown(Shutdown::Both);
    let mut rest = Vec::new();
    let _ = r.read_to_end(&mut rest);
    let seen = side.seen.lock().unwrap();
    (status, seen.iter().map(|x| normalize(x)).collect())
}

/// Requests generated from a plain one, one change at a time and in pairs.
fn variants() -> Vec<Vec<u8>> {
    let methods = ["GET", "POST", "get", "M-SEARCH", "DELETE", "OPTIONS"];
    let targets = [
        "/p?q=1",
        "/a%20b",
        "/%zz",
        "//x/../y",
        "/a|b{c}",
        "/a\"b",
        "*",
        "/ä",
        "/a#frag",
        "/a?b=c&d=e;f",
    ];
    let versions = ["HTTP/1.1", "HTTP/1.0", "HTTP/1.2", "HTTP/2.0"];
    let hosts = [
        "Host: a",
        "Host: a:80",
        "Host: a@b",
        "Host:",
        "host:a",
        "HOST: [::1]:8",
        "Host: a\r\nHost: a",
    ];
    let fields = [
        "",
        "X-A: 1",
        "X-A:  spaced  ",
        "X-A:\ttab",
        "X-A: 1\r\nx-a: 2",
        "Content-Length: 3",
        "Content-Length: 03",
        "Content-Length: 3\r\nContent-Length: 3",
        "Content-Length: 3,3",
        "Content-Length: 3 ",
        "Connection: close",
        "Connection: keep-alive",
        "Connection: x-hop\r\nX-Hop: 1",
        "Expect: 100-continue\r\nContent-Length: 3",
        "Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13",
        "Connection: keep-alive, upgrade\r\nUpgrade: foo/2",
        "Transfer-Encoding: chunked",
        "TE: trailers",
        "Trailer: x\r\nProxy-Authorization: Basic eA==\r\nProxy-Connection: keep-alive",
        "Keep-Alive: timeout=5\r\nHTTP2-Settings: AAMAAABkAAQAAP__",
        "X-Ünï: 1",
        "X-A: caf\u{e9}",
        "X-Forwarded-For: 1.2.3.4",
        // the forwarding headers replace the client's where they stood, the rest follow
        "X-A: 1\r\nX-Forwarded-Proto: https\r\nX-B: 2\r\nx-forwarded-for: 1.1.1.1\r\nX-Forwarded-For: 2.2.2.2",
        "X-Real-IP: 9.9.9.9\r\nX-A: 1\r\nx-real-ip: 8.8.8.8",
    ];
    let mut out = Vec::new();
    let build = |m: &str, t: &str, v: &str, h: &str, f: &str, eol: &str| {
        let mut head = format!("{m} {t} {v}{eol}{h}{eol}");
        if !f.is_empty() {
            head.push_str(&f.replace("\r\n", eol));
            head.push_str(eol);
        }
        head.push_str(eol);
        let mut raw = head.into_bytes();
        if f.contains("chunked") {
            raw.extend_from_slice(b"3\r\nabc\r\n0\r\n\r\n");
        } else if f.contains("Content-Length") {
            raw.extend_from_slice(b"abc");
        }
        raw
    };
    for m in methods {
        for f in fields {
            out.push(build(m, "/p?q=1", "HTTP/1.1", "Host: a", f, "\r\n"));
        }
    }
    for t in targets {
        for v in versions {
            out.push(build("GET", t, v, "Host: a", "X-A: 1", "\r\n"));
        }
    }
    for h in hosts {
        for f in fields {
            out.push(build("GET", "/p", "HTTP/1.1", h, f, "\r\n"));
        }
    }
    for f in fields {
        out.push(build("POST", "/p", "HTTP/1.1", "Host: a", f, "\n"));
    }
    // limits: a target and a head around the configured sizes (300, 2 KiB)
    for n in [290, 300, 301, 400] {
        out.push(build(
            "GET",
            &format!("/{}", "a".repeat(n - 1)),
            "HTTP/1.1",
            "Host: a",
            "",
            "\r\n",
        ));
    }
    for n in [1900, 2000, 2048, 2100] {
        let f = format!("X-Big: {}", "b".repeat(n - 60));
        out.push(build("GET", "/p", "HTTP/1.1", "Host: a", &f, "\r\n"));
    }
    out
}

/// The smuggling corpus of `tests/bad_input.rs`, with a request after each.
fn smuggling() -> Vec<Vec<u8>> {
    let after = "GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n";
    [
        "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcd",
        "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +4\r\n\r\nabcd",
        "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n",
        "POST / HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\nBad Name: x\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\nX: a\0b\r\n\r\n",
    ]
    .iter()
    .map(|r| format!("{r}{after}").into_bytes())
    .collect()
}

#[test]
fn both_engines_give_the_same_verdicts_and_send_the_same_bytes() {
    let native = side("native");
    let pingora = side("pingora");
    let cases: Vec<Vec<u8>> = smuggling().into_iter().chain(variants()).collect();
    let mut differences = Vec::new();
    let mut served = 0;
    for raw in &cases {
        let a = exchange(&native, raw);
        let b = exchange(&pingora, raw);
        if a.0 == 200 {
            served += 1;
        }
        if a != b {
            differences.push(format!(
                "{:?}\n  native:  {a:?}\n  pingora: {b:?}",
                String::from_utf8_lossy(raw)
            ));
        }
    }
    assert!(
        differences.is_empty(),
        "{} of {} requests differ:\n{}",
        differences.len(),
        cases.len(),
        differences.join("\n")
    );
    // the corpus reaches both outcomes
    assert!(
        served > 50 && served < cases.len(),
        "served {served} of {}",
        cases.len()
    );
}
