//! A small SigV4-signed AWS client: the JSON protocol (DynamoDB, SQS) and the few S3 object
//! calls the adapter needs. Hand-rolled on `reqwest` + rustls so the Lambda binary stays small
//! and cold builds stay fast (the AWS SDK crates add minutes of build and megabytes of binary).

use hmac::{Hmac, Mac};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Characters SigV4 leaves unencoded (RFC 3986 unreserved).
const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// Largest response body read from AWS (objects are bounded separately by their range).
const MAX_RESPONSE: usize = 8 * 1024 * 1024;

/// Per-call timeout: a Lambda must answer within its own timeout, so no call may hang.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// Credentials and where to send requests.
#[derive(Clone, Debug)]
pub struct AwsConfig {
    /// `AWS_REGION`.
    pub region: String,
    /// `AWS_ACCESS_KEY_ID`.
    pub access_key: String,
    /// `AWS_SECRET_ACCESS_KEY`.
    pub secret_key: String,
    /// `AWS_SESSION_TOKEN` (set by Lambda for its execution role).
    pub session_token: Option<String>,
    /// `AWS_ENDPOINT_URL`: one endpoint for every service (moto, LocalStack); S3 is then
    /// addressed path-style.
    pub endpoint: Option<String>,
}

impl AwsConfig {
    /// Reads the standard variables; `None` when no credentials are set (no AWS calls then).
    pub fn from_lookup(lookup: &dyn Fn(&str) -> Option<String>) -> Option<AwsConfig> {
        let access_key = lookup("AWS_ACCESS_KEY_ID").filter(|v| !v.is_empty())?;
        let secret_key = lookup("AWS_SECRET_ACCESS_KEY").filter(|v| !v.is_empty())?;
        Some(AwsConfig {
            region: lookup("AWS_REGION").or_else(|| lookup("AWS_DEFAULT_REGION")).unwrap_or_else(|| "us-east-1".into()),
            access_key,
            secret_key,
            session_token: lookup("AWS_SESSION_TOKEN").filter(|v| !v.is_empty()),
            endpoint: lookup("AWS_ENDPOINT_URL").filter(|v| !v.is_empty()).map(|v| v.trim_end_matches('/').to_owned()),
        })
    }
}

/// A failed AWS call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AwsError {
    /// HTTP status, 0 for a network failure.
    pub status: u16,
    /// The AWS error type (`ConditionalCheckFailedException`, `NoSuchKey`...), if any.
    pub kind: String,
    /// A message without credentials or payloads.
    pub message: String,
}

impl AwsError {
    fn network(e: reqwest::Error) -> AwsError {
        // Without the URL: object URLs carry keys, which can hold PII.
        AwsError { status: 0, kind: "Network".into(), message: e.without_url().to_string() }
    }

    /// Whether retrying later may succeed (network, throttling, 5xx).
    pub fn transient(&self) -> bool {
        self.status == 0 || self.status == 429 || self.status >= 500 || self.kind.contains("Throttl")
    }

    /// A failed condition (DynamoDB conditional write).
    pub fn condition_failed(&self) -> bool {
        self.kind.ends_with("ConditionalCheckFailedException")
    }
}

impl std::fmt::Display for AwsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AWS {} {}: {}", self.status, self.kind, self.message)
    }
}

impl std::error::Error for AwsError {}

/// An S3 object as read.
#[derive(Clone, Debug)]
pub struct Object {
    /// Its bytes (at most the requested range).
    pub bytes: Vec<u8>,
    /// `Content-Type`.
    pub content_type: Option<String>,
    /// User metadata (`x-amz-meta-*`, names without the prefix).
    pub metadata: Vec<(String, String)>,
}

/// The signed client.
#[derive(Clone, Debug)]
pub struct AwsClient {
    config: AwsConfig,
    http: reqwest::Client,
}

impl AwsClient {
    /// A client for `config`.
    pub fn new(config: AwsConfig) -> Result<AwsClient, String> {
        let http = reqwest::Client::builder().timeout(CALL_TIMEOUT).build().map_err(|e| e.to_string())?;
        Ok(AwsClient { config, http })
    }

    fn host_url(&self, service: &str) -> String {
        match &self.config.endpoint {
            Some(e) => e.clone(),
            None => format!("https://{service}.{}.amazonaws.com", self.config.region),
        }
    }

