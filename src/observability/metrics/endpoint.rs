//! The pull path: `[servers.X] metrics = "/metrics"` answers `GET /metrics` (and HEAD) on that
//! server with the exposition, before routing, so no location or plugin can shadow it.

use super::MetricsTarget;
use crate::plugins::Answer;
use crate::proxy::ctx::Ctx;
use crate::proxy::exchange::Downstream;

/// Whether this request asks for the exposition.
pub fn wanted(session: &dyn Downstream, ctx: &Ctx) -> bool {
    let Some(MetricsTarget::Pull(path)) = &ctx.server().metrics else {
        return false;
    };
    matches!(*session.method(), http::Method::GET | http::Method::HEAD)
        && session.uri().path() == path
}

/// The exposition as an answer.
pub fn answer() -> Answer {
    Answer {
        status: 200,
        headers: vec![(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        body: bytes::Bytes::from(super::encode()),
    }
}
