//! Lua hooks that touch bodies and the network, end to end: `on_body` rewriting the response
//! stream, `req:body()` reading the request body (which still reaches the upstream), and
//! `tidegate.http.request` yielding while an outbound call is made, so the worker keeps
//! serving, and a request in flight finishes on the script version it started with.

mod common;
use common::lua::h2_request;
use common::*;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

/// A proxy with one worker thread: `/lua` runs `script` in front of `origin`, `/plain` does not.
fn proxy(script: &str, origin: &Origin) -> (Tidegate, u16, tempfile::TempDir) {
    proxy_with(script, origin, "")
}

/// As `proxy`, with `server_extra` added to the server's table (e.g. `http2 = true`).
fn proxy_with(
    script: &str,
    origin: &Origin,
    server_extra: &str,
) -> (Tidegate, u16, tempfile::TempDir) {
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("script.lua");
    std::fs::write(&path, script).unwrap();
    let cfg = format!(
        r#"
[basic]
threads = 1

[servers.main]
addr = "127.0.0.1:{port}"
locations = ["lua", "plain"]
{server_extra}

[locations.lua]
path = "/lua"
upstream = "backend"
plugins = ["script"]

[locations.plain]
path = "/plain"
upstream = "backend"

[upstreams.backend]
addrs = ["{}"]

[upstreams.other]
addrs = ["{}"]

[plugins.script]
category = "lua"
path = "{}"
"#,
        origin.addr,
        origin.addr,
        path.display()
    );
    (Tidegate::start(&cfg, &[port]), port, dir)
}

