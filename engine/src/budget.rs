//! Budget arithmetic (SPEC §6): money in integer micro-USD, the model price table, LLM cost
//! estimation, purchase amounts from `tool_config`, the allow / warn / exceed assessment,
//! UTC month periods and the `budget_status` / `budget_info` wire shapes.
//!
//! Pure: the caller passes the current spend, the limit and the clock; stores live in the
//! service crate. Money is integer micro-USD so that sums are exact and atomic store updates
//! (SQLite, Redis) add integers; it is shown as dollars (JSON numbers) only on the wire.
//!
//! ```
//! use warden_engine::budget::{assess, BudgetOutcome, BudgetStatus, Charge, Money, PriceTable};
//!
//! let table = PriceTable::builtin();
//! let tool_config = serde_json::json!({"metadata": {"model": "gpt-4o", "amount": "12.50"}});
//! let charge = Charge::estimate(4000, Some(&tool_config), &table);
//! assert_eq!(charge.total(), Money::from_micros(12_505_000));
//!
//! let spent = Money::from_dollars(80.0);
//! let limit = Money::from_dollars(100.0);
//! let a = assess(spent, limit, charge.llm, charge.purchase);
//! assert_eq!(a.outcome, BudgetOutcome::Warning);
//! assert_eq!(a.outcome.reason().to_string(), "budget_warning");
//! let status = BudgetStatus::new(a.outcome, spent, limit);
//! assert_eq!(serde_json::to_value(&status).unwrap()["percentUsed"], 80.0);
//! ```

use crate::encode::civil_from_days;
use crate::eval::Decision;
use crate::reason::Reason;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

/// Micro-USD per USD.
const MICROS_PER_DOLLAR: i64 = 1_000_000;

/// An amount of money in integer micro-USD (1 USD = 1 000 000). Serializes as a JSON number of
/// dollars. Arithmetic saturates: amounts come from request data and must never wrap.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Money(i64);

impl Money {
    /// Nothing.
    pub const ZERO: Money = Money(0);

    /// An amount of micro-USD.
    pub const fn from_micros(micros: i64) -> Money {
        Money(micros)
    }

    /// Dollars rounded to the nearest micro-USD (halves away from zero). NaN is zero; values
    /// beyond the representable range saturate.
    pub fn from_dollars(dollars: f64) -> Money {
        // `f64::round` needs std; `as` truncates toward zero and saturates (NaN → 0).
        let scaled = dollars * MICROS_PER_DOLLAR as f64;
        let whole = scaled as i64;
        let frac = scaled - whole as f64;
        let rounded = if frac >= 0.5 {
            whole.saturating_add(1)
        } else if frac <= -0.5 {
            whole.saturating_sub(1)
        } else {
            whole
        };
        Money(rounded)
    }

    /// The amount in micro-USD.
    pub const fn micros(self) -> i64 {
        self.0
    }

    /// The amount in dollars (for display and JSON).
    pub fn as_dollars(self) -> f64 {
        self.0 as f64 / MICROS_PER_DOLLAR as f64
    }

    /// Saturating sum.
    pub const fn saturating_add(self, other: Money) -> Money {
        Money(self.0.saturating_add(other.0))
    }

    /// Saturating difference.
    pub const fn saturating_sub(self, other: Money) -> Money {
        Money(self.0.saturating_sub(other.0))
    }

    /// Zero for negative amounts.
    pub const fn non_negative(self) -> Money {
        if self.0 < 0 {
            Money(0)
        } else {
            self
        }
    }
}

impl fmt::Display for Money {
    /// `$12.345678` style, trailing zeros trimmed to at least cents.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        let whole = abs / MICROS_PER_DOLLAR as u64;
        let mut frac = abs % MICROS_PER_DOLLAR as u64;
        let mut digits = 6;
        while digits > 2 && frac % 10 == 0 {
            frac /= 10;
            digits -= 1;
        }
        write!(f, "{sign}${whole}.{frac:0digits$}")
    }
}

impl Serialize for Money {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_f64(self.as_dollars())
    }
}

impl<'de> Deserialize<'de> for Money {
    /// A JSON number of dollars, rounded to the nearest micro-USD.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Money, D::Error> {
        f64::deserialize(deserializer).map(Money::from_dollars)
    }
}

/// A model's input price, kept in nano-USD per 1 000 tokens so that configured prices finer
/// than a micro-dollar per 1K tokens stay exact enough.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TokenPrice {
    nanos_per_1k: i64,
}

