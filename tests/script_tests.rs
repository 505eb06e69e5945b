//! `tidegate test`: *_test.lua files run offline through the real plugin engine. Passing and
//! failing cases, the report's file, line and diff, the exit status, JUnit, HTTP mocks (and
//! no network without one), a script's errors and budget, and finding the files.

mod common;
use common::*;
use std::path::Path;

fn write(dir: &Path, name: &str, text: &str) {
    let p = dir.join(name);
    if let Some(parent) = p.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::write(p, text).unwrap();
}

const PLUGIN: &str = r#"
local M = {}
function M.on_request(req, ctx, conf)
  if req.path == "/loop" then
    while true do end
  end
  if req.path == "/boom" then
    error("boom at request")
  end
  if req.path == "/ask" then
    local res, err = tidegate.http.request{ url = conf.auth .. "/check" }
    if not res then
      return req:respond(503, err)
    end
    return req:respond(res.status, res.body)
  end
  if req:header("x-key") ~= conf.key then
    return req:respond(401, "no")
  end
  req:set_header("x-checked", "yes")
end
function M.on_response(req, resp, ctx, conf)
  resp:set_header("x-seen", "1")
end
return M
"#;

const CONFIG: &str = r#"
[lua]
time_budget = "20ms"

[servers.main]
addr = "127.0.0.1:1"
locations = ["all"]

[locations.all]
plugins = ["gate"]

[plugins.office]
category = "ip_restriction"
allow = ["10.0.0.0/8"]

[plugins.gate]
category = "lua"
path = "scripts/gate.lua"
config = { key = "k1", auth = "http://auth.internal" }
"#;

fn project() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "scripts/gate.lua", PLUGIN);
    write(dir.path(), "tidegate.toml", CONFIG);
    dir
}

#[test]
fn passing_cases_print_one_line_each_and_exit_0() {
    let dir = project();
    write(
        dir.path(),
        "scripts/gate_test.lua",
        r#"
local t = tidegate.test
local gate = t.plugin("gate")
describe("gate", function()
  it("refuses without the key", function()
    local res = t.run(gate, t.request{ path = "/" })
    t.assert_eq(res.status, 401)
    t.assert_eq(res.body, "no")
    t.assert_eq(res.headers["x-seen"], "1", "an answer goes through on_response")
  end)
  it("passes with the key and edits the upstream request", function()
    local res = t.run(gate, t.request{ headers = { ["x-key"] = "k1" } },
      { upstream_response = { status = 201, body = { "a", "b" } } })
    t.assert_eq(res.status, 201)
    t.assert_eq(res.body, "ab")
    t.assert_eq(res.request.headers["x-checked"], "yes")
    t.assert_eq(res.answered, false)
  end)
  it("a native plugin runs the same way", function()
    local office = t.plugin("office")
    t.assert_eq(t.run(office, t.request{ client_ip = "10.1.2.3" }).status, 200)
    t.assert_eq(t.run(office, t.request{ client_ip = "192.0.2.1" }).status, 403)
  end)
  it("a script from a path, with its own conf", function()
    local other = t.script("scripts/gate.lua", { key = "k2" })
    t.assert_eq(t.run(other, t.request{ headers = { ["x-key"] = "k2" } }).status, 200)
  end)
end)
"#,
    );
    // no PATH: the folders of the config's scripts are searched
    let (code, out) = run_cli(&["test", "-c", "tidegate.toml"], dir.path());
    assert_eq!(code, 0, "{out}");
    for name in [
        "gate › refuses without the key",
        "gate › passes with the key and edits the upstream request",
        "gate › a script from a path, with its own conf",
        "gate › a native plugin runs the same way",
    ] {
        assert!(
            out.lines()
                .any(|l| l.starts_with("ok   ") && l.contains(name) && l.ends_with(" ms)")),
            "{name}: {out}"
        );
    }
    assert!(out.trim_end().ends_with("4 passed, 0 failed"), "{out}");
}

