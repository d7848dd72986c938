//! The embedded budget store: one SQLite file (WAL mode) under `WARDEN_DATA_DIR`, the
//! single-machine default.
//!
//! **Decided in memory, answered when durable.** The store owns its file (SQLite's
//! `locking_mode = EXCLUSIVE`: a second process cannot open it while this one runs) and
//! keeps every user it has seen in a sharded in-memory ledger. A check-and-spend locks the
//! user's shard for a few hundred nanoseconds, assesses and records the spend there, and
//! queues the change to one writer thread. The writer takes every change waiting (up to
//! [`MAX_BATCH`]) and appends them to the spend log beside the file (`budgets.sqlite3-spends`,
//! see `spendlog`) with one write and one `fdatasync`. Only then is any spend of that window
//! answered. Every [`FOLD_EVERY`] (or sooner when the log fills, a user's spends are read or a
//! limit is set) the writer folds the logged spends into the SQLite file: one transaction for
//! all of them, one row update per user and one insert per transaction, which records the last
//! log block folded and commits with `synchronous = FULL`. Requests keep being decided while a
//! window syncs, so the next window is collected during the previous one's sync. So:
//!
//! - a spend that was answered is durable: a crash (process or machine) after the answer
//!   loses nothing; a crash before the log write completes loses only spends that were never
//!   answered. A restart folds the log blocks written after the file's last fold, then reads
//!   the file back exactly (users are loaded on first use);
//! - checks for one user are serialized by its shard's lock, and the file has one owner:
//!   concurrent requests never overspend. A check that saw an unanswered spend of another
//!   request is logged in the same window or a later one, so it is never durable without it;
//! - a failed log write answers every spend of its window with an error and drops the ledger,
//!   which is then reloaded from the file: memory never keeps a spend the disk does not have.
//!   A failed fold is tried again; logged spends stay in the log until one succeeds, and when
//!   the log is full, spends are refused with the fold's error.
//!
//! Requests that record nothing (warnings, denials, the policy refused) are answered from
//! memory without waiting for the disk.

use super::spendlog::{Spend, SpendLog};
use super::{BudgetSnapshot, BudgetStore, Row, SpendKind, SpendOutcome, SpendRequest, StoreError, Transaction};
use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use std::collections::{HashMap, HashSet};
use std::hash::BuildHasher;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError, Weak};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;
use warden_engine::budget::{period_key, Money};

/// The file name the budget database gets inside `WARDEN_DATA_DIR`.
pub const SQLITE_FILE_NAME: &str = "budgets.sqlite3";

/// What the spend log's file name adds to the database's.
const SPEND_LOG_SUFFIX: &str = "-spends";

