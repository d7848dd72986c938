//! The shared budget store for many instances: Redis, one Lua script per check so that the
//! read, the threshold test and the increment are a single atomic step on the server.
//!
//! Keys per user (`<user>` percent-escapes `%`, `{`, `}` so the braces form a Redis Cluster
//! hash tag and all of a user's keys live in one slot):
//! - `<prefix>:budget:{<user>}:limit` — explicit monthly limit, micro-USD (no expiry);
//! - `<prefix>:budget:{<user>}:<YYYY-MM>` — hash `llm`, `purchase` (micro-USD); a new month
//!   is a new key, so resets need no job; it expires [`PERIOD_TTL_SECS`] after its last write;
//! - `<prefix>:budget:{<user>}:tx` — transactions, newest first, JSON, capped at
//!   [`TRANSACTION_HISTORY`];
//! - `<prefix>:budget:{<user>}:seq` — transaction id counter.
//!
//! Lua numbers are doubles, exact for integers below 2^53. Amounts and limits are therefore
//! capped at [`MAX_REDIS_MICROS`] (about 900 million USD), below which 10 × projected and
//! 9 × limit stay exact; the final assessment is recomputed in Rust with exact integers.

use super::{
    BudgetSnapshot, BudgetStore, SpendKind, SpendOutcome, SpendRequest, StoreError, Transaction, TRANSACTION_HISTORY,
};
use ::redis::aio::{ConnectionManager, ConnectionManagerConfig};
use ::redis::{AsyncCommands, Script};
use async_trait::async_trait;
use serde::Deserialize;
use std::time::Duration;
use warden_engine::budget::{assess, period_key, Money};

/// The key prefix used when none is given.
pub const DEFAULT_REDIS_PREFIX: &str = "warden";

/// How long a period's spend hash outlives its last write: two months and a day, so the
/// previous month stays inspectable and dead keys clean themselves up.
pub const PERIOD_TTL_SECS: i64 = 62 * 24 * 3600;

/// Largest limit or amount the Redis store handles exactly (2^53 / 10 micro-USD).
pub const MAX_REDIS_MICROS: i64 = 900_719_925_474_099;

/// Check-and-spend. KEYS: period hash, limit, tx list, seq. ARGV: default limit, llm,
/// purchase, record (1/0), tool, corr_id ('' = none), now (secs), ttl (secs), tx cap.
/// Returns {limit, llm before, purchase before, recorded (0/1)} as strings.
const CHECK_AND_SPEND_LUA: &str = r"
local limit = tonumber(redis.call('GET', KEYS[2]) or ARGV[1])
local llm = tonumber(redis.call('HGET', KEYS[1], 'llm') or '0')
local purchase = tonumber(redis.call('HGET', KEYS[1], 'purchase') or '0')
local add_llm = tonumber(ARGV[2])
local add_purchase = tonumber(ARGV[3])
local projected = llm + purchase + add_llm + add_purchase
local recorded = 0
if ARGV[4] == '1' and projected <= limit and projected * 10 < limit * 9 then
  local function record(kind, amount)
    redis.call('HINCRBY', KEYS[1], kind, amount)
    local id = redis.call('INCR', KEYS[4])
    local entry = {id = tostring(id), kind = kind, amount = amount, tool = ARGV[5], ts = ARGV[7]}
    if ARGV[6] ~= '' then entry.corr_id = ARGV[6] end
    redis.call('LPUSH', KEYS[3], cjson.encode(entry))
  end
  if add_llm > 0 then record('llm', ARGV[2]) end
  if add_purchase > 0 then record('purchase', ARGV[3]) end
  redis.call('EXPIRE', KEYS[1], ARGV[8])
  redis.call('LTRIM', KEYS[3], 0, tonumber(ARGV[9]) - 1)
  redis.call('EXPIRE', KEYS[3], ARGV[8])
  redis.call('EXPIRE', KEYS[4], ARGV[8])
  recorded = 1
end
return {string.format('%.0f', limit), string.format('%.0f', llm), string.format('%.0f', purchase), recorded}
";

/// Budgets in Redis, shared by every instance pointing at the same server and prefix.
#[derive(Clone)]
pub struct RedisBudgetStore {
    conn: ConnectionManager,
    prefix: String,
    default_limit: Money,
    script: Script,
}

impl std::fmt::Debug for RedisBudgetStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The connection (and its URL, which may hold a password) is not printed.
        f.debug_struct("RedisBudgetStore")
            .field("prefix", &self.prefix)
            .field("default_limit", &self.default_limit)
            .finish_non_exhaustive()
    }
}

fn redis_error(e: ::redis::RedisError) -> StoreError {
    StoreError::new("redis", e.to_string())
}

