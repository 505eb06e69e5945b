//! `tidegate.shared.NAME`: dictionaries shared by every worker's VM, like OpenResty's
//! `ngx.shared.DICT`.
//!
//! ```toml
//! [lua]
//! shared = { hits = 10000, pages = "10MB", sessions = { keys = 50000, size = "64MB" } }
//! ```
//!
//! A dict is bounded by a number of keys, a size in bytes, or both (a number alone: that many
//! keys within 64 MB; a size alone: as many keys as fit). Each entry is charged its key, its
//! value and 96 bytes of bookkeeping.
//!
//! ```lua
//! local hits = tidegate.shared.hits
//! local n = hits:incr(req.client_ip, 1, 0, 60)   -- atomic; starts at 0, expires in 60 s
//! hits:set("k", "v", 30)                          -- ttl in seconds, optional
//! local v = hits:get("k")                         -- nil when missing or expired
//! hits:delete("k")
//! ```
//!
//! Values are strings, numbers or booleans. Each dictionary is one mutex-guarded store held by
//! the process, so every worker sees the same keys. The dictionaries live across reloads: a
//! dictionary whose name stays in the config keeps its keys; its limits are those of the
//! config version the script runs under, so a candidate config being checked changes nothing.
//! When a write needs room, the least recently used keys are evicted, in O(1) each, as
//! OpenResty's `lua_shared_dict` does (shared_store.rs). Keys are at most 4 KiB and values at
//! most 1 MiB.

