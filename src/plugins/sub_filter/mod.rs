//! `sub_filter`: replace text in response bodies as they stream (literal or regex, every
//! match or the first), matches that cross chunk boundaries included.
//!
//! ```toml
//! [plugins.rebrand]
//! category = "sub_filter"
//! rules = [
//!   { find = "http://old.example.com", replace = "https://new.example.com" },
//!   { find = "~<title>(.*?)</title>", replace = "<title>$1 | Example</title>", once = true },
//! ]
//! types = ["text/html"]     # default; the response types filtered (`text/*` works)
//! window = "4KB"            # default: the longest a regex match may be across chunks
//! ```
//!
//! `find` is literal text, or a regex after `~` (whose `replace` may use `$1`, `${name}`).
//! Rules apply in order, each to the output of the one before. The upstream request loses
//! `Accept-Encoding`, so bodies arrive as identity (list `compression` after `sub_filter` to
//! compress what it made); a response that is encoded anyway, of another type, a HEAD, 204
//! or 304, or an answer tidegate made itself is left alone. A filtered response loses
//! `Content-Length` and goes out chunked.

pub mod stage;

use super::body_filter::{encoded, filter_body, has_body, Types};
use super::{Flow, Plugin, PluginConfError, PluginError};
use crate::config::units::parse_size;
use crate::proxy::ctx::Ctx;
use crate::proxy::exchange::Downstream;
use async_trait::async_trait;
use pingora::http::ResponseHeader;
use serde::Deserialize;
use stage::{Rule, Stage};
use std::sync::Arc;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConf {
    pub find: String,
    pub replace: String,
    #[serde(default)]
    pub once: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubFilterConf {
    pub rules: Vec<RuleConf>,
    pub types: Option<Vec<String>>,
    pub window: Option<String>,
}

#[derive(Debug)]
pub struct SubFilter {
    rules: Vec<Arc<Rule>>,
    types: Types,
}

impl SubFilter {
    pub fn new(c: SubFilterConf) -> Result<SubFilter, PluginConfError> {
        if c.rules.is_empty() {
            return Err(PluginConfError::at(
                "rules",
                "list at least one { find, replace }",
            ));
        }
        let window = match c.window.as_deref() {
            Some(w) => parse_size(w).map_err(|m| PluginConfError::at("window", m))? as usize,
            None => 4096,
        };
        if !(1..=1 << 20).contains(&window) {
            return Err(PluginConfError::at("window", "between 1 byte and 1MB"));
        }
        let mut rules = Vec::new();
        for (i, r) in c.rules.iter().enumerate() {
            if r.find.is_empty() || r.find == "~" {
                return Err(PluginConfError::at(
                    "rules",
                    format!("rules[{i}]: `find` is empty"),
                ));
            }
            let rule = match r.find.strip_prefix('~') {
                Some(pattern) => {
                    let re = regex::bytes::RegexBuilder::new(pattern)
                        .size_limit(1 << 20)
                        .build()
                        .map_err(|e| {
                            PluginConfError::at("rules", format!("rules[{i}]: bad regex: {e}"))
                        })?;
                    if re.is_match(b"") {
                        return Err(PluginConfError::at(
                            "rules",
                            format!(
                                "rules[{i}]: `{}` matches empty text; it would match everywhere",
                                r.find
                            ),
                        ));
                    }
                    Rule {
                        re,
                        replace: r.replace.clone().into_bytes(),
                        literal: false,
                        once: r.once,
                        window,
                    }
                }
                None => Rule {
                    re: regex::bytes::Regex::new(&regex::escape(&r.find))
                        .map_err(|e| PluginConfError::at("rules", format!("rules[{i}]: {e}")))?,
                    replace: r.replace.clone().into_bytes(),
                    literal: true,
                    once: r.once,
                    window: r.find.len(),
                },
            };
            rules.push(Arc::new(rule));
        }
        let types = Types::parse(&c.types.unwrap_or_else(|| vec!["text/html".into()]))?;
        Ok(SubFilter { rules, types })
    }

    fn id(&self) -> usize {
        self as *const SubFilter as usize
    }
}

#[async_trait]
impl Plugin for SubFilter {
    async fn on_request(
        &self,
        _session: &mut dyn Downstream,
        ctx: &mut Ctx,
    ) -> Result<Flow, PluginError> {
        // bodies must come as text to be filtered (the client's Accept-Encoding stays)
        ctx.plugin.identity_upstream = true;
        Ok(Flow::Continue)
    }

    fn on_response(
        &self,
        session: &dyn Downstream,
        resp: &mut ResponseHeader,
        ctx: &mut Ctx,
    ) -> Result<(), PluginError> {
        if ctx.upstream_status == 0
            || !has_body(session, resp)
            || encoded(resp)
            || !self.types.take(resp)
        {
            return Ok(());
        }
        let stages = self.rules.iter().cloned().map(Stage::new).collect();
        ctx.plugin.sub_filters.push((self.id(), stages));
        filter_body(session, resp, ctx);
        Ok(())
    }

    fn on_body(
        &self,
        _session: &dyn Downstream,
        body: &mut Option<bytes::Bytes>,
        eof: bool,
        ctx: &mut Ctx,
    ) -> Result<(), PluginError> {
        let id = self.id();
        let Some((_, stages)) = ctx.plugin.sub_filters.iter_mut().find(|(i, _)| *i == id) else {
            return Ok(());
        };
        // the first stage reads the chunk itself; each later one the output before it
        let mut data: Option<Vec<u8>> = None;
        for s in stages.iter_mut() {
            let input = data.as_deref().unwrap_or(body.as_deref().unwrap_or(&[]));
            data = Some(s.feed(input, eof));
        }
        let data = data.unwrap_or_default();
        *body = Some(data.into());
        Ok(())
    }
}
