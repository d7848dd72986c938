//! Budget stores against real backends: the in-memory store, a SQLite file in a temp dir and
//! a real redis-server. Every store runs the same scenarios, including 200 concurrent
//! check-and-spends for one user, which must never record more than the arithmetic allows.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

#[cfg(feature = "native")]
#[path = "budget_support/redis_server.rs"]
mod redis_server;

use std::collections::BTreeSet;
use std::sync::Arc;
use warden_engine::budget::{BudgetOutcome, Money};
use warden_engine::Reason;
use warden_service::budget::{BudgetStore, MemoryBudgetStore, SpendKind, SpendRequest, DEFAULT_MONTHLY_LIMIT};

/// 2025-09-24T20:28:17Z.
const NOW: i64 = 1_758_745_697;
/// 2024-12-31T23:59:59Z and one second later.
const LAST_SECOND_OF_2024: i64 = 1_735_689_599;
const FIRST_SECOND_OF_2025: i64 = 1_735_689_600;

const fn usd(micros: i64) -> Money {
    Money::from_micros(micros)
}

fn spend(user: &str, llm: i64, purchase: i64, record: bool) -> SpendRequest {
    SpendRequest {
        user: user.to_string(),
        llm: usd(llm),
        purchase: usd(purchase),
        tool: "shop.buy".to_string(),
        corr_id: Some(format!("req-{llm}-{purchase}")),
        record,
    }
}

/// New users, recording, thresholds, limits and the transaction log.
async fn basic_flow(store: &dyn BudgetStore) {
    let status = store.status("alice", NOW).await.unwrap();
    assert_eq!(status.period, "2025-09");
    assert_eq!(status.limit, DEFAULT_MONTHLY_LIMIT);
    assert_eq!(status.current(), Money::ZERO);

    // Allowed and recorded: LLM and purchase become two transactions.
    let out = store.check_and_spend(spend("alice", 30, 2_000_000, true), NOW).await.unwrap();
    assert_eq!(out.assessment.outcome, BudgetOutcome::Allowed);
    assert!(out.recorded);
    assert_eq!(out.assessment.projected, usd(2_000_030));
    assert_eq!(out.snapshot.llm_spend, usd(30));
    assert_eq!(out.snapshot.purchase_spend, usd(2_000_000));
    let status = out.status();
    assert!(status.allowed);
    assert_eq!(status.reason, Reason::BudgetCheckPassed);
    assert_eq!(status.current_spend, usd(2_000_030));
    assert_eq!(status.remaining, usd(7_999_970));
    let info = out.info("gpt-4", NOW);
    assert_eq!(info.period, "2025-09");
    assert_eq!(info.reset_at, "2025-10-01T00:00:00Z");
    assert_eq!(info.projected_spend, usd(2_000_030));

    // Allowed but not recordable (the policy denied or asked for confirmation).
    let out = store.check_and_spend(spend("alice", 30, 1_000_000, false), NOW + 1).await.unwrap();
    assert_eq!(out.assessment.outcome, BudgetOutcome::Allowed);
    assert!(!out.recorded);
    assert_eq!(out.snapshot.current(), usd(2_000_030));

    // Projected exactly 90 %: warning, nothing recorded.
    let out = store.check_and_spend(spend("alice", 0, 6_999_970, true), NOW + 2).await.unwrap();
    assert_eq!(out.assessment.projected, usd(9_000_000));
    assert_eq!(out.assessment.outcome, BudgetOutcome::Warning);
    assert!(!out.recorded);
    assert_eq!(out.status().reason, Reason::BudgetWarning);
    assert!(out.status().allowed);
    assert_eq!(out.snapshot.current(), usd(2_000_030));

    // Projected exactly 100 %: still a warning; one micro more is exceeded.
    let out = store.check_and_spend(spend("alice", 0, 7_999_970, true), NOW + 3).await.unwrap();
    assert_eq!(out.assessment.outcome, BudgetOutcome::Warning);
    let out = store.check_and_spend(spend("alice", 1, 7_999_970, true), NOW + 4).await.unwrap();
    assert_eq!(out.assessment.outcome, BudgetOutcome::Exceeded);
    assert!(!out.recorded);
    assert!(!out.status().allowed);
    assert_eq!(out.status().reason, Reason::BudgetExceeded);

    // A higher explicit limit turns the warning into a pass.
    store.set_limit("alice", usd(100_000_000)).await.unwrap();
    let out = store.check_and_spend(spend("alice", 0, 6_999_970, true), NOW + 5).await.unwrap();
    assert_eq!(out.assessment.outcome, BudgetOutcome::Allowed);
    assert!(out.recorded);
    assert_eq!(out.snapshot.limit, usd(100_000_000));
    assert_eq!(out.snapshot.current(), usd(9_000_000));
    assert_eq!(store.status("alice", NOW + 6).await.unwrap().limit, usd(100_000_000));

    // Transactions: newest first, zero amounts skipped, fields kept.
    let txs = store.transactions("alice", 10).await.unwrap();
    let summary: Vec<(SpendKind, Money, i64)> = txs.iter().map(|t| (t.kind, t.amount, t.ts)).collect();
    assert_eq!(
        summary,
        vec![
            (SpendKind::Purchase, usd(6_999_970), NOW + 5),
            (SpendKind::Purchase, usd(2_000_000), NOW),
            (SpendKind::Llm, usd(30), NOW),
        ]
    );
    assert!(txs[0].id > txs[1].id && txs[1].id > txs[2].id);
    assert!(txs.iter().all(|t| t.user == "alice" && t.tool == "shop.buy"));
    assert_eq!(txs[1].corr_id.as_deref(), Some("req-30-2000000"));
    assert_eq!(store.transactions("alice", 1).await.unwrap().len(), 1);
    assert_eq!(store.transactions("alice", 0).await.unwrap().len(), 0);
    assert!(store.transactions("nobody", 10).await.unwrap().is_empty());

    // Users are independent; a limit set before any spend applies to the first check.
    store.set_limit("bob", usd(1_000_000)).await.unwrap();
    let out = store.check_and_spend(spend("bob", 0, 950_000, true), NOW).await.unwrap();
    assert_eq!(out.assessment.outcome, BudgetOutcome::Warning);
    assert_eq!(out.snapshot.period, "2025-09");
    let out = store.check_and_spend(spend("carol", 0, 950_000, true), NOW).await.unwrap();
    assert_eq!(out.assessment.outcome, BudgetOutcome::Allowed);

    // JSON of a transaction: camelCase, dollars.
    let json = serde_json::to_value(&txs[1]).unwrap();
    assert_eq!(json["amount"], 2.0);
    assert_eq!(json["kind"], "purchase");
    assert_eq!(json["corrId"], "req-30-2000000");

    store.ping().await.unwrap();
}