impl TokenPrice {
    /// A price in USD per 1 000 input tokens; `None` for negative or non-finite values (a
    /// configuration error the caller reports).
    pub fn from_usd_per_1k(usd: f64) -> Option<TokenPrice> {
        if !usd.is_finite() || usd < 0.0 {
            return None;
        }
        // Round to nearest nano-dollar; saturates for absurd prices.
        let nanos = (usd * 1e9 + 0.5) as i64;
        Some(TokenPrice { nanos_per_1k: nanos })
    }

    const fn from_nanos_per_1k(nanos_per_1k: i64) -> TokenPrice {
        TokenPrice { nanos_per_1k }
    }

    /// The price in USD per 1 000 tokens.
    pub fn usd_per_1k(self) -> f64 {
        self.nanos_per_1k as f64 / 1e9
    }

    /// Cost of `tokens` input tokens, rounded up to the next micro-USD (never undercharge).
    pub fn cost(self, tokens: u64) -> Money {
        // nano-USD per 1K tokens × tokens / 1000 = nano-USD; / 1000 = micro-USD.
        let nanos_total = i128::from(tokens) * i128::from(self.nanos_per_1k);
        let denominator: i128 = 1_000 * 1_000;
        let micros = (nanos_total + denominator - 1) / denominator;
        Money(i64::try_from(micros).unwrap_or(i64::MAX))
    }
}

/// The model whose price applies when the request names none or an unknown one: the most
/// expensive built-in, so that an unknown model never undercharges a budget.
pub const DEFAULT_MODEL: &str = "gpt-4";

/// Built-in input prices, USD per 1 000 tokens, as nano-USD.
const BUILTIN_PRICES: [(&str, i64); 8] = [
    ("gpt-4", 30_000_000),          // 0.03
    ("gpt-4-turbo", 10_000_000),    // 0.01
    ("gpt-4o", 5_000_000),          // 0.005
    ("gpt-4o-mini", 150_000),       // 0.00015
    ("gpt-3.5-turbo", 500_000),     // 0.0005
    ("claude-3-opus", 15_000_000),  // 0.015
    ("claude-3-sonnet", 3_000_000), // 0.003
    ("claude-3-haiku", 250_000),    // 0.00025
];

/// Input prices per model. Lookups are case-insensitive, ignore a `provider/` prefix
/// (`openai/gpt-4o`) and match the longest known prefix, so dated variants such as
/// `gpt-4-0613` or `claude-3-opus-20240229` get their family's price. Unknown models cost
/// [`DEFAULT_MODEL`]'s price.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PriceTable {
    /// Lowercase model name → price; overrides replace built-ins of the same name.
    entries: Vec<(String, TokenPrice)>,
    default: TokenPrice,
}

impl Default for PriceTable {
    fn default() -> Self {
        PriceTable::builtin()
    }
}

impl PriceTable {
    /// The built-in table of SPEC §6.
    pub fn builtin() -> PriceTable {
        let entries = BUILTIN_PRICES
            .iter()
            .map(|&(name, nanos)| (name.to_string(), TokenPrice::from_nanos_per_1k(nanos)))
            .collect();
        PriceTable { entries, default: TokenPrice::from_nanos_per_1k(30_000_000) }
    }

    /// Adds or replaces a model's price (configuration-provided extensions). Overriding
    /// [`DEFAULT_MODEL`] also changes the price of unknown models.
    pub fn with_override(mut self, model: &str, price: TokenPrice) -> PriceTable {
        let name = model.trim().to_ascii_lowercase();
        if name == DEFAULT_MODEL {
            self.default = price;
        }
        match self.entries.iter_mut().find(|(known, _)| *known == name) {
            Some(entry) => entry.1 = price,
            None => self.entries.push((name, price)),
        }
        self
    }

    /// The price for a model name (see the type's docs for the matching rules).
    pub fn price(&self, model: &str) -> TokenPrice {
        let name = model.trim();
        let name = name.rsplit('/').next().unwrap_or(name).to_ascii_lowercase();
        self.entries
            .iter()
            .filter(|(known, _)| name.starts_with(known.as_str()))
            .max_by_key(|(known, _)| known.len())
            .map_or(self.default, |(_, price)| *price)
    }
}

/// Estimated input tokens for a text of `chars` characters: ceil(chars / 4).
pub const fn estimate_tokens(chars: usize) -> u64 {
    (chars as u64).div_ceil(4)
}

/// Estimated LLM cost of a text of `chars` characters (Unicode scalars) for `model`:
/// ceil(chars / 4) tokens × the model's price per 1K tokens, rounded up to a micro-USD.
pub fn estimate_llm_cost(chars: usize, model: &str, table: &PriceTable) -> Money {
    table.price(model).cost(estimate_tokens(chars))
}

