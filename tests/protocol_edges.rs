//! Protocol edges: pipelined requests, HTTP/1.1 without Host, the one error page, errors that
//! keep the client's connection, retries after the request was sent, and slow clients on an
//! h2c listener.

mod common;
use common::*;
use std::io::{BufReader, Read, Write};

fn proxy(origin: &Origin, basic: &str, upstream_extra: &str) -> (Tidegate, u16) {
    proxy_with(origin, basic, "", upstream_extra)
}

fn proxy_with(
    origin: &Origin,
    basic: &str,
    server_extra: &str,
    upstream_extra: &str,
) -> (Tidegate, u16) {
    let port = free_port();
    let cfg = format!(
        r#"
[basic]
threads = 1
{basic}
[servers.main]
addr = "127.0.0.1:{port}"
locations = ["all", "old"]
http2 = true
header_timeout = "1s"
{server_extra}

[locations.all]
host = "h"
path = "/"
upstream = "backend"
client_max_body_size = "1KB"

[locations.old]
path = "/old"
upstream = "backend"

[upstreams.backend]
addrs = ["{}"]
{upstream_extra}
"#,
        origin.addr
    );
    (Tidegate::start(&cfg, &[port]), port)
}

/// Read responses off one connection, in order.
fn responses(r: &mut BufReader<std::net::TcpStream>, n: usize) -> Vec<Response> {
    (0..n)
        .map(|i| read_response(r, false).unwrap_or_else(|e| panic!("response {i}: {e}")))
        .collect()
}

#[test]
fn pipelined_requests_are_answered_in_order_on_one_connection() {
    let origin = Origin::start(|r| ok(&r.path));
    let (_t, port) = proxy(&origin, "", "");
    let s = connect(port);
    (&s).write_all(
        b"GET /a HTTP/1.1\r\nHost: h\r\n\r\nGET /b HTTP/1.1\r\nHost: h\r\n\r\n\
          POST /c HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\nhiGET /d HTTP/1.1\r\nHost: h\r\n\r\n",
    )
    .unwrap();
    let mut r = BufReader::new(s);
    let got: Vec<String> = responses(&mut r, 4).iter().map(|x| x.text()).collect();
    assert_eq!(got, ["/a", "/b", "/c", "/d"]);
    // and the connection is still good for more
    (r.get_ref())
        .write_all(b"GET /e HTTP/1.1\r\nHost: h\r\n\r\n")
        .unwrap();
    assert_eq!(responses(&mut r, 1)[0].text(), "/e");
}

#[test]
fn http11_without_host_is_400_and_never_reaches_the_origin() {
    let origin = Origin::start(|r| ok(&r.path));
    let (_t, port) = proxy(&origin, "", "");
    let r = send(port, b"GET /nohost HTTP/1.1\r\n\r\n").unwrap();
    assert_eq!(r.status, 400);
    assert_eq!(r.header("server"), None);
    assert!(r.text().contains("400 Bad Request"), "{}", r.text());
    // HTTP/1.0 needs no Host
    assert_eq!(
        send(port, b"GET /old HTTP/1.0\r\n\r\n").unwrap().text(),
        "/old"
    );
    assert!(origin.requests().iter().all(|r| r.path != "/nohost"));
}

