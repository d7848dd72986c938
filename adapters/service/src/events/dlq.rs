//! The dead-letter queue: a JSONL file of events that could not be delivered, one
//! `{"event":<event>,"error":"...","failedAt":"<ISO>","attempts":N}` per line, and its
//! replay.
//!
//! One writer thread per [`DeadLetterQueue`] appends with group commit: every line submitted
//! while a commit is in progress goes into the next one, so many dead letters share one
//! `write` and one `fsync`. Each commit holds an advisory `flock` on `<file>.lock` next to the
//! DLQ, and so does the rewrite step of [`replay`], in whatever process it runs: an append
//! lands either before the rewrite reads the file's tail (and is carried over) or after the
//! new file is renamed into place (and goes into it). The lock file also records the line
//! count and byte size the last writer left, so readiness never reads the DLQ itself.
//!
//! What a crash can lose: lines submitted but not yet committed (at most the pending
//! buffer, [`DEFAULT_DLQ_PENDING_BYTES`], plus the commit in progress). A committed line is
//! on disk (`fsync`) before any durable append reports success. The lock is advisory and
//! `flock` is unreliable on network filesystems: keep the DLQ on a local disk. Other
//! platforms than Unix have no cross-process lock: do not replay there while a server runs.

use super::delivery::{dlq_line, DeadLetter};
use super::dispatch::DeliveryStats;
use super::sink::EventSink;
use crate::budget::StoreError;
use serde::de::IgnoredAny;
use serde_json::Value;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};

/// Bytes of dead letters waiting for the writer thread before a submitter waits for the
/// commit in progress (8 MiB).
pub const DEFAULT_DLQ_PENDING_BYTES: usize = 8 * 1024 * 1024;

/// Longest DLQ line replay reads; Warden's own lines are bounded by the request size limits.
const MAX_LINE_BYTES: usize = 64 * 1024 * 1024;

/// Where a durable append learns how its commit went.
type Done = SyncSender<Result<(), String>>;

/// Lines waiting for the writer thread.
#[derive(Default)]
struct Pending {
    /// The lines, each followed by a newline.
    buffer: Vec<u8>,
    lines: u64,
    waiters: Vec<Done>,
    /// Lines submitted and lines whose commit finished (well or not), for flushes.
    submitted: u64,
    finished: u64,
    /// The last commit's error, until a commit succeeds.
    last_error: Option<String>,
    /// Submits that found the buffer full and waited for a commit.
    waits: u64,
    closed: bool,
}

struct Shared {
    path: PathBuf,
    stats: DeliveryStats,
    pending_limit: usize,
    pending: Mutex<Pending>,
    /// Signalled whenever `pending` changes: lines arrived, room freed, a commit finished.
    changed: Condvar,
}

/// A DLQ file with its group-committing writer thread (see the module docs). Dropping it
/// commits what is pending and stops the thread.
pub struct DeadLetterQueue {
    shared: Arc<Shared>,
    writer: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for DeadLetterQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeadLetterQueue").field("path", &self.shared.path).finish_non_exhaustive()
    }
}

impl DeadLetterQueue {
    /// A DLQ at `path` (parent directories are created on the first append) with the default
    /// pending buffer; `stats.dlq_size` starts at the file's line count, read from the lock
    /// file, or counted once if that is missing or stale.
    pub fn new(path: impl Into<PathBuf>, stats: DeliveryStats) -> io::Result<DeadLetterQueue> {
        DeadLetterQueue::with_pending_limit(path, stats, DEFAULT_DLQ_PENDING_BYTES)
    }

    /// [`new`](Self::new) with at most `pending_limit` bytes waiting for the writer (one line
    /// is always accepted).
    pub fn with_pending_limit(
        path: impl Into<PathBuf>,
        stats: DeliveryStats,
        pending_limit: usize,
    ) -> io::Result<DeadLetterQueue> {
        let path = path.into();
        if let Ok(lines) = startup_count(&path) {
            stats.dlq_size.set(i64::try_from(lines).unwrap_or(i64::MAX));
        }
        let shared = Arc::new(Shared {
            path,
            stats,
            pending_limit,
            pending: Mutex::new(Pending::default()),
            changed: Condvar::new(),
        });
        let worker = Arc::clone(&shared);
        let writer = std::thread::Builder::new().name("warden-dlq".into()).spawn(move || worker.run())?;
        Ok(DeadLetterQueue { shared, writer: Some(writer) })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.shared.path
    }

