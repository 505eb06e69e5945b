//! The access log's writer: one thread per destination writes what the worker threads
//! gathered, so a request never waits on a disk.
//!
//! Each worker thread appends its lines to its own buffer for the destination (a
//! [`Batch`]: a mutex only that thread and the writer ever take, so it is uncontended), with
//! no allocation and no message per line. The writer thread sweeps every buffer, swapping
//! it with an empty one of the same capacity, writes what it took, and pauses [`PAUSE`]
//! before it sweeps again; after a sweep that found nothing it waits until a worker wakes it
//! (a worker sends one wake when it finds the writer idle). A line reaches the file within
//! about [`PAUSE`]; at exit [`flush_all`] writes out what is still held. Lines from
//! different threads reach the file in batches, each thread's in its order. A thread's
//! buffer over [`CAP`] (the disk stalled) drops further lines and counts them.
//!
//! Why by hand: the crates that write logs from a background thread (`tracing-appender`'s
//! non-blocking writer among them) take a message per line through a channel; a
//! per-thread buffer swept by the writer costs a worker only the formatting.
//!
//! SIGUSR1 ([`reopen_all`]) reopens every log file, for logrotate's `postrotate`: the writer
//! writes out what the buffers hold to the old file, then opens the path anew, so no line is
//! lost or written to the wrong file.

use std::cell::RefCell;
use std::collections::HashMap;
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

/// The longest a line waits in its thread's buffer while lines keep coming.
pub const PAUSE: Duration = Duration::from_millis(10);

/// The most one thread's buffer holds before it drops lines (about 50,000 lines).
pub const CAP: usize = 8 << 20;

/// What the writer thread receives besides the lines.
enum Msg {
    /// a worker found the writer idle and gave it lines
    Wake,
    /// write out everything before this, then answer
    Flush(crossbeam_channel::Sender<()>),
    /// write out everything before this to the file open now, then open the path again
    Reopen,
}

/// One worker thread's lines for one destination.
#[derive(Default)]
struct Batch {
    lines: Mutex<String>,
}

/// The buffers of every thread that wrote to a destination, and whether its writer waits.
#[derive(Default)]
struct Batches {
    all: Mutex<Vec<Arc<Batch>>>,
    /// the writer found nothing and waits for a wake
    idle: AtomicBool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

thread_local! {
    /// This thread's buffers, by destination (`Writer::id`).
    static MINE: RefCell<Vec<(usize, Arc<Batch>)>> = const { RefCell::new(Vec::new()) };
}

/// Every writer made, by destination (`-`: standard output).
fn writers() -> &'static Mutex<HashMap<String, Arc<Writer>>> {
    static WRITERS: OnceLock<Mutex<HashMap<String, Arc<Writer>>>> = OnceLock::new();
    WRITERS.get_or_init(Default::default)
}