/// Spend resets at the UTC month boundary (Dec → Jan); history stays.
async fn month_rollover(store: &dyn BudgetStore) {
    let out = store.check_and_spend(spend("dave", 0, 8_000_000, true), LAST_SECOND_OF_2024).await.unwrap();
    assert_eq!(out.snapshot.period, "2024-12");
    assert_eq!(out.info("gpt-4", LAST_SECOND_OF_2024).reset_at, "2025-01-01T00:00:00Z");
    let out = store.check_and_spend(spend("dave", 0, 1_000_000, true), LAST_SECOND_OF_2024).await.unwrap();
    assert_eq!(out.assessment.outcome, BudgetOutcome::Warning);

    let status = store.status("dave", FIRST_SECOND_OF_2025).await.unwrap();
    assert_eq!(status.period, "2025-01");
    assert_eq!(status.current(), Money::ZERO);
    let out = store.check_and_spend(spend("dave", 0, 1_000_000, true), FIRST_SECOND_OF_2025).await.unwrap();
    assert_eq!(out.assessment.outcome, BudgetOutcome::Allowed);
    assert_eq!(out.snapshot.current(), usd(1_000_000));
    assert_eq!(store.transactions("dave", 10).await.unwrap().len(), 2);
}

/// What 200 concurrent checks for one user produced.
struct Race {
    allowed: usize,
    warned: usize,
    exceeded: usize,
}

