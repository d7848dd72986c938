//! Every event shape through the function in process (no Lambda runtime, no AWS): the
//! fixtures of `aws_lambda_events`, the conformance corpus over every HTTP origin, direct
//! invokes, batches, SQS, DynamoDB streams, authorizers and malformed events.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use common::*;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use warden_aws::{App, Invocation};
use warden_tests::{compare, corpus_dir, load_all};

async fn app(env: &[(&str, &str)]) -> App {
    let env: BTreeMap<String, String> = env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    warden_aws::config::build(move |k| env.get(k).cloned().or_else(|| (k == "WARDEN_AUDIT").then(|| "off".into())))
        .await
        .unwrap()
}

fn inv(id: &str) -> Invocation {
    Invocation { request_id: id.to_owned(), deadline_ms: 0 }
}

async fn call(app: &App, event: Value) -> Value {
    app.handle(event, &inv("req-1")).await.unwrap()
}

#[tokio::test]
async fn conformance_cases_over_every_http_origin() {
    let mut groups: BTreeMap<String, Vec<warden_tests::Case>> = BTreeMap::new();
    for (_, case) in load_all().unwrap() {
        groups.entry(serde_json::to_string(&case.env).unwrap()).or_default().push(case);
    }
    let mut failures = Vec::new();
    let mut checked = 0;
    for cases in groups.values() {
        let mut env: Vec<(String, String)> = cases[0].env.clone().into_iter().collect();
        for (k, v) in &mut env {
            if k == "POLICY_FILE" {
                *v = corpus_dir().join(&*v).display().to_string();
            }
        }
        env.push(("WARDEN_EMF".into(), "false".into()));
        env.push(("WARDEN_AUDIT".into(), "off".into()));
        // Every case comes from the same address: the default limit would cut the corpus off.
        env.push(("RATE_LIMIT_PER_MINUTE".into(), "0".into()));
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let app = app(&env).await;
        for case in cases {
            for origin in ORIGINS {
                let path = format!("/api/v1/{}", case.endpoint);
                let resp = call(&app, http_event(origin, "POST", &path, Some(&case.request), &[])).await;
                let (status, body) = http_answer(&resp);
                checked += 1;
                if status != 200 {
                    failures.push(format!("{origin:?} {}: status {status}: {body}", case.name));
                } else if let Err(e) = compare(case, &body) {
                    failures.push(format!("{origin:?} {e}"));
                }
            }
        }
    }
    assert!(checked >= 4 * 40, "{checked} checks");
    assert!(failures.is_empty(), "{} failures:\n{}", failures.len(), failures.join("\n"));
}

#[tokio::test]
async fn http_routes_stage_prefix_cors_and_request_id() {
    let app = app(&[("WARDEN_CORS_ORIGINS", "https://app.example"), ("WARDEN_EMF", "false")]).await;
    for origin in ORIGINS {
        let resp = call(&app, http_event(origin, "GET", "/api/v1/health", None, &[])).await;
        assert_eq!(http_answer(&resp).0, 200, "{origin:?} health: {resp}");
        let body = json!({"action": "evaluate", "payload": {"message": "My SSN is 123-45-6789"}});
        let resp = call(&app, http_event(origin, "POST", "/", Some(&body), &[("origin", "https://app.example")])).await;
        let (status, answer) = http_answer(&resp);
        assert_eq!(status, 200, "{origin:?}: {resp}");
        assert_eq!(answer["request_id"], "req-1", "{origin:?}");
        assert!(answer["decision"].is_string(), "{origin:?}: {answer}");
        let cors = resp["headers"]["access-control-allow-origin"]
            .as_str()
            .or_else(|| resp["multiValueHeaders"]["access-control-allow-origin"][0].as_str());
        assert_eq!(cors, Some("https://app.example"), "{origin:?}: {resp}");
        let resp = call(&app, http_event(origin, "POST", "/api/v1/nope", Some(&json!({})), &[])).await;
        assert_eq!(http_answer(&resp).0, 404, "{origin:?}");
        // Buffered lambda_http cannot stream: the streaming postcheck answers 501 naming the route to use.
        let stream = http_event(origin, "POST", "/api/v1/postcheck/stream?tool=t", Some(&json!({})), &[]);
        let resp = call(&app, stream).await;
        let (status, body) = (http_answer(&resp).0, resp.to_string());
        assert_eq!(status, 501, "{origin:?}: {resp}");
        assert!(body.contains("not_implemented") && body.contains("/api/v1/postcheck"), "{body}");
    }
}

