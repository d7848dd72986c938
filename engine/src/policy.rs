//! The policy model (SPEC §3), validated once on load into types that cannot be invalid.
//!
//! Policies deserialize from YAML or JSON through `PolicyDoc` (the document as written,
//! unknown fields rejected) and are then checked into a [`Policy`]: actions, directions and
//! PII keys are enums, custom recognizers are compiled, and cross-field references (an
//! `allow_pii` key naming a custom type) are resolved. Fields are private, so a `Policy` is
//! valid by construction and evaluation needs no error paths.

use crate::detect::Extra;
use crate::pii::{valid_custom_name, PiiKind, PiiType};
use alloc::borrow::ToOwned;
use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;
use regex_automata::meta::Regex;
use serde::{Deserialize, Serialize};

/// Which side of a tool call is checked: precheck = ingress, postcheck = egress.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Before the tool runs (precheck).
    #[default]
    Ingress,
    /// After the tool answered (postcheck).
    Egress,
}

impl Direction {
    /// The wire name.
    pub const fn name(self) -> &'static str {
        match self {
            Direction::Ingress => "ingress",
            Direction::Egress => "egress",
        }
    }
}

/// What happens to one detected PII value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PiiAction {
    /// Keep the value.
    PassThrough,
    /// Replace it with a deterministic token (SPEC §5).
    Tokenize,
    /// Replace it with the type's placeholder.
    Redact,
    /// Deny the whole request.
    Deny,
    /// Replace it with a reversible token (SPEC §5a): needs a [`Keyring`](crate::Keyring).
    Encrypt,
}

impl PiiAction {
    /// The wire name.
    pub const fn name(self) -> &'static str {
        match self {
            PiiAction::PassThrough => "pass_through",
            PiiAction::Tokenize => "tokenize",
            PiiAction::Redact => "redact",
            PiiAction::Deny => "deny",
            PiiAction::Encrypt => "encrypt",
        }
    }
}

/// A tool rule's or a default's `action`: a PII action, or `confirm` (ask a human first).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleAction {
    /// PII is kept.
    PassThrough,
    /// PII is tokenized.
    Tokenize,
    /// PII is redacted (the default).
    Redact,
    /// The call is denied.
    Deny,
    /// The call needs confirmation; PII not allowed by `allow_pii` is redacted.
    Confirm,
    /// PII is replaced by reversible tokens.
    Encrypt,
}

impl RuleAction {
    /// Every action, for parsing reasons.
    pub(crate) const ALL: [RuleAction; 6] = [
        RuleAction::PassThrough,
        RuleAction::Tokenize,
        RuleAction::Redact,
        RuleAction::Deny,
        RuleAction::Confirm,
        RuleAction::Encrypt,
    ];

    /// The wire name.
    pub const fn name(self) -> &'static str {
        match self {
            RuleAction::PassThrough => "pass_through",
            RuleAction::Tokenize => "tokenize",
            RuleAction::Redact => "redact",
            RuleAction::Deny => "deny",
            RuleAction::Confirm => "confirm",
            RuleAction::Encrypt => "encrypt",
        }
    }
}

/// Which checks a tool rule applies to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleDirection {
    /// Precheck only.
    Ingress,
    /// Postcheck only.
    Egress,
    /// Both.
    Both,
}

/// What an invalid `policy_config` or an internal failure yields (SPEC §3).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnError {
    /// Deny (fail closed). The default.
    #[default]
    Block,
    /// Allow the text unchanged.
    Pass,
    /// Redact every detected PII value.
    BestEffort,
}

impl OnError {
    /// Parses the wire name (`block`, `pass`, `best_effort`).
    pub fn from_name(s: &str) -> Option<OnError> {
        match s {
            "block" => Some(OnError::Block),
            "pass" => Some(OnError::Pass),
            "best_effort" => Some(OnError::BestEffort),
            _ => None,
        }
    }
}

/// A validated `tool_access.<tool>` rule.
#[derive(Clone, Debug)]
pub struct ToolRule {
    direction: RuleDirection,
    action: RuleAction,
    allow_pii: BTreeMap<PiiType, PiiAction>,
}

