//! The origin servers of the tests: HTTP/1.1 on 127.0.0.1, in threads, each request's answer
//! decided by a closure ([`Action`]), every request recorded ([`SeenRequest`]).

use super::bind_fresh;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A request as an origin saw it.
#[derive(Debug, Clone)]
pub struct SeenRequest {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl SeenRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn headers_named(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

/// What an origin does with one request.
pub enum Action {
    Respond(u16, Vec<(String, String)>, Vec<u8>),
    /// Never answer (until the connection is closed by the other side).
    Hang,
    /// Send headers promising `len` bytes, then part of the body, then reset.
    ResetMidBody {
        len: usize,
        sent: usize,
    },
    /// Accept the upgrade and echo bytes back (WebSocket-like).
    UpgradeEcho,
    /// Close without answering.
    Close,
    /// A chunked body: status, headers, then each piece as one chunk, flushed as it goes.
    Chunked(u16, Vec<(String, String)>, Vec<Vec<u8>>),
}

pub fn ok(body: &str) -> Action {
    Action::Respond(200, vec![], body.as_bytes().to_vec())
}

type Handler = dyn Fn(&SeenRequest) -> Action + Send + Sync;

/// An HTTP/1.1 origin server on 127.0.0.1:0.
pub struct Origin {
    pub addr: SocketAddr,
    pub seen: Arc<Mutex<Vec<SeenRequest>>>,
    pub connections: Arc<AtomicUsize>,
}

impl Origin {
    pub fn start(handler: impl Fn(&SeenRequest) -> Action + Send + Sync + 'static) -> Origin {
        Self::start_on(0, handler)
    }

    /// Start on a given port (0: any).
    pub fn start_on(
        port: u16,
        handler: impl Fn(&SeenRequest) -> Action + Send + Sync + 'static,
    ) -> Origin {
        let listener = if port == 0 {
            bind_fresh()
        } else {
            TcpListener::bind(("127.0.0.1", port)).expect("bind origin")
        };
        Self::start_listener(listener, handler)
    }

    /// Serve on a listener the caller bound (another loopback address, say).
    pub fn start_listener(
        listener: TcpListener,
        handler: impl Fn(&SeenRequest) -> Action + Send + Sync + 'static,
    ) -> Origin {
        let addr = listener.local_addr().expect("origin addr");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let connections = Arc::new(AtomicUsize::new(0));
        let handler: Arc<Handler> = Arc::new(handler);
        let (s2, c2) = (seen.clone(), connections.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                c2.fetch_add(1, Ordering::SeqCst);
                let (seen, handler) = (s2.clone(), handler.clone());
                std::thread::spawn(move || serve_conn(stream, seen, handler));
            }
        });
        Origin {
            addr,
            seen,
            connections,
        }
    }

    /// Answers 200 with `name` as the body: tells which origin served.
    pub fn named(name: &'static str) -> Origin {
        Origin::start(move |_| ok(name))
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub fn requests(&self) -> Vec<SeenRequest> {
        self.seen.lock().map(|v| v.clone()).unwrap_or_default()
    }

    pub fn count(&self) -> usize {
        self.seen.lock().map(|v| v.len()).unwrap_or(0)
    }
}

fn serve_conn(stream: TcpStream, seen: Arc<Mutex<Vec<SeenRequest>>>, handler: Arc<Handler>) {
    stream.set_read_timeout(Some(Duration::from_secs(30))).ok();
    let mut w = match stream.try_clone() {
        Ok(w) => w,
        Err(_) => return,
    };
    let mut r = BufReader::new(stream);
    loop {
        let mut line = String::new();
        match r.read_line(&mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let mut parts = line.split_whitespace();
        let method = parts.next().unwrap_or("").to_string();
        let path = parts.next().unwrap_or("").to_string();
        let mut headers = Vec::new();
        loop {
            let mut h = String::new();
            if r.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                headers.push((k.trim().to_string(), v.trim().to_string()));
            }
        }
        let find = |n: &str| {
            headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(n))
                .map(|(_, v)| v.clone())
        };
        let mut body = Vec::new();
        if let Some(cl) = find("content-length").and_then(|v| v.parse::<usize>().ok()) {
            body.resize(cl, 0);
            if r.read_exact(&mut body).is_err() {
                return;
            }
        } else if find("transfer-encoding").is_some_and(|t| t.eq_ignore_ascii_case("chunked")) {
            loop {
                let mut size = String::new();
                if r.read_line(&mut size).unwrap_or(0) == 0 {
                    return;
                }
                let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
                let mut chunk = vec![0; n + 2];
                if r.read_exact(&mut chunk).is_err() {
                    return;
                }
                if n == 0 {
                    break;
                }
                body.extend_from_slice(&chunk[..n]);
            }
        }
        let req = SeenRequest {
            method,
            path,
            headers,
            body,
        };
        if let Ok(mut s) = seen.lock() {
            s.push(req.clone());
        }
        match handler(&req) {
            Action::Respond(status, hdrs, body) => {
                let mut out = format!("HTTP/1.1 {status} X\r\nContent-Length: {}\r\n", body.len());
                for (k, v) in hdrs {
                    out.push_str(&format!("{k}: {v}\r\n"));
                }
                out.push_str("\r\n");
                let mut bytes = out.into_bytes();
                if req.method != "HEAD" {
                    bytes.extend_from_slice(&body);
                }
                if w.write_all(&bytes).is_err() {
                    return;
                }
            }
            Action::Hang => {
                let mut sink = [0u8; 1024];
                while matches!(r.read(&mut sink), Ok(n) if n > 0) {}
                return;
            }
            Action::ResetMidBody { len, sent } => {
                let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {len}\r\n\r\n");
                let _ = w.write_all(head.as_bytes());
                let _ = w.write_all(&vec![b'x'; sent]);
                let _ = w.flush();
                // SO_LINGER 0 turns close into a reset
                let _ = set_linger_zero(&w);
                return;
            }
            Action::UpgradeEcho => {
                let _ = w.write_all(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n");
                let mut buf = [0u8; 4096];
                loop {
                    match r.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            if w.write_all(&buf[..n]).is_err() {
                                return;
                            }
                        }
                    }
                }
            }
            Action::Close => return,
            Action::Chunked(status, hdrs, pieces) => {
                let mut out = format!("HTTP/1.1 {status} X\r\nTransfer-Encoding: chunked\r\n");
                for (k, v) in hdrs {
                    out.push_str(&format!("{k}: {v}\r\n"));
                }
                out.push_str("\r\n");
                if w.write_all(out.as_bytes()).is_err() {
                    return;
                }
                for p in pieces.iter().filter(|p| !p.is_empty()) {
                    let mut chunk = format!("{:x}\r\n", p.len()).into_bytes();
                    chunk.extend_from_slice(p);
                    chunk.extend_from_slice(b"\r\n");
                    if w.write_all(&chunk).and_then(|_| w.flush()).is_err() {
                        return;
                    }
                }
                if w.write_all(b"0\r\n\r\n").is_err() {
                    return;
                }
            }
        }
    }
}

fn set_linger_zero(s: &TcpStream) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let l = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    let rc = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            &l as *const _ as *const libc::c_void,
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}
