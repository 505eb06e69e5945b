//! The floor tidegate builds on: a bare Pingora forwarder with no routing, no plugins and no
//! logging, used by `scripts/bench.sh` as the `pingora` target.
//!
//! ```sh
//! cargo run --release --example bare_pingora -- 127.0.0.1:7001 127.0.0.1:8080 1
//! #                                              listen         upstream       threads
//! ```

use async_trait::async_trait;
use pingora::prelude::*;
use pingora::server::configuration::{Opt, ServerConf};

struct Forward {
    upstream: std::net::SocketAddr,
}

#[async_trait]
impl ProxyHttp for Forward {
    type CTX = ();

    fn new_ctx(&self) {}

    async fn upstream_peer(&self, _session: &mut Session, _ctx: &mut ()) -> Result<Box<HttpPeer>> {
        Ok(Box::new(HttpPeer::new(self.upstream, false, String::new())))
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: bare_pingora LISTEN UPSTREAM [THREADS]";
    let listen = args.get(1).expect(usage).clone();
    let upstream = args.get(2).and_then(|a| a.parse().ok()).expect(usage);
    let threads = args.get(3).and_then(|t| t.parse().ok()).unwrap_or(1);
    let pid = std::process::id();
    let conf = ServerConf {
        threads,
        pid_file: format!("/tmp/bare-pingora-{pid}.pid"),
        upgrade_sock: format!("/tmp/bare-pingora-{pid}.sock"),
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(Opt::default(), conf);
    server.bootstrap();
    let mut svc = pingora::proxy::http_proxy_service(&server.configuration, Forward { upstream });
    svc.add_tcp(&listen);
    server.add_service(svc);
    server.run_forever();
}
