//! Request bodies on the own HTTP/1 loop: chunked bodies streamed to the upstream as they
//! come (re-framed, counted against `client_max_body_size`), and `Expect: 100-continue`
//! answered with `100 Continue` only once the body is wanted.

mod common;

use common::*;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

/// What the streaming origin got: each head's lines (lower case), and the decoded body of
/// the latest request so far.
#[derive(Default)]
struct Got {
    heads: Vec<Vec<String>>,
    body: Vec<u8>,
}

/// An origin that reads a chunked request body piece by piece (recording each piece as it
/// arrives) and answers with the body's length once it ended.
fn streaming_origin() -> (u16, Arc<Mutex<Got>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let got: Arc<Mutex<Got>> = Arc::default();
    let g = got.clone();
    std::thread::spawn(move || {
        for s in listener.incoming() {
            let Ok(s) = s else { continue };
            let got = g.clone();
            std::thread::spawn(move || {
                let mut w = s.try_clone().unwrap();
                let mut r = BufReader::new(s);
                let line = |r: &mut BufReader<_>| {
                    let mut l = String::new();
                    (r.read_line(&mut l).unwrap_or(0) > 0).then_some(l)
                };
                loop {
                    let mut head = Vec::new();
                    loop {
                        let Some(l) = line(&mut r) else { return };
                        if l == "\r\n" {
                            break;
                        }
                        head.push(l.trim_end().to_ascii_lowercase());
                    }
                    {
                        let mut g = got.lock().unwrap();
                        g.heads.push(head);
                        g.body.clear();
                    }
                    loop {
                        let Some(size) = line(&mut r) else { return };
                        let Ok(n) = usize::from_str_radix(size.trim_end(), 16) else {
                            return;
                        };
                        let mut data = vec![0; n + 2];
                        if r.read_exact(&mut data).is_err() {
                            return;
                        }
                        if n == 0 {
                            break;
                        }
                        got.lock().unwrap().body.extend_from_slice(&data[..n]);
                    }
                    let len = got.lock().unwrap().body.len();
                    let answer = format!(
                        "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{len}",
                        len.to_string().len()
                    );
                    if w.write_all(answer.as_bytes()).is_err() {
                        return;
                    }
                }
            });
        }
    });
    (port, got)
}

/// tidegate before `origin`, with `location_extra` in its one location (and what follows it).
fn start(origin: u16, location_extra: &str) -> (Tidegate, u16) {
    let port = free_port();
    let cfg = simple_config(port, &[format!("127.0.0.1:{origin}")], "", "").replace(
        "upstream = \"backend\"\n",
        &format!("upstream = \"backend\"\n{location_extra}\n"),
    );
    (Tidegate::start(&cfg, &[port]), port)
}

