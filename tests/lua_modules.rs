//! Lua state beyond one request, end to end: `require` from the `[lua] dir` (once per VM,
//! hot-reloaded, checked by `tidegate check`), the shipped helper library, shared dicts
//! across workers and reloads, and script edits under load.

mod common;
use common::*;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Setup {
    t: Tidegate,
    port: u16,
    dir: tempfile::TempDir,
    _origin: Origin,
}

impl Setup {
    fn script(&self) -> PathBuf {
        self.dir.path().join("script.lua")
    }
    fn get(&self, path: &str, headers: &[(&str, &str)]) -> Response {
        get(self.port, "h", path, headers)
    }
}

fn write(path: &Path, text: &str) {
    if let Some(p) = path.parent() {
        std::fs::create_dir_all(p).unwrap();
    }
    std::fs::write(path, text).unwrap();
}

/// `threads` workers, `/lua` runs script.lua; modules go in `<tmp>/mods`; `lua_extra` is
/// added to `[lua]`.
fn setup(threads: usize, script: &str, modules: &[(&str, &str)], lua_extra: &str) -> Setup {
    setup_in(threads, script, modules, None, lua_extra)
}

/// As `setup`, with `[lua] dir` at `lua_dir` instead of `<tmp>/mods`.
fn setup_in(
    threads: usize,
    script: &str,
    modules: &[(&str, &str)],
    lua_dir: Option<&Path>,
    lua_extra: &str,
) -> Setup {
    let origin = Origin::start(|_| ok("origin"));
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    write(&dir.path().join("script.lua"), script);
    for (name, text) in modules {
        write(&dir.path().join("mods").join(name), text);
    }
    let cfg = format!(
        r#"
[basic]
threads = {threads}

[lua]
dir = "{}"
{lua_extra}

[servers.main]
addr = "127.0.0.1:{port}"
locations = ["lua"]

[locations.lua]
path = "/lua"
upstream = "backend"
plugins = ["script"]

[upstreams.backend]
addrs = ["{}"]

[plugins.script]
category = "lua"
path = "{}"
"#,
        lua_dir
            .map(Path::to_path_buf)
            .unwrap_or_else(|| dir.path().join("mods"))
            .display(),
        origin.addr,
        dir.path().join("script.lua").display()
    );
    std::fs::create_dir_all(dir.path().join("mods")).unwrap();
    let t = Tidegate::start(&cfg, &[port]);
    Setup {
        t,
        port,
        dir,
        _origin: origin,
    }
}

const USES_MODULES: &str = r#"
local greet = require("lib.greet")
local top = require("lib")
local M = {}
function M.on_request(req, ctx)
  if req:header("x-missing") then require("nope") end
  return req:respond(200, greet.hello(req:query_arg("who") or "you") .. " " .. top.name
    .. " loads=" .. tidegate.shared.loads:get("greet"))
end
return M
"#;

const GREET: &str = r#"
tidegate.shared.loads:incr("greet", 1, 0)
local fmt = require("lib.fmt")
return { hello = function(who) return fmt.bang("hello " .. who) end }
"#;

#[test]
fn require_loads_modules_once_per_vm_and_reports_what_is_wrong() {
    let s = setup(
        1,
        USES_MODULES,
        &[
            ("lib/greet.lua", GREET),
            (
                "lib/fmt.lua",
                "return { bang = function(s) return s .. '!' end }",
            ),
            ("lib/init.lua", "return { name = 'lib-init' }"),
        ],
        "shared = { loads = 10 }",
    );
    for _ in 0..5 {
        let r = s.get("/lua?who=bob", &[]);
        assert_eq!(r.status, 200, "{}", s.t.stderr());
        // module code ran once in the one VM, however many requests
        assert_eq!(r.text(), "hello bob! lib-init loads=1");
    }
    assert_eq!(s.get("/lua", &[("x-missing", "1")]).status, 500);
    assert!(wait_until(WAIT, || s
        .t
        .stderr()
        .contains("module `nope` not found under [lua] dir")));

    // editing a module reloads: the new text runs within the wait
    write(
        &s.dir.path().join("mods/lib/fmt.lua"),
        "return { bang = function(s) return s .. '?' end }",
    );
    assert!(wait_until(WAIT, || s
        .get("/lua?who=al", &[])
        .text()
        .starts_with("hello al?")));
}

