//! The Pub/Sub emulator's REST API (topics, subscriptions, publish, pull) and `warden-gcp`
//! processes for the emulator tests.

use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const PROJECT: &str = "warden-test";

/// The emulator started by scripts/test-gcp.
#[derive(Clone)]
pub struct Emulator {
    pub host: String,
    http: reqwest::Client,
}

/// A message to publish: data and attributes.
pub type Outgoing = (Vec<u8>, Vec<(&'static str, String)>);

/// A message read back from a subscription.
#[derive(Clone, Debug)]
pub struct Pulled {
    pub data: Vec<u8>,
    pub attributes: BTreeMap<String, String>,
}

impl Pulled {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.data).unwrap()
    }
}

impl Emulator {
    pub fn from_env() -> Emulator {
        let host =
            std::env::var("PUBSUB_EMULATOR_HOST").expect("PUBSUB_EMULATOR_HOST: run these tests with scripts/test-gcp");
        Emulator { host, http: reqwest::Client::new() }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}/v1/projects/{PROJECT}/{path}", self.host)
    }

    pub async fn create_topic(&self, name: &str) {
        let resp = self.http.put(self.url(&format!("topics/{name}"))).send().await.unwrap();
        assert!(resp.status().is_success(), "create topic {name}: {}", resp.text().await.unwrap());
    }

    /// A subscription on `topic` with extra fields (pushConfig, deadLetterPolicy...).
    pub async fn create_subscription(&self, name: &str, topic: &str, mut extra: Value) {
        extra["topic"] = json!(format!("projects/{PROJECT}/topics/{topic}"));
        extra["ackDeadlineSeconds"] = extra.get("ackDeadlineSeconds").cloned().unwrap_or(json!(20));
        let resp = self.http.put(self.url(&format!("subscriptions/{name}"))).json(&extra).send().await.unwrap();
        assert!(resp.status().is_success(), "create subscription {name}: {}", resp.text().await.unwrap());
    }

    /// Seeks `subscription` back to `time` (RFC 3339): every message published since is
    /// delivered again, acknowledged ones too when the subscription retains them.
    pub async fn seek(&self, subscription: &str, time: &str) {
        let resp = self
            .http
            .post(self.url(&format!("subscriptions/{subscription}:seek")))
            .json(&json!({ "time": time }))
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success(), "seek {subscription}: {}", resp.text().await.unwrap());
    }

    /// Publishes messages (data, attributes) in batches of 1000; returns their ids in order.
    pub async fn publish(&self, topic: &str, messages: &[Outgoing]) -> Vec<String> {
        use base64::Engine as _;
        let mut ids = Vec::with_capacity(messages.len());
        for chunk in messages.chunks(1000) {
            let batch: Vec<Value> = chunk
                .iter()
                .map(|(data, attrs)| {
                    let attrs: serde_json::Map<String, Value> =
                        attrs.iter().map(|(k, v)| ((*k).to_owned(), json!(v))).collect();
                    json!({"data": base64::engine::general_purpose::STANDARD.encode(data), "attributes": attrs})
                })
                .collect();
            let resp = self
                .http
                .post(self.url(&format!("topics/{topic}:publish")))
                .json(&json!({ "messages": batch }))
                .send()
                .await
                .unwrap();
            assert!(resp.status().is_success(), "publish to {topic}: {}", resp.status());
            let body: Value = resp.json().await.unwrap();
            ids.extend(body["messageIds"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_owned()));
        }
        ids
    }

    /// Pulls (and acknowledges) until `want` messages arrived or `timeout` passed.
    pub async fn pull_until(&self, subscription: &str, want: usize, timeout: Duration) -> Vec<Pulled> {
        let deadline = Instant::now() + timeout;
        let mut out = Vec::new();
        while out.len() < want && Instant::now() < deadline {
            let batch = self.pull_once(subscription, 1000).await;
            if batch.is_empty() {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            out.extend(batch);
        }
        out
    }

    /// One pull call (acknowledging what it got).
    pub async fn pull_once(&self, subscription: &str, max: usize) -> Vec<Pulled> {
        use base64::Engine as _;
        let resp = self
            .http
            .post(self.url(&format!("subscriptions/{subscription}:pull")))
            .json(&json!({"maxMessages": max, "returnImmediately": true}))
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success(), "pull {subscription}: {}", resp.status());
        let body: Value = resp.json().await.unwrap();
        let received = body["receivedMessages"].as_array().cloned().unwrap_or_default();
        if received.is_empty() {
            return Vec::new();
        }
        let ack_ids: Vec<Value> = received.iter().map(|r| r["ackId"].clone()).collect();
        let resp = self
            .http
            .post(self.url(&format!("subscriptions/{subscription}:acknowledge")))
            .json(&json!({ "ackIds": ack_ids }))
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success());
        received
            .iter()
            .map(|r| {
                let m = &r["message"];
                let data = m["data"].as_str().unwrap_or("");
                Pulled {
                    data: base64::engine::general_purpose::STANDARD.decode(data).unwrap(),
                    attributes: serde_json::from_value(m["attributes"].clone()).unwrap_or_default(),
                }
            })
            .collect()
    }
}