impl ToolRule {
    /// Which checks it applies to.
    pub fn direction(&self) -> RuleDirection {
        self.direction
    }

    /// Its action for PII without an `allow_pii` entry (or `deny`/`confirm` for the call).
    pub fn action(&self) -> RuleAction {
        self.action
    }

    /// Per-type overrides (`allow_pii`).
    pub fn allow_pii(&self) -> &BTreeMap<PiiType, PiiAction> {
        &self.allow_pii
    }
}

/// A validated `defaults.<direction>` entry.
#[derive(Clone, Debug)]
pub struct DefaultRule {
    action: RuleAction,
    allow_pii: BTreeMap<PiiType, PiiAction>,
}

impl DefaultRule {
    /// The default action.
    pub fn action(&self) -> RuleAction {
        self.action
    }

    /// Per-type overrides (`allow_pii`).
    pub fn allow_pii(&self) -> &BTreeMap<PiiType, PiiAction> {
        &self.allow_pii
    }
}

/// A compiled custom recognizer from `custom_pii`.
#[derive(Clone, Debug)]
pub struct CustomRecognizer {
    name: String,
    /// Finite automata: linear time, no backtracking blow-up.
    regex: Regex,
    placeholder: String,
}

impl CustomRecognizer {
    /// The type name (`PII:<name>` in policies and reasons).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The replacement used when a value of this type is redacted.
    pub fn placeholder(&self) -> &str {
        &self.placeholder
    }

    /// The compiled pattern (kept crate-private so the regex engine is not part of the API).
    pub(crate) fn regex(&self) -> &Regex {
        &self.regex
    }
}

/// A validated policy (SPEC §3). Built only by [`Policy::default`], [`Policy::from_json_value`]
/// or `policy_file::parse_policy` (feature `yaml`), so every `Policy` is valid.
#[derive(Clone, Debug)]
pub struct Policy {
    version: String,
    name: Option<String>,
    description: Option<String>,
    defaults_ingress: Option<DefaultRule>,
    defaults_egress: Option<DefaultRule>,
    tool_access: BTreeMap<String, ToolRule>,
    deny_tools: Vec<String>,
    network_scopes: Vec<String>,
    network_tools: Vec<String>,
    on_error: OnError,
    custom_pii: Vec<CustomRecognizer>,
    token_hex_len: usize,
    detect_extra: Extra,
}

