//! Transcript segments that could not reach PostgreSQL before the process
//! exits: spilled to a local file at shutdown, replayed at the next start.
//!
//! Shutdown must not hang on a database that is down, and must not silently
//! lose what callers said either. So the final flush has a deadline
//! (`calls.shutdown_flush_seconds`); what is not written by then is taken from
//! the PersistenceActor (its buffer and the batch in flight) and written as
//! JSON lines, one segment a line, to a new file in `calls.spill_dir`
//! (written under a temporary name and renamed, so a reader never sees half a
//! file). One `PERSISTENCE_SPILLED` ERROR line gives the counts and the path.
//!
//! At start every `*.jsonl` file of the directory is inserted with the same
//! statement the live path uses, which is idempotent on the table's unique
//! key `(call_sid, seq)`: a file replayed twice, or holding a batch that did
//! commit just before the deadline, inserts each segment once. A file is
//! removed only once all of it is in; otherwise it stays for the next start.

use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use actix::Addr;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use callvisor_actors::error_chain::Chain;
use callvisor_actors::events;
use callvisor_actors::ids::CallSid;
use callvisor_actors::persistence::{Flush, PersistenceActor, TakeUnwritten};
use callvisor_actors::ports::{Role, Segment};

use crate::db::{transcripts, AsyncPool, DbError};

/// Segments per INSERT when replaying.
const REPLAY_BATCH: usize = 500;
/// Extension of spill files.
const EXTENSION: &str = "jsonl";

/// Why spilling or replaying failed.
#[derive(Debug, thiserror::Error)]
pub enum SpillError {
    /// The file or directory could not be read or written.
    #[error("spill file {path}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A line is not a segment.
    #[error("spill file {path}, line {line}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// 1-based.
        line: usize,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
    /// A line holds a segment with an impossible field.
    #[error("spill file {path}, line {line}: {field} is invalid")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// 1-based.
        line: usize,
        /// Which field.
        field: &'static str,
    },
    /// A segment could not be encoded.
    #[error("segment could not be encoded")]
    Encode(#[source] serde_json::Error),
    /// No connection.
    #[error("database pool")]
    Pool(#[source] diesel_async::pooled_connection::deadpool::PoolError),
    /// The insert failed.
    #[error("database")]
    Db(#[from] DbError),
}

/// One segment, as a line of a spill file.
#[derive(Debug, Serialize, Deserialize)]
struct SpilledSegment {
    call_sid: String,
    seq: u32,
    role: String,
    text: String,
    at: DateTime<Utc>,
}

impl From<&Segment> for SpilledSegment {
    fn from(s: &Segment) -> Self {
        Self {
            call_sid: s.call_sid.to_string(),
            seq: s.seq,
            role: s.role.as_str().to_owned(),
            text: s.text.clone(),
            at: s.at,
        }
    }
}

/// A spill file written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spilled {
    /// Where.
    pub path: PathBuf,
    /// Segments in it.
    pub segments: usize,
    /// Calls they belong to.
    pub calls: usize,
}

/// What a replay did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Replayed {
    /// Files replayed and removed.
    pub files: usize,
    /// Segments read from them.
    pub segments: usize,
    /// Rows actually inserted (the others were already there, or their call is unknown).
    pub inserted: usize,
}

/// How the shutdown flush ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FlushOutcome {
    /// Everything is in the database.
    Flushed,
    /// The deadline passed with nothing left to write.
    NothingLeft,
    /// The rest went to a spill file.
    Spilled(Spilled),
    /// The rest could be neither written nor spilled.
    Lost {
        /// Segments lost.
        segments: usize,
        /// Calls they belong to.
        calls: usize,
    },
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> SpillError + '_ {
    move |source| SpillError::Io {
        path: path.to_owned(),
        source,
    }
}

/// The error and its causes, `: `-separated, for one log value.
fn error_chain(e: &dyn std::error::Error) -> String {
    Chain(e).to_string()
}