/// The buffers for one destination, and the thread that writes them.
///
/// The thread starts with the first line, not when the writer is made: the config is built
/// before Pingora daemonizes (forks), and a thread started before the fork would be lost.
pub struct Writer {
    id: usize,
    /// the file, or `None` for standard output
    path: Option<std::path::PathBuf>,
    sink: Mutex<Option<Box<dyn Write + Send>>>,
    tx: OnceLock<Option<crossbeam_channel::Sender<Msg>>>,
    batches: Arc<Batches>,
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
        static IDS: AtomicUsize = AtomicUsize::new(0);
        let key = path.unwrap_or("-").to_string();
        let mut map = lock(writers());
        if let Some(w) = map.get(&key) {
            return Ok(w.clone());
        }
        let path = path.map(std::path::PathBuf::from);
        let sink = open(path.as_deref())?;
        let w = Arc::new(Writer {
            id: IDS.fetch_add(1, Ordering::Relaxed),
            path,
            sink: Mutex::new(Some(sink)),
            tx: OnceLock::new(),
            batches: Arc::new(Batches {
                all: Mutex::default(),
                idle: AtomicBool::new(true),
            }),
            dropped: AtomicU64::new(0),
        });
        map.insert(key, w.clone());
        Ok(w)
    }

    fn start(&self) -> Option<crossbeam_channel::Sender<Msg>> {
        let sink = lock(&self.sink).take()?;
        let (tx, rx) = crossbeam_channel::bounded::<Msg>(64);
        let path = self.path.clone();
        let batches = self.batches.clone();
        match std::thread::Builder::new()
            .name("tidegate-access-log".into())
            .spawn(move || write_loop(rx, sink, path, batches))
        {
            Ok(_) => Some(tx),
            Err(e) => {
                tracing::error!("cannot start the access log writer: {e}");
                None
            }
        }
    }

    /// Append one line: `write` puts it (without newline) at the end of the string it is
    /// given, this thread's buffer for the destination. Never blocks on the disk.
    pub fn line(&self, write: impl FnOnce(&mut String)) {
        let Some(tx) = self.tx.get_or_init(|| self.start()) else {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        };
        // a thread being torn down (its buffers gone) or a line written while one is being
        // written (never done) drops the line instead of panicking
        let kept = MINE.try_with(|mine| {
            let Ok(mut mine) = mine.try_borrow_mut() else {
                return false;
            };
            let batch = match mine.iter().position(|(id, _)| *id == self.id) {
                Some(i) => &mine[i].1,
                None => {
                    let b = Arc::new(Batch::default());
                    lock(&self.batches.all).push(b.clone());
                    mine.push((self.id, b));
                    &mine[mine.len() - 1].1
                }
            };
            let mut lines = lock(&batch.lines);
            if lines.len() >= CAP {
                return false;
            }
            write(&mut lines);
            lines.push('\n');
            true
        });
        if kept != Ok(true) {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        // the writer sets `idle` before its last look at the buffers: a line appended after
        // that look finds it set (the buffer's mutex orders the two)
        let idle = &self.batches.idle;
        if idle.load(Ordering::SeqCst) && idle.swap(false, Ordering::SeqCst) {
            let _ = tx.try_send(Msg::Wake);
        }
    }

    /// Lines dropped because the writer could not start or a buffer was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Write out what is held, waiting at most `limit`; `false` when that was not enough.
    fn flush(&self, limit: Duration) -> bool {
        let Some(Some(tx)) = self.tx.get() else {
            return true; // never started: nothing held
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
                Ok(s) => *lock(&self.sink) = Some(s),
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
    lock(writers()).values().cloned().collect()
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

/// Write out every destination's held lines (at exit), at most about 2 s each.
pub fn flush_all() {
    for w in all_writers() {
        if !w.flush(Duration::from_secs(2)) {
            eprintln!("tidegate: access log lines still held at exit were not written");
        }
    }
}

/// The writer thread's side: the file, a spare buffer to swap in, and the list of buffers
/// of the sweep under way.
struct Out {
    file: std::io::BufWriter<Box<dyn Write + Send>>,
    spare: String,
    list: Vec<Arc<Batch>>,
    /// every write since the last flush succeeded
    ok: bool,
}

impl Out {
    fn new(sink: Box<dyn Write + Send>) -> Out {
        Out {
            file: std::io::BufWriter::with_capacity(64 << 10, sink),
            spare: String::new(),
            list: Vec::new(),
            ok: true,
        }
    }

    /// Write out what every thread's buffer holds; the bytes written. A buffer is swapped
    /// with the spare (emptied, its capacity kept), so neither side allocates once warm. The
    /// list of buffers is copied out first: a thread registering its first buffer never
    /// waits on a disk write. Buffers of threads that ended are dropped once empty.
    fn sweep(&mut self, batches: &Batches) -> usize {
        {
            let mut all = lock(&batches.all);
            all.retain(|b| Arc::strong_count(b) > 1 || !lock(&b.lines).is_empty());
            self.list.clone_from(&all);
        }
        let mut written = 0;
        for b in self.list.drain(..) {
            {
                let mut lines = lock(&b.lines);
                if lines.is_empty() {
                    continue;
                }
                std::mem::swap(&mut *lines, &mut self.spare);
            }
            self.ok &= self.file.write_all(self.spare.as_bytes()).is_ok();
            written += self.spare.len();
            self.spare.clear();
        }
        written
    }

    /// Flush; `false` when a write since the last flush failed.
    fn flush(&mut self) -> bool {
        let ok = std::mem::replace(&mut self.ok, true);
        self.file.flush().is_ok() && ok
    }
}

fn write_loop(
    rx: crossbeam_channel::Receiver<Msg>,
    sink: Box<dyn Write + Send>,
    path: Option<std::path::PathBuf>,
    batches: Arc<Batches>,
) {
    let mut out = Out::new(sink);
    // idle: wait for a wake (a worker's first line after a quiet spell) or a request
    while let Ok(first) = rx.recv() {
        let mut next = Some(first);
        loop {
            let mut acks = Vec::new();
            let mut written = out.sweep(&batches);
            while let Some(m) = next.take().or_else(|| rx.try_recv().ok()) {
                match m {
                    Msg::Wake => {}
                    Msg::Flush(ack) => acks.push(ack),
                    Msg::Reopen => {
                        written += out.sweep(&batches);
                        if !out.flush() {
                            eprintln!("tidegate: access log write failed");
                        }
                        match open(path.as_deref()) {
                            Ok(s) => out.file = std::io::BufWriter::with_capacity(64 << 10, s),
                            Err(e) => eprintln!("tidegate: cannot reopen the access log: {e}"),
                        }
                    }
                }
            }
            if !acks.is_empty() {
                // the lines appended before the flush was asked
                written += out.sweep(&batches);
            }
            if written == 0 {
                // nothing came: say so, then look once more (a line appended before `idle`
                // was set is found here; one appended after it sends a wake)
                batches.idle.store(true, Ordering::SeqCst);
                if out.sweep(&batches) != 0 {
                    batches.idle.store(false, Ordering::SeqCst);
                    written = 1;
                }
            }
            if !out.flush() {
                eprintln!("tidegate: access log write failed");
            }
            for a in acks {
                let _ = a.send(());
            }
            if written == 0 {
                break; // back to waiting
            }
            std::thread::sleep(PAUSE);
        }
    }
}