/// Runs `count` concurrent check-and-spends of (`llm`, `purchase`) for `user`, spread over
/// `stores` (several handles on one backend, like several processes), and checks that every
/// recorded spend saw a distinct prior total (the checks were serialized) and that the
/// stored total equals the transactions' sum.
async fn race(stores: &[Arc<dyn BudgetStore>], user: &str, count: usize, llm: i64, purchase: i64) -> Race {
    let before = stores[0].status(user, NOW).await.unwrap().current();
    let mut tasks = Vec::new();
    for i in 0..count {
        let store = Arc::clone(&stores[i % stores.len()]);
        let req = SpendRequest { corr_id: Some(format!("race-{i}")), ..spend(user, llm, purchase, true) };
        tasks.push(tokio::spawn(async move { store.check_and_spend(req, NOW).await.unwrap() }));
    }
    let mut outcomes = Vec::new();
    for task in tasks {
        outcomes.push(task.await.unwrap());
    }
    let step = llm + purchase;
    let mut totals_after = BTreeSet::new();
    let mut result = Race { allowed: 0, warned: 0, exceeded: 0 };
    for out in &outcomes {
        match out.assessment.outcome {
            BudgetOutcome::Allowed => {
                assert!(out.recorded);
                result.allowed += 1;
                assert!(totals_after.insert(out.snapshot.current().micros()));
            }
            BudgetOutcome::Warning => {
                assert!(!out.recorded);
                result.warned += 1;
            }
            BudgetOutcome::Exceeded => {
                assert!(!out.recorded);
                result.exceeded += 1;
            }
        }
    }
    // Serialized: the k-th recorded spend left exactly before + k × step behind.
    let expected: BTreeSet<i64> = (1..=result.allowed as i64).map(|k| before.micros() + k * step).collect();
    assert_eq!(totals_after, expected);

    let status = stores[0].status(user, NOW).await.unwrap();
    assert_eq!(status.current().micros(), before.micros() + result.allowed as i64 * step);
    assert!(status.current() <= status.limit);
    let txs = stores[0].transactions(user, 10_000).await.unwrap();
    let race_txs = txs.iter().filter(|t| t.corr_id.as_deref().is_some_and(|c| c.starts_with("race-")));
    let recorded: i64 = race_txs.map(|t| t.amount.micros()).sum();
    assert_eq!(recorded, result.allowed as i64 * step);
    result
}

