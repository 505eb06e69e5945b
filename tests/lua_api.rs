//! The Lua API end to end: json, base64, digests and regex; the rest of `req` and `resp`;
//! `on_upstream` choosing the upstream, the peer and timeouts; logging, time, redirects;
//! bad arguments and bad return values. `lua.rs` has the hooks and the faults.

mod common;
use common::lua::*;
use common::*;
use std::time::Duration;

#[test]
fn json_base64_digests_and_regex() {
    let script = r##"
local M = {}
function M.on_request(req, ctx, conf)
  local t = tidegate.json.decode('{"a":1,"list":[1,2,3],"s":"x"}')
  local r = tidegate.re.match("v12-beta", "v(\\d+)-(?<tag>\\w+)")
  local from, to = tidegate.re.find("abc123", "\\d+")
  local replaced, n = tidegate.re.gsub("a1b22", "\\d+", "#")
  local bad_regex_ok = pcall(tidegate.re.match, "x", "(")
  return req:respond(200, {
    json_a = t.a, json_len = #t.list, json_s = t.s,
    json_out = tidegate.json.encode({ ok = true }),
    b64 = tidegate.base64.encode("hi"),
    b64_back = tidegate.base64.decode("aGk="),
    b64_bad = tidegate.base64.decode("!!!") == nil,
    sha = tidegate.sha256("abc"),
    hmac = tidegate.hmac_sha256("key", "The quick brown fox jumps over the lazy dog"),
    re0 = r[0], re1 = r[1], tag = r.tag,
    from = from, to = to, replaced = replaced, n = n,
    bad_regex_ok = bad_regex_ok,
  })
end
return M
"##;
    let (_t, port, _o) = setup(script, "");
    let body = get(port, "h", "/lua", &[]).text();
    for want in [
        "\"json_a\":1",
        "\"json_len\":3",
        "\"json_s\":\"x\"",
        r#""json_out":"{\"ok\":true}""#,
        "\"b64\":\"aGk=\"",
        "\"b64_back\":\"hi\"",
        "\"b64_bad\":true",
        "\"sha\":\"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad\"",
        "\"hmac\":\"f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8\"",
        "\"re0\":\"v12-beta\"",
        "\"re1\":\"12\"",
        "\"tag\":\"beta\"",
        "\"from\":4",
        "\"to\":6",
        "\"replaced\":\"a#b#\"",
        "\"n\":2",
        "\"bad_regex_ok\":false",
    ] {
        assert!(body.contains(want), "{want} missing in {body}");
    }
}

#[test]
fn the_rest_of_req_and_resp() {
    let script = r##"
local M = {}
function M.on_request(req, ctx, conf)
  if req.path == "/lua/info" then
    local h = req:headers()
    return req:respond(200, {
      scheme = req.scheme, id = req.id, location = req.location,
      host_var = req:var("host"), uri_var = req:var("uri"),
      page = req:query_arg("page"), missing = req:query_arg("nope"),
      ua = h["user-agent"], multi = h["x-multi"],
    })
  end
  req:set_query_arg("page", "9")
  req:set_query_arg("drop", nil)
  req:add_header("x-from-lua", "added")
  req.query = req.query .. "&z=1"
end
function M.on_response(req, resp, ctx, conf)
  resp:add_header("x-many", "1")
  resp:add_header("x-many", "2")
  local hs = resp:headers()
  resp:set_header("x-seen", hs["x-many"] or "none")
end
return M
"##;
    let (_t, port, origin) = setup(script, "");
    let r = get(
        port,
        "Info.Example",
        "/lua/info?page=3",
        &[("user-agent", "ua/1"), ("x-multi", "a"), ("X-Multi", "b")],
    );
    let body = r.text();
    for want in [
        "\"scheme\":\"http\"",
        "\"location\":\"lua\"",
        "\"host_var\":\"info.example\"",
        "\"uri_var\":\"/lua/info\"",
        "\"page\":\"3\"",
        "\"ua\":\"ua/1\"",
        "\"multi\":\"a, b\"",
    ] {
        assert!(body.contains(want), "{want} missing in {body}");
    }
    assert!(
        body.contains("\"id\":\"") && !body.contains("\"missing\""),
        "{body}"
    );

    let r = get(port, "h", "/lua/x?page=1&drop=me&keep=yes", &[]);
    assert_eq!(r.headers.iter().filter(|(k, _)| k == "x-many").count(), 2);
    assert_eq!(r.header("x-seen"), Some("1, 2"));
    let seen = origin.requests().pop().unwrap();
    assert_eq!(seen.path, "/lua/x?keep=yes&page=9&z=1");
    assert_eq!(seen.header("x-from-lua"), Some("added"));
}

