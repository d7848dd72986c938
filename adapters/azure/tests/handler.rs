//! The handler on the payload shapes the Functions host documents and sends (see
//! `src/payload.rs` for the sources), and the shipped `azure/` assets against the handler's
//! function and binding names.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use axum::body::Body;
use axum::extract::ConnectInfo;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::path::Path;
use tower::ServiceExt;
use warden_azure::payload::encode_base64;
use warden_azure::{bindings, Handler, BLOB_FUNCTION, HTTP_FUNCTION, QUEUE_FUNCTION};
use warden_service::native::{assemble, Platform};
use warden_service::settings::Settings;

fn app_dir() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../azure"))
}

async fn handler(extra: &[(&str, &str)]) -> axum::Router {
    let mut vars: Vec<(String, String)> = vec![
        ("WARDEN_AUDIT".into(), "off".into()),
        ("PII_TOKEN_SALT".into(), "handler-test".into()),
        ("WARDEN_DOCUMENT_LIMIT".into(), "200".into()),
    ];
    vars.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
    let settings = Settings::from_lookup(|k| vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())).unwrap();
    let built = assemble(&settings, &Platform::function("azure-default")).await.unwrap();
    Handler::new(&built).app()
}

async fn call(app: &axum::Router, method: &str, path: &str, body: Vec<u8>) -> (u16, Value) {
    let mut req = http::Request::builder()
        .method(method)
        .uri(path)
        .header("x-azure-functions-invocationid", "inv-1")
        .body(Body::from(body))
        .unwrap();
    req.extensions_mut().insert(ConnectInfo(SocketAddr::from(([127, 0, 0, 1], 40000))));
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status().as_u16();
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX).await.unwrap();
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

fn invocation(data: Value, metadata: Value) -> Vec<u8> {
    json!({"Data": data, "Metadata": metadata}).to_string().into_bytes()
}

#[test]
fn shipped_function_json_files_name_the_handlers_bindings() {
    let read = |f: &str| -> Value {
        serde_json::from_str(&std::fs::read_to_string(app_dir().join(f).join("function.json")).unwrap()).unwrap()
    };
    let names = |v: &Value| -> Vec<(String, String, String)> {
        v["bindings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| {
                let s = |k: &str| b[k].as_str().unwrap_or_default().to_owned();
                (s("type"), s("direction"), s("name"))
            })
            .collect()
    };
    let http = read(HTTP_FUNCTION);
    assert_eq!(
        names(&http),
        [("httpTrigger", "in", bindings::HTTP_IN), ("http", "out", bindings::HTTP_OUT)].map(|(a, b, c)| (
            a.to_owned(),
            b.to_owned(),
            c.to_owned()
        ))
    );
    assert_eq!(http["bindings"][0]["route"], "api/{*path}");
    let blob = read(BLOB_FUNCTION);
    assert_eq!(blob["bindings"][0]["path"], "ai-requests/{name}");
    assert_eq!(blob["bindings"][0]["dataType"], "binary");
    let outs: Vec<_> = names(&blob).into_iter().skip(1).map(|(_, _, n)| n).collect();
    assert_eq!(
        outs,
        [bindings::BLOB_RESULTS, bindings::BLOB_APPROVED, bindings::BLOB_PROCESSED, bindings::BLOB_QUARANTINE]
    );
    for b in blob["bindings"].as_array().unwrap().iter().skip(1) {
        // Copies are sent as base64 on purpose: the host decodes them only without dataType binary.
        assert!(b.get("dataType").is_none(), "{b}");
    }
    let queue = read(QUEUE_FUNCTION);
    assert_eq!(queue["bindings"][0]["queueName"], "governance-queue");
    assert_eq!(queue["bindings"][1]["queueName"], "governance-results");
    assert_eq!(
        names(&queue).into_iter().map(|(_, _, n)| n).collect::<Vec<_>>(),
        [bindings::QUEUE_IN, bindings::QUEUE_OUT]
    );
    let host: Value = serde_json::from_str(&std::fs::read_to_string(app_dir().join("host.json")).unwrap()).unwrap();
    assert_eq!(host["extensions"]["http"]["routePrefix"], "");
    assert_eq!(host["customHandler"]["enableForwardingHttpRequest"], true);
    assert_eq!(host["extensions"]["queues"]["maxDequeueCount"], 5);
    let settings: Value =
        serde_json::from_str(&std::fs::read_to_string(app_dir().join("local.settings.json.example")).unwrap()).unwrap();
    assert_eq!(settings["Values"]["WARDEN_REQUEST_POLICY"], "tighten");
    assert_eq!(settings["Values"]["FUNCTIONS_WORKER_RUNTIME"], "custom");
}

