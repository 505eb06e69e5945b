//! WebSocket upgrades on the own HTTP/1 loop (`Upgrade: websocket` with `Connection:
//! upgrade`; other protocols are handed to Pingora's path, `head.rs`): once the upstream
//! answers `101 Switching Protocols`, its head goes to the client as it came, and from then
//! on the two
//! connections are spliced: bytes both ways, unread bytes on either side first, until both
//! sides have closed. The connection is never reused afterwards.
//!
//! An upstream that refuses the upgrade (any other status) gets an ordinary answer relayed,
//! and the client's connection closes after it: the bytes a client sent after its upgrade
//! request were meant for the new protocol, so they are never read as requests.

use super::client::Client;
use super::origin::Origin;
use pingora::http::ResponseHeader;
use tokio::io::AsyncWriteExt;

/// The 101 head on the wire, its fields untouched (`Connection`, `Upgrade` included).
pub fn head_to_wire(resp: &ResponseHeader, out: &mut Vec<u8>) {
    out.extend_from_slice(b"HTTP/1.1 101 ");
    let reason = resp.get_reason_phrase().unwrap_or("Switching Protocols");
    out.extend_from_slice(reason.as_bytes());
    out.extend_from_slice(b"\r\n");
    resp.header_to_h1_wire(out);
    out.extend_from_slice(b"\r\n");
}

/// Write out the head in `client.out`, then relay both ways until both sides closed.
/// Returns the bytes sent to the client after the head (for the access log).
pub async fn splice(client: &mut Client, mut origin: Origin) -> std::io::Result<u64> {
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
    let (_, to_client) =
        tokio::io::copy_bidirectional(&mut client.stream, &mut origin.conn).await?;
    Ok(early + to_client)
}
