//! Audit lines (SPEC §7): exactly one JSON line per request, without raw text or raw PII.
//!
//! A line looks like
//! `{"type":"audit","ts":"2026-11-22T04:12:00.123Z","operation":"precheck","corr_id":"req-1",
//! "user":"u1","tool":"verify_identity","scope":"net.external","direction":"ingress",
//! "decision":"transform","policy_id":"tool-access","reasons":["pii.redacted:PII:us_ssn"],
//! "pii":{"us_ssn":1},"latency_ms":0.42,"payload_hash":"hmac-sha256:..."}`.
//! Neither `raw_text` nor `raw_text_out` is ever read: PII is described only by type counts,
//! reasons (which name types, never values) and a keyed hash of the input. The caller's
//! identifiers (`corr_id`, `user`, `tool`, `scope`, `context`) pass through the
//! built-in PII detector and every value it finds becomes its placeholder (`<USER_EMAIL>`);
//! there is no opt-in to raw identifiers in audit lines.
//!
//! [`AuditLine`] and [`audit_line`] compile without the `native` feature; [`AuditWriter`]
//! and [`Auditor`] need only `std`.

use crate::events::{iso8601_utc_ms, Scrubber};
use crate::record::DecisionRecord;
use crate::service::Observer;
use serde_json::{json, Map, Value};
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

/// The audit view of one decision: only fields that are safe to log.
#[derive(Clone, Debug, PartialEq)]
pub struct AuditLine {
    /// ISO-8601 UTC time of the decision.
    pub ts: String,
    /// `precheck`, `postcheck`, `evaluate`, `redact`.
    pub operation: &'static str,
    /// Correlation id from the request, PII scrubbed.
    pub corr_id: Option<String>,
    /// The end user as given in the request, PII scrubbed (an id like `u-77` stays, so
    /// audits can be joined to users; an e-mail address becomes `<USER_EMAIL>`).
    pub user: Option<String>,
    /// Tool name, PII scrubbed.
    pub tool: String,
    /// Scope, PII scrubbed.
    pub scope: String,

    /// `ingress` or `egress`.
    pub direction: &'static str,
    /// Final decision.
    pub decision: &'static str,
    /// The policy level that decided.
    pub policy_id: &'static str,
    /// Reasons as returned to the caller.
    pub reasons: Vec<String>,
    /// PII type → number of values found, in order of first occurrence.
    pub pii: Vec<(String, usize)>,
    /// Time spent deciding, milliseconds.
    pub latency_ms: f64,
    /// `hmac-sha256:<hex>` of the input text, keyed with the operator's secret, to match a
    /// line to a payload without storing it.
    pub payload_hash: String,
    /// The caller's context (redacted, then PII scrubbed), when it sent one.
    pub context: Option<String>,
}

impl AuditLine {
    /// The audit view of `record`, its identifiers scrubbed and its input hashed by
    /// `scrubber`.
    pub fn from_record(record: &DecisionRecord, scrubber: &Scrubber) -> AuditLine {
        let id = |text: &str| scrubber.scrub(text).into_owned();
        AuditLine {
            ts: iso8601_utc_ms(record.ts_unix_ms),
            operation: record.operation,
            corr_id: record.corr_id.as_deref().map(id),
            user: record.user_id.as_deref().map(id),
            tool: id(&record.tool),
            scope: id(&record.scope),
            direction: record.direction.name(),
            decision: record.decision.name(),
            policy_id: record.policy_id.name(),
            // Type names (and so reasons) can come from a request's own policy.
            reasons: record.reasons.iter().map(|r| id(&r.to_string())).collect(),
            pii: record.pii_counts.iter().map(|(kind, n)| (id(kind), *n)).collect(),
            latency_ms: record.latency_ms,
            payload_hash: scrubber.payload_hash(&record.raw_text),
            context: record.context.as_deref().map(id),
        }
    }

