//! `tidegate.json`, `tidegate.base64`, `tidegate.sha256`, `tidegate.hmac_sha256` and
//! `tidegate.re`: utilities every phase may use.
//!
//! ```lua
//! local t = tidegate.json.decode('{"a":1}')          -- tables, strings, numbers, booleans, nil
//! local s = tidegate.json.encode({ ok = true })
//! local b = tidegate.base64.encode("hi")             -- "aGk="; decode() gives nil on bad input
//! local h = tidegate.sha256("abc")                   -- lower-case hex
//! local m = tidegate.hmac_sha256("key", "message")   -- lower-case hex
//! local r = tidegate.re.match("v12-beta", "v(\\d+)-(?<tag>\\w+)")   -- r[0], r[1], r.tag
//! local from, to = tidegate.re.find("abc123", "\\d+")                  -- 1-based, inclusive
//! local out, n = tidegate.re.gsub("a1b22", "\\d+", "#")              -- "a#b#", 2
//! ```
//!
//! `re` uses the regex crate: linear time, no backtracking blow-up. Compiled patterns are
//! cached per worker (at most 64 patterns and 8 MiB compiled), each limited to 2 MiB compiled and
//! 32 KiB of pattern text (a larger one is an error).

use base64::Engine;
use mlua::{Lua, LuaSerdeExt, Value};
use std::cell::RefCell;
use std::collections::HashMap;

/// Compiled patterns of this worker, with the bytes each holds, and their total.
#[derive(Default)]
struct RegexCache {
    map: HashMap<String, (regex::Regex, usize)>,
    bytes: usize,
}

thread_local! {
    static REGEXES: RefCell<RegexCache> = RefCell::new(RegexCache::default());
}

const REGEX_SIZE_LIMIT: usize = 2 << 20;
/// Each regex's lazy DFA keeps at most this much as it runs.
const DFA_SIZE_LIMIT: usize = 512 << 10;
/// The cache of one worker holds at most this many patterns and this many compiled bytes
/// (as the regex engine counts them); past either, it starts again empty. With the DFA
/// limit, a worker's regexes hold at most 8 MiB + 64 x 512 KiB.
const CACHE_ENTRIES: usize = 64;
const CACHE_BYTES: usize = 8 << 20;
/// Parsing runs in Rust too, in time that grows with the pattern's length: 32 KiB parses in
/// well under a millisecond (release); 10 MB took seconds.
const MAX_PATTERN: usize = 32 << 10;

/// The bytes `pattern` takes compiled, as the regex engine counts them (the same engine and
/// limits `regex::Regex` uses inside).
fn compiled_size(pattern: &str) -> usize {
    let config = regex_automata::meta::Config::new().nfa_size_limit(Some(REGEX_SIZE_LIMIT));
    regex_automata::meta::Builder::new()
        .configure(config)
        .build(pattern)
        .map(|r| r.memory_usage())
        .unwrap_or(REGEX_SIZE_LIMIT)
}

fn regex(pattern: &str) -> mlua::Result<regex::Regex> {
    if pattern.len() > MAX_PATTERN {
        return Err(mlua::Error::runtime(format!(
            "a regex pattern is at most {MAX_PATTERN} bytes, not {}",
            pattern.len()
        )));
    }
    REGEXES.with(|c| {
        let mut cache = c.borrow_mut();
        if let Some((r, _)) = cache.map.get(pattern) {
            return Ok(r.clone());
        }
        // the compile runs in Rust, where the time budget cannot stop it: a 2 MiB program limit
        // rejects a huge pattern in a few milliseconds instead of tens
        let r = regex::RegexBuilder::new(pattern)
            .size_limit(REGEX_SIZE_LIMIT)
            .dfa_size_limit(DFA_SIZE_LIMIT)
            .build()
            .map_err(|e| mlua::Error::runtime(format!("bad regex {pattern:?}: {e}")))?;
        let size = compiled_size(pattern) + pattern.len();
        if cache.map.len() >= CACHE_ENTRIES || cache.bytes + size > CACHE_BYTES {
            cache.map.clear();
            cache.bytes = 0;
        }
        cache.bytes += size;
        cache.map.insert(pattern.to_string(), (r.clone(), size));
        Ok(r)
    })
}

/// This worker's regex cache: (patterns, bytes).
pub fn regex_cache_size() -> (usize, usize) {
    REGEXES.with(|c| {
        let c = c.borrow();
        (c.map.len(), c.bytes)
    })
}