#[tokio::test]
async fn http_rate_limit_keys_on_the_request_context_address() {
    let app = app(&[("RATE_LIMIT_PER_MINUTE", "2"), ("WARDEN_EMF", "false")]).await;
    let body = json!({"tool": "t", "raw_text": "hi"});
    let mut statuses = Vec::new();
    for _ in 0..3 {
        let resp = call(&app, http_event(Origin::HttpV2, "POST", "/api/v1/precheck", Some(&body), &[])).await;
        statuses.push(http_answer(&resp).0);
    }
    assert_eq!(statuses, [200, 200, 429]);
    // Another address (the REST fixture's) has its own window.
    let resp = call(&app, http_event(Origin::RestV1, "POST", "/api/v1/precheck", Some(&body), &[])).await;
    assert_eq!(http_answer(&resp).0, 200);
}

#[tokio::test]
async fn direct_invoke_and_batch() {
    let app = app(&[("WARDEN_EMF", "false")]).await;
    let answer = call(&app, json!({"action": "evaluate", "payload": {"message": "My SSN is 123-45-6789"}})).await;
    assert_eq!(answer["request_id"], "req-1");
    assert_ne!(answer["decision"], "allow", "{answer}");
    assert!(!answer.to_string().contains("123-45-6789"), "{answer}");
    let err = call(&app, json!({"action": "launch"})).await;
    assert!(err["error"]["code"].is_string(), "{err}");
    assert_eq!(err["request_id"], "req-1");
    let err = call(&app, json!("just text")).await;
    assert!(err["error"].is_object(), "{err}");
    let batch = call(
        &app,
        json!({"requests": [
            {"tool": "t", "raw_text": "hello"},
            {"tool": "t", "raw_text": "SSN 123-45-6789"},
        ]}),
    )
    .await;
    assert_eq!(batch["results"].as_array().map(Vec::len), Some(2), "{batch}");
}

#[tokio::test]
async fn sqs_partial_batch_rejects_without_retry_and_dedupes() {
    let app = app(&[("WARDEN_EMF", "false")]).await;
    let good = json!({"action": "evaluate", "payload": {"message": "hello"}}).to_string();
    let event = sqs_event(&[("m-1", &good), ("m-2", "not json"), ("m-1", &good)]);
    let answer = call(&app, event).await;
    assert_eq!(answer, json!({"batchItemFailures": []}));
    let answer = call(&app, json!({"Records": [{"eventSource": "aws:sqs", "messageId": "m-3"}]})).await;
    assert_eq!(answer, json!({"batchItemFailures": []}), "a record without a body is rejected, not retried");
    let answer = call(&app, json!({"Records": [{"eventSource": "aws:sqs"}]})).await;
    assert_eq!(answer, json!({"batchItemFailures": []}));
}

#[tokio::test]
async fn dynamodb_stream_governs_new_images() {
    let app = app(&[("WARDEN_EMF", "false")]).await;
    let event = stream_event(&[
        (
            "e-1",
            "INSERT",
            json!({"id": {"S": "1"}, "note": {"S": "call me at 555-123-4567, SSN 123-45-6789"}, "blob": {"B": "AAE="}}),
        ),
        ("e-2", "MODIFY", json!({"id": {"S": "2"}, "note": {"S": "hello"}})),
        ("e-3", "REMOVE", json!({})),
        ("e-4", "INSERT", json!({"id": {"Q": "?"}})),
    ]);
    assert_eq!(call(&app, event.clone()).await, json!({"batchItemFailures": []}));
    let records = event["Records"].as_array().unwrap();
    let audit = warden_aws::stream::govern(&app, &records[0]).unwrap().unwrap();
    assert_eq!(audit["event_id"], "e-1");
    assert_eq!(audit["table"], "Messages");
    assert_ne!(audit["decision"], "allow", "{audit}");
    let approved = warden_aws::stream::govern(&app, &records[1]).unwrap().unwrap();
    assert_eq!(approved["decision"], "allow");
    assert!(warden_aws::stream::govern(&app, &records[2]).unwrap().is_none());
    assert!(warden_aws::stream::govern(&app, &records[3]).unwrap_err().contains("unknown attribute type"));
    // The library's own fixture (binary keys included) is governed without error.
    assert_eq!(call(&app, fixture("example-dynamodb-event.json")).await, json!({"batchItemFailures": []}));
}

