//! `Range: bytes=...` (RFC 9110 §14) against a file's size, and `If-Range`.

/// What a Range header asks of a file of `size` bytes.
#[derive(Debug, PartialEq, Eq)]
pub enum Ranges {
    /// no usable Range header (absent, malformed, too many ranges): the whole file
    Whole,
    /// none of the ranges is in the file: 416
    Unsatisfiable,
    /// `(start, len)` pairs, in the order asked
    Parts(Vec<(u64, u64)>),
}

/// Past this many ranges the whole file is sent (RFC 9110 allows it; it stops a request
/// from asking for thousands of tiny parts).
pub const MAX_RANGES: usize = 16;

pub fn parse(header: Option<&str>, size: u64) -> Ranges {
    let Some(h) = header else {
        return Ranges::Whole;
    };
    let Some(spec) = h.trim().strip_prefix("bytes=") else {
        return Ranges::Whole;
    };
    let mut parts = Vec::new();
    let mut count = 0;
    for item in spec.split(',') {
        let item = item.trim();
        if item.is_empty() {
            continue;
        }
        count += 1;
        if count > MAX_RANGES {
            return Ranges::Whole;
        }
        let Some((a, b)) = item.split_once('-') else {
            return Ranges::Whole;
        };
        let (a, b) = (a.trim(), b.trim());
        let range = if a.is_empty() {
            // the last `b` bytes
            let Ok(n) = b.parse::<u64>() else {
                return Ranges::Whole;
            };
            if n == 0 || size == 0 {
                None
            } else {
                let n = n.min(size);
                Some((size - n, n))
            }
        } else {
            let Ok(start) = a.parse::<u64>() else {
                return Ranges::Whole;
            };
            let end = if b.is_empty() {
                size.saturating_sub(1)
            } else {
                let Ok(e) = b.parse::<u64>() else {
                    return Ranges::Whole;
                };
                if e < start {
                    return Ranges::Whole;
                }
                e.min(size.saturating_sub(1))
            };
            (start < size).then(|| (start, end - start + 1))
        };
        if let Some(r) = range {
            parts.push(r);
        }
    }
    if count == 0 {
        Ranges::Whole
    } else if parts.is_empty() {
        Ranges::Unsatisfiable
    } else {
        Ranges::Parts(parts)
    }
}

/// Whether `If-Range` lets the Range apply: it names the current strong ETag, or the
/// current `Last-Modified` exactly.
pub fn if_range_holds(if_range: Option<&str>, etag: &str, last_modified: &str) -> bool {
    match if_range.map(str::trim) {
        None => true,
        Some(v) if v.starts_with('"') => v == etag,
        Some(v) if v.starts_with("W/") => false,
        Some(v) => v == last_modified,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse(None, 100), Ranges::Whole);
        assert_eq!(parse(Some("bytes=0-9"), 100), Ranges::Parts(vec![(0, 10)]));
        assert_eq!(parse(Some("bytes=90-"), 100), Ranges::Parts(vec![(90, 10)]));
        assert_eq!(parse(Some("bytes=-5"), 100), Ranges::Parts(vec![(95, 5)]));
        assert_eq!(
            parse(Some("bytes=-500"), 100),
            Ranges::Parts(vec![(0, 100)])
        );
        assert_eq!(
            parse(Some("bytes=95-200"), 100),
            Ranges::Parts(vec![(95, 5)])
        );
        assert_eq!(
            parse(Some("bytes=0-0, 50-59"), 100),
            Ranges::Parts(vec![(0, 1), (50, 10)])
        );
        assert_eq!(parse(Some("bytes=100-"), 100), Ranges::Unsatisfiable);
        assert_eq!(parse(Some("bytes=-0"), 100), Ranges::Unsatisfiable);
        assert_eq!(parse(Some("bytes=5-1"), 100), Ranges::Whole);
        assert_eq!(parse(Some("items=0-1"), 100), Ranges::Whole);
        assert_eq!(parse(Some("bytes=x-1"), 100), Ranges::Whole);
        let many = format!(
            "bytes={}",
            (0..20)
                .map(|i| format!("{i}-{i}"))
                .collect::<Vec<_>>()
                .join(",")
        );
        assert_eq!(parse(Some(&many), 100), Ranges::Whole);
    }

    #[test]
    fn if_range() {
        assert!(if_range_holds(None, "\"a\"", "d"));
        assert!(if_range_holds(Some("\"a\""), "\"a\"", "d"));
        assert!(!if_range_holds(Some("\"b\""), "\"a\"", "d"));
        assert!(!if_range_holds(Some("W/\"a\""), "\"a\"", "d"));
        assert!(if_range_holds(Some("d"), "\"a\"", "d"));
        assert!(!if_range_holds(Some("e"), "\"a\"", "d"));
    }
}
