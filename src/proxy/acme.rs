//! ACME HTTP-01 challenges answered on plain-HTTP listeners, before routing, redirects and
//! plugins: `GET /.well-known/acme-challenge/TOKEN` gets the key authorization while an
//! order of tidegate's own is being validated (`tls/acme/`). Other paths under the prefix go
//! on as usual (a location may serve them for another ACME client).

use super::ctx::Ctx;
use crate::plugins::Answer;
use crate::proxy::exchange::Downstream;

/// The answer to a pending challenge, if this request is one.
pub fn challenge(session: &dyn Downstream, ctx: &Ctx) -> Option<Answer> {
    if ctx.tls.is_some() {
        return None;
    }
    let key_auth = crate::tls::acme::challenge::answer(session.uri().path(), storage(ctx))?;
    Some(Answer {
        status: 200,
        headers: vec![(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/octet-stream"),
        )],
        body: bytes::Bytes::from(key_auth),
    })
}

/// The storage directory where other instances leave their challenges, when the config has
/// ACME certificates.
pub fn storage(ctx: &Ctx) -> Option<&std::path::Path> {
    let c = &ctx.state.config;
    (!c.acme.is_empty()).then_some(c.storage.dir())
}