    /// The counters this DLQ updates (`dead_lettered`, `dlq_size`).
    pub fn stats(&self) -> &DeliveryStats {
        &self.shared.stats
    }

    /// Hands one event to the writer thread without waiting for the disk, unless the pending
    /// buffer is full: then it waits until the commit in progress frees it. The line is on
    /// disk after the next group commit ([`flush`](Self::flush) waits for it). This is the
    /// request path's entry point.
    pub fn submit(&self, event_json: &str, error: &str, attempts: u32) -> io::Result<()> {
        self.shared.submit(dlq_line(event_json, error, attempts, now_unix_ms()), None)
    }

    /// [`submit`](Self::submit) for async callers: waits for room on a blocking thread.
    pub async fn submit_async(&self, event_json: &str, error: &str, attempts: u32) -> io::Result<()> {
        let line = dlq_line(event_json, error, attempts, now_unix_ms());
        let line = match self.shared.try_submit(line) {
            Ok(()) => return Ok(()),
            Err(line) => line,
        };
        let shared = Arc::clone(&self.shared);
        tokio::task::spawn_blocking(move || shared.submit(line, None)).await.map_err(io::Error::other)?
    }

    /// Appends one event durably: returns once its group commit is written and fsynced. If
    /// the file cannot be written, the line is printed to stderr (the last place left, so the
    /// event is not lost) and the error returned.
    pub async fn append(&self, event_json: &str, error: &str, attempts: u32) -> io::Result<()> {
        let line = dlq_line(event_json, error, attempts, now_unix_ms());
        let shared = Arc::clone(&self.shared);
        tokio::task::spawn_blocking(move || shared.append(line)).await.map_err(io::Error::other)?
    }

    /// [`append`](Self::append) on the calling thread (it blocks until the commit is done).
    pub fn append_blocking(&self, event_json: &str, error: &str, attempts: u32) -> io::Result<()> {
        self.shared.append(dlq_line(event_json, error, attempts, now_unix_ms()))
    }

    /// Waits until every line submitted so far is committed; the last commit's error, if any.
    pub async fn flush(&self) -> io::Result<()> {
        let shared = Arc::clone(&self.shared);
        tokio::task::spawn_blocking(move || shared.flush()).await.map_err(io::Error::other)?
    }

    /// [`flush`](Self::flush) on the calling thread.
    pub fn flush_blocking(&self) -> io::Result<()> {
        self.shared.flush()
    }

    /// How many submits found the pending buffer full and waited for a group commit: the
    /// only time a decision waits on the disk.
    pub fn waits(&self) -> u64 {
        self.shared.lock().waits
    }

    /// Readiness without reading the DLQ: [`dlq_status`], plus the last commit's error.
    pub fn status(&self) -> DlqStatus {
        let mut status = dlq_status(&self.shared.path);
        if let Some(lines) = status.lines {
            self.shared.stats.dlq_size.set(i64::try_from(lines).unwrap_or(i64::MAX));
        }
        if let Some(error) = self.shared.lock().last_error.clone() {
            status.writable = false;
            status.error = Some(format!("the last append failed: {error}"));
        }
        status
    }

    /// [`replay`] of this file; updates `dlq_size`.
    pub async fn replay(&self, sink: &dyn EventSink) -> io::Result<ReplayReport> {
        let (report, lines) = replay_file(&self.shared.path, sink).await?;
        if let Some(lines) = lines {
            self.shared.stats.dlq_size.set(i64::try_from(lines).unwrap_or(i64::MAX));
        }
        Ok(report)
    }
}

