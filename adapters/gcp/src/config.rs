//! Google Cloud settings beside the core's (SPEC §9), read through the core's [`Vars`] so that
//! errors name the variable the same way.

use std::time::Duration;
use warden_service::settings::{ConfigError, Vars};

/// `agent_id` of a bare payload from Pub/Sub without an `agent_id` attribute (the Tork guide's).
pub const PUBSUB_DEFAULT_AGENT: &str = "pubsub-default";

/// `agent_id` of an HTTP `evaluate` without one (the guide's Cloud Function default).
pub const HTTP_DEFAULT_AGENT: &str = "gcf-default";

/// The platform settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GcpSettings {
    /// `PORT` (Cloud Run sets it; default 8080).
    pub port: u16,
    /// The project: `GOOGLE_CLOUD_PROJECT`, `GCP_PROJECT` or `PUBSUB_PROJECT_ID`.
    pub project: Option<String>,
    /// `PUBSUB_EMULATOR_HOST` (`host:port`): the client talks plain HTTP/2 to it, anonymously.
    pub emulator_host: Option<String>,
    /// `WARDEN_RESULT_TOPIC` as `projects/P/topics/T` (a bare name takes the project).
    pub result_topic: Option<String>,
    /// `WARDEN_PUBLISH_TIMEOUT_S` (default 10): how long one result publish may take.
    pub publish_timeout: Duration,
    /// `WARDEN_PUBSUB_AGENT_ID` (default `pubsub-default`).
    pub pubsub_agent: String,
}

impl GcpSettings {
    /// Reads the settings through `lookup`.
    pub fn from_lookup(lookup: &dyn Fn(&str) -> Option<String>) -> Result<GcpSettings, ConfigError> {
        let vars = Vars::new(lookup);
        let port = vars.parse("PORT", 8080u16, "a TCP port")?;
        let project = vars
            .get("GOOGLE_CLOUD_PROJECT")
            .or_else(|| vars.get("GCP_PROJECT"))
            .or_else(|| vars.get("PUBSUB_PROJECT_ID"));
        let result_topic = match vars.get("WARDEN_RESULT_TOPIC") {
            None => None,
            Some(t) => Some(resource("WARDEN_RESULT_TOPIC", &t, "topics", project.as_deref())?),
        };
        Ok(GcpSettings {
            port,
            emulator_host: vars.get("PUBSUB_EMULATOR_HOST"),
            result_topic,
            publish_timeout: vars.seconds("WARDEN_PUBLISH_TIMEOUT_S", Duration::from_secs(10))?,
            pubsub_agent: vars.get("WARDEN_PUBSUB_AGENT_ID").unwrap_or_else(|| PUBSUB_DEFAULT_AGENT.to_owned()),
            project,
        })
    }

    /// The client endpoint: the emulator's over plain HTTP when set, else Google's.
    pub fn endpoint(&self) -> Option<String> {
        self.emulator_host.as_ref().map(|h| if h.contains("://") { h.clone() } else { format!("http://{h}") })
    }
}

/// `projects/P/<kind>/NAME` from a full name or a bare one and the project.
pub fn resource(variable: &'static str, value: &str, kind: &str, project: Option<&str>) -> Result<String, ConfigError> {
    let value = value.trim();
    if let Some(rest) = value.strip_prefix("projects/") {
        let mut parts = rest.split('/');
        let ok = matches!((parts.next(), parts.next(), parts.next(), parts.next()),
            (Some(p), Some(k), Some(n), None) if !p.is_empty() && k == kind && valid_id(n));
        return if ok {
            Ok(value.to_owned())
        } else {
            Err(ConfigError::new(variable, format!("expected projects/PROJECT/{kind}/NAME")))
        };
    }
    if !valid_id(value) {
        return Err(ConfigError::new(
            variable,
            "expected a name of 3 to 255 letters, digits and - _ . ~ + % starting with a letter",
        ));
    }
    let project = project.ok_or_else(|| {
        ConfigError::new(
            variable,
            format!("a bare name needs GOOGLE_CLOUD_PROJECT (or give projects/PROJECT/{kind}/NAME)"),
        )
    })?;
    Ok(format!("projects/{project}/{kind}/{value}"))
}

/// Pub/Sub's rule for topic and subscription ids.
fn valid_id(id: &str) -> bool {
    (3..=255).contains(&id.len())
        && id.starts_with(|c: char| c.is_ascii_alphabetic())
        && id.chars().all(|c| c.is_ascii_alphanumeric() || "-_.~+%".contains(c))
        && !id.starts_with("goog")
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn settings(pairs: &[(&str, &str)]) -> Result<GcpSettings, ConfigError> {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        GcpSettings::from_lookup(&move |k| map.get(k).cloned())
    }

    #[test]
    fn defaults_and_names() {
        let s = settings(&[]).unwrap();
        assert_eq!((s.port, s.result_topic, s.pubsub_agent.as_str()), (8080, None, "pubsub-default"));
        let s =
            settings(&[("WARDEN_RESULT_TOPIC", "results"), ("GOOGLE_CLOUD_PROJECT", "p1"), ("PORT", "9000")]).unwrap();
        assert_eq!((s.port, s.result_topic.as_deref()), (9000, Some("projects/p1/topics/results")));
        let s =
            settings(&[("WARDEN_RESULT_TOPIC", "projects/x/topics/res"), ("PUBSUB_EMULATOR_HOST", "127.0.0.1:8085")])
                .unwrap();
        assert_eq!(s.result_topic.as_deref(), Some("projects/x/topics/res"));
        assert_eq!(s.endpoint().as_deref(), Some("http://127.0.0.1:8085"));
    }

    #[test]
    fn errors_name_the_variable() {
        for pairs in [
            &[("WARDEN_RESULT_TOPIC", "results")][..],
            &[("WARDEN_RESULT_TOPIC", "ab"), ("GOOGLE_CLOUD_PROJECT", "p")],
            &[("WARDEN_RESULT_TOPIC", "projects/p/subscriptions/abc")],
            &[("PORT", "http")],
            &[("WARDEN_PUBLISH_TIMEOUT_S", "-1")],
        ] {
            let e = settings(pairs).unwrap_err();
            assert_eq!(e.variable, pairs[0].0, "{e}");
        }
    }
}