/// How long opening waits for another process to release the file (e.g. the previous
/// instance still shutting down) before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Schema (GovernsAI's tables; amounts are integer micro-USD, times Unix seconds).
/// `monthly_limit` NULL means "the configured default limit". A user's transactions are
/// numbered from the `last_tx_id` of its row and kept in one `WITHOUT ROWID` table keyed by
/// `(user_id, id)`: a window's spends for a user touch two pages (its row and its
/// transactions), not five (a rowid table, its per-user index and AUTOINCREMENT's sequence).
/// Ids increase per user, as in the Redis store.
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS budgets (
    user_id        TEXT PRIMARY KEY NOT NULL,
    monthly_limit  INTEGER,
    current_spend  INTEGER NOT NULL DEFAULT 0,
    llm_spend      INTEGER NOT NULL DEFAULT 0,
    purchase_spend INTEGER NOT NULL DEFAULT 0,
    period         TEXT NOT NULL,
    updated_at     INTEGER NOT NULL,
    last_tx_id     INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS budget_transactions (
    user_id    TEXT NOT NULL,
    id         INTEGER NOT NULL,
    kind       TEXT NOT NULL CHECK (kind IN ('llm', 'purchase')),
    amount     INTEGER NOT NULL,
    tool       TEXT NOT NULL,
    corr_id    TEXT,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (user_id, id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS budget_spend_log (
    id     INTEGER PRIMARY KEY CHECK (id = 0),
    folded INTEGER NOT NULL,
    log_id INTEGER NOT NULL
);
INSERT OR IGNORE INTO budget_spend_log (id, folded, log_id) VALUES (0, 0, random());
";

/// `PRAGMA user_version` of a file with [`SCHEMA`]. Version 2 had no `budget_spend_log` (the
/// number of the last spend log block folded into the file and the id of the log's blocks):
/// [`SCHEMA`] adds it. Files without a version (0) were written by the first release (a rowid
/// transactions table with AUTOINCREMENT ids and an index by user): they are converted once,
/// at open, keeping every id: [`SET_ASIDE_FIRST_RELEASE`], then [`SCHEMA`] creates the current
/// tables, then [`COPY_FIRST_RELEASE`].
const SCHEMA_VERSION: i64 = 3;

const SET_ASIDE_FIRST_RELEASE: &str = "
ALTER TABLE budgets ADD COLUMN last_tx_id INTEGER NOT NULL DEFAULT 0;
ALTER TABLE budget_transactions RENAME TO budget_transactions_1;
";

const COPY_FIRST_RELEASE: &str = "
INSERT INTO budget_transactions (user_id, id, kind, amount, tool, corr_id, created_at)
    SELECT user_id, id, kind, amount, tool, corr_id, created_at FROM budget_transactions_1;
UPDATE budgets SET last_tx_id =
    COALESCE((SELECT MAX(id) FROM budget_transactions t WHERE t.user_id = budgets.user_id), 0);
DROP TABLE budget_transactions_1;
";

/// Most queued changes written by one transaction.
pub const MAX_BATCH: usize = 512;

/// Longest a window waits to gather the jobs it expects (see [`writer`]).
const GATHER_MAX: Duration = Duration::from_micros(500);

/// A window waits at most this fraction of the previous window's time (commit and sync):
/// waiting only pays when the sync is slow.
const GATHER_SHARE: u32 = 4;

/// No wait below this (windows faster than 1 ms): with a fast sync, holding clients costs
/// more throughput than the commits it saves (measured on tmpfs and a 0.09 ms disk).
const GATHER_MIN: Duration = Duration::from_micros(250);

/// Ledger shards (independent locks).
const SHARDS: usize = 16;

/// Users kept in memory per shard; beyond that an arbitrary user is dropped from memory (it
/// is reloaded from the file on its next request), so caller-chosen user ids cannot grow
/// memory without bound.
const USERS_PER_SHARD: usize = 4096;

/// Times a request reloads a user whose row was dropped from memory while it was loading
/// before giving up with an error.
const LOAD_ATTEMPTS: usize = 4;

/// Folds between WAL checkpoints. Checkpoints run on the writer after a window has been
/// answered (not inside a commit, as SQLite's automatic checkpoint would), so no request
/// waits for one beyond the next window's start.
const CHECKPOINT_EVERY: u32 = 64;

/// Longest a logged spend waits to be folded into the file. Each fold costs a commit, so
/// under load it carries the spends of tens of windows.
const FOLD_EVERY: Duration = Duration::from_millis(5);

/// A fold starts early when this share of the log is unfolded, so windows rarely wait for one.
const FOLD_AT_SHARE: u64 = 4;

/// How a user's monthly total moves in the file: added to the stored spend when the stored
/// row is in the same period, replacing it otherwise (the month rolled over).
const UPSERT_SPEND: &str = "
INSERT INTO budgets (user_id, monthly_limit, current_spend, llm_spend, purchase_spend, period, updated_at, last_tx_id)
VALUES (?1, NULL, ?2 + ?3, ?2, ?3, ?4, ?5, ?6)
ON CONFLICT (user_id) DO UPDATE SET
  current_spend = CASE WHEN period = excluded.period
    THEN llm_spend + purchase_spend + excluded.current_spend ELSE excluded.current_spend END,
  llm_spend = CASE WHEN period = excluded.period THEN llm_spend + excluded.llm_spend ELSE excluded.llm_spend END,
  purchase_spend = CASE WHEN period = excluded.period
    THEN purchase_spend + excluded.purchase_spend ELSE excluded.purchase_spend END,
  period = excluded.period,
  updated_at = excluded.updated_at,
  last_tx_id = excluded.last_tx_id";

/// How long budget transactions are kept: thirteen months, so a year can be compared.
pub const TRANSACTION_RETENTION_SECS: i64 = 396 * 24 * 3600;

fn db_error(e: rusqlite::Error) -> StoreError {
    StoreError::new("sqlite", e.to_string())
}

fn stopped() -> StoreError {
    StoreError::new("sqlite", "the writer thread has stopped")
}

/// Budgets in a SQLite file. Cloning, and opening the same file again in this process, share
/// the ledger and the writer thread.
#[derive(Clone, Debug)]
pub struct SqliteBudgetStore {
    shared: Arc<Shared>,
    default_limit: Money,
}

/// One open file: its ledger and its writer. Dropping the last handle stops the writer after
/// it has written everything queued, and closes the file.
#[derive(Debug)]
struct Shared {
    ledger: Arc<Ledger>,
    queue: Queue,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
    path: PathBuf,
}

impl Drop for Shared {
    fn drop(&mut self) {
        let _ = self.queue.send(Job::Stop);
        let writer = self.writer.get_mut().unwrap_or_else(PoisonError::into_inner).take();
        if let Some(writer) = writer {
            // Waits for at most one window: the file is closed (and its lock released) when
            // this returns, so it can be reopened at once.
            let _ = writer.join();
        }
    }
}

/// Files open in this process, by canonical path: a second `open` shares the first one's
/// ledger (two ledgers on one file could each allow the last dollar).
static OPEN: Mutex<Vec<(PathBuf, Weak<Shared>)>> = Mutex::new(Vec::new());

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section here completes its update before releasing the lock (no
    // fallible step in between), so a poisoned lock still guards consistent data.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The in-memory state of every user in use, sharded by user id.
#[derive(Debug)]
struct Ledger {
    shards: [Mutex<Shard>; SHARDS],
    hasher: std::collections::hash_map::RandomState,
}

#[derive(Debug, Default)]
struct Shard {
    rows: HashMap<String, Cached>,
    /// Numbers the changes queued by this shard, in queue order.
    queued: u64,
    /// A row read by a load queued at or before this number may miss a change: a user with
    /// a change queued after that read was dropped from memory.
    stale_upto: u64,
}

/// A user in memory.
#[derive(Debug)]
struct Cached {
    row: Row,
    /// The number of the user's last queued change.
    changed_at: u64,
}

impl Shard {
    fn next(&mut self) -> u64 {
        self.queued = self.queued.saturating_add(1);
        self.queued
    }

    /// Drops `user` from memory; a read queued before its last change must not bring it back.
    fn forget(&mut self, user: &str) {
        if let Some(gone) = self.rows.remove(user) {
            self.stale_upto = self.stale_upto.max(gone.changed_at);
        }
    }

    /// Keeps a row read by a load queued as `read_at`, unless memory already has the user
    /// (another request loaded it first: memory is newer) or the read may be stale (the
    /// caller loads again).
    fn adopt(&mut self, user: &str, row: Row, read_at: u64) {
        if self.rows.contains_key(user) || read_at <= self.stale_upto {
            return;
        }
        if self.rows.len() >= USERS_PER_SHARD {
            if let Some(victim) = self.rows.keys().next().cloned() {
                self.forget(&victim);
            }
        }
        self.rows.insert(user.to_owned(), Cached { row, changed_at: 0 });
    }

    /// Runs `f` on `user`'s row if it is in memory (`None` if not). A change `f` queues is
    /// numbered as the user's last; if it cannot be queued (the writer stopped), the user
    /// is dropped from memory, which may already hold the change.
    fn apply<T>(
        &mut self,
        user: &str,
        queue: &Queue,
        f: &mut impl FnMut(&mut Row, &mut dyn FnMut(Job) -> Result<(), StoreError>) -> Result<T, StoreError>,
    ) -> Option<Result<T, StoreError>> {
        let cached = self.rows.get_mut(user)?;
        let mut queued = None;
        let mut send = |job: Job| {
            queued = Some(queue.send(job).is_ok());
            if queued == Some(true) {
                Ok(())
            } else {
                Err(stopped())
            }
        };
        let out = f(&mut cached.row, &mut send);
        match queued {
            Some(true) => {
                let at = self.next();
                if let Some(cached) = self.rows.get_mut(user) {
                    cached.changed_at = at;
                }
            }
            Some(false) => self.forget(user),
            None => {}
        }
        Some(out)
    }
}

impl Ledger {
    fn new() -> Ledger {
        Ledger {
            shards: std::array::from_fn(|_| Mutex::new(Shard::default())),
            hasher: std::collections::hash_map::RandomState::new(),
        }
    }

    fn shard(&self, user: &str) -> &Mutex<Shard> {
        let i = usize::try_from(self.hasher.hash_one(user) % SHARDS as u64).unwrap_or(0);
        self.shards.get(i).unwrap_or(&self.shards[0])
    }

    /// After a failed commit: memory may hold changes the file does not; start over from it.
    fn forget_all(&self) {
        for shard in &self.shards {
            let mut s = lock(shard);
            s.rows.clear();
            s.stale_upto = s.queued;
        }
    }
}

/// The writer's queue. Besides the channel, senders count what they send, so a writer
/// gathering a window sleeps until the job it waits for is sent (one wake-up per window)
/// instead of being woken by every send or polling.
#[derive(Debug)]
struct Queue {
    jobs: mpsc::Sender<Job>,
    gate: Arc<Gate>,
}

#[derive(Debug, Default)]
struct Gate {
    /// Jobs sent so far.
    sent: AtomicU64,
    /// While the writer gathers: the value of `sent` it waits for (0: not waiting).
    want: AtomicU64,
    writer: OnceLock<std::thread::Thread>,
}

impl Queue {
    fn send(&self, job: Job) -> Result<(), StoreError> {
        self.jobs.send(job).map_err(|_| stopped())?;
        // Counted after the send, so a writer that sees the count finds the job in the channel.
        let sent = self.gate.sent.fetch_add(1, Ordering::SeqCst).wrapping_add(1);
        if sent == self.gate.want.load(Ordering::SeqCst) {
            if let Some(writer) = self.gate.writer.get() {
                writer.unpark();
            }
        }
        Ok(())
    }
}

/// A recorded spend to write.
#[derive(Debug)]
struct SpendWrite {
    spend: Spend,
    done: oneshot::Sender<Result<(), StoreError>>,
}

/// Work for the writer thread, in queue order.
#[derive(Debug)]
enum Job {
    Spend(SpendWrite),
    SetLimit { user: String, limit: Money, done: oneshot::Sender<Result<(), StoreError>> },
    Load { user: String, done: oneshot::Sender<Result<Option<Row>, StoreError>> },
    Transactions { user: String, limit: i64, done: oneshot::Sender<Result<Vec<Transaction>, StoreError>> },
    Ping { done: oneshot::Sender<Result<(), StoreError>> },
    Stop,
}

impl SqliteBudgetStore {
    /// Opens (creating if needed, with parent directories) the database at `path`, in WAL
    /// mode, owned by this process, and creates the tables. Users without an explicit limit
    /// get `default_limit`. Fails if another process has the file open. Blocking: call it at
    /// startup.
    pub fn open(path: impl AsRef<Path>, default_limit: Money) -> Result<SqliteBudgetStore, StoreError> {
        let path = path.as_ref().to_path_buf();
        let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir)
            .map_err(|e| StoreError::new("sqlite", format!("cannot create {}: {e}", dir.display())))?;
        let key = std::fs::canonicalize(dir)
            .map_err(|e| StoreError::new("sqlite", format!("cannot open {}: {e}", dir.display())))?
            .join(path.file_name().unwrap_or(path.as_os_str()));
        let mut open = lock(&OPEN);
        open.retain(|(_, shared)| shared.strong_count() > 0);
        if let Some(shared) = open.iter().filter(|(p, _)| *p == key).find_map(|(_, s)| s.upgrade()) {
            return Ok(SqliteBudgetStore { shared, default_limit });
        }
        let conn = open_connection(&path)?;
        let state = Writer::open(conn, &path)?;
        let ledger = Arc::new(Ledger::new());
        let (tx, jobs) = mpsc::channel::<Job>();
        let gate = Arc::new(Gate::default());
        let queue = Queue { jobs: tx, gate: Arc::clone(&gate) };
        let writer_ledger = Arc::clone(&ledger);
        let writer = std::thread::Builder::new()
            .name(String::from("warden-budgets"))
            .spawn(move || {
                let _ = gate.writer.set(std::thread::current());
                writer(state, &jobs, &gate, &writer_ledger)
            })
            .map_err(|e| StoreError::new("sqlite", format!("cannot start the writer thread: {e}")))?;
        let shared = Arc::new(Shared { ledger, queue, writer: Mutex::new(Some(writer)), path });
        open.push((key, Arc::downgrade(&shared)));
        Ok(SqliteBudgetStore { shared, default_limit })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.shared.path
    }

    fn send(&self, job: Job) -> Result<(), StoreError> {
        self.shared.queue.send(job)
    }

    /// Queues a read of `user`'s stored row; returns it with the read's place in the shard's
    /// order (see [`Shard::adopt`]).
    async fn load(&self, shard: &Mutex<Shard>, user: &str) -> Result<(Option<Row>, u64), StoreError> {
        let (done, answer) = oneshot::channel();
        let read_at = {
            let mut s = lock(shard);
            let read_at = s.next();
            self.send(Job::Load { user: user.to_owned(), done })?;
            read_at
        };
        let row = answer.await.map_err(|_| stopped())??;
        Ok((row, read_at))
    }

    /// Runs `f` on `user`'s row in memory (loading it from the file first if needed), under
    /// the shard's lock. `f` may queue a change for the writer through the function it is
    /// given: queued under the lock, so the file sees one user's changes in the order memory
    /// made them.
    async fn with_row<T>(
        &self,
        user: &str,
        period: &str,
        mut f: impl FnMut(&mut Row, &mut dyn FnMut(Job) -> Result<(), StoreError>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let shard = self.shared.ledger.shard(user);
        let mut loaded: Option<(Row, u64)> = None;
        for _ in 0..LOAD_ATTEMPTS {
            {
                let mut s = lock(shard);
                if let Some((row, read_at)) = loaded.take() {
                    s.adopt(user, row, read_at);
                }
                if let Some(out) = s.apply(user, &self.shared.queue, &mut f) {
                    return out;
                }
            }
            let (row, read_at) = self.load(shard, user).await?;
            let mut row = row.unwrap_or_else(|| Row::new(period.to_owned()));
            row.roll_to(period);
            loaded = Some((row, read_at));
        }
        Err(StoreError::new("sqlite", "the user's budget kept changing while it was loaded; try again"))
    }
}

/// Opens the file for this process alone.
fn open_connection(path: &Path) -> Result<Connection, StoreError> {
    let mut conn = Connection::open(path)
        .map_err(|e| StoreError::new("sqlite", format!("cannot open {}: {e}", path.display())))?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(db_error)?;
    // The ledger in memory is the truth between commits, so no other connection may write
    // (or read half-answered state): the lock is taken on first access and held until close.
    // Without shared memory, WAL needs no `-shm` file either.
    let _: String = conn.query_row("PRAGMA locking_mode = EXCLUSIVE", [], |row| row.get(0)).map_err(db_error)?;
    let mode: String =
        conn.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0)).map_err(|e| in_use(path, e))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::new("sqlite", format!("{} does not support WAL mode (got {mode})", path.display())));
    }
    // FULL: every commit syncs the WAL, so an answered spend survives an OS crash too;
    // group commit makes that one sync per window.
    conn.pragma_update(None, "synchronous", "FULL").map_err(db_error)?;
    conn.pragma_update(None, "wal_autocheckpoint", 0).map_err(db_error)?;
    create_or_migrate(&mut conn).map_err(|e| in_use(path, e))?;
    Ok(conn)
}

