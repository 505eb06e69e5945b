//! The authentication plugins and what they share: a verdict type, so `combined_auth` can
//! try several; the user they let in (`ctx.plugin.user`: `$remote_user`, `{user}`,
//! `req.user`); the 401 answer with its `WWW-Authenticate` challenge.
//!
//! An authenticator first only *checks* (`authenticate`, no change to the request), then the
//! one that passed *admits* (`admit`: removes the credentials unless `hide_credentials =
//! false`, sets upstream headers). So under `combined_auth` a plugin that refused leaves the
//! request as it was.

pub mod basic;
pub mod combined;
pub mod forward;
pub mod htpasswd;
pub mod jwt;
pub mod key;

use super::{Answer, Flow, PluginError};
use crate::proxy::ctx::Ctx;
use crate::proxy::exchange::Downstream;
use async_trait::async_trait;
use bytes::Bytes;
use http::{HeaderName, HeaderValue};

/// What a passing check found.
#[derive(Debug, Default)]
pub struct Admit {
    /// the user or consumer, when the credentials name one
    pub user: Option<String>,
    /// headers to set on the request going upstream (claims, an auth service's headers)
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// headers to remove first: every header this plugin may set, so a client cannot send
    /// its own `x-user` when the claim or the service's header is absent
    pub remove: Vec<HeaderName>,
}

/// A check's outcome: let in, or the answer that refuses.
pub type Verdict = Result<Admit, Answer>;

/// An authentication plugin.
#[async_trait]
pub trait Authenticator: Send + Sync + std::fmt::Debug {
    /// Check the request's credentials. Must not change the request.
    async fn authenticate(
        &self,
        session: &mut dyn Downstream,
        ctx: &mut Ctx,
    ) -> Result<Verdict, PluginError>;

    /// Remove this plugin's credentials from the request (`hide_credentials`).
    fn hide(&self, session: &mut dyn Downstream);
}

/// The `Plugin` of an authenticator: its request phase is [`run`], and `combined_auth` can
/// use it.
macro_rules! auth_plugin {
    ($t:ty) => {
        #[async_trait::async_trait]
        impl crate::plugins::Plugin for $t {
            async fn on_request(
                &self,
                session: &mut dyn crate::proxy::exchange::Downstream,
                ctx: &mut crate::proxy::ctx::Ctx,
            ) -> Result<crate::plugins::Flow, crate::plugins::PluginError> {
                crate::plugins::auth::run(self, session, ctx).await
            }

            fn authenticator(&self) -> Option<&dyn crate::plugins::auth::Authenticator> {
                Some(self)
            }
        }
    };
}
pub(crate) use auth_plugin;

/// Check, then admit: the user noted, credentials hidden, headers set.
pub async fn run(
    a: &dyn Authenticator,
    session: &mut dyn Downstream,
    ctx: &mut Ctx,
) -> Result<Flow, PluginError> {
    match a.authenticate(session, ctx).await? {
        Ok(admit) => {
            apply(a, admit, session, ctx);
            Ok(Flow::Continue)
        }
        Err(answer) => Ok(Flow::Respond(answer)),
    }
}

/// Admit a request `a` let in.
pub fn apply(a: &dyn Authenticator, admit: Admit, session: &mut dyn Downstream, ctx: &mut Ctx) {
    a.hide(session);
    for k in &admit.remove {
        session.req_mut().remove_header(k);
    }
    for (k, v) in admit.headers {
        let _ = session.req_mut().insert_header(k, v);
    }
    if admit.user.is_some() {
        ctx.plugin.user = admit.user;
    }
}

/// A 401 with its challenge (`WWW-Authenticate`, RFC 9110 §11.6.1) and a short body.
pub fn unauthorized(challenge: &str, body: &'static str) -> Answer {
    let mut headers = vec![(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    )];
    if let Ok(v) = HeaderValue::from_str(challenge) {
        headers.push((http::header::WWW_AUTHENTICATE, v));
    }
    Answer {
        status: 401,
        headers,
        body: Bytes::from_static(body.as_bytes()),
    }
}

/// A realm as a quoted string for a challenge (quotes and backslashes escaped).
pub fn quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        if !c.is_control() {
            out.push(c);
        }
    }
    out.push('"');
    out
}

/// `a == b` in time that depends only on the lengths.
pub fn same(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.ct_eq(b).into()
}