impl Default for Policy {
    /// The built-in policy: no defaults, no tool rules, default deny/network lists.
    fn default() -> Policy {
        Policy {
            version: String::from("v1"),
            name: None,
            description: None,
            defaults_ingress: None,
            defaults_egress: None,
            tool_access: BTreeMap::new(),
            deny_tools: default_deny_tools(),
            network_scopes: default_network_scopes(),
            network_tools: default_network_tools(),
            on_error: OnError::Block,
            custom_pii: Vec::new(),
            token_hex_len: 8,
            detect_extra: Extra::default(),
        }
    }
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

fn default_deny_tools() -> Vec<String> {
    strings(&["python.exec", "bash.exec", "code.exec", "shell.exec"])
}

fn default_network_scopes() -> Vec<String> {
    strings(&["net."])
}

fn default_network_tools() -> Vec<String> {
    strings(&["web.", "http.", "fetch.", "request."])
}

fn default_token_hex_len() -> usize {
    8
}

fn default_version() -> String {
    String::from("v1")
}

/// A policy document as written (YAML or JSON). Unknown fields are errors, so typos are
/// caught by `warden check` instead of silently ignored.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PolicyDoc {
    #[serde(default = "default_version")]
    version: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    defaults: DefaultsDoc,
    #[serde(default)]
    tool_access: BTreeMap<String, ToolRuleDoc>,
    #[serde(default = "default_deny_tools")]
    deny_tools: Vec<String>,
    #[serde(default = "default_network_scopes")]
    network_scopes: Vec<String>,
    #[serde(default = "default_network_tools")]
    network_tools: Vec<String>,
    #[serde(default)]
    on_error: OnError,
    #[serde(default)]
    custom_pii: Vec<CustomPiiDoc>,
    #[serde(default = "default_token_hex_len")]
    token_hex_len: usize,
    /// Opt-in detectors: `person`, `street_address` (also written `PII:person`).
    #[serde(default)]
    detect_extra: Vec<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct DefaultsDoc {
    #[serde(default)]
    ingress: Option<DefaultRuleDoc>,
    #[serde(default)]
    egress: Option<DefaultRuleDoc>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DefaultRuleDoc {
    #[serde(default = "default_rule_action")]
    action: RuleAction,
    #[serde(default)]
    allow_pii: BTreeMap<String, PiiAction>,
}

fn default_rule_action() -> RuleAction {
    RuleAction::Redact
}

fn default_rule_direction() -> RuleDirection {
    RuleDirection::Both
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ToolRuleDoc {
    #[serde(default = "default_rule_direction")]
    direction: RuleDirection,
    #[serde(default = "default_rule_action")]
    action: RuleAction,
    #[serde(default)]
    allow_pii: BTreeMap<String, PiiAction>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CustomPiiDoc {
    #[serde(rename = "type")]
    ty: String,
    pattern: String,
    #[serde(default)]
    placeholder: Option<String>,
}

/// Why a policy is invalid: the field (dotted path) and what is wrong with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyError {
    /// Dotted path of the offending field, e.g. `tool_access.x.allow_pii.PII:shoe_size`.
    pub field: String,
    /// What is wrong.
    pub message: String,
    /// 1-based line in the source document, when known.
    pub line: Option<usize>,
    /// 1-based column in the source document, when known.
    pub column: Option<usize>,
    /// The policy is well-formed but over a resource limit (too many recognizers or entries,
    /// automata too large): a request sending it is refused rather than evaluated.
    pub limit: bool,
}

impl PolicyError {
    fn new(field: impl Into<String>, message: impl Into<String>) -> PolicyError {
        PolicyError { field: field.into(), message: message.into(), line: None, column: None, limit: false }
    }

    fn over_limit(field: impl Into<String>, message: impl Into<String>) -> PolicyError {
        PolicyError { limit: true, ..PolicyError::new(field, message) }
    }
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(line) = self.line {
            write!(f, "line {line}")?;
            if let Some(col) = self.column {
                write!(f, ", column {col}")?;
            }
            f.write_str(": ")?;
        }
        if self.field.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "field `{}`: {}", self.field, self.message)
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for PolicyError {}

/// Longest accepted custom pattern, and the compiled-size budget: a policy from a request
/// must not be able to make the engine build huge automata.
const MAX_PATTERN_LEN: usize = 1024;
const MAX_REGEX_BYTES: usize = 1 << 20;
/// Most `custom_pii` recognizers in one policy: each one scans the whole text.
pub const MAX_CUSTOM_PII: usize = 32;
/// Compiled size of all of a policy's recognizers together.
const MAX_TOTAL_REGEX_BYTES: usize = 8 << 20;
/// Most entries in `deny_tools`, `tool_access`, `network_scopes` and `network_tools` (each is
/// scanned per checked text).
pub const MAX_POLICY_LIST: usize = 1024;

impl Policy {
    /// Parses and validates a policy from a JSON value (e.g. a request's `policy_config`).
    pub fn from_json_value(value: &serde_json::Value) -> Result<Policy, PolicyError> {
        let doc = PolicyDoc::deserialize(value).map_err(|e| PolicyError::new("", e.to_string()))?;
        Policy::from_doc(doc)
    }

    /// Free-form version label (`v1`).
    pub fn version(&self) -> &str {
        &self.version
    }

    /// Human-readable name (reported by readiness; not used by evaluation).
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// Human-readable description (not used by evaluation).
    pub fn description(&self) -> Option<&str> {
        self.description.as_deref()
    }

    /// The default rule for a direction (`defaults.<direction>`), if the policy has one.
    pub fn defaults_for(&self, direction: Direction) -> Option<&DefaultRule> {
        match direction {
            Direction::Ingress => self.defaults_ingress.as_ref(),
            Direction::Egress => self.defaults_egress.as_ref(),
        }
    }

    /// Rules by exact tool name.
    pub fn tool_access(&self) -> &BTreeMap<String, ToolRule> {
        &self.tool_access
    }

    /// Tools that are always denied.
    pub fn deny_tools(&self) -> &[String] {
        &self.deny_tools
    }

    /// Scope prefixes that make a call a network call.
    pub fn network_scopes(&self) -> &[String] {
        &self.network_scopes
    }

    /// Tool-name prefixes that make a call a network call.
    pub fn network_tools(&self) -> &[String] {
        &self.network_tools
    }

    /// What an invalid `policy_config` or an internal failure yields.
    pub fn on_error(&self) -> OnError {
        self.on_error
    }

    /// Custom recognizers (`custom_pii`), in policy order.
    pub fn custom_pii(&self) -> &[CustomRecognizer] {
        &self.custom_pii
    }

    /// Token length in hex characters (8..=64).
    pub fn token_hex_len(&self) -> usize {
        self.token_hex_len
    }

    /// The opt-in detectors this policy turns on (`detect_extra`).
    pub fn detect_extra(&self) -> Extra {
        self.detect_extra
    }

    /// This policy with the opt-in detectors `extra` on (`warden detect` reports every kind).
    pub fn with_detect_extra(mut self, extra: Extra) -> Policy {
        self.detect_extra = extra;
        self
    }

    /// The first field (dotted path) whose action is `encrypt`, if any: such a policy needs a
    /// keyring, and a service without one refuses it naming this field.
    pub fn encrypt_field(&self) -> Option<String> {
        let uses = |action: RuleAction, allow: &BTreeMap<PiiType, PiiAction>, field: &str| {
            if action == RuleAction::Encrypt {
                return Some(format!("{field}.action"));
            }
            allow.iter().find(|(_, a)| **a == PiiAction::Encrypt).map(|(ty, _)| format!("{field}.allow_pii.PII:{ty}"))
        };
        for (name, d) in [("defaults.ingress", &self.defaults_ingress), ("defaults.egress", &self.defaults_egress)] {
            if let Some(field) = d.as_ref().and_then(|d| uses(d.action, &d.allow_pii, name)) {
                return Some(field);
            }
        }
        self.tool_access.iter().find_map(|(tool, r)| uses(r.action, &r.allow_pii, &format!("tool_access.{tool}")))
    }

    /// Resolves a PII type name (without `PII:`) against built-ins and this policy's customs.
    pub fn pii_type(&self, name: &str) -> Option<PiiType> {
        resolve_type(name, &self.custom_pii)
    }
}

fn resolve_type(name: &str, custom: &[CustomRecognizer]) -> Option<PiiType> {
    if let Some(k) = PiiKind::from_name(name) {
        return Some(PiiType::Builtin(k));
    }
    custom.iter().find(|c| c.name == name).map(|c| PiiType::Custom(c.name.clone()))
}

fn allow_map(
    raw: BTreeMap<String, PiiAction>,
    field: &str,
    custom: &[CustomRecognizer],
) -> Result<BTreeMap<PiiType, PiiAction>, PolicyError> {
    let mut out = BTreeMap::new();
    for (key, action) in raw {
        let ty = key.strip_prefix("PII:").and_then(|name| resolve_type(name, custom)).ok_or_else(|| {
            PolicyError::new(
                format!("{field}.allow_pii.{key}"),
                format!(
                    "unknown PII key `{key}`; expected `PII:<type>` with a built-in type ({}) or a custom_pii type",
                    builtin_list()
                ),
            )
        })?;
        out.insert(ty, action);
    }
    Ok(out)
}

fn builtin_list() -> String {
    let names: Vec<&str> = PiiKind::ALL.iter().map(|k| k.name()).collect();
    names.join(", ")
}

fn compile_custom(i: usize, doc: CustomPiiDoc, seen: &[CustomRecognizer]) -> Result<CustomRecognizer, PolicyError> {
    let field = format!("custom_pii[{i}]");
    if !valid_custom_name(&doc.ty) {
        return Err(PolicyError::new(format!("{field}.type"), "type must be 1-64 characters of a-z, 0-9 and _"));
    }
    if PiiKind::from_name(&doc.ty).is_some() || seen.iter().any(|c| c.name == doc.ty) {
        return Err(PolicyError::new(format!("{field}.type"), format!("type `{}` is already defined", doc.ty)));
    }
    if doc.pattern.is_empty() || doc.pattern.len() > MAX_PATTERN_LEN {
        return Err(PolicyError::new(format!("{field}.pattern"), format!("pattern must be 1-{MAX_PATTERN_LEN} bytes")));
    }
    let regex = Regex::builder()
        .configure(
            Regex::config()
                .nfa_size_limit(Some(MAX_REGEX_BYTES))
                .hybrid_cache_capacity(MAX_REGEX_BYTES)
                .onepass_size_limit(Some(MAX_REGEX_BYTES))
                .dfa(false),
        )
        .build(&doc.pattern)
        .map_err(|e| PolicyError::new(format!("{field}.pattern"), format!("invalid pattern: {e}")))?;
    if regex.is_match("") {
        return Err(PolicyError::new(format!("{field}.pattern"), "pattern must not match the empty string"));
    }
    let placeholder = doc.placeholder.unwrap_or_else(|| {
        let mut p = String::from("<");
        p.push_str(&doc.ty.to_ascii_uppercase());
        p.push('>');
        p
    });
    Ok(CustomRecognizer { name: doc.ty, regex, placeholder })
}

impl Policy {
    /// Validates a parsed document.
    pub(crate) fn from_doc(doc: PolicyDoc) -> Result<Policy, PolicyError> {
        if doc.custom_pii.len() > MAX_CUSTOM_PII {
            return Err(PolicyError::over_limit("custom_pii", format!("at most {MAX_CUSTOM_PII} recognizers")));
        }
        for (field, len) in [
            ("deny_tools", doc.deny_tools.len()),
            ("tool_access", doc.tool_access.len()),
            ("network_scopes", doc.network_scopes.len()),
            ("network_tools", doc.network_tools.len()),
        ] {
            if len > MAX_POLICY_LIST {
                return Err(PolicyError::over_limit(field, format!("at most {MAX_POLICY_LIST} entries")));
            }
        }
        let mut custom_pii = Vec::with_capacity(doc.custom_pii.len());
        let mut compiled = 0usize;
        for (i, c) in doc.custom_pii.into_iter().enumerate() {
            let rec = compile_custom(i, c, &custom_pii)?;
            compiled = compiled.saturating_add(rec.regex.memory_usage());
            if compiled > MAX_TOTAL_REGEX_BYTES {
                return Err(PolicyError::over_limit(
                    format!("custom_pii[{i}].pattern"),
                    format!("the recognizers together exceed {} MiB compiled", MAX_TOTAL_REGEX_BYTES >> 20),
                ));
            }
            custom_pii.push(rec);
        }
        if !(8..=64).contains(&doc.token_hex_len) {
            return Err(PolicyError::new("token_hex_len", "must be between 8 and 64"));
        }
        let mut detect_extra = Extra::default();
        for (i, name) in doc.detect_extra.iter().enumerate() {
            match name.strip_prefix("PII:").unwrap_or(name).as_bytes() {
                b"person" => detect_extra.person = true,
                b"street_address" => detect_extra.street_address = true,
                _ => {
                    return Err(PolicyError::new(
                        format!("detect_extra[{i}]"),
                        format!("unknown opt-in detector `{name}`; expected `person` or `street_address`"),
                    ))
                }
            }
        }
        let default_rule = |d: Option<DefaultRuleDoc>, field: &str| -> Result<Option<DefaultRule>, PolicyError> {
            d.map(|d| Ok(DefaultRule { action: d.action, allow_pii: allow_map(d.allow_pii, field, &custom_pii)? }))
                .transpose()
        };
        let defaults_ingress = default_rule(doc.defaults.ingress, "defaults.ingress")?;
        let defaults_egress = default_rule(doc.defaults.egress, "defaults.egress")?;
        let mut tool_access = BTreeMap::new();
        for (tool, rule) in doc.tool_access {
            if tool.is_empty() {
                return Err(PolicyError::new("tool_access", "tool names must not be empty"));
            }
            let field = format!("tool_access.{tool}");
            let allow_pii = allow_map(rule.allow_pii, &field, &custom_pii)?;
            tool_access.insert(tool, ToolRule { direction: rule.direction, action: rule.action, allow_pii });
        }
        for (name, list) in [
            ("deny_tools", &doc.deny_tools),
            ("network_scopes", &doc.network_scopes),
            ("network_tools", &doc.network_tools),
        ] {
            if let Some(i) = list.iter().position(String::is_empty) {
                return Err(PolicyError::new(format!("{name}[{i}]"), "must not be empty"));
            }
        }
        Ok(Policy {
            version: doc.version,
            name: doc.name,
            description: doc.description,
            defaults_ingress,
            defaults_egress,
            tool_access,
            deny_tools: doc.deny_tools,
            network_scopes: doc.network_scopes,
            network_tools: doc.network_tools,
            on_error: doc.on_error,
            custom_pii,
            token_hex_len: doc.token_hex_len,
            detect_extra,
        })
    }
}

/// Reads `on_error` out of an (otherwise possibly invalid) policy document, when that field
/// itself is valid (SPEC §3).
pub(crate) fn on_error_of(value: &serde_json::Value) -> Option<OnError> {
    value.get("on_error").and_then(serde_json::Value::as_str).and_then(OnError::from_name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: serde_json::Value) -> Result<Policy, PolicyError> {
        Policy::from_json_value(&v)
    }

    #[test]
    fn defaults_fill_missing_fields() {
        let p = parse(json!({"version": "v1"})).unwrap_or_default();
        assert_eq!(p.deny_tools.len(), 4);
        assert_eq!(p.network_scopes, ["net."]);
        assert_eq!(p.token_hex_len, 8);
        assert_eq!(p.on_error, OnError::Block);
    }

    #[test]
    fn unknown_action_is_invalid() {
        let e = parse(json!({"tool_access": {"x": {"action": "explode"}}}));
        assert!(e.is_err());
    }

    #[test]
    fn unknown_pii_key_names_the_field() {
        let e = parse(json!({"tool_access": {"x": {"allow_pii": {"PII:shoe_size": "tokenize"}}}}));
        let e = e.err().map(|e| e.field).unwrap_or_default();
        assert_eq!(e, "tool_access.x.allow_pii.PII:shoe_size");
    }

    #[test]
    fn custom_types_may_be_referenced() {
        let p = parse(json!({
            "custom_pii": [{"type": "employee_id", "pattern": "EMP-[0-9]{6}"}],
            "tool_access": {"x": {"allow_pii": {"PII:employee_id": "tokenize"}}}
        }));
        let p = p.ok();
        let c = p.as_ref().and_then(|p| p.custom_pii.first());
        assert_eq!(c.map(|c| c.placeholder.as_str()), Some("<EMPLOYEE_ID>"));
    }

    #[test]
    fn bad_custom_patterns_are_rejected() {
        for pat in ["(", "a*", ""] {
            let e = parse(json!({"custom_pii": [{"type": "t", "pattern": pat}]}));
            assert_eq!(e.err().map(|e| e.field), Some(String::from("custom_pii[0].pattern")), "{pat}");
        }
        let e = parse(json!({"custom_pii": [{"type": "us_ssn", "pattern": "x"}]}));
        assert!(e.is_err());
    }

    #[test]
    fn wrong_types_and_unknown_fields_are_invalid() {
        assert!(parse(json!({"deny_tools": "python.exec"})).is_err());
        assert!(parse(json!({"tool_acess": {}})).is_err());
        assert!(parse(json!({"token_hex_len": 4})).is_err());
        assert!(parse(json!({"on_error": "explode"})).is_err());
    }

    #[test]
    fn on_error_is_read_from_invalid_documents() {
        let v = json!({"tool_access": 3, "on_error": "pass"});
        assert_eq!(on_error_of(&v), Some(OnError::Pass));
        assert_eq!(on_error_of(&json!({"on_error": 1})), None);
    }
}
