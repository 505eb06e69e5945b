//! Test harness: a real tidegate process and real origin servers on 127.0.0.1 ephemeral ports.
//!
//! - [`Tidegate::start`] writes a config to a temp dir, starts the binary, and waits until
//!   every listener accepts connections.
//! - [`Origin`] (`origin.rs`) is a small HTTP/1.1 server in threads whose behaviour per
//!   request is a closure, and which records every request it receives.
//! - [`send`] writes raw bytes and parses one response, so tests can send anything,
//!   malformed requests included.
#![allow(dead_code)]

pub mod acme;
pub mod dns;
pub mod docker;
pub mod etcd;
pub mod grpc;
pub mod h2c;
pub mod lua;
pub mod origin;
pub mod plugins;
pub mod redis;
pub mod tls;

pub use origin::*;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use std::sync::Mutex;
use std::time::{Duration, Instant};

pub const WAIT: Duration = Duration::from_secs(20);

/// Ports `free_port` handed out in this test process: tests run in parallel, and the OS may
/// offer a released port again before the tidegate it was meant for has bound it.
fn handed_out() -> std::sync::MutexGuard<'static, std::collections::HashSet<u16>> {
    static H: std::sync::OnceLock<Mutex<std::collections::HashSet<u16>>> =
        std::sync::OnceLock::new();
    H.get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner())
}

/// A port that was free a moment ago, never handed out before in this process.
pub fn free_port() -> u16 {
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("bind 127.0.0.1:0");
        if handed_out().insert(port) {
            return port;
        }
    }
}

/// Bind 127.0.0.1:0 for a server of the test's own, avoiding ports `free_port` handed out
/// (a tidegate may be about to bind one).
pub fn bind_fresh() -> TcpListener {
    let mut rejected = Vec::new();
    loop {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let port = l.local_addr().expect("local addr").port();
        if !handed_out().contains(&port) {
            return l;
        }
        // keep it bound until we have another, so the OS does not offer it again
        rejected.push(l);
    }
}

/// Poll `cond` every 10 ms until it holds or `limit` passes.
pub fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    cond()
}

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_tidegate")
}

/// A running tidegate.
pub struct Tidegate {
    pub child: Child,
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
}

impl Tidegate {
    /// Start with `config` (TOML text); waits until `ports` accept connections.
    pub fn start(config: &str, ports: &[u16]) -> Tidegate {
        Self::start_with(config, ports, &[])
    }

    pub fn start_with(config: &str, ports: &[u16], args: &[&str]) -> Tidegate {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("tidegate.toml");
        std::fs::write(&path, config).expect("write config");
        Self::spawn(
            dir,
            path.to_str().expect("utf-8 path").to_string(),
            ports,
            args,
        )
    }

    /// Start with `-c URL` (e.g. etcd://...).
    pub fn start_url(url: &str, ports: &[u16]) -> Tidegate {
        let dir = tempfile::tempdir().expect("tempdir");
        Self::spawn(dir, url.to_string(), ports, &[])
    }

    fn spawn(dir: tempfile::TempDir, config: String, ports: &[u16], args: &[&str]) -> Tidegate {
        let path = PathBuf::from(&config);
        let stdout = std::fs::File::create(dir.path().join("stdout.log")).expect("stdout log");
        let stderr = std::fs::File::create(dir.path().join("stderr.log")).expect("stderr log");
        let mut cmd = Command::new(bin());
        cmd.arg("-c")
            .arg(&config)
            .arg("--pid-file")
            .arg(dir.path().join("tidegate.pid"))
            .args(args)
            .env("TIDEGATE_LOG", "info")
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr);
        let child = cmd.spawn().expect("spawn tidegate");
        let mut t = Tidegate {
            child,
            dir,
            config: path,
        };
        for p in ports {
            // connectable, and by this process: its "listening" line names the address (a
            // port taken by something else would make it exit with a bind error instead)
            let mine = format!("127.0.0.1:{p}");
            let ok = wait_until(WAIT, || {
                if let Ok(Some(status)) = t.child.try_wait() {
                    panic!("tidegate exited early ({status}):\n{}", t.stderr());
                }
                TcpStream::connect(("127.0.0.1", *p)).is_ok()
                    && t.stderr()
                        .lines()
                        .any(|l| l.contains("listening") && l.contains(&mine))
            });
            assert!(ok, "tidegate did not listen on {p}:\n{}", t.stderr());
        }
        t
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stderr.log")).unwrap_or_default()
    }

    pub fn stdout(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stdout.log")).unwrap_or_default()
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

impl Drop for Tidegate {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Run `tidegate ARGS` to completion; (exit code, stdout + stderr).
pub fn run_cli(args: &[&str], cwd: &std::path::Path) -> (i32, String) {
    let out = Command::new(bin())
        .args(args)
        .current_dir(cwd)
        .env_remove("TIDEGATE_CONFIG")
        .output()
        .expect("run tidegate");
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.code().unwrap_or(-1), text)
}

/// A parsed HTTP/1.x response.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

pub fn connect(port: u16) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(WAIT)).ok();
    s.set_write_timeout(Some(WAIT)).ok();
    s
}

/// Send raw bytes on a new connection and read one response.
pub fn send(port: u16, raw: &[u8]) -> std::io::Result<Response> {
    let s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(WAIT))?;
    s.set_write_timeout(Some(WAIT))?;
    (&s).write_all(raw)?;
    let mut r = BufReader::new(s);
    read_response(&mut r, raw.starts_with(b"HEAD"))
}

