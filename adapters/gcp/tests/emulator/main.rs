//! `warden-gcp` against the real Pub/Sub emulator (started by scripts/test-gcp, which sets
//! `PUBSUB_EMULATOR_HOST`): push subscriptions (wrapped and unwrapped) and CloudEvents to the
//! Cloud Run service, the pull worker on a 10,000-message batch, malformed messages, a
//! transient failure and its redelivery, dead-lettering, every conformance case as a Pub/Sub
//! message, and SIGTERM under a publish load (pull worker and service, each restarted: every
//! message answered exactly once through the Redis dedupe store the script starts).
//!
//! Push OIDC verification is off wherever the emulator pushes: the emulator sends no
//! `Authorization` header (it signs nothing, whatever the subscription's `oidcToken` says). The
//! OIDC test posts to the service itself with tokens signed by a key generated for the run.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

#[path = "../common/keys.rs"]
mod keys;
mod support;

use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};
use support::{deliver, free_port, name, push_body, Delivery, Emulator, Outgoing, Pulled, Warden, PROJECT};

fn by_id(results: &[Pulled]) -> HashMap<String, Vec<Pulled>> {
    let mut map: HashMap<String, Vec<Pulled>> = HashMap::new();
    for r in results {
        let id = r.json()["messageId"].as_str().unwrap_or_default().to_owned();
        map.entry(id).or_default().push(r.clone());
    }
    map
}

/// An audit file for one test's service.
fn audit_file(test: &str) -> String {
    std::env::temp_dir().join(format!("warden-gcp-audit-{test}-{}.jsonl", std::process::id())).display().to_string()
}

/// The `user` of every audit line (the agent of an `evaluate` without a user).
fn audit_users(file: &str) -> std::collections::BTreeSet<String> {
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|l| l["user"].as_str().map(str::to_owned))
        .collect()
}

/// A results topic with a pull subscription.
async fn results_topic(emu: &Emulator, base: &str) -> (String, String) {
    let topic = name(base);
    let sub = format!("{topic}-read");
    emu.create_topic(&topic).await;
    emu.create_subscription(&sub, &topic, json!({})).await;
    (topic, sub)
}

