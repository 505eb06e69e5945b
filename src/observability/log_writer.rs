//! The access log's writer: one thread per destination, fed by a bounded channel, so a
//! request never waits on a disk. A full channel drops the line and counts it.
//!
//! The thread does not wake for every line: once woken, it writes what is queued, flushes,
//! and pauses [`PAUSE`] before it looks again, going back to a blocking wait only after a
//! pause that brought nothing. While lines keep coming, a request's `send` finds no one to
//! wake (a wake is a system call, and on a busy core a context switch). A line reaches the
//! file within about [`PAUSE`]; at exit [`flush_all`] writes out what is still queued.
//!
//! SIGUSR1 ([`reopen_all`]) reopens every log file, for logrotate's `postrotate`: the writer
//! writes out what it holds to the old file, then opens the path anew, in order with the
//! lines, so no line is lost or written to the wrong file.

use std::collections::HashMap;
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

/// The longest a line waits in the queue while lines keep coming.
pub const PAUSE: Duration = Duration::from_millis(10);

/// What the writer thread receives.
enum Msg {
    Line(String),
    /// write out everything before this, then answer
    Flush(crossbeam_channel::Sender<()>),
    /// write out everything before this to the file open now, then open the path again
    Reopen,
}

/// Every writer made, by destination (`-`: standard output).
fn writers() -> &'static Mutex<HashMap<String, Arc<Writer>>> {
    static WRITERS: OnceLock<Mutex<HashMap<String, Arc<Writer>>>> = OnceLock::new();
    WRITERS.get_or_init(Default::default)
}

/// Lines waiting for one destination, and the thread that writes them.
///
/// The thread starts with the first line, not when the writer is made: the config is built
/// before Pingora daemonizes (forks), and a thread started before the fork would be lost.
pub struct Writer {
    /// the file, or `None` for standard output
    path: Option<std::path::PathBuf>,
    sink: Mutex<Option<Box<dyn Write + Send>>>,
    tx: OnceLock<Option<crossbeam_channel::Sender<Msg>>>,
    dropped: AtomicU64,
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer")
            .field("dropped", &self.dropped())
            .finish()
    }
}

impl Writer {
    /// The writer for `path` (`None`: standard output). One per destination.
    pub fn for_path(path: Option<&str>) -> std::io::Result<Arc<Writer>> {
        let key = path.unwrap_or("-").to_string();
        let mut map = writers().lock().unwrap_or_else(|p| p.into_inner());
        if let Some(w) = map.get(&key) {
            return Ok(w.clone());
        }
        let path = path.map(std::path::PathBuf::from);
        let sink = open(path.as_deref())?;
        let w = Arc::new(Writer {
            path,
            sink: Mutex::new(Some(sink)),
            tx: OnceLock::new(),
            dropped: AtomicU64::new(0),
        });
        map.insert(key, w.clone());
        Ok(w)
    }

    fn start(&self) -> Option<crossbeam_channel::Sender<Msg>> {
        let sink = self.sink.lock().unwrap_or_else(|p| p.into_inner()).take()?;
        let (tx, rx) = crossbeam_channel::bounded::<Msg>(65_536);
        let path = self.path.clone();
        match std::thread::Builder::new()
            .name("tidegate-access-log".into())
            .spawn(move || write_loop(rx, sink, path))
        {
            Ok(_) => Some(tx),
            Err(e) => {
                tracing::error!("cannot start the access log writer: {e}");
                None
            }
        }
    }

    /// Queue one line (without newline). Never blocks.
    pub fn send(&self, line: String) {
        let sent = match self.tx.get_or_init(|| self.start()) {
            Some(tx) => tx.try_send(Msg::Line(line)).is_ok(),
            None => false,
        };
        if !sent {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Write out what is queued, waiting at most `limit`; `false` when that was not enough.
    fn flush(&self, limit: Duration) -> bool {
        let Some(Some(tx)) = self.tx.get() else {
            return true; // never started: nothing queued
        };
        let (ack, done) = crossbeam_channel::bounded(1);
        tx.send_timeout(Msg::Flush(ack), limit).is_ok() && done.recv_timeout(limit).is_ok()
    }
}

impl Writer {
    /// Open the file again (after logrotate moved it).
    fn reopen(&self) {
        if self.path.is_none() {
            return;
        }
        match self.tx.get() {
            // the thread has the file: it reopens in order with the lines it writes
            Some(Some(tx)) => {
                if tx
                    .send_timeout(Msg::Reopen, Duration::from_secs(2))
                    .is_err()
                {
                    tracing::warn!("access log: the writer did not take the reopen request");
                }
            }
            Some(None) => {}
            // not started: the file is still here
            None => match open(self.path.as_deref()) {
                Ok(s) => *self.sink.lock().unwrap_or_else(|p| p.into_inner()) = Some(s),
                Err(e) => tracing::error!("access log: cannot reopen: {e}"),
            },
        }
    }
}

/// Open `path` for appending (its directory made if needed), or standard output.
fn open(path: Option<&std::path::Path>) -> std::io::Result<Box<dyn Write + Send>> {
    let Some(p) = path else {
        return Ok(Box::new(std::io::stdout()));
    };
    if let Some(dir) = p.parent() {
        if !dir.as_os_str().is_empty() {
            std::fs::create_dir_all(dir)?;
        }
    }
    Ok(Box::new(
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(p)?,
    ))
}

/// Every writer made so far.
fn all_writers() -> Vec<Arc<Writer>> {
    writers()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .values()
        .cloned()
        .collect()
}

/// Reopen every access-log file (SIGUSR1).
pub fn reopen_all() {
    let all = all_writers();
    for w in &all {
        w.reopen();
    }
    tracing::info!(
        files = all.iter().filter(|w| w.path.is_some()).count(),
        "access logs reopened"
    );
}

/// Write out every destination's queued lines (at exit), at most about 2 s each.
pub fn flush_all() {
    for w in all_writers() {
        if !w.flush(Duration::from_secs(2)) {
            eprintln!("tidegate: access log lines still queued at exit were not written");
        }
    }
}

fn write_loop(
    rx: crossbeam_channel::Receiver<Msg>,
    sink: Box<dyn Write + Send>,
    path: Option<std::path::PathBuf>,
) {
    let mut out = std::io::BufWriter::with_capacity(64 << 10, sink);
    // idle: wait for the first message (the one time a sender wakes this thread)
    while let Ok(first) = rx.recv() {
        let mut next = Some(first);
        loop {
            let (mut ok, mut lines) = (true, 0usize);
            let mut acks = Vec::new();
            while let Some(m) = next.take().or_else(|| rx.try_recv().ok()) {
                match m {
                    Msg::Line(l) => {
                        ok &= writeln!(out, "{l}").is_ok();
                        lines += 1;
                    }
                    Msg::Flush(ack) => acks.push(ack),
                    Msg::Reopen => {
                        ok &= out.flush().is_ok();
                        match open(path.as_deref()) {
                            Ok(s) => out = std::io::BufWriter::with_capacity(64 << 10, s),
                            Err(e) => eprintln!("tidegate: cannot reopen the access log: {e}"),
                        }
                    }
                }
            }
            ok &= out.flush().is_ok();
            if !ok {
                eprintln!("tidegate: access log write failed");
            }
            for a in acks {
                let _ = a.send(());
            }
            if lines == 0 {
                break; // a pause brought nothing: back to waiting
            }
            std::thread::sleep(PAUSE);
        }
    }
}
