//! The in-process budget store: exact and atomic within one process, lost on restart.

use super::{
    BudgetSnapshot, BudgetStore, Row, SpendOutcome, SpendRequest, StoreError, Transaction, TRANSACTION_HISTORY,
};
use async_trait::async_trait;
use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard, PoisonError};
use warden_engine::budget::{period_key, Money};

/// Budgets in a mutex-guarded map: for tests, wasm runtimes and single-process development.
/// Keeps the last [`TRANSACTION_HISTORY`] transactions per user.
#[derive(Debug)]
pub struct MemoryBudgetStore {
    default_limit: Money,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    rows: HashMap<String, Row>,
    /// Newest first.
    transactions: HashMap<String, VecDeque<Transaction>>,
    last_id: i64,
}

impl MemoryBudgetStore {
    /// An empty store whose users get `default_limit` unless set otherwise.
    pub fn new(default_limit: Money) -> MemoryBudgetStore {
        MemoryBudgetStore { default_limit, state: Mutex::new(State::default()) }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every update completes before the guard drops, so a panic elsewhere cannot leave a
        // half-applied spend behind: recovering the data is safe.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl State {
    fn row(&mut self, user: &str, period: &str) -> &mut Row {
        let row = self.rows.entry(user.to_string()).or_insert_with(|| Row::new(period.to_string()));
        row.roll_to(period);
        row
    }
}

#[async_trait]
impl BudgetStore for MemoryBudgetStore {
    async fn status(&self, user: &str, now_secs: i64) -> Result<BudgetSnapshot, StoreError> {
        let period = period_key(now_secs);
        let mut state = self.lock();
        Ok(state.row(user, &period).snapshot(self.default_limit))
    }

    async fn check_and_spend(&self, req: SpendRequest, now_secs: i64) -> Result<SpendOutcome, StoreError> {
        let period = period_key(now_secs);
        let mut state = self.lock();
        let row = state.row(&req.user, &period);
        let checked = row.check_and_spend(&req, self.default_limit);
        let snapshot = row.snapshot(self.default_limit);
        for (kind, amount) in checked.entries() {
            state.last_id = state.last_id.saturating_add(1);
            let transaction = Transaction {
                id: state.last_id,
                user: req.user.clone(),
                kind,
                amount,
                tool: req.tool.clone(),
                corr_id: req.corr_id.clone(),
                ts: now_secs,
            };
            let history = state.transactions.entry(req.user.clone()).or_default();
            history.push_front(transaction);
            history.truncate(TRANSACTION_HISTORY);
        }
        Ok(SpendOutcome { assessment: checked.assessment, recorded: checked.recorded, snapshot })
    }

    async fn set_limit(&self, user: &str, limit: Money) -> Result<(), StoreError> {
        let mut state = self.lock();
        match state.rows.get_mut(user) {
            Some(row) => row.limit = Some(limit),
            None => {
                // A row created here belongs to no period yet; the next check rolls it over.
                let mut row = Row::new(String::new());
                row.limit = Some(limit);
                state.rows.insert(user.to_string(), row);
            }
        }
        Ok(())
    }

    async fn transactions(&self, user: &str, limit: usize) -> Result<Vec<Transaction>, StoreError> {
        let state = self.lock();
        Ok(state
            .transactions
            .get(user)
            .map(|history| history.iter().take(limit).cloned().collect())
            .unwrap_or_default())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }

    fn kind(&self) -> &'static str {
        "memory"
    }
}
