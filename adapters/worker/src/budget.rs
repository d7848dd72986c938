//! Budgets on Workers (`WARDEN_STORE=durable_objects`): one Durable Object per user (named by
//! the user id, class [`BudgetObject`], binding [`BUDGET_DO_BINDING`]) keeps that user's
//! [`Ledger`] in its storage. A Durable Object runs one request at a time between awaits, and
//! the check-and-spend here never awaits between reading the ledger and changing it, so
//! concurrent spends of one user are serialized wherever they come from (any isolate, any
//! location): the same no-overspend guarantee as the server's stores. The new ledger is in the
//! object's storage before the answer leaves it (the runtime's output gate holds the answer
//! until the write is durable), so an acknowledged spend is never lost.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::cell::RefCell;
use warden_engine::budget::Money;
use warden_service::budget::{
    BudgetSnapshot, BudgetStore, Ledger, SpendOutcome, SpendRequest, StoreError, Transaction, WireOutcome,
    WireSnapshot, WireSpend,
};
use worker::send::{SendFuture, SendWrapper};
use worker::{durable_object, DurableObject, Env, Method, ObjectNamespace, Request, RequestInit, Response, State};

/// The Durable Object namespace binding of the budget objects.
pub const BUDGET_DO_BINDING: &str = "WARDEN_BUDGETS";
/// The storage key of the ledger inside a user's object.
const LEDGER_KEY: &str = "ledger";
/// `StoreError` kind.
const STORE: &str = "durable_objects";

/// What the Worker asks a user's object.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
enum Op {
    Spend { spend: WireSpend, now: i64, default_limit: i64 },
    Status { now: i64, default_limit: i64 },
    SetLimit { limit: i64 },
    Transactions { user: String, limit: usize },
}

/// What a user's object answers.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Reply {
    Spent(WireOutcome),
    Status(WireSnapshot),
    Done,
    Transactions(Vec<WireTransaction>),
}

#[derive(Debug, Serialize, Deserialize)]
struct WireTransaction {
    id: i64,
    kind: String,
    amount: i64,
    tool: String,
    corr_id: Option<String>,
    ts: i64,
}

/// One user's budget: a Durable Object holding the user's ledger.
#[durable_object]
pub struct BudgetObject {
    state: State,
    /// The ledger as last stored (loaded on first use).
    ledger: RefCell<Option<Ledger>>,
}

impl BudgetObject {
    /// The ledger, read from storage on first use. Concurrent first requests may both read;
    /// the first to finish is kept, so no change is ever lost to a late read.
    async fn load(&self) -> worker::Result<()> {
        if self.ledger.borrow().is_some() {
            return Ok(());
        }
        let text: Option<String> = self.state.storage().get(LEDGER_KEY).await?;
        let ledger = Ledger::parse(text.as_deref(), STORE).map_err(|e| worker::Error::RustError(e.to_string()))?;
        self.ledger.borrow_mut().get_or_insert(ledger);
        Ok(())
    }

    /// Applies `op` to the cached ledger with no await in between (the serialization point);
    /// returns the answer and the ledger to store when it changed.
    fn apply(&self, op: Op) -> (Reply, Option<String>) {
        let mut cell = self.ledger.borrow_mut();
        let ledger = cell.get_or_insert_with(Ledger::default);
        match op {
            Op::Spend { spend, now, default_limit } => {
                let (outcome, changed) =
                    ledger.check_and_spend(&SpendRequest::from(spend), now, Money::from_micros(default_limit));
                (Reply::Spent(WireOutcome::from(&outcome)), changed.then(|| ledger.to_json()))
            }
            Op::Status { now, default_limit } => {
                let (snapshot, changed) = ledger.status(now, Money::from_micros(default_limit));
                (Reply::Status(WireSnapshot::from(&snapshot)), changed.then(|| ledger.to_json()))
            }
            Op::SetLimit { limit } => {
                ledger.set_limit(Money::from_micros(limit));
                (Reply::Done, Some(ledger.to_json()))
            }
            Op::Transactions { user, limit } => {
                let list = ledger
                    .transactions(&user, limit)
                    .into_iter()
                    .map(|t| WireTransaction {
                        id: t.id,
                        kind: t.kind.as_str().to_owned(),
                        amount: t.amount.micros(),
                        tool: t.tool,
                        corr_id: t.corr_id,
                        ts: t.ts,
                    })
                    .collect();
                (Reply::Transactions(list), None)
            }
        }
    }
}

impl DurableObject for BudgetObject {
    fn new(state: State, _env: Env) -> Self {
        BudgetObject { state, ledger: RefCell::new(None) }
    }

