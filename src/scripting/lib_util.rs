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
//! cached per VM (up to 256), and limited to 2 MiB compiled (a larger one is an error).

use base64::Engine;
use mlua::{Lua, LuaSerdeExt, Value};
use std::cell::RefCell;
use std::collections::HashMap;

thread_local! {
    static REGEXES: RefCell<HashMap<String, regex::Regex>> = RefCell::new(HashMap::new());
}

const REGEX_SIZE_LIMIT: usize = 2 << 20;
/// Parsing runs in Rust too, in time that grows with the pattern's length: 32 KiB parses in
/// well under a millisecond (release); 10 MB took seconds.
const MAX_PATTERN: usize = 32 << 10;

fn regex(pattern: &str) -> mlua::Result<regex::Regex> {
    if pattern.len() > MAX_PATTERN {
        return Err(mlua::Error::runtime(format!(
            "a regex pattern is at most {MAX_PATTERN} bytes, not {}",
            pattern.len()
        )));
    }
    REGEXES.with(|c| {
        let mut cache = c.borrow_mut();
        if let Some(r) = cache.get(pattern) {
            return Ok(r.clone());
        }
        // the compile runs in Rust, where the time budget cannot stop it: a 2 MiB program limit
        // rejects a huge pattern in a few milliseconds instead of tens
        let r = regex::RegexBuilder::new(pattern)
            .size_limit(REGEX_SIZE_LIMIT)
            .build()
            .map_err(|e| mlua::Error::runtime(format!("bad regex {pattern:?}: {e}")))?;
        if cache.len() >= 256 {
            cache.clear();
        }
        cache.insert(pattern.to_string(), r.clone());
        Ok(r)
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
