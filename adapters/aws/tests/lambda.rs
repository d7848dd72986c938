//! The real `bootstrap` under `cargo lambda watch` (Lambda's Runtime API, emulated) with a
//! moto server standing in for S3, SQS and DynamoDB. Run by `scripts/test-aws`, which starts
//! both and sets `WARDEN_AWS_LAMBDA` (the watch address), `WARDEN_AWS_MOTO` (moto's address)
//! and `WARDEN_AWS_FUNCTION` (the function name); the tests are `#[ignore]`d otherwise.
//!
//! The function runs with the conformance policy and salt, `WARDEN_STORE=dynamodb`
//! (table `warden-state`), audit table `warden-audit` and result queue `warden-results`; the
//! tests create those resources (idempotently) before use.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use common::*;
use serde_json::{json, Value};
use std::sync::Arc;
use warden_aws::client::{AwsClient, AwsConfig};
use warden_aws::dynamo::{DynamoBudgetStore, DynamoDedupe, Table};
use warden_engine::budget::Money;
use warden_service::budget::{BudgetStore, MemoryBudgetStore, SpendRequest};
use warden_service::service::{MessageDedupe, Seen};
use warden_tests::{compare, load_all};

fn var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set: run scripts/test-aws"))
}

fn moto() -> String {
    var("WARDEN_AWS_MOTO")
}

fn aws() -> AwsClient {
    AwsClient::new(AwsConfig {
        region: "us-east-1".into(),
        access_key: "testing".into(),
        secret_key: "testing".into(),
        session_token: None,
        endpoint: Some(moto()),
    })
    .unwrap()
}

/// Invokes the function with `event` as Lambda would (direct invoke).
async fn invoke(event: &Value) -> Value {
    invoke_at(&var("WARDEN_AWS_LAMBDA"), event).await
}