#[test]
fn check_compiles_every_module_and_names_the_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    write(&dir.path().join("mods/ok.lua"), "return {}");
    write(
        &dir.path().join("mods/deep/broken.lua"),
        "local x = 1\nreturn {\n",
    );
    write(
        &dir.path().join("t.toml"),
        &format!(
            "[lua]\ndir = \"{}\"\nshared = {{ bad = 0 }}\n",
            dir.path().join("mods").display()
        ),
    );
    let (code, out) = run_cli(&["check", "-c", "t.toml"], dir.path());
    assert_ne!(code, 0);
    assert!(out.contains("broken.lua:3"), "{out}");
    assert!(
        out.contains("t.toml:2"),
        "the [lua] dir key is named: {out}"
    );
    assert!(out.contains("shared dict `bad`: capacity"), "{out}");

    write(&dir.path().join("t.toml"), "[lua]\ndir = \"no/such/dir\"\n");
    let (code, out) = run_cli(&["check", "-c", "t.toml"], dir.path());
    assert_ne!(code, 0);
    assert!(out.contains("`no/such/dir` is not a directory"), "{out}");
}

#[test]
fn check_runs_module_level_code_and_names_the_failing_line() {
    let dir = tempfile::tempdir().unwrap();
    // a require cycle and an error at a module's top level
    write(
        &dir.path().join("mods/cycle/a.lua"),
        "return require('cycle.b')",
    );
    write(
        &dir.path().join("mods/cycle/b.lua"),
        "return require('cycle.a')",
    );
    write(
        &dir.path().join("mods/raises.lua"),
        "local t = {}\nerror('raised at load')\nreturn t\n",
    );
    // and a script whose top level fails (after writing to a shared dict, which must not
    // change anything live)
    write(
        &dir.path().join("script.lua"),
        "tidegate.shared.d:set('k', 1)\nlocal x = nil\nreturn x.field\n",
    );
    let cfg = format!(
        "[lua]\ndir = \"{}\"\nshared = {{ d = 10 }}\n[plugins.p]\ncategory = \"lua\"\npath = \"{}\"\n",
        dir.path().join("mods").display(),
        dir.path().join("script.lua").display()
    );
    write(&dir.path().join("t.toml"), &cfg);
    let (code, out) = run_cli(&["check", "-c", "t.toml"], dir.path());
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("module `cycle.a`: runtime error: require cycle"),
        "{out}"
    );
    assert!(!out.contains("stack traceback"), "{out}");
    assert!(out.contains("raises.lua:2: raised at load"), "{out}");
    assert!(
        out.contains("[plugins.p] path") && out.contains("script.lua:3: attempt to index nil"),
        "{out}"
    );

    // running: a reload to such a script is rejected and the old one keeps serving
    let s = setup(
        1,
        "return { on_request = function(req) return req:respond(200, 'v1') end }",
        &[],
        "",
    );
    assert_eq!(s.get("/lua", &[]).text(), "v1");
    write(&s.script(), "error('boom at load')\nreturn {}\n");
    assert!(
        wait_until(WAIT, || s.t.stderr().contains("config rejected")),
        "{}",
        s.t.stderr()
    );
    assert!(
        s.t.stderr().contains("script.lua:1: boom at load"),
        "{}",
        s.t.stderr()
    );
    assert_eq!(s.get("/lua", &[]).text(), "v1");
}

/// An unrelated config change keeps a script's loaded state: its module code does not run
/// again and module-level values survive.
#[test]
fn an_unrelated_reload_keeps_module_state() {
    let s = setup(
        1,
        r#"
local loads = 0
loads = loads + 1
local M = { n = 0 }
local counter = require("counter")
function M.on_request(req, ctx)
  counter.n = counter.n + 1
  return req:respond(200, loads .. " " .. counter.n)
end
return M
"#,
        &[("counter.lua", "return { n = 0 }")],
        "",
    );
    assert_eq!(s.get("/lua", &[]).text(), "1 1");
    assert_eq!(s.get("/lua", &[]).text(), "1 2");
    // add a location: the script and modules are unchanged
    let cfg = std::fs::read_to_string(&s.t.config).unwrap();
    let cfg = cfg.replace("locations = [\"lua\"]", "locations = [\"lua\", \"other\"]")
        + "\n[locations.other]\npath = \"/other\"\nupstream = \"backend\"\n";
    std::fs::write(&s.t.config, cfg).unwrap();
    assert!(
        wait_until(WAIT, || s.get("/other", &[]).status == 200),
        "{}",
        s.t.stderr()
    );
    assert_eq!(s.get("/lua", &[]).text(), "1 3");
    // editing the module is a new module set: its state starts again
    write(&s.dir.path().join("mods/counter.lua"), "return { n = 100 }");
    assert!(
        wait_until(WAIT, || s.get("/lua", &[]).text() == "1 101"),
        "{}",
        s.t.stderr()
    );
}

