//! Where cached responses live: an index in memory (key → its `Vary` variants) with a size
//! budget and least-recently-used eviction, and the bodies in memory or in files.
//!
//! With `storage = "disk:DIR"` each variant is one file in DIR (a JSON line of metadata, then
//! the body), written by a blocking task after the response ended (then the body leaves
//! memory), and read back at start, so the cache survives a restart. Files are written to a
//! temporary name and renamed, so a crash never leaves half an entry under a real name.

use super::policy::Lifetime;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// Entries up to this size are read from disk on the worker thread.
const SMALL_FILE: u64 = 256 << 10;

/// At most this many `Vary` variants are kept per key (the oldest goes).
const MAX_VARIANTS: usize = 8;

/// What is stored about one response, besides its body.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Meta {
    pub key: String,
    pub status: u16,
    pub headers: Vec<(String, String)>,
    /// seconds since the epoch, when it was stored
    pub stored: f64,
    pub fresh: f64,
    pub swr: f64,
    pub sie: f64,
    pub initial_age: f64,
    /// the request's values of the `Vary` headers (lower-case names)
    pub vary: Vec<(String, Option<String>)>,
    pub size: u64,
}

impl Meta {
    pub fn life(&self) -> Lifetime {
        Lifetime {
            fresh: Duration::from_secs_f64(self.fresh),
            swr: Duration::from_secs_f64(self.swr),
            sie: Duration::from_secs_f64(self.sie),
            initial_age: Duration::from_secs_f64(self.initial_age),
        }
    }

    /// Its age now (RFC 9111 §4.2.3: what it had on arrival plus its time here).
    pub fn age(&self, now: SystemTime) -> Duration {
        let stored = SystemTime::UNIX_EPOCH + Duration::from_secs_f64(self.stored);
        now.duration_since(stored).unwrap_or_default() + self.life().initial_age
    }
}

#[derive(Debug, Clone)]
pub enum Body {
    Mem(Bytes),
    File(PathBuf),
}

#[derive(Debug)]
pub struct Entry {
    pub meta: Meta,
    pub body: Mutex<Body>,
}

impl Entry {
    /// The body, from memory or its file, read on this thread (for the error path, which
    /// cannot wait).
    pub fn body_now(&self) -> std::io::Result<Bytes> {
        let b = self.body.lock().unwrap_or_else(|p| p.into_inner()).clone();
        match b {
            Body::Mem(b) => Ok(b),
            Body::File(path) => split_body(std::fs::read(&path)?),
        }
    }

    /// The body, from memory or its file.
    pub async fn body(&self) -> std::io::Result<Bytes> {
        let b = self.body.lock().unwrap_or_else(|p| p.into_inner()).clone();
        match b {
            Body::Mem(b) => Ok(b),
            // a small file is read on this thread, as nginx does (from the page cache, a
            // few microseconds; handing it to the blocking pool costs more than the read)
            Body::File(path) if self.meta.size <= SMALL_FILE => split_body(std::fs::read(&path)?),
            Body::File(path) => split_body(tokio::fs::read(&path).await?),
        }
    }
}

/// A file's body: what follows its metadata line.
fn split_body(all: Vec<u8>) -> std::io::Result<Bytes> {
    let at = all
        .iter()
        .position(|&c| c == b'\n')
        .ok_or_else(|| std::io::Error::other("no metadata line"))?;
    Ok(Bytes::from(all).slice(at + 1..))
}

struct Slot {
    variants: Vec<Arc<Entry>>,
    tick: u64,
}

#[derive(Default)]
struct Index {
    slots: HashMap<String, Slot>,
    order: BTreeMap<u64, String>,
    tick: u64,
    bytes: u64,
}

/// The store of one `cache` plugin.
pub struct Store {
    index: Mutex<Index>,
    max_size: u64,
    dir: Option<PathBuf>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Store({:?}, {} bytes)", self.dir, self.max_size)
    }
}

fn file_name(meta: &Meta) -> String {
    let mut id = meta.key.clone();
    for (k, v) in &meta.vary {
        id.push_str(&format!("\n{k}:{}", v.as_deref().unwrap_or("")));
    }
    format!(
        "{}.entry",
        hex::encode(ring::digest::digest(&ring::digest::SHA256, id.as_bytes()))
    )
}