/// The two races every store must pass.
async fn concurrent_checks_never_overspend(stores: &[Arc<dyn BudgetStore>]) {
    // Near the warning line: $8.00 spent of $10.00; each request costs 30 µ$ of LLM + $0.01.
    // Allowed while 8.00 + k × 0.01003 < 9.00 (90 %): exactly 99 spends, then warnings.
    let out = stores[0].check_and_spend(spend("racer", 0, 8_000_000, true), NOW).await.unwrap();
    assert!(out.recorded);
    let race_a = race(stores, "racer", 200, 30, 10_000).await;
    assert_eq!((race_a.allowed, race_a.warned, race_a.exceeded), (99, 101, 0));
    let status = stores[0].status("racer", NOW).await.unwrap();
    assert_eq!(status.current(), usd(8_000_000 + 99 * 10_030));
    assert_eq!(status.llm_spend, usd(99 * 30));

    // Big steps: $3.50 each from zero: 2 allowed ($7.00), then $10.50 > $10.00 is exceeded.
    let race_b = race(stores, "big-spender", 200, 0, 3_500_000).await;
    assert_eq!((race_b.allowed, race_b.warned, race_b.exceeded), (2, 0, 198));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_store_basic_flow() {
    basic_flow(&MemoryBudgetStore::new(DEFAULT_MONTHLY_LIMIT)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_store_month_rollover() {
    month_rollover(&MemoryBudgetStore::new(DEFAULT_MONTHLY_LIMIT)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn memory_store_concurrent_checks_never_overspend() {
    let store: Arc<dyn BudgetStore> = Arc::new(MemoryBudgetStore::new(DEFAULT_MONTHLY_LIMIT));
    assert_eq!(store.kind(), "memory");
    concurrent_checks_never_overspend(&[store]).await;
}

/// The embedded store, on a SQLite file in a temp dir.
#[cfg(feature = "native")]
mod sqlite {
    use super::*;
    use warden_service::budget::SqliteBudgetStore;

    fn sqlite_path(dir: &tempfile::TempDir) -> std::path::PathBuf {
        dir.path().join("data").join("budgets.sqlite3")
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn sqlite_store_basic_flow() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteBudgetStore::open(sqlite_path(&dir), DEFAULT_MONTHLY_LIMIT).unwrap();
        assert_eq!(store.kind(), "sqlite");
        basic_flow(&store).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn sqlite_store_month_rollover() {
        let dir = tempfile::tempdir().unwrap();
        month_rollover(&SqliteBudgetStore::open(sqlite_path(&dir), DEFAULT_MONTHLY_LIMIT).unwrap()).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 8)]
    async fn sqlite_store_concurrent_checks_never_overspend() {
        // Two independent connections on one file, as two processes would have.
        let dir = tempfile::tempdir().unwrap();
        let one: Arc<dyn BudgetStore> =
            Arc::new(SqliteBudgetStore::open(sqlite_path(&dir), DEFAULT_MONTHLY_LIMIT).unwrap());
        let two: Arc<dyn BudgetStore> =
            Arc::new(SqliteBudgetStore::open(sqlite_path(&dir), DEFAULT_MONTHLY_LIMIT).unwrap());
        concurrent_checks_never_overspend(&[one, two]).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn sqlite_store_persists_in_wal_mode_with_the_documented_schema() {
        let dir = tempfile::tempdir().unwrap();
        let path = sqlite_path(&dir);
        {
            let store = SqliteBudgetStore::open(&path, DEFAULT_MONTHLY_LIMIT).unwrap();
            assert_eq!(store.path(), path.as_path());
            store.check_and_spend(spend("erin", 120, 500_000, true), NOW).await.unwrap();
            store.set_limit("erin", usd(20_000_000)).await.unwrap();
        }
        // Reopened (as after a restart), with a different default: the explicit limit stays.
        let store = SqliteBudgetStore::open(&path, usd(5_000_000)).unwrap();
        let status = store.status("erin", NOW).await.unwrap();
        assert_eq!(status.current(), usd(500_120));
        assert_eq!(status.limit, usd(20_000_000));
        // Users without an explicit limit follow the current default.
        assert_eq!(store.status("frank", NOW).await.unwrap().limit, usd(5_000_000));
        drop(store);

        let conn = rusqlite::Connection::open(&path).unwrap();
        let mode: String = conn.query_row("PRAGMA journal_mode", [], |r| r.get(0)).unwrap();
        assert_eq!(mode, "wal");
        let row: (Option<i64>, i64, i64, i64, String) = conn
            .query_row(
                "SELECT monthly_limit, current_spend, llm_spend, purchase_spend, period FROM budgets WHERE user_id = 'erin'",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
            )
            .unwrap();
        assert_eq!(row, (Some(20_000_000), 500_120, 120, 500_000, "2025-09".to_string()));
        let kinds: Vec<(String, i64)> = conn
            .prepare("SELECT kind, amount FROM budget_transactions WHERE user_id = 'erin' ORDER BY id")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(kinds, vec![("llm".to_string(), 120), ("purchase".to_string(), 500_000)]);
    }

    /// A file written by the first release (rowid transactions with AUTOINCREMENT ids, an
    /// index by user, no schema version) is converted at open: balances, limits and every
    /// transaction with its id stay, and new ids continue after each user's last.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite_store_converts_a_first_release_file_keeping_every_id() {
        let dir = tempfile::tempdir().unwrap();
        let path = sqlite_path(&dir);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let old = rusqlite::Connection::open(&path).unwrap();
        old.execute_batch(
            "PRAGMA journal_mode = WAL;
             CREATE TABLE budgets (
                 user_id TEXT PRIMARY KEY NOT NULL, monthly_limit INTEGER,
                 current_spend INTEGER NOT NULL DEFAULT 0, llm_spend INTEGER NOT NULL DEFAULT 0,
                 purchase_spend INTEGER NOT NULL DEFAULT 0, period TEXT NOT NULL, updated_at INTEGER NOT NULL);
             CREATE TABLE budget_transactions (
                 id INTEGER PRIMARY KEY AUTOINCREMENT, user_id TEXT NOT NULL,
                 kind TEXT NOT NULL CHECK (kind IN ('llm', 'purchase')), amount INTEGER NOT NULL,
                 tool TEXT NOT NULL, corr_id TEXT, created_at INTEGER NOT NULL);
             CREATE INDEX budget_transactions_by_user ON budget_transactions (user_id, id);
             INSERT INTO budgets VALUES ('ivy', 20000000, 700, 300, 400, '2025-09', 1758745000);
             INSERT INTO budgets VALUES ('jon', NULL, 50, 50, 0, '2025-09', 1758745000);
             INSERT INTO budget_transactions VALUES (1, 'ivy', 'llm', 300, 'chat', 'c1', 1758745000);
             INSERT INTO budget_transactions VALUES (2, 'jon', 'llm', 50, 'chat', NULL, 1758745001);
             INSERT INTO budget_transactions VALUES (3, 'ivy', 'purchase', 400, 'shop.buy', 'c3', 1758745002);",
        )
        .unwrap();
        drop(old);

        let store = SqliteBudgetStore::open(&path, DEFAULT_MONTHLY_LIMIT).unwrap();
        let ivy = store.status("ivy", NOW).await.unwrap();
        assert_eq!((ivy.current(), ivy.limit), (usd(700), usd(20_000_000)));
        let ids = |txs: Vec<warden_service::budget::Transaction>| txs.iter().map(|t| t.id).collect::<Vec<_>>();
        assert_eq!(ids(store.transactions("ivy", 10).await.unwrap()), vec![3, 1]);
        store.check_and_spend(spend("ivy", 5, 0, true), NOW).await.unwrap();
        store.check_and_spend(spend("jon", 5, 6, true), NOW).await.unwrap();
        assert_eq!(ids(store.transactions("ivy", 10).await.unwrap()), vec![4, 3, 1]);
        assert_eq!(ids(store.transactions("jon", 10).await.unwrap()), vec![4, 3, 2]);
        assert_eq!(store.status("jon", NOW).await.unwrap().current(), usd(61));
        drop(store);

        // Converted once: reopening finds the current schema and the same state.
        let conn = rusqlite::Connection::open(&path).unwrap();
        let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
        assert_eq!(version, 3);
        drop(conn);
        let store = SqliteBudgetStore::open(&path, DEFAULT_MONTHLY_LIMIT).unwrap();
        assert_eq!(store.status("ivy", NOW).await.unwrap().current(), usd(705));
        store.check_and_spend(spend("ivy", 1, 0, true), NOW).await.unwrap();
        assert_eq!(ids(store.transactions("ivy", 1).await.unwrap()), vec![5]);
    }

    /// A file from a newer release is refused rather than written with an older schema.
    #[test]
    fn sqlite_store_refuses_a_file_from_a_newer_release() {
        let dir = tempfile::tempdir().unwrap();
        let path = sqlite_path(&dir);
        drop(SqliteBudgetStore::open(&path, DEFAULT_MONTHLY_LIMIT).unwrap());
        rusqlite::Connection::open(&path).unwrap().execute_batch("PRAGMA user_version = 4").unwrap();
        let err = SqliteBudgetStore::open(&path, DEFAULT_MONTHLY_LIMIT).unwrap_err();
        assert!(err.to_string().contains("schema version 4, newer than this release's 3"), "{err}");
    }

    /// The ledger in memory is the truth between commits, so the file has one owner: other
    /// connections (another process) cannot use it while the store is open, and a store
    /// cannot open a file another process holds.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite_store_owns_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = sqlite_path(&dir);
        let store = SqliteBudgetStore::open(&path, DEFAULT_MONTHLY_LIMIT).unwrap();
        store.check_and_spend(spend("gina", 0, 1_000, true), NOW).await.unwrap();
        let other = rusqlite::Connection::open(&path).unwrap();
        other.busy_timeout(std::time::Duration::from_millis(50)).unwrap();
        let err = other.query_row("SELECT COUNT(*) FROM budgets", [], |r| r.get::<_, i64>(0)).unwrap_err();
        assert_eq!(err.sqlite_error_code(), Some(rusqlite::ErrorCode::DatabaseBusy), "{err}");
        drop(other);
        drop(store);

        // Another process holding the file (a connection that keeps its write lock).
        let holder = rusqlite::Connection::open(&path).unwrap();
        holder.execute_batch("PRAGMA locking_mode = EXCLUSIVE; BEGIN IMMEDIATE; COMMIT;").unwrap();
        holder.execute_batch("INSERT INTO budgets (user_id, period, updated_at) VALUES ('x', '', 0)").unwrap();
        let err = SqliteBudgetStore::open(&path, DEFAULT_MONTHLY_LIMIT).unwrap_err();
        assert!(err.to_string().contains("in use by another process"), "{err}");
        drop(holder);
        let store = SqliteBudgetStore::open(&path, DEFAULT_MONTHLY_LIMIT).unwrap();
        assert_eq!(store.status("gina", NOW).await.unwrap().current(), usd(1_000));
    }

    /// A restart reads back exactly what was answered, across a month boundary: the stored
    /// row rolls with the first spend of the new month and the transactions stay.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite_store_restart_recovers_exactly_across_a_month_boundary() {
        let dir = tempfile::tempdir().unwrap();
        let path = sqlite_path(&dir);
        let store = SqliteBudgetStore::open(&path, DEFAULT_MONTHLY_LIMIT).unwrap();
        for i in 0..20 {
            store.check_and_spend(spend("hank", 10, 100_000 + i, true), LAST_SECOND_OF_2024).await.unwrap();
        }
        let before = store.status("hank", LAST_SECOND_OF_2024).await.unwrap();
        drop(store);
        let store = SqliteBudgetStore::open(&path, DEFAULT_MONTHLY_LIMIT).unwrap();
        assert_eq!(store.status("hank", LAST_SECOND_OF_2024).await.unwrap(), before);
        assert_eq!(before.current(), usd(20 * 100_010 + 190));
        let out = store.check_and_spend(spend("hank", 0, 5, true), FIRST_SECOND_OF_2025).await.unwrap();
        assert_eq!(out.snapshot.current(), usd(5));
        drop(store);
        let store = SqliteBudgetStore::open(&path, DEFAULT_MONTHLY_LIMIT).unwrap();
        let after = store.status("hank", FIRST_SECOND_OF_2025).await.unwrap();
        assert_eq!((after.period.as_str(), after.current()), ("2025-01", usd(5)));
        assert_eq!(store.transactions("hank", 100).await.unwrap().len(), 41);
    }

    /// Spends `llm` for `user` (its first transaction), then writes the row its second
    /// transaction would get, as another program could: folding that spend fails.
    async fn refuse_the_next_transaction_of(path: &std::path::Path, user: &str, llm: i64) {
        let store = SqliteBudgetStore::open(path, DEFAULT_MONTHLY_LIMIT).unwrap();
        store.check_and_spend(spend(user, llm, 0, true), NOW).await.unwrap();
        drop(store);
        rusqlite::Connection::open(path)
            .unwrap()
            .execute(
                "INSERT INTO budget_transactions (user_id, id, kind, amount, tool, corr_id, created_at)
                 VALUES (?1, 2, 'llm', 1, 'x', NULL, 0)",
                [user],
            )
            .unwrap();
    }

    /// An answered spend is in the spend log before it is in the file. When the file refuses
    /// it (here a row another program wrote where the spend's transaction goes), the spend
    /// stays answered and logged, the fold is tried again, and a restart refuses to start
    /// rather than lose it; once the file is repaired, the restart folds it in.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite_store_keeps_answered_spends_logged_until_the_file_takes_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = sqlite_path(&dir);
        refuse_the_next_transaction_of(&path, "ivy", 10).await;
        let store = SqliteBudgetStore::open(&path, DEFAULT_MONTHLY_LIMIT).unwrap();
        let out = store.check_and_spend(spend("ivy", 20, 0, true), NOW).await.unwrap();
        assert_eq!(out.snapshot.current(), usd(30));
        // Reading ivy's transactions needs the fold, which fails; other users are unaffected.
        let err = store.transactions("ivy", 10).await.unwrap_err();
        assert!(err.to_string().contains("UNIQUE"), "{err}");
        let out = store.check_and_spend(spend("jay", 30, 0, true), NOW).await.unwrap();
        assert_eq!(out.snapshot.current(), usd(30));
        drop(store);

        let err = SqliteBudgetStore::open(&path, DEFAULT_MONTHLY_LIMIT).unwrap_err();
        assert!(err.to_string().contains("cannot fold the spend log"), "{err}");
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch("DELETE FROM budget_transactions WHERE tool = 'x'").unwrap();
        drop(conn);
        let store = SqliteBudgetStore::open(&path, DEFAULT_MONTHLY_LIMIT).unwrap();
        assert_eq!(store.status("ivy", NOW).await.unwrap().current(), usd(30));
        assert_eq!(store.status("jay", NOW).await.unwrap().current(), usd(30));
        let ids: Vec<i64> = store.transactions("ivy", 10).await.unwrap().iter().map(|t| t.id).collect();
        assert_eq!(ids, [2, 1]);
    }

    /// While the file refuses the logged spends, the log fills; then spends are refused with
    /// the file's error instead of being answered without a place on disk.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite_store_refuses_spends_when_the_log_is_full_and_the_file_refuses_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = sqlite_path(&dir);
        refuse_the_next_transaction_of(&path, "kim", 1).await;
        let store = SqliteBudgetStore::open(&path, DEFAULT_MONTHLY_LIMIT).unwrap();
        let mut answered = 0;
        let err = loop {
            // One spend per window: one log block each.
            match store.check_and_spend(spend("kim", 1, 0, true), NOW).await {
                Ok(_) => answered += 1,
                Err(e) => break e,
            }
            assert!(answered <= 4096, "the log never filled");
        };
        assert!(err.to_string().contains("UNIQUE"), "{err}");
        assert!(answered >= 1000, "{answered} spends before the log was full");
    }

    /// Deleting the budget file resets budgets: the spend log left beside it belongs to the
    /// old file and is not read into the new one.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite_store_reset_by_deleting_the_file_does_not_replay_the_old_log() {
        let dir = tempfile::tempdir().unwrap();
        let path = sqlite_path(&dir);
        let store = SqliteBudgetStore::open(&path, DEFAULT_MONTHLY_LIMIT).unwrap();
        store.check_and_spend(spend("lee", 10, 0, true), NOW).await.unwrap();
        drop(store);
        assert!(path.with_file_name("budgets.sqlite3-spends").exists());
        std::fs::remove_file(&path).unwrap();
        let store = SqliteBudgetStore::open(&path, DEFAULT_MONTHLY_LIMIT).unwrap();
        assert_eq!(store.status("lee", NOW).await.unwrap().current(), usd(0));
        store.check_and_spend(spend("lee", 3, 0, true), NOW).await.unwrap();
        drop(store);
        let store = SqliteBudgetStore::open(&path, DEFAULT_MONTHLY_LIMIT).unwrap();
        assert_eq!(store.status("lee", NOW).await.unwrap().current(), usd(3));
    }

    #[test]
    fn sqlite_store_open_reports_unusable_paths() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("not-a-dir");
        std::fs::write(&file, b"x").unwrap();
        let err = SqliteBudgetStore::open(file.join("budgets.sqlite3"), DEFAULT_MONTHLY_LIMIT).unwrap_err();
        assert_eq!(err.store(), "sqlite");
        assert!(err.to_string().contains("not-a-dir"), "{err}");
    }
}

