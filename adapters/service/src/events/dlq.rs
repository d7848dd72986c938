//! The dead-letter queue: a JSONL file of events that could not be delivered, one
//! `{"event":<event>,"error":"...","failedAt":"<ISO>","attempts":N}` per line, and its
//! replay.

use super::delivery::{dlq_line, DeadLetter};
use super::dispatch::DeliveryStats;
use super::sink::EventSink;
use crate::budget::StoreError;
use serde::de::IgnoredAny;
use serde_json::Value;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

/// A DLQ file. Appends from this process are serialised so lines never interleave; each
/// line is one `write` on a file opened in append mode, followed by `fsync`
/// (`sync_data`), before the append reports success. The file is opened per append, so a
/// replay that renames a new file into place is picked up by the next append.
///
/// The lock is a std mutex that is only taken on blocking threads (or by the blocking
/// [`append_blocking`](Self::append_blocking)), never held across an `.await`, so both the
/// async and the sync entry points can share it.
#[derive(Debug)]
pub struct DeadLetterQueue {
    path: PathBuf,
    lock: Arc<Mutex<()>>,
    stats: DeliveryStats,
}

impl DeadLetterQueue {
    /// A DLQ at `path` (parent directories are created on the first append); `stats.dlq_size`
    /// starts at the file's current line count.
    pub fn new(path: impl Into<PathBuf>, stats: DeliveryStats) -> DeadLetterQueue {
        let path = path.into();
        if let Ok(lines) = count_lines(&path) {
            stats.dlq_size.set(i64::try_from(lines).unwrap_or(i64::MAX));
        }
        DeadLetterQueue { path, lock: Arc::new(Mutex::new(())), stats }
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The counters this DLQ updates (`dead_lettered`, `dlq_size`).
    pub fn stats(&self) -> &DeliveryStats {
        &self.stats
    }

    /// Appends one event durably, on a blocking thread. If the file cannot be written, the
    /// line is printed to stderr (the last place left, so the event is not lost) and the
    /// error returned.
    pub async fn append(&self, event_json: &str, error: &str, attempts: u32) -> io::Result<()> {
        let line = dlq_line(event_json, error, attempts, now_unix_ms());
        let path = self.path.clone();
        let lock = Arc::clone(&self.lock);
        let written = tokio::task::spawn_blocking(move || {
            let result = locked_append(&lock, &path, &line);
            (line, result)
        })
        .await;
        match written {
            Ok((line, result)) => self.appended(&line, result),
            Err(join_error) => {
                let line = dlq_line(event_json, error, attempts, now_unix_ms());
                self.appended(&line, Err(io::Error::other(join_error)))
            }
        }
    }

    /// [`append`](Self::append) on the calling thread, for synchronous callers (it blocks
    /// for one write and one `fsync`).
    pub fn append_blocking(&self, event_json: &str, error: &str, attempts: u32) -> io::Result<()> {
        let line = dlq_line(event_json, error, attempts, now_unix_ms());
        let result = locked_append(&self.lock, &self.path, &line);
        self.appended(&line, result)
    }

    /// Counts a successful append, or reports a failed one with the line itself.
    fn appended(&self, line: &str, result: io::Result<()>) -> io::Result<()> {
        match result {
            Ok(()) => {
                self.stats.dead_lettered.inc();
                self.stats.dlq_size.inc();
                Ok(())
            }
            Err(error) => {
                eprintln!(
                    "warden events: cannot append to DLQ {}: {error}; dead letter follows: {line}",
                    self.path.display()
                );
                Err(error)
            }
        }
    }

    /// [`replay`] of this file, holding this DLQ's writer lock while the file is rewritten
    /// so appends from this process are never lost; updates `dlq_size`.
    pub async fn replay(&self, sink: &dyn EventSink) -> io::Result<ReplayReport> {
        let (report, lines) = replay_file(&self.path, sink, Some(Arc::clone(&self.lock))).await?;
        if let Some(lines) = lines {
            self.stats.dlq_size.set(i64::try_from(lines).unwrap_or(i64::MAX));
        }
        Ok(report)
    }
}

/// What [`replay`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReplayReport {
    /// Non-blank lines found.
    pub total: usize,
    /// Events the sink accepted; their lines were removed.
    pub delivered: usize,
    /// Lines still in the file: failed again, or unparsable.
    pub remaining: usize,
    /// Lines that are not DLQ entries, kept untouched (included in `remaining`).
    pub unparsable: usize,
}

