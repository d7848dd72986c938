//! Shared state in one DynamoDB table (`WARDEN_DYNAMODB_TABLE`, partition key `pk` of type S,
//! TTL attribute `expires_at`) for `WARDEN_STORE=dynamodb`: budgets, rate limits and message
//! dedupe across concurrent Lambda instances.
//!
//! Budgets never overspend: a check reads the user's row (strongly consistent), assesses it
//! with the engine's rule, and records spend with a put conditioned on the row's version, so
//! of two concurrent spends one wins and the other re-reads and re-assesses. A request that is
//! not recorded (denied, warning, exceeded) writes nothing.

use crate::client::{AwsClient, AwsError};
use async_trait::async_trait;
use serde_json::{json, Value};
use std::num::NonZeroU32;
use std::time::Duration;
use warden_engine::budget::{assess, period_key, BudgetOutcome, Money};
use warden_service::budget::{
    BudgetSnapshot, BudgetStore, SpendKind, SpendOutcome, SpendRequest, StoreError, Transaction,
};
use warden_service::ratelimit::{RateDecision, RateLimiter};
use warden_service::service::{MessageDedupe, Seen};

/// Conditional-write attempts of one check before it gives up as a store error.
const MAX_ATTEMPTS: u32 = 200;

/// Transactions kept per user in the budget row (an item is at most 400 KB).
pub const ROW_TRANSACTIONS: usize = 100;

/// The rate-limit window.
const WINDOW_MS: i64 = 60_000;

const KIND: &str = "dynamodb";

fn store_error(e: &AwsError) -> StoreError {
    StoreError::new(KIND, e.to_string())
}

/// The table and the client.
#[derive(Clone, Debug)]
pub struct Table {
    client: AwsClient,
    name: String,
}

impl Table {
    /// The table `name`.
    pub fn new(client: AwsClient, name: impl Into<String>) -> Table {
        Table { client, name: name.into() }
    }

    async fn call(&self, op: &str, mut body: Value) -> Result<Value, AwsError> {
        if let Some(m) = body.as_object_mut() {
            m.insert("TableName".into(), json!(self.name));
        }
        self.client.json("dynamodb", &format!("DynamoDB_20120810.{op}"), &body).await
    }

    async fn get(&self, pk: &str) -> Result<Option<Value>, AwsError> {
        let out = self.call("GetItem", json!({"Key": {"pk": {"S": pk}}, "ConsistentRead": true})).await?;
        Ok(out.get("Item").cloned())
    }
}

fn num(item: &Value, name: &str) -> Option<i64> {
    item.get(name)?.get("N")?.as_str()?.parse().ok()
}

fn text<'a>(item: &'a Value, name: &str) -> Option<&'a str> {
    item.get(name)?.get("S")?.as_str()
}

fn jitter_ms() -> u64 {
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    u64::from(nanos % 16) + 1
}

/// Per-user budgets in DynamoDB.
#[derive(Debug)]
pub struct DynamoBudgetStore {
    table: Table,
    default_limit: Money,
}

/// A budget row as stored.
struct Row {
    version: Option<i64>,
    limit: Option<Money>,
    llm: Money,
    purchase: Money,
    period: String,
    transactions: Vec<Value>,
}

impl DynamoBudgetStore {
    /// A store in `table` with `default_limit` for users without their own.
    pub fn new(table: Table, default_limit: Money) -> DynamoBudgetStore {
        DynamoBudgetStore { table, default_limit }
    }

    fn key(user: &str) -> String {
        format!("budget#{user}")
    }

    async fn row(&self, user: &str, period: &str) -> Result<Row, StoreError> {
        let item = self.table.get(&Self::key(user)).await.map_err(|e| store_error(&e))?;
        let Some(item) = item else {
            return Ok(Row {
                version: None,
                limit: None,
                llm: Money::ZERO,
                purchase: Money::ZERO,
                period: period.to_owned(),
                transactions: Vec::new(),
            });
        };
        let same_period = text(&item, "period") == Some(period);
        let spend = |name| if same_period { Money::from_micros(num(&item, name).unwrap_or(0)) } else { Money::ZERO };
        Ok(Row {
            version: Some(num(&item, "ver").unwrap_or(0)),
            limit: num(&item, "limit_micros").map(Money::from_micros),
            llm: spend("llm_micros"),
            purchase: spend("purchase_micros"),
            period: period.to_owned(),
            transactions: text(&item, "txns").and_then(|t| serde_json::from_str(t).ok()).unwrap_or_default(),
        })
    }

    fn snapshot(&self, row: &Row) -> BudgetSnapshot {
        BudgetSnapshot {
            period: row.period.clone(),
            limit: row.limit.unwrap_or(self.default_limit),
            llm_spend: row.llm,
            purchase_spend: row.purchase,
        }
    }
}

