//! `basic_auth`: HTTP Basic authentication (RFC 7617) against htpasswd lines.
//!
//! ```toml
//! [plugins.users]
//! category = "basic_auth"
//! users = ["alice:$2y$05$...", "bob:{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ="]  # htpasswd lines
//! htpasswd = "conf/htpasswd"     # and/or a file of them (read at load; reload to re-read)
//! realm = "tidegate"             # default
//! hide_credentials = true        # default: Authorization is not sent upstream
//! allow_plaintext = false        # default: `user:password` in clear is refused
//! ```
//!
//! A request without valid credentials gets 401 with `WWW-Authenticate: Basic realm="...",
//! charset="UTF-8"`. The user is `$remote_user`, `{user}` and `req.user`. An unknown user
//! costs the same bcrypt work as a known one, so timing does not tell which users exist.

use super::htpasswd::{parse_line, verify, Hash, Verified};
use super::{quoted, unauthorized, Admit, Authenticator, Verdict};
use crate::plugins::{PluginConfError, PluginError};
use crate::proxy::ctx::Ctx;
use crate::proxy::exchange::Downstream;
use async_trait::async_trait;
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::Arc;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BasicConf {
    #[serde(default)]
    pub users: Vec<String>,
    pub htpasswd: Option<String>,
    pub realm: Option<String>,
    #[serde(default = "crate::plugins::default_true")]
    pub hide_credentials: bool,
    #[serde(default)]
    pub allow_plaintext: bool,
}

#[derive(Debug)]
pub struct BasicAuth {
    users: HashMap<String, Hash>,
    /// checked when the user is unknown, to spend the same time
    decoy: Hash,
    challenge: String,
    hide: bool,
    verified: Arc<Verified>,
}

impl BasicAuth {
    pub fn new(c: BasicConf) -> Result<BasicAuth, PluginConfError> {
        let mut users = HashMap::new();
        for (i, line) in c.users.iter().enumerate() {
            let (u, h) = parse_line(line, c.allow_plaintext, &format!("users[{i}]"))
                .map_err(|m| PluginConfError::at("users", m))?;
            users.insert(u, h);
        }
        if let Some(path) = &c.htpasswd {
            let text = std::fs::read_to_string(path)
                .map_err(|e| PluginConfError::at("htpasswd", format!("{path}: {e}")))?;
            for (n, line) in text.lines().enumerate() {
                let line = line.trim();
                if line.is_empty() || line.starts_with('#') {
                    continue;
                }
                let (u, h) = parse_line(line, c.allow_plaintext, &format!("{path}:{}", n + 1))
                    .map_err(|m| PluginConfError::at("htpasswd", m))?;
                users.insert(u, h);
            }
        }
        if users.is_empty() {
            return Err(PluginConfError::at(
                "users",
                "no users: list htpasswd lines in `users` or name a file in `htpasswd`",
            ));
        }
        // the decoy costs what a real user's check costs
        let decoy = users
            .values()
            .find(|h| matches!(h, Hash::Bcrypt(_)))
            .cloned()
            .unwrap_or(Hash::Sha(vec![0; 20]));
        let realm = c.realm.unwrap_or_else(|| "tidegate".into());
        Ok(BasicAuth {
            users,
            decoy,
            challenge: format!("Basic realm={}, charset=\"UTF-8\"", quoted(&realm)),
            hide: c.hide_credentials,
            verified: Arc::new(Verified::new()),
        })
    }

    fn refuse(&self) -> Verdict {
        Err(unauthorized(&self.challenge, "Unauthorized\n"))
    }
}

/// The user and password of an `Authorization: Basic ...` header.
pub fn credentials(session: &dyn Downstream) -> Option<(String, String)> {
    use base64::Engine;
    let v = session
        .req()
        .headers
        .get(http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, rest) = v.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(rest.trim())
        .ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (u, p) = text.split_once(':')?;
    Some((u.to_string(), p.to_string()))
}

#[async_trait]
impl Authenticator for BasicAuth {
    async fn authenticate(
        &self,
        session: &mut dyn Downstream,
        _ctx: &mut Ctx,
    ) -> Result<Verdict, PluginError> {
        let Some((user, password)) = credentials(&*session) else {
            return Ok(self.refuse());
        };
        let digest = self.verified.digest(&user, &password);
        if self.users.contains_key(&user) && self.verified.known(&digest) {
            return Ok(Ok(Admit {
                user: Some(user),
                headers: Vec::new(),
                remove: Vec::new(),
            }));
        }
        let (hash, known) = match self.users.get(&user) {
            Some(h) => (h.clone(), true),
            None => (self.decoy.clone(), false),
        };
        let ok = if matches!(hash, Hash::Bcrypt(_)) {
            let pw = password.clone();
            tokio::task::spawn_blocking(move || verify(&pw, &hash))
                .await
                .unwrap_or(false)
        } else {
            verify(&password, &hash)
        };
        if !(ok && known) {
            return Ok(self.refuse());
        }
        self.verified.remember(digest);
        Ok(Ok(Admit {
            user: Some(user),
            headers: Vec::new(),
            remove: Vec::new(),
        }))
    }

    fn hide(&self, session: &mut dyn Downstream) {
        if self.hide {
            session
                .req_mut()
                .remove_header(&http::header::AUTHORIZATION);
        }
    }
}

super::auth_plugin!(BasicAuth);