use super::shared_store::{number, Limits, Lru, Refused, Stored};
use mlua::{UserData, UserDataMethods, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

/// The byte budget of a dict declared by its number of keys alone.
pub const DEFAULT_BYTES: usize = 64 << 20;

/// One shared dictionary.
#[derive(Debug)]
pub struct Dict {
    name: String,
    map: Mutex<Lru>,
}

impl Dict {
    fn new(name: &str) -> Dict {
        Dict {
            name: name.to_string(),
            map: Mutex::new(Lru::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Lru> {
        // no user code runs under the lock, but a poisoned lock must not take every worker
        // down with it
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Keys and bytes held now.
    pub fn usage(&self) -> (usize, usize) {
        let l = self.lock();
        (l.len(), l.bytes())
    }
}

/// Every dict some config version holds, by name: a weak reference, so a dict no version
/// declares any more is freed.
fn registry() -> &'static Mutex<HashMap<String, Weak<Dict>>> {
    static R: OnceLock<Mutex<HashMap<String, Weak<Dict>>>> = OnceLock::new();
    R.get_or_init(Default::default)
}

/// The dictionaries of one config version, by name, with that version's limits.
#[derive(Debug, Clone, Default)]
pub struct SharedDicts(pub Arc<HashMap<String, (Arc<Dict>, Limits)>>);

impl PartialEq for SharedDicts {
    fn eq(&self, other: &Self) -> bool {
        self.0.len() == other.0.len()
            && self.0.iter().all(|(k, (d, l))| {
                other
                    .0
                    .get(k)
                    .is_some_and(|(o, ol)| Arc::ptr_eq(o, d) && ol == l)
            })
    }
}

impl SharedDicts {
    /// The names and limits, in name order (what a loaded script depends on).
    pub fn describe(&self) -> String {
        let mut v: Vec<String> = self
            .0
            .iter()
            .map(|(k, (_, l))| format!("{k}={}/{}", l.keys, l.bytes))
            .collect();
        v.sort();
        v.join(",")
    }

    /// Empty every dict (`tidegate test` starts each test with empty dicts).
    pub fn clear_all(&self) {
        for (dict, _) in self.0.values() {
            *dict.lock() = Lru::default();
        }
    }

    /// The same names and limits over new, empty dicts that no one else sees: for running
    /// module code on trial when a config loads, with no effect on the live dicts.
    pub fn detached(&self) -> SharedDicts {
        SharedDicts(Arc::new(
            self.0
                .iter()
                .map(|(k, (_, l))| (k.clone(), (Arc::new(Dict::new(k)), *l)))
                .collect(),
        ))
    }
}

/// The dictionaries for `decl` (name → limits). A name some live version holds gets the same
/// dictionary (its keys survive the reload); nothing about it changes until a script runs
/// under the new version's limits.
pub fn dicts(decl: &[(String, Limits)]) -> SharedDicts {
    let mut reg = registry().lock().unwrap_or_else(|p| p.into_inner());
    reg.retain(|_, w| w.strong_count() > 0);
    let mut out = HashMap::new();
    for (name, limits) in decl {
        let d = match reg.get(name).and_then(Weak::upgrade) {
            Some(d) => d,
            None => {
                let d = Arc::new(Dict::new(name));
                reg.insert(name.clone(), Arc::downgrade(&d));
                d
            }
        };
        out.insert(name.clone(), (d, *limits));
    }
    SharedDicts(Arc::new(out))
}

/// The most keys a dict may be declared with.
const MAX_KEYS: i64 = 100_000_000;

/// A dict's limits from its `[lua] shared` entry: a number of keys, a size ("10MB"), or a
/// table `{ keys = N, size = "10MB" }` with either or both.
pub fn parse_limits(v: &toml::Value) -> Result<Limits, String> {
    let keys = |n: i64| {
        if (1..=MAX_KEYS).contains(&n) {
            Ok(n as usize)
        } else {
            Err(format!("capacity must be 1 to {MAX_KEYS} keys, not {n}"))
        }
    };
    let size = |s: &str| -> Result<usize, String> {
        match crate::config::units::parse_size(s)? {
            n if n < 1024 => Err(format!("size must be at least 1KB, not {s:?}")),
            n => Ok(usize::try_from(n).unwrap_or(usize::MAX)),
        }
    };
    match v {
        toml::Value::Integer(n) => Ok(Limits {
            keys: keys(*n)?,
            bytes: DEFAULT_BYTES,
        }),
        toml::Value::String(s) => Ok(Limits {
            keys: usize::MAX,
            bytes: size(s)?,
        }),
        toml::Value::Table(t) => {
            if let Some(k) = t.keys().find(|k| *k != "keys" && *k != "size") {
                return Err(format!("unknown key `{k}` (use `keys` and `size`)"));
            }
            let k = match t.get("keys") {
                None => None,
                Some(toml::Value::Integer(n)) => Some(keys(*n)?),
                Some(_) => return Err("`keys` must be a whole number".into()),
            };
            let b = match t.get("size") {
                None => None,
                Some(toml::Value::String(s)) => Some(size(s)?),
                Some(_) => return Err("`size` must be a string such as \"10MB\"".into()),
            };
            if k.is_none() && b.is_none() {
                return Err("give `keys`, `size` or both".into());
            }
            Ok(Limits {
                keys: k.unwrap_or(usize::MAX),
                bytes: b.unwrap_or(DEFAULT_BYTES),
            })
        }
        other => Err(format!(
            "give a number of keys, a size such as \"10MB\", or {{ keys = N, size = \"10MB\" }}, not a {}",
            other.type_str()
        )),
    }
}

/// The largest key and value a dict takes.
const MAX_KEY: usize = 4 << 10;
const MAX_VALUE: usize = 1 << 20;

fn check_key(k: &str) -> mlua::Result<()> {
    if k.len() > MAX_KEY {
        return Err(mlua::Error::runtime(format!(
            "shared dict keys are at most {MAX_KEY} bytes"
        )));
    }
    Ok(())
}

fn to_stored(v: Value) -> mlua::Result<Stored> {
    Ok(match v {
        Value::String(s) if s.as_bytes().len() > MAX_VALUE => {
            return Err(mlua::Error::runtime(format!(
                "shared dict values are at most {MAX_VALUE} bytes"
            )))
        }
        Value::String(s) => Stored::Str(s.as_bytes().to_vec()),
        Value::Integer(i) => Stored::Int(i),
        Value::Number(n) => number(n),
        Value::Boolean(b) => Stored::Bool(b),
        other => {
            return Err(mlua::Error::runtime(format!(
                "shared dict values are strings, numbers or booleans, not {}",
                other.type_name()
            )))
        }
    })
}

fn to_lua(lua: &mlua::Lua, v: &Stored) -> mlua::Result<Value> {
    Ok(match v {
        Stored::Str(s) => Value::String(lua.create_string(s)?),
        Stored::Int(i) => Value::Number(*i as f64),
        Stored::Num(n) => Value::Number(*n),
        Stored::Bool(b) => Value::Boolean(*b),
    })
}

fn ttl(v: Option<f64>) -> mlua::Result<Option<Duration>> {
    match v {
        None => Ok(None),
        Some(0.0) => Ok(None),
        Some(s) if s > 0.0 && s.is_finite() && s < 1.0e9 => Ok(Some(Duration::from_secs_f64(s))),
        Some(s) => Err(mlua::Error::runtime(format!(
            "a ttl is a number of seconds (0: none), not {s}"
        ))),
    }
}

/// The Lua handle of one dictionary, with the limits of the script's config version.
pub struct DictHandle(pub Arc<Dict>, pub Limits);

impl UserData for DictHandle {
    fn add_methods<M: UserDataMethods<Self>>(methods: &mut M) {
        methods.add_method("get", |lua, d, key: String| {
            let mut m = d.0.lock();
            match m.get(&key, Instant::now()) {
                Some(v) => to_lua(lua, v),
                None => Ok(Value::Nil),
            }
        });
        methods.add_method(
            "set",
            |_, d, (key, value, secs): (String, Value, Option<f64>)| {
                check_key(&key)?;
                let now = Instant::now();
                if value.is_nil() {
                    d.0.lock().delete(&key);
                    return Ok((true, None));
                }
                let value = to_stored(value)?;
                let expires = ttl(secs)?.map(|t| now + t);
                match d.0.lock().set(&key, value, expires, now, d.1) {
                    Ok(()) => Ok((true, None)),
                    Err(e) => Ok((false, Some(e.as_str()))),
                }
            },
        );
        methods.add_method(
            "incr",
            |_, d, (key, delta, init, secs): (String, f64, Option<f64>, Option<f64>)| {
                check_key(&key)?;
                let now = Instant::now();
                let expires = ttl(secs)?.map(|t| now + t);
                let init = init.map(|i| (i, expires));
                match d.0.lock().incr(&key, delta, init, now, d.1) {
                    Ok(v) => Ok((Some(v), None)),
                    Err(e @ (Refused::NotFound | Refused::NotANumber | Refused::TooLarge)) => {
                        Ok((None, Some(e.as_str())))
                    }
                }
            },
        );
        methods.add_method(
            "add",
            |_, d, (key, value, secs): (String, Value, Option<f64>)| {
                check_key(&key)?;
                let now = Instant::now();
                let value = to_stored(value)?;
                let expires = ttl(secs)?.map(|t| now + t);
                let mut m = d.0.lock();
                if m.get(&key, now).is_some() {
                    return Ok((false, Some("exists")));
                }
                match m.set(&key, value, expires, now, d.1) {
                    Ok(()) => Ok((true, None)),
                    Err(e) => Ok((false, Some(e.as_str()))),
                }
            },
        );
        methods.add_method("flush_all", |_, d, ()| {
            *d.0.lock() = Lru::default();
            Ok(())
        });
        methods.add_method("delete", |_, d, key: String| {
            d.0.lock().delete(&key);
            Ok(())
        });
        methods.add_method("ttl", |_, d, key: String| {
            let now = Instant::now();
            Ok(d.0.lock().expires(&key, now).map(|e| {
                e.map(|t| t.saturating_duration_since(now).as_secs_f64())
                    .unwrap_or(0.0)
            }))
        });
        methods.add_method("count", |_, d, ()| Ok(d.0.len()));
        methods.add_meta_method("__tostring", |_, d, ()| {
            Ok(format!("shared dict {}", d.0.name))
        });
    }
}

/// The dictionaries the running script's config declared, and their handles in this VM.
struct SharedNow {
    dicts: SharedDicts,
    handles: HashMap<String, mlua::AnyUserData>,
}

/// `tidegate.shared`: indexing it by name gives that dictionary's handle.
struct SharedIndex;

impl UserData for SharedIndex {
    fn add_methods<M: UserDataMethods<Self>>(methods: &mut M) {
        methods.add_meta_method("__index", |lua, _, name: String| {
            let Some(mut now) = lua.app_data_mut::<SharedNow>() else {
                return Err(mlua::Error::runtime("no shared dicts are declared"));
            };
            if let Some(h) = now.handles.get(&name) {
                return Ok(h.clone());
            }
            let Some((d, limits)) = now.dicts.0.get(&name).cloned() else {
                return Err(mlua::Error::runtime(format!(
                    "no shared dict `{name}`; declare it in [lua] shared = {{ {name} = CAPACITY }}"
                )));
            };
            let h = lua.create_userdata(DictHandle(d, limits))?;
            now.handles.insert(name, h.clone());
            Ok(h)
        });
    }
}

/// Put `tidegate.shared` in `t`.
pub fn register(lua: &mlua::Lua, t: &mlua::Table) -> mlua::Result<()> {
    t.set("shared", lua.create_userdata(SharedIndex)?)
}

/// Point `tidegate.shared` at `dicts` (a no-op when it already is).
pub fn switch(lua: &mlua::Lua, dicts: &SharedDicts) {
    if let Some(now) = lua.app_data_ref::<SharedNow>() {
        if Arc::ptr_eq(&now.dicts.0, &dicts.0) {
            return;
        }
    }
    lua.set_app_data(SharedNow {
        dicts: dicts.clone(),
        handles: HashMap::new(),
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    const L10: Limits = Limits {
        keys: 10,
        bytes: 1 << 20,
    };

    #[test]
    fn same_name_keeps_keys_and_limits_follow_the_version() {
        let a = dicts(&[("unit_keep".into(), L10)]);
        let now = Instant::now();
        a.0["unit_keep"]
            .0
            .lock()
            .set("k", Stored::Int(1), None, now, L10)
            .unwrap();
        let l20 = Limits { keys: 20, ..L10 };
        let b = dicts(&[("unit_keep".into(), l20)]);
        assert_eq!(b.0["unit_keep"].0.len(), 1);
        assert!(Arc::ptr_eq(&a.0["unit_keep"].0, &b.0["unit_keep"].0));
        assert_eq!((a.0["unit_keep"].1, b.0["unit_keep"].1), (L10, l20));
        // a detached copy shares nothing
        let c = b.detached();
        assert_eq!(c.0["unit_keep"].0.len(), 0);
        assert_eq!(c.0["unit_keep"].1, l20);
    }

    #[test]
    fn a_dict_no_version_holds_is_freed() {
        let a = dicts(&[("unit_gone".into(), L10)]);
        let weak = Arc::downgrade(&a.0["unit_gone"].0);
        drop(a);
        assert!(weak.upgrade().is_none());
        let b = dicts(&[("unit_gone".into(), L10)]);
        assert_eq!(b.0["unit_gone"].0.len(), 0);
    }
}