/// The keys of `tool_config.metadata` that carry a purchase amount, in priority order.
pub const PURCHASE_KEYS: [&str; 4] = ["purchase_amount", "amount", "price", "cost"];

/// The purchase amount of a tool call: the first of [`PURCHASE_KEYS`] in
/// `tool_config.metadata` that holds a usable amount — a JSON number or a numeric string
/// (optionally with a leading `$`), finite and not negative. Unusable values are skipped;
/// no usable value is zero.
pub fn purchase_amount(tool_config: Option<&Value>) -> Money {
    let Some(metadata) = tool_config.and_then(|config| config.get("metadata")) else {
        return Money::ZERO;
    };
    PURCHASE_KEYS.iter().filter_map(|key| metadata.get(*key)).find_map(amount_of).unwrap_or(Money::ZERO)
}

fn amount_of(value: &Value) -> Option<Money> {
    let dollars = match value {
        Value::Number(number) => number.as_f64()?,
        Value::String(text) => {
            let text = text.trim();
            let text = text.strip_prefix('$').unwrap_or(text).trim_start();
            text.parse::<f64>().ok()?
        }
        _ => return None,
    };
    (dollars.is_finite() && dollars >= 0.0).then(|| Money::from_dollars(dollars))
}

/// The model named by a tool call: `tool_config.metadata.model`, else `tool_config.model`
/// (non-empty strings only).
pub fn model_of(tool_config: Option<&Value>) -> Option<&str> {
    let config = tool_config?;
    let from_metadata = config.get("metadata").and_then(|m| m.get("model"));
    [from_metadata, config.get("model")]
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::trim)
        .find(|name| !name.is_empty())
}

/// What one request would cost: the priced model, the estimated LLM cost and the purchase.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Charge {
    /// The model whose price was used ([`DEFAULT_MODEL`] when the request named none).
    pub model: String,
    /// Estimated LLM input cost.
    pub llm: Money,
    /// Purchase amount from `tool_config.metadata`.
    pub purchase: Money,
}

impl Charge {
    /// The charge for a text of `chars` characters under `tool_config`.
    pub fn estimate(chars: usize, tool_config: Option<&Value>, table: &PriceTable) -> Charge {
        let model = model_of(tool_config).unwrap_or(DEFAULT_MODEL);
        Charge {
            model: model.to_string(),
            llm: estimate_llm_cost(chars, model, table),
            purchase: purchase_amount(tool_config),
        }
    }

    /// LLM cost plus purchase.
    pub const fn total(&self) -> Money {
        self.llm.saturating_add(self.purchase)
    }
}

/// The budget verdict for one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BudgetOutcome {
    /// Projected spend below 90 % of the limit: the spend may be recorded.
    Allowed,
    /// Projected spend at or above 90 % of the limit but within it: a human must confirm;
    /// nothing is recorded.
    Warning,
    /// Projected spend above the limit: denied; nothing is recorded.
    Exceeded,
}

impl BudgetOutcome {
    /// The reason appended to a response's `reasons`.
    pub const fn reason(self) -> Reason {
        match self {
            BudgetOutcome::Allowed => Reason::BudgetCheckPassed,
            BudgetOutcome::Warning => Reason::BudgetWarning,
            BudgetOutcome::Exceeded => Reason::BudgetExceeded,
        }
    }

    /// The decision this outcome joins into the policy decision (deny > confirm > transform
    /// > allow).
    pub const fn decision(self) -> Decision {
        match self {
            BudgetOutcome::Allowed => Decision::Allow,
            BudgetOutcome::Warning => Decision::Confirm,
            BudgetOutcome::Exceeded => Decision::Deny,
        }
    }
}

/// The inputs and result of [`assess`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Assessment {
    /// Allowed, warning or exceeded.
    pub outcome: BudgetOutcome,
    /// Spend so far this period.
    pub current: Money,
    /// The monthly limit.
    pub limit: Money,
    /// Estimated LLM cost of this request.
    pub estimated: Money,
    /// Purchase amount of this request.
    pub purchase: Money,
    /// current + estimated + purchase.
    pub projected: Money,
}

