//! ACME state on disk, under `[storage] dir`:
//!
//! ```text
//! accounts/<hash of directory and contact>.json   account credentials (mode 0600)
//! certificates/<name>/cert.pem                    the chain, leaf first
//! certificates/<name>/key.pem                     its private key (mode 0600)
//! certificates/<name>/order.lock                  held while an order runs (pid, time)
//! ```
//!
//! Files are written to a temporary name and renamed, so a reader (another instance, the
//! config watch) never sees half a key.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// A lock older than this is taken over (its holder died mid-order).
const STALE_LOCK: Duration = Duration::from_secs(600);

pub fn cert_dir(storage: &Path, name: &str) -> PathBuf {
    storage.join("certificates").join(name)
}

/// `accounts/ID.json` for a directory and contact, relative to the storage.
pub fn account_rel(directory: &str, contact: Option<&str>) -> String {
    let mut h = ring::digest::Context::new(&ring::digest::SHA256);
    h.update(directory.as_bytes());
    h.update(b"\n");
    h.update(contact.unwrap_or("").as_bytes());
    let id = hex::encode(&h.finish().as_ref()[..8]);
    format!("accounts/{id}.json")
}

/// Write `bytes` to `path` through a temporary file and a rename; `private`: mode 0600.
pub fn write_atomic(path: &Path, bytes: &[u8], private: bool) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("file"),
        std::process::id()
    ));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(if private { 0o600 } else { 0o644 })
        .open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, path)
}

/// The order lock of one certificate; released when dropped.
#[derive(Debug)]
pub struct OrderLock(PathBuf);

impl Drop for OrderLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Take the order lock in `dir`: `Ok(None)` when another process holds it.
pub fn lock(dir: &Path) -> std::io::Result<Option<OrderLock>> {
    std::fs::create_dir_all(dir)?;
    let path = dir.join("order.lock");
    for _ in 0..2 {
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
        {
            Ok(mut f) => {
                let _ = writeln!(f, "{}", std::process::id());
                return Ok(Some(OrderLock(path)));
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                if !stale(&path) {
                    return Ok(None);
                }
                let _ = std::fs::remove_file(&path);
            }
            Err(e) => return Err(e),
        }
    }
    Ok(None)
}

/// A lock whose holder is gone: its pid is not alive, or it is older than [`STALE_LOCK`].
fn stale(path: &Path) -> bool {
    let old = std::fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| SystemTime::now().duration_since(t).ok())
        .is_some_and(|age| age > STALE_LOCK);
    let dead = std::fs::read_to_string(path)
        .ok()
        .and_then(|s| s.trim().parse::<i32>().ok())
        .is_some_and(|pid| {
            // SAFETY: signal 0 only checks that the process exists
            let gone = unsafe { libc::kill(pid, 0) } != 0;
            gone && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH)
        });
    old || dead
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lock_is_exclusive_and_released_on_drop() {
        let d = tempfile::tempdir().unwrap();
        let a = lock(d.path()).unwrap();
        assert!(a.is_some());
        assert!(lock(d.path()).unwrap().is_none(), "held by a live process");
        drop(a);
        assert!(lock(d.path()).unwrap().is_some());
    }

    #[test]
    fn a_dead_holders_lock_is_taken_over() {
        let d = tempfile::tempdir().unwrap();
        // a pid that cannot be alive
        std::fs::write(d.path().join("order.lock"), "2147483646\n").unwrap();
        assert!(lock(d.path()).unwrap().is_some());
    }

    #[test]
    fn private_files_are_0600() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("a/key.pem");
        write_atomic(&p, b"secret", true).unwrap();
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(std::fs::read(&p).unwrap(), b"secret");
    }
}