    async fn fetch(&self, mut req: Request) -> worker::Result<Response> {
        let op: Op = match req.json().await {
            Ok(op) => op,
            Err(e) => return Response::error(format!("invalid budget operation: {e}"), 400),
        };
        if let Err(e) = self.load().await {
            return Response::error(format!("cannot read the ledger: {e}"), 500);
        }
        let (reply, store) = self.apply(op);
        if let Some(text) = store {
            if let Err(e) = self.state.storage().put(LEDGER_KEY, text).await {
                // The cache may hold a spend that is not stored: drop it and read storage again.
                self.ledger.borrow_mut().take();
                return Response::error(format!("cannot store the ledger: {e}"), 500);
            }
        }
        Response::from_json(&reply)
    }
}

/// The Worker's side: a [`BudgetStore`] that sends each operation to the user's object.
pub struct DurableObjectBudgetStore {
    namespace: SendWrapper<ObjectNamespace>,
    default_limit: Money,
}

impl core::fmt::Debug for DurableObjectBudgetStore {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("DurableObjectBudgetStore").field("default_limit", &self.default_limit).finish_non_exhaustive()
    }
}

fn store_error(e: impl core::fmt::Display) -> StoreError {
    StoreError::new(STORE, e.to_string())
}

impl DurableObjectBudgetStore {
    /// A store on the `WARDEN_BUDGETS` namespace of `env`.
    pub fn new(namespace: ObjectNamespace, default_limit: Money) -> DurableObjectBudgetStore {
        DurableObjectBudgetStore { namespace: SendWrapper(namespace), default_limit }
    }

    async fn call(&self, user: &str, op: &Op) -> Result<Reply, StoreError> {
        let body = serde_json::to_string(op).map_err(store_error)?;
        let stub = self.namespace.0.id_from_name(user).and_then(|id| id.get_stub()).map_err(store_error)?;
        let mut init = RequestInit::new();
        init.with_method(Method::Post).with_body(Some(body.into()));
        // The host is never resolved: a stub's fetch goes to the object.
        let req = Request::new_with_init("https://budget.warden/", &init).map_err(store_error)?;
        let mut resp = SendFuture::new(stub.fetch_with_request(req)).await.map_err(store_error)?;
        let text = SendFuture::new(resp.text()).await.map_err(store_error)?;
        if resp.status_code() != 200 {
            return Err(store_error(format!("budget object answered {}: {text}", resp.status_code())));
        }
        serde_json::from_str(&text).map_err(|e| store_error(format!("invalid answer from the budget object: {e}")))
    }
}

fn unexpected(reply: &Reply) -> StoreError {
    store_error(format!("unexpected answer from the budget object: {reply:?}"))
}

#[async_trait]
impl BudgetStore for DurableObjectBudgetStore {
    async fn status(&self, user: &str, now_secs: i64) -> Result<BudgetSnapshot, StoreError> {
        match self.call(user, &Op::Status { now: now_secs, default_limit: self.default_limit.micros() }).await? {
            Reply::Status(s) => Ok(s.into()),
            other => Err(unexpected(&other)),
        }
    }

    async fn check_and_spend(&self, req: SpendRequest, now_secs: i64) -> Result<SpendOutcome, StoreError> {
        let op = Op::Spend { spend: WireSpend::from(&req), now: now_secs, default_limit: self.default_limit.micros() };
        match self.call(&req.user, &op).await? {
            Reply::Spent(outcome) => outcome.into_outcome(STORE),
            other => Err(unexpected(&other)),
        }
    }

    async fn set_limit(&self, user: &str, limit: Money) -> Result<(), StoreError> {
        match self.call(user, &Op::SetLimit { limit: limit.micros() }).await? {
            Reply::Done => Ok(()),
            other => Err(unexpected(&other)),
        }
    }

    async fn transactions(&self, user: &str, limit: usize) -> Result<Vec<Transaction>, StoreError> {
        match self.call(user, &Op::Transactions { user: user.to_owned(), limit }).await? {
            Reply::Transactions(list) => Ok(list
                .into_iter()
                .filter_map(|t| {
                    Some(Transaction {
                        id: t.id,
                        user: user.to_owned(),
                        kind: warden_service::budget::SpendKind::parse(&t.kind)?,
                        amount: Money::from_micros(t.amount),
                        tool: t.tool,
                        corr_id: t.corr_id,
                        ts: t.ts,
                    })
                })
                .collect()),
            other => Err(unexpected(&other)),
        }
    }

    async fn ping(&self) -> Result<(), StoreError> {
        // The binding exists (checked when the store was built); objects are created on use.
        Ok(())
    }

    fn kind(&self) -> &'static str {
        STORE
    }
}
