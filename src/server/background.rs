//! The background service: work that is not a request, run in Pingora's runtime for it
//! (so it survives daemonizing): active health checks, ACME orders, metrics pushes, SIGHUP
//! (reload), SIGUSR1 (reopen the access logs), and the config file watch.

use crate::config::source::Source;
use crate::reload::Reloader;
use crate::state::Live;
use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use std::sync::Arc;
use tokio::signal::unix::{signal, SignalKind};

pub struct Background {
    pub live: Live,
    pub reloader: Arc<Reloader>,
    /// Pushgateway targets of the config at start (a change applies after an upgrade)
    pub pushes: Vec<crate::observability::metrics::push::PushTarget>,
}

#[async_trait]
impl BackgroundService for Background {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        self.reloader.set_runtime(tokio::runtime::Handle::current());
        crate::upstream::health::spawn_all(&self.live.load().upstreams);
        crate::upstream::discovery::spawn_all(&self.live.load().upstreams);
        // traces: the exporter's I/O runs on this runtime
        if let Some(c) = self.live.load().config.basic.otlp.clone() {
            if let Err(e) = crate::observability::otel::start(&c) {
                tracing::error!("{e}; traces are not exported");
            }
        }
        for p in &self.pushes {
            tracing::info!(url = %p.url, interval = ?p.interval, "pushing metrics");
            tokio::spawn(crate::observability::metrics::push::run(p.clone()));
        }
        // ACME orders and renewals (idle when no certificate has `acme`)
        tokio::spawn(crate::tls::acme::manager::run(
            self.live.clone(),
            self.reloader.clone(),
            shutdown.clone(),
        ));

        // the watcher stops when dropped: keep it as long as this service runs
        let watch = self.live.load().config.basic.watch;
        let _watcher = match self.reloader.source() {
            Source::Path(p) if watch => {
                match crate::config::watch::watch(std::path::Path::new(p), self.reloader.clone()) {
                    Ok(w) => Some(w),
                    Err(e) => {
                        tracing::error!("cannot watch {p} for changes ({e}); SIGHUP still reloads");
                        None
                    }
                }
            }
            Source::Etcd(e) => {
                tokio::spawn(e.clone().watch(self.reloader.clone()));
                None
            }
            _ => None,
        };

        let mut usr1 = match signal(SignalKind::user_defined1()) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::error!("cannot listen for SIGUSR1 (access log reopen): {e}");
                None
            }
        };
        let mut hup = match signal(SignalKind::hangup()) {
            Ok(s) => {
                tracing::info!(
                    watch,
                    "reload triggers ready: SIGHUP reloads the configuration"
                );
                Some(s)
            }
            Err(e) => {
                tracing::error!("cannot listen for SIGHUP: {e}");
                None
            }
        };
        loop {
            let next_hup = async {
                match hup.as_mut() {
                    Some(h) => h.recv().await,
                    None => std::future::pending().await,
                }
            };
            let next_usr1 = async {
                match usr1.as_mut() {
                    Some(s) => s.recv().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = shutdown.changed() => return,
                Some(()) = next_usr1 => {
                    // opening files: off the runtime threads
                    let _ = tokio::task::spawn_blocking(crate::observability::log_writer::reopen_all).await;
                }
                Some(()) = next_hup => {
                    let reloader = self.reloader.clone();
                    // loading and building read files: keep that off the runtime threads
                    let _ = tokio::task::spawn_blocking(move || reloader.reload("SIGHUP")).await;
                }
            }
        }
    }
}
