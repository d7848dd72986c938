//! One user's budget as a value that serializes to JSON, for stores that keep each user's state
//! as one record and serialize its updates themselves: a Cloudflare Durable Object (one object
//! per user, one request at a time) or a JavaScript store with compare-and-set (Vercel). The
//! check-and-spend rule is the memory and SQLite stores' own ([`Row::check_and_spend`]); the
//! wire types carry a spend and its outcome between the two halves of such a store.

use super::{BudgetSnapshot, Row, SpendKind, SpendOutcome, SpendRequest, StoreError, Transaction};
use serde::{Deserialize, Serialize};
use warden_engine::budget::{period_key, Assessment, BudgetOutcome, Money};

/// How many transactions a ledger keeps (newest first): it is rewritten whole on every spend.
pub const LEDGER_HISTORY: usize = 100;

/// Longest ledger text accepted from a store (100 transactions with long tool names fit).
pub const MAX_LEDGER_BYTES: usize = 256 * 1024;

/// A user's budget record: limit, spend of the current period, recent transactions.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ledger {
    /// Explicit monthly limit (micro-USD); `None` follows the store's default.
    #[serde(default)]
    limit: Option<i64>,
    #[serde(default)]
    llm: i64,
    #[serde(default)]
    purchase: i64,
    /// `"YYYY-MM"`; empty before the first check.
    #[serde(default)]
    period: String,
    #[serde(default)]
    last_id: i64,
    /// Newest first, at most [`LEDGER_HISTORY`].
    #[serde(default)]
    transactions: Vec<LedgerEntry>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct LedgerEntry {
    id: i64,
    kind: String,
    amount: i64,
    tool: String,
    corr_id: Option<String>,
    ts: i64,
}

impl Ledger {
    /// Reads a stored ledger; `None` (nothing stored yet) is an empty one.
    pub fn parse(text: Option<&str>, store: &'static str) -> Result<Ledger, StoreError> {
        let Some(text) = text else { return Ok(Ledger::default()) };
        if text.len() > MAX_LEDGER_BYTES {
            return Err(StoreError::new(store, format!("stored ledger is larger than {MAX_LEDGER_BYTES} bytes")));
        }
        serde_json::from_str(text).map_err(|e| StoreError::new(store, format!("stored ledger is not valid: {e}")))
    }

    /// The ledger as stored.
    pub fn to_json(&self) -> String {
        // Plain strings and integers: serialization cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    fn row(&self) -> Row {
        Row {
            limit: self.limit.map(Money::from_micros),
            llm: Money::from_micros(self.llm),
            purchase: Money::from_micros(self.purchase),
            period: self.period.clone(),
        }
    }

    fn set_row(&mut self, row: Row) {
        self.limit = row.limit.map(Money::micros);
        self.llm = row.llm.micros();
        self.purchase = row.purchase.micros();
        self.period = row.period;
    }

    /// The budget for the period containing `now_secs`; returns whether the ledger changed
    /// (a new month started) and so needs storing.
    pub fn status(&mut self, now_secs: i64, default_limit: Money) -> (BudgetSnapshot, bool) {
        let mut row = self.row();
        let changed = row.roll_to(&period_key(now_secs));
        let snapshot = row.snapshot(default_limit);
        self.set_row(row);
        (snapshot, changed)
    }

    /// Check-and-spend, exactly as the memory store does it. The caller stores the ledger
    /// afterwards (before answering) when the returned flag says it changed.
    pub fn check_and_spend(&mut self, req: &SpendRequest, now_secs: i64, default_limit: Money) -> (SpendOutcome, bool) {
        let mut row = self.row();
        let rolled = row.roll_to(&period_key(now_secs));
        let checked = row.check_and_spend(req, default_limit);
        let snapshot = row.snapshot(default_limit);
        self.set_row(row);
        let entries = checked.entries();
        let changed = rolled || !entries.is_empty();
        for (kind, amount) in entries {
            self.last_id = self.last_id.saturating_add(1);
            self.transactions.insert(
                0,
                LedgerEntry {
                    id: self.last_id,
                    kind: kind.as_str().to_owned(),
                    amount: amount.micros(),
                    tool: req.tool.clone(),
                    corr_id: req.corr_id.clone(),
                    ts: now_secs,
                },
            );
        }
        self.transactions.truncate(LEDGER_HISTORY);
        (SpendOutcome { assessment: checked.assessment, recorded: checked.recorded, snapshot }, changed)
    }

    /// Sets the explicit monthly limit.
    pub fn set_limit(&mut self, limit: Money) {
        self.limit = Some(limit.micros());
    }

    /// The most recent transactions of `user`, newest first, at most `limit`.
    pub fn transactions(&self, user: &str, limit: usize) -> Vec<Transaction> {
        self.transactions
            .iter()
            .take(limit)
            .filter_map(|e| {
                Some(Transaction {
                    id: e.id,
                    user: user.to_owned(),
                    kind: SpendKind::parse(&e.kind)?,
                    amount: Money::from_micros(e.amount),
                    tool: e.tool.clone(),
                    corr_id: e.corr_id.clone(),
                    ts: e.ts,
                })
            })
            .collect()
    }
}

/// A [`SpendRequest`] on the wire (amounts in micro-USD).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireSpend {
    user: String,
    llm: i64,
    purchase: i64,
    tool: String,
    corr_id: Option<String>,
    record: bool,
}

impl From<&SpendRequest> for WireSpend {
    fn from(r: &SpendRequest) -> WireSpend {
        WireSpend {
            user: r.user.clone(),
            llm: r.llm.micros(),
            purchase: r.purchase.micros(),
            tool: r.tool.clone(),
            corr_id: r.corr_id.clone(),
            record: r.record,
        }
    }
}

