//! Lua containment: the API's tables and `conf` cannot be changed by a script, no argument
//! a script passes can crash the process (timeouts out of range, tables too deep or cyclic,
//! every function called with hostile values), scripts see the client and host as routing
//! does, and a field a script logs cannot forge an access-log line.

mod common;
use common::lua::*;
use common::*;

#[test]
fn api_tables_and_conf_are_read_only_at_every_level() {
    let script = r#"
local M = {}
function M.on_request(req, ctx, conf)
  local tables = {
    tidegate = tidegate, log = tidegate.log, json = tidegate.json, base64 = tidegate.base64,
    re = tidegate.re, http = tidegate.http,
    conf = conf, conf_nested = conf.nested, conf_deeper = conf.nested.deeper,
    conf_list = conf.list,
  }
  local open = {}
  for name, t in pairs(tables) do
    local writes = {
      assign = function() t.injected = 1 end,
      replace = function() for k in pairs(t) do t[k] = print break end end,
      rawset = function() rawset(t, "injected", 1) end,
      clear = function() table.clear(t) end,
      insert = function() table.insert(t, 1) end,
      setmetatable = function() setmetatable(t, { __index = function() return print end }) end,
    }
    for how, f in pairs(writes) do
      if pcall(f) then table.insert(open, name .. "." .. how) end
    end
  end
  if pcall(function() tidegate.shared = {} end) then table.insert(open, "shared.assign") end
  if pcall(function() getmetatable(tidegate.shared).__index = {} end) then
    table.insert(open, "shared.metatable")
  end
  if pcall(function() getmetatable(conf.list).__index = {} end) then
    table.insert(open, "array metatable")
  end
  table.sort(open)
  -- after all the attempts, the functions are the real ones
  local intact = tidegate.json.encode({ a = 1 }) == '{"a":1}'
    and tidegate.base64.encode("hi") == "aGk="
    and conf.nested.deeper.key == "v" and conf.list[2] == "b"
  return req:respond(200, table.concat(open, ",") .. "|" .. tostring(intact))
end
return M
"#;
    let (t, port, _o) = setup_with(
        script,
        "",
        r#"{ nested = { deeper = { key = "v" } }, list = ["a", "b"] }"#,
        "",
    );
    // twice: a write that got through would show on the second request too
    for _ in 0..2 {
        let r = get(port, "h", "/lua", &[]);
        assert_eq!(
            (r.status, r.text().as_str()),
            (200, "|true"),
            "tables a script could change; {}",
            t.stderr()
        );
    }
}

#[test]
fn out_of_range_timeouts_and_deep_or_cyclic_tables_are_lua_errors() {
    let script = r#"
local M = {}
local bad_timeouts = { 1e300, 0/0, math.huge, -math.huge, -1, "1e300", "inf", "-5", 86401 }
local function deep(n) local t = {} for i = 1, n do t = { t } end return t end
local cyc = {} cyc.self = cyc
function M.on_request(req, ctx, conf)
  local wrong = {}
  local function must_fail(name, f, want)
    local ok, err = pcall(f)
    if ok or not string.find(tostring(err), want, 1, true) then
      table.insert(wrong, name .. " -> " .. tostring(err))
    end
  end
  if req.path == "/lua/respond-deep" then return req:respond(200, deep(200000)) end
  if req.path == "/lua/respond-cycle" then return req:respond(200, cyc) end
  must_fail("encode deep", function() return tidegate.json.encode(deep(200000)) end, "nested deeper than 128")
  must_fail("encode cycle", function() return tidegate.json.encode(cyc) end, "cycle")
  for _, v in ipairs(bad_timeouts) do
    must_fail("http timeout " .. tostring(v), function()
      return tidegate.http.request{ url = "http://127.0.0.1:1/", timeout = v }
    end, "timeout")
  end
  ctx.wrong = wrong
end
function M.on_upstream(req, up, ctx, conf)
  for _, v in ipairs(bad_timeouts) do
    for _, k in ipairs({ "connect", "read", "write" }) do
      if pcall(function() up:set_timeouts{ [k] = v } end) then
        table.insert(ctx.wrong, k .. "=" .. tostring(v))
      end
    end
  end
end
function M.on_response(req, resp, ctx, conf)
  resp:set_header("x-wrong", table.concat(ctx.wrong or { "no ctx" }, ";"))
end
return M
"#;
    let (t, port, origin) = setup(script, "[lua]\ntime_budget = \"10s\"");
    let r = get(port, "h", "/lua", &[]);
    assert_eq!(r.status, 200, "{}", t.stderr());
    assert_eq!(r.header("x-wrong"), Some(""), "{}", t.stderr());
    for path in ["/lua/respond-deep", "/lua/respond-cycle"] {
        assert_eq!(get(port, "h", path, &[]).status, 500, "{path}");
    }
    assert!(
        wait_until(WAIT, || {
            let e = t.stderr();
            e.contains("req:respond: tables nested deeper than 128")
                && e.contains("req:respond: the table contains itself (a cycle)")
        }),
        "{}",
        t.stderr()
    );
    assert_eq!(get(port, "h", "/plain", &[]).status, 200);
    assert_eq!(origin.count(), 2);
}