/// Invokes the function served at `lambda` (a `cargo lambda watch` address).
async fn invoke_at(lambda: &str, event: &Value) -> Value {
    let url = format!("{lambda}/2015-03-31/functions/{}/invocations", var("WARDEN_AWS_FUNCTION"));
    let resp = reqwest::Client::new().post(url).json(event).send().await.unwrap();
    let text = resp.text().await.unwrap();
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

async fn create_table(name: &str, key: &str) {
    let body = json!({
        "TableName": name,
        "AttributeDefinitions": [{"AttributeName": key, "AttributeType": "S"}],
        "KeySchema": [{"AttributeName": key, "KeyType": "HASH"}],
        "BillingMode": "PAY_PER_REQUEST",
    });
    match aws().json("dynamodb", "DynamoDB_20120810.CreateTable", &body).await {
        Ok(_) => {}
        Err(e) if e.kind.contains("ResourceInUse") => {}
        Err(e) => panic!("CreateTable {name}: {e}"),
    }
}

async fn create_queue(name: &str) -> String {
    let out = aws().json("sqs", "AmazonSQS.CreateQueue", &json!({"QueueName": name})).await.unwrap();
    out["QueueUrl"].as_str().unwrap().to_owned()
}

async fn create_bucket(name: &str) {
    let resp = reqwest::Client::new().put(format!("{}/{name}", moto())).send().await.unwrap();
    assert!(resp.status().is_success() || resp.status().as_u16() == 409, "bucket {name}: {}", resp.status());
}

async fn setup() {
    create_table("warden-state", "pk").await;
    create_table("warden-audit", "event_id").await;
    create_queue("warden-results").await;
}

/// Every queued message (bodies), deleting them.
async fn drain(queue_url: &str) -> Vec<Value> {
    let mut out = Vec::new();
    for _ in 0..20 {
        let got = aws()
            .json(
                "sqs",
                "AmazonSQS.ReceiveMessage",
                &json!({"QueueUrl": queue_url, "MaxNumberOfMessages": 10, "WaitTimeSeconds": 0}),
            )
            .await
            .unwrap();
        let msgs = got["Messages"].as_array().cloned().unwrap_or_default();
        if msgs.is_empty() {
            break;
        }
        for m in msgs {
            out.push(serde_json::from_str(m["Body"].as_str().unwrap()).unwrap());
            let del = json!({"QueueUrl": queue_url, "ReceiptHandle": m["ReceiptHandle"]});
            aws().json("sqs", "AmazonSQS.DeleteMessage", &del).await.unwrap();
        }
    }
    out
}

#[tokio::test]
#[ignore = "needs cargo lambda watch and moto: scripts/test-aws"]
async fn conformance_over_every_http_origin_through_the_runtime() {
    // Two functions run: the script's main one, and one with ON_ERROR=pass for the cases that
    // ask for it (a function's environment is fixed at its start, as on Lambda).
    let mut checked = 0;
    let mut failures = Vec::new();
    for (_, case) in load_all().unwrap() {
        let lambda = match case.env.get("ON_ERROR").map(String::as_str) {
            None => var("WARDEN_AWS_LAMBDA"),
            Some("pass") => var("WARDEN_AWS_LAMBDA_ON_ERROR_PASS"),
            Some(other) => panic!("{}: no function runs with ON_ERROR={other}", case.name),
        };
        assert_eq!(case.env.get("PII_TOKEN_SALT").map(String::as_str), Some("conformance-salt"), "{}", case.name);
        assert_eq!(case.env.get("POLICY_FILE").map(String::as_str), Some("policy.tool_access.yaml"), "{}", case.name);
        for origin in ORIGINS {
            let event = http_event(origin, "POST", &format!("/api/v1/{}", case.endpoint), Some(&case.request), &[]);
            let (status, body) = http_answer(&invoke_at(&lambda, &event).await);
            checked += 1;
            if status != 200 {
                failures.push(format!("{origin:?} {}: {status} {body}", case.name));
            } else if let Err(e) = compare(&case, &body) {
                failures.push(format!("{origin:?} {e}"));
            }
        }
    }
    assert!(checked >= 4 * 59, "{checked} checks");
    assert!(failures.is_empty(), "{} failures:\n{}", failures.len(), failures.join("\n"));
}

#[tokio::test]
#[ignore = "needs cargo lambda watch and moto: scripts/test-aws"]
async fn function_url_path_and_direct_invoke() {
    setup().await;
    // cargo lambda's own Function URL emulation: a real HTTP request turned into an event.
    let url = format!("{}/lambda-url/{}/api/v1/precheck", var("WARDEN_AWS_LAMBDA"), var("WARDEN_AWS_FUNCTION"));
    let resp = reqwest::Client::new()
        .post(url)
        .json(&json!({"tool": "verify_identity", "scope": "net.external", "raw_text": "SSN: 123-45-6789"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["decision"], "transform", "{body}");
    assert_eq!(body["raw_text_out"], "SSN: pii_cd6e3b04");

    let answer = invoke(&json!({"action": "evaluate", "payload": {"message": "My SSN is 123-45-6789"}})).await;
    assert!(answer["request_id"].as_str().is_some_and(|r| !r.is_empty()), "{answer}");
    assert!(answer["decision"].is_string(), "{answer}");
    assert!(!answer.to_string().contains("123-45-6789"));
    let err = invoke(&json!({"action": "nope"})).await;
    assert!(err["error"]["code"].is_string(), "a client error is a result: {err}");
    let batch = invoke(&json!({"requests": [{"tool": "t", "raw_text": "a"}, {"tool": "t", "raw_text": "b"}]})).await;
    assert_eq!(batch["results"].as_array().map(Vec::len), Some(2), "{batch}");
}

#[tokio::test]
#[ignore = "needs cargo lambda watch and moto: scripts/test-aws"]
async fn sqs_results_partial_failures_and_dedupe() {
    setup().await;
    let queue = create_queue("warden-results").await;
    drain(&queue).await;
    let run = format!("{}", std::process::id());
    let ok = json!({"action": "evaluate", "payload": {"message": "hello"}}).to_string();
    let ids = [format!("ok-{run}"), format!("bad-{run}")];
    let event = sqs_event(&[(&ids[0], &ok), (&ids[1], "{not json"), (&ids[0], &ok)]);
    let answer = invoke(&event).await;
    assert_eq!(answer, json!({"batchItemFailures": []}), "malformed is rejected, not retried");
    let results = drain(&queue).await;
    assert_eq!(results.len(), 2, "one result and one error result; the duplicate publishes nothing: {results:?}");
    let done = results.iter().find(|r| r["request_id"] == ids[0].as_str()).unwrap();
    assert!(done["decision"].is_string(), "{done}");
    let rejected = results.iter().find(|r| r["request_id"] == ids[1].as_str()).unwrap();
    assert_eq!(rejected["error"]["code"], "invalid_json", "{rejected}");
    // A redelivery of an answered message is acknowledged without a new result.
    assert_eq!(invoke(&sqs_event(&[(&ids[0], &ok)])).await, json!({"batchItemFailures": []}));
    assert!(drain(&queue).await.is_empty());
    // A result over the queue's 256 KiB limit becomes an error result, not a retry.
    let big = json!({"action": "evaluate", "payload": {"message": "word ".repeat(60_000)}}).to_string();
    let big_id = format!("big-{run}");
    assert_eq!(invoke(&sqs_event(&[(&big_id, &big)])).await, json!({"batchItemFailures": []}));
    let results = drain(&queue).await;
    assert_eq!(results.len(), 1);
    assert_eq!(results[0]["error"]["code"], "payload_too_large", "{}", results[0]);
    assert_eq!(results[0]["request_id"], big_id.as_str());
}

#[tokio::test]
#[ignore = "needs cargo lambda watch and moto: scripts/test-aws"]
async fn authorizers_through_the_runtime() {
    // The test function has no WARDEN_API_KEYS: an authorizer then denies everyone.
    let mut token = fixture("example-apigw-custom-auth-request.json");
    let denied = invoke(&token).await;
    assert_eq!(denied["policyDocument"]["Statement"][0]["Effect"], "Deny", "{denied}");
    assert_eq!(denied["context"]["reason"], "auth_not_configured");
    token["authorizationToken"] = json!("");
    let unauthorized = invoke(&token).await;
    assert_eq!(unauthorized["errorMessage"], "Unauthorized", "{unauthorized}");
    let mut v2 = fixture("example-apigw-v2-custom-authorizer-v2-request.json");
    v2["headers"]["x-governs-key"] = json!("some-key");
    assert_eq!(invoke(&v2).await["isAuthorized"], false);
}

#[tokio::test]
#[ignore = "needs cargo lambda watch and moto: scripts/test-aws"]
async fn sqs_store_outage_fails_only_the_affected_records() {
    setup().await;
    let queue = create_queue("warden-results").await;
    drain(&queue).await;
    let run = std::process::id();
    let ok = json!({"action": "evaluate", "payload": {"message": "hello"}}).to_string();
    let (first, second) = (format!("outage-{run}-1"), format!("outage-{run}-2"));
    // The dedupe store (the state table) goes away: well-formed records are retried,
    // a malformed one is still rejected (it never reaches the store).
    aws().json("dynamodb", "DynamoDB_20120810.DeleteTable", &json!({"TableName": "warden-state"})).await.unwrap();
    let answer = invoke(&sqs_event(&[(&first, &ok), (&second, "not json")])).await;
    create_table("warden-state", "pk").await;
    assert_eq!(answer, json!({"batchItemFailures": [{"itemIdentifier": first}]}));
    let results = drain(&queue).await;
    assert_eq!(results.len(), 1, "{results:?}");
    assert_eq!(results[0]["request_id"], second.as_str());
    // The redelivery after the outage runs and publishes its result.
    assert_eq!(invoke(&sqs_event(&[(&first, &ok)])).await, json!({"batchItemFailures": []}));
    let results = drain(&queue).await;
    assert_eq!(results.len(), 1, "{results:?}");
    assert_eq!(results[0]["request_id"], first.as_str());
}

/// A function in this process with the given environment (plus moto's endpoint and credentials).
async fn local_app(env: &[(&str, String)]) -> warden_aws::App {
    let mut all: Vec<(String, String)> = env.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect();
    all.extend([
        ("AWS_ENDPOINT_URL".to_owned(), moto()),
        ("AWS_ACCESS_KEY_ID".to_owned(), "testing".to_owned()),
        ("AWS_SECRET_ACCESS_KEY".to_owned(), "testing".to_owned()),
        ("WARDEN_EMF".to_owned(), "false".to_owned()),
        ("WARDEN_AUDIT".to_owned(), "off".to_owned()),
    ]);
    warden_aws::config::build(move |k| all.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())).await.unwrap()
}

#[tokio::test]
#[ignore = "needs moto: scripts/test-aws"]
async fn events_are_delivered_before_return_and_dead_lettered_to_sqs() {
    // A webhook receiver on loopback.
    let received = Arc::new(std::sync::Mutex::new(Vec::<Value>::new()));
    let sink = Arc::clone(&received);
    let hook = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |body: String| {
            let sink = Arc::clone(&sink);
            async move {
                sink.lock().unwrap().push(serde_json::from_str(&body).unwrap());
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, hook).await.unwrap() });
    let app = local_app(&[("WEBHOOK_URL", format!("http://{addr}/hook"))]).await;
    let inv = warden_aws::Invocation { request_id: "r-1".into(), deadline_ms: 0 };
    app.handle(json!({"action": "evaluate", "payload": {"message": "SSN 123-45-6789"}}), &inv).await.unwrap();
    let events = received.lock().unwrap().clone();
    assert_eq!(events.len(), 1, "delivered before the handler returned: {events:?}");
    assert!(!events[0].to_string().contains("123-45-6789"), "{}", events[0]);

    // A webhook that refuses connections: after the retries, the event is in the SQS DLQ.
    let dlq = create_queue("warden-events-dlq").await;
    drain(&dlq).await;
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap();
    let app = local_app(&[
        ("WEBHOOK_URL", format!("http://{closed}/hook")),
        ("WEBHOOK_MAX_RETRIES", "1".into()),
        ("WEBHOOK_BACKOFF_BASE_MS", "10".into()),
        ("WARDEN_DLQ_QUEUE_URL", dlq.clone()),
    ])
    .await;
    app.handle(json!({"action": "evaluate", "payload": {"message": "hello"}}), &inv).await.unwrap();
    let lines = drain(&dlq).await;
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].to_string().contains("decision"), "{}", lines[0]);
}

