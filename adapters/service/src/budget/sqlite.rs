//! The embedded budget store: one SQLite file (WAL mode) under `WARDEN_DATA_DIR`, the
//! single-machine default.
//!
//! **Group commit.** One writer thread per store owns the connection. Requests queue to it;
//! it takes every request waiting (up to [`MAX_BATCH`]), runs them in order inside one
//! `BEGIN IMMEDIATE` transaction — each in its own savepoint, so one failing request does not
//! undo the others — and commits once with `synchronous = FULL` (the WAL is fsynced). Only
//! then is any of them answered. So:
//!
//! - a spend that was answered is durable: a crash (process or machine) after the answer
//!   loses nothing; a crash before the commit loses only spends that were never answered;
//! - checks are serialized (one thread, and IMMEDIATE takes SQLite's write lock before
//!   reading, also across processes sharing the file): concurrent requests never overspend;
//! - under load, one fsync serves a whole batch, instead of one per request.

use super::{BudgetSnapshot, BudgetStore, Row, SpendKind, SpendOutcome, SpendRequest, StoreError, Transaction};
use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use warden_engine::budget::{period_key, Money};

/// The file name the budget database gets inside `WARDEN_DATA_DIR`.
pub const SQLITE_FILE_NAME: &str = "budgets.sqlite3";

