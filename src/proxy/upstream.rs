//! Upstream phase: which upstream, which peer, and how the request is sent there.

use super::ctx::{Ctx, Vars};
use crate::config::model::UpstreamRef;
use crate::error::http_status;
use crate::proxy::exchange::Downstream;
use crate::routing::rules::query_arg;
use crate::upstream::balance::{Algo, HashKey};
use crate::upstream::{InflightGuard, Upstream};
use pingora::http::RequestHeader;
use pingora::upstreams::peer::HttpPeer;
use std::sync::Arc;

/// Run the location's upstream-phase plugins (once per request).
async fn upstream_phase(
    session: &mut dyn Downstream,
    ctx: &mut Ctx,
) -> pingora::Result<Option<crate::plugins::UpstreamChoice>> {
    let Some(chain) = ctx
        .chain()
        .filter(|c| c.plugins().any(|d| d.plugin.wants_upstream()))
    else {
        return Ok(None);
    };
    let mut choice = crate::plugins::UpstreamChoice {
        selected: ctx.upstream.as_ref().map(|u| u.name.clone()),
        ..Default::default()
    };
    for def in chain.plugins() {
        if let Err(e) = def.plugin.on_upstream(session, &mut choice, ctx).await {
            tracing::error!(plugin = %def.name, "upstream phase failed: {e}");
            return Err(http_status(500));
        }
    }
    Ok(Some(choice))
}

/// The peer chosen for one attempt: where to connect and with which timeouts, without a
/// copy of Pingora's peer description (the own HTTP/1 loop needs none; Pingora's path gets
/// one from [`select_peer`]).
pub struct Chosen {
    pub tls: bool,
    pub connect_timeout: Option<std::time::Duration>,
    pub read_timeout: Option<std::time::Duration>,
    pub write_timeout: Option<std::time::Duration>,
}

impl Chosen {
    /// Pingora's description of the chosen peer, with the chosen timeouts: the peer a script
    /// chose (`ctx.direct_peer`, which then serves every attempt), else peer `ctx.peer` of
    /// `ctx.upstream`.
    pub fn http_peer(self, ctx: &Ctx) -> pingora::Result<Box<HttpPeer>> {
        let mut http = match &ctx.direct_peer {
            Some(p) => p.clone(),
            None => {
                let up = ctx.upstream.as_ref().ok_or_else(|| http_status(502))?;
                let _ = up;
                ctx.peer
                    .as_ref()
                    .ok_or_else(|| http_status(502))?
                    .http
                    .clone()
            }
        };
        http.options.connection_timeout = self.connect_timeout;
        http.options.read_timeout = self.read_timeout;
        http.options.write_timeout = self.write_timeout;
        Ok(Box::new(http))
    }
}

/// Choose the peer for this attempt, as Pingora's path wants it (called again on each retry).
pub async fn select_peer(
    session: &mut dyn Downstream,
    ctx: &mut Ctx,
) -> pingora::Result<Box<HttpPeer>> {
    choose_peer(session, ctx).await?.http_peer(ctx)
}

/// The upstream the matched location names (`upstream = "$var"` rendered), before any
/// plugin chooses another.
pub fn location_upstream(session: &dyn Downstream, ctx: &Ctx) -> Option<Arc<Upstream>> {
    let loc = ctx.location()?;
    match &loc.upstream {
        UpstreamRef::None => None,
        UpstreamRef::Fixed(i) => ctx.state.upstreams.get(*i).cloned(),
        UpstreamRef::Var(tpl) => {
            let name = tpl.render(&Vars { session, ctx });
            let found = ctx.state.upstream_by_name(&name).cloned();
            if found.is_none() {
                tracing::warn!(location = %loc.name, "upstream `{name}` (from a variable) does not exist");
            }
            found
        }
    }
}

