//! The log stream is the monitoring feed: one line per event,
//! `<time> <LEVEL> <EVENT_NAME> key=value ...`, levels from `RUST_LOG`
//! (default `info`, with actix-server's worker chatter at `warn`). With `LOG_DIR` set the same lines are also appended to
//! `$LOG_DIR/callvisor.log`. Event names live in `callvisor_actors::events`.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;

use env_logger::{Builder, Env, Target};

/// Writes every line to stderr and to a file.
struct Tee {
    file: File,
}

impl Write for Tee {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        io::stderr().write_all(buf)?;
        // A full disk must not take the service down; stderr still has the line.
        let _ = self.file.write_all(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        io::stderr().flush()?;
        self.file.flush()
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
    if let Some(dir) = log_dir {
        std::fs::create_dir_all(dir)?;
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(Path::new(dir).join("callvisor.log"))?;
        builder.target(Target::Pipe(Box::new(Tee { file })));
    }
    let _ = builder.try_init();
    Ok(())
}
