//! `request_id`: give every request an id, pass it upstream and back to the client.
//!
//! ```toml
//! [plugins.req-id]
//! category = "request_id"
//! header = "x-request-id"     # default
//! trust_incoming = false      # true: keep a client-sent id (1..=128 visible ASCII chars)
//! ```
//!
//! The id is available as `$request_id` in templates and `{request_id}` in the access log.

use super::{Flow, Plugin, PluginConfError, PluginError};
use crate::proxy::ctx::Ctx;
use crate::proxy::exchange::Downstream;
use async_trait::async_trait;
use pingora::http::ResponseHeader;
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestIdConf {
    #[serde(default = "default_header")]
    pub header: String,
    #[serde(default)]
    pub trust_incoming: bool,
}

fn default_header() -> String {
    "x-request-id".into()
}

#[derive(Debug)]
pub struct RequestId {
    header: http::HeaderName,
    trust_incoming: bool,
}

impl RequestId {
    pub fn new(c: RequestIdConf) -> Result<RequestId, PluginConfError> {
        let header = http::HeaderName::from_bytes(c.header.as_bytes()).map_err(|_| {
            PluginConfError::at("header", format!("`{}` is not a header name", c.header))
        })?;
        Ok(RequestId {
            header,
            trust_incoming: c.trust_incoming,
        })
    }
}

fn acceptable(id: &str) -> bool {
    (1..=128).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_graphic())
}

#[async_trait]
impl Plugin for RequestId {
    async fn on_request(
        &self,
        session: &mut dyn Downstream,
        ctx: &mut Ctx,
    ) -> Result<Flow, PluginError> {
        let incoming = session
            .req()
            .headers
            .get(&self.header)
            .and_then(|v| v.to_str().ok())
            .filter(|v| self.trust_incoming && acceptable(v))
            .map(str::to_string);
        let id = incoming.unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
        session
            .req_mut()
            .insert_header(self.header.clone(), id.as_str())
            .map_err(|e| PluginError::Failed {
                plugin: "request_id",
                message: e.to_string(),
            })?;
        ctx.request_id = Some(id);
        Ok(Flow::Continue)
    }

    fn on_response(
        &self,
        _s: &dyn Downstream,
        resp: &mut ResponseHeader,
        ctx: &mut Ctx,
    ) -> Result<(), PluginError> {
        if let Some(id) = &ctx.request_id {
            resp.insert_header(self.header.clone(), id.as_str())
                .map_err(|e| PluginError::Failed {
                    plugin: "request_id",
                    message: e.to_string(),
                })?;
        }
        Ok(())
    }
}
