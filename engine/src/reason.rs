//! Why a decision was made: typed reasons whose `Display` is the stable wire string (SPEC §3).

use crate::error::{ErrorCode, ParseWireError};
use crate::pii::PiiType;
use crate::policy::{Direction, PiiAction, RuleAction};
use crate::reversible::KeptReason;
use alloc::string::{String, ToString};
use core::fmt;
use core::str::FromStr;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// What a level did with the PII values of one type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PiiOutcome {
    /// Kept (`pass_through`).
    Allowed,
    /// Replaced by tokens.
    Tokenized,
    /// Replaced by the placeholder.
    Redacted,
    /// Denied the request.
    Denied,
    /// Replaced by reversible tokens.
    Encrypted,
}

impl PiiOutcome {
    const ALL: [PiiOutcome; 5] =
        [PiiOutcome::Allowed, PiiOutcome::Tokenized, PiiOutcome::Redacted, PiiOutcome::Denied, PiiOutcome::Encrypted];

    /// The word used in reasons: `allowed`, `tokenized`, `redacted` or `denied`.
    pub const fn name(self) -> &'static str {
        match self {
            PiiOutcome::Allowed => "allowed",
            PiiOutcome::Tokenized => "tokenized",
            PiiOutcome::Redacted => "redacted",
            PiiOutcome::Denied => "denied",
            PiiOutcome::Encrypted => "encrypted",
        }
    }
}

impl From<PiiAction> for PiiOutcome {
    fn from(a: PiiAction) -> PiiOutcome {
        match a {
            PiiAction::PassThrough => PiiOutcome::Allowed,
            PiiAction::Tokenize => PiiOutcome::Tokenized,
            PiiAction::Redact => PiiOutcome::Redacted,
            PiiAction::Deny => PiiOutcome::Denied,
            PiiAction::Encrypt => PiiOutcome::Encrypted,
        }
    }
}

/// One reason of a decision. `Display` (and serde) give the wire string, `FromStr` (and serde)
/// parse it back:
///
/// ```
/// use warden_engine::{ErrorCode, Reason};
///
/// let r: Reason = "error:policy_invalid".parse().unwrap();
/// assert_eq!(r, Reason::Error(ErrorCode::PolicyInvalid));
/// assert_eq!(r.to_string(), "error:policy_invalid");
/// assert!("pii.redacted:PII:us_ssn".parse::<Reason>().is_ok_and(|r| !r.is_violation()));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Reason {
    /// `blocked tool: code/exec`: a `deny_tools` entry ending in `.exec` matched.
    BlockedCodeExec,
    /// `blocked tool: <tool>`: another `deny_tools` entry matched. Parsing
    /// `blocked tool: code/exec` gives [`Reason::BlockedCodeExec`].
    BlockedTool(String),
    /// `tool_access.deny`: the tool's rule denies the call.
    ToolAccessDeny,
    /// `tool_access.confirm`: the tool's rule needs confirmation.
    ToolAccessConfirm,
    /// `default.<direction>.<action>`: `defaults.<direction>` applied.
    Defaults {
        /// The checked direction.
        direction: Direction,
        /// The default's action.
        action: RuleAction,
    },
    /// `pii.<outcome>:PII:<type>`: what was done with values of one type.
    Pii {
        /// What was done.
        outcome: PiiOutcome,
        /// The type.
        ty: PiiType,
    },
    /// `strict_pii_blocked:PII:<type>`: the strict fallback denied a value of this type.
    StrictPiiBlocked(PiiType),
    /// `strict_fallback.allow`: no level applied and nothing needed blocking.
    StrictFallbackAllow,
    /// `error:<code>`: `on_error` decided.
    Error(ErrorCode),
    /// `budget_check_passed`.
    BudgetCheckPassed,
    /// `budget_warning`: projected spend is at least 90 % of the limit.
    BudgetWarning,
    /// `budget_exceeded`: projected spend is over the limit.
    BudgetExceeded,
    /// `token.restored:PII:<type>`: reversible tokens of this type were restored (detokenize).
    TokenRestored(PiiType),
    /// `token.kept:<reason>`: reversible tokens were left as they are (detokenize).
    TokenKept(KeptReason),
}

