//! Lua plugins end to end: hooks and ctx across phases, early answers, and every fault:
//! runtime error, infinite loop, pathological pattern, memory bomb, sandbox escapes, global
//! leaks between requests, use outside a phase, compile errors, reload.

mod common;
use common::lua::*;
use common::*;

const AUTH: &str = r#"
local M = {}
function M.on_request(req, ctx, conf)
  if req:header(conf.header) ~= "secret" then
    return req:respond(401, "unauthorized\n", { ["content-type"] = "text/plain" })
  end
  ctx.user = "alice"
  req:set_header("x-from-lua", conf.greeting)
  tidegate.log.set_field("user", ctx.user)
end
function M.on_response(req, resp, ctx, conf)
  resp:set_header("x-user", ctx.user or "none")
  resp:set_header("x-method", req.method)
end
return M
"#;

#[test]
fn hooks_ctx_conf_and_early_answers() {
    let (t, port, origin) = setup(AUTH, "");
    let r = get(port, "h", "/lua", &[]);
    assert_eq!((r.status, r.text().as_str()), (401, "unauthorized\n"));
    assert_eq!(r.header("content-type"), Some("text/plain"));
    assert_eq!(
        origin.count(),
        0,
        "an early answer never reaches the origin"
    );

    let r = get(port, "h", "/lua", &[("x-api-key", "secret")]);
    assert_eq!(r.status, 200);
    assert_eq!(
        r.text(),
        "origin saw hello",
        "req:set_header with conf reaches the origin"
    );
    assert_eq!(
        r.header("x-user"),
        Some("alice"),
        "ctx carries from on_request to on_response"
    );
    assert_eq!(r.header("x-method"), Some("GET"));
    assert!(
        wait_until(WAIT, || t.stdout().contains("/lua 200 user=alice")),
        "{}",
        t.stdout()
    );
}

#[test]
fn a_table_body_is_sent_as_json() {
    let script = r#"return { on_request = function(req, ctx, conf)
        return req:respond(200, { ok = true, path = req.path }) end }"#;
    let (_t, port, _o) = setup(script, "");
    let r = get(port, "h", "/lua/x", &[]);
    assert_eq!(r.header("content-type"), Some("application/json"));
    let body = r.text();
    assert!(
        body.contains("\"ok\":true") && body.contains("\"path\":\"/lua/x\""),
        "{body}"
    );
}

#[test]
fn a_runtime_error_is_a_500_logged_with_script_line_and_request_id() {
    let script = "local M = {}\nfunction M.on_request(req, ctx, conf)\n  local x = nil\n  return x.field\nend\nreturn M\n";
    let (t, port, origin) = setup(script, "");
    let r = get(port, "h", "/lua", &[]);
    assert_eq!(r.status, 500);
    assert_eq!(origin.count(), 0);
    assert!(
        wait_until(WAIT, || t.stderr().contains("lua error")),
        "{}",
        t.stderr()
    );
    let log = t.stderr();
    let line = log.lines().find(|l| l.contains("lua error")).unwrap();
    assert!(line.contains("script.lua:4"), "script and line: {line}");
    assert!(
        line.contains("request_id=") && !line.contains("request_id=-"),
        "request id: {line}"
    );
    // the worker goes on serving
    assert_eq!(get(port, "h", "/plain", &[]).status, 200);
}

#[test]
fn infinite_loop_and_pathological_pattern_stop_at_the_budget() {
    let script = r#"
local M = {}
function M.on_request(req, ctx, conf)
  if req.path == "/lua/loop" then
    while true do end
  else
    local s = string.rep("a", 200000)
    return req:respond(200, tostring(s:find(".-.-.-.-.-.-x")))
  end
end
return M
"#;
    // one worker: a script that never stops would hold it, and every request after it, until
    // the client gave up; the budget ends it with a 500 and the worker serves again
    let (t, port, _o) = setup(script, "[lua]\ntime_budget = \"100ms\"");
    for path in ["/lua/loop", "/lua/pattern"] {
        assert_eq!(get(port, "h", path, &[]).status, 500, "{path}");
        assert_eq!(get(port, "h", "/plain", &[]).status, 200);
    }
    let budget_errors = t
        .stderr()
        .lines()
        .filter(|l| l.contains("time budget exceeded") && l.contains("hook=on_request"))
        .count();
    assert_eq!(budget_errors, 2, "{}", t.stderr());
}

#[test]
fn a_memory_bomb_is_a_500_and_the_vm_recovers() {
    let script = r#"
local M = {}
function M.on_request(req, ctx, conf)
  if req.path == "/lua/bomb" then
    local t = {}
    for i = 1, 100000000 do t[i] = string.rep("x", 1024) .. i end
  end
  return req:respond(200, "fine")
end
return M
"#;
    let (t, port, _o) = setup(
        script,
        "[lua]\nmemory_limit = \"16MB\"\ntime_budget = \"5s\"",
    );
    assert_eq!(get(port, "h", "/lua/bomb", &[]).status, 500);
    assert!(
        wait_until(WAIT, || t
            .stderr()
            .lines()
            .any(|l| l.contains("lua error: script=")
                && l.contains("script.lua hook=on_request")
                && l.contains("memory limit exceeded"))),
        "{}",
        t.stderr()
    );
    for _ in 0..4 {
        assert_eq!(get(port, "h", "/lua/ok", &[]).text(), "fine");
    }
}

