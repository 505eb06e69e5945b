//! Idle upstream connections, one pool per worker thread.
//!
//! A connection goes back to the pool of the thread that used it when its response ended
//! cleanly; the next request to the same peer on that thread takes the most recently used
//! one. No lock and no shared cache line: Pingora runs one runtime per thread (unless
//! `work_stealing` is on, where a task may move threads; the pool is then simply the pool of
//! whichever thread the task is on).
//!
//! At checkout a connection is tested without blocking: one that has bytes waiting (which
//! no request asked for) or reports end of stream has been closed or broken by the peer and
//! is dropped. Connections idle longer than the upstream's `idle_timeout` (default 60 s) are
//! dropped too. At most `upstream_keepalive_pool_size` idle connections are kept per peer.

use bytes::BytesMut;
use rustc_hash::FxHashMap;
use std::cell::RefCell;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::net::TcpStream;

/// The idle time after which a pooled connection is not reused, when the upstream sets none.
pub const DEFAULT_IDLE: Duration = Duration::from_secs(60);

/// An idle connection with what it keeps between requests: its empty read buffer and its
/// timer (`timer.rs`).
pub struct Parked {
    pub conn: TcpStream,
    pub buf: BytesMut,
    pub timer: super::timer::Timer,
}

/// A parked connection and since when it is idle.
type Idle = (Parked, Instant);

thread_local! {
    // keys are configured peers, not client input: a fast hash needs no DoS resistance
    static IDLE: RefCell<FxHashMap<SocketAddr, Vec<Idle>>> =
        RefCell::new(FxHashMap::default());
}

/// A live idle connection to `addr`, if this thread has one.
pub fn checkout(addr: SocketAddr, idle_limit: Duration) -> Option<Parked> {
    IDLE.with(|idle| {
        let mut idle = idle.borrow_mut();
        let list = idle.get_mut(&addr)?;
        while let Some((parked, since)) = list.pop() {
            if since.elapsed() >= idle_limit {
                continue;
            }
            let mut probe = [0u8; 1];
            match parked.conn.try_read(&mut probe) {
                // nothing waiting and not closed: usable
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Some(parked),
                // closed (0), unsolicited bytes, or an error: not usable
                _ => continue,
            }
        }
        None
    })
}

/// Keep a connection whose last response ended cleanly, with its empty read buffer (reused
/// by the next request), unless the peer's list is full. `since`: when it went idle, or a
/// little earlier.
pub fn checkin(addr: SocketAddr, parked: Parked, cap: usize, since: Instant) {
    IDLE.with(|idle| {
        let mut idle = idle.borrow_mut();
        let list = idle.entry(addr).or_default();
        if list.len() >= cap {
            // the oldest goes
            list.remove(0);
        }
        list.push((parked, since));
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parked(conn: TcpStream) -> Parked {
        Parked {
            conn,
            buf: BytesMut::new(),
            timer: Default::default(),
        }
    }

    #[tokio::test]
    async fn closed_and_stale_connections_are_not_reused() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let a = TcpStream::connect(addr).await.unwrap();
        let (server_side, _) = listener.accept().await.unwrap();
        checkin(addr, parked(a), 4, Instant::now());
        assert!(
            checkout(addr, DEFAULT_IDLE).is_some(),
            "a live one is reused"
        );
        let b = TcpStream::connect(addr).await.unwrap();
        let (peer_b, _) = listener.accept().await.unwrap();
        drop(peer_b);
        // wait until the close has arrived
        let mut probe = [0u8; 1];
        loop {
            b.readable().await.unwrap();
            match b.try_read(&mut probe) {
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                _ => break,
            }
        }
        checkin(addr, parked(b), 4, Instant::now());
        assert!(
            checkout(addr, DEFAULT_IDLE).is_none(),
            "a closed one is dropped"
        );
        let c = TcpStream::connect(addr).await.unwrap();
        checkin(addr, parked(c), 4, Instant::now());
        assert!(
            checkout(addr, Duration::ZERO).is_none(),
            "a stale one is dropped"
        );
        drop(server_side);
    }
}