/// Errors after a whole request keep the connection; errors about the framing, or with a
/// body left unread, close it. The own HTTP/1 loop keeps it after an upstream failure too;
/// Pingora's path always closes it then, and its 502 says `Connection: close`, truthfully.
#[test]
fn errors_keep_the_connection_when_the_request_was_read_whole() {
    let origin = Origin::start(|r| {
        if r.path == "/down" {
            Action::Close
        } else {
            ok(&r.path)
        }
    });
    let (_t, port) = proxy(
        &origin,
        r#"error_template = '{"status": {status}, "reason": "{reason}", "id": "{request_id}"}'"#,
        "",
    );
    let s = connect(port);
    let mut r = BufReader::new(s.try_clone().unwrap());
    let long = "u".repeat(9000);
    // 404 (no location for the host), 414 (URI over 8 KiB), then a good request
    for (raw, status) in [
        (
            "GET /x HTTP/1.1\r\nHost: elsewhere\r\n\r\n".to_string(),
            404,
        ),
        (format!("GET /{long} HTTP/1.1\r\nHost: h\r\n\r\n"), 414),
        ("GET /fine HTTP/1.1\r\nHost: h\r\n\r\n".to_string(), 200),
        (
            "GET /x HTTP/1.1\r\nHost: elsewhere\r\n\r\n".to_string(),
            404,
        ),
    ] {
        (&s).write_all(raw.as_bytes()).unwrap();
        let resp = responses(&mut r, 1).remove(0);
        assert_eq!(resp.status, status);
        assert_ne!(resp.header("connection"), Some("close"), "{status}");
        assert_eq!(resp.header("server"), None, "{status}");
        if status != 200 {
            assert_eq!(resp.header("content-type"), Some("application/json"));
            let v: serde_json::Value = serde_json::from_slice(&resp.body).unwrap();
            assert_eq!(v["status"], status);
            assert!(v["reason"].as_str().is_some_and(|s| !s.is_empty()));
        }
    }
    // an upstream failure after a whole request: the page, and the connection stays
    (&s).write_all(b"GET /down HTTP/1.1\r\nHost: h\r\n\r\n")
        .unwrap();
    let down = responses(&mut r, 1).remove(0);
    assert_eq!(down.status, 502);
    assert_ne!(down.header("connection"), Some("close"));
    assert_eq!(down.header("content-type"), Some("application/json"));
    // on Pingora's path (`engine = "pingora"`) the connection closes after an upstream
    // failure, and the answer says so
    let (_p, pport) = proxy_with(&origin, "", "engine = \"pingora\"", "");
    let down = send(pport, b"GET /down HTTP/1.1\r\nHost: h\r\n\r\n").unwrap();
    assert_eq!(down.status, 502);
    assert_eq!(down.header("connection"), Some("close"));
    // a declared body over the limit is never read: the connection must close after the 413
    (&s).write_all(b"POST /big HTTP/1.1\r\nHost: h\r\nContent-Length: 5000\r\n\r\n")
        .unwrap();
    let resp = responses(&mut r, 1).remove(0);
    assert_eq!(resp.status, 413);
    assert_eq!(resp.header("connection"), Some("close"));
    let mut rest = Vec::new();
    let _ = r.read_to_end(&mut rest);
    assert!(rest.is_empty(), "{:?}", String::from_utf8_lossy(&rest));
}

/// A failure after the request was sent (here on pooled connections that the peers close)
/// is retried at most `retries` times, not on every peer.
#[test]
fn retries_after_the_request_was_sent_honour_retries() {
    let peers: Vec<Origin> = (0..4)
        .map(|_| {
            Origin::start(|r| match r.header("x-warm") {
                Some(_) => ok("warm"),
                None => Action::Close,
            })
        })
        .collect();
    let port = free_port();
    let addrs: Vec<String> = peers.iter().map(|p| p.addr.to_string()).collect();
    let cfg = simple_config(port, &addrs, "retries = 1", "");
    let _t = Tidegate::start(&cfg, &[port]);
    // one pooled connection to each peer
    for _ in 0..40 {
        if peers.iter().all(|p| p.count() > 0) {
            break;
        }
        assert_eq!(get(port, "h", "/", &[("x-warm", "1")]).status, 200);
    }
    assert!(peers.iter().all(|p| p.count() > 0));
    let warm: usize = peers.iter().map(Origin::count).sum();
    assert_eq!(get(port, "h", "/idempotent", &[]).status, 502);
    let tries = peers.iter().map(Origin::count).sum::<usize>() - warm;
    assert_eq!(tries, 2, "one try and one retry, not every peer");
}

/// On a listener that takes h2c, the header deadline runs from the accept: nothing sent, part
/// of the preface, or a preface with no request all get cut; a short HTTP/1.0 request is not
/// kept waiting for 24 bytes.
#[test]
fn slow_clients_on_an_h2c_listener_are_cut_at_the_header_timeout() {
    let origin = Origin::start(|r| ok(&r.path));
    let (_t, port) = proxy(&origin, "", "");
    let settings_frame = [0u8, 0, 0, 4, 0, 0, 0, 0, 0];
    let mut preface_and_settings = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    preface_and_settings.extend_from_slice(&settings_frame);
    let cases: [(&str, &[u8]); 3] = [
        ("nothing", b""),
        ("part of the preface", b"PRI * HTTP"),
        ("a preface and no request", &preface_and_settings),
    ];
    for (what, bytes) in cases {
        let s = connect(port);
        (&s).write_all(bytes).unwrap();
        // the client's own read timeout is far longer than the 1 s header timeout: EOF (or a
        // reset) means tidegate cut the connection
        s.set_read_timeout(Some(WAIT)).unwrap();
        let mut sink = Vec::new();
        let res = (&s).take(1 << 16).read_to_end(&mut sink);
        assert!(
            res.is_ok()
                || res
                    .as_ref()
                    .is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionReset),
            "{what}: not cut ({res:?})"
        );
    }
    let r = send(port, b"GET /old HTTP/1.0\r\n\r\n").unwrap();
    assert_eq!(r.text(), "/old");
}