/// The messages every push test sends: an envelope with PII, a bare payload naming its agent in
/// an attribute, a bare payload without one, and two malformed ones.
fn push_messages() -> Vec<Outgoing> {
    vec![
        (br#"{"action":"evaluate","payload":{"message":"My SSN is 123-45-6789"},"corr_id":"c-1"}"#.to_vec(), vec![]),
        (br#"{"message":"call me at alice@example.com"}"#.to_vec(), vec![("agent_id", "agent-7".to_owned())]),
        (br#"{"message":"nothing to see"}"#.to_vec(), vec![]),
        (b"this is not json".to_vec(), vec![]),
        (br#"{"action":"precheck","tool":"t"}"#.to_vec(), vec![]),
    ]
}

fn check_push_results(ids: &[String], results: &[Pulled]) {
    let got = by_id(results);
    assert_eq!(got.len(), ids.len(), "one result per message: {results:?}");
    for id in ids {
        assert_eq!(got[id].len(), 1, "message {id}: {:?}", got[id]);
    }
    let r = &got[&ids[0]][0];
    assert_eq!(r.attributes["decision"], "transform");
    assert_eq!(r.attributes["policy_id"], r.json()["policy_id"].as_str().unwrap());
    assert_eq!(r.attributes["correlation_id"], "c-1");
    assert!(!r.json().to_string().contains("123-45-6789"), "{}", r.json());
    let r = &got[&ids[1]][0];
    assert_eq!(r.attributes["correlation_id"], ids[1]);
    assert_eq!(r.json()["modified_payload"], json!({"message": "call me at <USER_EMAIL>"}), "{}", r.json());
    let r = &got[&ids[2]][0];
    assert_eq!(r.attributes["decision"], "allow");
    for (i, code, field) in [(3, "invalid_json", None), (4, "invalid_request", Some("raw_text"))] {
        let r = &got[&ids[i]][0];
        assert_eq!(r.attributes["decision"], "error");
        assert_eq!(r.json()["error"]["code"], code, "{}", r.json());
        if let Some(f) = field {
            assert_eq!(r.json()["error"]["field"], f);
        }
    }
}

#[tokio::test]
#[ignore = "needs the Pub/Sub emulator: run scripts/test-gcp"]
async fn push_subscriptions_wrapped_and_unwrapped() {
    let emu = Emulator::from_env();
    let (results, results_sub) = results_topic(&emu, "push-results").await;
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let warden = Warden::start(
        &[],
        &[("PORT", port.to_string()), ("WARDEN_RESULT_TOPIC", results.clone()), ("WARDEN_AUDIT", audit_file("push"))],
    );
    warden.wait_http(&base).await;
    for (kind, push_config) in [
        ("wrapped", json!({"pushEndpoint": format!("{base}/pubsub/push")})),
        ("unwrapped", json!({"pushEndpoint": format!("{base}/pubsub/push"), "noWrapper": {"writeMetadata": true}})),
    ] {
        let topic = name(&format!("push-in-{kind}"));
        emu.create_topic(&topic).await;
        emu.create_subscription(&format!("{topic}-push"), &topic, json!({ "pushConfig": push_config })).await;
        let ids = emu.publish(&topic, &push_messages()).await;
        let got = emu.pull_until(&results_sub, ids.len(), Duration::from_secs(30)).await;
        check_push_results(&ids, &got);
        // Malformed messages were acknowledged: nothing is redelivered and published again.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let late = emu.pull_once(&results_sub, 100).await;
        assert!(late.is_empty(), "{kind}: results after the first round: {late:?}");
    }
    // Bare payloads ran as the attribute's agent, else the Pub/Sub default.
    let agents = audit_users(&audit_file("push"));
    assert!(agents.contains("agent-7") && agents.contains("pubsub-default"), "{agents:?}");
    let logs = warden.log_lines("pubsub message governed");
    assert!(logs.len() >= 10, "{}", warden.log_text());
    for line in &logs {
        // Ids, decisions and reasons only.
        assert!(!line.to_string().contains("123-45-6789") && !line.to_string().contains("alice@"), "{line}");
        assert!(line["messageId"].is_string() && line["decision"].is_string(), "{line}");
    }
}

#[tokio::test]
#[ignore = "needs the Pub/Sub emulator: run scripts/test-gcp"]
async fn cloud_events_binary_and_structured() {
    let emu = Emulator::from_env();
    let (results, results_sub) = results_topic(&emu, "ce-results").await;
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let warden = Warden::start(
        &[],
        &[("PORT", port.to_string()), ("WARDEN_RESULT_TOPIC", results), ("WARDEN_AUDIT", audit_file("ce"))],
    );
    warden.wait_http(&base).await;
    let http = reqwest::Client::new();
    let pii = br#"{"message":"SSN 123-45-6789"}"#;
    let trace = "105445aa7843bc8bf206b12000100000/1;o=1";
    // Binary mode at `/` (Eventarc's default), structured mode at the push path, a redelivery
    // of the first event (acknowledged, nothing published again), and a malformed event
    // (acknowledged with an error result).
    let first = push_body("ce-msg-1", pii, &[("agent_id", "ce-agent")]);
    let sends = [
        (Delivery::BinaryEvent, "evt-1", first.clone(), vec![("x-cloud-trace-context", trace.to_owned())]),
        (Delivery::StructuredEvent, "evt-2", push_body("ce-msg-2", pii, &[("agent_id", "ce-agent")]), vec![]),
        (Delivery::BinaryEvent, "evt-1", first, vec![]),
        (Delivery::BinaryEvent, "evt-3", json!({"message": {"messageId": "ce-msg-3", "data": "%%%"}}), vec![]),
    ];
    for (how, event_id, body, headers) in &sends {
        let resp = deliver(&http, &base, *how, event_id, body, headers).await;
        assert_eq!(resp.status(), 204, "{how:?} {event_id}");
    }
    // `POST /` without ce-* headers is still the invoke envelope.
    let resp = http.post(format!("{base}/")).json(&json!({"action": "health"})).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let got = emu.pull_until(&results_sub, 3, Duration::from_secs(20)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut all = got;
    all.extend(emu.pull_once(&results_sub, 100).await);
    let got = by_id(&all);
    assert_eq!(got.len(), 3, "{all:?}");
    for id in ["ce-msg-1", "ce-msg-2"] {
        assert_eq!(got[id].len(), 1);
        let r = got[id][0].json();
        assert_eq!(r["decision"], "transform", "{r}");
    }
    assert_eq!(got["ce-msg-3"][0].attributes["decision"], "error");
    assert!(audit_users(&audit_file("ce")).contains("ce-agent"));
    // The request's log line carries its trace.
    let traced = warden
        .log_text()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| {
            l["logging.googleapis.com/trace"] == format!("projects/{PROJECT}/traces/105445aa7843bc8bf206b12000100000")
        })
        .count();
    assert!(traced >= 2, "{}", warden.log_text());
}

#[tokio::test]
#[ignore = "needs the Pub/Sub emulator: run scripts/test-gcp"]
async fn push_transient_failure_is_dead_lettered_after_max_attempts() {
    let emu = Emulator::from_env();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    // The result topic does not exist: every publish fails, every push answers 503.
    let missing = name("never-created");
    let warden = Warden::start(&[], &[("PORT", port.to_string()), ("WARDEN_RESULT_TOPIC", missing)]);
    warden.wait_http(&base).await;
    let topic = name("dl-in");
    let (dlq, dlq_sub) = results_topic(&emu, "dl-dead").await;
    emu.create_topic(&topic).await;
    emu.create_subscription(
        &format!("{topic}-push"),
        &topic,
        json!({
            "pushConfig": {"pushEndpoint": format!("{base}/pubsub/push")},
            "deadLetterPolicy": {"deadLetterTopic": format!("projects/{PROJECT}/topics/{dlq}"), "maxDeliveryAttempts": 5},
            "retryPolicy": {"minimumBackoff": "0.1s", "maximumBackoff": "0.5s"}
        }),
    )
    .await;
    let data = br#"{"action":"evaluate","payload":{"message":"hello"}}"#.to_vec();
    emu.publish(&topic, &[(data.clone(), vec![])]).await;
    let dead = emu.pull_until(&dlq_sub, 1, Duration::from_secs(60)).await;
    assert_eq!(dead.len(), 1, "not dead-lettered: {}", warden.log_text());
    assert_eq!(dead[0].data, data);
    let attempts = warden.log_lines("result not published, message will be redelivered").len();
    assert!(attempts >= 5, "{attempts} attempts");
}

/// Starts a pull worker on `subscription` publishing to `results`.
fn pull_worker(subscription: &str, results: &str, env: &[(&str, String)]) -> Warden {
    Warden::start(&["pull", "--subscription", subscription, "--result-topic", results, "--concurrency", "64"], env)
}

#[tokio::test]
#[ignore = "needs the Pub/Sub emulator: run scripts/test-gcp"]
async fn pull_worker_governs_a_batch_exactly_once() {
    const N: usize = 10_000;
    const MALFORMED_EVERY: usize = 500;
    let emu = Emulator::from_env();
    let topic = name("batch-in");
    let sub = format!("{topic}-pull");
    emu.create_topic(&topic).await;
    emu.create_subscription(&sub, &topic, json!({})).await;
    let (results, results_sub) = results_topic(&emu, "batch-results").await;
    let messages: Vec<Outgoing> = (0..N)
        .map(|i| {
            if i % MALFORMED_EVERY == 0 {
                (format!("not json {i}").into_bytes(), vec![])
            } else {
                let body = json!({"action": "precheck", "tool": "verify_identity", "scope": "net.external",
                                  "raw_text": format!("case {i}: SSN 123-45-6789, mail bob{i}@example.com")});
                (body.to_string().into_bytes(), vec![("agent_id", format!("agent-{}", i % 7))])
            }
        })
        .collect();
    let ids = emu.publish(&topic, &messages).await;
    let started = Instant::now();
    let mut worker = pull_worker(&sub, &results, &[]);
    let got = emu.pull_until(&results_sub, N, Duration::from_secs(120)).await;
    let elapsed = started.elapsed();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let late = emu.pull_once(&results_sub, 1000).await;
    assert!(worker.terminate(Duration::from_secs(10)), "worker did not stop cleanly: {}", worker.log_text());
    let got_by_id = by_id(&got);
    let missing: Vec<_> = ids.iter().filter(|id| !got_by_id.contains_key(*id)).take(5).collect();
    assert!(missing.is_empty(), "{} results for {N} messages; missing e.g. {missing:?}", got.len());
    let dupes: Vec<_> = got_by_id.iter().filter(|(_, v)| v.len() > 1).map(|(k, _)| k).take(5).collect();
    assert!(dupes.is_empty() && late.is_empty(), "duplicates {dupes:?}, late {}", late.len());
    let errors = got.iter().filter(|r| r.attributes["decision"] == "error").count();
    assert_eq!(errors, N / MALFORMED_EVERY);
    for (i, id) in ids.iter().enumerate() {
        let r = &got_by_id[id][0];
        let want = if i % MALFORMED_EVERY == 0 { "error" } else { "transform" };
        assert_eq!(r.attributes["decision"], want, "message {i}: {}", r.json());
    }
    #[allow(clippy::cast_precision_loss)]
    let rate = N as f64 / elapsed.as_secs_f64();
    let stopped = worker.log_lines("pull worker stopped");
    println!(
        "pull worker throughput: {N} messages in {:.2} s = {rate:.0} messages/s end to end (worker's own count: {})",
        elapsed.as_secs_f64(),
        stopped.first().map(|l| l["acked_per_second"].to_string()).unwrap_or_default()
    );
}

#[tokio::test]
#[ignore = "needs the Pub/Sub emulator: run scripts/test-gcp"]
async fn pull_worker_nacks_a_transient_failure_and_the_redelivery_publishes() {
    let emu = Emulator::from_env();
    let topic = name("transient-in");
    let sub = format!("{topic}-pull");
    emu.create_topic(&topic).await;
    emu.create_subscription(&sub, &topic, json!({"retryPolicy": {"minimumBackoff": "0.1s", "maximumBackoff": "0.5s"}}))
        .await;
    // The result topic does not exist yet (as if deleted): publishing fails, messages are nacked.
    let results = name("transient-results");
    let worker = pull_worker(&sub, &results, &[]);
    let messages: Vec<Outgoing> = (0..20)
        .map(|i| (json!({"action": "evaluate", "payload": {"n": i}}).to_string().into_bytes(), vec![]))
        .collect();
    let ids = emu.publish(&topic, &messages).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while worker.log_lines("result not published, message will be redelivered").len() < 40 && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        worker.log_lines("result not published, message will be redelivered").len() >= 40,
        "messages were not redelivered after nacks: {}",
        worker.log_text()
    );
    emu.create_topic(&results).await;
    emu.create_subscription(&format!("{results}-read"), &results, json!({})).await;
    let got = emu.pull_until(&format!("{results}-read"), ids.len(), Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let late = emu.pull_once(&format!("{results}-read"), 100).await;
    let got = by_id(&got);
    for id in &ids {
        assert_eq!(got.get(id).map(Vec::len), Some(1), "message {id}: {:?}", got.get(id));
    }
    assert!(late.is_empty(), "{late:?}");
}

#[tokio::test]
#[ignore = "needs the Pub/Sub emulator: run scripts/test-gcp"]
async fn every_conformance_case_as_a_pubsub_message() {
    let emu = Emulator::from_env();
    let cases = warden_tests::load_all().unwrap();
    let mut groups: BTreeMap<String, Vec<(String, warden_tests::Case)>> = BTreeMap::new();
    for (file, case) in cases {
        groups.entry(serde_json::to_string(&case.env).unwrap()).or_default().push((file, case));
    }
    let mut failures = Vec::new();
    let mut total = 0;
    for (g, (env_key, cases)) in groups.iter().enumerate() {
        let topic = name(&format!("conf-in-{g}"));
        let sub = format!("{topic}-pull");
        emu.create_topic(&topic).await;
        emu.create_subscription(&sub, &topic, json!({})).await;
        let (results, results_sub) = results_topic(&emu, &format!("conf-results-{g}")).await;
        let case_env: BTreeMap<String, String> = serde_json::from_str(env_key).unwrap();
        let env: Vec<(&str, String)> = case_env
            .iter()
            .map(|(k, v)| {
                let v = if k == "POLICY_FILE" {
                    warden_tests::corpus_dir().join(v).display().to_string()
                } else {
                    v.clone()
                };
                (k.as_str(), v)
            })
            .collect();
        let messages: Vec<Outgoing> = cases
            .iter()
            .map(|(_, c)| {
                let mut envelope = c.request.clone();
                envelope["action"] = json!(c.endpoint);
                (envelope.to_string().into_bytes(), vec![])
            })
            .collect();
        let ids = emu.publish(&topic, &messages).await;
        let _worker = pull_worker(&sub, &results, &env);
        let got = by_id(&emu.pull_until(&results_sub, ids.len(), Duration::from_secs(30)).await);
        for (id, (file, case)) in ids.iter().zip(cases) {
            total += 1;
            match got.get(id) {
                Some(r) if r.len() == 1 => {
                    if let Err(e) = warden_tests::compare(case, &r[0].json()) {
                        failures.push(format!("[{file}] {e}"));
                    }
                    if r[0].attributes["decision"] != case.expect.decision {
                        failures.push(format!(
                            "[{file}] {}: decision attribute {}",
                            case.name, r[0].attributes["decision"]
                        ));
                    }
                }
                other => failures.push(format!("[{file}] {}: results {other:?}", case.name)),
            }
        }
    }
    assert!(total >= 40);
    assert!(failures.is_empty(), "{} of {total} cases failed:\n{}", failures.len(), failures.join("\n"));
}

/// Publishes `messages` `batch` at a time, one batch per `every`: a bounded publish load that
/// keeps arriving while processes are stopped and restarted. Returns the ids in order.
async fn publish_paced(
    emu: Emulator,
    topic: String,
    messages: Vec<Outgoing>,
    batch: usize,
    every: Duration,
) -> Vec<String> {
    let mut ids = Vec::with_capacity(messages.len());
    let mut tick = tokio::time::interval(every);
    for chunk in messages.chunks(batch) {
        tick.tick().await;
        ids.extend(emu.publish(&topic, chunk).await);
    }
    ids
}

/// Reads `subscription` until every id in `ids` (those not answered yet) has a result, `timeout`
/// passed or nothing new came for `quiet`, then 1.5 s more so that a late duplicate would be
/// seen.
async fn results_for(
    emu: &Emulator,
    subscription: &str,
    ids: &[String],
    timeout: Duration,
    quiet: Duration,
) -> HashMap<String, Vec<Pulled>> {
    let deadline = Instant::now() + timeout;
    let mut got: Vec<Pulled> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut last_new = Instant::now();
    while Instant::now() < deadline && last_new.elapsed() < quiet && !ids.iter().all(|id| seen.contains(id)) {
        let batch = emu.pull_once(subscription, 1000).await;
        if batch.is_empty() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        } else {
            last_new = Instant::now();
        }
        seen.extend(batch.iter().map(|r| r.json()["messageId"].as_str().unwrap_or_default().to_owned()));
        got.extend(batch);
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    got.extend(emu.pull_once(subscription, 1000).await);
    by_id(&got)
}

/// Every id has exactly one result, none an error, and no result is for an unknown id.
fn exactly_once(what: &str, ids: &[String], got: &HashMap<String, Vec<Pulled>>) {
    let missing: Vec<_> = ids.iter().filter(|id| !got.contains_key(*id)).collect();
    let duplicated: Vec<_> = got.iter().filter(|(_, v)| v.len() > 1).map(|(k, v)| (k, v.len())).take(5).collect();
    assert!(
        missing.is_empty(),
        "{what}: {} of {} messages have no result, e.g. {:?}",
        missing.len(),
        ids.len(),
        &missing[..missing.len().min(5)]
    );
    assert!(duplicated.is_empty(), "{what}: duplicate results, e.g. {duplicated:?}");
    assert_eq!(got.len(), ids.len(), "{what}: results for ids never published");
    assert!(got.values().flatten().all(|r| r.attributes["decision"] != "error"), "{what}: an error result");
}

fn redact_messages(n: usize) -> Vec<Outgoing> {
    (0..n)
        .map(|i| {
            (json!({"action": "redact", "text": format!("row {i} SSN 123-45-6789")}).to_string().into_bytes(), vec![])
        })
        .collect()
}

#[tokio::test]
#[ignore = "needs the Pub/Sub emulator: run scripts/test-gcp"]
async fn sigterm_under_pull_load_answers_each_message_once() {
    const N: usize = 3000;
    let emu = Emulator::from_env();
    let topic = name("term-in");
    let sub = format!("{topic}-pull");
    emu.create_topic(&topic).await;
    emu.create_subscription(
        &sub,
        &topic,
        json!({"ackDeadlineSeconds": 10, "retainAckedMessages": true,
               "retryPolicy": {"minimumBackoff": "0.1s", "maximumBackoff": "1s"}}),
    )
    .await;
    let (results, results_sub) = results_topic(&emu, "term-results").await;
    // Both workers share the Redis dedupe store, as instances on Cloud Run share Memorystore: a
    // message whose result was published but whose ack was lost is not answered twice.
    let env = support::redis_env();
    let since = support::rfc3339_now();
    // 3000 messages, 50 every 100 ms: the load is still arriving when the first worker stops.
    let publisher = tokio::spawn(publish_paced(emu.clone(), topic, redact_messages(N), 50, Duration::from_millis(100)));
    let started = Instant::now();
    let mut first = pull_worker(&sub, &results, &env);
    let early = emu.pull_until(&results_sub, N / 5, Duration::from_secs(60)).await;
    let stop = Instant::now();
    assert!(first.terminate(Duration::from_secs(10)), "no clean exit within 10 s: {}", first.log_text());
    let drain = stop.elapsed();
    let stopped = first.log_lines("pull worker stopped");
    assert_eq!(stopped.len(), 1, "{}", first.log_text());
    let f = &stopped[0];
    // Everything the first worker received was acked after its result was published, or
    // handed back.
    assert_eq!(f["received"], json!(f["acked"].as_u64().unwrap() + f["nacked"].as_u64().unwrap()), "{f}");
    assert_eq!(f["published"], f["acked"], "{f}");
    let mut second = pull_worker(&sub, &results, &env);
    let ids = publisher.await.unwrap();
    let mut got = by_id(&early);
    let pending: Vec<String> = ids.iter().filter(|id| !got.contains_key(*id)).cloned().collect();
    for (id, r) in results_for(&emu, &results_sub, &pending, Duration::from_secs(10), Duration::from_secs(4)).await {
        got.entry(id).or_default().extend(r);
    }
    let before_replay = ids.iter().filter(|id| got.contains_key(*id)).count();
    // Replay: seek the subscription back to the start (what an operator does after an incident).
    // Every message comes again, answered or not, to the second worker; each answered one must
    // be recognised as a duplicate through the shared store and not answered twice.
    emu.seek(&sub, &since).await;
    for (id, r) in results_for(&emu, &results_sub, &ids, Duration::from_secs(30), Duration::from_secs(5)).await {
        got.entry(id).or_default().extend(r);
    }
    assert!(second.terminate(Duration::from_secs(10)), "{}", second.log_text());
    let s = second.log_lines("pull worker stopped").remove(0);
    let duplicated: Vec<_> = got.iter().filter(|(_, v)| v.len() > 1).map(|(k, v)| (k, v.len())).take(5).collect();
    assert!(duplicated.is_empty(), "duplicate results across the restart and the replay, e.g. {duplicated:?}");
    assert!(got.values().flatten().all(|r| r.attributes["decision"] != "error"));
    assert!(got.keys().all(|id| ids.contains(id)), "results for ids never published");
    assert!(s["duplicates"].as_u64().unwrap() > 0, "the replay brought no answered message back: {s}");
    assert_eq!(s["received"], json!(s["acked"].as_u64().unwrap() + s["nacked"].as_u64().unwrap()), "{s}");
    // What is not asserted: that every message is eventually answered. Measured on the emulator
    // (gcloud 528), whole publish batches that it hands to a streaming-pull stream are never
    // delivered when an earlier stream of the subscription has closed (SIGTERM or SIGKILL
    // alike): invisible to every later stream and to plain pull for minutes, and again after a
    // seek. The push test below proves nothing-lost end to end; here the emulator's loss is
    // counted and printed.
    let answered = ids.iter().filter(|id| got.contains_key(*id)).count();
    println!(
        "sigterm under pull load: first worker stopped after {} results, drained in {:.2} s ({} acked, {} handed \
         back); {before_replay} of {N} answered before the replay, {answered} after it, each once; the second \
         worker recognised {} redeliveries as duplicates; {} never delivered by the emulator; {:.1} s",
        early.len(),
        drain.as_secs_f64(),
        f["acked"],
        f["nacked"],
        s["duplicates"],
        N - answered,
        started.elapsed().as_secs_f64(),
    );
}

#[tokio::test]
#[ignore = "needs the Pub/Sub emulator: run scripts/test-gcp"]
async fn sigterm_under_load_loses_nothing_cloud_run_push() {
    const N: usize = 600;
    let emu = Emulator::from_env();
    let (results, results_sub) = results_topic(&emu, "term-push-results").await;
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut env = support::redis_env();
    env.extend([("PORT", port.to_string()), ("WARDEN_RESULT_TOPIC", results)]);
    let mut first = Warden::start(&[], &env);
    first.wait_http(&base).await;
    let topic = name("term-push-in");
    emu.create_topic(&topic).await;
    emu.create_subscription(
        &format!("{topic}-push"),
        &topic,
        json!({"pushConfig": {"pushEndpoint": format!("{base}/pubsub/push")}, "ackDeadlineSeconds": 10,
               "retryPolicy": {"minimumBackoff": "0.1s", "maximumBackoff": "1s"}}),
    )
    .await;
    // 600 messages, 30 every 100 ms: pushes keep arriving while the service stops, is down
    // (connections refused: Pub/Sub retries) and starts again on the same port.
    let publisher = tokio::spawn(publish_paced(emu.clone(), topic, redact_messages(N), 30, Duration::from_millis(100)));
    let started = Instant::now();
    let early = emu.pull_until(&results_sub, N / 3, Duration::from_secs(60)).await;
    let stop = Instant::now();
    assert!(first.terminate(Duration::from_secs(10)), "no clean exit within 10 s: {}", first.log_text());
    let drain = stop.elapsed();
    let served_by_first = first.log_lines("pubsub message governed").len();
    let second = Warden::start(&[], &env);
    second.wait_http(&base).await;
    let ids = publisher.await.unwrap();
    let mut got = by_id(&early);
    let pending: Vec<String> = ids.iter().filter(|id| !got.contains_key(*id)).cloned().collect();
    for (id, r) in results_for(&emu, &results_sub, &pending, Duration::from_secs(90), Duration::from_secs(90)).await {
        got.entry(id).or_default().extend(r);
    }
    exactly_once("push", &ids, &got);
    println!(
        "sigterm under push load: service stopped after {} results, drained in {:.2} s; first instance governed \
         {served_by_first}, second {}; all {N} answered exactly once {:.1} s after the start ({} redeliveries \
         deduplicated)",
        early.len(),
        drain.as_secs_f64(),
        second.log_lines("pubsub message governed").len(),
        started.elapsed().as_secs_f64(),
        first.log_lines("duplicate message acknowledged").len()
            + second.log_lines("duplicate message acknowledged").len(),
    );
}

#[tokio::test]
#[ignore = "needs the Pub/Sub emulator: run scripts/test-gcp"]
async fn push_oidc_tokens_checked_by_the_service() {
    let emu = Emulator::from_env();
    let (results, results_sub) = results_topic(&emu, "oidc-results").await;
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let key = keys::TestKey::generate("test-key");
    let jwks = std::env::temp_dir().join(format!("warden-gcp-jwks-{}.json", std::process::id()));
    std::fs::write(&jwks, keys::jwks(&[&key]).to_string()).unwrap();
    // Push subscriptions sign for the push URL, Eventarc for the service URL.
    let push_audience = format!("{base}/pubsub/push");
    let warden = Warden::start(
        &[],
        &[
            ("PORT", port.to_string()),
            ("WARDEN_RESULT_TOPIC", results),
            ("WARDEN_PUSH_AUDIENCE", format!("{push_audience},{base}")),
            ("WARDEN_PUSH_SERVICE_ACCOUNT", keys::PUSH_ACCOUNT.to_owned()),
            ("WARDEN_PUSH_JWKS_FILE", jwks.display().to_string()),
        ],
    );
    warden.wait_http(&base).await;
    let http = reqwest::Client::new();
    let bearer = |token: String| vec![("authorization", format!("Bearer {token}"))];
    let body = |id: &str| push_body(id, br#"{"message":"mail bob@example.com"}"#, &[]);
    let mut wrong_email = keys::push_claims(&push_audience);
    wrong_email["email"] = json!("intruder@example.iam.gserviceaccount.com");
    let mut expired = keys::push_claims(&push_audience);
    expired["exp"] = json!(keys::now() - 600);
    let refused = [
        (Delivery::Push, "no-token", vec![], 401, "unauthorized"),
        (Delivery::Push, "wrong-email", bearer(key.sign(json!({}), &wrong_email)), 403, "forbidden"),
        (Delivery::Push, "expired", bearer(key.sign(json!({}), &expired)), 401, "unauthorized"),
        (
            Delivery::Push,
            "other-key",
            bearer(keys::TestKey::generate("test-key").push_token(&push_audience)),
            401,
            "unauthorized",
        ),
        (Delivery::BinaryEvent, "event-no-token", vec![], 401, "unauthorized"),
    ];
    for (how, id, headers, status, code) in &refused {
        let resp = deliver(&http, &base, *how, id, &body(id), headers).await;
        assert_eq!(resp.status().as_u16(), *status, "{id}");
        let answer: Value = resp.json().await.unwrap();
        assert_eq!(answer["error"]["code"], *code, "{id}: {answer}");
    }
    let accepted = [
        (Delivery::Push, "pushed", bearer(key.push_token(&push_audience))),
        (Delivery::BinaryEvent, "evented", bearer(key.push_token(&base))),
        (Delivery::StructuredEvent, "structured", bearer(key.push_token(&push_audience))),
    ];
    for (how, id, headers) in &accepted {
        let resp = deliver(&http, &base, *how, id, &body(id), headers).await;
        assert_eq!(resp.status(), 204, "{id}: {}", warden.log_text());
    }
    // The HTTP API does not need a push token.
    assert_eq!(http.get(format!("{base}/api/v1/health")).send().await.unwrap().status(), 200);
    let ids: Vec<String> = accepted.iter().map(|(_, id, _)| (*id).to_owned()).collect();
    let got = results_for(&emu, &results_sub, &ids, Duration::from_secs(20), Duration::from_secs(20)).await;
    exactly_once("oidc", &ids, &got);
    let refusals = warden.log_lines("push request refused");
    assert_eq!(refusals.len(), refused.len(), "{}", warden.log_text());
    assert!(!warden.log_text().contains(&key.push_token(&push_audience)[..40]), "a token reached the log");
    std::fs::remove_file(&jwks).unwrap();
}