impl Drop for DeadLetterQueue {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.changed.notify_all();
        if let Some(writer) = self.writer.take() {
            // The writer commits what is pending before it ends; a panic there already
            // printed its message.
            let _ = writer.join();
        }
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Pending> {
        // Every update of `Pending` is completed before the guard drops; a panic elsewhere
        // cannot leave it half-changed.
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn wait<'a>(&self, guard: MutexGuard<'a, Pending>) -> MutexGuard<'a, Pending> {
        self.changed.wait(guard).unwrap_or_else(PoisonError::into_inner)
    }

    fn has_room(&self, pending: &Pending, line: &str) -> bool {
        pending.buffer.is_empty() || pending.buffer.len().saturating_add(line.len()) < self.pending_limit
    }

    /// Queues `line` if there is room now; hands it back otherwise.
    fn try_submit(&self, line: String) -> Result<(), String> {
        let mut pending = self.lock();
        if pending.closed || !self.has_room(&pending, &line) {
            return Err(line);
        }
        self.push(&mut pending, &line, None);
        Ok(())
    }

    /// Queues `line`, waiting for room; `done` hears how its commit went.
    fn submit(&self, line: String, done: Option<Done>) -> io::Result<()> {
        let mut pending = self.lock();
        if !pending.closed && !self.has_room(&pending, &line) {
            pending.waits += 1;
        }
        while !pending.closed && !self.has_room(&pending, &line) {
            pending = self.wait(pending);
        }
        if pending.closed {
            drop(pending);
            let error = io::Error::other("the DLQ writer has stopped");
            self.report_lost(&line, &error.to_string());
            return Err(error);
        }
        self.push(&mut pending, &line, done);
        Ok(())
    }

    fn push(&self, pending: &mut Pending, line: &str, done: Option<Done>) {
        pending.buffer.extend_from_slice(line.as_bytes());
        pending.buffer.push(b'\n');
        pending.lines += 1;
        pending.submitted += 1;
        pending.waiters.extend(done);
        self.changed.notify_all();
    }

    fn append(&self, line: String) -> io::Result<()> {
        let (done, outcome) = sync_channel(1);
        self.submit(line, Some(done))?;
        match outcome.recv() {
            Ok(result) => result.map_err(io::Error::other),
            Err(_) => Err(io::Error::other("the DLQ writer stopped before committing")),
        }
    }

    fn flush(&self) -> io::Result<()> {
        let mut pending = self.lock();
        let target = pending.submitted;
        while pending.finished < target {
            pending = self.wait(pending);
        }
        pending.last_error.clone().map_or(Ok(()), |error| Err(io::Error::other(error)))
    }

    fn report_lost(&self, lines: &str, error: &str) {
        eprintln!(
            "warden events: cannot append to DLQ {}: {error}; dead letter(s) follow:\n{}",
            self.path.display(),
            lines.trim_end()
        );
    }

    /// The writer thread: takes everything pending, commits it as one write and one fsync,
    /// repeats; ends once closed and drained.
    fn run(&self) {
        loop {
            let (batch, lines, waiters) = {
                let mut pending = self.lock();
                while pending.buffer.is_empty() && !pending.closed {
                    pending = self.wait(pending);
                }
                if pending.buffer.is_empty() {
                    return;
                }
                let batch = std::mem::take(&mut pending.buffer);
                let lines = std::mem::take(&mut pending.lines);
                let waiters = std::mem::take(&mut pending.waiters);
                // Room for submitters while this batch is written.
                self.changed.notify_all();
                (batch, lines, waiters)
            };
            let result = commit(&self.path, &batch, lines, &self.stats).map_err(|e| e.to_string());
            if let Err(error) = &result {
                self.report_lost(&String::from_utf8_lossy(&batch), error);
            }
            for waiter in waiters {
                // A waiter that gave up (its task was cancelled) needs no answer.
                let _ = waiter.send(result.clone());
            }
            let mut pending = self.lock();
            pending.finished += lines;
            pending.last_error = result.err();
            self.changed.notify_all();
        }
    }
}

/// One group commit, under the cross-process lock: appends `batch` (`lines` complete lines)
/// with one write, fsyncs, and records the new line count and size in the lock file.
fn commit(path: &Path, batch: &[u8], lines: u64, stats: &DeliveryStats) -> io::Result<()> {
    create_parent(path)?;
    let lock = open_lock(path)?;
    lock_exclusive(&lock)?;
    let mut file = private_options().create(true).append(true).read(true).open(path)?;
    let len = file.metadata()?.len();
    let before = match known_lines(&lock, len) {
        Some(lines) => lines,
        None => count_lines(path)?,
    };
    // A torn last line (a crash mid-write) gets its newline, so the new entries stay
    // parseable and the torn one is kept apart for inspection; it was already counted.
    let mut separator = 0;
    if len > 0 {
        let mut last = [0u8; 1];
        file.seek(SeekFrom::End(-1))?;
        file.read_exact(&mut last)?;
        if last != [b'\n'] {
            file.write_all(b"\n")?;
            separator = 1;
        }
    }
    file.write_all(batch)?;
    file.sync_data()?;
    let total = before.saturating_add(lines);
    // Best effort: a stale record costs one recount at the next append, nothing more.
    let _ = write_state(&lock, total, len + separator + batch.len() as u64);
    stats.dead_lettered.inc_by(lines);
    stats.dlq_size.set(i64::try_from(total).unwrap_or(i64::MAX));
    Ok(())
}