#[test]
fn chunked_bodies_stream_to_the_upstream_as_they_come() {
    let (up, got) = streaming_origin();
    let (_t, port) = start(up, "");
    let s = connect(port);
    let mut r = BufReader::new(s.try_clone().unwrap());
    // the head and a first chunk (read before a peer is chosen), then a second chunk only
    // once the origin has the first, and the rest only once it has the second: a proxy that
    // waited for the whole body would never pass these points
    (&s).write_all(
        b"POST /up HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n",
    )
    .unwrap();
    assert!(
        wait_until(WAIT, || got.lock().unwrap().body == b"hello"),
        "the first chunk did not reach the origin before the rest was sent"
    );
    (&s).write_all(b"1\r\n-\r\n").unwrap();
    assert!(
        wait_until(WAIT, || got.lock().unwrap().body == b"hello-"),
        "the second chunk was held back"
    );
    let big = vec![b'x'; 100_000];
    let mut rest = format!("{:x}\r\n", big.len()).into_bytes();
    rest.extend_from_slice(&big);
    rest.extend_from_slice(b"\r\n1\r\n!\r\n0\r\nx-trailer: t\r\n\r\n");
    (&s).write_all(&rest).unwrap();
    let a = read_response(&mut r, false).unwrap();
    assert_eq!(a.status, 200);
    assert_eq!(a.text(), (5 + 1 + 100_000 + 1).to_string());
    {
        let g = got.lock().unwrap();
        assert!(g.body.starts_with(b"hello-x") && g.body.ends_with(b"x!"));
        let head = &g.heads[0];
        assert!(
            head.contains(&"transfer-encoding: chunked".to_string()),
            "{head:?}"
        );
        assert!(
            !head.iter().any(|l| l.starts_with("content-length")),
            "{head:?}"
        );
    }
    // the body's end was found: the next request on the connection is served
    (&s).write_all(
        b"PUT /again HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    )
    .unwrap();
    let b = read_response(&mut r, false).unwrap();
    assert_eq!((b.status, b.text()), (200, "0".to_string()));
}

#[test]
fn chunked_bodies_over_the_limit_and_broken_ones_are_refused() {
    let (up, got) = streaming_origin();
    let (_t, port) = start(up, "client_max_body_size = \"1KB\"");
    // 3 × 512 bytes: the third chunk passes the limit while the body is streamed
    let mut raw = b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for _ in 0..3 {
        raw.extend_from_slice(b"200\r\n");
        raw.extend_from_slice(&[b'y'; 512]);
        raw.extend_from_slice(b"\r\n");
    }
    raw.extend_from_slice(b"0\r\n\r\n");
    let a = send(port, &raw).unwrap();
    assert_eq!(a.status, 413);
    assert_eq!(a.header("connection"), Some("close"));
    // a chunk without its CRLF, after a good one: 400, the connection closed
    let raw = b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n2\r\nbcX\r\n0\r\n\r\n";
    let b = send(port, raw).unwrap();
    assert_eq!(b.status, 400);
    // a body under the limit goes through
    let c = send(
        port,
        b"POST / HTTP/1.1\r\nHost: h\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
    )
    .unwrap();
    assert_eq!((c.status, c.text()), (200, "3".to_string()));
    assert_eq!(got.lock().unwrap().body, b"abc");
}

#[test]
fn expect_100_continue_is_answered_once_the_body_is_wanted() {
    let origin = Origin::start(|r| ok(&format!("{} {}", r.path, r.body.len())));
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("deny.lua");
    std::fs::write(
        &script,
        r#"
local M = {}
function M.on_request(req)
  if req.path == "/deny" then return req:respond(401, "no") end
end
return M
"#,
    )
    .unwrap();
    let extra = format!(
        "plugins = [\"deny\"]\n\n[plugins.deny]\ncategory = \"lua\"\npath = \"{}\"",
        script.display()
    );
    let (_t, port) = start(origin.port(), &extra);
    let s = connect(port);
    let mut r = BufReader::new(s.try_clone().unwrap());
    // the client sends its head and waits: the 100 comes before any body byte was sent
    (&s).write_all(
        b"POST /in HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n",
    )
    .unwrap();
    let interim = read_response(&mut r, false).unwrap();
    assert_eq!(interim.status, 100);
    (&s).write_all(b"hello").unwrap();
    let a = read_response(&mut r, false).unwrap();
    assert_eq!((a.status, a.text()), (200, "/in 5".to_string()));
    // chunked, on the same connection
    (&s).write_all(b"POST /c HTTP/1.1\r\nHost: h\r\nExpect: 100-Continue\r\nTransfer-Encoding: chunked\r\n\r\n")
        .unwrap();
    assert_eq!(read_response(&mut r, false).unwrap().status, 100);
    (&s).write_all(b"2\r\nhi\r\n0\r\n\r\n").unwrap();
    assert_eq!(read_response(&mut r, false).unwrap().text(), "/c 2");
    assert_eq!(
        origin.requests()[0].header("expect"),
        Some("100-continue"),
        "the expectation goes on, as on Pingora's path"
    );
    // refused before the body is wanted: the final answer at once, no 100, and the
    // connection closes (the body the client may still send is never read)
    (&s).write_all(
        b"POST /deny HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n",
    )
    .unwrap();
    let d = read_response(&mut r, false).unwrap();
    assert_eq!((d.status, d.text()), (401, "no".to_string()));
    assert_eq!(d.header("connection"), Some("close"));
    assert_eq!(origin.count(), 2);
}
