//! Process logging (not the access log): `tracing` to stderr, filtered by `TIDEGATE_LOG` or
//! `[basic] log_level`. Pingora's `log` records are captured too.

pub fn init(level: &str) {
    let filter = std::env::var("TIDEGATE_LOG")
        .ok()
        .and_then(|f| tracing_subscriber::EnvFilter::try_new(f).ok())
        .or_else(|| tracing_subscriber::EnvFilter::try_new(level).ok())
        .unwrap_or_else(|| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}
