//! Budget stores (SPEC §6): per-user monthly spend with an atomic check-and-spend, so that
//! concurrent requests can never overspend. The arithmetic (prices, thresholds, periods) is
//! the engine's [`warden_engine::budget`]; this module keeps the running totals.
//!
//! Three stores share one trait and one semantics:
//! - [`MemoryBudgetStore`]: a mutex-guarded map, for tests, wasm and single-process dev;
//! - `SqliteBudgetStore` (feature `native`): an embedded file, the single-machine default;
//! - `RedisBudgetStore` (feature `native`): a Lua script per check, for many instances.
//!
//! Semantics: spend is kept per (user, UTC month); a new month starts from zero. A user
//! without an explicit limit ([`BudgetStore::set_limit`]) follows the store's default limit
//! (`BUDGET_DEFAULT_LIMIT`), including when that default is changed later. A check records
//! its spend only when the budget outcome is [`BudgetOutcome::Allowed`] and the caller asks
//! for it ([`SpendRequest::record`], i.e. the policy allowed or transformed the request):
//! a warning (≥ 90 %) asks for confirmation and an exceeded budget denies, neither records.
//! LLM cost and purchase are recorded as separate transactions (zero amounts are skipped).

mod ledger;
mod memory;
#[cfg(feature = "native")]
mod redis;
#[cfg(feature = "native")]
mod spendlog;
#[cfg(feature = "native")]
mod sqlite;

pub use ledger::{Ledger, WireOutcome, WireSnapshot, WireSpend, LEDGER_HISTORY, MAX_LEDGER_BYTES};
pub use memory::MemoryBudgetStore;
#[cfg(feature = "native")]
pub use redis::{connect as connect_redis, RedisBudgetStore, DEFAULT_REDIS_PREFIX, MAX_REDIS_MICROS, PERIOD_TTL_SECS};
#[cfg(feature = "native")]
pub use sqlite::{SqliteBudgetStore, SQLITE_FILE_NAME};

use async_trait::async_trait;
use serde::Serialize;
use warden_engine::budget::{assess, reset_at_iso, Assessment, BudgetInfo, BudgetOutcome, BudgetStatus, Money};

/// The monthly limit of users without an explicit one when `BUDGET_DEFAULT_LIMIT` is unset.
pub const DEFAULT_MONTHLY_LIMIT: Money = Money::from_micros(10_000_000);

/// How many transactions a store keeps listing per user (older ones may be dropped by stores
/// with bounded history: memory and Redis).
pub const TRANSACTION_HISTORY: usize = 1_000;

/// A store failure (I/O, database, network). Budget and rate-limit stores share it. The
/// message never contains secrets (connection URLs are not echoed).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreError {
    store: &'static str,
    message: String,
}

impl StoreError {
    /// An error of store kind `store` ("memory", "sqlite", "redis").
    pub fn new(store: &'static str, message: impl Into<String>) -> StoreError {
        StoreError { store, message: message.into() }
    }

    /// Which kind of store failed.
    pub fn store(&self) -> &'static str {
        self.store
    }

    /// What went wrong.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} store: {}", self.store, self.message)
    }
}

impl std::error::Error for StoreError {}

/// A user's budget for the current period.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BudgetSnapshot {
    /// The period, `"YYYY-MM"` (UTC).
    pub period: String,
    /// The monthly limit in force (explicit or default).
    pub limit: Money,
    /// LLM spend this period.
    pub llm_spend: Money,
    /// Purchase spend this period.
    pub purchase_spend: Money,
}

impl BudgetSnapshot {
    /// LLM plus purchase spend this period.
    pub fn current(&self) -> Money {
        self.llm_spend.saturating_add(self.purchase_spend)
    }
}

/// One check of a request against its user's budget.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpendRequest {
    /// The user whose budget applies.
    pub user: String,
    /// Estimated LLM cost of the request.
    pub llm: Money,
    /// Purchase amount of the request.
    pub purchase: Money,
    /// The tool called (kept with the transactions).
    pub tool: String,
    /// The request's correlation id (kept with the transactions).
    pub corr_id: Option<String>,
    /// Record the spend if the budget allows it. False for requests the policy denied or
    /// sent to confirmation: they are assessed but cost nothing.
    pub record: bool,
}

/// The result of [`BudgetStore::check_and_spend`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpendOutcome {
    /// The verdict, computed from the spend before this request.
    pub assessment: Assessment,
    /// Whether this request's spend was recorded.
    pub recorded: bool,
    /// The budget after the request.
    pub snapshot: BudgetSnapshot,
}

impl SpendOutcome {
    /// The response's `budget_status`: spend as it stands after the request.
    pub fn status(&self) -> BudgetStatus {
        BudgetStatus::new(self.assessment.outcome, self.snapshot.current(), self.snapshot.limit)
    }

