//! Entry points for the fuzz targets under `tests/fuzz/` and for the test that replays their
//! corpora (`tests/fuzz_corpus.rs`, run by `scripts/test.sh` on stable Rust). Each takes raw
//! bytes and must neither panic nor hang, whatever they are; where a result can be checked
//! (a round trip, an invariant), it is asserted here, so a replay catches wrong answers too.
//!
//! ```text
//! cargo +nightly fuzz run --fuzz-dir tests/fuzz config      # config parse + validate
//!                                               route       # route rules and matching
//!                                               guard       # raw request bytes: parser + guard
//!                                               log_format  # access-log templates
//!                                               rewrite     # rewrite rules
//!                                               lua_value   # Lua values to and from JSON
//!                                               h1_head     # own HTTP/1 parser vs Pingora's
//!                                               h1_chunked  # chunked decoder vs Pingora's
//! ```
//!
//! While fuzzing (`cfg(fuzzing)`), config validation resolves no host names: a fuzzer must
//! not send DNS queries.

pub mod h1;

use crate::config::SourceDoc;
use crate::routing::rules::{Condition, HostRule, PathRule};
use crate::routing::{RouteInput, RouteSpec, Router};

fn text(data: &[u8]) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(data)
}

/// Config text through the whole validation.
pub fn config(data: &[u8]) {
    let docs = [SourceDoc {
        name: "fuzz.toml".into(),
        text: text(data).into_owned(),
    }];
    if let Err(e) = crate::config::build(&docs) {
        // every error names the document
        for err in &e.0 {
            assert_eq!(err.file, "fuzz.toml", "{err}");
        }
    }
}

/// Lines: a host rule, a path rule, a header condition, then a request's host, path, query
/// and one header value. The rules that parse join fixed ones in a router; the request is
/// looked up, and a match must name a location that exists.
pub fn route(data: &[u8]) {
    let s = text(data);
    let mut lines = s.split('\n');
    let mut next = || lines.next().unwrap_or("");
    let (host_rule, path_rule, header_rule) = (next(), next(), next());
    let (host, path, query, header) = (next(), next(), next(), next());
    let mut specs = vec![
        spec(0, &["example.com"], "/", &[]),
        spec(1, &["*.example.com"], "~^/api/(?<v>v\\d+)/", &[]),
        spec(2, &[], "=/exact", &["x-env=prod"]),
    ];
    if let (Ok(h), Ok(p)) = (HostRule::parse(host_rule), PathRule::parse(path_rule)) {
        let headers = Condition::parse(header_rule, '=').into_iter().collect();
        specs.push(RouteSpec {
            location: 3,
            hosts: vec![h],
            path: p,
            headers,
            query: Vec::new(),
            priority: None,
        });
    }
    let n = specs.len();
    let router = Router::new(specs);
    let header_fn = |_: &str| Some(header);
    let input = RouteInput {
        host: &crate::routing::normalize_host(host),
        path,
        query,
        header: &header_fn,
    };
    if let Some(m) = router.lookup(&input) {
        assert!(m.location < n);
    }
}

fn spec(location: usize, hosts: &[&str], path: &str, headers: &[&str]) -> RouteSpec {
    RouteSpec {
        location,
        hosts: hosts
            .iter()
            .filter_map(|h| HostRule::parse(h).ok())
            .collect(),
        path: PathRule::parse(path).unwrap_or(PathRule::Prefix("/".into())),
        headers: headers
            .iter()
            .filter_map(|h| Condition::parse(h, '=').ok())
            .collect(),
        query: Vec::new(),
        priority: None,
    }
}

