//! Reading a response body from an upstream connection piece by piece, whatever its framing
//! (a length, chunked, until the close): the same for both own engines, which differ only in
//! how they send each piece on.

use super::chunked::{Decoder, Step};
use super::origin::{Framing, Origin};
use super::respond::RelayError;
use std::time::Duration;

/// Where a response body being read stands.
pub struct BodyReader {
    framing: Framing,
    /// `Framing::Length`: the bytes still to come after the last piece handed out
    left: u64,
    decoder: Decoder,
    ended: bool,
}

impl BodyReader {
    pub fn new(framing: Framing) -> BodyReader {
        let left = match framing {
            Framing::Length(n) => n,
            _ => 0,
        };
        BodyReader {
            framing,
            left,
            decoder: Decoder::default(),
            ended: matches!(framing, Framing::None | Framing::Switched),
        }
    }

    /// The next piece: `Some(n)`: the first `n` bytes of `origin.buf` are body (the caller
    /// takes them off the buffer before asking again); `None`: the body ended where its
    /// framing says.
    pub async fn next(
        &mut self,
        origin: &mut Origin,
        read_timeout: Option<Duration>,
    ) -> Result<Option<usize>, RelayError> {
        if self.ended {
            return Ok(None);
        }
        match self.framing {
            Framing::None | Framing::Switched => Ok(None),
            Framing::Length(_) => {
                if self.left == 0 {
                    self.ended = true;
                    return Ok(None);
                }
                if origin.buf.is_empty() && origin.fill(read_timeout).await? == 0 {
                    return Err(RelayError::Truncated);
                }
                let n = (origin.buf.len() as u64).min(self.left) as usize;
                self.left -= n as u64;
                Ok(Some(n))
            }
            Framing::Chunked => loop {
                match self.decoder.step(&mut origin.buf)? {
                    Step::Data(n) => return Ok(Some(n)),
                    Step::Done => {
                        self.ended = true;
                        return Ok(None);
                    }
                    Step::More => {
                        if origin.fill(read_timeout).await? == 0 {
                            return Err(RelayError::Truncated);
                        }
                    }
                }
            },
            Framing::Close => {
                if origin.buf.is_empty() && origin.fill(read_timeout).await? == 0 {
                    self.ended = true;
                    return Ok(None);
                }
                Ok(Some(origin.buf.len()))
            }
        }
    }

    /// The piece last handed out was the body's last (known for a length only: the others
    /// learn it on the next read).
    pub fn complete(&self) -> bool {
        matches!(self.framing, Framing::Length(_)) && self.left == 0
    }
}