/// Re-sends every event of the DLQ at `path` once, in order, and rewrites the file to keep
/// only the lines that were not delivered (failed again or unparsable, byte for byte).
/// The rewrite goes through a temporary file, `fsync` and an atomic rename; lines another
/// process appended meanwhile are carried over. A missing file is an empty DLQ. Replayed
/// events keep their idempotency keys, so a receiver that already saw one can drop it.
pub async fn replay(path: impl AsRef<Path>, sink: &dyn EventSink) -> io::Result<ReplayReport> {
    replay_file(path.as_ref(), sink, None).await.map(|(report, _)| report)
}

/// Whether a DLQ path can be written, and how many lines it holds, for readiness checks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DlqStatus {
    /// The DLQ file or, if it does not exist yet, its directory accepts writes.
    pub writable: bool,
    /// Lines in the file (0 when it does not exist).
    pub lines: u64,
    /// What went wrong, when something did.
    pub error: Option<String>,
}

/// Checks `path` for readiness: creates its parent directories if needed, opens the file
/// for appending (or creates and removes a probe file next to it when it does not exist
/// yet) and counts its lines. Blocking; call it from `spawn_blocking` in async code.
pub fn dlq_status(path: impl AsRef<Path>) -> DlqStatus {
    let path = path.as_ref();
    let (lines, count_error) = match count_lines(path) {
        Ok(lines) => (lines, None),
        Err(error) if error.kind() == io::ErrorKind::NotFound => (0, None),
        Err(error) => (0, Some(format!("cannot read {}: {error}", path.display()))),
    };
    match probe_writable(path) {
        Ok(()) => DlqStatus { writable: true, lines, error: count_error },
        Err(error) => {
            DlqStatus { writable: false, lines, error: Some(format!("cannot write {}: {error}", path.display())) }
        }
    }
}

fn now_unix_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn locked_append(lock: &Mutex<()>, path: &Path, line: &str) -> io::Result<()> {
    // The guarded data is `()`; a panic elsewhere cannot leave it inconsistent.
    let _writer = lock.lock().unwrap_or_else(PoisonError::into_inner);
    append_line(path, line)
}

/// Options for files that hold events: owner-only on Unix when created, because events can
/// carry user ids and (with `EVENTS_INCLUDE_RAW_TEXT`) raw text.
fn private_options() -> OpenOptions {
    let mut options = OpenOptions::new();
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options
}

fn create_parent(path: &Path) -> io::Result<()> {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => fs::create_dir_all(parent),
        _ => Ok(()),
    }
}

/// Appends `line` + newline with a single write, then `sync_data`. If the file ends in a
/// torn line (a crash mid-write), a newline is written first so the new entry stays
/// parseable and the torn one is kept apart for inspection.
fn append_line(path: &Path, line: &str) -> io::Result<()> {
    create_parent(path)?;
    let mut file = private_options().create(true).append(true).read(true).open(path)?;
    let mut bytes = Vec::with_capacity(line.len() + 2);
    if file.metadata()?.len() > 0 {
        let mut last = [0u8; 1];
        file.seek(SeekFrom::End(-1))?;
        file.read_exact(&mut last)?;
        if last != [b'\n'] {
            bytes.push(b'\n');
        }
    }
    bytes.extend_from_slice(line.as_bytes());
    bytes.push(b'\n');
    file.write_all(&bytes)?;
    file.sync_data()
}

/// Lines in the file; a final line without a newline counts.
fn count_lines(path: &Path) -> io::Result<u64> {
    let mut file = File::open(path)?;
    let mut buffer = vec![0u8; 64 * 1024];
    let mut lines = 0u64;
    let mut last = b'\n';
    loop {
        let read = file.read(&mut buffer)?;
        let Some(chunk) = buffer.get(..read).filter(|c| !c.is_empty()) else {
            break;
        };
        lines += chunk.iter().filter(|&&b| b == b'\n').count() as u64;
        last = chunk.last().copied().unwrap_or(last);
    }
    Ok(lines + u64::from(last != b'\n'))
}

fn probe_writable(path: &Path) -> io::Result<()> {
    create_parent(path)?;
    if path.exists() {
        return OpenOptions::new().append(true).open(path).map(drop);
    }
    let probe = sibling(path, "probe");
    File::create(&probe)?;
    fs::remove_file(&probe)
}

/// A hidden, unique file name next to `path`.
fn sibling(path: &Path, purpose: &str) -> PathBuf {
    let name = path.file_name().map_or_else(|| "dlq".into(), |n| n.to_string_lossy());
    path.with_file_name(format!(".{name}.{purpose}-{}", uuid::Uuid::new_v4()))
}