/// GET `path` with `Host: host` and extra header lines.
pub fn get(port: u16, host: &str, path: &str, headers: &[(&str, &str)]) -> Response {
    request(port, "GET", host, path, headers, b"")
}

pub fn request(
    port: u16,
    method: &str,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Response {
    let mut raw = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    for (k, v) in headers {
        raw.push_str(&format!("{k}: {v}\r\n"));
    }
    if !body.is_empty() || method == "POST" || method == "PUT" {
        raw.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    raw.push_str("\r\n");
    let mut bytes = raw.into_bytes();
    bytes.extend_from_slice(body);
    send(port, &bytes).unwrap_or_else(|e| panic!("{method} {path}: {e}"))
}

/// GET `path` on a connection made from `src` (another loopback address, 127.0.0.x): the
/// proxy sees that client IP.
pub fn get_from(src: std::net::Ipv4Addr, port: u16, path: &str) -> Response {
    get_from_with(src, port, path, &[])
}

/// [`get_from`] with extra header lines.
pub fn get_from_with(
    src: std::net::Ipv4Addr,
    port: u16,
    path: &str,
    headers: &[(&str, &str)],
) -> Response {
    let extra: String = headers
        .iter()
        .map(|(k, v)| format!("{k}: {v}\r\n"))
        .collect();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let s = rt
        .block_on(async {
            let sock = tokio::net::TcpSocket::new_v4()?;
            sock.bind(SocketAddr::from((src, 0)))?;
            sock.connect(SocketAddr::from(([127, 0, 0, 1], port))).await
        })
        .and_then(|s| s.into_std())
        .unwrap_or_else(|e| panic!("connect from {src}: {e}"));
    s.set_nonblocking(false).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    (&s).write_all(
        format!("GET {path} HTTP/1.1\r\nHost: h\r\n{extra}Connection: close\r\n\r\n").as_bytes(),
    )
    .unwrap();
    read_response(&mut BufReader::new(s), false).unwrap_or_else(|e| panic!("from {src}: {e}"))
}

/// Read one response from a buffered stream (keep-alive friendly).
pub fn read_response<R: BufRead>(r: &mut R, head: bool) -> std::io::Result<Response> {
    let mut line = String::new();
    if r.read_line(&mut line)? == 0 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "connection closed before a response",
        ));
    }
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad status line {line:?}")))?;
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        r.read_line(&mut h)?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    let resp = Response {
        status,
        headers,
        body: Vec::new(),
    };
    let mut body = Vec::new();
    if head || status == 204 || status == 304 || (100..200).contains(&status) {
        return Ok(Response { body, ..resp });
    }
    if let Some(cl) = resp.header("content-length") {
        let n: usize = cl.parse().map_err(std::io::Error::other)?;
        body.resize(n, 0);
        r.read_exact(&mut body)?;
    } else if resp
        .header("transfer-encoding")
        .is_some_and(|t| t.eq_ignore_ascii_case("chunked"))
    {
        loop {
            let mut size = String::new();
            r.read_line(&mut size)?;
            let n = usize::from_str_radix(size.trim().split(';').next().unwrap_or(""), 16)
                .map_err(|_| std::io::Error::other(format!("bad chunk size {size:?}")))?;
            let mut chunk = vec![0; n + 2];
            r.read_exact(&mut chunk)?;
            if n == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..n]);
        }
    } else {
        r.read_to_end(&mut body)?;
    }
    Ok(Response { body, ..resp })
}

/// Counts of a value across responses, e.g. which origin served.
pub fn tally(values: impl IntoIterator<Item = String>) -> HashMap<String, usize> {
    let mut m = HashMap::new();
    for v in values {
        *m.entry(v).or_insert(0) += 1;
    }
    m
}

/// A minimal config with one server on `port` routing everything to `upstream_addrs`.
/// The `[basic]` table of the tests' configs: two workers, a quick shutdown.
pub const BASIC: &str =
    "[basic]\nthreads = 2\ngrace_period = \"1s\"\ngraceful_shutdown_timeout = \"1s\"\n";

pub fn simple_config(
    port: u16,
    upstream_addrs: &[String],
    extra_upstream: &str,
    extra: &str,
) -> String {
    let addrs = upstream_addrs
        .iter()
        .map(|a| format!("\"{a}\""))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        r#"
{BASIC}
[servers.main]
addr = "127.0.0.1:{port}"
locations = ["all"]

[locations.all]
upstream = "backend"

[upstreams.backend]
addrs = [{addrs}]
{extra_upstream}

{extra}
"#
    )
}

/// A new process started with `--upgrade` and `config`, waiting for the running one's
/// listeners; its stderr is in the returned directory's `stderr.log`.
pub fn start_upgrade(config: &str) -> (KillOnDrop, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("tidegate.toml");
    std::fs::write(&path, config).expect("write config");
    let child = Command::new(bin())
        .args([
            "--upgrade",
            "-c",
            path.to_str().expect("utf-8 path"),
            "--pid-file",
        ])
        .arg(dir.path().join("pid"))
        .env("TIDEGATE_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.path().join("stderr.log")).expect("stderr log"))
        .spawn()
        .expect("spawn tidegate --upgrade");
    (KillOnDrop(child), dir)
}

/// A child process killed when dropped, so a failing test leaves nothing running.
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
