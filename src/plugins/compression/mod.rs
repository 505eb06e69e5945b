//! `compression`: gzip, brotli and zstd, chosen by `Accept-Encoding` q-values, streamed chunk
//! by chunk through the body phase (a body is never buffered whole).
//!
//! ```toml
//! [plugins.gz]
//! category = "compression"
//! algorithms = ["zstd", "br", "gzip"]        # offered, most wanted first on q ties (default)
//! min_length = "256B"                        # a smaller Content-Length is sent as it is (default)
//! types = ["text/*", "application/json"]     # compressible types (default: text and the usual
//!                                            # JSON, JS, XML, SVG, wasm types)
//! levels = { gzip = 6, br = 5, zstd = 3 }    # per algorithm (these are the defaults)
//! ```
//!
//! Left alone: responses without a body (HEAD, 1xx, 204, 304), ranges (206, `Content-Range`),
//! already-encoded bodies, `Cache-Control: no-transform`, types not listed, a declared length
//! under `min_length`, and answers tidegate made itself. A compressed response loses
//! `Content-Length` and `Accept-Ranges`, gets `Content-Encoding`, `Vary: Accept-Encoding`, and
//! a weak ETag (`W/"..."`: the bytes differ from the identity form, RFC 9110 §8.8.1). Every
//! response that would be compressed for a client that asks (a listed type, not under
//! `min_length`) gets `Vary: Accept-Encoding`, compressed or not, so a cache keeps the forms
//! apart. The gzip and zstd encoders are Pingora's (flate2 with zlib-ng,
//! zstd); brotli is our own (`brotli.rs`: Pingora's never ends its stream).

pub mod brotli;
pub mod negotiate;

use super::body_filter::{encoded, filter_body, has_body, Types};
use super::{Plugin, PluginConfError, PluginError};
use crate::config::units::parse_size;
use crate::proxy::ctx::Ctx;
use crate::proxy::exchange::Downstream;
use async_trait::async_trait;
use negotiate::Coding;
use pingora::http::ResponseHeader;
use serde::Deserialize;
use std::collections::HashMap;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompressionConf {
    pub algorithms: Option<Vec<String>>,
    pub min_length: Option<String>,
    pub types: Option<Vec<String>>,
    pub levels: Option<HashMap<String, u32>>,
}

/// The types compressed when `types` is not given.
const DEFAULT_TYPES: &[&str] = &[
    "text/*",
    "application/json",
    "application/*+json",
    "application/javascript",
    "application/x-javascript",
    "application/xml",
    "application/*+xml",
    "application/wasm",
    "image/svg+xml",
];

#[derive(Debug)]
pub struct Compression {
    prefer: Vec<Coding>,
    min_length: u64,
    types: Types,
    /// the level per coding, in `Coding` order (gzip, br, zstd)
    levels: [u32; 3],
}

fn index(c: Coding) -> usize {
    match c {
        Coding::Gzip => 0,
        Coding::Brotli => 1,
        Coding::Zstd => 2,
    }
}

