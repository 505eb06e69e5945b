//! A deadline for the whole request header, against slow clients (slowloris).
//!
//! ```toml
//! [servers.web]
//! header_timeout = "10s"   # the complete header must arrive within this
//! body_timeout = "30s"     # max wait between two reads of the request body
//! ```
//!
//! Pingora's own header timeout applies to each `read()`, so a client that sends one byte at
//! a time just under it holds a connection forever. [`Guarded`] wraps the proxy app: each
//! request starts a clock, the proxy stops it as soon as the header is parsed
//! (`early_request_filter` calls [`header_done`]), and a watchdog drops the connection when
//! the clock runs out first. The clock lives in a task-local, so no lock and no map of
//! connections are involved. The wait for the next request on a keep-alive connection is
//! bounded by the same deadline (and by `keepalive_timeout`, whichever is shorter).

use async_trait::async_trait;
use pingora::apps::{HttpServerApp, HttpServerOptions, ReusedHttpStream};
use pingora::protocols::http::ServerSession;
use pingora::proxy::HttpProxy;
use pingora::server::ShutdownWatch;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

tokio::task_local! {
    static HEADER_DONE: Arc<AtomicBool>;
}

/// Called by the proxy once the request header is complete.
pub fn header_done() {
    let _ = HEADER_DONE.try_with(|d| d.store(true, Ordering::Relaxed));
}

/// The proxy app with a header deadline around each request.
pub struct Guarded<P> {
    pub inner: Arc<HttpProxy<P>>,
    pub header_timeout: Duration,
}

#[async_trait]
impl<P> HttpServerApp for Guarded<P>
where
    P: pingora::proxy::ProxyHttp + Send + Sync + 'static,
    P::CTX: Send + Sync,
{
    async fn process_new_http(
        self: &Arc<Self>,
        session: ServerSession,
        shutdown: &ShutdownWatch,
    ) -> Option<ReusedHttpStream> {
        let done = Arc::new(AtomicBool::new(false));
        let work = HEADER_DONE.scope(done.clone(), self.inner.process_new_http(session, shutdown));
        tokio::pin!(work);
        tokio::select! {
            r = &mut work => r,
            _ = tokio::time::sleep(self.header_timeout) => {
                if done.load(Ordering::Relaxed) {
                    // the header came in time: the request runs to its end
                    work.await
                } else {
                    tracing::debug!("request header not complete within {:?}; closing", self.header_timeout);
                    None
                }
            }
        }
    }

    fn h2_options(&self) -> Option<pingora::protocols::http::v2::server::H2Options> {
        self.inner.h2_options()
    }

    fn server_options(&self) -> Option<&HttpServerOptions> {
        self.inner.server_options()
    }

    async fn http_cleanup(&self) {
        self.inner.http_cleanup().await
    }
}
