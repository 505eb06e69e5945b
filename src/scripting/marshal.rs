//! Lua values to JSON, bounded: `tidegate.json.encode` and `req:respond(status, table)`.
//!
//! The conversion recurses in Rust, on the worker's stack, where Luau's time budget and
//! memory limit cannot reach: a table nested 200,000 deep would overflow the stack and abort
//! the whole process, and a table that contains itself would never end. So a value is walked
//! first, with a depth limit and the tables on the current path remembered, and refused with
//! a Lua error that says which limit it hit. The walk also counts the values it visits: a
//! table that holds the same sub-table twice at every level has few tables but exponentially
//! many paths, and its JSON would be that large.

use mlua::{LuaSerdeExt, Table, Value};

/// How deep tables may nest in a value turned into JSON (as serde_json's own parser limit).
pub const MAX_DEPTH: usize = 128;

/// How many values (keys and values, at every level) one conversion may visit.
pub const MAX_VALUES: usize = 1 << 20;

/// `v` as JSON, or a Lua error for a value nested deeper than [`MAX_DEPTH`] or holding a
/// cycle. `what` names the caller in the error.
pub fn to_json(lua: &mlua::Lua, what: &str, v: Value) -> mlua::Result<serde_json::Value> {
    if let Value::Table(t) = &v {
        let (mut path, mut seen) = (Vec::new(), 0);
        check(t, &mut path, &mut seen).map_err(|e| mlua::Error::runtime(format!("{what}: {e}")))?;
    }
    lua.from_value(v)
        .map_err(|e| mlua::Error::runtime(format!("{what}: {e}")))
}

/// Walk `t`: `path` holds the tables from the root to here.
fn check(
    t: &Table,
    path: &mut Vec<*const std::ffi::c_void>,
    seen: &mut usize,
) -> Result<(), String> {
    let me = t.to_pointer();
    if path.contains(&me) {
        return Err("the table contains itself (a cycle)".into());
    }
    if path.len() >= MAX_DEPTH {
        return Err(format!("tables nested deeper than {MAX_DEPTH}"));
    }
    path.push(me);
    for pair in t.pairs::<Value, Value>() {
        let (k, v) = pair.map_err(|e| e.to_string())?;
        *seen += 2;
        if *seen > MAX_VALUES {
            return Err(format!("more than {MAX_VALUES} values"));
        }
        for x in [k, v] {
            if let Value::Table(inner) = x {
                check(&inner, path, seen)?;
            }
        }
    }
    path.pop();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lua() -> mlua::Lua {
        mlua::Lua::new()
    }

    #[test]
    fn plain_values_convert() {
        let l = lua();
        let v: Value = l.load("return { a = 1, b = { 'x', 'y' } }").eval().unwrap();
        let j = to_json(&l, "t", v).unwrap();
        assert_eq!(j, serde_json::json!({"a": 1, "b": ["x", "y"]}));
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let l = lua();
        let v: Value = l
            .load("local t = {} for i = 1, 200000 do t = { t } end return t")
            .eval()
            .unwrap();
        let e = to_json(&l, "json.encode", v).unwrap_err().to_string();
        assert!(
            e.contains("json.encode: tables nested deeper than 128"),
            "{e}"
        );
        // exactly at the limit is fine
        let v: Value = l
            .load("local t = {} for i = 1, 127 do t = { t } end return t")
            .eval()
            .unwrap();
        assert!(to_json(&l, "t", v).is_ok());
    }

    #[test]
    fn cycles_are_errors() {
        let l = lua();
        let v: Value = l
            .load("local a = { b = {} } a.b.back = a return a")
            .eval()
            .unwrap();
        let e = to_json(&l, "t", v).unwrap_err().to_string();
        assert!(e.contains("cycle"), "{e}");
        // the same table twice, side by side, is not a cycle
        let v: Value = l
            .load("local s = { 1 } return { x = s, y = s }")
            .eval()
            .unwrap();
        assert!(to_json(&l, "t", v).is_ok());
        // but not 2^100 of them
        let v: Value = l
            .load("local s = { 1 } for i = 1, 100 do s = { s, s } end return s")
            .eval()
            .unwrap();
        let e = to_json(&l, "t", v).unwrap_err().to_string();
        assert!(e.contains("more than 1048576 values"), "{e}");
    }
}