    /// The response's `budget_info`, with the model that priced the request and the time of
    /// the check (for `resetAt`).
    pub fn info(&self, model: &str, now_secs: i64) -> BudgetInfo {
        BudgetInfo {
            model: model.to_string(),
            estimated_llm_cost: self.assessment.estimated,
            purchase_amount: self.assessment.purchase,
            projected_spend: self.assessment.projected,
            llm_spend: self.snapshot.llm_spend,
            purchase_spend: self.snapshot.purchase_spend,
            period: self.snapshot.period.clone(),
            reset_at: reset_at_iso(now_secs),
        }
    }
}

/// What a transaction paid for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SpendKind {
    /// Estimated LLM input cost.
    Llm,
    /// A purchase made by a tool.
    Purchase,
}

impl SpendKind {
    /// The stored name: `llm` or `purchase`.
    pub const fn as_str(self) -> &'static str {
        match self {
            SpendKind::Llm => "llm",
            SpendKind::Purchase => "purchase",
        }
    }

    /// Parses a stored name.
    pub fn parse(name: &str) -> Option<SpendKind> {
        match name {
            "llm" => Some(SpendKind::Llm),
            "purchase" => Some(SpendKind::Purchase),
            _ => None,
        }
    }
}

/// One recorded spend.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Transaction {
    /// Store-assigned id, increasing per user (per store for the memory store).
    pub id: i64,
    /// The user charged.
    pub user: String,
    /// LLM cost or purchase.
    pub kind: SpendKind,
    /// The amount (dollars in JSON).
    pub amount: Money,
    /// The tool called.
    pub tool: String,
    /// The request's correlation id.
    pub corr_id: Option<String>,
    /// When it was recorded, Unix seconds.
    pub ts: i64,
}

/// A store of per-user monthly budgets. Every implementation makes
/// [`check_and_spend`](BudgetStore::check_and_spend) atomic: concurrent checks for one user
/// are serialized, so recorded spend never passes the thresholds.
#[async_trait]
pub trait BudgetStore: Send + Sync {
    /// The user's budget for the period containing `now_secs` (zero spend in a new month).
    async fn status(&self, user: &str, now_secs: i64) -> Result<BudgetSnapshot, StoreError>;

    /// Atomically: start a new period if the month changed, assess the request against the
    /// spend so far, and record its spend when the outcome is allowed and `req.record` is set.
    async fn check_and_spend(&self, req: SpendRequest, now_secs: i64) -> Result<SpendOutcome, StoreError>;

    /// Sets a user's monthly limit (overriding the default from now on).
    async fn set_limit(&self, user: &str, limit: Money) -> Result<(), StoreError>;

    /// The user's most recent transactions, newest first, at most `limit`.
    async fn transactions(&self, user: &str, limit: usize) -> Result<Vec<Transaction>, StoreError>;

    /// Whether the store answers (readiness).
    async fn ping(&self) -> Result<(), StoreError>;

    /// `"memory"`, `"sqlite"` or `"redis"`.
    fn kind(&self) -> &'static str;
}

/// A user's stored budget row, as the read-modify-write stores (memory, SQLite) keep it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Row {
    /// Explicit limit; `None` follows the store's default.
    limit: Option<Money>,
    llm: Money,
    purchase: Money,
    period: String,
}

impl Row {
    fn new(period: String) -> Row {
        Row { limit: None, llm: Money::ZERO, purchase: Money::ZERO, period }
    }

    /// Starts `period` with zero spend if the row belongs to an earlier one. Returns whether it
    /// changed.
    fn roll_to(&mut self, period: &str) -> bool {
        if self.period == period {
            return false;
        }
        self.llm = Money::ZERO;
        self.purchase = Money::ZERO;
        self.period = period.to_string();
        true
    }

    fn snapshot(&self, default_limit: Money) -> BudgetSnapshot {
        BudgetSnapshot {
            period: self.period.clone(),
            limit: self.limit.unwrap_or(default_limit),
            llm_spend: self.llm,
            purchase_spend: self.purchase,
        }
    }

    /// The check-and-spend state transition shared by the memory and SQLite stores (Redis runs
    /// the same rule in Lua). The caller holds the lock or transaction.
    fn check_and_spend(&mut self, req: &SpendRequest, default_limit: Money) -> Checked {
        let before = self.snapshot(default_limit);
        let assessment = assess(before.current(), before.limit, req.llm, req.purchase);
        let recorded = req.record && assessment.outcome == BudgetOutcome::Allowed;
        if recorded {
            self.llm = self.llm.saturating_add(assessment.estimated);
            self.purchase = self.purchase.saturating_add(assessment.purchase);
        }
        Checked { assessment, recorded }
    }
}

/// What [`Row::check_and_spend`] decided.
struct Checked {
    assessment: Assessment,
    recorded: bool,
}

impl Checked {
    /// The transactions to store for a recorded spend: one per non-zero kind.
    fn entries(&self) -> Vec<(SpendKind, Money)> {
        if !self.recorded {
            return Vec::new();
        }
        [(SpendKind::Llm, self.assessment.estimated), (SpendKind::Purchase, self.assessment.purchase)]
            .into_iter()
            .filter(|(_, amount)| *amount > Money::ZERO)
            .collect()
    }
}
