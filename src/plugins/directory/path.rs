//! From a request path to a file under the root, never outside it.
//!
//! The path is percent-decoded once (so `%2e%2e` is `..`, and `%252e` stays the name
//! `%2e`), then split on `/`: a `..` segment, a NUL, a backslash, or (unless `hidden`) a
//! segment starting with `.` is refused. What remains is joined to the root, and the result,
//! with every symlink resolved, must still lie under the root unless `follow_symlinks`.

use std::path::{Path, PathBuf};

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

/// The file or directory for `segments` under `root` (canonical), checked against symlinks
/// that lead out.
pub fn resolve(
    root: &Path,
    segments: &[String],
    follow_symlinks: bool,
) -> Result<PathBuf, Refused> {
    let mut p = root.to_path_buf();
    for s in segments {
        p.push(s);
    }
    // blocking, like the reads (`body_source.rs`): a lookup in the dentry cache
    let real = std::fs::canonicalize(&p).map_err(|_| Refused::Missing)?;
    if !follow_symlinks && !real.starts_with(root) {
        return Err(Refused::Missing);
    }
    Ok(real)
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
