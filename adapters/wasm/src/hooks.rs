//! What a JavaScript host plugs into the package: a budget store (`budgetStore`) and a
//! decision hook (`onDecision`).
//!
//! The core's traits want `Send + Sync` values and `Send` futures, which JS objects and
//! promises are not. wasm32 runs one thread, so the JS values stay in this thread's tables
//! and the Rust side holds only their indexes ([`JsLedgerStore`], [`JsDecisionHook`],
//! [`PendingCall`]); no `unsafe` needed.
//!
//! Store interface (documented in docs/edge.md, reference implementation
//! `MemoryLedgerStore` in js/budget.js): `get(user)` resolves to `{value, version}` (the
//! user's ledger text or null, and any JSON value naming its version) and
//! `compareAndSet(user, version, value)` to whether it stored `value` because the version
//! was still `version`. The budget rule runs here, on the [`Ledger`], exactly as on the
//! server; the store only keeps text atomically. Spends of one isolate are serialized by a
//! lock; compare-and-set makes them safe across isolates (a lost race re-reads and retries).

use async_trait::async_trait;
use futures_util::lock::Mutex as AsyncMutex;
use js_sys::{Function, Promise, Reflect, JSON};
use serde::Deserialize;
use serde_json::Value;
use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use warden_engine::budget::Money;
use warden_service::budget::{
    BudgetSnapshot, BudgetStore, Ledger, SpendOutcome, SpendRequest, StoreError, Transaction,
};
use warden_service::events::EventBuilder;
use warden_service::record::DecisionRecord;
use warden_service::service::Observer;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;

/// `StoreError` kind of a JS store.
const STORE: &str = "js";
/// Compare-and-set attempts before a spend gives up. Only other isolates can make one fail,
/// and an isolate that keeps writing one user's ledger can make another lose every race until
/// its own queue drains: the bound is generous, and what exceeds it follows `ON_ERROR`.
const CAS_ATTEMPTS: usize = 32;

thread_local! {
    /// JS values the Rust side refers to by index (stores, hooks); they live as long as the isolate.
    static VALUES: RefCell<Vec<JsValue>> = const { RefCell::new(Vec::new()) };
    /// Promises being awaited, by call id.
    static PENDING: RefCell<BTreeMap<u64, Pin<Box<JsFuture>>>> = const { RefCell::new(BTreeMap::new()) };
    static NEXT_CALL: Cell<u64> = const { Cell::new(0) };
}

/// Keeps `value` for the isolate's lifetime; returns its index.
fn keep(value: JsValue) -> usize {
    VALUES.with(|v| {
        let mut v = v.borrow_mut();
        v.push(value);
        v.len() - 1
    })
}

fn kept(index: usize) -> Option<JsValue> {
    VALUES.with(|v| v.borrow().get(index).cloned())
}

/// A message for a thrown JS value.
fn js_message(e: &JsValue) -> String {
    if let Some(e) = e.dyn_ref::<js_sys::Error>() {
        return String::from(e.message());
    }
    e.as_string().unwrap_or_else(|| String::from("a non-Error value was thrown"))
}

/// The JSON text of a settled promise's value, or the rejection's message.
type Settled = Result<String, String>;

/// A JS promise awaited from a `Send` future: the promise stays in [`PENDING`].
struct PendingCall(u64);

impl PendingCall {
    fn new(promise: Promise) -> PendingCall {
        let id = NEXT_CALL.with(|n| {
            let id = n.get();
            n.set(id.wrapping_add(1));
            id
        });
        PENDING.with(|p| p.borrow_mut().insert(id, Box::pin(JsFuture::from(promise))));
        PendingCall(id)
    }
}

impl Future for PendingCall {
    type Output = Settled;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Settled> {
        let id = self.0;
        PENDING.with(|p| {
            let mut p = p.borrow_mut();
            let Some(fut) = p.get_mut(&id) else { return Poll::Ready(Err(String::from("the call was dropped"))) };
            match fut.as_mut().poll(cx) {
                Poll::Pending => Poll::Pending,
                Poll::Ready(result) => {
                    p.remove(&id);
                    Poll::Ready(match result {
                        Ok(v) if v.is_undefined() => Ok(String::from("null")),
                        Ok(v) => JSON::stringify(&v)
                            .ok()
                            .and_then(|s| s.as_string())
                            .ok_or_else(|| String::from("the result is not JSON-compatible")),
                        Err(e) => Err(js_message(&e)),
                    })
                }
            }
        })
    }
}

impl Drop for PendingCall {
    fn drop(&mut self) {
        PENDING.with(|p| p.borrow_mut().remove(&self.0));
    }
}

/// Calls `target.method(args...)`; a thrown error or a non-promise result is settled at once.
fn call_method(target: &JsValue, method: &str, args: &[JsValue]) -> Result<PendingCall, String> {
    let f = Reflect::get(target, &JsValue::from_str(method))
        .ok()
        .and_then(|f| f.dyn_into::<Function>().ok())
        .ok_or_else(|| format!("budgetStore.{method} is not a function"))?;
    let this_args = js_sys::Array::new();
    for a in args {
        this_args.push(a);
    }
    let result =
        Reflect::apply(&f, target, &this_args).map_err(|e| format!("budgetStore.{method}: {}", js_message(&e)))?;
    Ok(PendingCall::new(Promise::resolve(&result)))
}