    /// Calls a JSON-protocol API (`DynamoDB_20120810.PutItem`, `AmazonSQS.SendMessage`).
    pub async fn json(&self, service: &str, target: &str, body: &Value) -> Result<Value, AwsError> {
        let payload = serde_json::to_vec(body).map_err(|e| AwsError {
            status: 0,
            kind: "Encode".into(),
            message: e.to_string(),
        })?;
        let url = format!("{}/", self.host_url(service));
        let headers = vec![
            ("content-type".to_owned(), "application/x-amz-json-1.0".to_owned()),
            ("x-amz-target".to_owned(), target.to_owned()),
        ];
        let bytes = self.send(service, reqwest::Method::POST, &url, headers, payload).await?.bytes;
        if bytes.is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&bytes).map_err(|e| AwsError {
            status: 200,
            kind: "Decode".into(),
            message: e.to_string(),
        })
    }

    fn object_url(&self, bucket: &str, key: &str) -> String {
        let key: String =
            key.split('/').map(|s| utf8_percent_encode(s, UNRESERVED).to_string()).collect::<Vec<_>>().join("/");
        match &self.config.endpoint {
            Some(e) => format!("{e}/{bucket}/{key}"),
            None => format!("https://{bucket}.s3.{}.amazonaws.com/{key}", self.config.region),
        }
    }

    /// Reads at most `max` bytes of an object; `Ok(None)` when it does not exist.
    pub async fn get_object(&self, bucket: &str, key: &str, max: usize) -> Result<Option<Object>, AwsError> {
        let url = self.object_url(bucket, key);
        let headers = vec![("range".to_owned(), format!("bytes=0-{}", max.saturating_sub(1)))];
        match self.send("s3", reqwest::Method::GET, &url, headers, Vec::new()).await {
            Ok(r) => Ok(Some(Object { bytes: r.bytes, content_type: r.content_type, metadata: r.metadata })),
            Err(e) if e.status == 404 || e.kind == "NoSuchKey" => Ok(None),
            // An empty object cannot satisfy a range.
            Err(e) if e.status == 416 => {
                Ok(Some(Object { bytes: Vec::new(), content_type: None, metadata: Vec::new() }))
            }
            Err(e) => Err(e),
        }
    }

    /// Writes an object with user metadata (`x-amz-meta-*`).
    pub async fn put_object(
        &self,
        bucket: &str,
        key: &str,
        bytes: Vec<u8>,
        content_type: Option<&str>,
        metadata: &[(&str, String)],
    ) -> Result<(), AwsError> {
        let url = self.object_url(bucket, key);
        let mut headers: Vec<(String, String)> =
            metadata.iter().map(|(k, v)| (format!("x-amz-meta-{k}"), v.clone())).collect();
        headers.push(("content-type".into(), content_type.unwrap_or("application/octet-stream").into()));
        self.send("s3", reqwest::Method::PUT, &url, headers, bytes).await.map(|_| ())
    }

    /// Copies an object server-side, replacing its metadata.
    pub async fn copy_object(
        &self,
        from_bucket: &str,
        from_key: &str,
        bucket: &str,
        key: &str,
        content_type: Option<&str>,
        metadata: &[(&str, String)],
    ) -> Result<(), AwsError> {
        let url = self.object_url(bucket, key);
        let source = format!("/{from_bucket}/{}", utf8_percent_encode(from_key, UNRESERVED));
        let mut headers: Vec<(String, String)> =
            metadata.iter().map(|(k, v)| (format!("x-amz-meta-{k}"), v.clone())).collect();
        headers.push(("x-amz-copy-source".into(), source));
        headers.push(("x-amz-metadata-directive".into(), "REPLACE".into()));
        headers.push(("content-type".into(), content_type.unwrap_or("application/octet-stream").into()));
        self.send("s3", reqwest::Method::PUT, &url, headers, Vec::new()).await.map(|_| ())
    }

    /// Deletes an object (deleting a missing one succeeds, as in S3).
    pub async fn delete_object(&self, bucket: &str, key: &str) -> Result<(), AwsError> {
        let url = self.object_url(bucket, key);
        self.send("s3", reqwest::Method::DELETE, &url, Vec::new(), Vec::new()).await.map(|_| ())
    }

    /// Signs and sends one request; a non-2xx answer is an [`AwsError`] with the AWS error type.
    async fn send(
        &self,
        service: &str,
        method: reqwest::Method,
        url: &str,
        mut headers: Vec<(String, String)>,
        body: Vec<u8>,
    ) -> Result<Answer, AwsError> {
        let parsed =
            reqwest::Url::parse(url).map_err(|e| AwsError { status: 0, kind: "Url".into(), message: e.to_string() })?;
        let host = match (parsed.host_str(), parsed.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_owned(),
            (None, _) => return Err(AwsError { status: 0, kind: "Url".into(), message: "no host".into() }),
        };
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        let signed = sign(
            &self.config,
            service,
            method.as_str(),
            &host,
            parsed.path(),
            parsed.query().unwrap_or(""),
            &mut headers,
            &body,
            now,
        );
        headers.push(("authorization".into(), signed));
        let mut req = self.http.request(method, parsed).body(body);
        for (k, v) in &headers {
            req = req.header(k.as_str(), v.as_str());
        }
        let resp = req.send().await.map_err(AwsError::network)?;
        let status = resp.status().as_u16();
        let content_type = resp.headers().get("content-type").and_then(|v| v.to_str().ok()).map(str::to_owned);
        let metadata = resp
            .headers()
            .iter()
            .filter_map(|(k, v)| {
                Some((k.as_str().strip_prefix("x-amz-meta-")?.to_owned(), v.to_str().ok()?.to_owned()))
            })
            .collect();
        let amz_error = resp.headers().get("x-amzn-errortype").and_then(|v| v.to_str().ok()).map(str::to_owned);
        let bytes = read_limited(resp).await?;
        if (200..300).contains(&status) {
            return Ok(Answer { content_type, metadata, bytes });
        }
        Err(error_of(status, amz_error, &bytes))
    }
}