/// Creates the tables, or brings a file of an earlier version to [`SCHEMA_VERSION`], in one
/// transaction (a crash midway leaves the file as it was).
fn create_or_migrate(conn: &mut Connection) -> Result<(), rusqlite::Error> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let version: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let first_release: bool = tx.query_row(
        "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'budget_transactions')",
        [],
        |r| r.get(0),
    )?;
    if version > SCHEMA_VERSION {
        return Err(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_MISMATCH),
            Some(format!("the budget file has schema version {version}, newer than this release's {SCHEMA_VERSION}")),
        ));
    }
    let convert = version == 0 && first_release;
    if convert {
        tx.execute_batch(SET_ASIDE_FIRST_RELEASE)?;
    }
    tx.execute_batch(SCHEMA)?;
    if convert {
        tx.execute_batch(COPY_FIRST_RELEASE)?;
    }
    tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
    tx.commit()
}

/// A busy database at open means another process owns it.
fn in_use(path: &Path, e: rusqlite::Error) -> StoreError {
    if e.sqlite_error_code() == Some(rusqlite::ErrorCode::DatabaseBusy) {
        return StoreError::new(
            "sqlite",
            format!(
                "{} is in use by another process; one process owns a budget file (use REDIS_URL to share budgets between instances)",
                path.display()
            ),
        );
    }
    db_error(e)
}