/// Judges a request against a budget: projected = current + estimated + purchase;
/// projected > limit → exceeded; projected ≥ 90 % of limit → warning; else allowed.
/// Negative inputs count as zero.
pub fn assess(current: Money, limit: Money, estimated: Money, purchase: Money) -> Assessment {
    let current = current.non_negative();
    let limit = limit.non_negative();
    let estimated = estimated.non_negative();
    let purchase = purchase.non_negative();
    let projected = current.saturating_add(estimated).saturating_add(purchase);
    // projected ≥ 0.9 × limit ⇔ 10 × projected ≥ 9 × limit, exact in i128.
    let outcome = if projected > limit {
        BudgetOutcome::Exceeded
    } else if i128::from(projected.micros()) * 10 >= i128::from(limit.micros()) * 9 {
        BudgetOutcome::Warning
    } else {
        BudgetOutcome::Allowed
    };
    Assessment { outcome, current, limit, estimated, purchase, projected }
}

const SECS_PER_DAY: i64 = 86_400;

/// (year, month 1..=12, day) → days since 1970-01-01 (inverse of `civil_from_days`).
const fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let yoe = year.rem_euclid(400); // [0, 399]
    let month = month as i64;
    let mp = if month > 2 { month - 3 } else { month + 9 }; // [0, 11]
    let doy = (153 * mp + 2) / 5 + day as i64 - 1; // [0, 365]
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy; // [0, 146096]
    era * 146_097 + doe - 719_468
}

/// The UTC (year, month 1..=12) containing a Unix time in seconds.
pub fn month_of(unix_secs: i64) -> (i32, u32) {
    let (year, month, _) = civil_from_days(unix_secs.div_euclid(SECS_PER_DAY));
    (clamp_year(year), month)
}

fn clamp_year(year: i64) -> i32 {
    i32::try_from(year).unwrap_or(if year < 0 { i32::MIN } else { i32::MAX })
}

/// The budget period (UTC month) of a Unix time, `"YYYY-MM"`.
pub fn period_key(unix_secs: i64) -> String {
    let (year, month) = month_of(unix_secs);
    alloc::format!("{year:04}-{month:02}")
}

/// The Unix time (seconds) at which the UTC month after `unix_secs` starts: when budgets reset.
pub fn next_month_start(unix_secs: i64) -> i64 {
    let (year, month) = month_of(unix_secs);
    let (year, month) = if month == 12 { (i64::from(year) + 1, 1) } else { (i64::from(year), month + 1) };
    days_from_civil(year, month, 1).saturating_mul(SECS_PER_DAY)
}

/// The reset instant of the period containing `unix_secs` as ISO-8601 UTC,
/// e.g. `"2025-10-01T00:00:00Z"`.
pub fn reset_at_iso(unix_secs: i64) -> String {
    let (year, month, day) = civil_from_days(next_month_start(unix_secs).div_euclid(SECS_PER_DAY));
    alloc::format!("{year:04}-{month:02}-{day:02}T00:00:00Z")
}

/// Percentage of `limit` that `spend` uses, 0–100, rounded to 2 decimals. A zero limit is
/// 100 % used.
pub fn percent_used(spend: Money, limit: Money) -> f64 {
    let spend = i128::from(spend.non_negative().micros());
    let limit = i128::from(limit.non_negative().micros());
    if limit == 0 {
        return 100.0;
    }
    // Hundredths of a percent, rounded half up, capped at 100.00 %.
    let hundredths = ((spend * 20_000 / limit) + 1) / 2;
    let hundredths = hundredths.min(10_000);
    hundredths as f64 / 100.0
}

/// `budget_status` of a response (GovernsAI shape, camelCase, amounts in dollars).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BudgetStatus {
    /// False only when the budget denies the request (exceeded).
    pub allowed: bool,
    /// Spend this period after the request (including it when it was recorded).
    pub current_spend: Money,
    /// The monthly limit.
    pub limit: Money,
    /// limit − current spend, never negative.
    pub remaining: Money,
    /// current spend / limit × 100, 0–100, two decimals.
    pub percent_used: f64,
    /// [`BudgetOutcome::reason`]: `budget_check_passed`, `budget_warning` or `budget_exceeded`.
    pub reason: Reason,
}

impl BudgetStatus {
    /// The status to report for an outcome, given the spend and limit as they stand after
    /// the request.
    pub fn new(outcome: BudgetOutcome, current_spend: Money, limit: Money) -> BudgetStatus {
        BudgetStatus {
            allowed: outcome != BudgetOutcome::Exceeded,
            current_spend,
            limit,
            remaining: limit.saturating_sub(current_spend).non_negative(),
            percent_used: percent_used(current_spend, limit),
            reason: outcome.reason(),
        }
    }
}

