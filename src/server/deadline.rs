//! A deadline for the whole request header, against slow clients (slowloris).
//!
//! ```toml
//! [servers.web]
//! header_timeout = "60s"   # the complete header must arrive within this
//! body_timeout = "30s"     # max wait between two reads of the request body
//! ```
//!
//! Pingora's own header timeout applies to each `read()`, so a client that sends one byte at
//! a time just under it holds a connection forever. [`Guarded`] wraps the proxy app per
//! connection with a clock:
//!
//! - armed when the connection is accepted and again when a response is finished (the next
//!   request's header must then arrive in time: this also bounds keep-alive idle time);
//! - stopped by the proxy as soon as a request header is parsed ([`header_done`], from
//!   `early_request_filter`);
//! - a watchdog closes the connection when the clock runs out while armed.
//!
//! The clock lives in a task-local, so there is no lock and no map of connections, and the
//! watchdog uses Pingora's shared timer wheel, once per connection rather than per request.
//! The wrapper sits on the connection (`ServerApp`), whose stream is a pointer, rather than
//! on each request (`HttpServerApp`), whose session is several KB that would be copied
//! once more per request: measured with callgrind, that copy was ~14,000 instructions per
//! request. h2c connections (which start with the HTTP/2 preface) frame their own headers
//! and run without the clock.

use async_trait::async_trait;
use pingora::apps::ServerApp;
use pingora::protocols::Stream;
use pingora::proxy::HttpProxy;
use pingora::server::ShutdownWatch;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// `deadline` value meaning "not armed"
const DISARMED: u64 = u64::MAX;

tokio::task_local! {
    static CLOCK: Arc<Clock>;
}

/// One connection's header clock.
struct Clock {
    /// ms since [`epoch`] when the header must be complete, or [`DISARMED`]
    deadline: AtomicU64,
    timeout: Duration,
}

fn epoch() -> Instant {
    static E: OnceLock<Instant> = OnceLock::new();
    *E.get_or_init(Instant::now)
}

fn now_ms() -> u64 {
    epoch().elapsed().as_millis() as u64
}

impl Clock {
    fn arm(&self) {
        let at = now_ms() + self.timeout.as_millis() as u64;
        self.deadline.store(at, Ordering::Relaxed);
    }
}

/// Called by the proxy once a request header is complete: stop the clock.
pub fn header_done() {
    let _ = CLOCK.try_with(|c| c.deadline.store(DISARMED, Ordering::Relaxed));
}

/// Called by the proxy when a response is finished: the next header must come in time.
pub fn request_done() {
    let _ = CLOCK.try_with(|c| c.arm());
}

/// Resolves when the clock runs out while armed.
async fn watchdog(clock: &Clock) {
    loop {
        let deadline = clock.deadline.load(Ordering::Relaxed);
        let now = now_ms();
        let wait = if deadline == DISARMED {
            // a request is being served: look again later
            clock.timeout
        } else if deadline <= now {
            return;
        } else {
            Duration::from_millis(deadline - now)
        };
        pingora::time::fast_timeout::fast_sleep(wait).await;
    }
}

/// The proxy app with a header clock around each connection.
pub struct Guarded<P> {
    pub inner: Arc<HttpProxy<P>>,
    pub header_timeout: Duration,
    /// h2c accepted on this listener
    pub h2c: bool,
}

#[async_trait]
impl<P> ServerApp for Guarded<P>
where
    P: pingora::proxy::ProxyHttp + Send + Sync + 'static,
    P::CTX: Send + Sync,
{
    async fn process_new(
        self: &Arc<Self>,
        mut stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        if self.h2c {
            let mut buf = [0u8; H2_PREFACE.len()];
            if matches!(stream.try_peek(&mut buf).await, Ok(true)) && buf == H2_PREFACE {
                return self.inner.process_new(stream, shutdown).await;
            }
        }
        let clock = Arc::new(Clock {
            deadline: AtomicU64::new(DISARMED),
            timeout: self.header_timeout,
        });
        clock.arm();
        let work = CLOCK.scope(clock.clone(), self.inner.process_new(stream, shutdown));
        tokio::select! {
            r = work => r,
            _ = watchdog(&clock) => {
                tracing::debug!("request header not complete within {:?}; closing", self.header_timeout);
                None
            }
        }
    }

    async fn cleanup(&self) {
        self.inner.cleanup().await
    }
}
