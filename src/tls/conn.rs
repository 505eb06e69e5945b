//! A TLS connection as Pingora's apps and the own HTTP/1 loop see it.
//!
//! The handshake is tidegate's own (`accept.rs`, on tokio-rustls), so [`TlsConn`] implements
//! Pingora's `IO` traits itself: the TLS version and cipher go to Pingora's `SslDigest`, the
//! negotiated ALPN decides HTTP/2, and bytes the own loop read ahead are put back before a
//! hand-over to Pingora. What Pingora's digest has no field for (the SNI, whether the session
//! was resumed, the client certificate's subject) is in [`TlsInfo`]: the own loop holds it
//! directly, and Pingora's path finds it by the connection's address pair ([`info_of`],
//! after [`TlsConn::register`]).

use async_trait::async_trait;
use pingora::protocols::l4::stream::Stream as L4;
use pingora::protocols::tls::SslDigest;
use pingora::protocols::SocketDigest;
use pingora::protocols::{
    GetProxyDigest, GetSocketDigest, GetTimingDigest, Peek, Shutdown, Ssl, UniqueID, UniqueIDType,
    ALPN,
};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// What a request can know about its connection's TLS session.
#[derive(Debug, Clone, Default)]
pub struct TlsInfo {
    /// "TLSv1_3" style names, as rustls gives them
    pub version: &'static str,
    pub cipher: &'static str,
    /// the name the client asked for, if any
    pub sni: Option<String>,
    /// the session was resumed (a ticket or the session cache), no full handshake
    pub resumed: bool,
    /// the verified client certificate's subject (`CN=…, O=…`), with `client_ca`
    pub client_subject: Option<String>,
    /// "h2" or "http/1.1", if the client offered ALPN
    pub alpn: Option<&'static str>,
}

/// A TLS variable, by the name nginx gives it (`$ssl_protocol`...).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsVar {
    Protocol,
    Cipher,
    ServerName,
    SessionReused,
    ClientSubject,
}

impl TlsVar {
    pub fn from_name(name: &str) -> Option<TlsVar> {
        Some(match name {
            "ssl_protocol" => TlsVar::Protocol,
            "ssl_cipher" => TlsVar::Cipher,
            "ssl_server_name" => TlsVar::ServerName,
            "ssl_session_reused" => TlsVar::SessionReused,
            "ssl_client_s_dn" => TlsVar::ClientSubject,
            _ => return None,
        })
    }
}

impl TlsInfo {
    /// The value of `var` (`None`: not set, as the SNI or client subject may be).
    pub fn var(&self, var: TlsVar) -> Option<&str> {
        match var {
            TlsVar::Protocol => Some(self.version),
            TlsVar::Cipher => Some(self.cipher),
            TlsVar::ServerName => self.sni.as_deref(),
            TlsVar::SessionReused => Some(if self.resumed { "r" } else { "." }),
            TlsVar::ClientSubject => self.client_subject.as_deref(),
        }
    }
}

/// An established TLS connection over a TCP stream.
pub struct TlsConn {
    inner: tokio_rustls::server::TlsStream<Box<L4>>,
    info: Arc<TlsInfo>,
    digest: Arc<SslDigest>,
    alpn: Option<ALPN>,
    /// bytes read ahead and put back, served before the stream's
    rewound: bytes::Bytes,
    id: UniqueIDType,
    key: Option<Key>,
}

impl std::fmt::Debug for TlsConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsConn")
            .field("id", &self.id)
            .field("info", &self.info)
            .finish()
    }
}

const SHARDS: usize = 16;
/// a TCP connection: its local and its peer address
type Key = (SocketAddr, SocketAddr);
type Shard = Mutex<HashMap<Key, Arc<TlsInfo>>>;

/// TLS sessions by connection, for Pingora's path; an entry lives as long as its
/// connection (added at the handshake, removed on drop, before the socket closes, so a
/// later connection with the same addresses never meets a stale entry).
fn registry() -> &'static [Shard; SHARDS] {
    static R: std::sync::OnceLock<[Shard; SHARDS]> = std::sync::OnceLock::new();
    R.get_or_init(|| std::array::from_fn(|_| Mutex::new(HashMap::new())))
}