#[test]
fn the_shipped_helper_library_works() {
    let lua_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("lua");
    let script = r#"
local h = require("lib.helpers")
local M = {}
function M.on_request(req, ctx)
  local user, pass = h.basic_auth(req)
  local parts = h.split("a,b,,c", ",")
  local out = table.concat({
    #parts, parts[4], h.trim("  x  "), tostring(h.starts_with("/api/v1", "/api")),
    tostring(h.ends_with("logo.png", ".jpg")), tostring(h.cookie(req, "sid")),
    tostring(h.bearer(req)), tostring(user) .. ":" .. tostring(pass),
    tostring(h.ipv4_in(req.client_ip, { "10.0.0.0/8", "127.0.0.0/8" })),
    tostring(h.ipv4_in("192.168.1.1", { "192.168.0.0/24" })),
  }, "|")
  if req:header("x-deny") then return h.deny(req, 403, "nope") end
  return req:respond(200, out)
end
return M
"#;
    let s = setup_in(1, script, &[], Some(&lua_dir), "");
    let port = s.port;
    let r = get(
        port,
        "h",
        "/lua",
        &[
            ("cookie", "a=1; sid=xyz ; b=2"),
            ("authorization", "Basic dXNlcjpwYTpzcw=="),
        ],
    );
    assert_eq!(
        r.text(),
        "4|c|x|true|false|xyz|nil|user:pa:ss|true|false",
        "basic auth splits at the first colon"
    );
    let r = get(port, "h", "/lua", &[("authorization", "Bearer t0k")]);
    assert!(r.text().contains("|t0k|nil:nil|"), "{}", r.text());
    let r = get(port, "h", "/lua", &[("x-deny", "1")]);
    assert_eq!(r.status, 403);
    assert!(r.text().contains(r#""error":"nope""#), "{}", r.text());
}

const COUNTER: &str = r#"
-- module level runs once per VM: take a VM number
local vm = tidegate.shared.counts:incr("vms", 1, 0)
local M = {}
function M.on_request(req, ctx)
  local d = tidegate.shared.counts
  local n = d:incr("hits", 1, 0)
  return req:respond(200, vm .. " " .. n)
end
return M
"#;

#[test]
fn a_shared_dict_is_one_for_all_workers_and_incr_is_atomic() {
    let s = setup(2, COUNTER, &[], "shared = { counts = 100 }");
    let port = s.port;
    let results: Vec<String> = std::thread::scope(|sc| {
        let hs: Vec<_> = (0..4)
            .map(|_| {
                sc.spawn(move || {
                    (0..50)
                        .map(|_| get(port, "h", "/lua", &[]).text())
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        hs.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    let mut vms = std::collections::HashSet::new();
    let mut hits: Vec<u64> = results
        .iter()
        .map(|r| {
            let (vm, n) = r.split_once(' ').expect("vm and count");
            vms.insert(vm.to_string());
            n.parse().unwrap()
        })
        .collect();
    hits.sort();
    assert_eq!(vms.len(), 2, "both workers' VMs answered: {vms:?}");
    assert_eq!(
        hits,
        (1..=200).collect::<Vec<u64>>(),
        "every increment counted once, in both VMs"
    );
}

const DICT_API: &str = r#"
local M = {}
function M.on_request(req, ctx)
  local d = tidegate.shared.small
  local op = req:query_arg("op")
  local out
  if op == "fill" then
    local a = d:set("a", "x")
    local b = d:set("b", 2.5)
    d:get("a") -- a is now the most recently used
    local c, err = d:set("c", true)
    out = tostring(a) .. tostring(b) .. tostring(c) .. tostring(err)
  elseif op == "expire" then
    d:set("c", true, 0.2)
    out = tostring(d:ttl("c") > 0)
  elseif op == "bytes" then
    local b = tidegate.shared.bytes
    for i = 1, 20 do b:set("k" .. i, string.rep("v", 100)) end
    out = b:count() .. " " .. tostring(b:get("k1")) .. " " .. tostring(b:get("k20") ~= nil)
  elseif op == "read" then
    out = tostring(d:get("a")) .. " " .. tostring(d:get("b")) .. " " .. tostring(d:get("c"))
  elseif op == "after" then
    local c = d:set("c", true)
    local n, err = d:incr("a", 1)
    local m, err2 = d:incr("zz", 1)
    d:delete("a")
    out = tostring(c) .. " " .. tostring(n) .. " " .. err .. " " .. tostring(m) .. " " .. err2
      .. " " .. tostring(d:get("a")) .. " " .. d:count()
  elseif op == "undeclared" then
    local ok, err = pcall(function() return tidegate.shared.nope end)
    out = (tostring(err):gsub("%c", " "))
  elseif op == "big" then
    local ok, err = pcall(function() d:set("big", string.rep("x", 1048577)) end)
    out = (tostring(err):gsub("%c", " "))
  elseif op == "table" then
    local ok, err = pcall(function() d:set("t", {}) end)
    out = (tostring(err):gsub("%c", " "))
  end
  return req:respond(200, out)
end
return M
"#;

#[test]
fn shared_dict_ttl_lru_eviction_byte_budget_and_errors() {
    let s = setup(1, DICT_API, &[], "shared = { small = 2, bytes = \"1KB\" }");
    // full: the least recently used key (b, though set after a) makes room
    assert_eq!(s.get("/lua?op=fill", &[]).text(), "truetruetruenil");
    assert_eq!(s.get("/lua?op=read", &[]).text(), "x nil true");
    assert_eq!(s.get("/lua?op=expire", &[]).text(), "true");
    assert!(wait_until(WAIT, || s.get("/lua?op=read", &[]).text() == "x nil nil"));
    // bounded in bytes: 1 KB holds five 100-byte values with their keys and bookkeeping
    assert_eq!(s.get("/lua?op=bytes", &[]).text(), "5 nil true");
    assert_eq!(
        s.get("/lua?op=after", &[]).text(),
        "true nil not a number nil not found nil 1"
    );
    assert!(s
        .get("/lua?op=undeclared", &[])
        .text()
        .contains("no shared dict `nope`; declare it in [lua] shared"));
    assert!(s
        .get("/lua?op=big", &[])
        .text()
        .contains("values are at most 1048576 bytes"));
    assert!(s
        .get("/lua?op=table", &[])
        .text()
        .contains("values are strings, numbers or booleans"));
}

#[test]
fn shared_dict_keys_survive_a_reload() {
    let s = setup(1, COUNTER, &[], "shared = { counts = 100 }");
    assert_eq!(s.get("/lua", &[]).text(), "1 1");
    assert_eq!(s.get("/lua", &[]).text(), "1 2");
    // a new script version: module code runs again (a new VM number), the keys stay
    write(
        &s.script(),
        &COUNTER.replace("vm .. \" \" .. n", "\"v2 \" .. vm .. \" \" .. n"),
    );
    assert!(wait_until(WAIT, || s
        .get("/lua", &[])
        .text()
        .starts_with("v2 ")));
    let r = s.get("/lua", &[]).text();
    let n: u64 = r.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(n >= 4, "the count went on from before the reload: {r}");
}

#[test]
fn script_edits_under_load_lose_nothing() {
    let version = |v: u32| {
        format!(
            "local M = {{}}\nfunction M.on_request(req) return req:respond(200, 'v{v}') end\nreturn M\n"
        )
    };
    let s = setup(2, &version(0), &[], "");
    let port = s.port;
    let stop = Arc::new(AtomicBool::new(false));
    let (sent, good) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let clients: Vec<_> = (0..2)
        .map(|_| {
            let (stop, sent, good) = (stop.clone(), sent.clone(), good.clone());
            std::thread::spawn(move || {
                let start = Instant::now();
                while !stop.load(Ordering::SeqCst) && start.elapsed() < Duration::from_secs(60) {
                    sent.fetch_add(1, Ordering::SeqCst);
                    if let Ok(r) = send(
                        port,
                        b"GET /lua HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
                    ) {
                        if r.status == 200 && r.text().starts_with('v') {
                            good.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                }
            })
        })
        .collect();
    for v in 1..=5u32 {
        write(&s.script(), &version(v));
        let want = format!("v{v}");
        assert!(wait_until(WAIT, || s.get("/lua", &[]).text() == want));
    }
    stop.store(true, Ordering::SeqCst);
    for c in clients {
        c.join().unwrap();
    }
    let (sent, good) = (sent.load(Ordering::SeqCst), good.load(Ordering::SeqCst));
    assert!(sent > 0);
    assert_eq!(
        sent, good,
        "every request during five script edits got a 200"
    );
}

/// How long a script edit takes to serve, over 20 edits (a figure for docs/benchmarks.md,
/// not a pass/fail timing). Run:
/// `cargo test --release --test lua_modules measure_script_reload_latency -- --ignored --nocapture`
#[test]
#[ignore]
fn measure_script_reload_latency() {
    let version = |v: u32| {
        format!("return {{ on_request = function(req) return req:respond(200, 'v{v}') end }}\n")
    };
    let s = setup(1, &version(0), &[], "");
    let mut ms = Vec::new();
    for v in 1..=20u32 {
        let start = Instant::now();
        write(&s.script(), &version(v));
        let want = format!("v{v}");
        assert!(wait_until(WAIT, || s.get("/lua", &[]).text() == want));
        ms.push(start.elapsed().as_secs_f64() * 1000.0);
    }
    ms.sort_by(|a, b| a.total_cmp(b));
    println!(
        "script edit to serving over {} edits: median {:.0} ms, min {:.0} ms, max {:.0} ms",
        ms.len(),
        ms[ms.len() / 2],
        ms[0],
        ms[ms.len() - 1]
    );
}

/// A module added to `[lua] dir`, in a subdirectory that did not exist, reloads like an edit.
#[test]
fn a_module_added_in_a_new_directory_reloads() {
    let s = setup(
        1,
        r#"
local M = {}
function M.on_request(req, ctx)
  local ok, m = pcall(require, "later.mod")
  return req:respond(200, ok and m.says or "missing")
end
return M
"#,
        &[],
        "",
    );
    assert_eq!(s.get("/lua", &[]).text(), "missing");
    write(
        &s.dir.path().join("mods/later/mod.lua"),
        "return { says = 'found' }",
    );
    assert!(
        wait_until(WAIT, || s.get("/lua", &[]).text() == "found"),
        "{}",
        s.t.stderr()
    );
}

/// Building a config that is then rejected changes nothing live: a shared dict's limits stay
/// those of the running version until a new one is applied.
#[test]
fn a_rejected_reload_changes_no_shared_dict() {
    let script = r#"
local M = {}
function M.on_request(req, ctx)
  local d = tidegate.shared.d
  for i = 1, 3 do d:set("k" .. i, i) end
  return req:respond(200, d:count() .. " " .. tostring(d:get("k1")))
end
return M
"#;
    let s = setup(1, script, &[], "shared = { d = 3 }");
    assert_eq!(s.get("/lua", &[]).text(), "3 1");
    // a reload that shrinks the dict to one key but is invalid elsewhere
    let cfg = std::fs::read_to_string(&s.t.config).unwrap();
    let bad = cfg.replace("shared = { d = 3 }", "shared = { d = 1 }")
        + "\n[locations.broken]\nupstream = \"nowhere\"\n";
    std::fs::write(&s.t.config, bad).unwrap();
    assert!(
        wait_until(WAIT, || s.t.stderr().contains("config rejected")),
        "{}",
        s.t.stderr()
    );
    // still three keys: the rejected build did not shrink the live dict
    assert_eq!(s.get("/lua", &[]).text(), "3 1");
    // applied for real, the new limit holds
    std::fs::write(
        &s.t.config,
        cfg.replace("shared = { d = 3 }", "shared = { d = 1 }"),
    )
    .unwrap();
    assert!(
        wait_until(WAIT, || s.get("/lua", &[]).text() == "1 nil"),
        "{} {}",
        s.get("/lua", &[]).text(),
        s.t.stderr()
            .lines()
            .filter(|l| l.contains("config"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}
