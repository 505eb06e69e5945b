//! Balancing algorithms: which peer of an upstream gets the next request.
//!
//! ```toml
//! [upstreams.api]
//! addrs = ["127.0.0.1:9001", "127.0.0.1:9002 3"]   # weight after the address
//! algo = "round_robin"  # round_robin | random | least_conn
//!                       # | hash:ip | hash:header:NAME | hash:cookie:NAME | hash:query:NAME | hash:path
//! ```
//!
//! Round robin is smooth and weighted (the order nginx uses: a peer of weight 3 is spread out,
//! not picked three times in a row). Hashing uses a ketama ring, so adding a peer moves only
//! its share of the keys. A request without the hash key (no such header, say) falls back to
//! round robin.

/// What a consistent-hash upstream hashes on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HashKey {
    Ip,
    Header(String),
    Cookie(String),
    Query(String),
    Path,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Algo {
    RoundRobin,
    Random,
    LeastConn,
    Hash(HashKey),
}

impl Algo {
    pub fn parse(s: &str) -> Result<Algo, String> {
        let t = s.trim();
        let named = |rest: &str, what: &str| -> Result<String, String> {
            if rest.is_empty() {
                Err(format!(
                    "`{t}` needs a {what} name, e.g. `hash:{what}:NAME`"
                ))
            } else {
                Ok(rest.to_string())
            }
        };
        Ok(match t {
            "" | "round_robin" | "rr" => Algo::RoundRobin,
            "random" => Algo::Random,
            "least_conn" => Algo::LeastConn,
            "hash:ip" => Algo::Hash(HashKey::Ip),
            "hash:path" => Algo::Hash(HashKey::Path),
            _ => {
                if let Some(h) = t.strip_prefix("hash:header:") {
                    Algo::Hash(HashKey::Header(named(h, "header")?.to_ascii_lowercase()))
                } else if let Some(c) = t.strip_prefix("hash:cookie:") {
                    Algo::Hash(HashKey::Cookie(named(c, "cookie")?))
                } else if let Some(q) = t.strip_prefix("hash:query:") {
                    Algo::Hash(HashKey::Query(named(q, "query")?))
                } else {
                    return Err(format!(
                        "unknown algo `{t}`: use round_robin, random, least_conn, hash:ip, \
                         hash:header:NAME, hash:cookie:NAME, hash:query:NAME or hash:path"
                    ));
                }
            }
        })
    }
}

/// Smooth weighted round-robin order: each peer appears `weight` times, spread out.
pub fn smooth_schedule(weights: &[u32]) -> Vec<u32> {
    let total: i64 = weights.iter().map(|w| *w as i64).sum();
    let mut current = vec![0i64; weights.len()];
    let mut order = Vec::with_capacity(total as usize);
    for _ in 0..total {
        let mut best = 0;
        for (i, w) in weights.iter().enumerate() {
            current[i] += *w as i64;
            if current[i] > current[best] {
                best = i;
            }
        }
        current[best] -= total;
        order.push(best as u32);
    }
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_is_weighted_and_spread() {
        let s = smooth_schedule(&[1, 3]);
        assert_eq!(s.len(), 4);
        assert_eq!(s.iter().filter(|i| **i == 1).count(), 3);
        assert_ne!(s, vec![1, 1, 1, 0]);
        assert!(Algo::parse("hash:header:").is_err());
        assert_eq!(
            Algo::parse("hash:header:X-User").unwrap(),
            Algo::Hash(HashKey::Header("x-user".into()))
        );
    }
}