fn shard(key: &Key) -> std::sync::MutexGuard<'static, HashMap<Key, Arc<TlsInfo>>> {
    registry()[key.1.port() as usize % SHARDS]
        .lock()
        .unwrap_or_else(|p| p.into_inner())
}

fn key_of(d: &SocketDigest) -> Option<Key> {
    Some((*d.local_addr()?.as_inet()?, *d.peer_addr()?.as_inet()?))
}

/// The TLS session of the connection `digest` describes (Pingora's socket digest).
pub fn info_of(digest: &SocketDigest) -> Option<Arc<TlsInfo>> {
    let key = key_of(digest)?;
    shard(&key).get(&key).cloned()
}

impl TlsConn {
    pub fn new(inner: tokio_rustls::server::TlsStream<Box<L4>>, info: TlsInfo) -> TlsConn {
        let id = inner.get_ref().0.id();
        let alpn = match info.alpn {
            Some("h2") => Some(ALPN::H2),
            Some(_) => Some(ALPN::H1),
            None => None,
        };
        let digest = Arc::new(SslDigest::new(
            info.cipher,
            info.version,
            None,
            None,
            Vec::new(),
        ));
        TlsConn {
            inner,
            info: Arc::new(info),
            digest,
            alpn,
            rewound: bytes::Bytes::new(),
            id,
            key: None,
        }
    }

    /// Make the session findable by [`info_of`]: called when the connection goes to
    /// Pingora's path (HTTP/2, a hand-over), whose requests find it that way. The own loop
    /// holds the session itself and never registers (no lock per connection there).
    pub fn register(&mut self) {
        if self.key.is_some() {
            return;
        }
        self.key = self.l4().get_socket_digest().and_then(|d| key_of(&d));
        if let Some(k) = &self.key {
            shard(k).insert(*k, self.info.clone());
        }
    }

    /// ALPN chose HTTP/2.
    pub fn h2(&self) -> bool {
        self.alpn == Some(ALPN::H2)
    }

    pub fn info(&self) -> &Arc<TlsInfo> {
        &self.info
    }

    /// Put `bytes` back: the next reads return them first.
    pub fn rewind(&mut self, bytes: &[u8]) {
        if !bytes.is_empty() {
            let mut all = bytes::BytesMut::with_capacity(bytes.len() + self.rewound.len());
            all.extend_from_slice(bytes);
            all.extend_from_slice(&self.rewound);
            self.rewound = all.freeze();
        }
    }

    fn l4(&self) -> &L4 {
        self.inner.get_ref().0
    }
}

impl Drop for TlsConn {
    fn drop(&mut self) {
        if let Some(k) = &self.key {
            shard(k).remove(k);
        }
    }
}

impl AsyncRead for TlsConn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if !self.rewound.is_empty() {
            let n = self.rewound.len().min(buf.remaining());
            let head = self.rewound.split_to(n);
            buf.put_slice(&head);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsConn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[async_trait]
impl Shutdown for TlsConn {
    async fn shutdown(&mut self) {
        // close_notify, then the TCP write side
        let _ = tokio::io::AsyncWriteExt::shutdown(self).await;
    }
}

impl UniqueID for TlsConn {
    fn id(&self) -> UniqueIDType {
        self.id
    }
}

impl Ssl for TlsConn {
    fn get_ssl_digest(&self) -> Option<Arc<SslDigest>> {
        Some(self.digest.clone())
    }

    fn selected_alpn_proto(&self) -> Option<ALPN> {
        self.alpn.clone()
    }
}

impl GetTimingDigest for TlsConn {
    fn get_timing_digest(&self) -> Vec<Option<pingora::protocols::TimingDigest>> {
        self.l4().get_timing_digest()
    }
}

impl GetProxyDigest for TlsConn {
    fn get_proxy_digest(&self) -> Option<Arc<pingora::protocols::raw_connect::ProxyDigest>> {
        self.l4().get_proxy_digest()
    }
}

impl GetSocketDigest for TlsConn {
    fn get_socket_digest(&self) -> Option<Arc<SocketDigest>> {
        self.l4().get_socket_digest()
    }

    fn set_socket_digest(&mut self, socket_digest: SocketDigest) {
        self.inner.get_mut().0.set_socket_digest(socket_digest)
    }
}

#[async_trait]
impl Peek for TlsConn {}
