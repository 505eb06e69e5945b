//! `traffic_split`: send a share of a location's requests, or those that match, to another
//! upstream; sticky, so one user stays on one side.
//!
//! ```toml
//! [plugins.canary]
//! category = "traffic_split"
//! upstream = "canary"                       # where the split goes ([upstreams.canary])
//! weight = 10                               # percent of the rest (0-100, two decimals), default 0
//! match = ["header:x-canary=1", "cookie:canary=yes", "query:canary"]   # any of these: always
//! sticky = "cookie:session"                 # what keeps a user on one side (default "ip")
//! ```
//!
//! A request that matches any `match` rule (`header:`, `cookie:` or `query:` NAME, `=VALUE`
//! optional) goes to `upstream`. Otherwise the `sticky` key (`ip`, `header:NAME`,
//! `cookie:NAME`, `query:NAME`, `user`) is hashed onto 10,000 buckets and the first
//! `weight` percent of them go: the same key always lands on the same side, and raising the
//! weight only moves users from the main side to the split one. A request without the key
//! is decided at random. The side taken is the access log's `{:traffic_split}` field
//! (`upstream`'s name, or `-`).

use super::limit::key::KeySource;
use super::{Plugin, PluginConfError, PluginError, UpstreamChoice};
use crate::proxy::ctx::Ctx;
use crate::proxy::exchange::Downstream;
use async_trait::async_trait;
use serde::Deserialize;
use std::hash::{Hash, Hasher};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SplitConf {
    pub upstream: String,
    #[serde(default)]
    pub weight: f64,
    #[serde(default, rename = "match")]
    pub matches: Vec<String>,
    pub sticky: Option<String>,
}

/// One `match` rule: where to look, and the value wanted (`None`: present at all).
#[derive(Debug)]
struct Rule {
    source: KeySource,
    value: Option<String>,
}

#[derive(Debug)]
pub struct TrafficSplit {
    upstream: String,
    /// buckets of 10,000 that go to `upstream`
    share: u64,
    rules: Vec<Rule>,
    sticky: KeySource,
}

impl TrafficSplit {
    pub fn new(c: SplitConf, upstreams: &[String]) -> Result<TrafficSplit, PluginConfError> {
        if !upstreams.contains(&c.upstream) {
            return Err(PluginConfError::at(
                "upstream",
                format!(
                    "no upstream named `{}` ([upstreams.{}])",
                    c.upstream, c.upstream
                ),
            ));
        }
        if !(0.0..=100.0).contains(&c.weight) {
            return Err(PluginConfError::at(
                "weight",
                format!("{} is not a percentage (0 to 100)", c.weight),
            ));
        }
        let mut rules = Vec::new();
        for m in &c.matches {
            let (what, value) = match m.split_once('=') {
                Some((w, v)) => (w, Some(v.to_string())),
                None => (m.as_str(), None),
            };
            let source = KeySource::parse(what).map_err(|e| {
                PluginConfError::at(
                    "match",
                    format!("`{m}`: {}", e.message.replace("key", "rule")),
                )
            })?;
            if !matches!(
                source,
                KeySource::Header(_) | KeySource::Cookie(_) | KeySource::Query(_)
            ) {
                return Err(PluginConfError::at(
                    "match",
                    format!("`{m}`: a rule is header:NAME, cookie:NAME or query:NAME, with =VALUE or not"),
                ));
            }
            rules.push(Rule { source, value });
        }
        let sticky = KeySource::parse(c.sticky.as_deref().unwrap_or("ip"))
            .map_err(|e| PluginConfError::at("sticky", e.message))?;
        if matches!(
            sticky,
            KeySource::Path | KeySource::Location | KeySource::Ctx
        ) {
            return Err(PluginConfError::at(
                "sticky",
                "sticky is a user's key: ip, header:NAME, cookie:NAME, query:NAME or user",
            ));
        }
        if c.weight == 0.0 && rules.is_empty() {
            return Err(PluginConfError::at(
                "weight",
                "with weight 0 and no `match` rule nothing is split",
            ));
        }
        Ok(TrafficSplit {
            upstream: c.upstream,
            share: (c.weight * 100.0).round() as u64,
            rules,
            sticky,
        })
    }

    fn goes(&self, session: &dyn Downstream, ctx: &Ctx) -> bool {
        let matched = self.rules.iter().any(|r| {
            let v = r.source.value(session, ctx);
            match &r.value {
                // present at all: a header or cookie may be empty and still be there
                None => present(&r.source, session),
                Some(want) => v.as_str() == want,
            }
        });
        if matched {
            return true;
        }
        if self.share == 0 {
            return false;
        }
        let key = self.sticky.value(session, ctx);
        let bucket = if key.as_str().is_empty() {
            rand::random::<u64>() % 10_000
        } else {
            let mut h = rustc_hash::FxHasher::default();
            key.as_str().hash(&mut h);
            // FxHash's low bits are weak for short keys: mix before taking the bucket
            mix(h.finish()) % 10_000
        };
        bucket < self.share
    }
}

/// SplitMix64's finalizer: every input bit moves every output bit.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d049bb133111eb);
    z ^ (z >> 31)
}

fn present(source: &KeySource, session: &dyn Downstream) -> bool {
    let req = session.req();
    match source {
        KeySource::Header(h) => req.headers.contains_key(h),
        KeySource::Cookie(c) => crate::plugins::request_parts::cookie(req, c).is_some(),
        KeySource::Query(q) => crate::plugins::request_parts::query(req, q).is_some(),
        _ => false,
    }
}

#[async_trait]
impl Plugin for TrafficSplit {
    fn wants_upstream(&self) -> bool {
        true
    }

    async fn on_upstream(
        &self,
        session: &mut dyn Downstream,
        choice: &mut UpstreamChoice,
        ctx: &mut Ctx,
    ) -> Result<(), PluginError> {
        let goes = self.goes(&*session, ctx);
        if goes {
            choice.upstream = Some(self.upstream.clone());
        }
        let side = if goes { self.upstream.as_str() } else { "-" };
        ctx.log_fields.push(("traffic_split".into(), side.into()));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::mix;

    #[test]
    fn buckets_spread_evenly() {
        let mut hist = [0u32; 10];
        for i in 0..100_000u64 {
            let mut h = rustc_hash::FxHasher::default();
            std::hash::Hash::hash(&format!("10.0.{}.{}", i / 256, i % 256), &mut h);
            hist[(mix(std::hash::Hasher::finish(&h)) % 10) as usize] += 1;
        }
        for n in hist {
            assert!((9_000..11_000).contains(&n), "{hist:?}");
        }
    }
}