/// Whether `options.budgetStore` is a store object (has `get` and `compareAndSet` methods).
pub fn is_ledger_store(v: &JsValue) -> bool {
    ["get", "compareAndSet"].iter().all(|m| Reflect::get(v, &JsValue::from_str(m)).is_ok_and(|f| f.is_function()))
}

#[derive(Deserialize)]
struct Stored {
    value: Option<String>,
    #[serde(default)]
    version: Value,
}

/// A budget store over a JS object with `get` / `compareAndSet` (see the module docs).
pub struct JsLedgerStore {
    index: usize,
    default_limit: Money,
    /// Serializes this isolate's read-modify-write cycles.
    lock: AsyncMutex<()>,
}

impl core::fmt::Debug for JsLedgerStore {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("JsLedgerStore").field("default_limit", &self.default_limit).finish_non_exhaustive()
    }
}

fn store_error(message: impl Into<String>) -> StoreError {
    StoreError::new(STORE, message)
}

impl JsLedgerStore {
    /// A store over `store` (checked with [`is_ledger_store`]).
    pub fn new(store: JsValue, default_limit: Money) -> JsLedgerStore {
        JsLedgerStore { index: keep(store), default_limit, lock: AsyncMutex::new(()) }
    }

    fn call(&self, method: &str, args: &[JsValue]) -> Result<PendingCall, StoreError> {
        let store = kept(self.index).ok_or_else(|| store_error("the store is gone"))?;
        call_method(&store, method, args).map_err(store_error)
    }

    async fn get(&self, user: &str) -> Result<(Ledger, Value), StoreError> {
        let text = self.call("get", &[JsValue::from_str(user)])?.await.map_err(store_error)?;
        let stored: Stored = serde_json::from_str(&text)
            .map_err(|e| store_error(format!("budgetStore.get must resolve to {{value, version}}: {e}")))?;
        Ok((Ledger::parse(stored.value.as_deref(), STORE)?, stored.version))
    }

    async fn compare_and_set(&self, user: &str, version: &Value, ledger: &Ledger) -> Result<bool, StoreError> {
        let version = JSON::parse(&version.to_string()).map_err(|e| store_error(js_message(&e)))?;
        let args = [JsValue::from_str(user), version, JsValue::from_str(&ledger.to_json())];
        let text = self.call("compareAndSet", &args)?.await.map_err(store_error)?;
        serde_json::from_str::<bool>(&text)
            .map_err(|_| store_error("budgetStore.compareAndSet must resolve to a boolean"))
    }

    /// Read, apply `change`, write back when it changed; retried when another isolate wrote in between.
    async fn update<T>(&self, user: &str, change: impl Fn(&mut Ledger) -> (T, bool)) -> Result<T, StoreError> {
        let _turn = self.lock.lock().await;
        for _ in 0..CAS_ATTEMPTS {
            let (mut ledger, version) = self.get(user).await?;
            let (out, changed) = change(&mut ledger);
            if !changed || self.compare_and_set(user, &version, &ledger).await? {
                return Ok(out);
            }
        }
        Err(store_error(format!("the ledger kept changing under {CAS_ATTEMPTS} attempts (too much contention)")))
    }
}

#[async_trait]
impl BudgetStore for JsLedgerStore {
    async fn status(&self, user: &str, now_secs: i64) -> Result<BudgetSnapshot, StoreError> {
        self.update(user, |l| l.status(now_secs, self.default_limit)).await
    }

    async fn check_and_spend(&self, req: SpendRequest, now_secs: i64) -> Result<SpendOutcome, StoreError> {
        let user = req.user.clone();
        self.update(&user, |l| l.check_and_spend(&req, now_secs, self.default_limit)).await
    }

    async fn set_limit(&self, user: &str, limit: Money) -> Result<(), StoreError> {
        self.update(user, |l| {
            l.set_limit(limit);
            ((), true)
        })
        .await
    }

    async fn transactions(&self, user: &str, limit: usize) -> Result<Vec<Transaction>, StoreError> {
        Ok(self.get(user).await?.0.transactions(user, limit))
    }

    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }

    fn kind(&self) -> &'static str {
        STORE
    }
}

/// `onDecision`: called with each `decision.v1` event (the webhook body, without raw text
/// unless asked for) after `run` or `handle` decided. What it returns is not awaited (hand
/// a promise to `waitUntil`); what it throws is ignored, so a hook can never change a decision.
pub struct JsDecisionHook {
    index: usize,
    events: EventBuilder,
}

impl core::fmt::Debug for JsDecisionHook {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("JsDecisionHook").finish_non_exhaustive()
    }
}

impl JsDecisionHook {
    /// A hook calling `f` with events built by `events`.
    pub fn new(f: Function, events: EventBuilder) -> JsDecisionHook {
        JsDecisionHook { index: keep(f.into()), events }
    }
}

impl Observer for JsDecisionHook {
    fn observe(&self, record: &DecisionRecord) {
        let Some(f) = kept(self.index).and_then(|f| f.dyn_into::<Function>().ok()) else { return };
        let Ok(event) = JSON::parse(&self.events.json(record)) else { return };
        // A throwing hook must not fail the request it reports on.
        let _ = f.call1(&JsValue::UNDEFINED, &event);
    }
}