/// The line count at start-up: from the lock file when it matches the DLQ's size, else
/// counted once (and recorded, if the lock can be taken).
fn startup_count(path: &Path) -> io::Result<u64> {
    let len = match fs::metadata(path) {
        Ok(meta) => meta.len(),
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(error) => return Err(error),
    };
    if let Some(lines) = read_state(path).filter(|state| state.1 == len).map(|state| state.0) {
        return Ok(lines);
    }
    let lock = open_lock(path).and_then(|lock| lock_exclusive(&lock).map(|()| lock));
    let len = fs::metadata(path)?.len();
    let lines = count_lines(path)?;
    if let Ok(lock) = lock {
        // Best effort, as in `commit`.
        let _ = write_state(&lock, lines, len);
    }
    Ok(lines)
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
/// only the lines that were not delivered (failed again or unparsable, byte for byte), plus
/// every line appended meanwhile. The file is streamed (bounded memory); the kept lines go to
/// a temporary file, and under the DLQ's lock (see the module docs) the lines appended since
/// replay started are copied after them, then `fsync` and an atomic rename. Only one replay
/// of a file runs at a time (`<file>.replay.lock`); another one fails at once. A missing file
/// is an empty DLQ. Replayed events keep their idempotency keys, so a receiver that already
/// saw one can drop it.
pub async fn replay(path: impl AsRef<Path>, sink: &dyn EventSink) -> io::Result<ReplayReport> {
    replay_file(path.as_ref(), sink).await.map(|(report, _)| report)
}

/// Whether a DLQ path can be written, and how much it holds, for readiness checks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DlqStatus {
    /// The DLQ file or, if it does not exist yet, its directory accepts writes.
    pub writable: bool,
    /// Lines in the file as its last writer recorded them (0 when it does not exist);
    /// `None` when that record is missing or stale (e.g. the file was edited by hand).
    pub lines: Option<u64>,
    /// The file's size in bytes (0 when it does not exist).
    pub bytes: u64,
    /// What went wrong, when something did.
    pub error: Option<String>,
}

/// Checks `path` for readiness without reading it: its size, the line count its last writer
/// recorded in the lock file, and whether it opens for appending (or, when it does not exist
/// yet, whether a probe file can be created and removed next to it; parent directories are
/// created). Cheap, whatever the DLQ's size. Blocking; call it from `spawn_blocking` in
/// async code.
pub fn dlq_status(path: impl AsRef<Path>) -> DlqStatus {
    let path = path.as_ref();
    let (bytes, stat_error) = match fs::metadata(path) {
        Ok(meta) => (meta.len(), None),
        Err(error) if error.kind() == io::ErrorKind::NotFound => (0, None),
        Err(error) => (0, Some(format!("cannot stat {}: {error}", path.display()))),
    };
    let lines = if bytes == 0 && stat_error.is_none() {
        Some(0)
    } else {
        read_state(path).filter(|state| state.1 == bytes).map(|state| state.0)
    };
    match probe_writable(path) {
        Ok(()) => DlqStatus { writable: true, lines, bytes, error: stat_error },
        Err(error) => DlqStatus {
            writable: false,
            lines,
            bytes,
            error: Some(format!("cannot write {}: {error}", path.display())),
        },
    }
}

fn now_unix_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
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

/// `<file>.<suffix>` next to the DLQ.
fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let name = path.file_name().map_or_else(|| "dlq".into(), |n| n.to_string_lossy());
    path.with_file_name(format!("{name}.{suffix}"))
}

/// The lock file every appender and replay locks; it also holds the line-count record.
fn open_lock(path: &Path) -> io::Result<File> {
    private_options().read(true).write(true).create(true).truncate(false).open(with_suffix(path, "lock"))
}

#[cfg(unix)]
fn lock_exclusive(file: &File) -> io::Result<()> {
    rustix::fs::flock(file, rustix::fs::FlockOperation::LockExclusive).map_err(io::Error::from)
}

/// Takes the lock if it is free; `false` when another holder has it.
#[cfg(unix)]
fn try_lock_exclusive(file: &File) -> io::Result<bool> {
    match rustix::fs::flock(file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(true),
        Err(rustix::io::Errno::WOULDBLOCK) => Ok(false),
        Err(error) => Err(io::Error::from(error)),
    }
}