/// Every function of the API, called with every kind of hostile value in every argument
/// position: each call returns or raises a Lua error, and the worker keeps serving.
#[test]
fn every_api_function_survives_hostile_arguments() {
    let script = r#"
local M = {}
local big = string.rep("x", 10 * 1024 * 1024)
local function deep(n) local t = {} for i = 1, n do t = { t } end return t end
local cyc = {} cyc.self = cyc cyc[1] = cyc
local bad = { n = 15, nil, 0/0, math.huge, -math.huge, 1e308, -1e308, 2^63, -2^63, big, {},
  deep(5000), cyc, print, true, coroutine.create(function() end) }

-- call f with `v` in each of the first three places (the others plausible), under pcall
local function hammer(calls, name, f)
  for i = 1, bad.n do
    local v = bad[i]
    for pos = 1, 3 do
      local args = { "x-a", "b", 1 }
      args[pos] = v
      pcall(f, args[1], args[2], args[3])
      calls.n = calls.n + 1
    end
    pcall(f, v, v, v)
    calls.n = calls.n + 1
  end
end

local function tidegate_api(calls)
  local d = tidegate.shared.d
  local fns = {
    ["log.debug"] = tidegate.log.debug, ["log.info"] = tidegate.log.info,
    ["log.warn"] = tidegate.log.warn, ["log.error"] = tidegate.log.error,
    ["log.set_field"] = tidegate.log.set_field, now = tidegate.now,
    ["json.encode"] = tidegate.json.encode, ["json.decode"] = tidegate.json.decode,
    ["base64.encode"] = tidegate.base64.encode, ["base64.decode"] = tidegate.base64.decode,
    sha256 = tidegate.sha256, hmac_sha256 = tidegate.hmac_sha256,
    ["re.match"] = tidegate.re.match, ["re.find"] = tidegate.re.find, ["re.gsub"] = tidegate.re.gsub,
    ["http.request"] = tidegate.http.request,
    ["shared.get"] = function(...) return d:get(...) end,
    ["shared.set"] = function(...) return d:set(...) end,
    ["shared.incr"] = function(...) return d:incr(...) end,
    ["shared.delete"] = function(...) return d:delete(...) end,
    ["shared.ttl"] = function(...) return d:ttl(...) end,
    ["shared.count"] = function(...) return d:count(...) end,
    ["shared.index"] = function(k) return tidegate.shared[k] end,
  }
  for name, f in pairs(fns) do hammer(calls, name, f) end
end

local function req_api(calls, req)
  local fns = {
    header = function(...) return req:header(...) end,
    set_header = function(...) return req:set_header(...) end,
    add_header = function(...) return req:add_header(...) end,
    remove_header = function(...) return req:remove_header(...) end,
    headers = function(...) return req:headers(...) end,
    var = function(...) return req:var(...) end,
    query_arg = function(...) return req:query_arg(...) end,
    set_query_arg = function(...) return req:set_query_arg(...) end,
    respond = function(...) return req:respond(...) end,
    redirect = function(...) return req:redirect(...) end,
    body = function(...) return req.body(...) end,
    set_path = function(v) req.path = v end,
    set_query = function(v) req.query = v end,
    fields = function() return req.method, req.path, req.query, req.host, req.client_ip,
      req.scheme, req.id, req.location end,
  }
  for name, f in pairs(fns) do hammer(calls, name, f) end
end

function M.on_request(req, ctx, conf)
  if req.path ~= "/lua/req" then return end
  local calls = { n = 0 }
  tidegate_api(calls)
  req_api(calls, req)
  return req:respond(200, tostring(calls.n))
end
function M.on_upstream(req, up, ctx, conf)
  local calls = { n = 0 }
  local fns = {
    set_upstream = function(...) return up:set_upstream(...) end,
    set_peer = function(...) return up:set_peer(...) end,
    set_timeouts = function(...) return up:set_timeouts(...) end,
    selected = function() return up.selected end,
  }
  for name, f in pairs(fns) do hammer(calls, name, f) end
  -- whatever the hammering chose, send the request to the configured upstream
  up:set_upstream("backend")
  ctx.calls = calls.n
end
function M.on_response(req, resp, ctx, conf)
  local calls = { n = 0 }
  local fns = {
    header = function(...) return resp:header(...) end,
    set_header = function(...) return resp:set_header(...) end,
    add_header = function(...) return resp:add_header(...) end,
    remove_header = function(...) return resp:remove_header(...) end,
    headers = function(...) return resp:headers(...) end,
    status = function(v) resp.status = v end,
  }
  for name, f in pairs(fns) do hammer(calls, name, f) end
  resp.status = 200
  resp:set_header("x-calls", tostring(ctx.calls) .. "," .. tostring(calls.n))
end
return M
"#;
    let (t, port, _o) = setup(
        script,
        "[lua]\ntime_budget = \"60s\"\nmemory_limit = \"256MB\"\nshared = { d = 100 }",
    );
    // 15 values x 4 placements per function
    let per_fn = 15 * 4;
    let r = get(port, "h", "/lua/req", &[]);
    assert_eq!(r.status, 200, "{}", t.stderr());
    assert_eq!(r.text(), (per_fn * (23 + 14)).to_string());
    let r = get(port, "h", "/lua/up", &[]);
    assert_eq!(r.status, 200, "{}", t.stderr());
    assert_eq!(
        r.header("x-calls"),
        Some(format!("{},{}", per_fn * 4, per_fn * 6).as_str())
    );
    assert_eq!(get(port, "h", "/plain", &[]).status, 200);
}