/// The shared store, on a real redis-server.
#[cfg(feature = "native")]
mod redis_store {
    use super::redis_server::{redis_server, unique_prefix};
    use super::*;
    use warden_service::budget::RedisBudgetStore;

    async fn redis_store(url: &str, test: &str) -> RedisBudgetStore {
        RedisBudgetStore::connect(url, DEFAULT_MONTHLY_LIMIT).await.unwrap().with_prefix(unique_prefix(test))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn redis_store_basic_flow() {
        let Some(server) = redis_server("redis_store_basic_flow") else {
            return;
        };
        let store = redis_store(&server.url, "basic").await;
        assert_eq!(store.kind(), "redis");
        basic_flow(&store).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn redis_store_month_rollover() {
        let Some(server) = redis_server("redis_store_month_rollover") else {
            return;
        };
        month_rollover(&redis_store(&server.url, "rollover").await).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 8)]
    async fn redis_store_concurrent_checks_never_overspend() {
        let Some(server) = redis_server("redis_store_concurrent_checks_never_overspend") else {
            return;
        };
        // Two connection managers, as two instances would have.
        let prefix = unique_prefix("race");
        let one = RedisBudgetStore::connect(&server.url, DEFAULT_MONTHLY_LIMIT).await.unwrap().with_prefix(&prefix);
        let two = RedisBudgetStore::connect(&server.url, DEFAULT_MONTHLY_LIMIT).await.unwrap().with_prefix(&prefix);
        concurrent_checks_never_overspend(&[Arc::new(one), Arc::new(two)]).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn redis_store_keys_share_a_hash_tag_and_expire() {
        let Some(server) = redis_server("redis_store_keys_share_a_hash_tag_and_expire") else {
            return;
        };
        let prefix = unique_prefix("keys");
        let store = RedisBudgetStore::connect(&server.url, DEFAULT_MONTHLY_LIMIT).await.unwrap().with_prefix(&prefix);
        store.check_and_spend(spend("u{1}", 30, 1_000_000, true), NOW).await.unwrap();
        store.set_limit("u{1}", usd(50_000_000)).await.unwrap();

        let client = redis::Client::open(server.url.as_str()).unwrap();
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        let mut keys: Vec<String> = redis::cmd("KEYS").arg(format!("{prefix}:*")).query_async(&mut conn).await.unwrap();
        keys.sort();
        let tagged = |suffix: &str| format!("{prefix}:budget:{{u%7B1%7D}}:{suffix}");
        assert_eq!(keys, vec![tagged("2025-09"), tagged("limit"), tagged("seq"), tagged("tx")]);
        let ttl: i64 = redis::cmd("TTL").arg(tagged("2025-09")).query_async(&mut conn).await.unwrap();
        assert!(ttl > 61 * 24 * 3600 && ttl <= 62 * 24 * 3600, "ttl {ttl}");
        let ttl: i64 = redis::cmd("TTL").arg(tagged("limit")).query_async(&mut conn).await.unwrap();
        assert_eq!(ttl, -1, "explicit limits do not expire");
        let spent: Vec<String> =
            redis::cmd("HMGET").arg(tagged("2025-09")).arg("llm").arg("purchase").query_async(&mut conn).await.unwrap();
        assert_eq!(spent, vec!["30".to_string(), "1000000".to_string()]);

        // Huge amounts are exceeded, never recorded; huge limits are refused.
        let out = store.check_and_spend(spend("u{1}", 0, i64::MAX, true), NOW).await.unwrap();
        assert_eq!(out.assessment.outcome, BudgetOutcome::Exceeded);
        assert!(!out.recorded);
        assert!(store.set_limit("u{1}", usd(i64::MAX)).await.is_err());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn redis_store_spends_in_one_round_trip_and_survives_a_script_flush() {
        let Some(server) = redis_server("redis_store_spends_in_one_round_trip_and_survives_a_script_flush") else {
            return;
        };
        let store = redis_store(&server.url, "evalsha").await;
        let client = redis::Client::open(server.url.as_str()).unwrap();
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        let calls = |stats: &str, command: &str| -> u64 {
            stats
                .lines()
                .find_map(|line| line.strip_prefix(&format!("cmdstat_{command}:calls=")))
                .map_or(0, |rest| rest.split(',').next().unwrap().parse().unwrap())
        };
        // A server without the script (restarted, or flushed): the spend still goes through.
        let () = redis::cmd("SCRIPT").arg("FLUSH").query_async(&mut conn).await.unwrap();
        let () = redis::cmd("CONFIG").arg("RESETSTAT").query_async(&mut conn).await.unwrap();
        let out = store.check_and_spend(spend("u1", 10, 0, true), NOW).await.unwrap();
        assert!(out.recorded);
        // Then every spend is one EVALSHA (the first one above answered NOSCRIPT), and a
        // status read one MULTI/EXEC with one HMGET.
        for _ in 0..5 {
            assert!(store.check_and_spend(spend("u1", 10, 0, true), NOW).await.unwrap().recorded);
        }
        assert_eq!(store.status("u1", NOW).await.unwrap().llm_spend, Money::from_micros(60));
        let stats: String = redis::cmd("INFO").arg("commandstats").query_async(&mut conn).await.unwrap();
        assert_eq!(calls(&stats, "evalsha"), 6, "{stats}");
        assert_eq!(calls(&stats, "eval"), 1, "{stats}");
        assert_eq!(calls(&stats, "script|load"), 0, "{stats}");
        assert_eq!(calls(&stats, "exec"), 1, "{stats}");
        assert_eq!(calls(&stats, "hmget"), 1, "{stats}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn redis_store_reports_an_unreachable_server() {
        // Nothing listens on port 1: connecting fails with a store error, not a hang or panic.
        let started = std::time::Instant::now();
        let err = RedisBudgetStore::connect("redis://127.0.0.1:1", DEFAULT_MONTHLY_LIMIT).await.unwrap_err();
        assert_eq!(err.store(), "redis");
        assert!(started.elapsed() < std::time::Duration::from_secs(30));
        let err = RedisBudgetStore::connect("not a url", DEFAULT_MONTHLY_LIMIT).await.unwrap_err();
        assert!(err.to_string().contains("invalid REDIS_URL"), "{err}");
    }
}
