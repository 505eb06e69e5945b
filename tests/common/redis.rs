//! A real Redis (Debian's redis-server) on a free port, without persistence.

use super::{wait_until, WAIT};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

pub struct Redis {
    child: Option<Child>,
    pub port: u16,
    dir: PathBuf,
}

/// Send one inline command and read what comes back (a short reply).
pub fn command(port: u16, cmd: &str) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(std::time::Duration::from_secs(2)))
        .ok()?;
    s.write_all(format!("{cmd}\r\n").as_bytes()).ok()?;
    let mut buf = [0u8; 512];
    let n = s.read(&mut buf).ok()?;
    Some(String::from_utf8_lossy(&buf[..n]).into_owned())
}

impl Redis {
    pub fn start(dir: &Path, port: u16) -> Redis {
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .arg("--dir")
            .arg(dir)
            .stdout(std::fs::File::create(dir.join(format!("redis-{port}.log"))).unwrap())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is not installed: scripts/test.sh installs it");
        let r = Redis {
            child: Some(child),
            port,
            dir: dir.to_path_buf(),
        };
        assert!(
            wait_until(WAIT, || command(port, "PING")
                .is_some_and(|p| p.starts_with("+PONG"))),
            "redis did not start"
        );
        r
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn restart(&mut self) {
        self.stop();
        *self = Redis::start(&self.dir.clone(), self.port);
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
    }
}
