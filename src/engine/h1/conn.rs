//! The client connection under the own HTTP/1 loop: plain TCP, or TLS (`tls/conn.rs`).
//! One match per read or write; everything above it is the same for both.

use crate::tls::{TlsConn, TlsInfo};
use pingora::protocols::l4::stream::Stream as L4;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

pub enum Conn {
    Plain(Box<L4>),
    Tls(Box<TlsConn>),
}

impl Conn {
    /// Put `bytes` back to be read first (before a hand-over to Pingora's path).
    pub fn rewind(&mut self, bytes: &[u8]) {
        match self {
            Conn::Plain(s) => s.rewind(bytes),
            Conn::Tls(s) => s.rewind(bytes),
        }
    }

    /// As Pingora's stream type (a TLS session made findable for Pingora's path).
    pub fn into_stream(self) -> pingora::protocols::Stream {
        match self {
            Conn::Plain(s) => s,
            Conn::Tls(mut s) => {
                s.register();
                s
            }
        }
    }

    /// The TLS session, on a TLS connection.
    pub fn tls(&self) -> Option<&Arc<TlsInfo>> {
        match self {
            Conn::Plain(_) => None,
            Conn::Tls(s) => Some(s.info()),
        }
    }

    pub fn socket_digest(&self) -> Option<Arc<pingora::protocols::SocketDigest>> {
        use pingora::protocols::GetSocketDigest;
        match self {
            Conn::Plain(s) => s.get_socket_digest(),
            Conn::Tls(s) => s.get_socket_digest(),
        }
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(&mut **s).poll_read(cx, buf),
            Conn::Tls(s) => Pin::new(&mut **s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(&mut **s).poll_write(cx, buf),
            Conn::Tls(s) => Pin::new(&mut **s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(&mut **s).poll_flush(cx),
            Conn::Tls(s) => Pin::new(&mut **s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(&mut **s).poll_shutdown(cx),
            Conn::Tls(s) => Pin::new(&mut **s).poll_shutdown(cx),
        }
    }
}