async fn put(bucket: &str, key: &str, body: &[u8], content_type: &str) {
    aws().put_object(bucket, key, body.to_vec(), Some(content_type), &[]).await.unwrap();
}

/// An object's body and `x-amz-meta-*` metadata; `None` when absent.
async fn get(bucket: &str, key: &str) -> Option<(String, Value)> {
    let object = aws().get_object(bucket, key, 1 << 20).await.unwrap()?;
    let meta: serde_json::Map<String, Value> = object.metadata.into_iter().map(|(k, v)| (k, json!(v))).collect();
    Some((String::from_utf8(object.bytes).unwrap(), Value::Object(meta)))
}

#[tokio::test]
#[ignore = "needs cargo lambda watch and moto: scripts/test-aws"]
async fn s3_three_outcomes_metadata_deletion_and_redelivery() {
    let run = std::process::id();
    let src = format!("docs-{run}");
    for b in [src.clone(), format!("{src}-quarantine"), format!("{src}-processed"), format!("{src}-approved")] {
        create_bucket(&b).await;
    }
    put(&src, "in/clean note.txt", b"The meeting is at noon.", "text/plain").await;
    put(&src, "in/ssn.txt", b"Employee SSN: 123-45-6789", "text/plain").await;
    put(&src, "in/card.json", br#"{"card": "4111 1111 1111 1111", "note": "pay"}"#, "application/json").await;
    put(&src, "in/broken.json", b"{not json", "application/json").await;
    let event = s3_event(&[
        (&src, "in/clean+note.txt"),
        (&src, "in/ssn.txt"),
        (&src, "in/card.json"),
        (&src, "in/broken.json"),
    ]);
    let answer = invoke(&event).await;
    let results = answer["results"].as_array().unwrap_or_else(|| panic!("{answer}"));
    assert_eq!(results.len(), 4, "{answer}");
    assert!(results.iter().all(|r| r["status"] == "moved"), "{answer}");
    let dispositions: Vec<&str> = results.iter().map(|r| r["disposition"].as_str().unwrap()).collect();
    assert_eq!(dispositions[0], "approve");
    assert_eq!(dispositions[3], "quarantine", "invalid JSON declared as JSON is quarantined");
    for (i, key) in ["in/clean note.txt", "in/ssn.txt", "in/card.json", "in/broken.json"].iter().enumerate() {
        let dest = results[i]["destination"].as_str().unwrap();
        let (body, meta) = get(dest, key).await.unwrap_or_else(|| panic!("{key} not in {dest}"));
        assert_eq!(meta["warden-decision"], results[i]["decision"], "{key}: {meta}");
        assert!(meta["warden-policy-id"].is_string() && meta.get("warden-reasons").is_some(), "{key}: {meta}");
        assert!(get(&src, key).await.is_none(), "{key}: source deleted after the write");
        if dispositions[i] == "modify" {
            assert!(!body.contains("123-45-6789") && !body.contains("4111 1111"), "{key} redacted: {body}");
        }
    }
    assert_eq!(results[0]["destination"], format!("{src}-approved"));
    assert!(
        dispositions[1] != "approve" && dispositions[2] != "approve",
        "PII is never approved unchanged: {dispositions:?}"
    );
    // Binary content is governed by its metadata; content over WARDEN_DOCUMENT_LIMIT (64 KiB
    // in the test function) is quarantined unread, copied byte for byte.
    let png: Vec<u8> = [0x89, b'P', b'N', b'G', 0xff, 0xfe, 0x00].iter().copied().cycle().take(4096).collect();
    aws().put_object(&src, "img/photo.png", png.clone(), Some("image/png"), &[]).await.unwrap();
    let huge: Vec<u8> = b"plain text, no PII. ".iter().copied().cycle().take(100_000).collect();
    put(&src, "big/log.txt", &huge, "text/plain").await;
    let answer = invoke(&s3_event(&[(&src, "img/photo.png"), (&src, "big/log.txt")])).await;
    let more = answer["results"].as_array().unwrap_or_else(|| panic!("{answer}"));
    assert_eq!(more[0]["disposition"], "approve", "{answer}");
    assert_eq!(
        aws().get_object(&format!("{src}-approved"), "img/photo.png", 1 << 20).await.unwrap().unwrap().bytes,
        png
    );
    assert_eq!(more[1]["disposition"], "quarantine", "{answer}");
    assert_eq!(more[1]["reasons"], json!(["error:payload_too_large"]));
    let copied = aws().get_object(&format!("{src}-quarantine"), "big/log.txt", 1 << 20).await.unwrap().unwrap();
    assert_eq!(copied.bytes, huge);
    // Redelivery: the sources are gone, nothing changes, nothing fails.
    let again = invoke(&event).await;
    assert!(again["results"].as_array().unwrap().iter().all(|r| r["status"] == "gone"), "{again}");
    // Redelivery before deletion (a crash between write and delete): same key, same content.
    put(&src, "in/ssn.txt", b"Employee SSN: 123-45-6789", "text/plain").await;
    let first = get(results[1]["destination"].as_str().unwrap(), "in/ssn.txt").await.unwrap();
    invoke(&s3_event(&[(&src, "in/ssn.txt")])).await;
    let second = get(results[1]["destination"].as_str().unwrap(), "in/ssn.txt").await.unwrap();
    assert_eq!(first, second);
}

#[tokio::test]
#[ignore = "needs cargo lambda watch and moto: scripts/test-aws"]
async fn dynamodb_stream_audit_is_written_once() {
    setup().await;
    let run = std::process::id();
    let ids = [format!("ev-{run}-1"), format!("ev-{run}-2"), format!("ev-{run}-3")];
    let event = stream_event(&[
        (
            &ids[0],
            "INSERT",
            json!({"id": {"S": "1"}, "note": {"S": "SSN 123-45-6789"}, "big": {"N": "123456789012345678901234567890"}}),
        ),
        (&ids[1], "MODIFY", json!({"id": {"S": "2"}, "note": {"S": "hello"}, "blob": {"B": "AAE="}})),
        (&ids[2], "INSERT", json!({"id": {"BAD": "x"}})),
    ]);
    assert_eq!(invoke(&event).await, json!({"batchItemFailures": []}));
    let get_audit = |id: String| async move {
        let body = json!({"TableName": "warden-audit", "Key": {"event_id": {"S": id}}, "ConsistentRead": true});
        aws().json("dynamodb", "DynamoDB_20120810.GetItem", &body).await.unwrap()["Item"].clone()
    };
    let first = get_audit(ids[0].clone()).await;
    assert_ne!(first["decision"]["S"], "allow", "{first}");
    assert!(!first.to_string().contains("123-45-6789"), "no raw PII in the audit record: {first}");
    assert_eq!(get_audit(ids[1].clone()).await["decision"]["S"], "allow");
    let bad = get_audit(ids[2].clone()).await;
    assert!(bad["error"]["M"]["message"]["S"].as_str().unwrap().contains("BAD"), "{bad}");
    // A retried batch writes nothing twice: the record keeps its first timestamp.
    assert_eq!(invoke(&event).await, json!({"batchItemFailures": []}));
    assert_eq!(get_audit(ids[0].clone()).await["ts_unix_ms"], first["ts_unix_ms"]);
}

#[tokio::test]
#[ignore = "needs moto: scripts/test-aws"]
async fn dynamodb_budget_never_overspends_under_200_concurrent_checks() {
    setup().await;
    let user = format!("user-{}", std::process::id());
    let limit = Money::from_micros(10_000_000);
    let request = |i: usize| SpendRequest {
        user: user.clone(),
        llm: Money::ZERO,
        purchase: Money::from_micros(250_000),
        tool: "buy".into(),
        corr_id: Some(format!("c-{i}")),
        record: true,
    };
    // What one-at-a-time checks record: the reference the concurrent run must match.
    let reference = MemoryBudgetStore::new(limit);
    let mut expected = 0;
    for i in 0..200 {
        expected += usize::from(reference.check_and_spend(request(i), 1_700_000_000).await.unwrap().recorded);
    }
    assert!(expected > 0 && expected < 200);
    let store = Arc::new(DynamoBudgetStore::new(Table::new(aws(), "warden-state"), limit));
    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let store = Arc::clone(&store);
            let req = request(i);
            tokio::spawn(async move { store.check_and_spend(req, 1_700_000_000).await })
        })
        .collect();
    let mut recorded = 0;
    for t in tasks {
        recorded += usize::from(t.await.unwrap().unwrap().recorded);
    }
    let snapshot = store.status(&user, 1_700_000_000).await.unwrap();
    assert_eq!(recorded, expected, "exactly as many spends as sequential checks allow");
    assert_eq!(snapshot.purchase_spend, Money::from_micros(250_000 * i64::try_from(expected).unwrap()));
    assert!(snapshot.current() <= limit);
    assert_eq!(
        store.transactions(&user, 1000).await.unwrap().len(),
        expected.min(warden_aws::dynamo::ROW_TRANSACTIONS)
    );
}

