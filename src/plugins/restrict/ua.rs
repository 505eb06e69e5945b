//! `ua_restriction`: allow or deny by `User-Agent`.
//!
//! ```toml
//! [plugins.no-bots]
//! category = "ua_restriction"
//! deny = ["*bot*", "curl/*", "~(?i)python-requests"]   # exact, wildcard, ~regex; case-blind
//! # allow = ["Mozilla/*"]
//! status = 403
//! ```
//!
//! A request without a `User-Agent` is matched as an empty one (so an `allow` list refuses it).

use super::{Lists, Refusal};
use crate::plugins::{Flow, Plugin, PluginConfError, PluginError};
use crate::proxy::ctx::Ctx;
use crate::proxy::exchange::Downstream;
use async_trait::async_trait;
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UaConf {
    pub allow: Option<Vec<String>>,
    pub deny: Option<Vec<String>>,
    pub status: Option<u16>,
    pub body: Option<String>,
}

#[derive(Debug)]
pub struct UaRestriction {
    lists: Lists,
    refusal: Refusal,
}

impl UaRestriction {
    pub fn new(c: UaConf) -> Result<UaRestriction, PluginConfError> {
        Ok(UaRestriction {
            lists: Lists::new(c.allow.as_deref(), c.deny.as_deref())?,
            refusal: Refusal::new(c.status, c.body)?,
        })
    }
}

#[async_trait]
impl Plugin for UaRestriction {
    async fn on_request(
        &self,
        session: &mut dyn Downstream,
        _ctx: &mut Ctx,
    ) -> Result<Flow, PluginError> {
        let ua = session
            .req()
            .headers
            .get(http::header::USER_AGENT)
            .map(|v| String::from_utf8_lossy(v.as_bytes()))
            .unwrap_or_default();
        Ok(self.refusal.flow(self.lists.admits(&ua)))
    }
}