/// The writer thread: one spend log write per window of queued jobs, and a fold of the
/// logged spends into the file every [`FOLD_EVERY`]. Ends on [`Job::Stop`] (or when every
/// sender is gone) after writing everything queued before it.
///
/// **Gathering.** Every window costs a log write and a sync and wakes the threads waiting
/// for it, whatever its size, so under load bigger windows cost less per request.
/// Concurrent clients answered by one window come back with their next request, so the
/// writer expects the previous window's jobs again plus the jobs that were already queued
/// when it answered them (clients of another window, which would otherwise settle into
/// windows alternating with it, each paying a sync). When the previous window had several
/// jobs it waits for that many, at most a quarter of the previous window's time and at most
/// [`GATHER_MAX`]. With a fast sync (windows under 1 ms) it does not wait at all; a lone
/// client never waits.
fn writer(mut w: Writer, jobs: &mpsc::Receiver<Job>, gate: &Gate, ledger: &Ledger) {
    let mut taken = 0u64;
    let mut expected = 0usize;
    let mut wait = Duration::ZERO;
    // Blocking without a timeout: a thread woken by its timer costs a context switch per
    // window under load. Logged spends wait for the next window or a read: they are durable.
    while let Ok(first) = jobs.recv() {
        let mut window = vec![first];
        taken = taken.wrapping_add(1);
        drain(jobs, &mut window, &mut taken);
        if expected > 1 && window.len() < expected && wait >= GATHER_MIN {
            gather(jobs, gate, &mut window, &mut taken, expected, wait);
        }
        let size = window.len();
        let started = Instant::now();
        let (sent, stop) = w.run_window(window, gate, ledger);
        wait = (started.elapsed() / GATHER_SHARE).min(GATHER_MAX);
        let carried = usize::try_from(sent.saturating_sub(taken)).unwrap_or(MAX_BATCH);
        expected = size.saturating_add(carried);
        if stop {
            break;
        }
        if w.fold_due().is_some_and(|due| due <= Instant::now()) || w.log_filling() {
            // A failed fold is tried again at the next one.
            let _ = w.fold();
        }
    }
    let _ = w.fold();
    w.checkpoint();
}

