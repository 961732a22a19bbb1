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

/// The back half: writes lines to every sink (stderr and, with `LOG_DIR`, a
/// file); a sink that fails loses the line, the others still have it.
fn write_lines(
    items: Receiver<Item>,
    mut sinks: Vec<Box<dyn Write + Send>>,
    dropped: Arc<AtomicU64>,
) {
    let mut write = |line: &[u8]| {
        for sink in &mut sinks {
            let _ = sink.write_all(line);
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
    let mut sinks: Vec<Box<dyn Write + Send>> = vec![Box::new(io::stderr())];
    if let Some(dir) = log_dir {
        std::fs::create_dir_all(dir)?;
        let file: File = OpenOptions::new()
            .create(true)
            .append(true)
            .open(Path::new(dir).join("callvisor.log"))?;
        sinks.push(Box::new(file));
    }
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
        .spawn(move || write_lines(items, sinks, dropped))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    /// A log reader that has stopped reading: every write waits until released.
    struct StuckReader(Arc<Mutex<()>>);

    impl Write for StuckReader {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let _held = self.0.lock();
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_stuck_log_reader_costs_dropped_lines_not_a_waiting_caller() {
        // Arrange: a writer thread whose only sink blocks, and a small queue.
        let gate = Arc::new(Mutex::new(()));
        let held = gate.lock().unwrap();
        let (queue, items) = mpsc::sync_channel(8);
        let dropped = Arc::new(AtomicU64::new(0));
        let sink: Box<dyn Write + Send> = Box::new(StuckReader(gate.clone()));
        let writer_dropped = dropped.clone();
        let writer = std::thread::spawn(move || write_lines(items, vec![sink], writer_dropped));
        let mut front = QueueWriter {
            queue: queue.clone(),
            dropped: dropped.clone(),
        };
        // Act: far more lines than the queue holds while the reader is stuck.
        let started = Instant::now();
        for _ in 0..1000 {
            front
                .write_all(b"2026-12-08T00:00:00.000Z INFO  EVENT x=1\n")
                .unwrap();
        }
        let spent = started.elapsed();
        // Assert: nothing waited for the reader; the overflow is counted.
        assert!(spent < Duration::from_secs(1), "logging waited {spent:?}");
        assert!(dropped.load(Ordering::Relaxed) >= 1000 - 8 - 1);
        drop(held);
        drop(front);
        drop(queue);
        writer.join().unwrap();
    }
}
