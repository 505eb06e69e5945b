//! A streaming brotli encoder that ends its stream.
//!
//! Pingora's brotli `Compressor` only flushes at the end of the body and never writes the
//! final (ISLAST) meta-block, so a strict decoder rejects what it makes (found by this
//! plugin's tests). This one finishes the stream with the `brotli` crate's `into_inner`.

use bytes::Bytes;
use pingora::protocols::http::compression::Encode;
use std::io::Write;
use std::time::{Duration, Instant};

pub struct Brotli {
    writer: Option<brotli::CompressorWriter<Vec<u8>>>,
    total_in: usize,
    total_out: usize,
    took: Duration,
}

impl Brotli {
    pub fn new(level: u32) -> Brotli {
        Brotli {
            // 4 KiB internal buffer, a 512 KiB window (lgwin 19), as Pingora's
            writer: Some(brotli::CompressorWriter::new(Vec::new(), 4096, level, 19)),
            total_in: 0,
            total_out: 0,
            took: Duration::ZERO,
        }
    }
}

fn failed(e: std::io::Error) -> Box<pingora::Error> {
    pingora::Error::because(
        pingora::protocols::http::compression::COMPRESSION_ERROR,
        "brotli",
        e,
    )
}

impl Encode for Brotli {
    fn encode(&mut self, input: &[u8], end: bool) -> pingora::Result<Bytes> {
        let start = Instant::now();
        self.total_in += input.len();
        let out = match (self.writer.as_mut(), end) {
            (None, _) => Vec::new(),
            (Some(w), false) => {
                w.write_all(input).map_err(failed)?;
                std::mem::take(w.get_mut())
            }
            (Some(w), true) => {
                w.write_all(input).map_err(failed)?;
                match self.writer.take() {
                    Some(w) => w.into_inner(),
                    None => Vec::new(),
                }
            }
        };
        self.total_out += out.len();
        self.took += start.elapsed();
        Ok(out.into())
    }

    fn stat(&self) -> (&'static str, usize, usize, Duration) {
        ("brotli", self.total_in, self.total_out, self.took)
    }
}
