//! Process logging (not the access log): `tracing` to stderr, or to `[basic] error_log` when
//! set (appended; in the foreground and with `-d` alike), filtered by `TIDEGATE_LOG` or
//! `[basic] log_level`. Pingora's `log` records are captured too.
//!
//! ```toml
//! [basic]
//! log_level = "info"
//! error_log = "/var/log/tidegate/error.log"
//! ```

use std::io::Write;
use std::sync::{Arc, Mutex};

/// An appending log file shared by every thread's log lines.
#[derive(Clone)]
struct File(Arc<Mutex<std::fs::File>>);

impl Write for File {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).flush()
    }
}

/// Start logging; `Err` names an `error_log` that cannot be opened.
pub fn init(level: &str, error_log: Option<&str>) -> Result<(), String> {
    let filter = std::env::var("TIDEGATE_LOG")
        .ok()
        .and_then(|f| tracing_subscriber::EnvFilter::try_new(f).ok())
        .or_else(|| tracing_subscriber::EnvFilter::try_new(level).ok())
        .unwrap_or_else(|| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match error_log {
        Some(path) => {
            if let Some(dir) = std::path::Path::new(path).parent() {
                if !dir.as_os_str().is_empty() {
                    let _ = std::fs::create_dir_all(dir);
                }
            }
            let f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| format!("cannot open error_log `{path}`: {e}"))?;
            let file = File(Arc::new(Mutex::new(f)));
            let _ = builder
                .with_writer(move || file.clone())
                .with_ansi(false)
                .try_init();
        }
        None => {
            let _ = builder
                .with_writer(std::io::stderr)
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
                .try_init();
        }
    }
    Ok(())
}