impl Reason {
    /// Whether this reason is a violation when its verdict denies or needs confirmation
    /// (`violations` of JSON mode): every reason except those that only describe a transform
    /// (`pii.allowed`, `pii.tokenized`, `pii.redacted`) and `budget_check_passed`.
    pub fn is_violation(&self) -> bool {
        !matches!(
            self,
            Reason::Pii {
                outcome: PiiOutcome::Allowed | PiiOutcome::Tokenized | PiiOutcome::Redacted | PiiOutcome::Encrypted,
                ..
            } | Reason::BudgetCheckPassed
                | Reason::TokenRestored(_)
        )
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::BlockedCodeExec => f.write_str("blocked tool: code/exec"),
            Reason::BlockedTool(tool) => write!(f, "blocked tool: {tool}"),
            Reason::ToolAccessDeny => f.write_str("tool_access.deny"),
            Reason::ToolAccessConfirm => f.write_str("tool_access.confirm"),
            Reason::Defaults { direction, action } => write!(f, "default.{}.{}", direction.name(), action.name()),
            Reason::Pii { outcome, ty } => write!(f, "pii.{}:PII:{ty}", outcome.name()),
            Reason::StrictPiiBlocked(ty) => write!(f, "strict_pii_blocked:PII:{ty}"),
            Reason::StrictFallbackAllow => f.write_str("strict_fallback.allow"),
            Reason::Error(code) => write!(f, "error:{code}"),
            Reason::BudgetCheckPassed => f.write_str("budget_check_passed"),
            Reason::BudgetWarning => f.write_str("budget_warning"),
            Reason::BudgetExceeded => f.write_str("budget_exceeded"),
            Reason::TokenRestored(ty) => write!(f, "token.restored:PII:{ty}"),
            Reason::TokenKept(why) => write!(f, "token.kept:{why}"),
        }
    }
}

impl FromStr for Reason {
    type Err = ParseWireError;

    /// Parses a wire string; the inverse of `Display`.
    fn from_str(s: &str) -> Result<Reason, ParseWireError> {
        parse(s).ok_or(ParseWireError { what: "reason" })
    }
}

impl TryFrom<&str> for Reason {
    type Error = ParseWireError;

    fn try_from(s: &str) -> Result<Reason, ParseWireError> {
        s.parse()
    }
}

fn parse(s: &str) -> Option<Reason> {
    let fixed = match s {
        "blocked tool: code/exec" => Some(Reason::BlockedCodeExec),
        "tool_access.deny" => Some(Reason::ToolAccessDeny),
        "tool_access.confirm" => Some(Reason::ToolAccessConfirm),
        "strict_fallback.allow" => Some(Reason::StrictFallbackAllow),
        "budget_check_passed" => Some(Reason::BudgetCheckPassed),
        "budget_warning" => Some(Reason::BudgetWarning),
        "budget_exceeded" => Some(Reason::BudgetExceeded),
        _ => None,
    };
    if fixed.is_some() {
        return fixed;
    }
    if let Some(tool) = s.strip_prefix("blocked tool: ") {
        return (!tool.is_empty()).then(|| Reason::BlockedTool(tool.to_string()));
    }
    if let Some(code) = s.strip_prefix("error:") {
        return code.parse().ok().map(Reason::Error);
    }
    if let Some(ty) = s.strip_prefix("token.restored:PII:") {
        return PiiType::from_name(ty).map(Reason::TokenRestored);
    }
    if let Some(why) = s.strip_prefix("token.kept:") {
        return KeptReason::from_name(why).map(Reason::TokenKept);
    }
    if let Some(ty) = s.strip_prefix("strict_pii_blocked:PII:") {
        return PiiType::from_name(ty).map(Reason::StrictPiiBlocked);
    }
    if let Some(rest) = s.strip_prefix("pii.") {
        let (word, ty) = rest.split_once(":PII:")?;
        let outcome = PiiOutcome::ALL.into_iter().find(|o| o.name() == word)?;
        return PiiType::from_name(ty).map(|ty| Reason::Pii { outcome, ty });
    }
    let (direction, action) = s.strip_prefix("default.")?.split_once('.')?;
    let direction = [Direction::Ingress, Direction::Egress].into_iter().find(|d| d.name() == direction)?;
    let action = RuleAction::ALL.into_iter().find(|a| a.name() == action)?;
    Some(Reason::Defaults { direction, action })
}