#[tokio::test]
async fn http_payload_mode_answers_through_outputs_res() {
    let app = handler(&[]).await;
    let req = json!({
        "Url": "http://localhost:7071/api/v1/precheck",
        "Method": "POST",
        "Query": {},
        "Headers": {"Content-Type": ["application/json"]},
        "Params": {"path": "v1/precheck"},
        "Identities": [],
        "Body": "{\"tool\":\"web.search\",\"raw_text\":\"mail jane@example.com\"}"
    });
    let (status, got) = call(&app, "POST", "/governance", invocation(json!({"req": req}), json!({}))).await;
    assert_eq!(status, 200);
    let res = &got["Outputs"]["res"];
    assert_eq!(res["statusCode"], 200);
    assert_eq!(res["status"], 200);
    assert_eq!(res["headers"]["content-type"], "application/json");
    let body: Value = serde_json::from_str(res["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["decision"], "transform");
    assert_eq!(body["raw_text_out"], "mail <USER_EMAIL>");
    assert!(got["Logs"].is_array() && got.get("ReturnValue").is_some());

    // The guide's path is the invoke envelope; a malformed body is the caller's 400, not a failed invocation.
    let envelope = json!({"Url": "http://h/api/governance", "Method": "POST", "Body": "{\"action\":\"health\"}"});
    let (_, got) = call(&app, "POST", "/governance", invocation(json!({"req": envelope}), json!({}))).await;
    let body: Value = serde_json::from_str(got["Outputs"]["res"]["body"].as_str().unwrap()).unwrap();
    assert_eq!((body["ok"].clone(), body["request_id"].clone()), (json!(true), json!("inv-1")));
    let bad = json!({"Url": "http://h/api/v1/precheck", "Method": "POST", "Body": "{oops"});
    let (status, got) = call(&app, "POST", "/governance", invocation(json!({"req": bad}), json!({}))).await;
    assert_eq!((status, got["Outputs"]["res"]["statusCode"].clone()), (200, json!(400)));
    let (status, got) = call(&app, "POST", "/governance", b"not an invocation".to_vec()).await;
    assert_eq!((status, got["Outputs"]["res"]["statusCode"].clone()), (200, json!(400)));
}

#[tokio::test]
async fn forwarded_requests_reach_every_route() {
    let app = handler(&[]).await;
    let (status, got) = call(&app, "GET", "/api/v1/health", Vec::new()).await;
    assert_eq!((status, got["ok"].clone()), (200, json!(true)));
    let (status, got) = call(&app, "POST", "/api/governance", br#"{"action":"redact","text":"a@b.co"}"#.to_vec()).await;
    assert_eq!((status, got["redacted"].clone()), (200, json!("<USER_EMAIL>")));
    let (status, _) = call(&app, "POST", "/api/v1/nothing", b"{}".to_vec()).await;
    assert_eq!(status, 404);
    // The host buffers responses: the streaming postcheck answers 501 naming the route to use.
    let (status, got) = call(&app, "POST", "/api/v1/postcheck/stream?tool=t", b"hi".to_vec()).await;
    assert_eq!((status, got["error"]["code"].clone()), (501, json!("not_implemented")));
    assert!(got["error"]["message"].as_str().unwrap().contains("POST /api/v1/postcheck"), "{got}");
}

#[tokio::test]
async fn queue_messages_in_every_documented_encoding() {
    let app = handler(&[]).await;
    let envelope = r#"{"action":"precheck","tool":"t","raw_text":"call 555-123-4567"}"#;
    // A string message: JSON-encoded once by the host.
    let data = json!({"msg": serde_json::to_string(envelope).unwrap()});
    let (status, got) =
        call(&app, "POST", "/governance-queue", invocation(data, json!({"Id": "\"m-1\"", "DequeueCount": "1"}))).await;
    assert_eq!(status, 200);
    let result = &got["Outputs"]["result"];
    assert!(result.is_object(), "results are JSON objects, never bare strings: {got}");
    assert_eq!(result["request_id"], "m-1");
    assert!(result["decision"].is_string());
    // The same Id again: answered once, nothing published.
    let data = json!({"msg": serde_json::to_string(envelope).unwrap()});
    let (status, got) =
        call(&app, "POST", "/governance-queue", invocation(data, json!({"Id": "\"m-1\"", "DequeueCount": "2"}))).await;
    assert_eq!((status, got["Outputs"].clone()), (200, json!({})));
    // An object stays an object; a bare payload is evaluated as queue-default's.
    let data = json!({"msg": {"note": "x@example.com"}});
    let (_, got) = call(&app, "POST", "/governance-queue", invocation(data, json!({"Id": "m-2"}))).await;
    assert_eq!(got["Outputs"]["result"]["decision"], "transform");
    // Malformed: an error result, 200 (acknowledged, not poisoned).
    for (i, msg) in [json!("\"not json\""), json!("[1]"), json!(null)].into_iter().enumerate() {
        let meta = json!({"Id": format!("bad-{i}")});
        let (status, got) = call(&app, "POST", "/governance-queue", invocation(json!({"msg": msg}), meta)).await;
        assert_eq!(status, 200, "{got}");
        assert!(got["Outputs"]["result"]["error"]["code"].is_string(), "{got}");
        assert_eq!(got["Outputs"]["result"]["request_id"], format!("bad-{i}"));
    }
    let (status, got) = call(&app, "POST", "/governance-queue", b"{\"Data\":".to_vec()).await;
    assert_eq!((status, got["Outputs"]["result"]["error"]["code"].clone()), (200, json!("invalid_request")));
}

#[tokio::test]
async fn blobs_batches_documents_and_the_limit() {
    let app = handler(&[]).await;
    let meta = |name: &str, ctype: &str| json!({"name": serde_json::to_string(name).unwrap(), "Properties": {"ContentType": ctype, "ETag": "\"0x1\""}});
    let batch = br#"[{"id":"r1","payload":{"m":"a@b.co"}},{"id":"r2","action":"nope"}]"#;
    let data = json!({"blob": encode_base64(batch)});
    let (status, got) =
        call(&app, "POST", "/governance-blob", invocation(data, meta("b.json", "application/json"))).await;
    assert_eq!(status, 200);
    let results = &got["Outputs"]["results"];
    assert_eq!(results["kind"], "batch");
    assert_eq!(results["results"][0]["id"], "r1");
    assert_eq!(results["results"][0]["decision"], "transform");
    assert_eq!(results["results"][1]["ok"], false);
    assert_eq!(results["summary"]["error"], 1);
    assert!(got["Outputs"].get("quarantine").is_none());

    // A text document with PII: the redacted copy, base64 (the host decodes it to bytes).
    let data = json!({"blob": encode_base64(b"mail a@b.co")});
    let (_, got) = call(&app, "POST", "/governance-blob", invocation(data, meta("n.txt", "text/plain"))).await;
    let copy = warden_azure::payload::decode_base64(got["Outputs"]["processed"].as_str().unwrap()).unwrap();
    assert_eq!(copy, b"mail <USER_EMAIL>");
    assert_eq!(got["Outputs"]["results"]["disposition"], "modify");
    assert_eq!(got["Outputs"]["results"]["destination"], "ai-processed/n.txt");

    // Over WARDEN_DOCUMENT_LIMIT (200 here): quarantined unread, the exact bytes kept.
    let big = vec![b'z'; 300];
    let data = json!({"blob": encode_base64(&big)});
    let (_, got) = call(&app, "POST", "/governance-blob", invocation(data, meta("big.bin", ""))).await;
    assert_eq!(got["Outputs"]["quarantine"], encode_base64(&big));
    assert_eq!(got["Outputs"]["results"]["reasons"], json!(["error:payload_too_large"]));

    // Not base64 at all: an error record, acknowledged.
    let data = json!({"blob": "%%%"});
    let (status, got) = call(&app, "POST", "/governance-blob", invocation(data, meta("x", ""))).await;
    assert_eq!((status, got["Outputs"]["results"]["error"]["code"].clone()), (200, json!("invalid_request")));
}
