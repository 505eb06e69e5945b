//! ACME test peers: a real Pebble (Debian's `pebble`) whose HTTP-01 validation connects to
//! tidegate's plain listener, resolving names through a dnsmasq started here that answers
//! `*.acme.test` with 127.0.0.1 and forwards nothing.

use super::tls::TestCa;
use super::{free_port, wait_until, KillOnDrop, WAIT};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

pub const LONG: Duration = Duration::from_secs(90);

/// dnsmasq answering `*.acme.test` (and `acme.test`) with 127.0.0.1; no upstream servers. Its
/// port is taken like every test port (no other test of this process gets it) and must be
/// free for UDP too; a dnsmasq that cannot bind is tried again on another port.
pub fn dnsmasq(dir: &Path) -> (KillOnDrop, u16) {
    let log = dir.join("dnsmasq.log");
    for _ in 0..5 {
        let port = free_port();
        if std::net::UdpSocket::bind(("127.0.0.1", port)).is_err() {
            continue;
        }
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
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("dnsmasq (apt install dnsmasq)");
        let mut child = KillOnDrop(child);
        let mut exited = false;
        let started = wait_until(WAIT, || {
            exited = child.0.try_wait().is_ok_and(|s| s.is_some());
            exited
                || std::fs::read_to_string(&log)
                    .unwrap_or_default()
                    .contains("started")
        });
        if started && !exited {
            return (child, port);
        }
    }
    panic!(
        "dnsmasq did not start: {}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
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

    /// Stop the CA (a renewal then fails).
    pub fn stop(&mut self) {
        let _ = self._child.0.kill();
        let _ = self._child.0.wait();
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

/// One tidegate with an ACME certificate for `names` (`[storage]` in `storage/` of the temp
/// dir), its Pebble (certificates valid `validity_s`) and dnsmasq, all on fresh ports; the
/// origin answers `body`.
pub struct Single {
    pub t: super::Tidegate,
    pub pebble: Pebble,
    pub origin: super::Origin,
    pub http: u16,
    pub https: u16,
    pub storage: PathBuf,
    _dns: KillOnDrop,
    pub dir: tempfile::TempDir,
}

pub fn single(names: &[&str], validity_s: u64, body: &'static str) -> Single {
    let dir = tempfile::tempdir().expect("tempdir");
    let (dns, dns_port) = dnsmasq(dir.path());
    let (http, https) = (free_port(), free_port());
    let pebble = Pebble::start(dir.path(), http, dns_port, validity_s);
    let origin = super::Origin::named(body);
    let storage = dir.path().join("storage");
    let config = acme_config(
        http,
        https,
        origin.port(),
        &pebble,
        &dir_storage(&storage),
        names,
    );
    let t = super::Tidegate::start(&config, &[http, https]);
    Single {
        t,
        pebble,
        origin,
        http,
        https,
        storage,
        _dns: dns,
        dir,
    }
}

/// Two instances, A and B, whose `[storage]` bodies `storage(i)` gives (0 for A), for one
/// ACME name; Pebble validates against A's plain port only, so whichever orders, A must
/// answer the challenge. Waits until both serve a certificate for `name`, then checks that
/// it is the same one and that it was ordered once between them.
pub struct Pair {
    pub a: super::Tidegate,
    pub b: super::Tidegate,
    pub http: [u16; 2],
    pub pebble: Pebble,
    _origin: super::Origin,
    _dns: KillOnDrop,
}

pub fn pair_ordering_once(dir: &Path, name: &str, storage: impl Fn(usize) -> String) -> Pair {
    let (dns, dns_port) = dnsmasq(dir);
    let http = [free_port(), free_port()];
    let https = [free_port(), free_port()];
    let pebble = Pebble::start(dir, http[0], dns_port, 3600);
    let origin = super::Origin::named("o");
    let start = |i: usize| {
        let config = acme_config(
            http[i],
            https[i],
            origin.port(),
            &pebble,
            &storage(i),
            &[name],
        );
        super::Tidegate::start(&config, &[http[i], https[i]])
    };
    let (a, b) = (start(0), start(1));
    let c = super::tls::Client::new();
    let served = wait_until(LONG, || {
        https
            .iter()
            .all(|p| c.served_serial(*p, Some(name)).is_ok())
    });
    assert!(
        served,
        "A:\n{}\nB:\n{}\npebble:\n{}",
        a.stderr(),
        b.stderr(),
        pebble.log()
    );
    let sa = c.served_serial(https[0], Some(name)).unwrap();
    let sb = c.served_serial(https[1], Some(name)).unwrap();
    assert_eq!(sa, sb, "both serve the one certificate");
    let orders =
        a.stderr().matches("ACME: ordering").count() + b.stderr().matches("ACME: ordering").count();
    assert_eq!(orders, 1, "A:\n{}\nB:\n{}", a.stderr(), b.stderr());
    Pair {
        a,
        b,
        http,
        pebble,
        _origin: origin,
        _dns: dns,
    }
}
