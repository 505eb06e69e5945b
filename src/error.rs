//! Typed errors, and the one place where a proxy failure becomes an HTTP status.
//!
//! Configuration problems are collected as [`ConfigError`]s, each naming the file, the table,
//! the key and the line, so `tidegate check` can print all of them at once. Request-time
//! failures are Pingora errors; [`status_for`] classifies them exactly once.

use pingora::{Error as PError, ErrorSource, ErrorType};
use std::fmt;

/// One problem found in the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// File the problem is in (or the config source, e.g. `<embedded>`).
    pub file: String,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// Dotted table name, such as `servers.web`.
    pub table: String,
    /// Key inside the table, when the problem is about one key.
    pub key: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if !self.table.is_empty() {
            write!(f, ": [{}]", self.table)?;
        }
        if let Some(key) = &self.key {
            write!(f, " {key}")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for ConfigError {}

/// All the problems found in one load of the configuration.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{} configuration error(s):\n{}", .0.len(), render(.0))]
pub struct ConfigErrors(pub Vec<ConfigError>);

fn render(errors: &[ConfigError]) -> String {
    errors
        .iter()
        .map(|e| format!("  {e}").replace('\n', "\n      "))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Failures outside the request path: start-up, files, listeners.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] ConfigErrors),
    #[error("cannot read {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("listener {addr} for server `{server}` cannot bind: {source}")]
    Bind {
        server: String,
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Etcd(String),
    #[error("{0}")]
    Other(String),
}

/// The HTTP status a failed request gets. This is the only place that decides it.
///
/// - upstream connect failures (refused, unreachable, TLS handshake) → 502
/// - upstream read or write timeouts → 504
/// - an explicit `HTTPStatus(code)` raised by our own code (413, 431, ...) → that code
/// - a malformed request → 400; a client that timed out → 408
/// - anything internal → 500
pub fn status_for(e: &PError) -> u16 {
    use ErrorType::*;
    match e.etype() {
        HTTPStatus(code) => *code,
        ConnectTimedout | ConnectRefused | ConnectNoRoute | ConnectError | ConnectProxyFailure
        | TLSHandshakeFailure | TLSHandshakeTimedout | InvalidCert | HandshakeError => 502,
        ReadTimedout | WriteTimedout if e.esource() == &ErrorSource::Upstream => 504,
        ReadTimedout if e.esource() == &ErrorSource::Downstream => 408,
        InvalidHTTPHeader if e.esource() == &ErrorSource::Downstream => 400,
        _ => match e.esource() {
            ErrorSource::Upstream => 502,
            ErrorSource::Downstream => match e.etype() {
                // the client is gone: nothing can be written back
                WriteError | ReadError | ConnectionClosed => 0,
                _ => 400,
            },
            ErrorSource::Internal | ErrorSource::Unset => 500,
        },
    }
}

/// Build a Pingora error that [`status_for`] maps to `code`.
pub fn http_status(code: u16) -> Box<PError> {
    PError::new(ErrorType::HTTPStatus(code))
}
