//! ACME test peers: a real Pebble (Debian's `pebble`) whose HTTP-01 validation connects to
//! tidegate's plain listener, resolving names through a dnsmasq started here that answers
//! `*.acme.test` with 127.0.0.1 and forwards nothing.

use super::tls::TestCa;
use super::{free_port, wait_until, KillOnDrop, WAIT};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

pub const LONG: Duration = Duration::from_secs(90);

/// A free UDP port on 127.0.0.1.
pub fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .expect("udp port")
}

/// dnsmasq answering `*.acme.test` (and `acme.test`) with 127.0.0.1; no upstream servers.
pub fn dnsmasq(dir: &Path) -> (KillOnDrop, u16) {
    let port = free_udp_port();
    let child = Command::new("dnsmasq")
        .arg("--keep-in-foreground")
        .arg(format!("--port={port}"))
        .args([
            "--listen-address=127.0.0.1",
            "--bind-interfaces",
            "--no-resolv",
            "--no-hosts",
            "--no-poll",
            "--address=/acme.test/127.0.0.1",
            "--user=root",
            "--pid-file=",
            "--log-facility=-",
        ])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("dnsmasq.log")).unwrap())
        .spawn()
        .expect("dnsmasq (apt install dnsmasq)");
    let log = dir.join("dnsmasq.log");
    assert!(
        wait_until(WAIT, || std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("started")),
        "dnsmasq did not start"
    );
    (KillOnDrop(child), port)
}

pub struct Pebble {
    _child: KillOnDrop,
    pub directory: String,
    pub mgmt: u16,
    /// the CA of Pebble's HTTPS certificate, as a file
    pub ca_file: PathBuf,
    log: PathBuf,
}

impl Pebble {
    /// Pebble validating HTTP-01 on `http_port`, resolving through `dns_port`, issuing
    /// certificates valid for `validity_s` seconds.
    pub fn start(dir: &Path, http_port: u16, dns_port: u16, validity_s: u64) -> Pebble {
        let ca = TestCa::new("pebble https CA");
        let https = ca.issue(&["localhost", "127.0.0.1"], 2, 1);
        std::fs::write(dir.join("pebble.pem"), &https.cert_pem).unwrap();
        std::fs::write(dir.join("pebble.key"), &https.key_pem).unwrap();
        let ca_file = dir.join("pebble-ca.pem");
        std::fs::write(&ca_file, &ca.pem).unwrap();
        let (listen, mgmt, tls) = (free_port(), free_port(), free_port());
        let config = format!(
            r#"{{"pebble": {{"listenAddress": "127.0.0.1:{listen}", "managementListenAddress": "127.0.0.1:{mgmt}",
            "certificate": "{}", "privateKey": "{}", "httpPort": {http_port}, "tlsPort": {tls},
            "ocspResponderURL": "", "externalAccountBindingRequired": false,
            "certificateValidityPeriod": {validity_s}}}}}"#,
            dir.join("pebble.pem").display(),
            dir.join("pebble.key").display()
        );
        std::fs::write(dir.join("pebble.json"), config).unwrap();
        let log = dir.join("pebble.log");
        let child = Command::new("pebble")
            .arg("-config")
            .arg(dir.join("pebble.json"))
            .arg("-dnsserver")
            .arg(format!("127.0.0.1:{dns_port}"))
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            .env("PEBBLE_AUTHZREUSE", "0")
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(Stdio::null())
            .spawn()
            .expect("pebble (apt install pebble)");
        let child = KillOnDrop(child);
        assert!(
            wait_until(WAIT, || std::net::TcpStream::connect(("127.0.0.1", listen))
                .is_ok()
                && std::net::TcpStream::connect(("127.0.0.1", mgmt)).is_ok()),
            "pebble did not start"
        );
        Pebble {
            _child: child,
            directory: format!("https://127.0.0.1:{listen}/dir"),
            mgmt,
            ca_file,
            log,
        }
    }

    /// Pebble's root CA (new at each start), fetched from its management interface.
    pub fn root(&self, dir: &Path) -> PathBuf {
        let out = Command::new("curl")
            .args(["-sS", "--max-time", "10", "--cacert"])
            .arg(&self.ca_file)
            .arg(format!("https://127.0.0.1:{}/roots/0", self.mgmt))
            .output()
            .expect("curl");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let path = dir.join("pebble-root.pem");
        std::fs::write(&path, &out.stdout).unwrap();
        path
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// A plain listener on `http` (Pebble's validation target) and a TLS one on `https`, with
/// one ACME certificate for `domains`; `storage` is the `[storage]` table's body.
pub fn acme_config(
    http: u16,
    https: u16,
    origin: u16,
    pebble: &Pebble,
    storage: &str,
    domains: &[&str],
) -> String {
    let domains = domains
        .iter()
        .map(|d| format!("\"{d}\""))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        r#"
[basic]
threads = 2
grace_period = "1s"
graceful_shutdown_timeout = "1s"

[storage]
{storage}

[servers.plain]
addr = "127.0.0.1:{http}"
locations = ["all"]

[servers.secure]
addr = "127.0.0.1:{https}"
locations = ["all"]
tls = true

[locations.all]
upstream = "backend"

[upstreams.backend]
addrs = ["127.0.0.1:{origin}"]

[certificates.site]
domains = [{domains}]
acme = {{ directory = "{}", email = "ops@acme.test", ca_file = "{}" }}
"#,
        pebble.directory,
        pebble.ca_file.display()
    )
}

/// `[storage]` with a directory.
pub fn dir_storage(dir: &Path) -> String {
    format!("dir = \"{}\"", dir.display())
}