/// Takes every job waiting, up to [`MAX_BATCH`] in the window.
fn drain(jobs: &mpsc::Receiver<Job>, window: &mut Vec<Job>, taken: &mut u64) {
    while window.len() < MAX_BATCH {
        match jobs.try_recv() {
            Ok(job) => {
                window.push(job);
                *taken = taken.wrapping_add(1);
            }
            Err(_) => break,
        }
    }
}

/// Waits until the window holds `target` jobs (or [`MAX_BATCH`]), at most `wait`.
fn gather(
    jobs: &mpsc::Receiver<Job>,
    gate: &Gate,
    window: &mut Vec<Job>,
    taken: &mut u64,
    target: usize,
    wait: Duration,
) {
    let target = target.min(MAX_BATCH);
    let deadline = Instant::now() + wait;
    let base = taken.wrapping_sub(window.len() as u64);
    let want = base.wrapping_add(target as u64);
    gate.want.store(want, Ordering::SeqCst);
    while window.len() < target && !window.iter().any(|job| matches!(job, Job::Stop)) {
        // A sender that counted `want` before the store above did not wake us: look first.
        if gate.sent.load(Ordering::SeqCst) < want {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            std::thread::park_timeout(deadline - now);
        }
        let before = window.len();
        drain(jobs, window, taken);
        if window.len() == before && Instant::now() >= deadline {
            break;
        }
    }
    gate.want.store(0, Ordering::SeqCst);
}

/// The writer thread's state: the file, the spend log, and the spends logged since the last
/// fold.
struct Writer {
    conn: Connection,
    log: SpendLog,
    /// The last log block folded into the file.
    folded: u64,
    /// Spends in the log and not yet in the file, in log order, up to block `logged`.
    unfolded: Vec<Spend>,
    logged: u64,
    /// The users of `unfolded`: reading one from the file folds first.
    users: HashSet<String>,
    /// When the oldest unfolded spend was logged (after a failed fold: when it failed).
    since: Option<Instant>,
    /// The last fold failed: the next is tried after [`FOLD_EVERY`], or when the log is full.
    failing: bool,
    folds: u32,
}