fn distinct_calls(segments: &[Segment]) -> usize {
    segments
        .iter()
        .map(|s| s.call_sid.as_str())
        .collect::<HashSet<_>>()
        .len()
}

/// Writes `segments` to a new spill file in `dir` (created if need be).
pub fn write(dir: &Path, instance_id: &str, segments: &[Segment]) -> Result<Spilled, SpillError> {
    std::fs::create_dir_all(dir).map_err(io_error(dir))?;
    // The instance id is ours, but a file name takes no chances.
    let instance: String = instance_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let name = format!(
        "segments-{}-{instance}.{EXTENSION}",
        Utc::now().format("%Y%m%dT%H%M%S%.3fZ")
    );
    let path = dir.join(name);
    let partial = path.with_extension("partial");
    let mut out = Vec::new();
    for segment in segments {
        serde_json::to_writer(&mut out, &SpilledSegment::from(segment))
            .map_err(SpillError::Encode)?;
        out.push(b'\n');
    }
    {
        let mut file = std::fs::File::create(&partial).map_err(io_error(&partial))?;
        file.write_all(&out).map_err(io_error(&partial))?;
        file.sync_all().map_err(io_error(&partial))?;
    }
    std::fs::rename(&partial, &path).map_err(io_error(&path))?;
    Ok(Spilled {
        path,
        segments: segments.len(),
        calls: distinct_calls(segments),
    })
}

/// Reads the segments of one spill file.
pub fn read(path: &Path) -> Result<Vec<Segment>, SpillError> {
    let text = std::fs::read_to_string(path).map_err(io_error(path))?;
    let mut segments = Vec::new();
    for (index, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let line_no = index + 1;
        let raw: SpilledSegment =
            serde_json::from_str(line).map_err(|source| SpillError::Parse {
                path: path.to_owned(),
                line: line_no,
                source,
            })?;
        let invalid = |field| SpillError::Invalid {
            path: path.to_owned(),
            line: line_no,
            field,
        };
        let call_sid = CallSid::parse(&raw.call_sid).map_err(|_| invalid("call_sid"))?;
        let role = match raw.role.as_str() {
            "user" => Role::User,
            "assistant" => Role::Assistant,
            _ => return Err(invalid("role")),
        };
        segments.push(Segment {
            call_sid,
            seq: raw.seq,
            role,
            text: raw.text,
            at: raw.at,
        });
    }
    Ok(segments)
}

