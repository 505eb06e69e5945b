//! `ping`: answer a health probe of the proxy itself, without an upstream.
//!
//! ```toml
//! [plugins.pong]
//! category = "ping"
//! path = "/ping"        # default "/ping"; other paths go on down the chain
//! body = "pong\n"       # default "pong\n"
//! ```

use super::{Answer, Flow, Plugin, PluginError};
use crate::proxy::ctx::Ctx;
use crate::proxy::exchange::Downstream;
use async_trait::async_trait;
use bytes::Bytes;
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PingConf {
    #[serde(default = "default_path")]
    pub path: String,
    #[serde(default = "default_body")]
    pub body: String,
}

fn default_path() -> String {
    "/ping".into()
}
fn default_body() -> String {
    "pong\n".into()
}

#[derive(Debug)]
pub struct Ping {
    path: String,
    body: Bytes,
}

impl Ping {
    pub fn new(c: PingConf) -> Ping {
        Ping {
            path: c.path,
            body: Bytes::from(c.body),
        }
    }
}

#[async_trait]
impl Plugin for Ping {
    async fn on_request(
        &self,
        session: &mut dyn Downstream,
        _ctx: &mut Ctx,
    ) -> Result<Flow, PluginError> {
        if session.uri().path() != self.path {
            return Ok(Flow::Continue);
        }
        Ok(Flow::Respond(Answer {
            status: 200,
            headers: vec![(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("text/plain"),
            )],
            body: self.body.clone(),
        }))
    }
}
