//! `redirect`: answer with a redirect to a URL built from variables.
//!
//! ```toml
//! [plugins.to-https]
//! category = "redirect"
//! url = "https://$host$request_uri"   # template, see the variables in docs/configuration.md
//! status = 301                        # 301 | 302 | 303 | 307 | 308; default 302
//! ```

use super::{Answer, Flow, Plugin, PluginConfError, PluginError};
use crate::proxy::ctx::{Ctx, Vars};
use crate::proxy::exchange::Downstream;
use crate::routing::vars::Template;
use async_trait::async_trait;
use bytes::Bytes;
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedirectConf {
    pub url: String,
    #[serde(default = "found")]
    pub status: u16,
}

fn found() -> u16 {
    302
}

#[derive(Debug)]
pub struct Redirect {
    url: Template,
    status: u16,
}

impl Redirect {
    pub fn new(c: RedirectConf) -> Result<Redirect, PluginConfError> {
        if ![301, 302, 303, 307, 308].contains(&c.status) {
            return Err(PluginConfError::at(
                "status",
                format!("{} is not a redirect status", c.status),
            ));
        }
        let url = Template::parse(&c.url).map_err(|m| PluginConfError::at("url", m))?;
        Ok(Redirect {
            url,
            status: c.status,
        })
    }
}

#[async_trait]
impl Plugin for Redirect {
    async fn on_request(
        &self,
        session: &mut dyn Downstream,
        ctx: &mut Ctx,
    ) -> Result<Flow, PluginError> {
        let target = self.url.render(&Vars { session, ctx });
        let location = http::HeaderValue::from_str(&target).map_err(|_| PluginError::Failed {
            plugin: "redirect",
            message: format!("target `{target}` is not a valid header value"),
        })?;
        Ok(Flow::Respond(Answer {
            status: self.status,
            headers: vec![(http::header::LOCATION, location)],
            body: Bytes::new(),
        }))
    }
}
