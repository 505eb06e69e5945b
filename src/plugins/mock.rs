//! `mock`: answer with a fixed response, e.g. a stub endpoint or a maintenance page.
//!
//! ```toml
//! [plugins.maintenance]
//! category = "mock"
//! status = 503                                  # default 200
//! headers = ["content-type: application/json"]
//! body = '{"error":"maintenance"}'
//! path = "/only/this"                           # optional: answer only this exact path
//! delay = "100ms"                               # optional: wait before answering
//! ```

use super::{header_pairs, Answer, Flow, Plugin, PluginConfError, PluginError};
use crate::config::units::parse_duration;
use crate::proxy::ctx::Ctx;
use crate::proxy::exchange::Downstream;
use async_trait::async_trait;
use bytes::Bytes;
use serde::Deserialize;
use std::time::Duration;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MockConf {
    #[serde(default = "ok")]
    pub status: u16,
    #[serde(default)]
    pub headers: Vec<String>,
    #[serde(default)]
    pub body: String,
    pub path: Option<String>,
    pub delay: Option<String>,
}

fn ok() -> u16 {
    200
}

#[derive(Debug)]
pub struct Mock {
    answer: Answer,
    path: Option<String>,
    delay: Option<Duration>,
}

impl Mock {
    pub fn new(c: MockConf) -> Result<Mock, PluginConfError> {
        if !(100..=999).contains(&c.status) {
            return Err(PluginConfError::at(
                "status",
                format!("{} is not an HTTP status", c.status),
            ));
        }
        let delay = c
            .delay
            .as_deref()
            .map(parse_duration)
            .transpose()
            .map_err(|m| PluginConfError::at("delay", m))?;
        Ok(Mock {
            answer: Answer {
                status: c.status,
                headers: header_pairs("headers", &c.headers)?,
                body: Bytes::from(c.body),
            },
            path: c.path,
            delay,
        })
    }
}

#[async_trait]
impl Plugin for Mock {
    async fn on_request(
        &self,
        session: &mut dyn Downstream,
        _ctx: &mut Ctx,
    ) -> Result<Flow, PluginError> {
        if let Some(p) = &self.path {
            if session.uri().path() != p {
                return Ok(Flow::Continue);
            }
        }
        if let Some(d) = self.delay {
            tokio::time::sleep(d).await;
        }
        Ok(Flow::Respond(self.answer.clone()))
    }
}