#[test]
fn client_ip_follows_trusted_proxies_and_host_falls_back_to_authority() {
    let script = r#"
return { on_request = function(req) return req:respond(200, tostring(req.client_ip) .. " " .. req.host .. " " .. tostring(req:var("host"))) end }
"#;
    let (_t, port, _o) = setup_with(
        script,
        "",
        "{}",
        "trusted_proxies = [\"127.0.0.0/8\"]\nhttp2 = true",
    );
    let r = get(
        port,
        "example.com",
        "/lua",
        &[("x-forwarded-for", "203.0.113.7")],
    );
    assert_eq!(r.text(), "203.0.113.7 example.com example.com");
    // HTTP/2 has no Host header: the :authority is the host
    let (status, _, body) = h2_request(port, "GET", "/lua", b"");
    assert_eq!(status, 200);
    assert_eq!(String::from_utf8_lossy(&body), "127.0.0.1 h h");
}

#[test]
fn a_logged_field_cannot_forge_an_access_log_line() {
    let script = r#"
return { on_request = function(req)
  tidegate.log.set_field("user", "a\nFORGED 200 line \"quoted\"")
  tidegate.log.warn("two\nFORGED stderr line")
  return req:respond(200, "ok")
end }
"#;
    let (t, port, _o) = setup(script, "");
    assert_eq!(get(port, "h", "/lua", &[]).text(), "ok");
    assert!(
        wait_until(WAIT, || t.stdout().contains("/lua 200")),
        "{}",
        t.stdout()
    );
    let out = t.stdout();
    let line = out.lines().find(|l| l.contains("/lua 200")).unwrap_or("");
    assert_eq!(
        line, "/lua 200 user=a\\x0AFORGED 200 line \\x22quoted\\x22",
        "{out}"
    );
    assert!(!out.lines().any(|l| l.starts_with("FORGED")), "{out}");
    assert!(
        wait_until(WAIT, || t.stderr().contains("two\\nFORGED stderr line")),
        "{}",
        t.stderr()
    );
    assert!(!t.stderr().lines().any(|l| l.starts_with("FORGED")));
}

