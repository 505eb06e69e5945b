//! The background service: work that is not a request, run in Pingora's runtime for it
//! (so it survives daemonizing): active health checks.

use crate::state::Live;
use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;

pub struct Background {
    pub live: Live,
}

#[async_trait]
impl BackgroundService for Background {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        crate::upstream::health::spawn_all(&self.live.load().upstreams);
        let _ = shutdown.changed().await;
    }
}
