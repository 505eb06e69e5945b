//! The own HTTP/1 loop (`engine/h1/`): upstream connection reuse, response framings relayed
//! whole, a connection handed to Pingora's path mid-way, HEAD, and the switch to Pingora's
//! engine.

mod common;

use common::*;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// An origin that answers every request with `reply(path)` as raw bytes; with `close`, it
/// closes each connection after one answer (without saying so). Counts connections.
fn raw_origin(
    close: bool,
    reply: impl Fn(&str) -> Vec<u8> + Send + Sync + 'static,
) -> (u16, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let conns = Arc::new(AtomicUsize::new(0));
    let (c2, reply) = (conns.clone(), Arc::new(reply));
    std::thread::spawn(move || {
        for s in listener.incoming() {
            let Ok(s) = s else { continue };
            c2.fetch_add(1, Ordering::SeqCst);
            let reply = reply.clone();
            std::thread::spawn(move || {
                let mut w = s.try_clone().unwrap();
                let mut r = BufReader::new(s);
                loop {
                    let mut line = String::new();
                    if r.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
                    let mut len = 0usize;
                    loop {
                        let mut h = String::new();
                        if r.read_line(&mut h).unwrap_or(0) == 0 {
                            return;
                        }
                        if h == "\r\n" {
                            break;
                        }
                        if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                            len = v.trim().parse().unwrap_or(0);
                        }
                    }
                    let mut body = vec![0; len];
                    if r.read_exact(&mut body).is_err() || w.write_all(&reply(&path)).is_err() {
                        return;
                    }
                    if close {
                        return;
                    }
                }
            });
        }
    });
    (port, conns)
}

fn start(origin_port: u16, server_extra: &str) -> (Tidegate, u16) {
    let all = "[locations.all]\nupstream = \"backend\"\n";
    start_with(origin_port, server_extra, &["all"], all)
}

/// One server with `locations` (defined, with any plugins, in `tables`) in front of the
/// upstream `backend` at `origin_port`.
fn start_with(
    origin_port: u16,
    server_extra: &str,
    locations: &[&str],
    tables: &str,
) -> (Tidegate, u16) {
    let port = free_port();
    let cfg = format!(
        r#"
[basic]
threads = 1
grace_period = "1s"
graceful_shutdown_timeout = "1s"

[servers.main]
addr = "127.0.0.1:{port}"
locations = {locations:?}
{server_extra}

{tables}

[upstreams.backend]
addrs = ["127.0.0.1:{origin_port}"]
"#
    );
    (Tidegate::start(&cfg, &[port]), port)
}

fn on_one_connection(port: u16, requests: &[&str]) -> Vec<Response> {
    let s = connect(port);
    let mut r = BufReader::new(s.try_clone().unwrap());
    requests
        .iter()
        .map(|raw| {
            (&s).write_all(raw.as_bytes()).unwrap();
            read_response(&mut r, raw.starts_with("HEAD")).unwrap()
        })
        .collect()
}

const GET: &str = "GET /a HTTP/1.1\r\nHost: h\r\n\r\n";

#[test]
fn upstream_connections_are_pooled_and_closed_ones_replaced() {
    let ok = |_: &str| b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok".to_vec();
    let (up, conns) = raw_origin(false, ok);
    let (_t, port) = start(up, "");
    let answers = on_one_connection(port, &[GET; 20]);
    assert!(answers.iter().all(|a| a.status == 200 && a.body == b"ok"));
    assert_eq!(
        conns.load(Ordering::SeqCst),
        1,
        "20 requests, one upstream connection"
    );
    // a peer that closes every connection after one answer (promising keep-alive): each
    // next request finds its pooled connection closed and uses a new one, never a 502
    let (up, conns) = raw_origin(true, ok);
    let (_t2, port) = start(up, "");
    let answers = on_one_connection(port, &[GET; 10]);
    let statuses: Vec<u16> = answers.iter().map(|a| a.status).collect();
    assert_eq!(statuses, vec![200; 10]);
    assert_eq!(conns.load(Ordering::SeqCst), 10);
}