/// A successful answer.
struct Answer {
    content_type: Option<String>,
    metadata: Vec<(String, String)>,
    bytes: Vec<u8>,
}

async fn read_limited(mut resp: reqwest::Response) -> Result<Vec<u8>, AwsError> {
    let mut out = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(AwsError::network)? {
        if out.len().saturating_add(chunk.len()) > MAX_RESPONSE {
            return Err(AwsError { status: 0, kind: "TooLarge".into(), message: "response over 8 MiB".into() });
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// The AWS error type of a failed call: JSON `__type`, the `x-amzn-errortype` header, or the
/// S3 XML `<Code>`.
fn error_of(status: u16, header: Option<String>, body: &[u8]) -> AwsError {
    let text = String::from_utf8_lossy(body);
    let json: Option<Value> = serde_json::from_slice(body).ok();
    let kind = json
        .as_ref()
        .and_then(|v| v.get("__type"))
        .and_then(Value::as_str)
        .map(|t| t.rsplit('#').next().unwrap_or(t).to_owned())
        .or(header.map(|h| h.split(':').next().unwrap_or_default().to_owned()))
        .or_else(|| xml_tag(&text, "Code"))
        .unwrap_or_default();
    let message = json
        .as_ref()
        .and_then(|v| v.get("message").or_else(|| v.get("Message")))
        .and_then(Value::as_str)
        .map(str::to_owned)
        .or_else(|| xml_tag(&text, "Message"))
        .unwrap_or_default();
    AwsError { status, kind, message: message.chars().take(300).collect() }
}

fn xml_tag(text: &str, tag: &str) -> Option<String> {
    let start = text.find(&format!("<{tag}>"))?.checked_add(tag.len() + 2)?;
    let end = text.get(start..)?.find(&format!("</{tag}>"))?;
    text.get(start..start.checked_add(end)?).map(str::to_owned)
}

type HmacSha256 = Hmac<Sha256>;

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    // HMAC accepts keys of any length, so this cannot fail.
    match HmacSha256::new_from_slice(key) {
        Ok(mut m) => {
            m.update(data);
            m.finalize().into_bytes().to_vec()
        }
        Err(_) => Vec::new(),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `YYYYMMDDTHHMMSSZ` for Unix seconds (civil-from-days, proleptic Gregorian).
pub fn amz_date(secs: u64) -> String {
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}{month:02}{day:02}T{:02}{:02}{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// Adds the SigV4 headers (`host`, `x-amz-date`, `x-amz-content-sha256`, session token) to
/// `headers` and returns the `Authorization` value.
#[allow(clippy::too_many_arguments)]
fn sign(
    config: &AwsConfig,
    service: &str,
    method: &str,
    host: &str,
    path: &str,
    query: &str,
    headers: &mut Vec<(String, String)>,
    body: &[u8],
    now_secs: u64,
) -> String {
    let date_time = amz_date(now_secs);
    let date = date_time.get(..8).unwrap_or_default().to_owned();
    let payload_hash = hex(&Sha256::digest(body));
    headers.push(("host".into(), host.into()));
    headers.push(("x-amz-date".into(), date_time.clone()));
    headers.push(("x-amz-content-sha256".into(), payload_hash.clone()));
    if let Some(t) = &config.session_token {
        headers.push(("x-amz-security-token".into(), t.clone()));
    }
    let mut canonical: Vec<(String, String)> =
        headers.iter().map(|(k, v)| (k.to_ascii_lowercase(), v.trim().to_owned())).collect();
    canonical.sort();
    let signed_headers = canonical.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>().join(";");
    let header_block: String = canonical.iter().map(|(k, v)| format!("{k}:{v}\n")).collect();
    let mut pairs: Vec<&str> = query.split('&').filter(|p| !p.is_empty()).collect();
    pairs.sort_unstable();
    // The path is already percent-encoded by the URL; S3 signs it as is, other services
    // would double-encode, but they are only ever called at `/`.
    let request = format!("{method}\n{path}\n{}\n{header_block}\n{signed_headers}\n{payload_hash}", pairs.join("&"));
    let scope = format!("{date}/{}/{service}/aws4_request", config.region);
    let signature = signature(config, service, &date_time, &request);
    format!(
        "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={signed_headers}, Signature={signature}",
        config.access_key
    )
}

/// The SigV4 signature of a canonical request.
fn signature(config: &AwsConfig, service: &str, date_time: &str, canonical_request: &str) -> String {
    let date = date_time.get(..8).unwrap_or_default();
    let scope = format!("{date}/{}/{service}/aws4_request", config.region);
    let to_sign =
        format!("AWS4-HMAC-SHA256\n{date_time}\n{scope}\n{}", hex(&Sha256::digest(canonical_request.as_bytes())));
    let k_date = hmac(format!("AWS4{}", config.secret_key).as_bytes(), date.as_bytes());
    let k_region = hmac(&k_date, config.region.as_bytes());
    let k_service = hmac(&k_region, service.as_bytes());
    let k_signing = hmac(&k_service, b"aws4_request");
    hex(&hmac(&k_signing, to_sign.as_bytes()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_civil() {
        assert_eq!(amz_date(0), "19700101T000000Z");
        assert_eq!(amz_date(1_440_938_160), "20150830T123600Z");
        assert_eq!(amz_date(951_782_400), "20000229T000000Z");
    }

    /// The `get-vanilla` case of AWS's SigV4 test suite (access key AKIDEXAMPLE).
    #[test]
    fn signature_matches_the_aws_test_suite() {
        let config = AwsConfig {
            region: "us-east-1".into(),
            access_key: "AKIDEXAMPLE".into(),
            secret_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into(),
            session_token: None,
            endpoint: None,
        };
        let request = "GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        assert_eq!(
            signature(&config, "service", "20150830T123600Z", request),
            "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
        );
        let mut headers = Vec::new();
        let auth = sign(&config, "service", "GET", "example.amazonaws.com", "/", "", &mut headers, b"", 1_440_938_160);
        assert!(auth.starts_with("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "));
        assert!(auth.contains("SignedHeaders=host;x-amz-content-sha256;x-amz-date, "));
    }

    #[test]
    fn errors_name_their_type() {
        let e = error_of(
            400,
            None,
            br#"{"__type":"com.amazonaws.dynamodb.v20120810#ConditionalCheckFailedException","message":"no"}"#,
        );
        assert!(e.condition_failed());
        assert!(!e.transient());
        let e = error_of(404, None, b"<Error><Code>NoSuchKey</Code><Message>gone</Message></Error>");
        assert_eq!((e.kind.as_str(), e.message.as_str()), ("NoSuchKey", "gone"));
        assert!(error_of(503, None, b"").transient());
    }
}