    /// The line as compact JSON, without a trailing newline.
    pub fn to_json(&self) -> String {
        let pii: Map<String, Value> =
            self.pii.iter().map(|(kind, count)| (kind.clone(), Value::from(*count))).collect();
        let mut line = json!({
            "type": "audit",
            "ts": self.ts,
            "operation": self.operation,
            "corr_id": self.corr_id,
            "user": self.user,
            "tool": self.tool,
            "scope": self.scope,
            "direction": self.direction,
            "decision": self.decision,
            "policy_id": self.policy_id,
            "reasons": self.reasons,
            "pii": pii,
            "latency_ms": self.latency_ms,
            "payload_hash": self.payload_hash,
        });
        if let (Some(context), Some(map)) = (&self.context, line.as_object_mut()) {
            map.insert("context".into(), Value::String(context.clone()));
        }
        line.to_string()
    }
}

/// The audit line for `record`, compact JSON without a trailing newline.
pub fn audit_line(record: &DecisionRecord, scrubber: &Scrubber) -> String {
    AuditLine::from_record(record, scrubber).to_json()
}

/// Where audit lines go. Every line is written with one `write` call including its newline,
/// under a lock, so lines from concurrent requests never interleave. Writes block briefly;
/// they are small appends.
#[derive(Debug)]
pub enum AuditWriter {
    /// Standard output (the default: containers and serverless platforms collect it).
    Stdout,
    /// A file opened in append mode.
    File(AuditFile),
    /// Auditing disabled.
    Off,
}

/// An append-mode audit file.
#[derive(Debug)]
pub struct AuditFile {
    path: PathBuf,
    file: Mutex<File>,
}

impl AuditFile {
    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl AuditWriter {
    /// Opens (creating it and its parent directories if needed) an append-mode audit file.
    pub fn file(path: impl Into<PathBuf>) -> io::Result<AuditWriter> {
        let path = path.into();
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)?;
        }
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        Ok(AuditWriter::File(AuditFile { path, file: Mutex::new(file) }))
    }

    /// From a setting value: empty or `stdout` → [`AuditWriter::Stdout`]; `off`, `none`,
    /// `false` or `0` → [`AuditWriter::Off`]; anything else is a file path.
    pub fn from_setting(value: &str) -> io::Result<AuditWriter> {
        match value.trim() {
            "" | "stdout" | "-" => Ok(AuditWriter::Stdout),
            "off" | "none" | "false" | "0" => Ok(AuditWriter::Off),
            path => AuditWriter::file(path),
        }
    }

    /// Writes one already-built line (a newline is appended).
    pub fn write_line(&self, line: &str) -> io::Result<()> {
        let mut bytes = Vec::with_capacity(line.len() + 1);
        bytes.extend_from_slice(line.as_bytes());
        bytes.push(b'\n');
        match self {
            AuditWriter::Stdout => {
                let mut out = io::stdout().lock();
                out.write_all(&bytes)?;
                out.flush()
            }
            AuditWriter::File(audit) => {
                // A panic while holding the lock cannot leave a half-written line behind
                // (the write is one call), so a poisoned lock is still safe to use.
                let mut file = audit.file.lock().unwrap_or_else(PoisonError::into_inner);
                file.write_all(&bytes)
            }
            AuditWriter::Off => Ok(()),
        }
    }
}

/// The audit observer: one scrubbed line per decision to an [`AuditWriter`]. Register it
/// with `ServiceBuilder::observer`.
#[derive(Debug)]
pub struct Auditor {
    writer: AuditWriter,
    scrubber: Scrubber,
}

impl Auditor {
    /// Writes to `writer`, scrubbing and hashing with `scrubber` (e.g.
    /// `EventsConfig::scrubber()`, so audit lines and events share the hash key).
    pub fn new(writer: AuditWriter, scrubber: Scrubber) -> Auditor {
        Auditor { writer, scrubber }
    }

    /// The writer.
    pub fn writer(&self) -> &AuditWriter {
        &self.writer
    }

    /// Writes the audit line of `record`.
    pub fn write(&self, record: &DecisionRecord) -> io::Result<()> {
        if matches!(self.writer, AuditWriter::Off) {
            return Ok(());
        }
        self.writer.write_line(&audit_line(record, &self.scrubber))
    }
}

impl Observer for Auditor {
    fn observe(&self, record: &DecisionRecord) {
        if matches!(self.writer, AuditWriter::Off) {
            return;
        }
        let line = audit_line(record, &self.scrubber);
        if let Err(error) = self.writer.write_line(&line) {
            // Exactly one line per request: if the file fails, stderr still gets it.
            eprintln!("warden audit: cannot write audit line: {error}; line follows: {line}");
        }
    }
}