/// Over-long request lines are 414 and over-large heads 431 at any size (not a 400 from
/// Pingora), with the error page, and the client gets the answer although it sent more.
#[test]
fn limits_answer_414_and_431_at_any_size() {
    let origin = Origin::start(|r| ok(&r.path));
    let (_t, port) = proxy(&origin, r#"error_template = '{"status": {status}}'"#, "");
    let line = |n: usize| format!("GET /{} HTTP/1.1\r\nHost: h\r\n\r\n", "u".repeat(n));
    for (raw, status) in [
        (line(100 << 10), 414),
        (line(1 << 20), 414),
        (
            format!(
                "GET / HTTP/1.1\r\nHost: h\r\nX-Big: {}\r\n\r\n",
                "b".repeat(300 << 10)
            ),
            431,
        ),
        (line(9 << 10), 414),
    ] {
        let resp = send(port, raw.as_bytes()).unwrap();
        assert_eq!(resp.status, status, "{} bytes", raw.len());
        assert_eq!(resp.header("server"), None);
        assert_eq!(resp.header("content-type"), Some("application/json"));
        let v: serde_json::Value = serde_json::from_slice(&resp.body).unwrap();
        assert_eq!(v["status"], status);
    }
    assert_eq!(origin.count(), 0, "a refused request reached the origin");
}

/// A head with bare LF line ends (which both engines' parsers take) is answered as soon as
/// it arrives, on either engine; it used to wait for a `\r\n\r\n` that never came, until the
/// header timeout.
#[test]
fn bare_lf_heads_are_answered_at_once() {
    let origin = Origin::start(|r| ok(&format!("{} {}", r.method, r.path)));
    for engine in ["native", "pingora"] {
        // a head that is never seen as complete gets no answer: the 1 s header timeout
        // closes the connection
        let extra = format!("engine = \"{engine}\"");
        let (_t, port) = proxy_with(&origin, "", &extra, "");
        for raw in [
            &b"GET /lf HTTP/1.1\nHost: h\n\n"[..],
            b"GET /mixed HTTP/1.1\r\nHost: h\n\r\n",
        ] {
            let s = connect(port);
            s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
                .unwrap();
            (&s).write_all(raw).unwrap();
            let resp = read_response(&mut BufReader::new(s), false)
                .unwrap_or_else(|e| panic!("{engine}: no answer to {raw:?}: {e}"));
            assert_eq!(resp.status, 200, "{engine}");
            assert!(
                resp.text().starts_with("GET /"),
                "{engine}: {}",
                resp.text()
            );
        }
    }
}

/// HTTP/1.0 without `Connection: keep-alive` ends with the answer (it is Pingora's path that
/// serves HTTP/1.0; the keep-alive timeout once kept such a connection open); with it, the
/// connection stays.
#[test]
fn http10_closes_unless_it_asks_for_keep_alive() {
    use std::io::{Read, Write};
    let origin = Origin::named("o");
    let port = free_port();
    let _t = Tidegate::start(
        &simple_config(port, &[origin.addr.to_string()], "", ""),
        &[port],
    );
    let mut s = connect(port);
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    s.write_all(b"GET / HTTP/1.0\r\nHost: h\r\n\r\n").unwrap();
    let mut all = Vec::new();
    // an error here is the read timeout: the connection was kept open
    s.read_to_end(&mut all)
        .expect("the connection closes after an HTTP/1.0 answer");
    let text = String::from_utf8_lossy(&all).to_ascii_lowercase();
    assert!(
        text.contains("connection: close") && text.ends_with("o"),
        "{text}"
    );
    let s = connect(port);
    let mut r = std::io::BufReader::new(s.try_clone().unwrap());
    for _ in 0..2 {
        (&s).write_all(b"GET / HTTP/1.0\r\nHost: h\r\nConnection: keep-alive\r\n\r\n")
            .unwrap();
        let resp = read_response(&mut r, false).unwrap();
        assert_eq!((resp.status, resp.text().as_str()), (200, "o"));
    }
}