impl Store {
    /// A store; with `dir`, the entries already there are read back (bad files skipped).
    pub fn new(max_size: u64, dir: Option<PathBuf>) -> std::io::Result<Store> {
        let store = Store {
            index: Mutex::new(Index::default()),
            max_size,
            dir: dir.clone(),
        };
        if let Some(dir) = dir {
            std::fs::create_dir_all(&dir)?;
            let mut loaded = 0;
            for e in std::fs::read_dir(&dir)?.flatten() {
                let path = e.path();
                if path.extension().is_some_and(|x| x == "tmp") {
                    let _ = std::fs::remove_file(&path);
                    continue;
                }
                if path.extension().is_none_or(|x| x != "entry") {
                    continue;
                }
                if let Some(meta) = read_meta(&path) {
                    store.insert(meta, Body::File(path));
                    loaded += 1;
                }
            }
            if loaded > 0 {
                tracing::info!(dir = %dir.display(), entries = loaded, "cache: entries read back from disk");
            }
        }
        Ok(store)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Index> {
        self.index.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The variant of `key` whose `Vary` values are the request's (`value(name)`).
    pub fn lookup(&self, key: &str, value: impl Fn(&str) -> Option<String>) -> Option<Arc<Entry>> {
        let mut ix = self.lock();
        ix.tick += 1;
        let tick = ix.tick;
        let slot = ix.slots.get_mut(key)?;
        let found = slot
            .variants
            .iter()
            .find(|e| e.meta.vary.iter().all(|(n, v)| value(n) == *v))
            .cloned();
        let old = std::mem::replace(&mut slot.tick, tick);
        ix.order.remove(&old);
        ix.order.insert(tick, key.to_string());
        found
    }

    /// Store an entry (replacing the variant with the same `Vary` values), evicting the
    /// least recently used keys past `max_size`.
    pub fn insert(&self, meta: Meta, body: Body) -> Arc<Entry> {
        let key = meta.key.clone();
        let size = meta.size;
        let entry = Arc::new(Entry {
            meta,
            body: Mutex::new(body),
        });
        let mut gone = Vec::new();
        {
            let mut ix = self.lock();
            ix.tick += 1;
            let tick = ix.tick;
            let mut freed = 0;
            let slot = ix.slots.entry(key.clone()).or_insert(Slot {
                variants: Vec::new(),
                tick,
            });
            let old_tick = std::mem::replace(&mut slot.tick, tick);
            slot.variants.retain(|e| {
                let same = e.meta.vary == entry.meta.vary;
                if same {
                    freed += e.meta.size;
                    gone.push(e.clone());
                }
                !same
            });
            slot.variants.push(entry.clone());
            if slot.variants.len() > MAX_VARIANTS {
                let e = slot.variants.remove(0);
                freed += e.meta.size;
                gone.push(e);
            }
            ix.order.remove(&old_tick);
            ix.order.insert(tick, key.clone());
            ix.bytes = (ix.bytes + size).saturating_sub(freed);
            while ix.bytes > self.max_size {
                let Some((&t, k)) = ix.order.iter().next() else {
                    break;
                };
                let k = k.clone();
                ix.order.remove(&t);
                if let Some(s) = ix.slots.remove(&k) {
                    for e in s.variants {
                        ix.bytes = ix.bytes.saturating_sub(e.meta.size);
                        gone.push(e);
                    }
                }
            }
        }
        for e in gone {
            if !Arc::ptr_eq(&e, &entry) {
                self.forget_file(&e);
            }
        }
        entry
    }

    /// Remove every variant of `key`; whether there was one.
    pub fn purge(&self, key: &str) -> bool {
        let removed = {
            let mut ix = self.lock();
            match ix.slots.remove(key) {
                Some(s) => {
                    ix.order.remove(&s.tick);
                    for e in &s.variants {
                        ix.bytes = ix.bytes.saturating_sub(e.meta.size);
                    }
                    s.variants
                }
                None => Vec::new(),
            }
        };
        for e in &removed {
            self.forget_file(e);
        }
        !removed.is_empty()
    }

    fn forget_file(&self, e: &Entry) {
        if let Some(dir) = &self.dir {
            let _ = std::fs::remove_file(dir.join(file_name(&e.meta)));
        }
    }

    /// With a disk store: write the entry's file (off the worker thread), then let the body
    /// leave memory.
    pub fn persist(self: &Arc<Self>, entry: Arc<Entry>) {
        let Some(dir) = self.dir.clone() else { return };
        let store = self.clone();
        let write = move || {
            let Body::Mem(body) = entry.body.lock().unwrap_or_else(|p| p.into_inner()).clone()
            else {
                return;
            };
            let path = dir.join(file_name(&entry.meta));
            match write_file(&path, &entry.meta, &body) {
                Ok(()) => {
                    // still the stored entry (not purged or replaced meanwhile)?
                    let live = store
                        .lookup_exact(&entry.meta.key)
                        .iter()
                        .any(|e| Arc::ptr_eq(e, &entry));
                    if live {
                        *entry.body.lock().unwrap_or_else(|p| p.into_inner()) = Body::File(path);
                    } else {
                        let _ = std::fs::remove_file(&path);
                    }
                }
                Err(e) => {
                    tracing::warn!(path = %path.display(), "cache: cannot write an entry: {e}")
                }
            }
        };
        match tokio::runtime::Handle::try_current() {
            Ok(h) => {
                h.spawn_blocking(write);
            }
            Err(_) => write(),
        }
    }

    fn lookup_exact(&self, key: &str) -> Vec<Arc<Entry>> {
        self.lock()
            .slots
            .get(key)
            .map(|s| s.variants.clone())
            .unwrap_or_default()
    }
}

fn write_file(path: &Path, meta: &Meta, body: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    {
        let mut f = std::fs::File::create(&tmp)?;
        let line = serde_json::to_string(meta).map_err(std::io::Error::other)?;
        f.write_all(line.as_bytes())?;
        f.write_all(b"\n")?;
        f.write_all(body)?;
        f.sync_data()?;
    }
    std::fs::rename(&tmp, path)
}

fn read_meta(path: &Path) -> Option<Meta> {
    use std::io::BufRead;
    let f = std::fs::File::open(path).ok()?;
    let mut line = String::new();
    std::io::BufReader::new(f).read_line(&mut line).ok()?;
    serde_json::from_str(line.trim_end()).ok()
}