#[tokio::test]
#[ignore = "needs moto: scripts/test-aws"]
async fn dynamodb_dedupe_claims_once() {
    setup().await;
    let dedupe = DynamoDedupe::new(Table::new(aws(), "warden-state"));
    let id = format!("m-{}", std::process::id());
    let ttl = std::time::Duration::from_secs(60);
    assert_eq!(dedupe.claim(&id, ttl, 1_000).await.unwrap(), Seen::New);
    assert_eq!(dedupe.claim(&id, ttl, 2_000).await.unwrap(), Seen::Pending);
    dedupe.complete(&id, &json!({"decision": "allow"}), ttl, 3_000).await.unwrap();
    assert_eq!(dedupe.claim(&id, ttl, 4_000).await.unwrap(), Seen::Done(json!({"decision": "allow"})));
    dedupe.release(&id).await.unwrap();
    assert_eq!(dedupe.claim(&id, ttl, 5_000).await.unwrap(), Seen::New);
    // An expired claim (its instance died) is taken over.
    assert_eq!(dedupe.claim(&id, ttl, 5_000 + 61_000).await.unwrap(), Seen::New);
}

#[tokio::test]
#[ignore = "needs cargo lambda watch and moto: scripts/test-aws"]
async fn malformed_events_through_the_runtime() {
    for event in [
        json!(null),
        json!({"Records": [{"eventSource": "aws:kinesis"}]}),
        json!({"Records": [{"eventSource": "aws:s3", "eventName": "ObjectRemoved:Delete"}]}),
        json!({"type": "TOKEN"}),
        json!({"httpMethod": "POST", "path": "/", "requestContext": {"stage": ["x"]}}),
    ] {
        let answer = invoke(&event).await;
        let clear = answer["error"]["message"].is_string() || answer["results"][0]["error"]["message"].is_string();
        assert!(clear || answer["statusCode"].is_number(), "{event} → {answer}");
    }
    let answer = invoke(&json!({"Records": [{"eventSource": "aws:sqs", "messageId": "x", "body": "\u{0}"}]})).await;
    assert_eq!(answer, json!({"batchItemFailures": []}));
    let answer =
        invoke(&json!({"Records": [{"eventSource": "aws:dynamodb", "eventID": "z", "eventName": "INSERT"}]})).await;
    assert_eq!(answer, json!({"batchItemFailures": []}));
}

