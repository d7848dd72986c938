//! Event builders shared by the in-process tests and the `cargo lambda watch` tests: the
//! fixtures of `aws_lambda_events` (tests/fixtures) with the method, path and body replaced.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use base64::Engine as _;
use serde_json::{json, Value};
use std::path::Path;

/// A fixture file.
pub fn fixture(name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name);
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

/// The HTTP origins an API request reaches Lambda through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// API Gateway REST API, stage `prod` in the path.
    RestV1,
    /// HTTP API (payload 2.0), stage `prod` in the raw path, body base64-encoded.
    HttpV2,
    /// Lambda Function URL (payload 2.0, `$default` stage).
    FunctionUrl,
    /// Application Load Balancer.
    Alb,
}

pub const ORIGINS: [Origin; 4] = [Origin::RestV1, Origin::HttpV2, Origin::FunctionUrl, Origin::Alb];

/// An event for `method path` with a JSON `body` (or none) and extra headers.
pub fn http_event(origin: Origin, method: &str, path: &str, body: Option<&Value>, headers: &[(&str, &str)]) -> Value {
    let text = body.map(Value::to_string);
    match origin {
        Origin::RestV1 => {
            let mut e = fixture("example-apigw-request.json");
            e["httpMethod"] = json!(method);
            e["path"] = json!(format!("/prod{path}"));
            e["resource"] = json!("/{proxy+}");
            e["requestContext"]["stage"] = json!("prod");
            e["requestContext"]["httpMethod"] = json!(method);
            e["requestContext"]["identity"]["sourceIp"] = json!("198.51.100.7");
            e["queryStringParameters"] = Value::Null;
            e["multiValueQueryStringParameters"] = Value::Null;
            e["pathParameters"] = Value::Null;
            e["body"] = text.map_or(Value::Null, Value::String);
            e["isBase64Encoded"] = json!(false);
            set_headers(&mut e, headers, true);
            e
        }
        Origin::HttpV2 | Origin::FunctionUrl => {
            let mut e = fixture("example-apigw-v2-request-no-authorizer.json");
            let stage = if origin == Origin::HttpV2 { "prod" } else { "$default" };
            let raw = if origin == Origin::HttpV2 { format!("/prod{path}") } else { path.to_owned() };
            e["rawPath"] = json!(raw);
            e["rawQueryString"] = json!("");
            e["routeKey"] = json!("$default");
            e["requestContext"]["stage"] = json!(stage);
            e["requestContext"]["http"]["method"] = json!(method);
            e["requestContext"]["http"]["path"] = json!(raw);
            e["requestContext"]["http"]["sourceIp"] = json!("198.51.100.8");
            if origin == Origin::FunctionUrl {
                e["requestContext"]["domainName"] = json!("abcdefg.lambda-url.us-east-1.on.aws");
            }
            e["body"] = text.map_or(Value::Null, |t| json!(base64::engine::general_purpose::STANDARD.encode(t)));
            e["isBase64Encoded"] = json!(body.is_some());
            e["headers"]["content-type"] = json!("application/json");
            e["headers"].as_object_mut().unwrap().remove("content-length");
            set_headers(&mut e, headers, false);
            e
        }
        Origin::Alb => {
            let mut e = fixture("example-alb-lambda-target-request-headers-only.json");
            e["httpMethod"] = json!(method);
            e["path"] = json!(path);
            e["queryStringParameters"] = json!({});
            e["body"] = json!(text.unwrap_or_default());
            e["headers"]["content-type"] = json!("application/json");
            set_headers(&mut e, headers, false);
            e
        }
    }
}

fn set_headers(e: &mut Value, headers: &[(&str, &str)], multi: bool) {
    for (k, v) in headers {
        e["headers"][*k] = json!(v);
        if multi {
            e["multiValueHeaders"][*k] = json!([v]);
        }
    }
}

/// The status and JSON body of a Lambda HTTP response (any origin).
pub fn http_answer(resp: &Value) -> (u16, Value) {
    let status = resp["statusCode"].as_u64().unwrap_or_else(|| panic!("no statusCode in {resp}")) as u16;
    let body = resp["body"].as_str().unwrap_or("");
    let text = if resp["isBase64Encoded"] == json!(true) {
        String::from_utf8(base64::engine::general_purpose::STANDARD.decode(body).unwrap()).unwrap()
    } else {
        body.to_owned()
    };
    (status, if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap() })
}

/// An SQS event with `(messageId, body)` records.
pub fn sqs_event(records: &[(&str, &str)]) -> Value {
    let mut e = fixture("example-sqs-event.json");
    let template = e["Records"][0].clone();
    e["Records"] = records
        .iter()
        .map(|(id, body)| {
            let mut r = template.clone();
            r["messageId"] = json!(id);
            r["body"] = json!(body);
            r["attributes"]["ApproximateReceiveCount"] = json!("1");
            r
        })
        .collect();
    e
}

/// An S3 ObjectCreated event for `(bucket, raw key)` pairs (keys as S3 sends them, URL-encoded).
pub fn s3_event(objects: &[(&str, &str)]) -> Value {
    let mut e = fixture("example-s3-event.json");
    let template = e["Records"][0].clone();
    e["Records"] = objects
        .iter()
        .map(|(bucket, key)| {
            let mut r = template.clone();
            r["eventName"] = json!("ObjectCreated:Put");
            r["s3"]["bucket"]["name"] = json!(bucket);
            r["s3"]["bucket"]["arn"] = json!(format!("arn:aws:s3:::{bucket}"));
            r["s3"]["object"]["key"] = json!(key);
            r
        })
        .collect();
    e
}

/// A DynamoDB stream event with `(eventID, eventName, NewImage)` records.
pub fn stream_event(records: &[(&str, &str, Value)]) -> Value {
    let mut e = fixture("example-dynamodb-event.json");
    let template = e["Records"][0].clone();
    e["Records"] = records
        .iter()
        .enumerate()
        .map(|(i, (id, name, image))| {
            let mut r = template.clone();
            r["eventID"] = json!(id);
            r["eventName"] = json!(name);
            r["dynamodb"]["NewImage"] = image.clone();
            r["dynamodb"]["SequenceNumber"] = json!(format!("{}", 100 + i));
            r["eventSourceARN"] =
                json!("arn:aws:dynamodb:us-east-1:123456789012:table/Messages/stream/2024-01-01T00:00:00.000");
            r
        })
        .collect();
    e
}