/// Raw request bytes through Pingora's HTTP/1 parser and tidegate's request guard.
pub fn guard(data: &[u8]) {
    thread_local! {
        static RT: Option<tokio::runtime::Runtime> = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .ok();
        static SERVER: Option<crate::config::model::Server> = crate::config::build(&[SourceDoc {
            name: "fuzz".into(),
            text: "[servers.s]\naddr = \"127.0.0.1:1\"\n".into(),
        }])
        .ok()
        .and_then(|c| c.servers.into_iter().next());
    }
    RT.with(|rt| {
        SERVER.with(|server| {
            let (Some(rt), Some(server)) = (rt, server) else {
                return;
            };
            rt.block_on(async {
                let (mut client, io) = tokio::io::duplex(data.len() + 1);
                let _ = tokio::io::AsyncWriteExt::write_all(&mut client, data).await;
                drop(client);
                let mut s = pingora::proxy::Session::new_h1(Box::new(io));
                if let Ok(true) = s.read_request().await {
                    let _ = crate::proxy::guard::check(&s, server);
                }
            });
        })
    });
}

/// An access-log template: parsed, and when it parses, rendered from fixed values.
pub fn log_format(data: &[u8]) {
    use crate::observability::access_log::{Field, LogFormat, LogSource};
    struct Fixed;
    impl LogSource for Fixed {
        fn write_field(&self, f: &Field, out: &mut String) {
            // a hostile value wherever one can come from; the fields that hold only numbers,
            // times, addresses or tokens (not scanned for escapes) get one of those
            out.push_str(if f.escapes() { "v\n\"\\" } else { "127.0.0.1" });
        }
    }
    if let Ok(f) = LogFormat::parse(&text(data)) {
        let line = f.render(&Fixed);
        // values are escaped: a rendered line never gains a line break from a value
        let template_breaks = text(data).matches('\n').count();
        assert!(line.matches('\n').count() <= template_breaks, "{line:?}");
        if f.json {
            assert!(
                serde_json::from_str::<serde_json::Value>(&line).is_ok(),
                "{line}"
            );
        }
    }
}

/// A rewrite rule (first line) applied to a path (second line).
pub fn rewrite(data: &[u8]) {
    let s = text(data);
    let (rule, path) = s.split_once('\n').unwrap_or((&s, "/"));
    if let Ok(r) = crate::routing::rewrite::Rewrite::parse(rule) {
        let _ = r.apply(path);
    }
}

/// JSON text into a Lua value (as `tidegate.json.decode` makes it) and back to JSON (as
/// `json.encode` and `req:respond` do): the bounded conversion never fails on what came from
/// JSON, and gives the same value back (arrays and objects, numbers as numbers).
pub fn lua_value(data: &[u8]) {
    use mlua::LuaSerdeExt;
    thread_local! {
        static LUA: mlua::Lua = mlua::Lua::new();
    }
    let Ok(j) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    LUA.with(|lua| {
        let opts = mlua::SerializeOptions::new().serialize_none_to_null(false);
        let Ok(v) = lua.to_value_with(&j, opts) else {
            return;
        };
        match crate::scripting::marshal::to_json(lua, "fuzz", v) {
            Ok(back) => assert!(same(&j, &back), "{j} became {back}"),
            Err(e) => {
                let m = e.to_string();
                assert!(m.contains("more than"), "{j}: {m}");
            }
        }
    });
}

/// Equal as JSON means equal to a script: null members vanish in Lua, an empty object and
/// an empty array are the same empty table, and numbers compare as f64.
fn same(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    use serde_json::Value as J;
    match (a, b) {
        (J::Number(x), J::Number(y)) => x.as_f64() == y.as_f64(),
        (J::Array(x), J::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| same(p, q))
        }
        (J::Object(x), J::Object(y)) => {
            let x: Vec<_> = x.iter().filter(|(_, v)| !v.is_null()).collect();
            let y_len = y.values().filter(|v| !v.is_null()).count();
            x.len() == y_len && x.iter().all(|(k, v)| y.get(*k).is_some_and(|w| same(v, w)))
        }
        (J::Array(x), J::Object(y)) | (J::Object(y), J::Array(x)) => x.is_empty() && y.is_empty(),
        _ => a == b,
    }
}
