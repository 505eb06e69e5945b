//! The command line, as SPEC §1 defines it.
//!
//! ```text
//! tidegate                       run conf/tidegate.toml if it exists, else the embedded demo
//! tidegate -c PATH | run -c PATH run with a file or a directory of *.toml
//! tidegate check -c PATH         validate; print `ok` or every error; exit 0 or 1
//! tidegate explain -c PATH METHOD URL [-H 'Name: value']... [--client-ip IP] [--json]
//!                                what would happen to a request, with no traffic
//! tidegate test [-c PATH] [FILE|DIR]... [--junit FILE]
//!                                run *_test.lua files offline; exit 1 on a failure
//! tidegate -d --pid-file P       daemonize, write the pid there
//! tidegate --upgrade             take the listeners of the running process
//! ```
//!
//! Environment: `TIDEGATE_CONFIG` (same as -c), `TIDEGATE_LOG` (log filter, overrides
//! `[basic] log_level`), `TIDEGATE_LISTEN` (the embedded demo's address instead of
//! 127.0.0.1:6188).

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "tidegate",
    version,
    about = "A reverse proxy on Pingora, configured with TOML"
)]
pub struct Cli {
    /// Config: a TOML file or a directory whose *.toml files are merged
    #[arg(
        short = 'c',
        long = "config",
        env = "TIDEGATE_CONFIG",
        global = true,
        value_name = "PATH"
    )]
    pub config: Option<String>,

    /// Run in the background
    #[arg(short = 'd', long, global = true)]
    pub daemon: bool,

    /// Where to write the pid (default: a per-process file in the temp dir)
    #[arg(long, global = true, value_name = "FILE")]
    pub pid_file: Option<String>,

    /// Zero-downtime upgrade: take the listening sockets of the running process
    #[arg(long, global = true)]
    pub upgrade: bool,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the proxy (the default)
    Run,
    /// Parse and validate the config; print `ok` or every error
    Check,
    /// Show what tidegate would do with a request: locations considered, the winner, the
    /// rewrite, the plugin chain, the upstream and first peer, the headers sent upstream
    Explain {
        /// e.g. GET
        method: String,
        /// an absolute URL, e.g. http://api.example.com/v1/items?x=1
        url: String,
        /// a request header, `Name: value` (repeat for more)
        #[arg(short = 'H', long = "header", value_name = "HEADER")]
        headers: Vec<String>,
        /// the client's address (default 127.0.0.1), for `trusted_proxies` and IP rules
        #[arg(long, value_name = "IP")]
        client_ip: Option<String>,
        /// the server to ask (default: the one on the URL's port, else the first)
        #[arg(long, value_name = "NAME")]
        server: Option<String>,
        /// print JSON instead of text
        #[arg(long)]
        json: bool,
    },
    /// Run *_test.lua files offline through the real plugin engine (docs/testing-scripts.md)
    Test {
        /// test files, or folders searched for *_test.lua (default: the folders of the
        /// config's scripts, and lua/)
        paths: Vec<std::path::PathBuf>,
        /// also write the results as JUnit XML here
        #[arg(long, value_name = "FILE")]
        junit: Option<std::path::PathBuf>,
    },
}

/// The default config file, used when it exists and no -c is given.
pub const DEFAULT_CONFIG: &str = "conf/tidegate.toml";

impl Cli {
    /// The config to load; `None` means the embedded default.
    pub fn config_path(&self) -> Option<String> {
        self.config.clone().or_else(|| {
            std::path::Path::new(DEFAULT_CONFIG)
                .exists()
                .then(|| DEFAULT_CONFIG.to_string())
        })
    }
}