impl Serialize for Reason {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Reason {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Reason, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pii::PiiKind;
    use alloc::vec::Vec;

    #[test]
    fn every_wire_string_round_trips() {
        let wire = [
            "blocked tool: code/exec",
            "blocked tool: web.delete",
            "tool_access.deny",
            "tool_access.confirm",
            "default.ingress.pass_through",
            "default.egress.tokenize",
            "default.ingress.redact",
            "default.egress.deny",
            "default.ingress.confirm",
            "pii.allowed:PII:email_address",
            "pii.tokenized:PII:us_ssn",
            "pii.redacted:PII:employee_id",
            "pii.denied:PII:credit_card",
            "strict_pii_blocked:PII:password",
            "strict_fallback.allow",
            "error:policy_invalid",
            "error:budget_unavailable",
            "budget_check_passed",
            "budget_warning",
            "budget_exceeded",
            "default.egress.encrypt",
            "pii.encrypted:PII:email_address",
            "token.restored:PII:us_ssn",
            "token.kept:tampered",
            "token.kept:unknown_key_id",
        ];
        for s in wire {
            let r: Reason = s.parse().unwrap_or(Reason::BudgetExceeded);
            assert_eq!(r.to_string(), s);
            let json = serde_json::to_value(&r).unwrap_or_default();
            assert_eq!(json.as_str(), Some(s));
            assert_eq!(serde_json::from_value::<Reason>(json).ok(), Some(r));
        }
        assert_eq!(
            "pii.tokenized:PII:us_ssn".parse(),
            Ok(Reason::Pii { outcome: PiiOutcome::Tokenized, ty: PiiType::Builtin(PiiKind::UsSsn) })
        );
        assert_eq!(
            "pii.redacted:PII:employee_id"
                .parse::<Reason>()
                .map(|r| matches!(r, Reason::Pii { ty: PiiType::Custom(_), .. })),
            Ok(true)
        );
    }

    #[test]
    fn malformed_strings_are_rejected() {
        for s in [
            "",
            "blocked tool: ",
            "tool_access.allow",
            "default.sideways.redact",
            "default.ingress.explode",
            "pii.kept:PII:us_ssn",
            "pii.allowed:us_ssn",
            "pii.allowed:PII:Bad-Name",
            "strict_pii_blocked:PII:",
            "error:nope",
            "budget_ok",
            "token.kept:lost",
            "token.restored:us_ssn",
        ] {
            assert!(s.parse::<Reason>().is_err(), "{s}");
        }
        assert!(serde_json::from_value::<Reason>(serde_json::json!("nope")).is_err());
    }

    #[test]
    fn violations() {
        let ty = PiiType::Builtin(PiiKind::UsSsn);
        let pii = |outcome| Reason::Pii { outcome, ty: ty.clone() };
        let not: Vec<Reason> = [PiiOutcome::Allowed, PiiOutcome::Tokenized, PiiOutcome::Redacted]
            .into_iter()
            .map(pii)
            .chain([Reason::BudgetCheckPassed])
            .collect();
        assert!(not.iter().all(|r| !r.is_violation()));
        for r in [
            pii(PiiOutcome::Denied),
            Reason::ToolAccessConfirm,
            Reason::StrictPiiBlocked(ty.clone()),
            Reason::Error(ErrorCode::PolicyInvalid),
            Reason::BudgetWarning,
            Reason::BudgetExceeded,
            Reason::Defaults { direction: Direction::Ingress, action: RuleAction::Redact },
        ] {
            assert!(r.is_violation(), "{r}");
        }
    }
}