/// How long a writer waits for another process's lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Schema (GovernsAI's tables; amounts are integer micro-USD, times Unix seconds).
/// `monthly_limit` NULL means "the configured default limit".
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS budgets (
    user_id        TEXT PRIMARY KEY NOT NULL,
    monthly_limit  INTEGER,
    current_spend  INTEGER NOT NULL DEFAULT 0,
    llm_spend      INTEGER NOT NULL DEFAULT 0,
    purchase_spend INTEGER NOT NULL DEFAULT 0,
    period         TEXT NOT NULL,
    updated_at     INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS budget_transactions (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id    TEXT NOT NULL,
    kind       TEXT NOT NULL CHECK (kind IN ('llm', 'purchase')),
    amount     INTEGER NOT NULL,
    tool       TEXT NOT NULL,
    corr_id    TEXT,
    created_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS budget_transactions_by_user ON budget_transactions (user_id, id);
";

/// Most requests committed by one transaction.
pub const MAX_BATCH: usize = 512;

/// What a job does once its batch's commit is known: answer its caller.
type Deliver = Box<dyn FnOnce(Result<(), StoreError>) + Send>;
/// A request for the writer thread: runs inside the batch's transaction (`None`: the
/// transaction could not start) and returns how to answer.
type Job = Box<dyn FnOnce(Option<&mut rusqlite::Transaction<'_>>, Money) -> Deliver + Send>;

/// Budgets in a SQLite file. Cloning shares the writer thread.
#[derive(Clone, Debug)]
pub struct SqliteBudgetStore {
    // A std Mutex around the sender: `mpsc::Sender` is Send but the store must be Sync.
    queue: Arc<Mutex<mpsc::Sender<Job>>>,
    path: PathBuf,
}

fn db_error(e: rusqlite::Error) -> StoreError {
    StoreError::new("sqlite", e.to_string())
}

impl SqliteBudgetStore {
    /// Opens (creating if needed, with parent directories) the database at `path`, in WAL
    /// mode with a busy timeout, and creates the tables. Users without an explicit limit get
    /// `default_limit`. Blocking: call it at startup.
    pub fn open(path: impl AsRef<Path>, default_limit: Money) -> Result<SqliteBudgetStore, StoreError> {
        let path = path.as_ref().to_path_buf();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| StoreError::new("sqlite", format!("cannot create {}: {e}", dir.display())))?;
        }
        let conn = Connection::open(&path)
            .map_err(|e| StoreError::new("sqlite", format!("cannot open {}: {e}", path.display())))?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(db_error)?;
        let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0)).map_err(db_error)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::new(
                "sqlite",
                format!("{} does not support WAL mode (got {mode})", path.display()),
            ));
        }
        // FULL: every commit fsyncs the WAL, so an answered spend survives an OS crash too;
        // group commit makes that one fsync per batch.
        conn.pragma_update(None, "synchronous", "FULL").map_err(db_error)?;
        conn.execute_batch(SCHEMA).map_err(db_error)?;
        let (queue, jobs) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name(String::from("warden-budgets"))
            .spawn(move || writer(conn, &jobs, default_limit))
            .map_err(|e| StoreError::new("sqlite", format!("cannot start the writer thread: {e}")))?;
        Ok(SqliteBudgetStore { queue: Arc::new(Mutex::new(queue)), path })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` in the writer thread's next batch (inside a savepoint) and answers once the
    /// batch is committed.
    async fn submit<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection, Money) -> Result<T, rusqlite::Error> + Send + 'static,
    {
        let (answer, answered) = tokio::sync::oneshot::channel::<Result<T, StoreError>>();
        let job: Job = Box::new(move |tx, default_limit| {
            let out = match tx {
                Some(tx) => run_in_savepoint(tx, |conn| f(conn, default_limit)),
                None => Err(StoreError::new("sqlite", "the transaction could not start")),
            };
            Box::new(move |commit: Result<(), StoreError>| {
                // The caller may have gone away (a cancelled request); nothing to answer then.
                let _ = answer.send(commit.and(out));
            })
        });
        self.queue
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .send(job)
            .map_err(|_| StoreError::new("sqlite", "the writer thread has stopped"))?;
        answered.await.map_err(|_| StoreError::new("sqlite", "the writer thread dropped the request"))?
    }
}

fn run_in_savepoint<T>(
    tx: &mut rusqlite::Transaction<'_>,
    f: impl FnOnce(&Connection) -> Result<T, rusqlite::Error>,
) -> Result<T, StoreError> {
    let sp = tx.savepoint().map_err(db_error)?;
    let out = f(&sp).map_err(db_error)?;
    // On any error above, dropping the savepoint rolls this request's writes back.
    sp.commit().map_err(db_error)?;
    Ok(out)
}

/// The writer thread: one transaction and one commit per batch of waiting jobs. Ends when
/// every store handle is dropped.
fn writer(mut conn: Connection, jobs: &mpsc::Receiver<Job>, default_limit: Money) {
    while let Ok(first) = jobs.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        match conn.transaction_with_behavior(TransactionBehavior::Immediate) {
            Ok(mut tx) => {
                let delivers: Vec<Deliver> = batch.into_iter().map(|job| job(Some(&mut tx), default_limit)).collect();
                let committed = tx.commit().map_err(db_error);
                for deliver in delivers {
                    deliver(committed.clone());
                }
            }
            Err(e) => {
                let e = db_error(e);
                for job in batch {
                    job(None, default_limit)(Err(e.clone()));
                }
            }
        }
    }
}

/// Loads a user's row (a fresh one for `period` if absent: nothing is stored for a user who
/// spends nothing, so unknown user ids cannot grow the file) and rolls it to `period`, inside
/// the caller's transaction.
fn load_row(tx: &Connection, user: &str, period: &str, now_secs: i64) -> Result<Row, rusqlite::Error> {
    let found = tx
        .query_row(
            "SELECT monthly_limit, llm_spend, purchase_spend, period FROM budgets WHERE user_id = ?1",
            params![user],
            |r| {
                Ok(Row {
                    limit: r.get::<_, Option<i64>>(0)?.map(Money::from_micros),
                    llm: Money::from_micros(r.get(1)?),
                    purchase: Money::from_micros(r.get(2)?),
                    period: r.get(3)?,
                })
            },
        )
        .optional()?;
    let Some(mut row) = found else { return Ok(Row::new(period.to_string())) };
    if row.roll_to(period) {
        save_row(tx, user, &row, now_secs)?;
        // Retention: a user's transactions older than TRANSACTION_RETENTION_SECS go when
        // their budget rolls into a new month.
        tx.execute(
            "DELETE FROM budget_transactions WHERE user_id = ?1 AND created_at < ?2",
            params![user, now_secs.saturating_sub(TRANSACTION_RETENTION_SECS)],
        )?;
    }
    Ok(row)
}

/// How long budget transactions are kept: thirteen months, so a year can be compared.
pub const TRANSACTION_RETENTION_SECS: i64 = 396 * 24 * 3600;

fn save_row(tx: &Connection, user: &str, row: &Row, now_secs: i64) -> Result<(), rusqlite::Error> {
    tx.execute(
        "INSERT INTO budgets (user_id, monthly_limit, current_spend, llm_spend, purchase_spend, period, updated_at)
         VALUES (?1, NULL, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT (user_id) DO UPDATE SET current_spend = excluded.current_spend, llm_spend = excluded.llm_spend,
           purchase_spend = excluded.purchase_spend, period = excluded.period, updated_at = excluded.updated_at",
        params![
            user,
            row.llm.saturating_add(row.purchase).micros(),
            row.llm.micros(),
            row.purchase.micros(),
            row.period,
            now_secs
        ],
    )?;
    Ok(())
}

#[async_trait]
impl BudgetStore for SqliteBudgetStore {
    async fn status(&self, user: &str, now_secs: i64) -> Result<BudgetSnapshot, StoreError> {
        let user = user.to_string();
        self.submit(move |conn, default_limit| {
            let row = load_row(conn, &user, &period_key(now_secs), now_secs)?;
            Ok(row.snapshot(default_limit))
        })
        .await
    }

    async fn check_and_spend(&self, req: SpendRequest, now_secs: i64) -> Result<SpendOutcome, StoreError> {
        self.submit(move |tx, default_limit| {
            let mut row = load_row(tx, &req.user, &period_key(now_secs), now_secs)?;
            let checked = row.check_and_spend(&req, default_limit);
            if checked.recorded {
                save_row(tx, &req.user, &row, now_secs)?;
                for (kind, amount) in checked.entries() {
                    tx.execute(
                        "INSERT INTO budget_transactions (user_id, kind, amount, tool, corr_id, created_at)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                        params![req.user, kind.as_str(), amount.micros(), req.tool, req.corr_id, now_secs],
                    )?;
                }
            }
            Ok(SpendOutcome {
                assessment: checked.assessment,
                recorded: checked.recorded,
                snapshot: row.snapshot(default_limit),
            })
        })
        .await
    }

    async fn set_limit(&self, user: &str, limit: Money) -> Result<(), StoreError> {
        let user = user.to_string();
        self.submit(move |conn, _| {
            // A row created here belongs to no period yet; the next check rolls it over.
            conn.execute(
                "INSERT INTO budgets (user_id, monthly_limit, current_spend, llm_spend, purchase_spend, period, updated_at)
                 VALUES (?1, ?2, 0, 0, 0, '', 0)
                 ON CONFLICT (user_id) DO UPDATE SET monthly_limit = excluded.monthly_limit",
                params![user, limit.micros()],
            )?;
            Ok(())
        })
        .await
    }

    async fn transactions(&self, user: &str, limit: usize) -> Result<Vec<Transaction>, StoreError> {
        let user = user.to_string();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.submit(move |conn, _| {
            let mut stmt = conn.prepare_cached(
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
                    user: user.clone(),
                    kind,
                    amount: Money::from_micros(r.get(2)?),
                    tool: r.get(3)?,
                    corr_id: r.get(4)?,
                    ts: r.get(5)?,
                })
            })?;
            rows.collect()
        })
        .await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.submit(|conn, _| conn.query_row("SELECT 1", [], |_| Ok(()))).await
    }

    fn kind(&self) -> &'static str {
        "sqlite"
    }
}
