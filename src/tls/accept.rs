//! The server side of a TLS handshake, on a connection the listener accepted.
//!
//! The ClientHello is read first (rustls's `Acceptor`), so a name no certificate serves is
//! refused with the `unrecognized_name` alert (RFC 6066) rather than a generic failure, and
//! bytes that are not TLS at all end the connection with one debug line, never a log flood.
//! Then rustls finishes the handshake with the server's settings (`settings.rs`); the caller
//! runs this under the header deadline, so a client that stops mid-handshake is cut.

use super::conn::{TlsConn, TlsInfo};
use super::settings::TlsServer;
use pingora::protocols::l4::stream::Stream as L4;
use rustls::server::Acceptor;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Why a handshake did not complete.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    #[error("the client closed the connection during the handshake")]
    Closed,
    #[error("no certificate for {0:?} and no default certificate")]
    UnknownName(Option<String>),
    #[error("TLS handshake failed: {0}")]
    Tls(#[from] rustls::Error),
    #[error("TLS handshake failed: {0}")]
    Io(#[from] std::io::Error),
}

/// A fatal `unrecognized_name` alert as one TLS record (plaintext: no keys exist yet).
const UNRECOGNIZED_NAME: [u8; 7] = [0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x70];

/// Run the handshake on `l4` with `server`'s settings.
pub async fn handshake(mut l4: Box<L4>, server: &TlsServer) -> Result<TlsConn, Refused> {
    let mut acceptor = Acceptor::default();
    let mut buf = [0u8; 4096];
    let accepted = loop {
        let n = l4.read(&mut buf).await?;
        if n == 0 {
            return Err(Refused::Closed);
        }
        let mut fed = &buf[..n];
        while !fed.is_empty() {
            acceptor.read_tls(&mut fed)?;
        }
        match acceptor.accept() {
            Ok(None) => continue,
            Ok(Some(a)) => break a,
            Err((e, mut alert)) => {
                let mut out = Vec::new();
                let _ = alert.write_all(&mut out);
                let _ = l4.write_all(&out).await;
                return Err(Refused::Tls(e));
            }
        }
    };
    let hello = accepted.client_hello();
    let sni = hello.server_name().map(str::to_string);
    if server.store.lookup(sni.as_deref()).is_none() {
        let _ = l4.write_all(&UNRECOGNIZED_NAME).await;
        let _ = l4.flush().await;
        return Err(Refused::UnknownName(sni));
    }
    let stream = tokio_rustls::StartHandshake::from_parts(accepted, l4)
        .into_stream(server.config.clone())
        .await?;
    let conn = stream.get_ref().1;
    let info = TlsInfo {
        version: conn
            .protocol_version()
            .and_then(|v| v.as_str())
            .unwrap_or(""),
        cipher: conn
            .negotiated_cipher_suite()
            .and_then(|s| s.suite().as_str())
            .unwrap_or(""),
        sni,
        resumed: conn.handshake_kind() == Some(rustls::HandshakeKind::Resumed),
        client_subject: conn
            .peer_certificates()
            .and_then(|c| c.first())
            .and_then(|der| {
                let (_, x) = x509_parser::parse_x509_certificate(der.as_ref()).ok()?;
                Some(x.subject().to_string())
            }),
        alpn: match conn.alpn_protocol() {
            Some(b"h2") => Some("h2"),
            Some(b"http/1.1") => Some("http/1.1"),
            _ => None,
        },
    };
    Ok(TlsConn::new(stream, info))
}