/// `budget_info` of a response: how the request was priced and where the period stands.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BudgetInfo {
    /// The model whose price was used.
    pub model: String,
    /// Estimated LLM cost of this request.
    pub estimated_llm_cost: Money,
    /// Purchase amount of this request.
    pub purchase_amount: Money,
    /// Spend before the request + estimated LLM cost + purchase.
    pub projected_spend: Money,
    /// LLM spend this period (after the request).
    pub llm_spend: Money,
    /// Purchase spend this period (after the request).
    pub purchase_spend: Money,
    /// The period, `"YYYY-MM"` (UTC).
    pub period: String,
    /// When the period ends and spend resets, ISO-8601 UTC.
    pub reset_at: String,
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use alloc::format;
    use serde_json::json;

    const fn usd(micros: i64) -> Money {
        Money::from_micros(micros)
    }

    /// Unix time of a UTC date at midnight.
    fn at(year: i64, month: u32, day: u32) -> i64 {
        days_from_civil(year, month, day) * SECS_PER_DAY
    }

    #[test]
    fn money_from_and_to_dollars() {
        assert_eq!(Money::from_dollars(10.0).micros(), 10_000_000);
        assert_eq!(Money::from_dollars(0.07).micros(), 70_000);
        assert_eq!(Money::from_dollars(0.000_000_4).micros(), 0);
        assert_eq!(Money::from_dollars(0.000_000_6).micros(), 1);
        assert_eq!(Money::from_dollars(-0.000_000_6).micros(), -1);
        assert_eq!(Money::from_dollars(1.234_567_8).micros(), 1_234_568);
        assert_eq!(Money::from_dollars(f64::NAN), Money::ZERO);
        assert_eq!(Money::from_dollars(f64::INFINITY).micros(), i64::MAX);
        assert_eq!(Money::from_dollars(1e300).micros(), i64::MAX);
        assert_eq!(usd(70_000).as_dollars(), 0.07);
        assert_eq!(usd(i64::MAX).saturating_add(usd(1)).micros(), i64::MAX);
    }

    #[test]
    fn money_serializes_as_dollars_and_displays() {
        assert_eq!(serde_json::to_string(&usd(70_000)).unwrap(), "0.07");
        assert_eq!(serde_json::to_string(&usd(10_000_000)).unwrap(), "10.0");
        assert_eq!(format!("{}", usd(10_000_000)), "$10.00");
        assert_eq!(format!("{}", usd(1_234_500)), "$1.2345");
        assert_eq!(format!("{}", usd(-70_000)), "-$0.07");
        assert_eq!(format!("{}", usd(1)), "$0.000001");
    }

    #[test]
    fn builtin_prices() {
        let table = PriceTable::builtin();
        let per_1k = |model: &str| table.price(model).usd_per_1k();
        assert_eq!(per_1k("gpt-4"), 0.03);
        assert_eq!(per_1k("gpt-4-turbo"), 0.01);
        assert_eq!(per_1k("gpt-4o"), 0.005);
        assert_eq!(per_1k("gpt-4o-mini"), 0.00015);
        assert_eq!(per_1k("gpt-3.5-turbo"), 0.0005);
        assert_eq!(per_1k("claude-3-opus"), 0.015);
        assert_eq!(per_1k("claude-3-sonnet"), 0.003);
        assert_eq!(per_1k("claude-3-haiku"), 0.00025);
    }

    #[test]
    fn dated_and_prefixed_models_match_the_longest_known_prefix() {
        let table = PriceTable::builtin();
        let per_1k = |model: &str| table.price(model).usd_per_1k();
        assert_eq!(per_1k("gpt-4-0613"), 0.03);
        assert_eq!(per_1k("gpt-4-turbo-2024-04-09"), 0.01);
        assert_eq!(per_1k("gpt-4o-2024-08-06"), 0.005);
        assert_eq!(per_1k("gpt-4o-mini-2024-07-18"), 0.00015);
        assert_eq!(per_1k("gpt-3.5-turbo-0125"), 0.0005);
        assert_eq!(per_1k("claude-3-opus-20240229"), 0.015);
        assert_eq!(per_1k("claude-3-haiku-20240307"), 0.00025);
        assert_eq!(per_1k("GPT-4O-MINI"), 0.00015);
        assert_eq!(per_1k("openai/gpt-4o"), 0.005);
        assert_eq!(per_1k(" anthropic/claude-3-sonnet-20240229 "), 0.003);
    }

    #[test]
    fn unknown_models_cost_the_default_price() {
        let table = PriceTable::builtin();
        assert_eq!(table.price("llama-3-70b"), table.price(DEFAULT_MODEL));
        assert_eq!(table.price(""), table.price(DEFAULT_MODEL));
        assert_eq!(table.price("claude-2"), table.price(DEFAULT_MODEL));
    }

    #[test]
    fn overrides_extend_and_replace() {
        let table = PriceTable::builtin()
            .with_override("Mistral-Large", TokenPrice::from_usd_per_1k(0.002).unwrap())
            .with_override("gpt-4o", TokenPrice::from_usd_per_1k(0.0025).unwrap());
        assert_eq!(table.price("mistral-large-2407").usd_per_1k(), 0.002);
        assert_eq!(table.price("gpt-4o-2024-11-20").usd_per_1k(), 0.0025);
        assert_eq!(table.price("gpt-4o-mini").usd_per_1k(), 0.00015);
        let table = table.with_override("gpt-4", TokenPrice::from_usd_per_1k(0.06).unwrap());
        assert_eq!(table.price("unknown-model").usd_per_1k(), 0.06);
        assert_eq!(TokenPrice::from_usd_per_1k(-0.01), None);
        assert_eq!(TokenPrice::from_usd_per_1k(f64::NAN), None);
        assert_eq!(TokenPrice::from_usd_per_1k(f64::INFINITY), None);
    }

    #[test]
    fn llm_cost_rounds_tokens_and_micros_up() {
        let table = PriceTable::builtin();
        assert_eq!(estimate_tokens(0), 0);
        assert_eq!(estimate_tokens(1), 1);
        assert_eq!(estimate_tokens(4), 1);
        assert_eq!(estimate_tokens(5), 2);
        assert_eq!(estimate_llm_cost(0, "gpt-4", &table), Money::ZERO);
        // 1 token of gpt-4 = 0.00003 USD = 30 micro.
        assert_eq!(estimate_llm_cost(1, "gpt-4", &table), usd(30));
        // 4000 chars = 1000 tokens = the per-1K price.
        assert_eq!(estimate_llm_cost(4000, "gpt-4", &table), usd(30_000));
        assert_eq!(estimate_llm_cost(4000, "claude-3-haiku", &table), usd(250));
        // 1 token of gpt-4o-mini = 0.15 micro → rounded up to 1 micro.
        assert_eq!(estimate_llm_cost(3, "gpt-4o-mini", &table), usd(1));
        // 5 tokens of claude-3-haiku = 1.25 micro → 2.
        assert_eq!(estimate_llm_cost(17, "claude-3-haiku", &table), usd(2));
        assert!(estimate_llm_cost(usize::MAX, "gpt-4", &table).micros() > 0);
    }

    #[test]
    fn purchase_amount_keys_and_values() {
        let amount = |config: Value| purchase_amount(Some(&config));
        assert_eq!(purchase_amount(None), Money::ZERO);
        assert_eq!(amount(json!({})), Money::ZERO);
        assert_eq!(amount(json!({"purchase_amount": 5})), Money::ZERO);
        assert_eq!(amount(json!({"metadata": {"purchase_amount": 12.5}})), usd(12_500_000));
        assert_eq!(amount(json!({"metadata": {"amount": "3.25"}})), usd(3_250_000));
        assert_eq!(amount(json!({"metadata": {"price": "$ 4"}})), usd(4_000_000));
        assert_eq!(amount(json!({"metadata": {"cost": 0.07}})), usd(70_000));
        // Priority order, whatever the JSON key order.
        assert_eq!(amount(json!({"metadata": {"cost": 9, "amount": 2}})), usd(2_000_000));
        // Unusable values are skipped in favour of the next key.
        assert_eq!(amount(json!({"metadata": {"purchase_amount": -5, "amount": 1}})), usd(1_000_000));
        assert_eq!(amount(json!({"metadata": {"amount": "NaN", "price": 2}})), usd(2_000_000));
        assert_eq!(amount(json!({"metadata": {"amount": "inf"}})), Money::ZERO);
        assert_eq!(amount(json!({"metadata": {"amount": "abc"}})), Money::ZERO);
        assert_eq!(amount(json!({"metadata": {"amount": true}})), Money::ZERO);
        assert_eq!(amount(json!({"metadata": {"amount": null}})), Money::ZERO);
        assert_eq!(amount(json!({"metadata": {"amount": "-1"}})), Money::ZERO);
        assert_eq!(amount(json!({"metadata": {"amount": 1e300}})).micros(), i64::MAX);
        assert_eq!(amount(json!({"metadata": "x"})), Money::ZERO);
    }

    #[test]
    fn model_of_reads_metadata_then_top_level() {
        let config = json!({"model": "gpt-4o", "metadata": {"model": "claude-3-opus"}});
        assert_eq!(model_of(Some(&config)), Some("claude-3-opus"));
        let config = json!({"model": "gpt-4o", "metadata": {}});
        assert_eq!(model_of(Some(&config)), Some("gpt-4o"));
        let config = json!({"model": "gpt-4o", "metadata": {"model": " "}});
        assert_eq!(model_of(Some(&config)), Some("gpt-4o"));
        let config = json!({"model": 4});
        assert_eq!(model_of(Some(&config)), None);
        assert_eq!(model_of(None), None);
    }

    #[test]
    fn charge_estimate() {
        let table = PriceTable::builtin();
        let config = json!({"metadata": {"model": "gpt-4o-mini", "amount": 2}});
        let charge = Charge::estimate(4000, Some(&config), &table);
        assert_eq!(charge.model, "gpt-4o-mini");
        assert_eq!(charge.llm, usd(150));
        assert_eq!(charge.purchase, usd(2_000_000));
        assert_eq!(charge.total(), usd(2_000_150));
        let charge = Charge::estimate(4, None, &table);
        assert_eq!(charge.model, DEFAULT_MODEL);
        assert_eq!(charge.llm, usd(30));
    }

    #[test]
    fn assess_thresholds() {
        let limit = usd(10_000_000);
        let outcome = |current, est, purchase| assess(usd(current), limit, usd(est), usd(purchase)).outcome;
        assert_eq!(outcome(0, 0, 0), BudgetOutcome::Allowed);
        assert_eq!(outcome(8_999_999, 0, 0), BudgetOutcome::Allowed);
        // Exactly 90 % warns.
        assert_eq!(outcome(8_000_000, 500_000, 500_000), BudgetOutcome::Warning);
        assert_eq!(outcome(8_999_999, 1, 0), BudgetOutcome::Warning);
        // Exactly 100 % is within the limit: a warning, not exceeded.
        assert_eq!(outcome(9_000_000, 500_000, 500_000), BudgetOutcome::Warning);
        assert_eq!(outcome(10_000_000, 0, 0), BudgetOutcome::Warning);
        // One micro over exceeds.
        assert_eq!(outcome(10_000_000, 1, 0), BudgetOutcome::Exceeded);
        assert_eq!(outcome(0, 0, 10_000_001), BudgetOutcome::Exceeded);
        assert_eq!(outcome(i64::MAX, i64::MAX, i64::MAX), BudgetOutcome::Exceeded);

        let a = assess(usd(1_000_000), limit, usd(30), usd(2_000_000));
        assert_eq!(a.projected, usd(3_000_030));
        assert_eq!((a.current, a.limit, a.estimated, a.purchase), (usd(1_000_000), limit, usd(30), usd(2_000_000)));
        // Negative inputs count as zero.
        assert_eq!(assess(usd(-5), limit, usd(-1), usd(-1)).projected, Money::ZERO);
        // A zero limit lets nothing through but zero-cost requests, which need confirmation.
        assert_eq!(assess(Money::ZERO, Money::ZERO, Money::ZERO, Money::ZERO).outcome, BudgetOutcome::Warning);
        assert_eq!(assess(Money::ZERO, Money::ZERO, usd(1), Money::ZERO).outcome, BudgetOutcome::Exceeded);
    }

    #[test]
    fn outcome_reasons_and_decisions() {
        assert_eq!(BudgetOutcome::Allowed.reason().to_string(), "budget_check_passed");
        assert_eq!(BudgetOutcome::Warning.reason().to_string(), "budget_warning");
        assert_eq!(BudgetOutcome::Exceeded.reason().to_string(), "budget_exceeded");
        assert_eq!(BudgetOutcome::Allowed.decision(), Decision::Allow);
        assert_eq!(BudgetOutcome::Warning.decision(), Decision::Confirm);
        assert_eq!(BudgetOutcome::Exceeded.decision(), Decision::Deny);
    }

    #[test]
    fn months_and_periods() {
        assert_eq!(month_of(0), (1970, 1));
        assert_eq!(period_key(0), "1970-01");
        assert_eq!(month_of(-1), (1969, 12));
        assert_eq!(period_key(1_758_745_697), "2025-09");
        // Dec → Jan.
        let new_year = at(2025, 1, 1);
        assert_eq!(new_year, 1_735_689_600);
        assert_eq!(period_key(new_year - 1), "2024-12");
        assert_eq!(period_key(new_year), "2025-01");
        assert_eq!(next_month_start(new_year - 1), new_year);
        assert_eq!(next_month_start(at(2024, 12, 15)), new_year);
        // Leap years: 2024-02-29 exists, 2023-02-29 does not, 2000 is leap, 1900/2100 are not.
        assert_eq!(period_key(at(2024, 2, 29)), "2024-02");
        assert_eq!(next_month_start(at(2024, 2, 1)) - at(2024, 2, 1), 29 * SECS_PER_DAY);
        assert_eq!(next_month_start(at(2023, 2, 1)) - at(2023, 2, 1), 28 * SECS_PER_DAY);
        assert_eq!(next_month_start(at(2000, 2, 1)) - at(2000, 2, 1), 29 * SECS_PER_DAY);
        assert_eq!(next_month_start(at(2100, 2, 1)) - at(2100, 2, 1), 28 * SECS_PER_DAY);
        assert_eq!(next_month_start(at(1900, 2, 10)) - at(1900, 2, 1), 28 * SECS_PER_DAY);
        assert_eq!(period_key(at(2024, 3, 1) - 1), "2024-02");
        assert_eq!(period_key(at(2024, 3, 1)), "2024-03");
        // Month lengths over a whole year.
        let lengths = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
        let mut start = at(2023, 1, 1);
        for (index, days) in lengths.iter().enumerate() {
            assert_eq!(month_of(start), (2023, index as u32 + 1));
            let next = next_month_start(start);
            assert_eq!(next - start, days * SECS_PER_DAY);
            assert_eq!(next_month_start(next - 1), next);
            start = next;
        }
        assert_eq!(reset_at_iso(1_758_745_697), "2025-10-01T00:00:00Z");
        assert_eq!(reset_at_iso(at(2024, 12, 31)), "2025-01-01T00:00:00Z");
    }

    #[test]
    fn civil_round_trip() {
        for days in -800_000..800_000_i64 {
            if days % 997 != 0 {
                continue;
            }
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
        // Extremes do not panic.
        let _ = month_of(i64::MAX);
        let _ = month_of(i64::MIN);
        let _ = next_month_start(i64::MAX);
        let _ = period_key(i64::MIN);
    }

    #[test]
    fn percent_used_rounds_to_two_decimals() {
        let limit = usd(10_000_000);
        assert_eq!(percent_used(Money::ZERO, limit), 0.0);
        assert_eq!(percent_used(usd(9_000_000), limit), 90.0);
        assert_eq!(percent_used(usd(1_234_567), limit), 12.35);
        assert_eq!(percent_used(usd(1_234_449), limit), 12.34);
        assert_eq!(percent_used(usd(20_000_000), limit), 100.0);
        assert_eq!(percent_used(usd(1), Money::ZERO), 100.0);
    }

    #[test]
    fn status_and_info_json_shapes() {
        let status = BudgetStatus::new(BudgetOutcome::Warning, usd(9_100_000), usd(10_000_000));
        assert_eq!(
            serde_json::to_value(&status).unwrap(),
            json!({"allowed": true, "currentSpend": 9.1, "limit": 10.0, "remaining": 0.9,
                   "percentUsed": 91.0, "reason": "budget_warning"})
        );
        let status = BudgetStatus::new(BudgetOutcome::Exceeded, usd(12_000_000), usd(10_000_000));
        assert!(!status.allowed);
        assert_eq!(status.remaining, Money::ZERO);
        assert_eq!(status.percent_used, 100.0);

        let info = BudgetInfo {
            model: "gpt-4".to_string(),
            estimated_llm_cost: usd(30),
            purchase_amount: usd(2_000_000),
            projected_spend: usd(2_000_030),
            llm_spend: usd(30),
            purchase_spend: usd(2_000_000),
            period: period_key(1_758_745_697),
            reset_at: reset_at_iso(1_758_745_697),
        };
        assert_eq!(
            serde_json::to_value(&info).unwrap(),
            json!({"model": "gpt-4", "estimatedLlmCost": 0.00003, "purchaseAmount": 2.0,
                   "projectedSpend": 2.00003, "llmSpend": 0.00003, "purchaseSpend": 2.0,
                   "period": "2025-09", "resetAt": "2025-10-01T00:00:00Z"})
        );
        // Both shapes read back into the same values (responses round-trip).
        assert_eq!(serde_json::from_value::<BudgetInfo>(serde_json::to_value(&info).unwrap()).unwrap(), info);
        assert_eq!(serde_json::from_value::<BudgetStatus>(serde_json::to_value(&status).unwrap()).unwrap(), status);
    }
}