#[test]
fn on_body_rewrites_the_stream_and_reads_the_response() {
    // big enough to arrive in several chunks
    let page = "hello world\n".repeat(20_000);
    let origin = Origin::start(move |_| {
        Action::Respond(
            200,
            vec![("content-type".into(), "text/plain".into())],
            page.clone().into_bytes(),
        )
    });
    let script = r#"
local M = {}
function M.on_body(resp, chunk, eof, ctx, conf)
  ctx.chunks = (ctx.chunks or 0) + 1
  local out = string.upper(chunk)
  if eof then
    out = out .. "chunks>0:" .. tostring(ctx.chunks > 0) .. " status:" .. resp.status
      .. " type:" .. tostring(resp:header("content-type"))
      .. " set:" .. tostring(pcall(function() resp:set_header("x-late", "1") end))
  end
  return out
end
return M
"#;
    let (t, port, _d) = proxy(script, &origin);
    let r = get(port, "h", "/lua", &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-length"), None, "the length changed");
    assert_eq!(r.header("transfer-encoding"), Some("chunked"));
    let body = r.text();
    let expected = "HELLO WORLD\n".repeat(20_000);
    assert!(body.starts_with(&expected), "every chunk rewritten");
    assert_eq!(
        &body[expected.len()..],
        "chunks>0:true status:200 type:text/plain set:false"
    );
    // without the hook the body is untouched
    let plain = get(port, "h", "/plain", &[]);
    assert_eq!(plain.text(), "hello world\n".repeat(20_000));
    assert_eq!(plain.header("content-length"), Some("240000"));
    drop(t);
}

#[test]
fn on_body_errors_are_logged_and_the_body_goes_on() {
    let origin = Origin::start(|_| ok("unchanged"));
    let script = r#"
local M = {}
function M.on_body(resp, chunk, eof) return 42 end
return M
"#;
    let (t, port, _d) = proxy(script, &origin);
    let r = get(port, "h", "/lua", &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "unchanged");
    assert!(wait_until(WAIT, || t
        .stderr()
        .contains("on_body must return a string or nil")));
}

#[test]
fn req_body_reads_the_body_and_the_upstream_still_gets_it() {
    let origin = Origin::start(|r| {
        ok(&format!(
            "user={} body={}",
            r.header("x-user").unwrap_or("-"),
            String::from_utf8_lossy(&r.body)
        ))
    });
    let script = r#"
local M = {}
function M.on_request(req, ctx, conf)
  local body, err = req:body()
  if not body then
    return req:respond(413, "refused: " .. err)
  end
  if req:header("x-twice") then
    assert(req:body() == body, "a second read gives the same body")
  end
  local j = tidegate.json.decode(body)
  req:set_header("x-user", j.user)
end
return M
"#;
    let (_t, port, _d) = proxy(script, &origin);
    let body = br#"{"user":"bob"}"#;
    let r = request(port, "POST", "h", "/lua", &[("x-twice", "1")], body);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.text(), r#"user=bob body={"user":"bob"}"#);

    // a chunked body, read and sent on
    let raw = b"POST /lua HTTP/1.1\r\nHost: h\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n6\r\n{\"user\r\n8\r\n\":\"eve\"}\r\n0\r\n\r\n";
    let r = send(port, raw).unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.text(), r#"user=eve body={"user":"eve"}"#);

    // over the 64 KiB cap: refused before reading, the script answers
    let big = vec![b'x'; 100_000];
    let r = request(port, "POST", "h", "/lua", &[], &big);
    assert_eq!(r.status, 413);
    assert!(r.text().contains("larger than 65536 bytes"), "{}", r.text());
    assert_eq!(
        origin.count(),
        2,
        "the refused body never reached the origin"
    );
}

#[test]
fn req_body_outside_on_request_names_the_phase() {
    let origin = Origin::start(|_| ok("fine"));
    let script = r#"
local M = {}
function M.on_upstream(req, up, ctx)
  local ok, err = pcall(function() return req:body() end)
  up:set_timeouts{ connect = 1 }
  ctx.err = (tostring(err):gsub("%c", " "))
end
function M.on_response(req, resp, ctx) resp:set_header("x-err", tostring(ctx.err)) end
return M
"#;
    let (t, port, _d) = proxy(script, &origin);
    let r = get(port, "h", "/lua", &[]);
    assert_eq!(r.status, 200, "{}", t.stderr());
    assert!(
        r.header("x-err")
            .is_some_and(|e| e.contains("req:body is not available in on_upstream")),
        "{:?}",
        r.header("x-err")
    );
}

/// An auth service whose answers can be held back until the test lets them go.
struct Gate {
    origin: Origin,
    release: mpsc::Sender<()>,
}

fn gated_auth() -> Gate {
    let (tx, rx) = mpsc::channel::<()>();
    let rx = Arc::new(Mutex::new(rx));
    let origin = Origin::start(move |r| {
        if r.header("x-hold").is_some() {
            let _ = rx.lock().unwrap().recv_timeout(WAIT);
        }
        match r.header("authorization") {
            Some("Bearer good") => Action::Respond(
                200,
                vec![("x-role".into(), "admin".into())],
                b"alice".to_vec(),
            ),
            _ => Action::Respond(403, vec![], b"no".to_vec()),
        }
    });
    Gate {
        origin,
        release: tx,
    }
}

/// A `/lua` request whose auth call the gate holds back, on its own thread.
fn held_request(port: u16, token: &'static str) -> std::thread::JoinHandle<Response> {
    std::thread::spawn(move || {
        get(
            port,
            "h",
            "/lua",
            &[("authorization", token), ("x-hold", "1")],
        )
    })
}

fn auth_script(auth: &Origin, version: &str) -> String {
    format!(
        r#"
local M = {{}}
function M.on_request(req, ctx, conf)
  leaked_global = "set before the wait"
  local res, err = tidegate.http.request{{
    method = "POST",
    url = "http://{}/check",
    headers = {{ authorization = req:header("authorization") or "", ["x-hold"] = req:header("x-hold") }},
    body = "who?",
    timeout = req:header("x-timeout") or 5,
  }}
  if not res then
    return req:respond(502, "auth failed: " .. err)
  end
  if res.status ~= 200 then
    return req:respond(403, "denied by auth ({version})")
  end
  ctx.user = res.body
  ctx.role = res.headers["x-role"]
  req:set_header("x-user", res.body)
end
function M.on_response(req, resp, ctx, conf)
  resp:set_header("x-seen", ctx.user .. "/" .. ctx.role .. "/{version}")
  resp:set_header("x-global", tostring(leaked_global))
end
return M
"#,
        auth.addr
    )
}

#[test]
fn http_request_waits_without_blocking_the_worker() {
    let gate = gated_auth();
    let origin = Origin::start(|r| ok(&format!("hi {}", r.header("x-user").unwrap_or("-"))));
    let (_t, port, _d) = proxy(&auth_script(&gate.origin, "v1"), &origin);

    let r = get(port, "h", "/lua", &[("authorization", "Bearer good")]);
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "hi alice");
    assert_eq!(
        r.header("x-seen"),
        Some("alice/admin/v1"),
        "ctx kept across the wait"
    );
    assert_eq!(
        r.header("x-global"),
        Some("nil"),
        "globals do not survive a wait"
    );
    let seen = gate.origin.requests();
    assert_eq!(seen[0].method, "POST");
    assert_eq!(seen[0].body, b"who?");
    assert_eq!(
        get(port, "h", "/lua", &[("authorization", "Bearer bad")]).status,
        403
    );

    // one worker thread: while a request waits on the auth service, others are served
    let held = held_request(port, "Bearer good");
    assert!(wait_until(WAIT, || gate.origin.count() == 3));
    let meanwhile = get(port, "h", "/plain", &[]);
    assert_eq!(meanwhile.status, 200);
    let also = get(port, "h", "/lua", &[("authorization", "Bearer good")]);
    assert_eq!(also.text(), "hi alice");
    assert!(!held.is_finished(), "the held request is still waiting");
    gate.release.send(()).unwrap();
    let r = held.join().unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "hi alice");
}