pub fn register(lua: &Lua, t: &mlua::Table) -> mlua::Result<()> {
    let json = lua.create_table()?;
    json.set(
        "encode",
        lua.create_function(|lua, v: Value| {
            Ok(super::marshal::to_json(lua, "json.encode", v)?.to_string())
        })?,
    )?;
    json.set(
        "decode",
        lua.create_function(|lua, s: mlua::String| {
            let j: serde_json::Value = serde_json::from_slice(&s.as_bytes())
                .map_err(|e| mlua::Error::runtime(format!("json.decode: {e}")))?;
            lua.to_value_with(
                &j,
                mlua::SerializeOptions::new().serialize_none_to_null(false),
            )
        })?,
    )?;
    // JSON's null where a script needs to write one (decoded nulls are nil)
    json.set("null", Value::NULL)?;
    t.set("json", json)?;

    let b64 = lua.create_table()?;
    b64.set(
        "encode",
        lua.create_function(|_, s: mlua::String| {
            Ok(base64::engine::general_purpose::STANDARD.encode(&*s.as_bytes()))
        })?,
    )?;
    b64.set(
        "decode",
        lua.create_function(
            |lua, s: mlua::String| match base64::engine::general_purpose::STANDARD
                .decode(&*s.as_bytes())
            {
                Ok(bytes) => Ok(Value::String(lua.create_string(&bytes)?)),
                Err(_) => Ok(Value::Nil),
            },
        )?,
    )?;
    t.set("base64", b64)?;

    t.set(
        "sha256",
        lua.create_function(|_, s: mlua::String| {
            Ok(hex::encode(ring::digest::digest(
                &ring::digest::SHA256,
                &s.as_bytes(),
            )))
        })?,
    )?;
    t.set(
        "hmac_sha256",
        lua.create_function(|_, (k, s): (mlua::String, mlua::String)| {
            let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &k.as_bytes());
            Ok(hex::encode(ring::hmac::sign(&key, &s.as_bytes())))
        })?,
    )?;

    let re = lua.create_table()?;
    re.set(
        "match",
        lua.create_function(|lua, (subject, pattern): (String, String)| {
            let r = regex(&pattern)?;
            let Some(caps) = r.captures(&subject) else {
                return Ok(Value::Nil);
            };
            let out = lua.create_table()?;
            for (i, m) in caps.iter().enumerate() {
                out.raw_set(i, m.map(|m| m.as_str().to_string()))?;
            }
            for name in r.capture_names().flatten() {
                if let Some(m) = caps.name(name) {
                    out.raw_set(name, m.as_str())?;
                }
            }
            Ok(Value::Table(out))
        })?,
    )?;
    re.set(
        "find",
        lua.create_function(|_, (subject, pattern): (String, String)| {
            let r = regex(&pattern)?;
            Ok(match r.find(&subject) {
                Some(m) => (Some(m.start() + 1), Some(m.end())),
                None => (None, None),
            })
        })?,
    )?;
    re.set(
        "gsub",
        lua.create_function(
            |_, (subject, pattern, replacement): (String, String, String)| {
                let r = regex(&pattern)?;
                let n = r.find_iter(&subject).count();
                Ok((
                    r.replace_all(&subject, replacement.as_str()).into_owned(),
                    n,
                ))
            },
        )?,
    )?;
    t.set("re", re)?;
    Ok(())
}

#[cfg(test)]
mod regex_tests {
    use super::*;

    #[test]
    fn the_regex_cache_is_bounded_in_entries_and_bytes() {
        for i in 0..200 {
            regex(&format!("a{i}b+")).unwrap();
            let (n, bytes) = regex_cache_size();
            assert!(n <= CACHE_ENTRIES && bytes <= CACHE_BYTES);
        }
        // large patterns: each near the compiled limit, the byte budget is what bounds them
        let big = |i: usize| format!("x{i}\\w{{8}}");
        assert!(
            compiled_size(&big(0)) > 200_000,
            "{}",
            compiled_size(&big(0))
        );
        let mut most = 0;
        for i in 0..60 {
            regex(&big(i)).unwrap();
            let (n, bytes) = regex_cache_size();
            assert!(bytes <= CACHE_BYTES, "{bytes}");
            most = most.max(n);
        }
        assert!(
            most < 60,
            "the byte budget, not the count, started the cache again"
        );
    }
}
