//! Parsing policy documents (YAML or JSON text) with errors that name file, line and field
//! (feature `yaml`). Reading the file is the caller's job: the engine does no I/O.
//!
//! ```
//! use warden_engine::policy_file::parse_policy;
//!
//! let policy = parse_policy("policy.yaml", "version: v1\ntoken_hex_len: 12\n").unwrap();
//! assert_eq!(policy.token_hex_len(), 12);
//!
//! let err = parse_policy("policy.yaml", "version: v1\ntoken_hex_len: 4\n").unwrap_err();
//! assert_eq!(err.to_string(), "policy.yaml:2: field `token_hex_len`: must be between 8 and 64");
//! ```

use crate::policy::{Policy, PolicyDoc, PolicyError};
use alloc::string::{String, ToString};
use core::fmt;

/// A policy document that failed to parse or validate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyFileError {
    /// The file (or source) name as given by the caller.
    pub file: String,
    /// The error, with line/column when known.
    pub error: PolicyError,
}

impl fmt::Display for PolicyFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.file)?;
        if let Some(line) = self.error.line {
            write!(f, ":{line}")?;
            if let Some(col) = self.error.column {
                write!(f, ":{col}")?;
            }
        }
        if self.error.field.is_empty() {
            write!(f, ": {}", self.error.message)
        } else {
            write!(f, ": field `{}`: {}", self.error.field, self.error.message)
        }
    }
}

impl std::error::Error for PolicyFileError {}

/// Parses a policy from `text`. JSON when `name` ends in `.json` or the text starts with `{`,
/// YAML otherwise (YAML is a superset of JSON, but JSON errors read better from serde_json).
pub fn parse_policy(name: &str, text: &str) -> Result<Policy, PolicyFileError> {
    let fail = |error: PolicyError| PolicyFileError { file: name.to_string(), error };
    let is_json = name.ends_with(".json") || text.trim_start().starts_with('{');
    let doc: PolicyDoc = if is_json {
        let mut de = serde_json::Deserializer::from_str(text);
        serde_path_to_error::deserialize(&mut de).map_err(|e| {
            let (line, column) = (e.inner().line(), e.inner().column());
            fail(PolicyError {
                field: path_string(e.path()),
                message: strip_position(&e.inner().to_string()),
                line: Some(line).filter(|l| *l > 0),
                column: Some(column).filter(|c| *c > 0),
                limit: false,
            })
        })?
    } else {
        let de = serde_yaml_ng::Deserializer::from_str(text);
        serde_path_to_error::deserialize(de).map_err(|e| {
            let loc = e.inner().location();
            fail(PolicyError {
                field: path_string(e.path()),
                message: strip_position(&e.inner().to_string()),
                line: loc.as_ref().map(|l| l.line()),
                column: loc.as_ref().map(|l| l.column()),
                limit: false,
            })
        })?
    };
    Policy::from_doc(doc).map_err(|mut e| {
        if e.line.is_none() {
            e.line = locate(text, &e.field);
        }
        fail(e)
    })
}

fn path_string(p: &serde_path_to_error::Path) -> String {
    let s = p.to_string();
    if s == "." {
        String::new()
    } else {
        s
    }
}

/// Drops the " at line X column Y" suffix serde adds; the location is reported separately.
fn strip_position(msg: &str) -> String {
    match msg.find(" at line ") {
        Some(i) => msg.get(..i).unwrap_or(msg).to_string(),
        None => msg.to_string(),
    }
}

/// Best-effort line of a dotted field path in the source: finds each path segment in turn,
/// each after the previous one. Validation errors come after parsing, so serde has no
/// position for them.
fn locate(text: &str, field: &str) -> Option<usize> {
    if field.is_empty() {
        return None;
    }
    let mut pos = 0usize;
    for seg in field.split('.') {
        let (name, index) = match seg.find('[') {
            Some(i) => (
                seg.get(..i).unwrap_or(seg),
                seg.get(i + 1..seg.len().saturating_sub(1)).and_then(|n| n.parse::<usize>().ok()),
            ),
            None => (seg, None),
        };
        if name.is_empty() {
            continue;
        }
        pos += text.get(pos..)?.find(name)? + name.len();
        // For `list[i]`, skip to the i-th item marker after the list's key.
        if let Some(i) = index {
            for _ in 0..=i {
                let rest = text.get(pos..)?;
                let next = [rest.find("- "), rest.find('{')].into_iter().flatten().min()?;
                pos += next + 1;
            }
        }
    }
    Some(text.get(..pos)?.matches('\n').count() + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_errors_name_line_and_field() {
        let text = "version: v1\ntool_access:\n  x:\n    direction: sideways\n";
        let e = parse_policy("p.yaml", text).err();
        let e = e.map(|e| e.to_string()).unwrap_or_default();
        assert!(e.starts_with("p.yaml:4:"), "{e}");
        assert!(e.contains("field `tool_access.x.direction`"), "{e}");
        assert!(e.contains("sideways"), "{e}");
    }

    #[test]
    fn validation_errors_are_located() {
        let text = "version: v1\ntool_access:\n  x:\n    allow_pii:\n      PII:shoe_size: tokenize\n";
        let e = parse_policy("p.yaml", text).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e.starts_with("p.yaml:5: field `tool_access.x.allow_pii.PII:shoe_size`"), "{e}");
    }

    #[test]
    fn custom_pattern_errors_are_located() {
        let text = "custom_pii:\n  - type: a\n    pattern: 'A[0-9]+'\n  - type: b\n    pattern: '('\n";
        let e = parse_policy("p.yaml", text).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e.starts_with("p.yaml:5: field `custom_pii[1].pattern`"), "{e}");
    }

    #[test]
    fn json_errors_name_line_and_field() {
        let text = "{\n  \"version\": \"v1\",\n  \"deny_tools\": \"x\"\n}";
        let e = parse_policy("p.json", text).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e.starts_with("p.json:3:"), "{e}");
        assert!(e.contains("field `deny_tools`"), "{e}");
    }

    #[test]
    fn shipped_policy_parses() {
        let text = include_str!("../../policies/policy.tool_access.yaml");
        let p = parse_policy("policy.tool_access.yaml", text);
        assert!(p.is_ok(), "{:?}", p.err());
    }
}