/// Luau does not verify bytecode: a compiled chunk must never be loaded, as a script, as a
/// module, or inline.
#[test]
fn compiled_bytecode_is_a_config_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let bytecode = mlua::Compiler::new()
        .compile("return { on_request = function(req) return req:respond(200, 'bytecode') end }")
        .unwrap();
    assert!(
        bytecode[0] < b'\t',
        "Luau bytecode starts with its version byte"
    );
    std::fs::write(dir.path().join("compiled.lua"), &bytecode).unwrap();
    std::fs::create_dir_all(dir.path().join("mods")).unwrap();
    std::fs::write(dir.path().join("mods/compiled_mod.lua"), &bytecode).unwrap();
    let cfg = format!(
        "[lua]\ndir = \"{}\"\n[plugins.file]\ncategory = \"lua\"\npath = \"{}\"\n\
         [plugins.inline]\ncategory = \"lua\"\nsource = \"\\u0005return {{}}\"\n",
        dir.path().join("mods").display(),
        dir.path().join("compiled.lua").display()
    );
    std::fs::write(dir.path().join("t.toml"), cfg).unwrap();
    let (code, out) = run_cli(&["check", "-c", "t.toml"], dir.path());
    assert_eq!(code, 1, "{out}");
    for what in ["compiled.lua looks like", "compiled_mod.lua looks like"] {
        assert!(out.contains(what), "{what}: {out}");
    }
    assert!(
        out.contains("[plugins.inline] source: plugins.inline looks like compiled Luau bytecode"),
        "{out}"
    );
}

/// `tidegate.http.request`: a script's `Host` replaces the URL's (never a second one), the
/// framing headers are refused, `max_body` is bounded by the VM's memory limit, and the
/// outbound policy is applied to the address connected to.
#[test]
fn outbound_calls_replace_host_refuse_framing_and_obey_the_policy() {
    let script = r#"
local M = {}
function M.on_request(req, ctx, conf)
  local out = {}
  local port = req:header("x-port")
  local url = "http://127.0.0.1:" .. port
  local res, err = tidegate.http.request{ url = url .. "/host", headers = { host = "api.internal" } }
  table.insert(out, res and tostring(res.status) or err)
  for _, h in ipairs({ "content-length", "Transfer-Encoding" }) do
    local ok = pcall(tidegate.http.request, { url = url .. "/framing", headers = { [h] = "5" } })
    table.insert(out, ok and ("accepted " .. h) or "refused")
  end
  local ok, e = pcall(tidegate.http.request, { url = url .. "/big", max_body = 1e12 })
  table.insert(out, ok and "accepted max_body" or "refused")
  for _, ip in ipairs({ "127.0.0.2", "127.0.0.3" }) do
    local r, why = tidegate.http.request{ url = "http://" .. ip .. ":" .. port .. "/policy" }
    table.insert(out, tostring(r) .. " " .. tostring(why))
  end
  return req:respond(200, table.concat(out, "|"))
end
return M
"#;
    let (t, port, origin) = setup(
        script,
        "[lua]\nmemory_limit = \"16MB\"\nhttp_deny = [\"127.0.0.2\"]\nhttp_allow = [\"127.0.0.1/32\", \"127.0.0.2/32\"]",
    );
    let op = origin.port().to_string();
    let r = get(port, "h", "/lua", &[("x-port", op.as_str())]);
    assert_eq!(
        r.text(),
        "200|refused|refused|refused|nil 127.0.0.2 is denied by [lua] http_deny|nil 127.0.0.3 is not in [lua] http_allow",
        "{}",
        t.stderr()
    );
    let seen = origin.requests();
    let paths: Vec<&str> = seen.iter().map(|s| s.path.as_str()).collect();
    assert_eq!(paths, ["/host"], "only the allowed call reached a service");
    assert_eq!(seen[0].headers_named("host"), ["api.internal"]);
}
