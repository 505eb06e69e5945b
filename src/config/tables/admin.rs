//! `[admin]`: the admin API's own listener (`src/admin/`).
//!
//! ```toml
//! [admin]
//! addr = "127.0.0.1:6189"
//! token = "a long random string"   # or TIDEGATE_ADMIN_TOKEN; required beyond loopback
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
    if token.is_none() && !addr.ip().is_loopback() {
        b.err(
            e.doc,
            t,
            Some("addr"),
            format!(
                "{addr} is reachable beyond this host: set `token` (or TIDEGATE_ADMIN_TOKEN), \
                 or listen on 127.0.0.1"
            ),
        );
        return None;
    }
    Some(Admin { addr, token })
}
