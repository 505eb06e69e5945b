//! Human units in the TOML: durations (`"500ms"`, `"10s"`, `"2m"`) and sizes (`"64KB"`, `"1MB"`).

use std::time::Duration;

/// Parse a duration such as `500ms`, `10s`, `2m`, `1h`, `1m30s`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    if t.is_empty() {
        return Err("empty duration".into());
    }
    humantime::parse_duration(t).map_err(|e| {
        format!("`{s}` is not a duration ({e}); write e.g. \"500ms\", \"10s\", \"2m\"")
    })
}

/// Parse a size such as `1024`, `64KB`, `64KiB`, `10MB`, `1GB` (KB = 1024 bytes, as nginx).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a size; write e.g. \"64KB\", \"10MB\""))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        other => {
            return Err(format!(
                "`{s}`: unknown size unit `{other}` (use B, KB, MB, GB)"
            ))
        }
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("`{s}` is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_sizes() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("ten").is_err());
        assert_eq!(parse_size("64KB"), Ok(65536));
        assert_eq!(parse_size("10MB"), Ok(10 << 20));
        assert_eq!(parse_size("17"), Ok(17));
        assert!(parse_size("1XB").is_err());
        assert!(parse_size("99999999999999999999GB").is_err());
    }
}
