//! The log stream is the monitoring feed: one line per event,
//! `<time> <LEVEL> <EVENT_NAME> key=value ...`, levels from `RUST_LOG`
//! (default `info`, with actix-server's worker chatter at `warn`). With `LOG_DIR` set the same lines are also appended to
//! `$LOG_DIR/callvisor.log`. Event names live in `callvisor_actors::events`.
//!
//! Lines are written by a thread of their own: the threads that carry audio
//! only queue them (see [`QueueWriter`]), so a slow log reader cannot stall a call.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use env_logger::{Builder, Env, Target};

use callvisor_actors::events;

/// Lines waiting for the writer thread at most; past it lines are dropped
/// (and counted) rather than making the thread that logs wait.
pub const QUEUE_LINES: usize = 16 * 1024;

/// What the writer thread is sent.
enum Item {
    /// One formatted line (env_logger hands over a whole record per write).
    Line(Vec<u8>),
    /// Everything sent before has been written: tell the sender.
    Flushed(mpsc::Sender<()>),
}

/// The front half of the logger: hands lines to the writer thread without
/// ever waiting for stderr or the disk. A log call on a thread that carries
/// audio costs a copy of the line and a channel send; a slow or stuck log
/// reader (a full pipe, a stalled journald) costs dropped lines, counted and
/// reported, instead of stalled calls.
struct QueueWriter {
    queue: SyncSender<Item>,
    dropped: Arc<AtomicU64>,
}

impl Write for QueueWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self.queue.try_send(Item::Line(buf.to_vec())) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
            // The writer is gone (the process is exiting): nowhere to write.
            Err(TrySendError::Disconnected(_)) => {}
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The back half: writes lines to stderr and, with `LOG_DIR`, to a file.
fn write_lines(items: Receiver<Item>, mut file: Option<File>, dropped: Arc<AtomicU64>) {
    let mut stderr = io::stderr();
    let mut write = |line: &[u8]| {
        // Nothing to do when stderr or the disk fail: the other still has the line.
        let _ = stderr.write_all(line);
        if let Some(file) = file.as_mut() {
            let _ = file.write_all(line);
        }
    };
    for item in items {
        match item {
            Item::Line(line) => {
                write(&line);
                let lost = dropped.swap(0, Ordering::Relaxed);
                if lost > 0 {
                    let ts = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.3fZ");
                    let note = format!(
                        "{ts} WARN  {} count={lost} queue_lines={QUEUE_LINES}\n",
                        events::LOG_LINES_DROPPED
                    );
                    write(note.as_bytes());
                }
            }
            Item::Flushed(done) => {
                let _ = done.send(());
            }
        }
    }
}

/// The queue to the writer thread, once the logger is installed.
static QUEUE: OnceLock<Mutex<SyncSender<Item>>> = OnceLock::new();

/// Waits until every line logged so far is written, or `timeout` passes.
/// `main` calls it last: lines still queued at exit would be lost.
pub fn flush(timeout: Duration) {
    let Some(queue) = QUEUE.get() else { return };
    let (done, written) = mpsc::channel();
    let sent = queue
        .lock()
        .map(|queue| queue.send(Item::Flushed(done)).is_ok())
        .unwrap_or(false);
    if sent {
        let _ = written.recv_timeout(timeout);
    }
}

/// Installs the logger. Safe to call more than once (later calls do nothing),
/// which tests rely on.
pub fn init(log_dir: Option<&str>) -> io::Result<()> {
    let mut builder = Builder::from_env(Env::default().default_filter_or("info,actix_server=warn"));
    builder.format(|buf, record| {
        let ts = buf.timestamp_millis();
        write!(buf, "{ts} {:<5} {}", record.level(), record.args())?;
        // Lines from libraries carry no event name of ours: say where they came from.
        let target = record.target();
        if !target.starts_with("callvisor") {
            write!(buf, " target={target}")?;
        }
        writeln!(buf)
    });
    let file = match log_dir {
        Some(dir) => {
            std::fs::create_dir_all(dir)?;
            Some(
                OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(Path::new(dir).join("callvisor.log"))?,
            )
        }
        None => None,
    };
    if QUEUE.get().is_some() {
        return Ok(()); // installed already
    }
    let (queue, items) = mpsc::sync_channel(QUEUE_LINES);
    let dropped = Arc::new(AtomicU64::new(0));
    builder.target(Target::Pipe(Box::new(QueueWriter {
        queue: queue.clone(),
        dropped: dropped.clone(),
    })));
    if builder.try_init().is_err() {
        return Ok(()); // another logger won the race; ours is not needed
    }
    let _ = QUEUE.set(Mutex::new(queue));
    std::thread::Builder::new()
        .name("log-writer".into())
        .spawn(move || write_lines(items, file, dropped))?;
    Ok(())
}