#[test]
fn http_request_failures_come_back_as_nil_and_an_error() {
    let hang = Origin::start(|_| Action::Hang);
    let origin = Origin::start(|_| ok("origin"));
    let (t, port, _d) = proxy(&auth_script(&hang, "v1"), &origin);
    let r = get(port, "h", "/lua", &[("x-timeout", "0.3")]);
    assert_eq!(r.status, 502, "{}", t.stderr());
    assert!(r.text().contains("timed out"), "{}", r.text());

    // nothing listens there
    let closed = free_port();
    let script =
        auth_script(&hang, "v1").replace(&hang.addr.to_string(), &format!("127.0.0.1:{closed}"));
    let (_t2, port2, _d2) = proxy(&script, &origin);
    let r = get(port2, "h", "/lua", &[]);
    assert_eq!(r.status, 502);
    assert!(r.text().contains("auth failed: connect to"), "{}", r.text());
    assert_eq!(origin.count(), 0);
}

#[test]
fn http_request_is_refused_where_it_cannot_wait() {
    let origin = Origin::start(|_| ok("origin"));
    let script = r#"
local M = {}
function M.on_request(req, ctx)
  -- inside a coroutine of the script's own
  local co = coroutine.create(function() return tidegate.http.request{ url = "http://127.0.0.1:1/" } end)
  local ok, err = coroutine.resume(co)
  ctx.co = err
  -- a bare yield is not allowed either
  if req:header("x-yield") then coroutine.yield() end
  -- a bad argument
  ctx.bad = select(2, pcall(tidegate.http.request, { url = "ftp://x/" }))
end
function M.on_response(req, resp, ctx)
  local ok, err = pcall(tidegate.http.request, { url = "http://127.0.0.1:1/" })
  local clean = function(v) return (tostring(v):gsub("%c", " ")) end
  resp:set_header("x-co", clean(ctx.co))
  resp:set_header("x-bad", clean(ctx.bad))
  resp:set_header("x-resp", clean(err))
end
return M
"#;
    let (t, port, _d) = proxy(script, &origin);
    let r = get(port, "h", "/lua", &[]);
    assert_eq!(r.status, 200);
    assert!(r.header("x-co").unwrap().contains("not from a coroutine"));
    assert!(r
        .header("x-bad")
        .unwrap()
        .contains("must start with http:// or https://"));
    assert!(r
        .header("x-resp")
        .unwrap()
        .contains("not available in on_response"));
    let r = get(port, "h", "/lua", &[("x-yield", "1")]);
    assert_eq!(r.status, 500);
    assert!(wait_until(WAIT, || t
        .stderr()
        .contains("a hook may not yield")));
}

#[test]
fn on_upstream_can_ask_a_service_where_to_go() {
    let a = Origin::named("a");
    let b = Origin::named("b");
    let b_addr = b.addr;
    let lookup = Origin::start(move |r| {
        if r.path == "/where?user=b" {
            ok(&b_addr.to_string())
        } else {
            Action::Respond(404, vec![], vec![])
        }
    });
    let script = format!(
        r#"
local M = {{}}
function M.on_upstream(req, up, ctx)
  local res = tidegate.http.request{{ url = "http://{}/where?user=" .. (req:query_arg("user") or "") }}
  if res and res.status == 200 then up:set_peer(res.body) end
end
return M
"#,
        lookup.addr
    );
    let (_t, port, _d) = proxy(&script, &a);
    assert_eq!(get(port, "h", "/lua?user=b", &[]).text(), "b");
    assert_eq!(get(port, "h", "/lua?user=x", &[]).text(), "a");
}