/// The function whose Function URL streams (`WARDEN_FUNCTION_URL_STREAMING=true`).
fn streaming() -> String {
    var("WARDEN_AWS_LAMBDA_STREAMING")
}

fn url(path: &str) -> String {
    format!("{}/lambda-url/{}{path}", streaming(), var("WARDEN_AWS_FUNCTION"))
}

/// A streamed answer: its chunks with their arrival times (ms since the request was sent).
struct Streamed {
    status: u16,
    content_type: String,
    mode: Option<String>,
    chunks: Vec<(f64, Vec<u8>)>,
}

impl Streamed {
    fn body(&self) -> String {
        String::from_utf8(self.chunks.iter().flat_map(|(_, c)| c.clone()).collect()).unwrap()
    }
}

async fn post_stream(path: &str, body: String) -> Streamed {
    let t0 = std::time::Instant::now();
    let mut resp =
        reqwest::Client::new().post(url(path)).header("content-type", "text/plain").body(body).send().await.unwrap();
    let header = |name: &str| resp.headers().get(name).map(|v| v.to_str().unwrap().to_owned());
    let (content_type, mode) =
        (header("content-type").unwrap_or_default(), header("lambda-runtime-function-response-mode"));
    let status = resp.status().as_u16();
    let mut chunks = Vec::new();
    while let Some(chunk) = resp.chunk().await.unwrap() {
        chunks.push((t0.elapsed().as_secs_f64() * 1000.0, chunk.to_vec()));
    }
    Streamed { status, content_type, mode, chunks }
}