/// How a test posts a message to the service itself, as Pub/Sub or Eventarc would.
#[derive(Clone, Copy, Debug)]
pub enum Delivery {
    /// A wrapped push body to `/pubsub/push`.
    Push,
    /// A binary-mode CloudEvent (`ce-*` headers, the body is the push body) to `/`, Eventarc's
    /// default path.
    BinaryEvent,
    /// A structured-mode CloudEvent (`application/cloudevents+json`, the push body as `data`)
    /// to `/pubsub/push`.
    StructuredEvent,
}

/// The event type of Pub/Sub messages delivered by Eventarc.
pub const PUBLISHED: &str = "google.cloud.pubsub.topic.v1.messagePublished";

/// A Pub/Sub message as push and Eventarc wrap it.
pub fn push_body(message_id: &str, data: &[u8], attributes: &[(&str, &str)]) -> Value {
    use base64::Engine as _;
    let attributes: serde_json::Map<String, Value> =
        attributes.iter().map(|(k, v)| ((*k).to_owned(), json!(v))).collect();
    json!({
        "message": {"data": base64::engine::general_purpose::STANDARD.encode(data), "messageId": message_id,
                    "attributes": attributes, "publishTime": "2026-11-30T00:00:00Z"},
        "subscription": format!("projects/{PROJECT}/subscriptions/eventarc-sub"),
    })
}

/// Posts `body` (a [`push_body`], or any JSON standing for one) to the service at `base` the
/// way `how` says, with `event_id` as the CloudEvent id and `headers` added.
pub async fn deliver(
    http: &reqwest::Client,
    base: &str,
    how: Delivery,
    event_id: &str,
    body: &Value,
    headers: &[(&str, String)],
) -> reqwest::Response {
    let source = format!("//pubsub.googleapis.com/projects/{PROJECT}/topics/events");
    let request = match how {
        Delivery::Push => http.post(format!("{base}/pubsub/push")).json(body),
        Delivery::BinaryEvent => http
            .post(format!("{base}/"))
            .header("ce-specversion", "1.0")
            .header("ce-id", event_id)
            .header("ce-type", PUBLISHED)
            .header("ce-source", source)
            .header("content-type", "application/json")
            .body(body.to_string()),
        Delivery::StructuredEvent => {
            let event = json!({"specversion": "1.0", "id": event_id, "type": PUBLISHED, "source": source,
                               "datacontenttype": "application/json", "data": body});
            http.post(format!("{base}/pubsub/push"))
                .header("content-type", "application/cloudevents+json")
                .body(event.to_string())
        }
    };
    let request = headers.iter().fold(request, |r, (k, v)| r.header(*k, v));
    request.send().await.unwrap()
}

/// The Redis started by scripts/test-gcp: the dedupe store shared by a process and its
/// restarted successor, as Memorystore is on Cloud Run.
pub fn redis_env() -> Vec<(&'static str, String)> {
    let url =
        std::env::var("WARDEN_TEST_REDIS_URL").expect("WARDEN_TEST_REDIS_URL: run these tests with scripts/test-gcp");
    vec![("REDIS_URL", url), ("WARDEN_STORE", "redis".to_owned())]
}

/// The current time in RFC 3339, as the emulator's API takes it.
pub fn rfc3339_now() -> String {
    let out = Command::new("date").args(["-u", "+%Y-%m-%dT%H:%M:%SZ"]).output().unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// Unique resource names per test run (the emulator outlives one test binary run only when
/// reused by hand).
pub fn name(base: &str) -> String {
    format!("{base}-{}", std::process::id())
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A running `warden-gcp` process, stopped (SIGTERM, then SIGKILL) when dropped.
pub struct Warden {
    pub child: Child,
    pub log: std::path::PathBuf,
}

impl Warden {
    /// Starts `warden-gcp ARGS` with only `env` (plus the emulator and test defaults).
    pub fn start(args: &[&str], env: &[(&str, String)]) -> Warden {
        let log = std::env::temp_dir().join(format!("warden-gcp-{}-{}.log", std::process::id(), free_port()));
        let file = std::fs::File::create(&log).unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_warden-gcp"));
        cmd.args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("PUBSUB_EMULATOR_HOST", Emulator::from_env().host)
            .env("GOOGLE_CLOUD_PROJECT", PROJECT)
            .env("WARDEN_AUDIT", "off")
            .env("WARDEN_STORE", "memory")
            .env("RATE_LIMIT_PER_MINUTE", "0")
            .stdout(Stdio::null())
            .stderr(file);
        for (k, v) in env {
            cmd.env(k, v);
        }
        Warden { child: cmd.spawn().unwrap(), log }
    }

    /// Waits until `GET base/api/v1/health` answers.
    pub async fn wait_http(&self, base: &str) {
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if client.get(format!("{base}/api/v1/health")).send().await.is_ok_and(|r| r.status() == 200) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("warden-gcp did not come up at {base}: {}", self.log_text());
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Log lines (JSON) whose `message` is `message`.
    pub fn log_lines(&self, message: &str) -> Vec<Value> {
        self.log_text()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| v["message"] == message)
            .collect()
    }

    /// SIGTERM, then waits for the exit; returns whether it exited cleanly within `within`.
    pub fn terminate(&mut self, within: Duration) -> bool {
        let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }
}

impl Drop for Warden {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        let _ = std::fs::remove_file(&self.log);
    }
}