/// Connects a [`ConnectionManager`] (reconnecting, with connection and response timeouts so
/// that a dead server fails requests quickly instead of hanging them). Share it between the
/// budget store and the rate limiter.
pub async fn connect(url: &str) -> Result<ConnectionManager, StoreError> {
    let client = ::redis::Client::open(url).map_err(|e| StoreError::new("redis", format!("invalid REDIS_URL: {e}")))?;
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Duration::from_secs(2))
        .set_response_timeout(Duration::from_secs(2))
        .set_number_of_retries(3)
        .set_max_delay(1_000);
    client.get_connection_manager_with_config(config).await.map_err(redis_error)
}

fn clamp(amount: Money) -> i64 {
    amount.micros().clamp(0, MAX_REDIS_MICROS)
}

/// Escapes `%`, `{` and `}` so that a user id is exactly the key's hash tag.
fn escape_user(user: &str) -> String {
    let mut escaped = String::with_capacity(user.len());
    for c in user.chars() {
        match c {
            '%' => escaped.push_str("%25"),
            '{' => escaped.push_str("%7B"),
            '}' => escaped.push_str("%7D"),
            c => escaped.push(c),
        }
    }
    escaped
}

/// A transaction as the Lua script stores it (all strings, so big numbers stay exact).
#[derive(Deserialize)]
struct StoredTransaction {
    id: String,
    kind: String,
    amount: String,
    tool: String,
    #[serde(default)]
    corr_id: Option<String>,
    ts: String,
}

impl StoredTransaction {
    fn into_transaction(self, user: &str) -> Option<Transaction> {
        Some(Transaction {
            id: self.id.parse().ok()?,
            user: user.to_string(),
            kind: SpendKind::parse(&self.kind)?,
            amount: Money::from_micros(self.amount.parse().ok()?),
            tool: self.tool,
            corr_id: self.corr_id,
            ts: self.ts.parse().ok()?,
        })
    }
}

fn parse_micros(value: Option<String>) -> Result<Money, StoreError> {
    match value {
        None => Ok(Money::ZERO),
        Some(text) => text
            .parse()
            .map(Money::from_micros)
            .map_err(|_| StoreError::new("redis", format!("not an amount: {text:?}"))),
    }
}

impl RedisBudgetStore {
    /// Connects to `url` (`REDIS_URL`) with the default key prefix. Users without an explicit
    /// limit get `default_limit` (capped at [`MAX_REDIS_MICROS`]).
    pub async fn connect(url: &str, default_limit: Money) -> Result<RedisBudgetStore, StoreError> {
        Ok(RedisBudgetStore::new(connect(url).await?, default_limit))
    }

    /// A store on an existing connection, with the default key prefix.
    pub fn new(conn: ConnectionManager, default_limit: Money) -> RedisBudgetStore {
        RedisBudgetStore {
            conn,
            prefix: DEFAULT_REDIS_PREFIX.to_string(),
            default_limit: Money::from_micros(clamp(default_limit)),
            script: Script::new(CHECK_AND_SPEND_LUA),
        }
    }

    /// Uses `prefix` instead of `warden` for every key (several deployments, or tests, on one
    /// server).
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> RedisBudgetStore {
        self.prefix = prefix.into();
        self
    }

    fn key(&self, user: &str, suffix: &str) -> String {
        format!("{}:budget:{{{}}}:{suffix}", self.prefix, escape_user(user))
    }
}

#[async_trait]
impl BudgetStore for RedisBudgetStore {
    async fn status(&self, user: &str, now_secs: i64) -> Result<BudgetSnapshot, StoreError> {
        let period = period_key(now_secs);
        let mut conn = self.conn.clone();
        // One round trip: the limit and both amounts in one MULTI/EXEC (a consistent read).
        let (limit, (llm, purchase)): (Option<String>, (Option<String>, Option<String>)) = ::redis::pipe()
            .atomic()
            .get(self.key(user, "limit"))
            .hget(self.key(user, &period), &["llm", "purchase"])
            .query_async(&mut conn)
            .await
            .map_err(redis_error)?;
        Ok(BudgetSnapshot {
            period,
            limit: match limit {
                Some(_) => parse_micros(limit)?,
                None => self.default_limit,
            },
            llm_spend: parse_micros(llm)?,
            purchase_spend: parse_micros(purchase)?,
        })
    }