/// `POST /api/v1/postcheck` through the same (streaming) Function URL: the one-shot answer.
async fn one_shot_url(request: &Value) -> Value {
    let resp = reqwest::Client::new().post(url("/api/v1/postcheck")).json(request).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    resp.json().await.unwrap()
}

/// The governed texts (per choice/block/line stream) and the final record of a stream's body.
fn governed(format: &str, body: &str) -> (String, Value) {
    let mut text = String::new();
    let mut record = Value::Null;
    if format == "text" || format == "ndjson" {
        for line in body.lines() {
            let v: Value = serde_json::from_str(line).unwrap();
            if let Some(r) = v.get("warden") {
                record = r.clone();
            } else if let Some(t) = v["text"].as_str().or_else(|| v["message"]["content"].as_str()) {
                text += t;
            }
        }
        return (text, record);
    }
    for event in body.trim_end().split("\n\n") {
        if let Some(data) = event.strip_prefix("event: warden\ndata: ") {
            record = serde_json::from_str(data).unwrap();
            continue;
        }
        let data = event.lines().find_map(|l| l.strip_prefix("data: ")).unwrap_or("[DONE]");
        if data == "[DONE]" {
            continue;
        }
        let v: Value = serde_json::from_str(data).unwrap();
        let piece = if format == "openai" { &v["choices"][0]["delta"]["content"] } else { &v["delta"]["text"] };
        text += piece.as_str().unwrap_or_default();
    }
    (text, record)
}

