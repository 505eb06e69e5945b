//! `combined_auth`: let a request in when any one of several auth plugins does.
//!
//! ```toml
//! [plugins.any-auth]
//! category = "combined_auth"
//! plugins = ["users", "keys", "token"]   # auth plugins ([plugins.NAME]), tried in this order
//! ```
//!
//! The first that passes admits the request (its user, its credentials hidden, its headers);
//! the others leave the request as it was. When all refuse and every refusal is a 401, the
//! answer is one 401 carrying every plugin's `WWW-Authenticate` challenge, so a client sees
//! each way in; otherwise the first refusal that is not a 401 (a `forward_auth` redirect to
//! a login page, say) is the answer.

use super::Verdict;
use crate::plugins::{Answer, Flow, Plugin, PluginConfError, PluginError};
use crate::proxy::ctx::Ctx;
use crate::proxy::exchange::Downstream;
use async_trait::async_trait;
use serde::Deserialize;
use std::sync::Arc;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CombinedConf {
    pub plugins: Vec<String>,
}

#[derive(Debug)]
pub struct CombinedAuth {
    members: Vec<(String, Arc<dyn Plugin>)>,
}

impl CombinedAuth {
    /// `built`: the other plugins of the config, by name.
    pub fn new(
        c: CombinedConf,
        built: &[(String, Arc<dyn Plugin>)],
    ) -> Result<CombinedAuth, PluginConfError> {
        if c.plugins.len() < 2 {
            return Err(PluginConfError::at(
                "plugins",
                "name at least two auth plugins (one alone needs no combining)",
            ));
        }
        let mut members = Vec::new();
        for name in &c.plugins {
            let p = built.iter().find(|(n, _)| n == name).ok_or_else(|| {
                PluginConfError::at(
                    "plugins",
                    format!("no auth plugin named `{name}` ([plugins.{name}] with category basic_auth, key_auth, jwt or forward_auth)"),
                )
            })?;
            if p.1.authenticator().is_none() {
                return Err(PluginConfError::at(
                    "plugins",
                    format!(
                        "`{name}` is not an auth plugin (basic_auth, key_auth, jwt, forward_auth)"
                    ),
                ));
            }
            members.push((name.clone(), p.1.clone()));
        }
        Ok(CombinedAuth { members })
    }
}

#[async_trait]
impl Plugin for CombinedAuth {
    async fn on_request(
        &self,
        session: &mut dyn Downstream,
        ctx: &mut Ctx,
    ) -> Result<Flow, PluginError> {
        let mut refusals: Vec<Answer> = Vec::new();
        for (name, p) in &self.members {
            let Some(a) = p.authenticator() else { continue };
            let v: Verdict = a.authenticate(session, ctx).await?;
            match v {
                Ok(admit) => {
                    crate::proxy::trace::note(ctx, || {
                        format!("combined_auth: `{name}` let the request in")
                    });
                    super::apply(a, admit, session, ctx);
                    return Ok(Flow::Continue);
                }
                Err(answer) => refusals.push(answer),
            }
        }
        if let Some(i) = refusals.iter().position(|a| a.status != 401) {
            return Ok(Flow::Respond(refusals.swap_remove(i)));
        }
        let mut all = refusals.into_iter();
        let Some(mut first) = all.next() else {
            return Err(PluginError::Failed {
                plugin: "combined_auth",
                message: "no member plugin".into(),
            });
        };
        for a in all {
            first.headers.extend(
                a.headers
                    .into_iter()
                    .filter(|(k, _)| k == http::header::WWW_AUTHENTICATE),
            );
        }
        Ok(Flow::Respond(first))
    }
}