#[test]
fn a_failure_names_file_line_and_diff_and_exits_1_with_junit() {
    let dir = project();
    write(
        dir.path(),
        "t/fail_test.lua",
        r#"local t = tidegate.test
local gate = t.plugin("gate")
it("wrong status", function()
  local res = t.run(gate, t.request{})
  t.assert_eq(res.status, 200, "status")
end)
it("wrong body", function()
  t.assert_eq("one\ntwo\nthree", "one\n2\nthree")
end)
it("right", function()
  t.assert_match("abc", "^a")
end)
"#,
    );
    let (code, out) = run_cli(
        &["test", "-c", "tidegate.toml", "t", "--junit", "report.xml"],
        dir.path(),
    );
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("FAIL t/fail_test.lua › wrong status"), "{out}");
    assert!(out.contains("t/fail_test.lua:5: status"), "{out}");
    assert!(
        out.contains("expected: 200") && out.contains("got:      401"),
        "{out}"
    );
    assert!(out.contains("t/fail_test.lua:8: not equal"), "{out}");
    assert!(
        out.contains("  - 2") && out.contains("  + two"),
        "a line diff: {out}"
    );
    assert!(out.contains("ok   t/fail_test.lua › right"), "{out}");
    assert!(out.trim_end().ends_with("1 passed, 2 failed"), "{out}");
    let xml = std::fs::read_to_string(dir.path().join("report.xml")).unwrap();
    assert!(
        xml.contains("<testsuites name=\"tidegate test\" tests=\"3\" failures=\"2\">"),
        "{xml}"
    );
    assert!(xml.contains("name=\"wrong status\""), "{xml}");
    assert!(
        xml.contains("<failure message=\"t/fail_test.lua:5: status\">"),
        "{xml}"
    );
}

#[test]
fn scripts_errors_budget_and_the_network_are_reported_not_fatal() {
    let dir = project();
    write(
        dir.path(),
        "t/edges_test.lua",
        r#"local t = tidegate.test
local gate = t.plugin("gate")
it("a Lua error is a 500 with the error", function()
  local res = t.run(gate, t.request{ path = "/boom" })
  t.assert_eq(res.status, 500)
  t.assert_match(res.errors[1], "boom at request")
end)
it("an endless loop runs out of its budget", function()
  local res = t.run(gate, t.request{ path = "/loop" })
  t.assert_eq(res.status, 500)
  t.assert_match(res.errors[1], "time budget")
end)
it("an unmocked URL is an error, never a request", function()
  local res = t.run(gate, t.request{ path = "/ask" })
  t.assert_eq(res.status, 503)
  t.assert_match(res.body, "no t.http_mock matches http://auth.internal/check")
end)
it("a mocked URL answers and is recorded", function()
  t.http_mock("http://auth.internal/*", { status = 202, body = "fine" })
  local res = t.run(gate, t.request{ path = "/ask" })
  t.assert_eq({ res.status, res.body }, { 202, "fine" })
  t.assert_eq(t.http_calls()[1].url, "http://auth.internal/check")
end)
it("mocks do not leak into the next case", function()
  t.assert_eq(#t.http_calls(), 0)
  t.assert_eq(t.run(gate, t.request{ path = "/ask" }).status, 503)
end)
"#,
    );
    let (code, out) = run_cli(&["test", "-c", "tidegate.toml", "t"], dir.path());
    assert_eq!(code, 0, "{out}");
    assert!(out.trim_end().ends_with("5 passed, 0 failed"), "{out}");
}

#[test]
fn files_that_do_not_run_and_unknown_plugins_fail_clearly() {
    let dir = project();
    write(dir.path(), "t/syntax_test.lua", "it('x', function() end\n");
    write(
        dir.path(),
        "t/unknown_test.lua",
        "local p = tidegate.test.plugin('nope')\nit('x', function() end)\n",
    );
    write(dir.path(), "t/empty_test.lua", "-- nothing here\n");
    let (code, out) = run_cli(&["test", "-c", "tidegate.toml", "t"], dir.path());
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("FAIL t/syntax_test.lua (did not run)"),
        "{out}"
    );
    assert!(out.contains("t/syntax_test.lua:"), "{out}");
    assert!(
        out.contains("no plugin `nope` in tidegate.toml; it has: "),
        "{out}"
    );
    assert!(
        out.contains("FAIL t/empty_test.lua: no it(...) cases"),
        "{out}"
    );
    assert!(out.trim_end().ends_with("0 passed, 3 failed"), "{out}");
    // nothing to run at all is an error too
    let empty = tempfile::tempdir().unwrap();
    let (code, out) = run_cli(&["test", "nothing-here"], empty.path());
    assert_eq!(code, 1);
    assert!(out.contains("no *_test.lua files found"), "{out}");
}

#[test]
fn the_shipped_examples_pass() {
    let root = env!("CARGO_MANIFEST_DIR");
    let (code, out) = run_cli(&["test", "lua/examples"], Path::new(root));
    assert_eq!(code, 0, "{out}");
    let files = std::fs::read_dir(Path::new(root).join("lua/examples"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".toml"))
        .count();
    for e in std::fs::read_dir(Path::new(root).join("lua/examples"))
        .unwrap()
        .flatten()
    {
        let name = e.file_name().to_string_lossy().into_owned();
        if let Some(stem) = name.strip_suffix(".toml") {
            assert!(
                out.contains(&format!("lua/examples/{stem}_test.lua › ")),
                "every example has its tests: {stem}\n{out}"
            );
        }
    }
    assert!(files >= 8);
}
