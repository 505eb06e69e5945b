//! tidegate's entry point: command line → config → server → run.

use clap::Parser;
use std::process::ExitCode;
use tidegate::cli::{Cli, Command};
use tidegate::config::source::Source;
use tidegate::{config, server};

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Command::Test { paths, junit }) = &cli.command {
        let code = tidegate::testing::run(tidegate::testing::Options {
            config: cli.config.clone(),
            paths: paths.clone(),
            junit: junit.clone(),
        });
        return ExitCode::from(code as u8);
    }
    let source = match Source::from_arg(cli.config_path().as_deref()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("tidegate: {e}");
            return ExitCode::FAILURE;
        }
    };
    let check = matches!(cli.command, Some(Command::Check | Command::Explain { .. }));

    // 1. load and validate the config (`check` stops here, `explain` after its report)
    tidegate::reload::mark_first_load();
    let loaded = load(&source, check);
    if let Some(Command::Explain {
        method,
        url,
        headers,
        client_ip,
        server,
        json,
    }) = &cli.command
    {
        let asked = tidegate::explain::Asked {
            method: method.clone(),
            url: url.clone(),
            headers: headers.clone(),
            client_ip: client_ip.clone(),
            server: server.clone(),
        };
        return explain(loaded, &asked, *json);
    }
    if check {
        return match loaded {
            Ok((config, _)) => {
                for w in &config.warnings {
                    println!("warning: {w}");
                }
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
    if let Err(e) =
        tidegate::logging::init(&config.basic.log_level, config.basic.error_log.as_deref())
    {
        eprintln!("tidegate: {e}");
        return ExitCode::FAILURE;
    }
    tracing::info!(
        config = %source.describe(),
        version = env!("CARGO_PKG_VERSION"),
        "starting tidegate"
    );
    for w in &config.warnings {
        tracing::warn!("config warning: {w}");
    }

    // a SIGHUP or SIGUSR1 before the background service listens for it (under load that
    // can take a while after the listeners are up) must not end the process, as the default
    // action would: ignored until then
    // SAFETY: setting signals' disposition to SIG_IGN; no handler code runs
    unsafe {
        libc::signal(libc::SIGHUP, libc::SIG_IGN);
        libc::signal(libc::SIGUSR1, libc::SIG_IGN);
    }

    // 3. build the Pingora server and run until a signal
    let opts = server::RunOptions {
        daemon: cli.daemon,
        upgrade: cli.upgrade,
        pid_file: cli.pid_file,
    };
    let ran = server::run(config, docs, source, opts);
    // lines still queued for the access log are written before the process ends
    tidegate::observability::log_writer::flush_all();
    tidegate::observability::otel::shutdown();
    match ran {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("tidegate: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Load the config; when running (not `check`), wait for an unreachable etcd, saying so. A
/// config in etcd that does not validate is waited for too: its keys may still be being
/// written one by one (each error is printed, then tidegate reads the prefix again).
/// `tidegate explain`: the report, or why there is none (exit 1).
fn explain(
    loaded: Result<(config::Config, Vec<config::SourceDoc>), tidegate::error::StartError>,
    asked: &tidegate::explain::Asked,
    json: bool,
) -> ExitCode {
    let config = match loaded {
        Ok((c, _)) => c,
        Err(e) => {
            println!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let state = match tidegate::state::State::build(config) {
        Ok(s) => std::sync::Arc::new(s),
        Err(e) => {
            eprintln!("tidegate: {e}");
            return ExitCode::FAILURE;
        }
    };
    use std::io::Write;
    // written without `println!`: a closed pipe (`| head`) is not a panic
    match tidegate::explain::explain(state, asked) {
        Ok(v) if json => {
            let text = serde_json::to_string_pretty(&v).unwrap_or_default();
            let _ = writeln!(std::io::stdout(), "{text}");
            ExitCode::SUCCESS
        }
        Ok(v) => {
            let _ = write!(std::io::stdout(), "{}", tidegate::explain::text(&v));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("tidegate explain: {e}");
            ExitCode::FAILURE
        }
    }
}

fn load(
    source: &Source,
    check: bool,
) -> Result<(config::Config, Vec<config::SourceDoc>), tidegate::error::StartError> {
    let mut wait = std::time::Duration::from_millis(500);
    loop {
        match config::load(source) {
            Err(tidegate::error::StartError::Etcd(msg)) if !check => {
                eprintln!("tidegate: {msg}; retrying in {wait:?}");
                std::thread::sleep(wait);
                wait = (wait * 2).min(std::time::Duration::from_secs(10));
            }
            Err(tidegate::error::StartError::Config(e))
                if !check && matches!(source, Source::Etcd(_)) =>
            {
                eprintln!(
                    "tidegate: the config in etcd is not valid yet; retrying in {wait:?}\n{e}"
                );
                std::thread::sleep(wait);
                wait = (wait * 2).min(std::time::Duration::from_secs(10));
            }
            other => return other,
        }
    }
}