#[async_trait]
impl BudgetStore for DynamoBudgetStore {
    async fn status(&self, user: &str, now_secs: i64) -> Result<BudgetSnapshot, StoreError> {
        let row = self.row(user, &period_key(now_secs)).await?;
        Ok(self.snapshot(&row))
    }

    async fn check_and_spend(&self, req: SpendRequest, now_secs: i64) -> Result<SpendOutcome, StoreError> {
        let period = period_key(now_secs);
        for _ in 0..MAX_ATTEMPTS {
            let mut row = self.row(&req.user, &period).await?;
            let before = self.snapshot(&row);
            let assessment = assess(before.current(), before.limit, req.llm, req.purchase);
            let recorded = req.record && assessment.outcome == BudgetOutcome::Allowed;
            if !recorded {
                return Ok(SpendOutcome { assessment, recorded, snapshot: before });
            }
            row.llm = row.llm.saturating_add(assessment.estimated);
            row.purchase = row.purchase.saturating_add(assessment.purchase);
            let version = row.version.unwrap_or(0).saturating_add(1);
            for (kind, amount) in [(SpendKind::Llm, assessment.estimated), (SpendKind::Purchase, assessment.purchase)] {
                if amount > Money::ZERO {
                    row.transactions.insert(
                        0,
                        json!({"id": version, "kind": kind.as_str(), "amount": amount.micros(), "tool": req.tool,
                               "corr_id": req.corr_id, "ts": now_secs}),
                    );
                }
            }
            row.transactions.truncate(ROW_TRANSACTIONS);
            let mut item = json!({
                "pk": {"S": Self::key(&req.user)},
                "ver": {"N": version.to_string()},
                "period": {"S": period},
                "llm_micros": {"N": row.llm.micros().to_string()},
                "purchase_micros": {"N": row.purchase.micros().to_string()},
                "txns": {"S": Value::Array(row.transactions.clone()).to_string()},
            });
            if let (Some(limit), Some(m)) = (row.limit, item.as_object_mut()) {
                m.insert("limit_micros".into(), json!({"N": limit.micros().to_string()}));
            }
            let condition = match row.version {
                Some(v) => {
                    json!({"ConditionExpression": "ver = :v", "ExpressionAttributeValues": {":v": {"N": v.to_string()}}})
                }
                None => json!({"ConditionExpression": "attribute_not_exists(pk)"}),
            };
            let mut body = json!({"Item": item});
            if let (Some(b), Some(c)) = (body.as_object_mut(), condition.as_object()) {
                b.extend(c.clone());
            }
            match self.table.call("PutItem", body).await {
                Ok(_) => return Ok(SpendOutcome { assessment, recorded, snapshot: self.snapshot(&row) }),
                Err(e) if e.condition_failed() => tokio::time::sleep(Duration::from_millis(jitter_ms())).await,
                Err(e) => return Err(store_error(&e)),
            }
        }
        Err(StoreError::new(KIND, "budget row contended: too many concurrent updates, try again"))
    }

    async fn set_limit(&self, user: &str, limit: Money) -> Result<(), StoreError> {
        // Bumping the version makes a concurrent check re-read the new limit.
        let body = json!({
            "Key": {"pk": {"S": Self::key(user)}},
            "UpdateExpression": "SET limit_micros = :l ADD ver :one",
            "ExpressionAttributeValues": {":l": {"N": limit.micros().to_string()}, ":one": {"N": "1"}},
        });
        self.table.call("UpdateItem", body).await.map(|_| ()).map_err(|e| store_error(&e))
    }

    async fn transactions(&self, user: &str, limit: usize) -> Result<Vec<Transaction>, StoreError> {
        let item = self.table.get(&Self::key(user)).await.map_err(|e| store_error(&e))?;
        let list: Vec<Value> =
            item.as_ref().and_then(|i| text(i, "txns")).and_then(|t| serde_json::from_str(t).ok()).unwrap_or_default();
        Ok(list
            .iter()
            .take(limit)
            .filter_map(|t| {
                Some(Transaction {
                    id: t.get("id")?.as_i64()?,
                    user: user.to_owned(),
                    kind: SpendKind::parse(t.get("kind")?.as_str()?)?,
                    amount: Money::from_micros(t.get("amount")?.as_i64()?),
                    tool: t.get("tool")?.as_str()?.to_owned(),
                    corr_id: t.get("corr_id").and_then(Value::as_str).map(str::to_owned),
                    ts: t.get("ts")?.as_i64()?,
                })
            })
            .collect())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.table.call("DescribeTable", json!({})).await.map(|_| ()).map_err(|e| store_error(&e))
    }