impl From<WireSpend> for SpendRequest {
    fn from(w: WireSpend) -> SpendRequest {
        SpendRequest {
            user: w.user,
            llm: Money::from_micros(w.llm),
            purchase: Money::from_micros(w.purchase),
            tool: w.tool,
            corr_id: w.corr_id,
            record: w.record,
        }
    }
}

/// A [`SpendOutcome`] on the wire (amounts in micro-USD; outcome `allowed`, `warning`,
/// `exceeded`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireOutcome {
    outcome: String,
    current: i64,
    limit: i64,
    estimated: i64,
    purchase: i64,
    projected: i64,
    recorded: bool,
    snapshot: WireSnapshot,
}

/// A [`BudgetSnapshot`] on the wire.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireSnapshot {
    period: String,
    limit: i64,
    llm_spend: i64,
    purchase_spend: i64,
}

impl From<&BudgetSnapshot> for WireSnapshot {
    fn from(s: &BudgetSnapshot) -> WireSnapshot {
        WireSnapshot {
            period: s.period.clone(),
            limit: s.limit.micros(),
            llm_spend: s.llm_spend.micros(),
            purchase_spend: s.purchase_spend.micros(),
        }
    }
}

impl From<WireSnapshot> for BudgetSnapshot {
    fn from(w: WireSnapshot) -> BudgetSnapshot {
        BudgetSnapshot {
            period: w.period,
            limit: Money::from_micros(w.limit),
            llm_spend: Money::from_micros(w.llm_spend),
            purchase_spend: Money::from_micros(w.purchase_spend),
        }
    }
}

impl From<&SpendOutcome> for WireOutcome {
    fn from(o: &SpendOutcome) -> WireOutcome {
        let a = &o.assessment;
        let outcome = match a.outcome {
            BudgetOutcome::Allowed => "allowed",
            BudgetOutcome::Warning => "warning",
            BudgetOutcome::Exceeded => "exceeded",
        };
        WireOutcome {
            outcome: outcome.to_owned(),
            current: a.current.micros(),
            limit: a.limit.micros(),
            estimated: a.estimated.micros(),
            purchase: a.purchase.micros(),
            projected: a.projected.micros(),
            recorded: o.recorded,
            snapshot: WireSnapshot::from(&o.snapshot),
        }
    }
}

impl WireOutcome {
    /// Back to a [`SpendOutcome`]; an unknown outcome name is a store error.
    pub fn into_outcome(self, store: &'static str) -> Result<SpendOutcome, StoreError> {
        let outcome = match self.outcome.as_str() {
            "allowed" => BudgetOutcome::Allowed,
            "warning" => BudgetOutcome::Warning,
            "exceeded" => BudgetOutcome::Exceeded,
            other => return Err(StoreError::new(store, format!("unknown budget outcome `{other}`"))),
        };
        Ok(SpendOutcome {
            assessment: Assessment {
                outcome,
                current: Money::from_micros(self.current),
                limit: Money::from_micros(self.limit),
                estimated: Money::from_micros(self.estimated),
                purchase: Money::from_micros(self.purchase),
                projected: Money::from_micros(self.projected),
            },
            recorded: self.recorded,
            snapshot: self.snapshot.into(),
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn spend(user: &str, dollars: f64) -> SpendRequest {
        SpendRequest {
            user: user.into(),
            llm: Money::from_dollars(dollars),
            purchase: Money::ZERO,
            tool: "t".into(),
            corr_id: None,
            record: true,
        }
    }

    #[test]
    fn spends_until_the_warning_threshold_and_survives_a_round_trip() {
        let limit = Money::from_dollars(1.0);
        let now = 1_700_000_000;
        let mut ledger = Ledger::parse(None, "test").unwrap();
        let mut recorded = 0;
        for _ in 0..20 {
            let (outcome, changed) = ledger.check_and_spend(&spend("u", 0.1), now, limit);
            assert_eq!(changed, outcome.recorded);
            recorded += usize::from(outcome.recorded);
            // Through the text a store keeps, and the wire form of the outcome.
            ledger = Ledger::parse(Some(&ledger.to_json()), "test").unwrap();
            let wire: WireOutcome =
                serde_json::from_str(&serde_json::to_string(&WireOutcome::from(&outcome)).unwrap()).unwrap();
            assert_eq!(wire.into_outcome("test").unwrap(), outcome);
        }
        // 0.8 is the last spend below 90 % of the limit.
        assert_eq!(recorded, 8);
        let (snapshot, _) = ledger.status(now, limit);
        assert_eq!(snapshot.current(), Money::from_dollars(0.8));
        assert_eq!(ledger.transactions("u", 3).len(), 3);
        assert_eq!(ledger.transactions("u", 100)[0].id, 8);
        // A new month starts from zero.
        let (snapshot, changed) = ledger.status(now + 40 * 86_400, limit);
        assert!(changed);
        assert_eq!(snapshot.current(), Money::ZERO);
    }

    #[test]
    fn explicit_limits_and_bad_text() {
        let mut ledger = Ledger::default();
        ledger.set_limit(Money::from_dollars(100.0));
        let (outcome, _) = ledger.check_and_spend(&spend("u", 50.0), 0, Money::from_dollars(1.0));
        assert!(outcome.recorded);
        assert!(Ledger::parse(Some("{"), "test").unwrap_err().message().contains("not valid"));
        assert!(Ledger::parse(Some(&"x".repeat(MAX_LEDGER_BYTES + 1)), "test").is_err());
        let history = Ledger { transactions: vec![], ..Ledger::default() };
        assert!(history.transactions("u", 5).is_empty());
    }
}
