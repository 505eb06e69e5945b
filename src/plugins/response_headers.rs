//! `response_headers`: set, add or remove response headers. Values may use variables.
//!
//! ```toml
//! [plugins.headers]
//! category = "response_headers"
//! set = ["x-served-by: tidegate", "x-host: $host"]   # replace
//! add = ["cache-control: no-store"]                  # append
//! remove = ["server"]                                # delete
//! ```

use super::{Plugin, PluginConfError, PluginError};
use crate::proxy::ctx::{Ctx, Vars};
use crate::proxy::exchange::Downstream;
use crate::routing::vars::HeaderTemplate;
use pingora::http::ResponseHeader;
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResponseHeadersConf {
    #[serde(default)]
    pub set: Vec<String>,
    #[serde(default)]
    pub add: Vec<String>,
    #[serde(default)]
    pub remove: Vec<String>,
}

#[derive(Debug)]
pub struct ResponseHeaders {
    set: Vec<HeaderTemplate>,
    add: Vec<HeaderTemplate>,
    remove: Vec<http::HeaderName>,
}

impl ResponseHeaders {
    pub fn new(c: ResponseHeadersConf) -> Result<ResponseHeaders, PluginConfError> {
        let parse = |key: &str, list: &[String]| {
            list.iter()
                .map(|h| HeaderTemplate::parse(h).map_err(|m| PluginConfError::at(key, m)))
                .collect::<Result<Vec<_>, _>>()
        };
        let remove = c
            .remove
            .iter()
            .map(|n| {
                http::HeaderName::from_bytes(n.trim().as_bytes()).map_err(|_| {
                    PluginConfError::at("remove", format!("`{n}` is not a header name"))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ResponseHeaders {
            set: parse("set", &c.set)?,
            add: parse("add", &c.add)?,
            remove,
        })
    }
}

#[async_trait::async_trait]
impl Plugin for ResponseHeaders {
    fn on_response(
        &self,
        session: &dyn Downstream,
        resp: &mut ResponseHeader,
        ctx: &mut Ctx,
    ) -> Result<(), PluginError> {
        let fail = |e: pingora::BError| PluginError::Failed {
            plugin: "response_headers",
            message: e.to_string(),
        };
        for name in &self.remove {
            resp.remove_header(name);
        }
        let vars = Vars { session, ctx };
        for h in &self.set {
            resp.insert_header(h.name.clone(), h.value.render(&vars))
                .map_err(fail)?;
        }
        for h in &self.add {
            resp.append_header(h.name.clone(), h.value.render(&vars))
                .map_err(fail)?;
        }
        Ok(())
    }
}
