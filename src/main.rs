//! tidegate's entry point: command line → config → server → run.

use clap::Parser;
use std::process::ExitCode;
use tidegate::cli::{Cli, Command};
use tidegate::config::source::Source;
use tidegate::{config, server};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let source = Source::from_arg(cli.config_path().as_deref());

    // 1. load and validate the config (`check` stops here)
    let loaded = config::load(&source);
    if let Some(Command::Check) = cli.command {
        return match loaded {
            Ok(_) => {
                println!("ok");
                ExitCode::SUCCESS
            }
            Err(e) => {
                println!("{e}");
                ExitCode::FAILURE
            }
        };
    }
    let (config, docs) = match loaded {
        Ok(c) => c,
        Err(e) => {
            eprintln!("tidegate: {e}");
            return ExitCode::FAILURE;
        }
    };

    // 2. logging, with TIDEGATE_LOG over [basic] log_level
    tidegate::logging::init(&config.basic.log_level);
    tracing::info!(
        config = %source.describe(),
        version = env!("CARGO_PKG_VERSION"),
        "starting tidegate"
    );

    // 3. build the Pingora server and run until a signal
    let opts = server::RunOptions {
        daemon: cli.daemon,
        upgrade: cli.upgrade,
        pid_file: cli.pid_file,
    };
    match server::run(config, docs, source, opts) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("tidegate: {e}");
            ExitCode::FAILURE
        }
    }
}