#[cfg(not(unix))]
fn lock_exclusive(_file: &File) -> io::Result<()> {
    Ok(())
}

#[cfg(not(unix))]
fn try_lock_exclusive(_file: &File) -> io::Result<bool> {
    Ok(true)
}

/// The record in the lock file: `<lines> <bytes>`, fixed width so a rewrite never leaves a
/// longer old value behind.
fn write_state(lock: &File, lines: u64, bytes: u64) -> io::Result<()> {
    let mut lock = lock;
    lock.seek(SeekFrom::Start(0))?;
    lock.write_all(format!("{lines:020} {bytes:020}\n").as_bytes())
}

fn parse_state(lock: &File) -> Option<(u64, u64)> {
    let mut lock = lock;
    lock.seek(SeekFrom::Start(0)).ok()?;
    let mut text = String::new();
    lock.take(64).read_to_string(&mut text).ok()?;
    let (lines, bytes) = text.trim_end().split_once(' ')?;
    Some((lines.parse().ok()?, bytes.parse().ok()?))
}

/// The recorded line count when the record matches the file's size `len`.
fn known_lines(lock: &File, len: u64) -> Option<u64> {
    parse_state(lock).filter(|state| state.1 == len).map(|state| state.0)
}

/// The record, read without taking the lock (a read racing a rewrite fails to parse or does
/// not match the size, and is then ignored).
fn read_state(path: &Path) -> Option<(u64, u64)> {
    File::open(with_suffix(path, "lock")).ok().as_ref().and_then(parse_state)
}

/// Lines in the file; a final line without a newline counts.
fn count_lines(path: &Path) -> io::Result<u64> {
    match File::open(path) {
        Ok(mut file) => count_newlines(&mut file, None).map(|(lines, _)| lines),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(0),
        Err(error) => Err(error),
    }
}

/// Reads `from` to its end, copying to `to` if given; returns (lines, bytes), a final line
/// without a newline counting as one.
fn count_newlines(from: &mut File, mut to: Option<&mut File>) -> io::Result<(u64, u64)> {
    let mut buffer = vec![0u8; 64 * 1024];
    let (mut lines, mut bytes) = (0u64, 0u64);
    let mut last = b'\n';
    loop {
        let read = from.read(&mut buffer)?;
        let Some(chunk) = buffer.get(..read).filter(|c| !c.is_empty()) else {
            break;
        };
        if let Some(to) = to.as_mut() {
            to.write_all(chunk)?;
        }
        lines += chunk.iter().filter(|&&b| b == b'\n').count() as u64;
        bytes += chunk.len() as u64;
        last = chunk.last().copied().unwrap_or(last);
    }
    Ok((lines + u64::from(last != b'\n'), bytes))
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

/// Device and inode: a replay must finish on the file it read, not one that replaced it.
#[cfg(unix)]
fn identity(meta: &fs::Metadata) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    (meta.dev(), meta.ino())
}

#[cfg(not(unix))]
fn identity(_meta: &fs::Metadata) -> (u64, u64) {
    (0, 0)
}

/// Replays and rewrites; also returns the file's new line count when it was rewritten.
async fn replay_file(path: &Path, sink: &dyn EventSink) -> io::Result<(ReplayReport, Option<u64>)> {
    let missing = |error: &io::Error| error.kind() == io::ErrorKind::NotFound;
    match fs::metadata(path) {
        Err(error) if missing(&error) => return Ok((ReplayReport::default(), None)),
        Err(error) => return Err(error),
        Ok(_) => {}
    }
    // Locked before the DLQ is opened, so a replay never reads a file another replay is
    // about to replace.
    let replaying =
        private_options().write(true).create(true).truncate(false).open(with_suffix(path, "replay.lock"))?;
    if !try_lock_exclusive(&replaying)? {
        return Err(io::Error::other("another `warden dlq replay` of this file is running"));
    }
    let file = match File::open(path) {
        Ok(file) => file,
        Err(error) if missing(&error) => return Ok((ReplayReport::default(), None)),
        Err(error) => return Err(error),
    };
    let meta = file.metadata()?;
    let temporary = sibling(path, "replay");
    let kept = private_options().write(true).create_new(true).open(&temporary)?;
    let mut kept = tokio::io::BufWriter::new(tokio::fs::File::from_std(kept));
    let mut reader = tokio::io::BufReader::new(tokio::fs::File::from_std(file).take(meta.len()));
    let streamed = stream(&mut reader, &mut kept, sink).await;
    let outcome = match streamed {
        Ok((report, _)) if report.delivered == 0 => Ok((report, None)),
        Ok((report, processed)) => match kept.flush().await {
            Ok(()) => {
                let kept = kept.into_inner().into_std().await;
                let (path, temporary_path) = (path.to_owned(), temporary.clone());
                let kept_lines = report.remaining as u64;
                let identity = identity(&meta);
                tokio::task::spawn_blocking(move || {
                    finish(&path, &temporary_path, kept, identity, processed, kept_lines)
                })
                .await
                .map_err(io::Error::other)
                .and_then(|finished| finished)
                .map(|lines| (report, Some(lines)))
            }
            Err(error) => Err(error),
        },
        Err(error) => Err(error),
    };
    if !matches!(outcome, Ok((_, Some(_)))) {
        // The temporary file is garbage unless it was renamed into place; the error that
        // matters is the one returned.
        let _ = fs::remove_file(&temporary);
    }
    drop(replaying);
    outcome
}