#[test]
fn on_upstream_chooses_the_upstream_the_peer_and_timeouts() {
    let (main, beta) = (Origin::named("main"), Origin::named("beta"));
    let slow = Origin::start(|_| {
        std::thread::sleep(Duration::from_millis(1500));
        ok("late")
    });
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("route.lua");
    std::fs::write(
        &script,
        format!(
            r##"
local M = {{}}
function M.on_upstream(req, up, ctx, conf)
  ctx.was = up.selected or "none"
  if req:header("x-beta") then
    up:set_upstream("beta")
  elseif req:header("x-direct") then
    up:set_peer("{main}")
  elseif req:header("x-slow") then
    up:set_peer("{slow}")
    up:set_timeouts({{ read = "300ms" }})
  end
end
function M.on_response(req, resp, ctx, conf)
  resp:set_header("x-was", ctx.was)
end
return M
"##,
            main = main.addr,
            slow = slow.addr
        ),
    )
    .unwrap();
    let cfg = format!(
        r#"
[servers.s]
addr = "127.0.0.1:{port}"
locations = ["routed", "bare"]
[locations.routed]
path = "/routed"
upstream = "main"
plugins = ["route"]
[locations.bare]
path = "/bare"
plugins = ["route"]
[upstreams.main]
addrs = ["{}"]
[upstreams.beta]
addrs = ["{}"]
[plugins.route]
category = "lua"
path = "{}"
"#,
        main.addr,
        beta.addr,
        script.display()
    );
    let _t = Tidegate::start(&cfg, &[port]);
    let r = get(port, "h", "/routed", &[]);
    assert_eq!(
        (r.text().as_str(), r.header("x-was")),
        ("main", Some("main"))
    );
    assert_eq!(get(port, "h", "/routed", &[("x-beta", "1")]).text(), "beta");
    // a location without an upstream: the script decides, or 502
    let r = get(port, "h", "/bare", &[("x-direct", "1")]);
    assert_eq!(
        (r.text().as_str(), r.header("x-was")),
        ("main", Some("none"))
    );
    assert_eq!(get(port, "h", "/bare", &[]).status, 502);
    assert_eq!(get(port, "h", "/bare", &[("x-slow", "1")]).status, 504);
}

#[test]
fn logging_time_host_path_redirects_and_removals() {
    let script = r#"
local M = {}
function M.on_request(req, ctx, conf)
  tidegate.log.debug("lua-debug-line")
  tidegate.log.info("lua-info-line")
  tidegate.log.warn("lua-warn-line")
  tidegate.log.error("lua-error-line")
  if req.path == "/lua/go" then return req:redirect("https://example.com/x", 301) end
  if req.path == "/lua/go2" then return req:redirect("/y") end
  local t = tidegate.now()
  ctx.now_ok = t > 1.7e9 and t < 4e9 and t ~= math.floor(t)
  ctx.host = req.host
  req:remove_header("x-secret")
  req.path = "/lua/rewritten"
end
function M.on_response(req, resp, ctx, conf)
  if resp.status == 200 then resp.status = 203 end
  resp:set_header("x-drop", "1")
  resp:remove_header("x-drop")
  resp:set_header("x-now-ok", tostring(ctx.now_ok))
  resp:set_header("x-host", ctx.host)
end
return M
"#;
    let (t, port, origin) = setup(script, "");
    let r = get(
        port,
        "Host.Example:8080",
        "/lua/a?q=1",
        &[("x-secret", "s")],
    );
    assert_eq!(r.status, 203, "resp.status set in on_response");
    assert_eq!(r.header("x-drop"), None);
    assert_eq!(r.header("x-now-ok"), Some("true"));
    assert_eq!(r.header("x-host"), Some("host.example"));
    let seen = origin.requests().pop().unwrap();
    assert_eq!(seen.path, "/lua/rewritten?q=1", "req.path set, query kept");
    assert_eq!(seen.header("x-secret"), None);

    let r = get(port, "h", "/lua/go", &[]);
    assert_eq!(
        (r.status, r.header("location")),
        (301, Some("https://example.com/x"))
    );
    let r = get(port, "h", "/lua/go2", &[]);
    assert_eq!((r.status, r.header("location")), (302, Some("/y")));
    assert_eq!(origin.count(), 1, "redirects never reach the origin");

    assert!(wait_until(WAIT, || {
        let e = t.stderr();
        e.contains("lua-info-line") && e.contains("lua-warn-line") && e.contains("lua-error-line")
    }));
    assert!(
        !t.stderr().contains("lua-debug-line"),
        "debug is below the configured level"
    );
}