#[tokio::test]
async fn authorizers_check_key_rate_and_tool() {
    let app = app(&[
        ("WARDEN_API_KEYS", "k-good"),
        ("PII_TOKEN_SALT", "s"),
        ("RATE_LIMIT_PER_MINUTE", "2"),
        ("WARDEN_EMF", "false"),
    ])
    .await;
    let mut token = fixture("example-apigw-custom-auth-request.json");
    token["authorizationToken"] = json!("k-good");
    let allow = call(&app, token.clone()).await;
    assert_eq!(allow["policyDocument"]["Statement"][0]["Effect"], "Allow", "{allow}");
    assert_eq!(allow["policyDocument"]["Statement"][0]["Resource"], token["methodArn"]);
    assert!(!allow.to_string().contains("k-good"), "the key never appears in the answer");
    token["authorizationToken"] = json!("k-bad");
    assert_eq!(call(&app, token.clone()).await["policyDocument"]["Statement"][0]["Effect"], "Deny");
    token["authorizationToken"] = json!("");
    assert_eq!(app.handle(token, &inv("r")).await.unwrap_err(), "Unauthorized");

    let mut request = fixture("example-apigw-custom-auth-request-type-request.json");
    request["headers"]["X-Governs-Key"] = json!("k-good");
    request["headers"]["X-Warden-Tool"] = json!("bash.exec");
    let denied = call(&app, request.clone()).await;
    assert_eq!(denied["policyDocument"]["Statement"][0]["Effect"], "Deny", "{denied}");
    assert_eq!(denied["context"]["reason"], "tool_denied");
    // The token check and this one used the key's two requests of this minute.
    request["headers"]["X-Warden-Tool"] = json!("search");
    let limited = call(&app, request.clone()).await;
    assert_eq!(limited["context"]["reason"], "rate_limited", "{limited}");

    let mut v2 = fixture("example-apigw-v2-custom-authorizer-v2-request.json");
    assert_eq!(app.handle(v2.clone(), &inv("r")).await.unwrap_err(), "Unauthorized");
    v2["headers"]["x-governs-key"] = json!("k-bad");
    assert_eq!(call(&app, v2).await["isAuthorized"], false);
}

#[tokio::test]
async fn malformed_events_get_clear_error_results() {
    let app = app(&[("WARDEN_EMF", "false")]).await;
    let unknown = call(&app, json!({"Records": [{"eventSource": "aws:sns"}]})).await;
    assert!(unknown["error"]["message"].as_str().unwrap().contains("aws:sns"), "{unknown}");
    let s3 = call(&app, json!({"Records": [{"eventSource": "aws:s3", "eventName": "ObjectCreated:Put"}]})).await;
    assert_eq!(s3["results"][0]["status"], "error", "{s3}");
    let s3 = call(&app, s3_event(&[("bucket", "key")])).await;
    assert!(s3["results"][0]["error"]["message"].as_str().unwrap().contains("credentials"), "{s3}");
    let stream = call(&app, json!({"Records": [{"eventSource": "aws:dynamodb", "eventName": "INSERT"}]})).await;
    assert_eq!(stream, json!({"batchItemFailures": []}));
    let http = call(&app, json!({"httpMethod": "POST", "path": "/", "requestContext": {"stage": 5}})).await;
    assert!(http["error"].is_object() || http["statusCode"].is_number(), "{http}");
    for garbage in [json!(null), json!([1, 2]), json!({"Records": "x"}), json!({"type": "TOKEN"})] {
        let answer = call(&app, garbage.clone()).await;
        assert!(answer["error"].is_object(), "{garbage} → {answer}");
    }
}