#[test]
fn sandbox_escapes_are_closed() {
    let script = r#"
local M = {}
function M.on_request(req, ctx, conf)
  local found = {}
  if os and os.execute then table.insert(found, "os.execute") end
  if io then table.insert(found, "io") end
  if debug then table.insert(found, "debug") end
  if loadstring then table.insert(found, "loadstring") end
  if load then table.insert(found, "load") end
  if getfenv or setfenv then table.insert(found, "fenv") end
  if pcall(require, "os") or pcall(require, "../../etc/passwd") then table.insert(found, "require") end
  if pcall(function() getmetatable("").__index = {} end) then table.insert(found, "string metatable") end
  if pcall(function() string.upper = nil end) then table.insert(found, "string library") end
  return req:respond(200, table.concat(found, ","))
end
return M
"#;
    let (_t, port, _o) = setup(script, "");
    assert_eq!(get(port, "h", "/lua", &[]).text(), "");
}

#[test]
fn globals_do_not_leak_between_requests() {
    let script = r#"
local M = {}
function M.on_request(req, ctx, conf)
  local before = leaked
  leaked = req:header("x-v")
  return req:respond(200, tostring(before))
end
return M
"#;
    let (_t, port, _o) = setup(script, "");
    for v in ["1", "2", "3", "4"] {
        assert_eq!(get(port, "h", "/lua", &[("x-v", v)]).text(), "nil");
    }
}

#[test]
fn using_a_function_outside_its_phase_names_the_phase() {
    let script = r#"
local M = {}
function M.on_response(req, resp, ctx, conf)
  req:set_header("x-late", "1")
end
return M
"#;
    let (t, port, _o) = setup(script, "");
    assert_eq!(
        get(port, "h", "/lua", &[]).status,
        200,
        "a response-phase error is logged, the response goes on"
    );
    assert!(
        wait_until(WAIT, || t
            .stderr()
            .contains("req:set_header is not available in on_response")),
        "{}",
        t.stderr()
    );
}

#[test]
fn compile_errors_are_config_errors_and_a_reload_keeps_the_old_script() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("bad.lua"),
        "local M = {}\nfunction M.on_request(req\n  return 1\nend\nreturn M\n",
    )
    .unwrap();
    let cfg = format!(
        "[servers.s]\naddr = \"127.0.0.1:1\"\n[plugins.p]\ncategory = \"lua\"\npath = \"{}\"\n",
        dir.path().join("bad.lua").display()
    );
    std::fs::write(dir.path().join("t.toml"), cfg).unwrap();
    let (code, out) = run_cli(
        &["check", "-c", dir.path().join("t.toml").to_str().unwrap()],
        dir.path(),
    );
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("[plugins.p] path") && out.contains("bad.lua:3"),
        "{out}"
    );

    // running: a broken edit is rejected on reload, a good one applies
    let v1 = "return { on_request = function(req) return req:respond(200, 'v1') end }";
    let (t, port, _o) = setup(v1, "");
    assert_eq!(get(port, "h", "/lua", &[]).text(), "v1");
    // the listeners come up before the background service listens for SIGHUP
    assert!(wait_until(WAIT, || t
        .stderr()
        .contains("reload triggers ready")));
    let script = script_path(&t);
    std::fs::write(
        &script,
        "return { on_request = function(req) return req:respond(200, 'v2' end }",
    )
    .unwrap();
    unsafe { libc::kill(t.child.id() as i32, libc::SIGHUP) };
    assert!(
        wait_until(WAIT, || t.stderr().contains("config rejected")),
        "{}",
        t.stderr()
    );
    assert_eq!(get(port, "h", "/lua", &[]).text(), "v1");
    std::fs::write(
        &script,
        "return { on_request = function(req) return req:respond(200, 'v3') end }",
    )
    .unwrap();
    unsafe { libc::kill(t.child.id() as i32, libc::SIGHUP) };
    assert!(
        wait_until(WAIT, || get(port, "h", "/lua", &[]).text() == "v3"),
        "{}",
        t.stderr()
    );
}

#[test]
fn lua_needs_work_stealing_off() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = "[basic]\nwork_stealing = true\n[servers.s]\naddr = \"127.0.0.1:1\"\n[plugins.p]\ncategory = \"lua\"\nsource = \"return {}\"\n";
    std::fs::write(dir.path().join("t.toml"), cfg).unwrap();
    let (code, out) = run_cli(
        &["check", "-c", dir.path().join("t.toml").to_str().unwrap()],
        dir.path(),
    );
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("work_stealing"), "{out}");
}

#[test]
fn editing_a_script_applies_without_a_signal() {
    let v1 = "return { on_request = function(req) return req:respond(200, 'v1') end }";
    let (t, port, _o) = setup(v1, "");
    assert_eq!(get(port, "h", "/lua", &[]).text(), "v1");
    // the listeners come up before the background service listens for SIGHUP
    assert!(wait_until(WAIT, || t
        .stderr()
        .contains("reload triggers ready")));
    let script = script_path(&t);
    // the script lives in another directory than the config: it is watched all the same
    std::fs::write(
        &script,
        "return { on_request = function(req) return req:respond(200, 'v2') end }",
    )
    .unwrap();
    assert!(
        wait_until(WAIT, || get(port, "h", "/lua", &[]).text() == "v2"),
        "{}",
        t.stderr()
    );
    assert!(
        t.stderr().contains("referenced file change"),
        "{}",
        t.stderr()
    );
}
