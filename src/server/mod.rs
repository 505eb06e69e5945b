//! Build Pingora's server from a config: one proxy service per `[servers.NAME]`, its
//! listeners, h2c when `http2 = true`, and the background service. Then run until a signal.

pub mod background;
pub mod deadline;
pub mod signals;

use crate::config::source::Source;
use crate::config::Config;
use crate::engine::pingora_adapter::Proxy;
use crate::error::StartError;
use crate::reload::Reloader;
use crate::state::{Live, State};
use arc_swap::ArcSwap;
use pingora::apps::HttpServerOptions;
use pingora::server::configuration::{Opt, ServerConf};
use pingora::server::{RunArgs, Server};
use std::sync::Arc;

/// Process options from the command line.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    pub daemon: bool,
    pub upgrade: bool,
    pub pid_file: Option<String>,
}

fn server_conf(config: &Config, opts: &RunOptions) -> ServerConf {
    let b = &config.basic;
    let mut conf = ServerConf {
        threads: b.threads,
        daemon: opts.daemon,
        work_stealing: b.work_stealing,
        grace_period_seconds: Some(b.grace_period.as_secs()),
        graceful_shutdown_timeout_seconds: Some(b.graceful_shutdown_timeout.as_secs()),
        upstream_keepalive_pool_size: b.upstream_keepalive_pool_size,
        error_log: b.error_log.clone(),
        ..ServerConf::default()
    };
    // not Pingora's fixed /tmp/pingora.pid: a pid file per process unless one is given, so
    // two instances on one machine never share it
    let pid = std::process::id();
    conf.pid_file = opts
        .pid_file
        .clone()
        .or_else(|| b.pid_file.clone())
        .unwrap_or_else(|| {
            std::env::temp_dir()
                .join(format!("tidegate-{pid}.pid"))
                .display()
                .to_string()
        });
    // the upgrade socket is how an old and a new process meet, so it cannot be per process:
    // one name in the temp dir by default; give each instance its own with `upgrade_sock`
    conf.upgrade_sock = b.upgrade_sock.clone().unwrap_or_else(|| {
        std::env::temp_dir()
            .join("tidegate-upgrade.sock")
            .display()
            .to_string()
    });
    conf
}

/// Try each listener's address before handing them to Pingora, to report a taken port
/// clearly. The address is bound but never listened on: a client connecting at that moment
/// (a readiness probe) must not be queued on a socket about to close, which resets it.
fn precheck_listeners(config: &Config) -> Result<(), StartError> {
    for s in &config.servers {
        for a in &s.addrs {
            let taken = |source| StartError::Bind {
                server: s.name.clone(),
                addr: a.to_string(),
                source,
            };
            let socket = if a.is_ipv4() {
                tokio::net::TcpSocket::new_v4()
            } else {
                tokio::net::TcpSocket::new_v6()
            }
            .map_err(taken)?;
            // as the listener itself will be (a port left in TIME_WAIT is not taken)
            socket.set_reuseaddr(true).map_err(taken)?;
            socket.bind(*a).map_err(taken)?;
        }
    }
    Ok(())
}