/// Runs `event` through [`App::respond`]: `Ok((status, content type, chunks))` for a streamed
/// answer, `Err(result)` for a buffered one.
async fn respond(app: &std::sync::Arc<App>, event: Value) -> Result<(u16, String, Vec<Vec<u8>>), Value> {
    use futures_util::StreamExt as _;
    match std::sync::Arc::clone(app).respond(event, inv("req-s")).await.unwrap() {
        lambda_runtime::FunctionResponse::BufferedResponse(v) => Err(v),
        lambda_runtime::FunctionResponse::StreamingResponse(mut r) => {
            let prelude = &r.metadata_prelude;
            let ct = prelude.headers.get("content-type").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
            let status = prelude.status_code.as_u16();
            let mut chunks = Vec::new();
            while let Some(chunk) = r.stream.next().await {
                chunks.push(chunk.unwrap().to_vec());
            }
            Ok((status, ct, chunks))
        }
    }
}

fn url_event(origin: Origin, path: &str, query: &str, body: &str) -> Value {
    let mut event = http_event(origin, "POST", path, None, &[]);
    event["rawQueryString"] = json!(query);
    event["body"] = json!(body);
    event["isBase64Encoded"] = json!(false);
    event["headers"]["content-type"] = json!("text/plain");
    event
}

#[tokio::test]
async fn a_streaming_function_url_streams_and_every_other_origin_stays_buffered() {
    let buffered = std::sync::Arc::new(app(&[("WARDEN_EMF", "false")]).await);
    let app = std::sync::Arc::new(app(&[("WARDEN_FUNCTION_URL_STREAMING", "true"), ("WARDEN_EMF", "false")]).await);
    let text = "Mail alice@example.com, then more words. ".repeat(1000);
    let (status, ct, chunks) =
        respond(&app, url_event(Origin::FunctionUrl, "/api/v1/postcheck/stream", "tool=web.chat", &text))
            .await
            .unwrap();
    assert_eq!((status, ct.as_str()), (200, "application/x-ndjson"));
    // 41 KB handed on in 8 KiB pieces: several chunks of governed text, then the record.
    assert!(chunks.len() > 3, "{} chunks", chunks.len());
    let body = String::from_utf8(chunks.concat()).unwrap();
    let mut out = String::new();
    let mut record = Value::Null;
    for line in body.lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        match v["text"].as_str() {
            Some(t) => out += t,
            None => record = v["warden"].clone(),
        }
    }
    let one = call(
        &app,
        http_event(
            Origin::RestV1,
            "POST",
            "/api/v1/postcheck",
            Some(&json!({"tool": "web.chat", "raw_text": text})),
            &[],
        ),
    )
    .await;
    let (_, want) = http_answer(&one);
    assert_eq!(out, want["raw_text_out"].as_str().unwrap());
    assert_eq!((&record["decision"], &record["reasons"]), (&want["decision"], &want["reasons"]));
    assert_eq!(record["request_id"], "req-s");

    // A one-shot route through the streaming URL: its JSON answer, streamed.
    let mut event =
        http_event(Origin::FunctionUrl, "POST", "/api/v1/precheck", Some(&json!({"tool": "t", "raw_text": "hi"})), &[]);
    event["rawQueryString"] = json!("");
    let (status, ct, chunks) = respond(&app, event).await.unwrap();
    assert_eq!((status, ct.as_str()), (200, "application/json"));
    assert_eq!(serde_json::from_slice::<Value>(&chunks.concat()).unwrap()["decision"], "allow");
    // Errors keep their status in the prelude.
    let (status, _, chunks) =
        respond(&app, url_event(Origin::FunctionUrl, "/api/v1/postcheck/stream", "tool=t&format=xml", "x"))
            .await
            .unwrap();
    assert_eq!(status, 422, "{}", String::from_utf8_lossy(&chunks.concat()));

    // Every other origin (HTTP API is payload 2.0 too) is buffered: 501 on the stream route.
    for origin in [Origin::RestV1, Origin::HttpV2, Origin::Alb] {
        let event = http_event(origin, "POST", "/api/v1/postcheck/stream?tool=t", Some(&json!({})), &[]);
        let resp = respond(&app, event).await.unwrap_err();
        assert_eq!(http_answer(&resp).0, 501, "{origin:?}");
    }
    let answer = respond(&app, json!({"action": "evaluate", "payload": {"m": "a@b.co"}})).await.unwrap_err();
    assert!(answer["decision"].is_string(), "{answer}");

    // Without the setting, a Function URL is buffered as before.
    let resp = respond(&buffered, url_event(Origin::FunctionUrl, "/api/v1/postcheck/stream", "tool=t", "x"))
        .await
        .unwrap_err();
    assert_eq!(http_answer(&resp).0, 501);
}