/// The spill files in `dir`, oldest name first (none if it does not exist).
fn spill_files(dir: &Path) -> Result<Vec<PathBuf>, SpillError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(SpillError::Io {
                path: dir.to_owned(),
                source,
            })
        }
    };
    let mut files = Vec::new();
    for entry in entries {
        let path = entry.map_err(io_error(dir))?.path();
        if path.extension().and_then(|e| e.to_str()) == Some(EXTENSION) {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// Inserts every spill file of `dir` and removes each once it is all in.
pub async fn replay(pool: &AsyncPool, dir: &Path) -> Result<Replayed, SpillError> {
    let mut done = Replayed::default();
    for path in spill_files(dir)? {
        let segments = read(&path)?;
        let mut conn = pool.get().await.map_err(SpillError::Pool)?;
        for batch in segments.chunks(REPLAY_BATCH) {
            done.inserted += transcripts::insert_batch(&mut conn, batch).await?;
        }
        std::fs::remove_file(&path).map_err(io_error(&path))?;
        done.files += 1;
        done.segments += segments.len();
    }
    Ok(done)
}

/// Replays `dir` at start, logging the outcome; never fails the start (a
/// file that cannot be replayed stays for the next one).
pub async fn replay_at_start(pool: &AsyncPool, dir: &str) {
    if dir.is_empty() {
        return;
    }
    match replay(pool, Path::new(dir)).await {
        Ok(done) if done.files == 0 => {}
        Ok(done) => log::info!(
            "{} files={} segments={} inserted={} dir={dir:?}",
            events::PERSISTENCE_SPILL_REPLAYED,
            done.files,
            done.segments,
            done.inserted
        ),
        Err(e) => log::error!(
            "{} dir={dir:?} error={:?}",
            events::PERSISTENCE_SPILL_REPLAY_FAILED,
            error_chain(&e)
        ),
    }
}

/// The shutdown flush: waits up to `deadline` for every buffered segment to
/// be written; then takes what is left and spills it to `dir`. Logs one
/// ERROR line when anything was not written.
pub async fn flush_or_spill(
    persistence: &Addr<PersistenceActor>,
    deadline: Duration,
    dir: &str,
    instance_id: &str,
) -> FlushOutcome {
    if let Ok(Ok(())) = actix_rt::time::timeout(deadline, persistence.send(Flush)).await {
        return FlushOutcome::Flushed;
    }
    let unwritten = persistence.send(TakeUnwritten).await.unwrap_or_default();
    if unwritten.is_empty() {
        return FlushOutcome::NothingLeft;
    }
    let calls = distinct_calls(&unwritten);
    if dir.is_empty() {
        log::error!(
            "{} segments={} calls={calls} reason=\"no calls.spill_dir\"",
            events::PERSISTENCE_LOST,
            unwritten.len()
        );
        return FlushOutcome::Lost {
            segments: unwritten.len(),
            calls,
        };
    }
    match write(Path::new(dir), instance_id, &unwritten) {
        Ok(spilled) => {
            log::error!(
                "{} segments={} calls={} path={:?} deadline_ms={}",
                events::PERSISTENCE_SPILLED,
                spilled.segments,
                spilled.calls,
                spilled.path.display().to_string(),
                deadline.as_millis()
            );
            FlushOutcome::Spilled(spilled)
        }
        Err(e) => {
            log::error!(
                "{} segments={} calls={calls} error={:?}",
                events::PERSISTENCE_LOST,
                unwritten.len(),
                error_chain(&e)
            );
            FlushOutcome::Lost {
                segments: unwritten.len(),
                calls,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segment(call: &str, seq: u32, text: &str) -> Segment {
        Segment {
            call_sid: CallSid::parse(call).unwrap(),
            seq,
            role: if seq.is_multiple_of(2) {
                Role::Assistant
            } else {
                Role::User
            },
            text: text.to_owned(),
            at: Utc::now(),
        }
    }

    #[test]
    fn a_spill_file_reads_back_what_was_written() {
        // Arrange: text that needs escaping, two calls.
        let dir = std::env::temp_dir().join(format!("spill-{}", uuid::Uuid::new_v4().simple()));
        let segments = vec![
            segment("CA1", 0, "Hello \"there\"\nnew line"),
            segment("CA1", 1, "ünïcode"),
            segment("CA2", 0, "other call"),
        ];
        // Act
        let spilled = write(&dir, "host/1 x", &segments).unwrap();
        let back = read(&spilled.path).unwrap();
        // Assert
        assert_eq!((spilled.segments, spilled.calls), (3, 2));
        assert_eq!(back, segments);
        assert_eq!(spill_files(&dir).unwrap(), vec![spilled.path.clone()]);
        let name = spilled
            .path
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .to_owned();
        assert!(name.ends_with("-host_1_x.jsonl"), "{name}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_bad_line_names_its_file_and_line() {
        let dir = std::env::temp_dir().join(format!("spill-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("bad.jsonl");
        std::fs::write(
            &path,
            "{\"call_sid\":\"CA1\",\"seq\":0,\"role\":\"robot\",\"text\":\"x\",\"at\":\"2026-12-08T00:00:00Z\"}\n",
        )
        .unwrap();
        let err = read(&path).unwrap_err();
        assert!(
            matches!(
                err,
                SpillError::Invalid {
                    line: 1,
                    field: "role",
                    ..
                }
            ),
            "{err:?}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