/// Build everything and serve until shut down.
pub fn run(
    config: Config,
    docs: Vec<crate::config::SourceDoc>,
    source: Source,
    opts: RunOptions,
) -> Result<(), StartError> {
    // the `stats` plugin's uptime counts from here
    let _ = crate::plugins::stats::started();
    if !opts.upgrade {
        precheck_listeners(&config)?;
    }
    let conf = server_conf(&config, &opts);
    let opt = Opt {
        upgrade: opts.upgrade,
        daemon: opts.daemon,
        ..Opt::default()
    };
    // Pingora writes the pid file only when it daemonizes; one given explicitly is written in
    // the foreground too (`kill -QUIT $(cat FILE)` for an upgrade)
    if !opts.daemon && (opts.pid_file.is_some() || config.basic.pid_file.is_some()) {
        std::fs::write(&conf.pid_file, format!("{}\n", std::process::id())).map_err(|source| {
            StartError::Io {
                path: conf.pid_file.clone(),
                source,
            }
        })?;
    }
    let mut server = Server::new_with_opt_and_conf(opt, conf);
    server.bootstrap();

    let servers = config.servers.clone();
    let threads = config.basic.threads;
    let (grace_period, graceful_shutdown_timeout) = (
        config.basic.grace_period,
        config.basic.graceful_shutdown_timeout,
    );
    // the histograms' buckets are fixed for the life of the process
    crate::observability::metrics::families::set_buckets(config.basic.metrics_buckets.clone());
    let pushes: Vec<_> = config
        .servers
        .iter()
        .filter_map(|s| match &s.metrics {
            Some(crate::observability::metrics::MetricsTarget::Push(p)) => Some(p.clone()),
            _ => None,
        })
        .collect();
    let admin = config.admin.clone();
    let live: Live = Arc::new(ArcSwap::from_pointee(State::build(config)?));
    let f = crate::observability::metrics::families();
    f.last_reload.set(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0),
    );
    crate::observability::metrics::live::register(live.clone());
    let applied = docs.into_iter().map(|d| (d.name, d.text)).collect();
    let reloader = Arc::new(Reloader::new(live.clone(), source, threads, applied));
    for (i, s) in servers.iter().enumerate() {
        let proxy = || Proxy {
            live: live.clone(),
            server: i,
        };
        // HTTP/1 connections go to one app, h2c ones (told apart by deadline.rs, which reads
        // the first bytes) to one with Pingora's h2c on
        let inner_h2 = s.http2.then(|| {
            let mut app = pingora::proxy::http_proxy(&server.configuration, proxy());
            let mut o = HttpServerOptions::default();
            o.h2c = true;
            app.server_options = Some(o);
            Arc::new(app)
        });
        let guarded = deadline::Guarded {
            inner: Arc::new(pingora::proxy::http_proxy(&server.configuration, proxy())),
            inner_h2,
            header_timeout: s.header_timeout,
            live: live.clone(),
            server: i,
        };
        let mut svc = pingora::services::listening::Service::new(
            format!("tidegate server {}", s.name),
            guarded,
        );
        for a in &s.addrs {
            svc.add_tcp(&a.to_string());
        }
        tracing::info!(server = %s.name, addrs = ?s.addrs, http2 = s.http2, "listening");
        server.add_service(svc);
    }
    if let Some(a) = admin {
        // the admin API (`src/admin/`); its address changes with an upgrade, its token with
        // any reload
        let app = pingora::apps::http_app::HttpServer::new_app(crate::admin::AdminApp {
            live: live.clone(),
            reloader: reloader.clone(),
            sessions: Default::default(),
        });
        let mut svc = pingora::services::listening::Service::new("tidegate admin".to_string(), app);
        match crate::admin::tls::settings(&live) {
            Some(tls) => svc.add_tls_with_settings(&a.addr.to_string(), None, tls),
            None => svc.add_tcp(&a.addr.to_string()),
        }
        tracing::info!(addr = %a.addr, token = a.token.is_some(), tls = a.tls, "admin API listening");
        server.add_service(svc);
    }
    server.add_service(pingora::services::background::background_service(
        "tidegate background",
        background::Background {
            live,
            reloader,
            pushes,
        },
    ));
    server.run(RunArgs {
        shutdown_signal: Box::new(signals::Signals {
            fast_within: graceful_shutdown_timeout + std::time::Duration::from_secs(2),
            // Pingora's 5 s hand-over window, the grace period, then the runtimes' stop
            graceful_within: std::time::Duration::from_secs(5)
                + grace_period
                + graceful_shutdown_timeout
                + std::time::Duration::from_secs(5),
        }),
    });
    Ok(())
}
