//! Process signals, as SPEC §1 defines them:
//!
//! - `SIGQUIT`: graceful shutdown. Listening sockets go to a new process waiting on the
//!   upgrade socket, if any (zero-downtime upgrade); in-flight requests finish within
//!   `grace_period`.
//! - `SIGTERM`, `SIGINT`: fast shutdown.
//!
//! (Pingora's own default treats SIGTERM as graceful; we follow the SPEC.)

use async_trait::async_trait;
use pingora::server::{ShutdownSignal, ShutdownSignalWatch};
use tokio::signal::unix::{signal, SignalKind};

pub struct Signals;

#[async_trait]
impl ShutdownSignalWatch for Signals {
    async fn recv(&self) -> ShutdownSignal {
        let (Ok(mut quit), Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::quit()),
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            tracing::error!("cannot install signal handlers; shutting down");
            return ShutdownSignal::FastShutdown;
        };
        tokio::select! {
            _ = quit.recv() => ShutdownSignal::GracefulUpgrade,
            _ = term.recv() => ShutdownSignal::FastShutdown,
            _ = int.recv() => ShutdownSignal::FastShutdown,
        }
    }
}