/// Re-sends every complete line of `reader`, writing the ones not delivered to `kept`;
/// returns the report and the bytes of complete lines read. An incomplete last line (being
/// written, or torn) is left for the tail copy.
async fn stream<R, W>(reader: &mut R, kept: &mut W, sink: &dyn EventSink) -> io::Result<(ReplayReport, u64)>
where
    R: tokio::io::AsyncBufRead + Unpin,
    W: tokio::io::AsyncWrite + Unpin,
{
    let mut report = ReplayReport::default();
    let mut processed = 0u64;
    let mut line = Vec::new();
    loop {
        line.clear();
        let read = (&mut *reader).take(MAX_LINE_BYTES as u64 + 1).read_until(b'\n', &mut line).await?;
        let Some(body) = line.strip_suffix(b"\n") else {
            if line.len() > MAX_LINE_BYTES {
                return Err(io::Error::other(format!(
                    "the line at byte {processed} is longer than {MAX_LINE_BYTES} bytes: not a Warden DLQ entry; \
                     move it out of the file and replay again"
                )));
            }
            break;
        };
        processed += read as u64;
        if body.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        report.total += 1;
        let delivered = match event_of(body) {
            Some(event) => sink.send(&event).await.is_ok(),
            None => {
                report.unparsable += 1;
                false
            }
        };
        if delivered {
            report.delivered += 1;
        } else {
            kept.write_all(body).await?;
            kept.write_all(b"\n").await?;
        }
    }
    report.remaining = report.total - report.delivered;
    Ok((report, processed))
}

/// Under the DLQ lock: checks the file is still the one replayed, copies what was appended
/// after the `processed` bytes into `kept`, and renames `kept` over the DLQ. Returns the new
/// line count (also recorded in the lock file).
fn finish(
    path: &Path,
    temporary: &Path,
    mut kept: File,
    replayed: (u64, u64),
    processed: u64,
    kept_lines: u64,
) -> io::Result<u64> {
    let lock = open_lock(path)?;
    lock_exclusive(&lock)?;
    let mut current = File::open(path)?;
    let meta = current.metadata()?;
    if identity(&meta) != replayed || meta.len() < processed {
        return Err(io::Error::other(
            "the DLQ was replaced or truncated during the replay; it was left as it is, so delivered events \
             will be re-sent with the same idempotency keys next time",
        ));
    }
    current.seek(SeekFrom::Start(processed))?;
    let (tail_lines, _) = count_newlines(&mut current, Some(&mut kept))?;
    // Keep whatever access the operator gave the original file.
    kept.set_permissions(meta.permissions())?;
    kept.sync_all()?;
    let bytes = kept.metadata()?.len();
    fs::rename(temporary, path)?;
    sync_parent(path)?;
    let lines = kept_lines + tail_lines;
    // Best effort, as in `commit`.
    let _ = write_state(&lock, lines, bytes);
    Ok(lines)
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
fn verbatim_event(line: &[u8]) -> Option<String> {
    let rest = line.strip_prefix(b"{\"event\":")?;
    let mut values = serde_json::Deserializer::from_slice(rest).into_iter::<IgnoredAny>();
    values.next()?.ok()?;
    let raw = rest.get(..values.byte_offset())?;
    std::str::from_utf8(raw).ok().map(str::to_owned)
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
