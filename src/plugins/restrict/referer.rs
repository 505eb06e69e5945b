//! `referer_restriction`: allow or deny by the host of the `Referer` header (hotlinking).
//!
//! ```toml
//! [plugins.no-hotlinks]
//! category = "referer_restriction"
//! allow = ["example.com", "*.example.com", "~^partner[0-9]+[.]net$"]   # exact, wildcard, ~regex
//! # deny = ["*.spam.test"]
//! allow_empty = true      # default: a request without a Referer (typed URL, privacy) passes
//! status = 403
//! ```
//!
//! Patterns match the Referer's host, case-blind; a Referer that is not a URL with a host
//! counts as having none.

use super::{Lists, Refusal};
use crate::plugins::{Flow, Plugin, PluginConfError, PluginError};
use crate::proxy::ctx::Ctx;
use crate::proxy::exchange::Downstream;
use async_trait::async_trait;
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RefererConf {
    pub allow: Option<Vec<String>>,
    pub deny: Option<Vec<String>>,
    #[serde(default = "crate::plugins::default_true")]
    pub allow_empty: bool,
    pub status: Option<u16>,
    pub body: Option<String>,
}

#[derive(Debug)]
pub struct RefererRestriction {
    lists: Lists,
    allow_empty: bool,
    refusal: Refusal,
}

impl RefererRestriction {
    pub fn new(c: RefererConf) -> Result<RefererRestriction, PluginConfError> {
        Ok(RefererRestriction {
            lists: Lists::new(c.allow.as_deref(), c.deny.as_deref())?,
            allow_empty: c.allow_empty,
            refusal: Refusal::new(c.status, c.body)?,
        })
    }
}

/// The host of a Referer URL.
fn host(referer: &str) -> Option<String> {
    let uri: http::Uri = referer.parse().ok()?;
    uri.host().map(|h| h.to_ascii_lowercase())
}

#[async_trait]
impl Plugin for RefererRestriction {
    async fn on_request(
        &self,
        session: &mut dyn Downstream,
        _ctx: &mut Ctx,
    ) -> Result<Flow, PluginError> {
        let h = session
            .req()
            .headers
            .get(http::header::REFERER)
            .and_then(|v| v.to_str().ok())
            .and_then(host);
        Ok(self.refusal.flow(match h {
            None => self.allow_empty,
            Some(h) => self.lists.admits(&h),
        }))
    }
}
