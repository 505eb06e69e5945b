//! A real etcd (Debian's etcd-server) on free ports, and etcdctl against it.

use super::{free_port, wait_until, WAIT};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

pub struct Etcd {
    child: Child,
    pub port: u16,
    dir: PathBuf,
    peer: u16,
}

impl Etcd {
    pub fn start(dir: &Path, port: u16) -> Etcd {
        let peer = free_port();
        let child = Command::new("etcd")
            .args(["--name", "t", "--data-dir"])
            .arg(dir.join("data"))
            .args([
                "--listen-client-urls",
                &format!("http://127.0.0.1:{port}"),
                "--advertise-client-urls",
                &format!("http://127.0.0.1:{port}"),
                "--listen-peer-urls",
                &format!("http://127.0.0.1:{peer}"),
                "--initial-advertise-peer-urls",
                &format!("http://127.0.0.1:{peer}"),
                "--initial-cluster",
                &format!("t=http://127.0.0.1:{peer}"),
            ])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("etcd.log")).unwrap())
            .spawn()
            .expect("etcd is not installed: scripts/setup.sh installs etcd-server");
        let e = Etcd {
            child,
            port,
            dir: dir.to_path_buf(),
            peer,
        };
        assert!(
            wait_until(WAIT, || e.ctl(&["endpoint", "health"]).is_ok()),
            "etcd did not start"
        );
        e
    }

    pub fn ctl(&self, args: &[&str]) -> Result<String, String> {
        let out = Command::new("etcdctl")
            .env("ETCDCTL_API", "3")
            .arg(format!("--endpoints=127.0.0.1:{}", self.port))
            .args(args)
            .output()
            .map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    pub fn put(&self, key: &str, value: &str) {
        self.ctl(&["put", key, value]).expect("etcdctl put");
    }

    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn restart(&mut self) {
        self.stop();
        let _ = self.peer;
        *self = Etcd::start(&self.dir.clone(), self.port);
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        self.stop();
    }
}