/// `answer` in `format`, cut into 7-byte deltas (split inside values and characters alike).
fn framed(format: &str, answer: &str) -> String {
    let bytes = answer.as_bytes();
    let mut pieces = Vec::new();
    let mut start = 0;
    while start < bytes.len() {
        let mut end = (start + 7).min(bytes.len());
        while !answer.is_char_boundary(end) {
            end += 1;
        }
        pieces.push(&answer[start..end]);
        start = end;
    }
    let mut out = String::new();
    match format {
        "text" => out += answer,
        "ndjson" => {
            for p in pieces {
                out += &format!("{}\n", json!({"message": {"content": p}}));
            }
        }
        "openai" => {
            for p in pieces {
                out += &format!("data: {}\n\n", json!({"choices": [{"index": 0, "delta": {"content": p}}]}));
            }
            out += "data: [DONE]\n\n";
        }
        _ => {
            out += "event: message_start\ndata: {\"type\":\"message_start\"}\n\n";
            out += "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n";
            for p in pieces {
                let d = json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": p}});
                out += &format!("event: content_block_delta\ndata: {d}\n\n");
            }
            out += "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n";
            out += "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";
        }
    }
    out
}

#[tokio::test]
#[ignore = "needs cargo lambda watch: scripts/test-aws"]
async fn function_url_streams_every_format_equal_to_one_shot() {
    let answer = "Sure. Mail alice@example.com, call +44 20 7946 0958, card 4111 1111 1111 1111. Grüße 👋\n".repeat(60);
    for (format, content_type) in [
        ("text", "application/x-ndjson"),
        ("ndjson", "application/x-ndjson"),
        ("openai", "text/event-stream"),
        ("anthropic", "text/event-stream"),
    ] {
        let got =
            post_stream(&format!("/api/v1/postcheck/stream?tool=web.chat&format={format}"), framed(format, &answer))
                .await;
        assert_eq!(got.status, 200, "{format}: {}", got.body());
        // cargo lambda sets this only when the runtime answered in Lambda's streaming mode.
        assert_eq!(got.mode.as_deref(), Some("streaming"), "{format}");
        assert_eq!(got.content_type, content_type, "{format}");
        let (text, record) = governed(format, &got.body());
        let want = one_shot_url(&json!({"tool": "web.chat", "raw_text": answer})).await;
        assert_eq!(text, want["raw_text_out"].as_str().unwrap(), "{format}");
        assert_eq!((&record["decision"], &record["reasons"]), (&want["decision"], &want["reasons"]), "{format}");
        assert!(!got.body().contains("alice@example.com"), "{format}");
        if format == "openai" {
            assert!(got.body().ends_with("data: [DONE]\n\n"));
        }
    }
}

#[tokio::test]
#[ignore = "needs cargo lambda watch: scripts/test-aws"]
async fn function_url_stream_sends_governed_bytes_before_the_end() {
    // 640 KB in one request body: the function hands it to the stream in 8 KiB pieces, so the
    // answer leaves in many chunks, the first long before the record.
    let line = "Reach alice@example.com or +44 20 7946 0958; card 4111 1111 1111 1111. Grüße 👋\n";
    let text = line.repeat(8000);
    let got = post_stream("/api/v1/postcheck/stream?tool=web.chat", text.clone()).await;
    assert_eq!((got.status, got.mode.as_deref()), (200, Some("streaming")));
    let (first, last) = (got.chunks[0].0, got.chunks[got.chunks.len() - 1].0);
    println!("lambda stream: {} chunks, first at {first:.1} ms, last at {last:.1} ms", got.chunks.len());
    assert!(got.chunks.len() > 10, "{} chunks", got.chunks.len());
    assert!(!String::from_utf8_lossy(&got.chunks[0].1).contains("\"warden\""), "the first chunk is governed text");
    assert!(first < last, "first {first} ms, last {last} ms");
    let (out, record) = governed("text", &got.body());
    let want = one_shot_url(&json!({"tool": "web.chat", "raw_text": text})).await;
    assert_eq!(out, want["raw_text_out"].as_str().unwrap());
    assert_eq!(record["pii_counts"]["email_address"], 8000);
}

