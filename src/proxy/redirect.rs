//! HTTP to HTTPS: plain-HTTP requests answered with a redirect to the same host and URI on
//! the HTTPS port, before any plugin runs.
//!
//! ```toml
//! [servers.plain]
//! addr = "0.0.0.0:80"
//! https_redirect = true          # every request; or per location: [locations.X] https_redirect = true
//! https_port = 443               # the target's port (443 is left out of the URL)
//! https_redirect_status = 308    # default; 301 answers GET and HEAD with 301, other methods 308
//! ```
//!
//! ACME HTTP-01 challenges (`/.well-known/acme-challenge/`) are never redirected: a
//! certificate authority validates over plain HTTP. A request whose `Host` is not a plain
//! host name (or IP) is not redirected either, so the client's header cannot steer the
//! target anywhere odd.

use super::ctx::Ctx;
use crate::plugins::Answer;
use crate::proxy::exchange::Downstream;

/// Whether this request is to be redirected to HTTPS.
pub fn wanted(session: &dyn Downstream, ctx: &Ctx) -> bool {
    if ctx.tls.is_some() {
        return false;
    }
    let on = ctx.server().redirect.all || ctx.location().is_some_and(|l| l.https_redirect);
    on && !session
        .uri()
        .path()
        .starts_with(crate::tls::acme::challenge::PREFIX)
        && host_ok(&ctx.host)
}

/// A host name, an IPv4 address or a bracketed IPv6 literal, nothing else.
fn host_ok(host: &str) -> bool {
    if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return v6.parse::<std::net::Ipv6Addr>().is_ok();
    }
    !host.is_empty()
        && host.len() <= 253
        && host
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'.')
}

/// The redirect for a request [`wanted`] said yes to.
pub fn answer(session: &dyn Downstream, ctx: &Ctx) -> Answer {
    let r = ctx.server().redirect;
    let req = session.req();
    let mut url = String::with_capacity(16 + ctx.host.len());
    url.push_str("https://");
    url.push_str(&ctx.host);
    if r.port != 443 {
        url.push(':');
        url.push_str(itoa::Buffer::new().format(r.port));
    }
    url.push_str(req.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/"));
    let safe = matches!(req.method, http::Method::GET | http::Method::HEAD);
    let status = if safe { r.status_get } else { 308 };
    let mut headers = Vec::with_capacity(1);
    if let Ok(v) = http::HeaderValue::from_str(&url) {
        headers.push((http::header::LOCATION, v));
    }
    Answer {
        status,
        headers,
        body: bytes::Bytes::new(),
    }
}