#[test]
fn chunked_and_close_delimited_bodies_reach_the_client_whole() {
    let big: String = (0..5000)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    let big2 = big.clone();
    let (up, _) = raw_origin(false, move |path| {
        match path {
        "/chunked" => format!(
            "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5;x=1\r\nhello\r\n{:x}\r\n{big2}\r\n0\r\nx-trailer: 1\r\n\r\n",
            big2.len()
        )
        .into_bytes(),
        _ => b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\nnext".to_vec(),
    }
    });
    let (_t, port) = start(up, "");
    let a = on_one_connection(port, &["GET /chunked HTTP/1.1\r\nHost: h\r\n\r\n", GET]);
    assert_eq!(a[0].status, 200);
    assert_eq!(a[0].text(), format!("hello{big}"));
    assert_eq!(
        a[1].text(),
        "next",
        "the connection goes on after a chunked body"
    );
    // a body delimited by the upstream's close goes to the client chunked, and the
    // client's connection stays
    let big3 = big.clone();
    let (up, _) = raw_origin(true, move |_| {
        format!("HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n{big3}").into_bytes()
    });
    let (_t2, port) = start(up, "");
    let a = on_one_connection(port, &[GET, GET]);
    for r in &a {
        assert_eq!(r.header("transfer-encoding"), Some("chunked"));
        assert_eq!(r.text(), big);
        assert_ne!(r.header("connection"), Some("close"));
    }
}

#[test]
fn a_connection_moves_to_pingora_at_the_first_request_the_loop_does_not_serve() {
    let origin = Origin::start(|r| ok(&format!("{} {} {}", r.method, r.path, r.body.len())));
    let (_t, port) = start(origin.port(), "");
    // all three sent at once: the first served by the own loop, the one naming an extra
    // hop-by-hop field handed over with the bytes after it, which Pingora's path then
    // serves in order
    let s = connect(port);
    (&s).write_all(
        b"GET /one HTTP/1.1\r\nHost: h\r\n\r\n\
          POST /two HTTP/1.1\r\nHost: h\r\nConnection: x-hop\r\nX-Hop: 1\r\nContent-Length: 3\r\n\r\nabc\
          GET /three HTTP/1.1\r\nHost: h\r\n\r\n",
    )
    .unwrap();
    let mut r = BufReader::new(s);
    let bodies: Vec<String> = (0..3)
        .map(|_| read_response(&mut r, false).unwrap().text())
        .collect();
    assert_eq!(bodies, vec!["GET /one 0", "POST /two 3", "GET /three 0"]);
}

#[test]
fn head_answers_carry_the_length_and_no_body() {
    let (up, _) = raw_origin(false, |_| {
        b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\nx-up: 1\r\n\r\n".to_vec()
    });
    let (_t, port) = start(up, "");
    let a = on_one_connection(
        port,
        &[
            "HEAD /a HTTP/1.1\r\nHost: h\r\n\r\n",
            "HEAD /b HTTP/1.1\r\nHost: h\r\n\r\n",
        ],
    );
    for r in &a {
        assert_eq!(r.status, 200);
        assert_eq!(r.header("content-length"), Some("100"));
        assert_eq!(r.header("x-up"), Some("1"));
        assert!(r.body.is_empty());
    }
}

#[test]
fn engine_pingora_serves_the_same_requests() {
    let origin = Origin::start(|r| ok(&r.path));
    let (_t, port) = start(origin.port(), "engine = \"pingora\"");
    let a = on_one_connection(port, &[GET, GET]);
    assert!(a.iter().all(|r| r.status == 200 && r.text() == "/a"));
    let bad = format!("GET /{} HTTP/1.1\r\nHost: h\r\n\r\n", "u".repeat(100 << 10));
    // Pingora's own answer past 64 KiB: how to tell the engines apart from outside
    assert_eq!(send(port, bad.as_bytes()).unwrap().status, 400);
    let (_t2, port2) = start(origin.port(), "");
    assert_eq!(send(port2, bad.as_bytes()).unwrap().status, 414);
    // a typo names the key
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("t.toml");
    std::fs::write(
        &cfg,
        "[servers.s]\naddr = \"127.0.0.1:1\"\nengine = \"nginx\"\n",
    )
    .unwrap();
    let (code, out) = run_cli(&["check", "-c", cfg.to_str().unwrap()], dir.path());
    assert_ne!(code, 0);
    assert!(
        out.contains("engine") && out.contains("unknown engine `nginx`"),
        "{out}"
    );
}

