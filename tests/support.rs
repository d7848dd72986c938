//! Shared helpers for cross-adapter tests: the conformance corpus and how to compare a
//! response against a case.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// One conformance case: a request to an endpoint and the expected decision.
#[derive(Clone, Debug, Deserialize)]
pub struct Case {
    /// Human-readable name.
    pub name: String,
    /// `precheck` or `postcheck` (or any invoke action).
    pub endpoint: String,
    /// Environment the server runs with (`POLICY_FILE` relative to the corpus folder).
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// The request body.
    pub request: serde_json::Value,
    /// Expected fields of the response.
    pub expect: Expect,
}

/// The fields a response must match exactly.
#[derive(Clone, Debug, Deserialize)]
pub struct Expect {
    /// `allow`, `deny`, `transform` or `confirm`.
    pub decision: String,
    /// The output text (`null` on deny).
    pub raw_text_out: Option<String>,
    /// Reasons in order.
    pub reasons: Vec<String>,
    /// The deciding level.
    pub policy_id: String,
}

/// The corpus folder inside the repository.
pub fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("conformance")
}

/// The shared corpus beside the checkout, when present (`../shared/conformance`).
pub fn shared_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/conformance")
}

/// Loads every `*.json` case file of the corpus: the shared `cases.json` and Warden's own.
pub fn load_all() -> Result<Vec<(String, Case)>, String> {
    let mut out = Vec::new();
    let dir = corpus_dir();
    let mut files = std::fs::read_dir(&dir)
        .and_then(|d| d.map(|e| e.map(|e| e.path())).collect::<Result<Vec<PathBuf>, _>>())
        .map_err(|e| format!("{}: {e}", dir.display()))?;
    files.sort();
    for f in files.into_iter().filter(|f| f.extension().is_some_and(|e| e == "json")) {
        let text = std::fs::read_to_string(&f).map_err(|e| format!("{}: {e}", f.display()))?;
        let cases: Vec<Case> = serde_json::from_str(&text).map_err(|e| format!("{}: {e}", f.display()))?;
        let file = f.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        out.extend(cases.into_iter().map(|c| (file.clone(), c)));
    }
    Ok(out)
}

/// Compares a JSON response against a case; `Err` describes every mismatch.
pub fn compare(case: &Case, got: &serde_json::Value) -> Result<(), String> {
    let mut diffs = Vec::new();
    let e = &case.expect;
    if got.get("decision").and_then(|v| v.as_str()) != Some(e.decision.as_str()) {
        diffs.push(format!("decision: want {:?}, got {}", e.decision, got["decision"]));
    }
    let out = got.get("raw_text_out").cloned().unwrap_or(serde_json::Value::Null);
    let want_out = e.raw_text_out.clone().map_or(serde_json::Value::Null, serde_json::Value::String);
    if out != want_out {
        diffs.push(format!("raw_text_out: want {want_out}, got {out}"));
    }
    let reasons = got.get("reasons").cloned().unwrap_or_default();
    if reasons != serde_json::json!(e.reasons) {
        diffs.push(format!("reasons: want {:?}, got {reasons}", e.reasons));
    }
    if got.get("policy_id").and_then(|v| v.as_str()) != Some(e.policy_id.as_str()) {
        diffs.push(format!("policy_id: want {:?}, got {}", e.policy_id, got["policy_id"]));
    }
    if diffs.is_empty() {
        Ok(())
    } else {
        Err(format!("{}: {}", case.name, diffs.join("; ")))
    }
}
