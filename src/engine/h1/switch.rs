//! WebSocket upgrades on the own HTTP/1 loop (`Upgrade: websocket` with `Connection:
//! upgrade`; other protocols are handed to Pingora's path, `head.rs`): once the upstream
//! answers `101 Switching Protocols`, its head goes to the client as it came, and from then
//! on the two
//! connections are spliced: bytes both ways, unread bytes on either side first, until both
//! sides have closed, or until nothing moved either way for the read timeout (the location's
//! `timeout`, else the upstream's `read_timeout`, as nginx's `proxy_read_timeout` does for
//! WebSockets; applications keep an idle socket open with pings). The connection is never
//! reused afterwards.
//!
//! An upstream that refuses the upgrade (any other status) gets an ordinary answer relayed,
//! and the client's connection closes after it: the bytes a client sent after its upgrade
//! request were meant for the new protocol, so they are never read as requests.

use super::client::Client;
use super::origin::Origin;
use pingora::http::ResponseHeader;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The idle limit of a spliced connection when no read timeout is set.
const DEFAULT_IDLE: Duration = Duration::from_secs(60);

/// The 101 head on the wire, its fields untouched (`Connection`, `Upgrade` included).
pub fn head_to_wire(resp: &ResponseHeader, out: &mut Vec<u8>) {
    out.extend_from_slice(b"HTTP/1.1 101 ");
    let reason = resp.get_reason_phrase().unwrap_or("Switching Protocols");
    out.extend_from_slice(reason.as_bytes());
    out.extend_from_slice(b"\r\n");
    resp.header_to_h1_wire(out);
    out.extend_from_slice(b"\r\n");
}

/// Write out the head in `client.out`, then relay both ways until both sides closed or
/// nothing moved for `idle`. Returns the bytes sent to the client after the head (for the
/// access log).
pub async fn splice(
    client: &mut Client,
    mut origin: Origin,
    idle: Option<Duration>,
) -> std::io::Result<u64> {
    // what the upstream sent right after its head, and what the client sent after its
    // request, go first
    let early = origin.buf.len() as u64;
    client.out.extend_from_slice(&origin.buf);
    origin.buf.clear();
    client.flush().await?;
    if !client.buf.is_empty() {
        origin.conn.write_all(&client.buf).await?;
        client.buf.clear();
    }
    let to_client = relay(client, &mut origin, idle.unwrap_or(DEFAULT_IDLE)).await?;
    Ok(early + to_client)
}

/// Bytes both ways; a side that ends its writing has the other side's writing ended too.
async fn relay(client: &mut Client, origin: &mut Origin, idle: Duration) -> std::io::Result<u64> {
    let (mut cr, mut cw) = tokio::io::split(&mut client.stream);
    let (mut or, mut ow) = origin.conn.split();
    let (mut from_client, mut from_origin) = (vec![0u8; 16 << 10], vec![0u8; 16 << 10]);
    let (mut client_open, mut origin_open) = (true, true);
    let mut to_client = 0u64;
    while client_open || origin_open {
        tokio::select! {
            r = cr.read(&mut from_client), if client_open => match r? {
                0 => {
                    client_open = false;
                    let _ = ow.shutdown().await;
                }
                n => ow.write_all(&from_client[..n]).await?,
            },
            r = or.read(&mut from_origin), if origin_open => match r? {
                0 => {
                    origin_open = false;
                    let _ = cw.shutdown().await;
                }
                n => {
                    // a TLS stream keeps what it encrypted until flushed
                    cw.write_all(&from_origin[..n]).await?;
                    cw.flush().await?;
                    to_client += n as u64;
                }
            },
            _ = tokio::time::sleep(idle) => {
                tracing::debug!("upgraded connection idle for {idle:?}; closing");
                break;
            }
        }
    }
    Ok(to_client)
}