impl Writer {
    /// Opens the spend log beside the file and folds what the last run logged after its last
    /// fold.
    fn open(conn: Connection, path: &Path) -> Result<Writer, StoreError> {
        let (folded, id): (i64, i64) = conn
            .query_row("SELECT folded, log_id FROM budget_spend_log WHERE id = 0", [], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(db_error)?;
        let mut log_path = path.as_os_str().to_owned();
        log_path.push(SPEND_LOG_SUFFIX);
        let log_path = PathBuf::from(log_path);
        let folded = u64::try_from(folded).unwrap_or(0);
        let (log, unfolded, logged) = SpendLog::open(&log_path, u64::from_ne_bytes(id.to_ne_bytes()), folded)
            .map_err(|e| StoreError::new("sqlite", format!("cannot open the spend log {}: {e}", log_path.display())))?;
        let users = unfolded.iter().map(|s| s.user.clone()).collect();
        let since = (!unfolded.is_empty()).then(Instant::now);
        let mut w = Writer { conn, log, folded, unfolded, logged, users, since, failing: false, folds: 0 };
        w.fold().map_err(|e| {
            StoreError::new(
                "sqlite",
                format!("cannot fold the spend log {} into {}: {e}", log_path.display(), path.display()),
            )
        })?;
        Ok(w)
    }

    /// When the unfolded spends must be folded, if there are any.
    fn fold_due(&self) -> Option<Instant> {
        self.since.map(|since| since + FOLD_EVERY)
    }

    fn log_filling(&self) -> bool {
        !self.failing && self.log.unfolded(self.folded) >= self.log.blocks() / FOLD_AT_SHARE
    }

    /// Writes the unfolded spends into the file in one transaction, with the number of the
    /// last block they came from. On failure the file is as it was and they stay unfolded.
    fn fold(&mut self) -> Result<(), StoreError> {
        if self.unfolded.is_empty() {
            return Ok(());
        }
        roll_back(&self.conn);
        let out = self.write_fold();
        if out.is_err() {
            roll_back(&self.conn);
            // Tried again after another FOLD_EVERY, not at once.
            self.since = Some(Instant::now());
            self.failing = true;
            return out;
        }
        self.failing = false;
        self.folded = self.logged;
        self.unfolded.clear();
        self.users.clear();
        self.since = None;
        self.folds = self.folds.saturating_add(1);
        if self.folds >= CHECKPOINT_EVERY {
            self.checkpoint();
        }
        Ok(())
    }

    fn write_fold(&self) -> Result<(), StoreError> {
        // BEGIN and COMMIT are cached statements, not parsed again by every fold.
        run_cached(&self.conn, "BEGIN IMMEDIATE").map_err(db_error)?;
        let mut pending: HashMap<&str, Pending> = HashMap::new();
        for spend in &self.unfolded {
            add_spend(&self.conn, &mut pending, spend)?;
        }
        for (user, p) in pending.drain() {
            save_spend(&self.conn, user, &p).map_err(db_error)?;
        }
        self.conn
            .prepare_cached("UPDATE budget_spend_log SET folded = ?1 WHERE id = 0")
            .and_then(|mut stmt| stmt.execute(params![i64::try_from(self.logged).unwrap_or(i64::MAX)]))
            .map_err(db_error)?;
        run_cached(&self.conn, "COMMIT").map_err(db_error)
    }

    fn checkpoint(&mut self) {
        // A failed checkpoint leaves the WAL longer; the next one catches up.
        let _ = self.conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
        self.folds = 0;
    }

    /// Folds first if `user` has unfolded spends, so the file has them.
    fn fold_for(&mut self, user: &str) -> Result<(), StoreError> {
        if self.users.contains(user) {
            self.fold()
        } else {
            Ok(())
        }
    }

    /// Logs the window's spends, answers them, then runs its other jobs in order. Returns how
    /// many jobs had been sent when the spends were answered, and whether it held a stop.
    fn run_window(&mut self, window: Vec<Job>, gate: &Gate, ledger: &Ledger) -> (u64, bool) {
        let (mut spends, mut others) = (Vec::new(), Vec::new());
        for job in window {
            match job {
                Job::Spend(w) => spends.push(w),
                other => others.push(other),
            }
        }
        let logged = if spends.is_empty() { Ok(()) } else { self.log_spends(&spends) };
        // A window that could not be logged: forget what memory decided before answering
        // anyone, so no later check builds on it.
        if logged.is_err() {
            ledger.forget_all();
        }
        let sent = gate.sent.load(Ordering::SeqCst);
        // A window of reads alone starts no fold clock.
        if logged.is_ok() && !spends.is_empty() {
            self.since.get_or_insert_with(Instant::now);
        }
        for SpendWrite { spend, done } in spends {
            // A caller that went away (a cancelled request) needs no answer.
            let _ = done.send(logged.clone());
            if logged.is_ok() {
                if !self.users.contains(&spend.user) {
                    self.users.insert(spend.user.clone());
                }
                self.unfolded.push(spend);
            }
        }
        let mut stop = false;
        for job in others {
            match job {
                // Taken out and answered above.
                Job::Spend(_) => {}
                Job::SetLimit { user, limit, done } => {
                    let _ = done.send(self.fold().and_then(|()| set_limit(&self.conn, &user, limit)));
                }
                Job::Load { user, done } => {
                    let _ =
                        done.send(self.fold_for(&user).and_then(|()| load_row(&self.conn, &user).map_err(db_error)));
                }
                Job::Transactions { user, limit, done } => {
                    let _ = done.send(
                        self.fold_for(&user)
                            .and_then(|()| list_transactions(&self.conn, &user, limit).map_err(db_error)),
                    );
                }
                Job::Ping { done } => {
                    let _ = done.send(self.conn.query_row("SELECT 1", [], |_| Ok(())).map_err(db_error));
                }
                Job::Stop => stop = true,
            }
        }
        (sent, stop)
    }

    /// Appends spends to the log, folding first if it has no room for them. The caller keeps
    /// them as unfolded once they are answered.
    fn log_spends(&mut self, spends: &[SpendWrite]) -> Result<(), StoreError> {
        let need = self.log.stage(spends.iter().map(|w| &w.spend));
        if self.log.unfolded(self.folded).saturating_add(need) > self.log.blocks() {
            self.fold()?;
        }
        if need > self.log.blocks() {
            return Err(StoreError::new("sqlite", "a window of spends is larger than the spend log"));
        }
        self.logged = self
            .log
            .write_staged()
            .map_err(|e| StoreError::new("sqlite", format!("cannot write the spend log: {e}")))?;
        Ok(())
    }
}

/// A user's spend changes within one fold, written as one row update and its transactions.
struct Pending {
    period: String,
    llm: Money,
    purchase: Money,
    now_secs: i64,
    entries: Vec<Entry>,
}

/// A transaction to insert, numbered when its user's changes are written.
struct Entry {
    kind: SpendKind,
    amount: Money,
    tool: String,
    corr_id: Option<String>,
    created_at: i64,
}

/// Ends the transaction a failed fold left open, if any. A rollback that fails too is tried
/// again before the next fold begins.
fn roll_back(tx: &Connection) {
    if !tx.is_autocommit() {
        let _ = run_cached(tx, "ROLLBACK");
    }
}

/// Runs a statement without parameters or rows, prepared once per connection.
fn run_cached(conn: &Connection, sql: &str) -> Result<(), rusqlite::Error> {
    conn.prepare_cached(sql)?.execute([]).map(|_| ())
}

/// Adds a spend to its user's pending changes (writing them first if the spend is of
/// another month).
fn add_spend<'a>(tx: &Connection, pending: &mut HashMap<&'a str, Pending>, spend: &'a Spend) -> Result<(), StoreError> {
    if let Some(p) = pending.get(spend.user.as_str()).filter(|p| p.period != spend.period) {
        save_spend(tx, &spend.user, p).map_err(db_error)?;
        pending.remove(spend.user.as_str());
    }
    let p = pending.entry(&spend.user).or_insert_with(|| Pending {
        period: spend.period.clone(),
        llm: Money::ZERO,
        purchase: Money::ZERO,
        now_secs: spend.now_secs,
        entries: Vec::new(),
    });
    p.llm = p.llm.saturating_add(spend.llm);
    p.purchase = p.purchase.saturating_add(spend.purchase);
    p.now_secs = spend.now_secs;
    for (kind, amount) in spend.entries() {
        p.entries.push(Entry {
            kind,
            amount,
            tool: spend.tool.clone(),
            corr_id: spend.corr_id.clone(),
            created_at: spend.now_secs,
        });
    }
    Ok(())
}

