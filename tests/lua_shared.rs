//! Shared dicts end to end (`tidegate.shared.NAME`): one per process for all workers, atomic
//! `incr`, TTL, LRU eviction within a byte budget, kept across reloads, and untouched by a
//! rejected reload. `lua_modules.rs` has `require` and script reloads.

mod common;
use common::lua::{setup_dir, write};
use common::*;

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
    let s = setup_dir(2, COUNTER, &[], "shared = { counts = 100 }");
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
    let s = setup_dir(1, DICT_API, &[], "shared = { small = 2, bytes = \"1KB\" }");
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
    let s = setup_dir(1, COUNTER, &[], "shared = { counts = 100 }");
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
    let s = setup_dir(1, script, &[], "shared = { d = 3 }");
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
