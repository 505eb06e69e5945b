//! A body an early answer streams instead of holding (the `directory` plugin's files): the
//! plugin answers with the head (its `Content-Length` included) and leaves the source in
//! `ctx.plugin.answer_stream`; the engine writes the head, then each piece as it comes.

use async_trait::async_trait;
use bytes::Bytes;
use std::collections::VecDeque;
use std::io::{Read, Seek};

/// Pieces of a body, read on demand.
#[async_trait]
pub trait BodySource: Send + Sync + std::fmt::Debug {
    /// The next piece; `None` at the end.
    async fn next(&mut self) -> std::io::Result<Option<Bytes>>;
}

/// One part of a file body: bytes made up front (a multipart header), or a byte range.
#[derive(Debug)]
pub enum Segment {
    Bytes(Bytes),
    Range { start: u64, len: u64 },
}

/// A file sent in segments, 256 KiB reads at a time.
///
/// The reads are plain blocking reads on the worker, as nginx does without thread pools: a
/// file in the page cache is a memory copy, and `tokio::fs` would hand every read to another
/// thread (measured: 10× slower for 1 KiB files). A file on a slow disk stalls its worker
/// while it is read.
#[derive(Debug)]
pub struct FileBody {
    file: std::fs::File,
    segments: VecDeque<Segment>,
    /// where the file is positioned, and how much of the current range is left
    at: Option<(u64, u64)>,
}

const READ: usize = 256 << 10;

impl FileBody {
    pub fn new(file: std::fs::File, segments: Vec<Segment>) -> FileBody {
        FileBody {
            file,
            segments: segments.into(),
            at: None,
        }
    }
}

#[async_trait]
impl BodySource for FileBody {
    async fn next(&mut self) -> std::io::Result<Option<Bytes>> {
        loop {
            if let Some((pos, left)) = self.at {
                if left == 0 {
                    self.at = None;
                    continue;
                }
                let want = left.min(READ as u64) as usize;
                let mut buf = vec![0u8; want];
                let n = self.file.read(&mut buf)?;
                if n == 0 {
                    // the file shrank under us: the promised length cannot be kept
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "the file is shorter than when it was opened",
                    ));
                }
                buf.truncate(n);
                self.at = Some((pos + n as u64, left - n as u64));
                return Ok(Some(buf.into()));
            }
            match self.segments.pop_front() {
                None => return Ok(None),
                Some(Segment::Bytes(b)) => return Ok(Some(b)),
                Some(Segment::Range { start, len }) => {
                    self.file.seek(std::io::SeekFrom::Start(start))?;
                    self.at = Some((start, len));
                }
            }
        }
    }
}
