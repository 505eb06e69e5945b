//! What built-in plugins leave on a request for later phases and for each other: the
//! authenticated user, the Lua-provided limit key, the rate-limit figures for the response
//! headers, and in-flight slots held until the request ends.
//!
//! One field of `Ctx` (`ctx.plugin`); empty and allocation-free until a plugin sets something.

use std::fmt::Debug;

/// The figures of the tightest rate limit a request passed, for the `RateLimit-*` headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateInfo {
    /// requests allowed at once (`RateLimit-Limit`)
    pub limit: u64,
    /// requests left right now (`RateLimit-Remaining`)
    pub remaining: u64,
    /// seconds until the quota is whole again (`RateLimit-Reset`)
    pub reset: u64,
}

/// Per-request plugin state.
#[derive(Debug, Default)]
pub struct PluginState {
    /// who authenticated (basic_auth's user, key_auth's consumer, jwt's `sub`): `$remote_user`,
    /// `{user}` in the access log, `req.user` in Lua
    pub user: Option<String>,
    /// `ctx.limit_key` as a Lua `on_request` hook left it, for `limit` with `key = "ctx"`
    pub limit_key: Option<String>,
    /// the tightest rate limit passed: its headers go on the response
    pub rate: Option<RateInfo>,
    /// slots held until the request ends (in-flight limits): dropped with the context
    pub held: Vec<crate::plugins::limit::local::Slot>,
    /// the response body's encoder, when `compression` chose one
    pub encoder: Option<Encoder>,
    /// ask the upstream for an unencoded body (`sub_filter` reads it): `Accept-Encoding` is
    /// left off the upstream request only, the client's stays for `compression`
    pub identity_upstream: bool,
    /// the body an early answer streams (`directory`), sent by the engine after the head
    pub answer_stream: Option<Box<dyn crate::plugins::body_source::BodySource>>,
    /// the gRPC-web bridge of this request (`grpc_web = true` on its location)
    pub grpc_web: Option<Box<crate::proxy::grpc_web::Bridge>>,
    /// `sub_filter`'s stages for this response, by the plugin's address (a location may list
    /// more than one)
    pub sub_filters: Vec<(usize, Vec<crate::plugins::sub_filter::stage::Stage>)>,
    /// what `cache` decided for this request (its lock, the body it copies)
    pub cache: Option<Box<crate::plugins::cache::Pending>>,
}

/// A streaming body encoder (Pingora's gzip, brotli or zstd).
pub struct Encoder(pub Box<dyn pingora::protocols::http::compression::Encode + Send + Sync>);

impl Debug for Encoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (name, into, out, _) = self.0.stat();
        write!(f, "Encoder({name}, {into} -> {out} bytes)")
    }
}

impl PluginState {
    /// Keep the tighter of two rate limits (fewer left) for the response headers.
    pub fn note_rate(&mut self, r: RateInfo) {
        match self.rate {
            Some(old) if old.remaining <= r.remaining => {}
            _ => self.rate = Some(r),
        }
    }
}