fn save_spend(tx: &Connection, user: &str, p: &Pending) -> Result<(), rusqlite::Error> {
    let stored: Option<(String, i64)> = tx
        .prepare_cached("SELECT period, last_tx_id FROM budgets WHERE user_id = ?1")?
        .query_row(params![user], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    let mut last_id = stored.as_ref().map_or(0, |(_, id)| *id);
    if stored.is_some_and(|(stored, _)| stored != p.period) {
        // Retention: a user's transactions older than TRANSACTION_RETENTION_SECS go when
        // their stored budget rolls into a new month.
        tx.prepare_cached("DELETE FROM budget_transactions WHERE user_id = ?1 AND created_at < ?2")?
            .execute(params![user, p.now_secs.saturating_sub(TRANSACTION_RETENTION_SECS)])?;
    }
    let mut insert = tx.prepare_cached(
        "INSERT INTO budget_transactions (user_id, id, kind, amount, tool, corr_id, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?;
    for e in &p.entries {
        last_id = last_id.saturating_add(1);
        insert.execute(params![user, last_id, e.kind.as_str(), e.amount.micros(), e.tool, e.corr_id, e.created_at])?;
    }
    tx.prepare_cached(UPSERT_SPEND)?.execute(params![
        user,
        p.llm.micros(),
        p.purchase.micros(),
        p.period,
        p.now_secs,
        last_id
    ])?;
    Ok(())
}

fn set_limit(tx: &Connection, user: &str, limit: Money) -> Result<(), StoreError> {
    // A row created here belongs to no period yet; the next check rolls it over.
    tx.prepare_cached(
        "INSERT INTO budgets (user_id, monthly_limit, current_spend, llm_spend, purchase_spend, period, updated_at, last_tx_id)
         VALUES (?1, ?2, 0, 0, 0, '', 0, 0)
         ON CONFLICT (user_id) DO UPDATE SET monthly_limit = excluded.monthly_limit",
    )
    .and_then(|mut stmt| stmt.execute(params![user, limit.micros()]))
    .map_err(db_error)?;
    Ok(())
}

/// A user's stored row as it is (not rolled to the current period), if any.
fn load_row(tx: &Connection, user: &str) -> Result<Option<Row>, rusqlite::Error> {
    tx.prepare_cached("SELECT monthly_limit, llm_spend, purchase_spend, period FROM budgets WHERE user_id = ?1")?
        .query_row(params![user], |r| {
            Ok(Row {
                limit: r.get::<_, Option<i64>>(0)?.map(Money::from_micros),
                llm: Money::from_micros(r.get(1)?),
                purchase: Money::from_micros(r.get(2)?),
                period: r.get(3)?,
            })
        })
        .optional()
}

fn list_transactions(tx: &Connection, user: &str, limit: i64) -> Result<Vec<Transaction>, rusqlite::Error> {
    let mut stmt = tx.prepare_cached(
        "SELECT id, kind, amount, tool, corr_id, created_at FROM budget_transactions
         WHERE user_id = ?1 ORDER BY id DESC LIMIT ?2",
    )?;
    let rows = stmt.query_map(params![user, limit], |r| {
        let kind: String = r.get(1)?;
        let kind = SpendKind::parse(&kind).ok_or_else(|| {
            rusqlite::Error::FromSqlConversionFailure(
                1,
                rusqlite::types::Type::Text,
                format!("unknown transaction kind {kind:?}").into(),
            )
        })?;
        Ok(Transaction {
            id: r.get(0)?,
            user: user.to_owned(),
            kind,
            amount: Money::from_micros(r.get(2)?),
            tool: r.get(3)?,
            corr_id: r.get(4)?,
            ts: r.get(5)?,
        })
    })?;
    rows.collect()
}

#[async_trait]
impl BudgetStore for SqliteBudgetStore {
    async fn status(&self, user: &str, now_secs: i64) -> Result<BudgetSnapshot, StoreError> {
        let period = period_key(now_secs);
        let default_limit = self.default_limit;
        self.with_row(user, &period, |row, _| {
            // Memory only: the file's row rolls with the first spend of the new month.
            row.roll_to(&period);
            Ok(row.snapshot(default_limit))
        })
        .await
    }

    async fn check_and_spend(&self, req: SpendRequest, now_secs: i64) -> Result<SpendOutcome, StoreError> {
        let period = period_key(now_secs);
        let default_limit = self.default_limit;
        if !Spend::fits(&req.user, &period, &req.tool, req.corr_id.as_deref()) {
            return Err(StoreError::new("sqlite", "the user id, tool and correlation id are too long to record"));
        }
        let (outcome, durable) = self
            .with_row(&req.user, &period, |row, queue| {
                row.roll_to(&period);
                let checked = row.check_and_spend(&req, default_limit);
                let (llm, purchase) = (checked.assessment.estimated, checked.assessment.purchase);
                let outcome = SpendOutcome {
                    assessment: checked.assessment,
                    recorded: checked.recorded,
                    snapshot: row.snapshot(default_limit),
                };
                if !checked.recorded || (llm <= Money::ZERO && purchase <= Money::ZERO) {
                    return Ok((outcome, None));
                }
                let spend = Spend {
                    user: req.user.clone(),
                    period: period.clone(),
                    llm,
                    purchase,
                    tool: req.tool.clone(),
                    corr_id: req.corr_id.clone(),
                    now_secs,
                };
                let (done, durable) = oneshot::channel();
                queue(Job::Spend(SpendWrite { spend, done }))?;
                Ok((outcome, Some(durable)))
            })
            .await?;
        if let Some(durable) = durable {
            durable.await.map_err(|_| stopped())??;
        }
        Ok(outcome)
    }

    async fn set_limit(&self, user: &str, limit: Money) -> Result<(), StoreError> {
        let (done, durable) = oneshot::channel();
        {
            let mut s = lock(self.shared.ledger.shard(user));
            let at = s.next();
            self.send(Job::SetLimit { user: user.to_owned(), limit, done })?;
            match s.rows.get_mut(user) {
                Some(cached) => {
                    cached.row.limit = Some(limit);
                    cached.changed_at = at;
                }
                // A load queued before this change must not bring back the old limit.
                None => s.stale_upto = at,
            }
        }
        durable.await.map_err(|_| stopped())?
    }

    async fn transactions(&self, user: &str, limit: usize) -> Result<Vec<Transaction>, StoreError> {
        let (done, answer) = oneshot::channel();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.send(Job::Transactions { user: user.to_owned(), limit, done })?;
        answer.await.map_err(|_| stopped())?
    }

    async fn ping(&self) -> Result<(), StoreError> {
        let (done, answer) = oneshot::channel();
        self.send(Job::Ping { done })?;
        answer.await.map_err(|_| stopped())?
    }

    fn kind(&self) -> &'static str {
        "sqlite"
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn row(llm: i64) -> Row {
        Row { limit: None, llm: Money::from_micros(llm), purchase: Money::ZERO, period: String::from("2025-09") }
    }

    #[test]
    fn a_read_queued_before_a_dropped_users_last_change_is_not_adopted() {
        let mut s = Shard::default();
        let read_at = s.next();
        s.adopt("u", row(0), read_at);
        // A change to u is queued after a second read of u (by another request) was queued...
        let second_read = s.next();
        let change = s.next();
        s.rows.get_mut("u").unwrap().changed_at = change;
        s.rows.get_mut("u").unwrap().row = row(7);
        // ...and u leaves memory: that read may not have seen the change.
        s.forget("u");
        s.adopt("u", row(0), second_read);
        assert!(s.rows.is_empty());
        // A read queued after the change has it.
        let third_read = s.next();
        s.adopt("u", row(7), third_read);
        assert_eq!(s.rows["u"].row, row(7));
    }

    #[test]
    fn memory_wins_over_a_read_and_users_are_bounded_per_shard() {
        let mut s = Shard::default();
        let at = s.next();
        s.adopt("u", row(5), at);
        s.adopt("u", row(0), at);
        assert_eq!(s.rows["u"].row, row(5));
        for i in 0..USERS_PER_SHARD + 10 {
            let at = s.next();
            s.adopt(&format!("user-{i}"), row(0), at);
        }
        assert_eq!(s.rows.len(), USERS_PER_SHARD);
        // Nothing dropped had an unwritten change: reads stay usable.
        assert_eq!(s.stale_upto, 0);
    }
}
