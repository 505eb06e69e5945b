//! From a request path to a file under the root, never outside it.
//!
//! The path is percent-decoded once (so `%2e%2e` is `..`, and `%252e` stays the name
//! `%2e`), then split on `/`: a `..` segment, a NUL, a backslash, or (unless `hidden`) a
//! segment starting with `.` is refused. What remains is opened under the root (`Root`),
//! never leading out of it unless `follow_symlinks`.

use std::path::PathBuf;

/// Why a path is not served: both are a 404 to the client (nothing is revealed).
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    /// `..`, NUL, backslash, a hidden name, bad encoding
    Unsafe,
    /// no such file, or it leads outside the root
    Missing,
}

/// The decoded segments of `raw` (the path without the query).
pub fn segments(raw: &str, hidden: bool) -> Result<Vec<String>, Refused> {
    let bytes: Vec<u8> = percent_encoding::percent_decode_str(raw).collect();
    let text = String::from_utf8(bytes).map_err(|_| Refused::Unsafe)?;
    let mut out = Vec::new();
    for seg in text.split('/') {
        if seg.is_empty() || seg == "." {
            continue;
        }
        if seg == ".."
            || seg.contains('\0')
            || seg.contains('\\')
            || (!hidden && seg.starts_with('.'))
        {
            return Err(Refused::Unsafe);
        }
        out.push(seg.to_string());
    }
    Ok(out)
}

/// What a lookup opened: the file (or directory), its metadata, and its path (for its name,
/// its type, a listing).
pub type Opened = (std::fs::File, std::fs::Metadata, PathBuf);

/// The root files are opened under.
///
/// Without `follow_symlinks`, a lookup is one `openat2` on the root's descriptor with
/// `RESOLVE_BENEATH` (Linux 5.6+): the kernel follows relative symlinks that stay under the
/// root and refuses any step out, with no gap between the check and the open. Where the
/// kernel lacks it, for what it refuses as a crossing (an absolute symlink, which may point
/// back inside), and with `follow_symlinks`, the path is resolved (`realpath`), checked
/// against the root, then opened.
#[derive(Debug)]
pub struct Root {
    pub path: PathBuf,
    dir: Option<std::fs::File>,
    follow_symlinks: bool,
}

/// Set once the kernel answered `ENOSYS` to `openat2`.
static NO_OPENAT2: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

impl Root {
    /// `path` must be canonical.
    pub fn new(path: PathBuf, follow_symlinks: bool) -> std::io::Result<Root> {
        let dir = std::fs::File::open(&path)?;
        Ok(Root {
            path,
            dir: Some(dir),
            follow_symlinks,
        })
    }

    /// Open what `segments` name under the root.
    pub fn open(&self, segments: &[String]) -> Result<Opened, Refused> {
        let mut p = self.path.clone();
        for s in segments {
            p.push(s);
        }
        if let (Some(dir), false) = (&self.dir, self.follow_symlinks) {
            if !NO_OPENAT2.load(std::sync::atomic::Ordering::Relaxed) {
                use rustix::fs::{OFlags, ResolveFlags};
                let rel = if segments.is_empty() {
                    ".".to_string()
                } else {
                    segments.join("/")
                };
                match rustix::fs::openat2(
                    dir,
                    rel.as_str(),
                    OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOCTTY,
                    rustix::fs::Mode::empty(),
                    ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS,
                ) {
                    Ok(fd) => {
                        let f = std::fs::File::from(fd);
                        let meta = f.metadata().map_err(|_| Refused::Missing)?;
                        return Ok((f, meta, p));
                    }
                    Err(rustix::io::Errno::NOSYS) => {
                        NO_OPENAT2.store(true, std::sync::atomic::Ordering::Relaxed);
                    }
                    // a step the kernel would not take beneath the root (an absolute
                    // symlink, even one that points back inside): the path check decides
                    Err(rustix::io::Errno::XDEV) => {}
                    Err(_) => return Err(Refused::Missing),
                }
            }
        }
        // blocking, like the reads (`body_source.rs`): lookups in the dentry cache
        let real = std::fs::canonicalize(&p).map_err(|_| Refused::Missing)?;
        if !self.follow_symlinks && !real.starts_with(&self.path) {
            return Err(Refused::Missing);
        }
        let f = std::fs::File::open(&real).map_err(|_| Refused::Missing)?;
        let meta = f.metadata().map_err(|_| Refused::Missing)?;
        Ok((f, meta, real))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_paths_are_refused() {
        for bad in [
            "/../etc/passwd",
            "/a/../../etc/passwd",
            "/%2e%2e/etc/passwd",
            "/%2E%2E%2Fetc%2Fpasswd",
            "/a/%2e%2e%2f%2e%2e%2fetc",
            "/..%5c..%5cetc",
            "/a\\..\\b",
            "/file%00.html",
            "/.git/config",
            "/%ff%fe",
        ] {
            assert_eq!(segments(bad, false), Err(Refused::Unsafe), "{bad}");
        }
        // decoded once: a doubled encoding is a strange name, not a parent
        assert_eq!(
            segments("/%252e%252e/x", false),
            Ok(vec!["%2e%2e".into(), "x".into()])
        );
        assert_eq!(
            segments("/a//./b/", false),
            Ok(vec!["a".into(), "b".into()])
        );
        assert_eq!(
            segments("/.well-known/x", true),
            Ok(vec![".well-known".into(), "x".into()])
        );
    }
}
