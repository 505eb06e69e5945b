//! `key_auth`: an API key from a header or a query argument.
//!
//! ```toml
//! [plugins.keys]
//! category = "key_auth"
//! header = "x-api-key"          # default when `query` is not set
//! # query = "api_key"           # or a query argument
//! keys = ["k1", "mobile:k2"]    # KEY or CONSUMER:KEY (the consumer is the user)
//! keys_file = "conf/keys.txt"   # and/or a file: one KEY or CONSUMER:KEY per line, # comments
//! hide_credentials = true       # default: the key is not sent upstream
//! realm = "tidegate"            # in the 401's `WWW-Authenticate: Key realm="..."`
//! ```
//!
//! Keys are held as SHA-256 digests and looked up by digest, so neither the lookup's timing
//! nor a memory dump gives a key away. A key that names a consumer makes that consumer
//! `$remote_user`, `{user}` and `req.user`.

use super::{quoted, unauthorized, Admit, Authenticator, Verdict};
use crate::plugins::request_parts;
use crate::plugins::{PluginConfError, PluginError};
use crate::proxy::ctx::Ctx;
use crate::proxy::exchange::Downstream;
use async_trait::async_trait;
use serde::Deserialize;
use std::collections::HashMap;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyConf {
    pub header: Option<String>,
    pub query: Option<String>,
    #[serde(default)]
    pub keys: Vec<String>,
    pub keys_file: Option<String>,
    #[serde(default = "crate::plugins::default_true")]
    pub hide_credentials: bool,
    pub realm: Option<String>,
}

#[derive(Debug)]
enum From {
    Header(http::HeaderName),
    Query(String),
}

#[derive(Debug)]
pub struct KeyAuth {
    from: From,
    /// SHA-256 of a key → its consumer
    keys: HashMap<[u8; 32], Option<String>>,
    hide: bool,
    challenge: String,
}

fn digest(key: &str) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, key.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

fn parse_key(entry: &str) -> Option<(Option<String>, String)> {
    let entry = entry.trim();
    if entry.is_empty() {
        return None;
    }
    Some(match entry.split_once(':') {
        Some((c, k)) if !c.is_empty() && !k.is_empty() => (Some(c.to_string()), k.to_string()),
        _ => (None, entry.to_string()),
    })
}

impl KeyAuth {
    pub fn new(c: KeyConf) -> Result<KeyAuth, PluginConfError> {
        let from = match (&c.header, &c.query) {
            (Some(_), Some(_)) => {
                return Err(PluginConfError::at(
                    "query",
                    "set `header` or `query`, not both",
                ))
            }
            (_, Some(q)) if q.is_empty() => {
                return Err(PluginConfError::at("query", "the argument name is empty"))
            }
            (_, Some(q)) => From::Query(q.clone()),
            (h, None) => {
                let h = h.as_deref().unwrap_or("x-api-key");
                From::Header(
                    http::HeaderName::from_bytes(h.to_ascii_lowercase().as_bytes()).map_err(
                        |_| PluginConfError::at("header", format!("`{h}` is not a header name")),
                    )?,
                )
            }
        };
        let mut keys = HashMap::new();
        for (i, e) in c.keys.iter().enumerate() {
            let (consumer, k) = parse_key(e)
                .ok_or_else(|| PluginConfError::at("keys", format!("keys[{i}] is empty")))?;
            keys.insert(digest(&k), consumer);
        }
        if let Some(path) = &c.keys_file {
            let text = std::fs::read_to_string(path)
                .map_err(|e| PluginConfError::at("keys_file", format!("{path}: {e}")))?;
            for line in text.lines() {
                if line.trim_start().starts_with('#') {
                    continue;
                }
                if let Some((consumer, k)) = parse_key(line) {
                    keys.insert(digest(&k), consumer);
                }
            }
        }
        if keys.is_empty() {
            return Err(PluginConfError::at(
                "keys",
                "no keys: list them in `keys` or name a file in `keys_file`",
            ));
        }
        let realm = c.realm.unwrap_or_else(|| "tidegate".into());
        Ok(KeyAuth {
            from,
            keys,
            hide: c.hide_credentials,
            challenge: format!("Key realm={}", quoted(&realm)),
        })
    }

    fn presented<'a>(&self, session: &'a dyn Downstream) -> Option<std::borrow::Cow<'a, str>> {
        match &self.from {
            From::Header(h) => session
                .req()
                .headers
                .get(h)
                .and_then(|v| v.to_str().ok())
                .map(|v| std::borrow::Cow::Borrowed(v.trim())),
            From::Query(q) => request_parts::query(session.req(), q),
        }
    }
}

#[async_trait]
impl Authenticator for KeyAuth {
    async fn authenticate(
        &self,
        session: &mut dyn Downstream,
        _ctx: &mut Ctx,
    ) -> Result<Verdict, PluginError> {
        let found = self
            .presented(&*session)
            .and_then(|k| self.keys.get(&digest(&k)));
        Ok(match found {
            Some(consumer) => Ok(Admit {
                user: consumer.clone(),
                headers: Vec::new(),
                remove: Vec::new(),
            }),
            None => Err(unauthorized(&self.challenge, "Unauthorized\n")),
        })
    }

    fn hide(&self, session: &mut dyn Downstream) {
        if !self.hide {
            return;
        }
        match &self.from {
            From::Header(h) => {
                session.req_mut().remove_header(h);
            }
            From::Query(q) => request_parts::remove_query_arg(session.req_mut(), q),
        }
    }
}

super::auth_plugin!(KeyAuth);
