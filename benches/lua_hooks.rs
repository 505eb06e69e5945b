//! The cost of one Lua hook call, per phase, on a worker's VM: an empty hook (the dispatch:
//! pointing the handles, the scratch environment, the coroutine for on_request/on_upstream)
//! and a typical one-liner for each phase.
//!
//! Run: `cargo bench --bench lua_hooks`
//!
//! The request is a real Pingora session parsed from bytes over an in-memory stream, so
//! `req:header` reads a real header map.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use pingora::http::ResponseHeader;
use pingora::proxy::Session;
use std::time::Duration;
use tidegate::plugins::UpstreamChoice;
use tidegate::scripting::api::{CurrentChoice, Phase};
use tidegate::scripting::vm::{self, Lent, Script};

const EMPTY: &str = r#"
local M = {}
function M.on_request(req, ctx, conf) end
function M.on_upstream(req, up, ctx, conf) end
function M.on_response(req, resp, ctx, conf) end
function M.on_body(resp, chunk, eof, ctx, conf) end
function M.on_log(req, resp, ctx, conf) end
return M
"#;

const TYPICAL: &str = r#"
local M = {}
function M.on_request(req, ctx, conf)
  if req:header("x-api-key") ~= "secret" then return req:respond(401, "no") end
  ctx.user = "alice"
end
function M.on_upstream(req, up, ctx, conf)
  if req:header("x-beta") then up:set_upstream("beta") end
end
function M.on_response(req, resp, ctx, conf) resp:set_header("x-user", "alice") end
function M.on_body(resp, chunk, eof, ctx, conf) return chunk end
function M.on_log(req, resp, ctx, conf) tidegate.log.set_field("user", "alice") end
return M
"#;

/// Work done in Lua itself (where a JIT could matter): a checksum over a header, byte by byte.
const COMPUTE: &str = r#"
local M = {}
function M.on_request(req, ctx, conf)
  local s = req:header("user-agent") .. string.rep("abcdefgh", 8)
  local h = 5381
  for round = 1, 20 do
    for i = 1, #s do h = (h * 33 + string.byte(s, i)) % 4294967296 end
  end
  ctx.h = h
end
return M
"#;

fn script(id: u64, source: &str) -> Script {
    Script {
        id,
        plugin: format!("bench{id}"),
        chunk_name: format!("bench{id}.lua"),
        source: source.to_string(),
        time_budget: Duration::from_millis(50),
        memory_limit: 64 << 20,
        modules: Default::default(),
        shared: Default::default(),
        http_policy: Default::default(),
    }
}

/// A session holding a parsed GET request with an API key header.
fn session(rt: &tokio::runtime::Runtime) -> Session {
    rt.block_on(async {
        let (client, server) = tokio::io::duplex(4096);
        let mut s = Session::new_h1(Box::new(server));
        let mut c = client;
        tokio::io::AsyncWriteExt::write_all(
            &mut c,
            b"GET /api HTTP/1.1\r\nHost: example.com\r\nx-api-key: secret\r\nuser-agent: bench\r\n\r\n",
        )
        .await
        .expect("write request");
        s.read_request().await.expect("read request");
        // keep the client end open for the session's lifetime
        std::mem::forget(c);
        s
    })
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut s = session(&rt);
    let mut resp = ResponseHeader::build(200, None).expect("response");
    let conf = serde_json::json!({});
    let chunk = bytes::Bytes::from(vec![b'x'; 1024]);
    let mut choice = UpstreamChoice::default();
    for (name, src, id) in [("empty", EMPTY, 1), ("typical", TYPICAL, 2)] {
        let sc = script(id, src);
        let mut g = c.benchmark_group(format!("lua_{name}"));
        for phase in [
            Phase::Request,
            Phase::Upstream,
            Phase::Response,
            Phase::Body,
            Phase::Log,
        ] {
            let lent = Lent {
                session: Some(tidegate::proxy::exchange::erase(&mut s)),
                response: &mut resp as *mut ResponseHeader,
                ctx: std::ptr::null(),
            };
            let data = (phase == Phase::Body).then_some((&chunk, false));
            g.bench_function(phase.name(), |b| {
                b.iter(|| {
                    let _choice = CurrentChoice::enter(&mut choice as *mut UpstreamChoice);
                    let r = vm::call_hook(&sc, phase, 1, &conf, lent, data);
                    // what the proxy does after each call: collect log fields
                    black_box(tidegate::scripting::api::take_fields());
                    black_box(r.is_ok())
                })
            });
            // the hook must have run, not failed
            let _choice = CurrentChoice::enter(&mut choice as *mut UpstreamChoice);
            let r = vm::call_hook(&sc, phase, 1, &conf, lent, data);
            assert!(
                matches!(r, Ok(vm::Outcome::Done(_))),
                "{name} {}: {r:?}",
                phase.name()
            );
        }
        g.finish();
        // answers and fields left by the calls
        let _ = tidegate::scripting::api::take_answer();
        let _ = tidegate::scripting::api::take_fields();
    }
    let sc = script(3, COMPUTE);
    let lent = Lent {
        session: Some(tidegate::proxy::exchange::erase(&mut s)),
        response: std::ptr::null_mut(),
        ctx: std::ptr::null(),
    };
    c.bench_function("lua_compute/on_request", |b| {
        b.iter(|| black_box(vm::call_hook(&sc, Phase::Request, 1, &conf, lent, None).is_ok()))
    });
    assert!(matches!(
        vm::call_hook(&sc, Phase::Request, 1, &conf, lent, None),
        Ok(vm::Outcome::Done(_))
    ));
    vm::end_request(1);

    // a new script version (after a reload): compile it and run its module code in this VM
    let next_id = std::cell::Cell::new(1000u64);
    c.bench_function("lua_load/new_script_version", |b| {
        b.iter(|| {
            let id = next_id.get();
            next_id.set(id + 1);
            let sc = script(id, TYPICAL);
            black_box(vm::call_hook(&sc, Phase::Log, 2, &conf, lent, None).is_ok())
        })
    });
    vm::end_request(2);

    // a worker's first hook call: start a VM (sandbox, API tables), load the script, call it
    c.bench_function("lua_load/first_call_on_a_worker", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for i in 0..iters {
                let src = TYPICAL.to_string();
                total += std::thread::spawn(move || {
                    let sc = script(5000 + i, &src);
                    let conf = serde_json::json!({});
                    let lent = Lent {
                        session: None,
                        response: std::ptr::null_mut(),
                        ctx: std::ptr::null(),
                    };
                    let t0 = std::time::Instant::now();
                    let _ = vm::call_hook(&sc, Phase::Log, 3, &conf, lent, None);
                    let took = t0.elapsed();
                    vm::end_request(3);
                    took
                })
                .join()
                .unwrap_or_default();
            }
            total
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
