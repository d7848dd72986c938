//! `GET /api/v1/health` and `GET /api/v1/ready`.

use super::hooks::{Check, CheckStatus};
use super::pipeline::to_json;
use super::Service;
use serde_json::{json, Map, Value};

impl Service {
    /// `GET /api/v1/health`.
    pub fn health(&self) -> Value {
        // `status` is what the Tork guide's health checks read.
        json!({"ok": true, "status": "healthy", "service": "warden", "version": warden_engine::VERSION})
    }

    /// `GET /api/v1/ready`: whether every component is usable, and the body with `checks`.
    pub async fn ready(&self) -> (bool, Value) {
        let policy = self.policy.get();
        let mut checks = Map::new();
        let policy_detail = format!(
            "{} (version {}, {} tool rules)",
            policy.name().unwrap_or("policy"),
            policy.version(),
            policy.tool_access().len()
        );
        checks.insert("policy".into(), to_json(&Check::new(CheckStatus::Ok, Some(policy_detail))));
        let file = match self.policy.last_error() {
            Some(e) => Check::new(
                CheckStatus::Warning,
                Some(format!("{}: last reload failed, serving the previous policy: {e}", self.policy.origin())),
            ),
            None => Check::new(CheckStatus::Ok, Some(self.policy.origin().to_string())),
        };
        checks.insert("policy_file".into(), to_json(&file));
        checks.insert("detectors".into(), to_json(&self.detector_self_test()));
        let mut warnings = Vec::new();
        if self.config.default_salt {
            warnings.push("PII_TOKEN_SALT is not set: tokens use the built-in default salt");
        }
        if self.config.default_webhook_secret {
            warnings.push("WEBHOOK_SECRET is not set: events are signed with the default secret");
        }
        let env = if warnings.is_empty() {
            Check::new(CheckStatus::Ok, Some(self.config.environment.clone()))
        } else {
            Check::new(CheckStatus::Warning, Some(warnings.join("; ")))
        };
        checks.insert("environment".into(), to_json(&env));
        for name in ["dlq", "stores"] {
            if !self.plugins.probes.iter().any(|p| p.name() == name) {
                checks.insert(name.into(), to_json(&Check::new(CheckStatus::Disabled, None)));
            }
        }
        let mut ok = true;
        for p in &self.plugins.probes {
            let check = p.check().await;
            ok &= check.status != CheckStatus::Error;
            checks.insert(p.name().into(), to_json(&check));
        }
        (ok, json!({"ready": ok, "status": if ok { "ok" } else { "error" }, "checks": checks}))
    }

    /// Proves the detectors work on a known sample (a broken build or data must not pass).
    fn detector_self_test(&self) -> Check {
        let policy = warden_engine::Policy::default();
        let sample = "mail a.b@example.com ssn 123-45-6789 card 4111 1111 1111 1111 ip 10.1.2.3";
        let out = self.gate(&policy).redact(sample);
        if out.matches.len() == 4 && !out.redacted.contains("example.com") {
            Check::new(CheckStatus::Ok, Some(String::from("9 built-in types, self-test passed")))
        } else {
            Check::new(
                CheckStatus::Error,
                Some(format!("detector self-test found {} of 4 sample values", out.matches.len())),
            )
        }
    }
}