#[test]
fn a_request_in_flight_finishes_on_the_script_it_started_with() {
    let gate = gated_auth();
    let origin = Origin::start(|_| ok("origin"));
    let (_t, port, dir) = proxy(&auth_script(&gate.origin, "v1"), &origin);
    let script = dir.path().join("script.lua");
    let held = held_request(port, "Bearer bad");
    assert!(wait_until(WAIT, || gate.origin.count() == 1));
    std::fs::write(&script, auth_script(&gate.origin, "v2")).unwrap();
    assert!(wait_until(WAIT, || {
        get(port, "h", "/lua", &[("authorization", "Bearer bad")]).text() == "denied by auth (v2)"
    }));
    gate.release.send(()).unwrap();
    let r = held.join().unwrap();
    assert_eq!(r.text(), "denied by auth (v1)");
}

#[test]
fn on_body_and_req_body_over_h2c() {
    let page = "abc\n".repeat(30_000);
    let origin = Origin::start(move |r| {
        if r.method == "POST" {
            ok(&format!("got {}", String::from_utf8_lossy(&r.body)))
        } else {
            ok(&page)
        }
    });
    let script = r#"
local M = {}
function M.on_request(req, ctx)
  if req.method == "POST" then
    local body = assert(req:body())
    req:set_header("x-len", tostring(#body))
  end
end
function M.on_body(resp, chunk, eof) return string.upper(chunk) end
return M
"#;
    let (_t, port, _d) = proxy_with(script, &origin, "http2 = true");
    let (status, headers, body) = h2_request(port, "GET", "/lua", b"");
    assert_eq!(status, 200);
    assert_eq!(headers.get("content-length"), None);
    assert_eq!(String::from_utf8(body).unwrap(), "ABC\n".repeat(30_000));
    let (status, _, body) = h2_request(port, "POST", "/lua", b"posted over h2");
    assert_eq!(status, 200);
    assert_eq!(String::from_utf8(body).unwrap(), "GOT POSTED OVER H2");
    let seen = origin.requests().pop().unwrap();
    assert_eq!(seen.header("x-len"), Some("14"));
    assert_eq!(seen.body, b"posted over h2");
}

/// A memory bomb fails only its own request: a request waiting on the same worker's VM
/// finishes there, with its `ctx`, and new requests start on a fresh VM.
#[test]
fn a_memory_bomb_fails_only_its_own_request() {
    let gate = gated_auth();
    let origin = Origin::start(|r| ok(&format!("hi {}", r.header("x-user").unwrap_or("-"))));
    let script = auth_script(&gate.origin, "v1").replacen(
        "function M.on_request(req, ctx, conf)\n",
        "function M.on_request(req, ctx, conf)\n  if req:header(\"x-bomb\") then\n    \
         local t = {}\n    for i = 1, 1e6 do t[i] = string.rep(\"x\", 1048576) .. i end\n  end\n",
        1,
    );
    assert!(script.contains("x-bomb"));
    let (t, port, _d) = proxy_with(
        &script,
        &origin,
        "[lua]\nmemory_limit = \"16MB\"\ntime_budget = \"5s\"",
    );
    let held = held_request(port, "Bearer good");
    assert!(wait_until(WAIT, || gate.origin.count() == 1));
    // the bomb, on the same (only) worker, while the held request waits in its VM
    assert_eq!(get(port, "h", "/lua", &[("x-bomb", "1")]).status, 500);
    assert!(
        wait_until(WAIT, || t.stderr().contains("memory limit exceeded")
            && t.stderr().contains("a Lua VM is retired")),
        "{}",
        t.stderr()
    );
    // new requests run on a fresh VM
    let fresh = get(port, "h", "/lua", &[("authorization", "Bearer good")]);
    assert_eq!(fresh.header("x-seen"), Some("alice/admin/v1"));
    // the held request finishes on the retired VM, its ctx intact
    gate.release.send(()).unwrap();
    let r = held.join().unwrap();
    assert_eq!(
        (r.status, r.text().as_str()),
        (200, "hi alice"),
        "{}",
        t.stderr()
    );
    assert_eq!(r.header("x-seen"), Some("alice/admin/v1"));
    assert!(!t.stderr().contains("restarted"), "{}", t.stderr());
}
