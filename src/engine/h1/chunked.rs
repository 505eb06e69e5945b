//! The chunked transfer coding (RFC 9112 §7.1), decoded in place in a read buffer.
//!
//! The decoder never copies: it tells the caller how many bytes at the front of the buffer
//! are body data, and the caller sends them on and advances the buffer. Chunk extensions
//! and trailer fields are read and dropped (as Pingora does). A size line or a trailer line
//! longer than 4 KiB, a CR not followed by LF (or, in a trailer, an LF without CR), a size
//! that is not hex or overflows, an empty size line, or a chunk without its CRLF is an error:
//! the message cannot be framed, so the connection cannot be reused.

use bytes::{Buf, BytesMut};

const MAX_LINE: usize = 4096;

/// Where the decoder is in the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// at a chunk-size line
    Size,
    /// inside a chunk's data, this much left
    Data(u64),
    /// after a chunk's data, at its CRLF
    DataEnd,
    /// after the last chunk, at a trailer line or the final CRLF
    Trailer,
    Done,
}

/// One step of decoding.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// this many bytes at the front of the buffer are body data: send them, then advance
    Data(usize),
    /// the buffer holds nothing more to decode: read more
    More,
    /// the body ended (the final chunk and trailers were consumed)
    Done,
}

/// The body cannot be framed.
#[derive(Debug, thiserror::Error)]
#[error("malformed chunked body: {0}")]
pub struct ChunkError(&'static str);

impl ChunkError {
    /// The input ended before the body did.
    pub fn incomplete() -> ChunkError {
        ChunkError("incomplete")
    }
}

#[derive(Debug)]
pub struct Decoder {
    state: State,
}

impl Default for Decoder {
    fn default() -> Self {
        Decoder { state: State::Size }
    }
}

impl Decoder {
    /// The last chunk and the trailers were consumed.
    pub fn finished(&self) -> bool {
        self.state == State::Done
    }

    /// Decode from the front of `buf`. After [`Step::Data`]`(n)` the caller must advance
    /// `buf` by `n` before the next call.
    pub fn step(&mut self, buf: &mut BytesMut) -> Result<Step, ChunkError> {
        loop {
            match self.state {
                State::Done => return Ok(Step::Done),
                State::Data(left) => {
                    if buf.is_empty() {
                        return Ok(Step::More);
                    }
                    let n = (buf.len() as u64).min(left) as usize;
                    self.state = if left == n as u64 {
                        State::DataEnd
                    } else {
                        State::Data(left - n as u64)
                    };
                    return Ok(Step::Data(n));
                }
                State::DataEnd => {
                    if buf.len() < 2 {
                        return Ok(Step::More);
                    }
                    if &buf[..2] != b"\r\n" {
                        return Err(ChunkError("chunk data not followed by CRLF"));
                    }
                    buf.advance(2);
                    self.state = State::Size;
                }
                State::Size => {
                    let Some(len) = line_len(buf)? else {
                        return Ok(Step::More);
                    };
                    let size = parse_size(&buf[..len])?;
                    buf.advance(len + 2);
                    self.state = if size == 0 {
                        State::Trailer
                    } else {
                        State::Data(size)
                    };
                }
                State::Trailer => {
                    let Some(len) = line_len(buf)? else {
                        return Ok(Step::More);
                    };
                    // a bare LF is refused here as by Pingora's reader (only CRLF ends a line)
                    if buf[..len].contains(&b'\n') {
                        return Err(ChunkError("bare LF in a trailer line"));
                    }
                    buf.advance(len + 2);
                    if len == 0 {
                        self.state = State::Done;
                    }
                }
            }
        }
    }
}

/// The length of the CRLF-terminated line at the front of `buf` (without the CRLF), once
/// it is complete. A CR not followed by LF is an error, as in httparse's chunk-size parser
/// (Pingora's reader): a bare CR is how one parser is made to see a line end another misses.
fn line_len(buf: &[u8]) -> Result<Option<usize>, ChunkError> {
    match buf.iter().position(|b| *b == b'\r') {
        Some(i) if i > MAX_LINE => Err(ChunkError("line too long")),
        Some(i) => match buf.get(i + 1) {
            Some(b'\n') => Ok(Some(i)),
            Some(_) => Err(ChunkError("bare CR")),
            None => Ok(None),
        },
        None if buf.len() > MAX_LINE => Err(ChunkError("line too long")),
        None => Ok(None),
    }
}

/// A chunk-size: hex digits, optionally followed by extensions after `;`.
fn parse_size(line: &[u8]) -> Result<u64, ChunkError> {
    let end = line.iter().position(|b| *b == b';').unwrap_or(line.len());
    let hex = &line[..end];
    let hex = match hex.iter().rposition(|b| !matches!(b, b' ' | b'\t')) {
        Some(i) => &hex[..=i],
        None => return Err(ChunkError("empty chunk size")),
    };
    if hex.len() > 15 {
        return Err(ChunkError("chunk size too large"));
    }
    hex.iter().try_fold(0u64, |acc, b| {
        let d = (*b as char)
            .to_digit(16)
            .ok_or(ChunkError("chunk size is not hex"))?;
        Ok(acc * 16 + u64::from(d))
    })
}

/// Append one chunk (size line, data, CRLF) to `out`.
pub fn encode(data: &[u8], out: &mut Vec<u8>) {
    use std::io::Write;
    // upper-case hex, as Pingora's writer: the engines send the same bytes
    let _ = write!(out, "{:X}\r\n", data.len());
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

/// The last chunk, with no trailers.
pub const LAST: &[u8] = b"0\r\n\r\n";

#[cfg(test)]
mod tests {
    use super::*;

    use crate::fuzzing::h1::decode_split as decode;

    #[test]
    fn decodes_at_any_split() {
        let wire = b"5;ext=1\r\nhello\r\n1\r\n \r\n6\r\nworld!\r\n0\r\nX-T: 1\r\n\r\n";
        for split in 1..wire.len() {
            assert_eq!(
                decode(wire, split).unwrap(),
                b"hello world!",
                "split {split}"
            );
        }
        let mut enc = Vec::new();
        encode(b"abc", &mut enc);
        enc.extend_from_slice(LAST);
        assert_eq!(decode(&enc, 3).unwrap(), b"abc");
    }

    #[test]
    fn refuses_what_cannot_be_framed() {
        for bad in [
            &b"g\r\nx\r\n0\r\n\r\n"[..],
            b"3\r\nabcX\r\n0\r\n\r\n",
            b"ffffffffffffffff\r\n",
            b"\r\n",
            b";x\r\n",
            b"1;a\rb\r\nx\r\n0\r\n\r\n", // bare CR in an extension
            b"0\r\nx\ny\r\n\r\n",        // bare LF in a trailer line
        ] {
            assert!(
                decode(bad, 64).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        assert!(decode(&[b'1'; 5000], 64).is_err(), "endless size line");
    }
}