    async fn check_and_spend(&self, req: SpendRequest, now_secs: i64) -> Result<SpendOutcome, StoreError> {
        let period = period_key(now_secs);
        let llm = clamp(req.llm);
        let purchase = clamp(req.purchase);
        let mut conn = self.conn.clone();
        // One round trip per spend: EVALSHA, and on NOSCRIPT (a restarted or flushed server)
        // EVAL with the script's text, which also caches it for the next EVALSHA.
        let call = |command: &str, script: &str| {
            let mut cmd = ::redis::cmd(command);
            cmd.arg(script)
                .arg(4)
                .arg(self.key(&req.user, &period))
                .arg(self.key(&req.user, "limit"))
                .arg(self.key(&req.user, "tx"))
                .arg(self.key(&req.user, "seq"))
                .arg(self.default_limit.micros())
                .arg(llm)
                .arg(purchase)
                .arg(u8::from(req.record))
                .arg(&req.tool)
                .arg(req.corr_id.as_deref().unwrap_or(""))
                .arg(now_secs)
                .arg(PERIOD_TTL_SECS)
                .arg(TRANSACTION_HISTORY);
            cmd
        };
        type Reply = (String, String, String, i64);
        let reply: Reply = match call("EVALSHA", self.script.get_hash()).query_async(&mut conn).await {
            Err(e) if e.kind() == ::redis::ErrorKind::NoScriptError => {
                call("EVAL", CHECK_AND_SPEND_LUA).query_async(&mut conn).await
            }
            other => other,
        }
        .map_err(redis_error)?;
        let (limit, llm_before, purchase_before, recorded) = reply;
        let limit = parse_micros(Some(limit))?;
        let llm_before = parse_micros(Some(llm_before))?;
        let purchase_before = parse_micros(Some(purchase_before))?;
        // The verdict again in exact integers, with the request's unclamped amounts so that
        // huge amounts read as exceeded. Below the cap the script's doubles are exact too, so
        // it recorded exactly when this is `Allowed` (a clamped amount is never allowed).
        let assessment = assess(llm_before.saturating_add(purchase_before), limit, req.llm, req.purchase);
        let recorded = recorded == 1;
        let (llm_after, purchase_after) = if recorded {
            (
                llm_before.saturating_add(Money::from_micros(llm)),
                purchase_before.saturating_add(Money::from_micros(purchase)),
            )
        } else {
            (llm_before, purchase_before)
        };
        Ok(SpendOutcome {
            assessment,
            recorded,
            snapshot: BudgetSnapshot { period, limit, llm_spend: llm_after, purchase_spend: purchase_after },
        })
    }

    async fn set_limit(&self, user: &str, limit: Money) -> Result<(), StoreError> {
        if limit.micros() > MAX_REDIS_MICROS {
            return Err(StoreError::new("redis", format!("limit {limit} is above the Redis store's maximum")));
        }
        let mut conn = self.conn.clone();
        conn.set::<_, _, ()>(self.key(user, "limit"), limit.non_negative().micros()).await.map_err(redis_error)
    }

    async fn transactions(&self, user: &str, limit: usize) -> Result<Vec<Transaction>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let mut conn = self.conn.clone();
        let stop = isize::try_from(limit).unwrap_or(isize::MAX) - 1;
        let entries: Vec<String> = conn.lrange(self.key(user, "tx"), 0, stop).await.map_err(redis_error)?;
        entries
            .iter()
            .map(|entry| {
                serde_json::from_str::<StoredTransaction>(entry)
                    .ok()
                    .and_then(|stored| stored.into_transaction(user))
                    .ok_or_else(|| StoreError::new("redis", "malformed transaction entry"))
            })
            .collect()
    }

    async fn ping(&self) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        let reply: String = ::redis::cmd("PING").query_async(&mut conn).await.map_err(redis_error)?;
        if reply == "PONG" {
            Ok(())
        } else {
            Err(StoreError::new("redis", format!("unexpected PING reply {reply:?}")))
        }
    }

    fn kind(&self) -> &'static str {
        "redis"
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn user_ids_are_escaped_into_one_hash_tag() {
        assert_eq!(escape_user("alice"), "alice");
        assert_eq!(escape_user("a{b}c%"), "a%7Bb%7Dc%25");
        assert_eq!(escape_user("%7B"), "%257B");
    }

    #[test]
    fn stored_transactions_parse() {
        let stored: StoredTransaction = serde_json::from_str(
            r#"{"id":"7","kind":"purchase","amount":"2500000","tool":"shop.buy","ts":"1758745697"}"#,
        )
        .unwrap();
        let tx = stored.into_transaction("u1").unwrap();
        assert_eq!(tx.id, 7);
        assert_eq!(tx.kind, SpendKind::Purchase);
        assert_eq!(tx.amount, Money::from_micros(2_500_000));
        assert_eq!(tx.corr_id, None);
        assert_eq!(tx.ts, 1_758_745_697);
    }
}
