//! A real DNS server for discovery tests: Debian's dnsmasq on a loopback high port, answering
//! from a hosts file (re-read on SIGHUP) and SRV records (read at start), forwarding nothing.

use super::{wait_until, KillOnDrop, WAIT};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

pub struct Dnsmasq {
    child: Option<KillOnDrop>,
    pub port: u16,
    dir: PathBuf,
    starts: usize,
}

impl Dnsmasq {
    /// Start answering `hosts` (lines of `IP NAME`) and `srv` (lines of
    /// `_service._proto.name,target,port,priority,weight`), with a TTL of 0 on every answer.
    pub fn start(dir: &Path, hosts: &str, srv: &[&str]) -> Dnsmasq {
        let mut d = Dnsmasq {
            child: None,
            port: 0,
            dir: dir.to_path_buf(),
            starts: 0,
        };
        d.set_hosts(hosts);
        // dnsmasq binds UDP and TCP on its port: take one no other test of this process gets
        // (free_port) and that is free for UDP too; another one if dnsmasq still cannot bind
        let mut why = String::new();
        for _ in 0..5 {
            d.port = super::free_port();
            if std::net::UdpSocket::bind(("127.0.0.1", d.port)).is_err() {
                continue;
            }
            match d.spawn(srv) {
                Ok(()) => return d,
                Err(e) => why = e,
            }
        }
        panic!("dnsmasq did not start: {why}");
    }

    fn log(&self) -> PathBuf {
        self.dir.join(format!("dnsmasq-{}.log", self.starts))
    }

    fn spawn(&mut self, srv: &[&str]) -> Result<(), String> {
        self.starts += 1;
        let mut cmd = Command::new("dnsmasq");
        cmd.arg("--keep-in-foreground")
            .arg(format!("--port={}", self.port))
            .arg(format!("--addn-hosts={}", self.dir.join("hosts").display()))
            .args([
                "--listen-address=127.0.0.1",
                "--bind-interfaces",
                "--no-resolv",
                "--no-hosts",
                "--no-poll",
                "--local-ttl=0",
                // names under .test are all here: a missing record is "no such", never forwarded
                "--local=/test/",
                "--user=root",
                "--pid-file=",
                "--log-facility=-",
                "--log-queries",
            ]);
        for s in srv {
            cmd.arg(format!("--srv-host={s}"));
        }
        let child = cmd
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(self.log()).expect("dnsmasq log"))
            .spawn()
            .expect("dnsmasq (apt install dnsmasq-base)");
        self.child = Some(KillOnDrop(child));
        let log = self.log();
        let mut exited = false;
        let started = wait_until(WAIT, || {
            if let Some(c) = self.child.as_mut() {
                exited = c.0.try_wait().is_ok_and(|s| s.is_some());
            }
            exited
                || std::fs::read_to_string(&log)
                    .unwrap_or_default()
                    .contains("started")
        });
        if started && !exited {
            Ok(())
        } else {
            self.child = None;
            Err(std::fs::read_to_string(&log).unwrap_or_default())
        }
    }

    /// Replace the hosts file; call [`Dnsmasq::reload`] to make dnsmasq read it.
    pub fn set_hosts(&self, hosts: &str) {
        std::fs::write(self.dir.join("hosts"), hosts).expect("hosts file");
    }

    /// SIGHUP: dnsmasq reads its hosts file again.
    pub fn reload(&self) {
        let pid = self.child.as_ref().expect("running").0.id();
        let before = self.reads();
        let ok = Command::new("kill")
            .args(["-HUP", &pid.to_string()])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "kill -HUP dnsmasq");
        assert!(
            wait_until(WAIT, || self.reads() > before),
            "dnsmasq did not read its hosts file again"
        );
    }

    /// How many times dnsmasq has read its hosts file ("read .../hosts - N names").
    fn reads(&self) -> usize {
        std::fs::read_to_string(self.log())
            .unwrap_or_default()
            .matches("/hosts - ")
            .count()
    }

    /// Stop answering (the port stays dead until [`Dnsmasq::restart`]).
    pub fn stop(&mut self) {
        self.child = None;
    }

    /// Start again on the same port, with these SRV records.
    pub fn restart(&mut self, srv: &[&str]) {
        self.child = None;
        let mut why = String::new();
        for _ in 0..3 {
            match self.spawn(srv) {
                Ok(()) => return,
                Err(e) => why = e,
            }
        }
        panic!("dnsmasq did not start again on port {}: {why}", self.port);
    }

    /// Queries dnsmasq has answered for `name` since its last start.
    pub fn queries(&self, name: &str) -> usize {
        std::fs::read_to_string(self.log())
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("query[") && l.contains(name))
            .count()
    }
}
