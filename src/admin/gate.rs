//! Who may use the admin: the bearer token, a logged-in session (with its CSRF token for
//! unsafe methods), or anyone on an open loopback admin (no token, no user); and the login,
//! logout and session endpoints (`session.rs`).

use super::session::{self, Session};
use super::{read_body, reply, AdminApp};
use http::{Method, Response, StatusCode};
use pingora::http::RequestHeader;
use pingora::protocols::http::ServerSession;
use serde_json::json;
use std::net::IpAddr;

/// How a request got in, for the log of who changed what.
pub enum Caller {
    Token,
    User(Session),
    Open,
}

impl Caller {
    pub fn describe(&self, from: Option<IpAddr>) -> String {
        let from = from.map(|ip| format!(" from {ip}")).unwrap_or_default();
        match self {
            Caller::Token => format!("admin token{from}"),
            Caller::User(s) => format!("user {}{from}", s.user),
            Caller::Open => format!("open loopback admin{from}"),
        }
    }
}

fn with_cookie(mut r: Response<Vec<u8>>, cookie: &str) -> Response<Vec<u8>> {
    if let Ok(v) = http::HeaderValue::from_str(cookie) {
        r.headers_mut().insert(http::header::SET_COOKIE, v);
    }
    r
}

impl AdminApp {
    /// `POST /login`, `POST /logout`, `GET /session`: answered here, before any other check.
    pub(super) async fn session_endpoint(
        &self,
        session: &mut ServerSession,
        req: &RequestHeader,
        ip: Option<IpAddr>,
    ) -> Option<Response<Vec<u8>>> {
        match (&req.method, req.uri.path()) {
            (&Method::POST, "/login") => Some(self.login(session, ip).await),
            (&Method::POST, "/logout") => {
                if let Some((id, _)) = self.sessions.of(req) {
                    self.sessions.close(&id);
                }
                Some(with_cookie(
                    reply(StatusCode::OK, json!({"logged_out": true})),
                    &session::clear_cookie(),
                ))
            }
            (&Method::GET, "/session") => Some(match self.sessions.of(req) {
                Some((_, s)) => reply(StatusCode::OK, json!({"user": s.user, "csrf": s.csrf})),
                None => reply(StatusCode::UNAUTHORIZED, json!({"error": "not logged in"})),
            }),
            _ => None,
        }
    }

    async fn login(&self, session: &mut ServerSession, ip: Option<IpAddr>) -> Response<Vec<u8>> {
        if let Some(wait) = self.sessions.blocked(ip) {
            let mut r = reply(
                StatusCode::TOO_MANY_REQUESTS,
                json!({"error": "too many failed logins from this address; wait a minute"}),
            );
            r.headers_mut()
                .insert(http::header::RETRY_AFTER, http::HeaderValue::from(wait));
            return r;
        }
        let state = self.live.load();
        let Some((user, hash)) = state.config.admin.as_ref().and_then(|a| a.user.clone()) else {
            return reply(
                StatusCode::FORBIDDEN,
                json!({"error": "no admin user is configured ([admin] user and password_hash)"}),
            );
        };
        drop(state);
        let body = match read_body(session, 8 << 10).await {
            Ok(b) => b,
            Err(r) => return r,
        };
        let Some((name, password)) = session::credentials(&body) else {
            return reply(
                StatusCode::BAD_REQUEST,
                json!({"error": "send {\"user\": ..., \"password\": ...} or a form with user and password"}),
            );
        };
        // the hash is checked whatever the name, so a wrong name takes as long as a wrong
        // password; off the worker thread (bcrypt and argon2 take tens of milliseconds)
        let ok = tokio::task::spawn_blocking(move || session::verify(&password, &hash))
            .await
            .unwrap_or(false)
            && crate::plugins::auth::same(name.as_bytes(), user.as_bytes());
        if !ok {
            self.sessions.failed(ip);
            tracing::warn!(user = %name, from = ?ip, "admin login failed");
            return reply(
                StatusCode::UNAUTHORIZED,
                json!({"error": "wrong user or password"}),
            );
        }
        let (id, s) = self.sessions.open(&user);
        tracing::info!(user = %user, from = ?ip, "admin login");
        with_cookie(
            reply(StatusCode::OK, json!({"user": s.user, "csrf": s.csrf})),
            &session::set_cookie(&id, self.live.load().config.admin_tls.is_some()),
        )
    }

    /// Who this is, or the answer that refuses it (401, or 403 for a missing CSRF token).
    pub(super) fn caller(&self, req: &RequestHeader) -> Result<Caller, Box<Response<Vec<u8>>>> {
        let state = self.live.load();
        let admin = state.config.admin.as_ref();
        let token = admin.and_then(|a| a.token.as_ref());
        if let Some(token) = token {
            let sent = req
                .headers
                .get(http::header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "));
            if sent
                .is_some_and(|t| crate::plugins::auth::same(t.trim().as_bytes(), token.as_bytes()))
            {
                return Ok(Caller::Token);
            }
        }
        if let Some((_, s)) = self.sessions.of(req) {
            let safe = matches!(req.method, Method::GET | Method::HEAD | Method::OPTIONS);
            let csrf_ok = req
                .headers
                .get("x-csrf-token")
                .is_some_and(|v| crate::plugins::auth::same(v.as_bytes(), s.csrf.as_bytes()));
            if !safe && !csrf_ok {
                return Err(Box::new(reply(
                    StatusCode::FORBIDDEN,
                    json!({"error": "this change needs the session's X-CSRF-Token (GET /session)"}),
                )));
            }
            return Ok(Caller::User(s));
        }
        if token.is_none() && admin.is_none_or(|a| a.user.is_none()) {
            return Ok(Caller::Open);
        }
        let mut r = reply(
            StatusCode::UNAUTHORIZED,
            json!({"error": "log in (POST /login) or send Authorization: Bearer TOKEN"}),
        );
        r.headers_mut().insert(
            http::header::WWW_AUTHENTICATE,
            http::HeaderValue::from_static("Bearer realm=\"tidegate-admin\""),
        );
        Err(Box::new(r))
    }
}
