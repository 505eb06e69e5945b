//! Process signals, as SPEC §1 defines them:
//!
//! - `SIGQUIT`: graceful shutdown. Listening sockets go to a new process waiting on the
//!   upgrade socket, if any (zero-downtime upgrade); in-flight requests finish within
//!   `grace_period`.
//! - `SIGTERM`, `SIGINT`: fast shutdown.
//!
//! (Pingora's own default treats SIGTERM as graceful; we follow the SPEC.)
//!
//! Whatever the signal, the process exits within a bound: Pingora's shutdown can hang (a fast
//! shutdown that lands while the listeners are starting leaves an accept loop spinning on
//! "runtime is being shut down"), so a watchdog thread ends the process once the shutdown
//! has had its configured time and a little more.

use async_trait::async_trait;
use pingora::server::{ShutdownSignal, ShutdownSignalWatch};
use std::time::Duration;
use tokio::signal::unix::{signal, SignalKind};

pub struct Signals {
    /// how long a fast shutdown may take before the process is ended
    pub fast_within: Duration,
    /// how long a graceful one (SIGQUIT: hand-over window, grace period, runtime stop) may take
    pub graceful_within: Duration,
}

/// End the process if it is still running `after` from now.
fn exit_after(after: Duration, what: &'static str) {
    let _ = std::thread::Builder::new()
        .name("tidegate-exit-watchdog".into())
        .spawn(move || {
            std::thread::sleep(after);
            tracing::warn!("{what} did not finish within {after:?}; exiting");
            std::process::exit(0);
        });
}

#[async_trait]
impl ShutdownSignalWatch for Signals {
    async fn recv(&self) -> ShutdownSignal {
        let s = self.signal().await;
        match s {
            ShutdownSignal::GracefulUpgrade => {
                exit_after(self.graceful_within, "the graceful shutdown")
            }
            _ => exit_after(self.fast_within, "the shutdown"),
        }
        s
    }
}

impl Signals {
    async fn signal(&self) -> ShutdownSignal {
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