#[tokio::test]
#[ignore = "needs cargo lambda watch: scripts/test-aws"]
async fn function_url_stream_applies_a_request_policy_and_its_deny_ends_with_the_record() {
    let policy = json!({"version": "v1", "tool_access": {"crm.chat": {"direction": "egress", "action": "redact",
        "allow_pii": {"PII:email_address": "tokenize", "PII:us_ssn": "deny"}}}});
    let encoded =
        percent_encoding::utf8_percent_encode(&policy.to_string(), percent_encoding::NON_ALPHANUMERIC).to_string();
    let path = format!("/api/v1/postcheck/stream?tool=crm.chat&format=openai&policy_config={encoded}");
    let ok = "Write to alice@example.com please. ".repeat(30);
    let got = post_stream(&path, framed("openai", &ok)).await;
    let (text, record) = governed("openai", &got.body());
    let want = one_shot_url(&json!({"tool": "crm.chat", "raw_text": ok, "policy_config": policy})).await;
    assert_eq!(text, want["raw_text_out"].as_str().unwrap());
    assert!(text.contains("pii_"), "{text}");
    assert_eq!(record["decision"], want["decision"]);

    let denied = format!("{}SSN 123-45-6789 {}", "fine words here ".repeat(60), "more ".repeat(200));
    let got = post_stream(&path, framed("openai", &denied)).await;
    let body = got.body();
    let want = one_shot_url(&json!({"tool": "crm.chat", "raw_text": denied, "policy_config": policy})).await;
    assert_eq!(want["decision"], "deny");
    let last = body.trim_end().rsplit("\n\n").next().unwrap();
    let record: Value = serde_json::from_str(last.strip_prefix("event: warden\ndata: ").unwrap()).unwrap();
    assert_eq!((&record["decision"], &record["reasons"]), (&want["decision"], &want["reasons"]));
    assert!(!body.contains("123-45-6789") && !body.contains("[DONE]"), "{body}");
}

#[tokio::test]
#[ignore = "needs cargo lambda watch: scripts/test-aws"]
async fn a_streaming_function_url_serves_every_route_and_other_origins_stay_buffered() {
    // The conformance corpus through the streaming URL (a RESPONSE_STREAM URL streams every
    // answer, one-shot routes included).
    let mut checked = 0;
    for (_, case) in load_all().unwrap() {
        if case.env.contains_key("ON_ERROR") {
            continue;
        }
        let resp = reqwest::Client::new()
            .post(url(&format!("/api/v1/{}", case.endpoint)))
            .json(&case.request)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.headers()["lambda-runtime-function-response-mode"], "streaming");
        assert_eq!(resp.status(), 200, "{}", case.name);
        compare(&case, &resp.json::<Value>().await.unwrap()).unwrap();
        checked += 1;
    }
    assert!(checked >= 50, "{checked}");
    // A Function URL event invoked directly is streamed too (cargo lambda strips the prelude).
    let mut event = http_event(Origin::FunctionUrl, "POST", "/api/v1/postcheck/stream", None, &[]);
    event["rawQueryString"] = json!("tool=web.chat");
    event["body"] = json!("mail alice@example.com");
    event["headers"]["content-type"] = json!("text/plain");
    let at = format!("{}/2015-03-31/functions/{}/invocations", streaming(), var("WARDEN_AWS_FUNCTION"));
    let resp = reqwest::Client::new().post(&at).json(&event).send().await.unwrap();
    assert_eq!(resp.headers()["lambda-runtime-function-response-mode"], "streaming");
    let (text, record) = governed("text", &resp.text().await.unwrap());
    assert_eq!((text.as_str(), record["decision"].as_str()), ("mail <USER_EMAIL>", Some("transform")));
    // An HTTP API event (payload 2.0 as well, invoked buffered) stays buffered: 501 there.
    let mut event = http_event(Origin::HttpV2, "POST", "/api/v1/postcheck/stream", Some(&json!({})), &[]);
    event["rawQueryString"] = json!("tool=web.chat");
    let (status, body) = http_answer(&invoke_at(&streaming(), &event).await);
    assert_eq!(status, 501, "{body}");
    // And every other event shape is answered as before.
    let answer = invoke_at(&streaming(), &json!({"action": "evaluate", "payload": {"m": "a@b.co"}})).await;
    assert!(answer["decision"].is_string(), "{answer}");
}