#[test]
fn bad_arguments_raise_errors_and_never_take_the_worker_down() {
    let script = r#"
local M = {}
local function try(name, f, fails)
  local ok = pcall(f)
  if ok == fails then table.insert(M.wrong, name) end
end
function M.on_request(req, ctx, conf)
  M.wrong = {}
  -- each of these must raise an error (fails = true)
  try("set_header bad name", function() req:set_header("bad name", "v") end, true)
  try("set_header bad value", function() req:set_header("x", "a\nb") end, true)
  try("set_header nil", function() req:set_header(nil, nil) end, true)
  try("path with space", function() req.path = "/a b" end, true)
  try("header number", function() req:header({}) end, true)
  try("json.decode garbage", function() tidegate.json.decode("{nope") end, true)
  try("json.encode function", function() tidegate.json.encode(print) end, true)
  try("re bad pattern", function() tidegate.re.match("a", "(") end, true)
  try("re huge repetition", function() tidegate.re.match("a", "a{100000}{100000}") end, true)
  try("http bad url", function() tidegate.http.request{ url = "nota url" } end, true)
  try("http no url", function() tidegate.http.request{} end, true)
  try("http bad method", function() tidegate.http.request{ url = "http://127.0.0.1:1/", method = "GE T" } end, true)
  try("http bad timeout", function() tidegate.http.request{ url = "http://127.0.0.1:1/", timeout = -1 } end, true)
  try("shared ttl negative", function() tidegate.shared.d:set("k", 1, -5) end, true)
  try("shared key huge", function() tidegate.shared.d:set(string.rep("k", 5000), 1) end, true)
  try("incr non-number delta", function() tidegate.shared.d:incr("k", "x") end, true)
  try("respond status 0", function() req:respond(0, "x") end, true)
  try("respond bad body", function() req:respond(200, print) end, true)
  try("redirect bad url", function() req:redirect("a\nb") end, true)
  try("builtin write", function() string.upper = nil end, true)
  -- and these must not
  try("base64 garbage gives nil", function() assert(tidegate.base64.decode("!!!") == nil) end, false)
  try("query_arg missing", function() assert(req:query_arg("none") == nil) end, false)
  try("header missing", function() assert(req:header("x-none") == nil) end, false)
  return req:respond(200, table.concat(M.wrong, ","))
end
return M
"#;
    // a generous budget: the huge-regex case spends its time in Rust, which the budget counts
    let (t, port, _o) = setup(script, "[lua]\nshared = { d = 10 }\ntime_budget = \"10s\"");
    for _ in 0..3 {
        let r = get(port, "h", "/lua", &[]);
        assert_eq!(
            (r.status, r.text().as_str()),
            (200, ""),
            "calls that behaved wrongly; {}",
            t.stderr()
        );
    }
    assert_eq!(get(port, "h", "/plain", &[]).status, 200);
}

#[test]
fn a_hook_returning_a_value_is_a_500_that_says_why() {
    let script = r#"
local M = {}
function M.on_request(req, ctx, conf)
  if req:header("x-ok") then return req:respond(200, "answered") end
  return 401
end
return M
"#;
    let (t, port, origin) = setup(script, "");
    assert_eq!(get(port, "h", "/lua", &[("x-ok", "1")]).text(), "answered");
    assert_eq!(get(port, "h", "/lua", &[]).status, 500);
    assert!(
        wait_until(WAIT, || {
            t.stderr().contains(
            "on_request returned a value (integer); hooks return nothing; answer with `return req:respond(status, body)`"
        )
        }),
        "{}",
        t.stderr()
    );
    assert_eq!(origin.count(), 0);
}
