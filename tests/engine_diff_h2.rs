//! The own HTTP/2 path against Pingora's (`engine = "pingora"`): the same HTTP/2 requests to
//! one tidegate on each, and the status each client gets and the request each origin
//! receives (method, target, fields in order, body) must be the same.

mod common;

use common::*;

/// (method, path, fields, body) of one request.
type Req = (
    &'static str,
    &'static str,
    Vec<(&'static str, &'static str)>,
    &'static [u8],
);

fn requests() -> Vec<Req> {
    vec![
        ("GET", "/a?b=1&c=%20", vec![], b""),
        ("HEAD", "/head", vec![], b""),
        (
            "GET",
            "/h",
            vec![("x-a", "1"), ("x-b", "2"), ("x-a", "3")],
            b"",
        ),
        ("GET", "/host", vec![("host", "other.test")], b""),
        (
            "GET",
            "/fwd",
            vec![
                ("x-forwarded-for", "1.2.3.4"),
                ("x-real-ip", "9.9.9.9"),
                ("x-forwarded-proto", "https"),
            ],
            b"",
        ),
        (
            "GET",
            "/cookies",
            vec![("cookie", "a=1"), ("cookie", "b=2")],
            b"",
        ),
        ("GET", "/te", vec![("te", "trailers")], b""),
        ("DELETE", "/del", vec![("accept", "*/*")], b""),
        ("POST", "/len", vec![("content-length", "5")], b"hello"),
        (
            "POST",
            "/nolen",
            vec![("content-type", "text/plain")],
            b"no length",
        ),
        ("PUT", "/empty", vec![("content-length", "0")], b""),
        ("GET", "/%7Euser/a%2Fb", vec![], b""),
    ]
}

fn side(engine: &str) -> (Tidegate, u16, Origin) {
    let origin = Origin::start(|r| ok(&format!("{} {}", r.method, r.path)));
    let port = free_port();
    let cfg = format!(
        "{BASIC}\n[servers.s]\naddr = \"127.0.0.1:{port}\"\nhttp2 = true\nengine = \"{engine}\"\n\
         locations = [\"all\"]\n\n[locations.all]\nupstream = \"o\"\n\n\
         [upstreams.o]\naddrs = [\"{}\"]\n",
        origin.addr
    );
    (Tidegate::start(&cfg, &[port]), port, origin)
}

async fn send(port: u16, r: &Req) -> u16 {
    let client = h2c::connect(port).await;
    let mut req = http::Request::builder()
        .method(r.0)
        .uri(format!("http://app.test{}", r.1));
    for (k, v) in &r.2 {
        req = req.header(*k, *v);
    }
    h2c::request(&client, req.body(()).unwrap(), r.3)
        .await
        .status
}

#[test]
fn both_engines_send_the_same_requests_upstream() {
    let (_a, port_a, origin_a) = side("native");
    let (_b, port_b, origin_b) = side("pingora");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut differ = Vec::new();
    for r in requests() {
        let (sa, sb) = rt.block_on(async { (send(port_a, &r).await, send(port_b, &r).await) });
        let last = |o: &Origin| o.seen.lock().unwrap().pop();
        let (ua, ub) = (last(&origin_a), last(&origin_b));
        let view = |u: Option<SeenRequest>| {
            u.map(|u| {
                let fields: Vec<String> = u
                    .headers
                    .iter()
                    .map(|(k, v)| format!("{}: {v}", k.to_ascii_lowercase()))
                    .collect();
                format!(
                    "{} {}\n{}\n{}",
                    u.method,
                    u.path,
                    fields.join("\n"),
                    String::from_utf8_lossy(&u.body)
                )
            })
        };
        let (va, vb) = (view(ua), view(ub));
        if sa != sb || va != vb {
            differ.push(format!(
                "{} {}: own {sa} {va:?}\n  Pingora's {sb} {vb:?}",
                r.0, r.1
            ));
        }
    }
    assert!(
        differ.is_empty(),
        "{} of {} requests differ:\n{}",
        differ.len(),
        requests().len(),
        differ.join("\n")
    );
}