/// A request in flight when a graceful shutdown begins is answered, and the answer says
/// `Connection: close` (the flag is read when the head is written, not when the request came).
#[test]
fn an_answer_written_during_shutdown_says_connection_close() {
    use std::sync::atomic::AtomicBool;
    use std::time::Duration;
    let release = Arc::new(AtomicBool::new(false));
    let r2 = release.clone();
    let origin = Origin::start(move |_| {
        wait_until(Duration::from_secs(20), || r2.load(Ordering::SeqCst));
        ok("late")
    });
    let port = free_port();
    let cfg = simple_config(port, &[origin.addr.to_string()], "", "")
        .replace("grace_period = \"1s\"", "grace_period = \"20s\"");
    let t = Tidegate::start(&cfg, &[port]);
    let s = connect(port);
    (&s).write_all(GET.as_bytes()).unwrap();
    assert!(wait_until(Duration::from_secs(10), || origin.count() == 1));
    // SIGQUIT: graceful; once the hand-over window passes, the listener stops accepting and
    // the shutdown flag is set
    assert_eq!(unsafe { libc::kill(t.child.id() as i32, libc::SIGQUIT) }, 0);
    assert!(wait_until(Duration::from_secs(15), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err()
    }));
    release.store(true, Ordering::SeqCst);
    let mut r = BufReader::new(s);
    let resp = read_response(&mut r, false).unwrap();
    assert_eq!(resp.text(), "late");
    assert_eq!(resp.header("connection"), Some("close"));
}

/// An upstream that accepts one upgrade: it reads the request head (sent on the channel),
/// writes `reply`, then echoes what comes (upper-cased if `upper`) until the other side ends.
fn upgrading_upstream(
    reply: &'static [u8],
    upper: bool,
) -> (u16, std::sync::mpsc::Receiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let up = listener.local_addr().unwrap().port();
    let (head_tx, head_rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        let Ok((s, _)) = listener.accept() else {
            return;
        };
        let mut w = s.try_clone().unwrap();
        let mut r = BufReader::new(s);
        let mut head = String::new();
        while !head.ends_with("\r\n\r\n") {
            if r.read_line(&mut head).unwrap_or(0) == 0 {
                return;
            }
        }
        let _ = head_tx.send(head);
        let _ = w.write_all(reply);
        let mut buf = [0u8; 1024];
        while let Ok(n) = r.read(&mut buf) {
            let out = if upper {
                buf[..n].to_ascii_uppercase()
            } else {
                buf[..n].to_vec()
            };
            if n == 0 || w.write_all(&out).is_err() {
                break;
            }
        }
    });
    (up, head_rx)
}

/// A WebSocket upgrade: the upstream's 101 goes to the client, then bytes flow both ways,
/// including those either side sent right behind its head, until both sides closed.
#[test]
fn websocket_upgrades_are_spliced_both_ways() {
    // the head and the first frame in one write, then an upper-casing echo
    let (up, head_rx) = upgrading_upstream(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: x\r\n\r\nhello;",
        true,
    );
    let (_t, port) = start(up, "");
    let s = connect(port);
    // the request and the first bytes of the new protocol in one write
    (&s).write_all(b"GET /ws HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, Upgrade\r\nUpgrade: WebSocket\r\nSec-WebSocket-Key: k\r\n\r\nearly;")
        .unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    let mut status = String::new();
    r.read_line(&mut status).unwrap();
    assert_eq!(status, "HTTP/1.1 101 Switching Protocols\r\n");
    let mut fields = Vec::new();
    loop {
        let mut h = String::new();
        r.read_line(&mut h).unwrap();
        if h == "\r\n" {
            break;
        }
        fields.push(h.trim_end().to_ascii_lowercase());
    }
    for f in [
        "upgrade: websocket",
        "connection: upgrade",
        "sec-websocket-accept: x",
    ] {
        assert!(fields.contains(&f.to_string()), "{f} missing: {fields:?}");
    }
    let head = head_rx.recv_timeout(WAIT).unwrap().to_ascii_lowercase();
    assert!(
        head.contains("\r\nconnection: upgrade\r\n")
            && head.contains("\r\nupgrade: websocket\r\n")
            && head.contains("\r\nsec-websocket-key: k\r\n"),
        "{head}"
    );
    let mut got = vec![0u8; "hello;EARLY;".len()];
    r.read_exact(&mut got).unwrap();
    assert_eq!(got, b"hello;EARLY;");
    (&s).write_all(b"more").unwrap();
    let mut more = [0u8; 4];
    r.read_exact(&mut more).unwrap();
    assert_eq!(&more, b"MORE");
    // the client ends its side: the upstream sees it and closes, and so does the proxy
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let mut rest = Vec::new();
    r.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty(), "{rest:?}");
}