/// Choose the peer for this attempt (called again on each retry).
pub async fn choose_peer(session: &mut dyn Downstream, ctx: &mut Ctx) -> pingora::Result<Chosen> {
    let first = ctx.upstream.is_none() && ctx.tried.is_empty();
    if ctx.upstream.is_none() {
        ctx.location().ok_or_else(|| http_status(404))?;
        // no upstream yet is fine here: an upstream-phase plugin may still choose one
        ctx.upstream = location_upstream(session, ctx);
    }
    if first {
        if let Some(choice) = upstream_phase(session, ctx).await? {
            if let Some(name) = &choice.upstream {
                match ctx.state.upstream_by_name(name).cloned() {
                    Some(u) => ctx.upstream = Some(u),
                    None => {
                        tracing::warn!("a plugin chose upstream `{name}`, which does not exist");
                        return Err(http_status(502));
                    }
                }
            }
            if let Some((addr, tls, sni)) = &choice.peer {
                let mut http = HttpPeer::new(*addr, *tls, sni.clone());
                let base = ctx.upstream.as_ref().map(|u| &u.conf);
                let o = &mut http.options;
                o.connection_timeout = choice.connect_timeout.or(base.map(|b| b.connect_timeout));
                o.read_timeout = choice.read_timeout.or(base.and_then(|b| b.read_timeout));
                o.write_timeout = choice.write_timeout.or(base.and_then(|b| b.write_timeout));
                let chosen = Chosen {
                    tls: *tls,
                    connect_timeout: o.connection_timeout,
                    read_timeout: o.read_timeout,
                    write_timeout: o.write_timeout,
                };
                ctx.upstream_addr = Some(*addr);
                ctx.direct_peer = Some(http);
                return Ok(chosen);
            }
            ctx.timeouts = (
                choice.connect_timeout,
                choice.read_timeout,
                choice.write_timeout,
            );
        }
    } else if let Some(p) = &ctx.direct_peer {
        // a script-chosen peer: retries go to the same one
        let o = &p.options;
        return Ok(Chosen {
            tls: p.is_tls(),
            connect_timeout: o.connection_timeout,
            read_timeout: o.read_timeout,
            write_timeout: o.write_timeout,
        });
    }
    let Some(up) = ctx.upstream.clone() else {
        return Err(http_status(502));
    };
    let key = hash_key(session, ctx, &up.algo);
    if ctx.tried.is_empty() {
        // discovery's first round may still be under way just after a start
        up.wait_first_round(up.conf.connect_timeout).await;
    }
    let Some(peer) = up.select(key.as_deref(), &ctx.tried) else {
        return Err(http_status(502));
    };
    let o = &peer.http.options;
    let (mut connect, mut read, mut write) =
        (o.connection_timeout, o.read_timeout, o.write_timeout);
    if let Some(t) = ctx.location().and_then(|l| l.timeout) {
        read = Some(t);
        write = Some(t);
    }
    let (c, r, w) = ctx.timeouts;
    connect = c.or(connect);
    read = r.or(read);
    write = w.or(write);
    let tls = peer.http.is_tls();
    if let Some(m) = &up.metrics {
        if !ctx.tried.is_empty() {
            m.retries.inc();
        }
    }
    ctx.try_started();
    super::trace::note(ctx, || {
        format!(
            "upstream {}: peer {} (try {})",
            up.name,
            peer.addr,
            ctx.tried.len() + 1
        )
    });
    crate::observability::otel::spans::try_started(ctx, peer.addr, &up.name);
    ctx.tried.push(peer.addr);
    ctx.upstream_addr = Some(peer.addr);
    ctx.inflight = Some(InflightGuard::new(peer.clone()));
    ctx.peer = Some(peer);
    Ok(Chosen {
        tls,
        connect_timeout: connect,
        read_timeout: read,
        write_timeout: write,
    })
}

/// The balancer's hash key for this request (`algo = "hash"`).
pub fn hash_key(session: &dyn Downstream, ctx: &Ctx, algo: &Algo) -> Option<Vec<u8>> {
    let Algo::Hash(k) = algo else { return None };
    let req = session.req();
    match k {
        HashKey::Ip => ctx.client_ip.map(|ip| ip.to_string().into_bytes()),
        HashKey::Path => Some(req.uri.path().as_bytes().to_vec()),
        HashKey::Header(h) => req.headers.get(h.as_str()).map(|v| v.as_bytes().to_vec()),
        HashKey::Query(q) => req
            .uri
            .query()
            .and_then(|qs| query_arg(qs, q))
            .map(|v| v.as_bytes().to_vec()),
        HashKey::Cookie(c) => cookie(req, c).map(|v| v.as_bytes().to_vec()),
    }
}

/// A cookie's value from the request's `Cookie` headers.
pub fn cookie<'a>(req: &'a RequestHeader, name: &str) -> Option<&'a str> {
    req.headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|kv| {
            let (k, v) = kv.trim().split_once('=')?;
            (k == name).then_some(v)
        })
}

/// [`prepare_request`] would change nothing but the forwarding headers: no rewrite, no
/// header edits, no trace context, `Accept-Encoding` kept.
pub fn unchanged(ctx: &Ctx) -> bool {
    let Some(loc) = ctx.location() else {
        return true;
    };
    loc.rewrite.is_none()
        && loc.set_headers.is_empty()
        && loc.add_headers.is_empty()
        && !ctx.plugin.identity_upstream
        && !crate::observability::otel::spans::traces_upstream(ctx)
}

/// Edit the request going upstream: rewrite, forwarding headers, configured headers.
///
/// `forwarded`: set the forwarding headers here (the own engines set them while they build
/// the head: [`super::forwarded::Fields`]).
pub fn prepare_request(
    session: &dyn Downstream,
    ctx: &Ctx,
    up: &mut RequestHeader,
    forwarded: bool,
) -> pingora::Result<()> {
    let Some(loc) = ctx.location() else {
        return Ok(());
    };
    if let Some(rw) = &loc.rewrite {
        if let Some(path) = rw.apply(up.uri.path()) {
            // noted for each try whose request is written (Pingora's path writes it only
            // once connected)
            super::trace::note(ctx, || format!("rewrite: {} -> {path}", up.uri.path()));
            let pq = match up.uri.query() {
                Some(q) => format!("{path}?{q}"),
                None => path,
            };
            let uri = http::Uri::builder()
                .path_and_query(pq)
                .build()
                .map_err(|_| http_status(500))?;
            up.set_uri(uri);
        }
    }
    if forwarded && ctx.server().forwarded_headers {
        super::forwarded::apply(session, ctx, up)?;
    }
    if let Some(tp) = crate::observability::otel::spans::traceparent(ctx) {
        up.insert_header("traceparent", tp)?;
    }
    if ctx.plugin.identity_upstream {
        up.remove_header(&http::header::ACCEPT_ENCODING);
    }
    let vars = Vars { session, ctx };
    for h in &loc.set_headers {
        up.insert_header(h.name.clone(), h.value.render(&vars))?;
    }
    for h in &loc.add_headers {
        up.append_header(h.name.clone(), h.value.render(&vars))?;
    }
    Ok(())
}
