//! `[admin]`: the admin API's own listener (`src/admin/`).
//!
//! ```toml
//! [admin]
//! addr = "127.0.0.1:6189"
//! token = "a long random string"   # or TIDEGATE_ADMIN_TOKEN; required beyond loopback
//! user = "admin"                    # or TIDEGATE_ADMIN_USER; with password_hash, the web UI's login
//! password_hash = "$2b$12$..."      # bcrypt or argon2 (PHC); or TIDEGATE_ADMIN_PASSWORD_HASH
//! tls = true                        # HTTPS with the [certificates] the servers use
//! ```

use super::super::builder::{Builder, Entry};
use super::super::model::Admin;
use super::super::raw::RawAdmin;
use std::net::SocketAddr;

pub(in crate::config) fn build_admin(b: &mut Builder<'_>, e: Option<&Entry>) -> Option<Admin> {
    let e = e?;
    let raw = b.typed::<RawAdmin>(e, "admin")?;
    let t = "admin";
    let Some(addr) = raw.addr else {
        b.err(
            e.doc,
            t,
            Some("addr"),
            "missing `addr`, e.g. addr = \"127.0.0.1:6189\"",
        );
        return None;
    };
    let Ok(addr) = addr.parse::<SocketAddr>() else {
        b.err(
            e.doc,
            t,
            Some("addr"),
            format!("`{addr}` is not IP:PORT, e.g. \"127.0.0.1:6189\""),
        );
        return None;
    };
    let token = raw
        .token
        .or_else(|| std::env::var("TIDEGATE_ADMIN_TOKEN").ok())
        .filter(|t| !t.is_empty());
    if let Some(tok) = &token {
        if tok.len() < 16 {
            b.err(
                e.doc,
                t,
                Some("token"),
                "use a token of at least 16 characters",
            );
            return None;
        }
    }
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let name = raw.user.or_else(|| env("TIDEGATE_ADMIN_USER"));
    let hash = raw
        .password_hash
        .or_else(|| env("TIDEGATE_ADMIN_PASSWORD_HASH"));
    let user = match (name, hash) {
        (None, None) => None,
        (Some(n), Some(h)) if crate::admin::session::hash_format_ok(&h) => Some((n, h)),
        (Some(_), Some(_)) => {
            b.err(
                e.doc,
                t,
                Some("password_hash"),
                "not a bcrypt ($2b$...) or argon2 ($argon2id$...) hash; make one with \
                 `htpasswd -nbB admin PASSWORD` (the part after the colon) or argon2",
            );
            return None;
        }
        (Some(_), None) | (None, Some(_)) => {
            b.err(
                e.doc,
                t,
                Some("user"),
                "`user` and `password_hash` go together (or TIDEGATE_ADMIN_USER and \
                 TIDEGATE_ADMIN_PASSWORD_HASH)",
            );
            return None;
        }
    };
    if (token.is_none() || user.is_none()) && !addr.ip().is_loopback() {
        b.err(
            e.doc,
            t,
            Some("addr"),
            format!(
                "{addr} is reachable beyond this host: set `token` (or TIDEGATE_ADMIN_TOKEN) for \
                 the API and `user` with `password_hash` for the web UI, or listen on 127.0.0.1"
            ),
        );
        return None;
    }
    Some(Admin {
        addr,
        token,
        user,
        tls: raw.tls.unwrap_or(false),
    })
}