impl Compression {
    pub fn new(c: CompressionConf) -> Result<Compression, PluginConfError> {
        let names = c
            .algorithms
            .unwrap_or_else(|| vec!["zstd".into(), "br".into(), "gzip".into()]);
        if names.is_empty() {
            return Err(PluginConfError::at(
                "algorithms",
                "list at least one of zstd, br, gzip",
            ));
        }
        let prefer = names
            .iter()
            .map(|n| {
                Coding::parse(n).ok_or_else(|| {
                    PluginConfError::at("algorithms", format!("`{n}` is not one of zstd, br, gzip"))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let min_length = match c.min_length.as_deref() {
            Some(s) => parse_size(s).map_err(|m| PluginConfError::at("min_length", m))?,
            None => 256,
        };
        let type_list: Vec<String> = c
            .types
            .unwrap_or_else(|| DEFAULT_TYPES.iter().map(|s| s.to_string()).collect());
        let types = Types::parse(&type_list)?;
        let mut levels = [6, 5, 3];
        for (name, level) in c.levels.unwrap_or_default() {
            let coding = Coding::parse(&name).ok_or_else(|| {
                PluginConfError::at("levels", format!("`{name}` is not one of zstd, br, gzip"))
            })?;
            let range = match coding {
                Coding::Gzip => 1..=9,
                Coding::Brotli => 0..=11,
                Coding::Zstd => 1..=19,
            };
            if !range.contains(&level) {
                return Err(PluginConfError::at(
                    "levels",
                    format!(
                        "{name} level {level} is out of {}..={}",
                        range.start(),
                        range.end()
                    ),
                ));
            }
            // Pingora treats level 0 as "off"; brotli's 0 is its fastest real level
            levels[index(coding)] = level.max(1);
        }
        Ok(Compression {
            prefer,
            min_length,
            types,
            levels,
        })
    }

    /// Whether this response's type and size make it worth compressing.
    fn compressible(&self, resp: &ResponseHeader) -> bool {
        if !self.types.take(resp) {
            return false;
        }
        let declared = resp
            .headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        declared.is_none_or(|n| n >= self.min_length)
    }
}

/// Whether a response must be left as it is, whatever its type.
fn untouchable(session: &dyn Downstream, resp: &ResponseHeader, ctx: &Ctx) -> bool {
    let status = resp.status.as_u16();
    ctx.upstream_status == 0
        || !has_body(session, resp)
        || status == 206
        || resp.headers.contains_key(http::header::CONTENT_RANGE)
        || encoded(resp)
        || resp
            .headers
            .get_all(http::header::CACHE_CONTROL)
            .iter()
            .any(|v| {
                v.to_str()
                    .is_ok_and(|s| s.to_ascii_lowercase().contains("no-transform"))
            })
}

#[async_trait]
impl Plugin for Compression {
    fn on_response(
        &self,
        session: &dyn Downstream,
        resp: &mut ResponseHeader,
        ctx: &mut Ctx,
    ) -> Result<(), PluginError> {
        if untouchable(session, resp, ctx) || !self.compressible(resp) {
            return Ok(());
        }
        let _ = resp.append_header(http::header::VARY, "Accept-Encoding");
        let accept = session
            .req()
            .headers
            .get_all(http::header::ACCEPT_ENCODING)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect::<Vec<_>>()
            .join(",");
        let Some(coding) = negotiate::choose(&accept, &self.prefer) else {
            return Ok(());
        };
        let level = self.levels[index(coding)];
        let encoder: Box<dyn pingora::protocols::http::compression::Encode + Send + Sync> =
            match coding {
                Coding::Brotli => Box::new(brotli::Brotli::new(level)),
                _ => match coding.algorithm().compressor(level) {
                    Some(e) => e,
                    None => return Ok(()),
                },
            };
        ctx.plugin.encoder = Some(crate::plugins::state::Encoder(encoder));
        let _ = resp.insert_header(http::header::CONTENT_ENCODING, coding.name());
        if let Some(tag) = resp
            .headers
            .get(http::header::ETAG)
            .and_then(|v| v.to_str().ok())
            .filter(|t| !t.starts_with("W/"))
            .map(|t| format!("W/{t}"))
        {
            let _ = resp.insert_header(http::header::ETAG, tag);
        }
        filter_body(session, resp, ctx);
        Ok(())
    }

    fn on_body(
        &self,
        _session: &dyn Downstream,
        body: &mut Option<bytes::Bytes>,
        eof: bool,
        ctx: &mut Ctx,
    ) -> Result<(), PluginError> {
        let Some(encoder) = ctx.plugin.encoder.as_mut() else {
            return Ok(());
        };
        let input = body.as_deref().unwrap_or(&[]);
        match encoder.0.encode(input, eof) {
            Ok(out) => {
                *body = Some(out);
                if eof {
                    ctx.plugin.encoder = None;
                }
                Ok(())
            }
            Err(e) => {
                ctx.plugin.encoder = None;
                Err(PluginError::Failed {
                    plugin: "compression",
                    message: e.to_string(),
                })
            }
        }
    }
}