/// A spliced connection where nothing moves for the read timeout is closed (as nginx's
/// proxy_read_timeout does for WebSockets); one that keeps talking is not.
#[test]
fn an_idle_websocket_is_closed_after_the_read_timeout() {
    // a plain echo that never closes on its own
    let (up, _) = upgrading_upstream(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
        false,
    );
    let port = free_port();
    let cfg = format!(
        "[servers.main]\naddr = \"127.0.0.1:{port}\"\nlocations = [\"all\"]\n[locations.all]\nupstream = \"b\"\n[upstreams.b]\naddrs = [\"127.0.0.1:{up}\"]\nread_timeout = \"1500ms\"\n"
    );
    let _t = Tidegate::start(&cfg, &[port]);
    let s = connect(port);
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    (&s).write_all(
        b"GET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
    )
    .unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    let mut line = String::new();
    while line != "\r\n" {
        line.clear();
        r.read_line(&mut line).unwrap();
    }
    // talking every 300 ms for 2.4 s: well past the timeout, never idle for it
    for i in 0..8 {
        let msg = format!("ping{i};");
        (&s).write_all(msg.as_bytes()).unwrap();
        let mut got = vec![0u8; msg.len()];
        r.read_exact(&mut got).unwrap();
        assert_eq!(got, msg.as_bytes());
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
    // then silence: the proxy closes (a read timeout here would mean it never did)
    let mut rest = Vec::new();
    match r.read_to_end(&mut rest) {
        Ok(_) => assert!(rest.is_empty(), "{rest:?}"),
        Err(e) => panic!("the idle upgraded connection was not closed: {e}"),
    }
}

/// The client's framing is the proxy's: whatever framing fields the upstream sent (a length
/// next to chunked, `Connection`, `Keep-Alive`) are not passed on, and the other fields are,
/// both when no plugin touches the head (it goes out as the upstream's bytes) and when one
/// does (it goes out from a header map).
#[test]
fn upstream_framing_fields_are_replaced_whether_or_not_a_plugin_edits_the_head() {
    let (up, _) = raw_origin(false, |_| {
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 99\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\nX-Kept: Yes\r\n\r\n5\r\nhello\r\n0\r\n\r\n".to_vec()
    });
    let tables = r#"
[locations.plain]
upstream = "backend"

[locations.edited]
path = "/edited"
upstream = "backend"
plugins = ["hdrs"]

[plugins.hdrs]
category = "response_headers"
set = ["x-edited: 1"]
"#;
    let log = r#"access_log = "{location}|{status}|{<x-kept}|{bytes_sent}""#;
    let (t, port) = start_with(up, log, &["plain", "edited"], tables);
    let answers = on_one_connection(
        port,
        &[
            "GET /plain HTTP/1.1\r\nHost: h\r\n\r\n",
            "GET /edited HTTP/1.1\r\nHost: h\r\n\r\n",
            "GET /plain HTTP/1.1\r\nHost: h\r\n\r\n",
        ],
    );
    for (i, a) in answers.iter().enumerate() {
        let names: Vec<String> = a
            .headers
            .iter()
            .map(|(k, _)| k.to_ascii_lowercase())
            .collect();
        assert_eq!(a.status, 200, "answer {i}");
        assert_eq!(a.text(), "hello", "answer {i}");
        assert_eq!(a.header("x-kept"), Some("Yes"), "answer {i}: {names:?}");
        assert_eq!(a.header("transfer-encoding"), Some("chunked"), "answer {i}");
        for gone in ["content-length", "connection", "keep-alive"] {
            assert!(
                !names.iter().any(|n| n == gone),
                "answer {i} has {gone}: {names:?}"
            );
        }
        let te = names.iter().filter(|n| *n == "transfer-encoding").count();
        assert_eq!(te, 1, "answer {i}: {names:?}");
    }
    assert_eq!(answers[1].header("x-edited"), Some("1"));
    assert_eq!(answers[0].header("x-edited"), None);
    // the log reads the sent head's fields the same way for both (an unedited head is
    // built into a map only when something asks for it)
    let lines = || -> Vec<String> {
        let out = t.stdout();
        out.lines()
            .filter(|l| l.contains('|'))
            .map(String::from)
            .collect()
    };
    assert!(wait_until(WAIT, || lines().len() >= 3), "{}", t.stdout());
    let lines = lines();
    let fields: Vec<Vec<&str>> = lines.iter().map(|l| l.split('|').collect()).collect();
    assert_eq!(fields[0][..3], ["plain", "200", "Yes"], "{lines:?}");
    assert_eq!(fields[1][..3], ["edited", "200", "Yes"], "{lines:?}");
    assert_eq!(fields[2][..3], ["plain", "200", "Yes"], "{lines:?}");
    let sent = |i: usize| fields[i][3].parse::<usize>().unwrap();
    // the edited answer carries one more field (`x-edited: 1\r\n`, 13 bytes)
    assert_eq!(sent(1), sent(0) + 13, "{lines:?}");
    assert_eq!(sent(0), sent(2));
}
