//! `tidegate.shared.NAME`: dictionaries shared by every worker's VM, like OpenResty's
//! `ngx.shared.DICT`.
//!
//! ```toml
//! [lua]
//! shared = { hits = 10000, sessions = 50000 }   # name = capacity in keys
//! ```
//!
//! ```lua
//! local hits = tidegate.shared.hits
//! local n = hits:incr(req.client_ip, 1, 0, 60)   -- atomic; starts at 0, expires in 60 s
//! hits:set("k", "v", 30)                          -- ttl in seconds, optional
//! local v = hits:get("k")                         -- nil when missing or expired
//! hits:delete("k")
//! ```
//!
//! Values are strings, numbers or booleans. Each dictionary is one mutex-guarded map held by
//! the process, so every worker sees the same keys. The dictionaries live across reloads: a
//! dictionary whose name stays in the config keeps its keys (its capacity follows the config).
//! When a dictionary is full, expired keys are swept; if it is still full, `set` and `incr` of a
//! new key return `nil, "full"` rather than evicting live keys. Keys are at most 4 KiB and
//! values at most 1 MiB (the dictionaries live outside the VMs' memory limit).

use mlua::{UserData, UserDataMethods, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// A value kept in a shared dictionary.
#[derive(Debug, Clone, PartialEq)]
enum Stored {
    Str(Vec<u8>),
    Int(i64),
    Num(f64),
    Bool(bool),
}

#[derive(Debug)]
struct Entry {
    value: Stored,
    expires: Option<Instant>,
}

#[derive(Debug, Default)]
struct Map {
    entries: HashMap<String, Entry>,
    capacity: usize,
    last_sweep: Option<Instant>,
}

impl Map {
    fn live(&mut self, key: &str, now: Instant) -> Option<&mut Entry> {
        let expired = self
            .entries
            .get(key)
            .is_some_and(|e| e.expires.is_some_and(|t| t <= now));
        if expired {
            self.entries.remove(key);
            return None;
        }
        self.entries.get_mut(key)
    }

    /// Room for one more key? Sweeps expired keys (at most every 100 ms) when full.
    fn room(&mut self, now: Instant) -> bool {
        if self.entries.len() < self.capacity {
            return true;
        }
        let swept_lately = self
            .last_sweep
            .is_some_and(|t| now.duration_since(t) < Duration::from_millis(100));
        if !swept_lately {
            self.last_sweep = Some(now);
            self.entries
                .retain(|_, e| e.expires.is_none_or(|t| t > now));
        }
        self.entries.len() < self.capacity
    }
}

/// One shared dictionary.
#[derive(Debug)]
pub struct Dict {
    name: String,
    map: Mutex<Map>,
}

impl Dict {
    fn lock(&self) -> std::sync::MutexGuard<'_, Map> {
        // a panic cannot happen while the lock is held (no user code runs under it), but a
        // poisoned lock must not take every worker down with it
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn registry() -> &'static Mutex<HashMap<String, Arc<Dict>>> {
    static R: OnceLock<Mutex<HashMap<String, Arc<Dict>>>> = OnceLock::new();
    R.get_or_init(Default::default)
}

/// The dictionaries of one config version, by name.
#[derive(Debug, Clone, Default)]
pub struct SharedDicts(pub Arc<HashMap<String, Arc<Dict>>>);

impl PartialEq for SharedDicts {
    fn eq(&self, other: &Self) -> bool {
        self.0.len() == other.0.len()
            && self
                .0
                .iter()
                .all(|(k, v)| other.0.get(k).is_some_and(|o| Arc::ptr_eq(o, v)))
    }
}

/// The dictionaries for `decl` (name → capacity). A name used before gets the same dictionary
/// (its keys survive the reload) with the new capacity.
pub fn dicts(decl: &[(String, usize)]) -> SharedDicts {
    let mut reg = registry().lock().unwrap_or_else(|p| p.into_inner());
    let mut out = HashMap::new();
    for (name, cap) in decl {
        let d = reg
            .entry(name.clone())
            .or_insert_with(|| {
                Arc::new(Dict {
                    name: name.clone(),
                    map: Mutex::new(Map::default()),
                })
            })
            .clone();
        d.lock().capacity = *cap;
        out.insert(name.clone(), d);
    }
    SharedDicts(Arc::new(out))
}

/// The largest key and value a dict takes: the dicts live outside the VMs' memory limit, so
/// their size is bounded by capacity × these.
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
        Value::Number(n) if n.fract() == 0.0 && n.abs() < 9.0e15 => Stored::Int(n as i64),
        Value::Number(n) => Stored::Num(n),
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

/// The Lua handle of one dictionary.
pub struct DictHandle(pub Arc<Dict>);

impl UserData for DictHandle {
    fn add_methods<M: UserDataMethods<Self>>(methods: &mut M) {
        methods.add_method("get", |lua, d, key: String| {
            let mut m = d.0.lock();
            match m.live(&key, Instant::now()) {
                Some(e) => to_lua(lua, &e.value),
                None => Ok(Value::Nil),
            }
        });
        methods.add_method(
            "set",
            |_, d, (key, value, secs): (String, Value, Option<f64>)| {
                check_key(&key)?;
                let now = Instant::now();
                let mut m = d.0.lock();
                if value.is_nil() {
                    m.entries.remove(&key);
                    return Ok((true, None));
                }
                let value = to_stored(value)?;
                let expires = ttl(secs)?.map(|t| now + t);
                if m.live(&key, now).is_none() && !m.room(now) {
                    return Ok((false, Some("full")));
                }
                m.entries.insert(key, Entry { value, expires });
                Ok((true, None))
            },
        );
        methods.add_method(
            "incr",
            |_, d, (key, delta, init, secs): (String, f64, Option<f64>, Option<f64>)| {
                check_key(&key)?;
                let now = Instant::now();
                let mut m = d.0.lock();
                if let Some(e) = m.live(&key, now) {
                    let next = match e.value {
                        Stored::Int(i) if delta.fract() == 0.0 => {
                            Stored::Int(i.saturating_add(delta as i64))
                        }
                        Stored::Int(i) => Stored::Num(i as f64 + delta),
                        Stored::Num(n) => Stored::Num(n + delta),
                        _ => return Ok((None, Some("not a number"))),
                    };
                    let out = match next {
                        Stored::Int(i) => i as f64,
                        Stored::Num(n) => n,
                        _ => 0.0,
                    };
                    e.value = next;
                    return Ok((Some(out), None));
                }
                let Some(init) = init else {
                    return Ok((None, Some("not found")));
                };
                if !m.room(now) {
                    return Ok((None, Some("full")));
                }
                let v = init + delta;
                let value = if v.fract() == 0.0 && v.abs() < 9.0e15 {
                    Stored::Int(v as i64)
                } else {
                    Stored::Num(v)
                };
                let expires = ttl(secs)?.map(|t| now + t);
                m.entries.insert(key, Entry { value, expires });
                Ok((Some(v), None))
            },
        );
        methods.add_method("delete", |_, d, key: String| {
            d.0.lock().entries.remove(&key);
            Ok(())
        });
        methods.add_method("ttl", |_, d, key: String| {
            let now = Instant::now();
            let mut m = d.0.lock();
            Ok(match m.live(&key, now) {
                None => None,
                Some(e) => Some(
                    e.expires
                        .map(|t| t.duration_since(now).as_secs_f64())
                        .unwrap_or(0.0),
                ),
            })
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
            let Some(d) = now.dicts.0.get(&name).cloned() else {
                return Err(mlua::Error::runtime(format!(
                    "no shared dict `{name}`; declare it in [lua] shared = {{ {name} = CAPACITY }}"
                )));
            };
            let h = lua.create_userdata(DictHandle(d))?;
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

    #[test]
    fn same_name_keeps_keys_across_versions() {
        let a = dicts(&[("unit_keep".into(), 10)]);
        a.0["unit_keep"].lock().entries.insert(
            "k".into(),
            Entry {
                value: Stored::Int(1),
                expires: None,
            },
        );
        let b = dicts(&[("unit_keep".into(), 20)]);
        assert_eq!(b.0["unit_keep"].len(), 1);
        assert_eq!(b.0["unit_keep"].lock().capacity, 20);
        assert_eq!(a, b);
    }

    #[test]
    fn full_sweeps_expired_then_refuses() {
        let d = dicts(&[("unit_full".into(), 2)]);
        let dict = &d.0["unit_full"];
        let now = Instant::now();
        let mut m = dict.lock();
        m.entries.insert(
            "old".into(),
            Entry {
                value: Stored::Bool(true),
                expires: Some(now),
            },
        );
        m.entries.insert(
            "live".into(),
            Entry {
                value: Stored::Bool(true),
                expires: None,
            },
        );
        assert!(m.room(now), "the expired key is swept");
        m.entries.insert(
            "new".into(),
            Entry {
                value: Stored::Bool(true),
                expires: None,
            },
        );
        assert!(!m.room(now));
    }
}