/// The event text of a DLQ line, or `None` when the line is not a DLQ entry. Lines written
/// by [`dlq_line`] start with the event embedded verbatim, and those exact bytes are
/// returned; other entries fall back to re-serialising the parsed event.
fn event_of(line: &[u8]) -> Option<String> {
    let entry: Value = serde_json::from_slice(line).ok()?;
    let event = entry.get("event")?;
    match event {
        Value::Null => None,
        Value::String(text) => Some(text.clone()),
        value => Some(verbatim_event(line).unwrap_or_else(|| value.to_string())),
    }
}

/// The bytes of the JSON value after a leading `{"event":`, if the line starts that way.
fn verbatim_event(line: &[u8]) -> Option<String> {
    let rest = line.strip_prefix(b"{\"event\":")?;
    let mut values = serde_json::Deserializer::from_slice(rest).into_iter::<IgnoredAny>();
    values.next()?.ok()?;
    let raw = rest.get(..values.byte_offset())?;
    std::str::from_utf8(raw).ok().map(str::to_owned)
}

/// Replays and rewrites; also returns the file's new line count when it was rewritten.
async fn replay_file(
    path: &Path,
    sink: &dyn EventSink,
    lock: Option<Arc<Mutex<()>>>,
) -> io::Result<(ReplayReport, Option<u64>)> {
    let snapshot = match tokio::fs::read(path).await {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok((ReplayReport::default(), None)),
        Err(error) => return Err(error),
    };
    // Only complete lines are replayed; a trailing fragment (a write in progress elsewhere,
    // or a torn one) is left where it is.
    let complete_len = snapshot.iter().rposition(|&b| b == b'\n').map_or(0, |at| at + 1);
    let complete = snapshot.get(..complete_len).unwrap_or_default();

    let mut report = ReplayReport::default();
    let mut kept = Vec::new();
    for line in complete.split(|&b| b == b'\n') {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        report.total += 1;
        let delivered = match event_of(line) {
            Some(event) => sink.send(&event).await.is_ok(),
            None => {
                report.unparsable += 1;
                false
            }
        };
        if delivered {
            report.delivered += 1;
        } else {
            kept.extend_from_slice(line);
            kept.push(b'\n');
        }
    }
    report.remaining = report.total - report.delivered;
    if report.delivered == 0 {
        return Ok((report, None));
    }

    let path = path.to_owned();
    let lines = tokio::task::spawn_blocking(move || {
        let _writer = lock.as_ref().map(|lock| lock.lock().unwrap_or_else(PoisonError::into_inner));
        rewrite(&path, &snapshot, complete_len, kept)
    })
    .await
    .map_err(io::Error::other)??;
    Ok((report, Some(lines)))
}

/// Replaces the file's first `replayed_len` bytes (which must still equal
/// `snapshot[..replayed_len]`) by `kept`, keeping anything appended after them. Returns the
/// new line count.
fn rewrite(path: &Path, snapshot: &[u8], replayed_len: usize, mut kept: Vec<u8>) -> io::Result<u64> {
    let current = fs::read(path)?;
    let unchanged = matches!(
        (current.get(..replayed_len), snapshot.get(..replayed_len)),
        (Some(now), Some(then)) if now == then
    );
    if !unchanged {
        return Err(io::Error::other(
            "the DLQ changed underneath the replay (another replay?); it was left as it is, \
             so delivered events will be re-sent with the same idempotency keys next time",
        ));
    }
    kept.extend_from_slice(current.get(replayed_len..).unwrap_or_default());

    let temporary = sibling(path, "replay");
    let written = (|| {
        let mut file = private_options().write(true).create_new(true).open(&temporary)?;
        // Keep whatever access the operator gave the original file.
        file.set_permissions(fs::metadata(path)?.permissions())?;
        file.write_all(&kept)?;
        file.sync_all()?;
        fs::rename(&temporary, path)
    })();
    if let Err(error) = written {
        // Best effort: the temporary file is garbage either way, and the error that matters
        // is the one returned.
        let _ = fs::remove_file(&temporary);
        return Err(error);
    }
    sync_parent(path)?;
    let newlines = kept.iter().filter(|&&b| b == b'\n').count() as u64;
    let torn = u64::from(kept.last().is_some_and(|&b| b != b'\n'));
    Ok(newlines + torn)
}

/// Makes the rename durable: on Unix a directory entry is persisted by fsyncing the
/// directory. Other systems do not support opening directories this way.
fn sync_parent(path: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        let parent = match path.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent,
            _ => Path::new("."),
        };
        File::open(parent)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        Ok(())
    }
}

#[async_trait::async_trait]
impl DeadLetter for DeadLetterQueue {
    async fn put(&self, event_json: &str, error: &str, attempts: u32) -> Result<(), StoreError> {
        self.append(event_json, error, attempts).await.map_err(|e| StoreError::new("dlq-file", e.to_string()))
    }
}