    fn kind(&self) -> &'static str {
        KIND
    }
}

/// Fixed-window rate limits: one atomic counter per key and minute.
#[derive(Debug)]
pub struct DynamoRateLimiter {
    table: Table,
    limit: NonZeroU32,
}

impl DynamoRateLimiter {
    /// `limit` requests per minute per key.
    pub fn new(table: Table, limit: NonZeroU32) -> DynamoRateLimiter {
        DynamoRateLimiter { table, limit }
    }
}

#[async_trait]
impl RateLimiter for DynamoRateLimiter {
    async fn hit(&self, key: &str, now_ms: i64) -> Result<RateDecision, StoreError> {
        let start = now_ms.div_euclid(WINDOW_MS) * WINDOW_MS;
        let body = json!({
            "Key": {"pk": {"S": format!("rate#{key}#{start}")}},
            "UpdateExpression": "ADD hits :one SET expires_at = :exp",
            "ExpressionAttributeValues": {":one": {"N": "1"}, ":exp": {"N": ((start + 2 * WINDOW_MS) / 1000).to_string()}},
            "ReturnValues": "UPDATED_NEW",
        });
        let out = self.table.call("UpdateItem", body).await.map_err(|e| store_error(&e))?;
        let count = out.get("Attributes").and_then(|a| num(a, "hits")).unwrap_or(1);
        let count = u64::try_from(count).unwrap_or(u64::MAX);
        let limit = self.limit.get();
        let left_ms = u64::try_from(start.saturating_add(WINDOW_MS).saturating_sub(now_ms).max(0)).unwrap_or(0);
        Ok(RateDecision {
            allowed: count <= u64::from(limit),
            limit,
            remaining: u32::try_from(u64::from(limit).saturating_sub(count)).unwrap_or(0),
            retry_after_secs: left_ms.div_ceil(1000).max(1),
        })
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.table.call("DescribeTable", json!({})).await.map(|_| ()).map_err(|e| store_error(&e))
    }

    fn kind(&self) -> &'static str {
        KIND
    }
}

/// Message dedupe: a conditional put claims an id; the answer is stored for the dedupe TTL.
#[derive(Debug)]
pub struct DynamoDedupe {
    table: Table,
}

impl DynamoDedupe {
    /// Dedupe in `table`.
    pub fn new(table: Table) -> DynamoDedupe {
        DynamoDedupe { table }
    }

    fn key(id: &str) -> String {
        format!("msg#{id}")
    }
}

fn until(now_ms: i64, ttl: Duration) -> i64 {
    now_ms.saturating_add(i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX))
}

#[async_trait]
impl MessageDedupe for DynamoDedupe {
    async fn claim(&self, id: &str, pending: Duration, now_ms: i64) -> Result<Seen, StoreError> {
        let until_ms = until(now_ms, pending);
        let body = json!({
            "Item": {
                "pk": {"S": Self::key(id)},
                "state": {"S": "pending"},
                "until_ms": {"N": until_ms.to_string()},
                "expires_at": {"N": (until_ms / 1000 + 1).to_string()},
            },
            "ConditionExpression": "attribute_not_exists(pk) OR until_ms < :now",
            "ExpressionAttributeValues": {":now": {"N": now_ms.to_string()}},
        });
        match self.table.call("PutItem", body).await {
            Ok(_) => Ok(Seen::New),
            Err(e) if e.condition_failed() => {
                let item = self.table.get(&Self::key(id)).await.map_err(|e| store_error(&e))?;
                let answer = item.as_ref().filter(|i| text(i, "state") == Some("done")).and_then(|i| text(i, "answer"));
                Ok(match answer.and_then(|a| serde_json::from_str(a).ok()) {
                    Some(v) => Seen::Done(v),
                    None => Seen::Pending,
                })
            }
            Err(e) => Err(store_error(&e)),
        }
    }

    async fn complete(&self, id: &str, answer: &Value, ttl: Duration, now_ms: i64) -> Result<(), StoreError> {
        let until_ms = until(now_ms, ttl);
        let body = json!({
            "Item": {
                "pk": {"S": Self::key(id)},
                "state": {"S": "done"},
                "answer": {"S": answer.to_string()},
                "until_ms": {"N": until_ms.to_string()},
                "expires_at": {"N": (until_ms / 1000 + 1).to_string()},
            },
        });
        self.table.call("PutItem", body).await.map(|_| ()).map_err(|e| store_error(&e))
    }

    async fn release(&self, id: &str) -> Result<(), StoreError> {
        let body = json!({"Key": {"pk": {"S": Self::key(id)}}});
        self.table.call("DeleteItem", body).await.map(|_| ()).map_err(|e| store_error(&e))
    }

    fn kind(&self) -> &'static str {
        KIND
    }
}
