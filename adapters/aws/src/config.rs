//! This adapter's settings and the assembly of the function: the core's settings
//! (SPEC §9), plus AWS-only variables, parsed once at cold start.
//!
//! | variable | meaning |
//! |---|---|
//! | `WARDEN_RESULT_QUEUE_URL` | SQS queue receiving one result per SQS record |
//! | `WARDEN_AUDIT_TABLE` | DynamoDB table (key `event_id`, S) of stream audit records |
//! | `WARDEN_DYNAMODB_TABLE` | state table (key `pk`, S; TTL `expires_at`) for `WARDEN_STORE=dynamodb` |
//! | `WARDEN_S3_QUARANTINE_BUCKET`, `WARDEN_S3_PROCESSED_BUCKET`, `WARDEN_S3_APPROVED_BUCKET` | destinations (default `<bucket>-quarantine`, `-processed`, `-approved`) |
//! | `WARDEN_S3_KEEP_SOURCE` | keep the source object after the destination write (default false) |
//! | `WARDEN_DLQ_QUEUE_URL` / `WARDEN_DLQ_S3` (`s3://bucket/prefix`) | where undelivered decision events go |
//! | `WARDEN_EMF` | CloudWatch EMF metric lines (default true) |
//! | `WARDEN_FUNCTION_URL_STREAMING` | the Function URL is in `RESPONSE_STREAM` mode: answer its requests as streams (default false) |

use crate::client::{AwsClient, AwsConfig};
use crate::dynamo::{DynamoBudgetStore, DynamoDedupe, DynamoRateLimiter, Table};
use crate::emf::Emf;
use crate::App;
use async_trait::async_trait;
use serde_json::json;
use sha2::Digest as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use warden_service::budget::StoreError;
use warden_service::events::{dlq_line, DeadLetter};
use warden_service::native::{assemble_with, Extras, Platform, Stores};
use warden_service::service::{Budgets, Observer};
use warden_service::settings::{ConfigError, Settings, StoreKind, Vars};

/// The AWS-only settings.
#[derive(Clone, Debug, Default)]
pub struct AwsSettings {
    /// `WARDEN_RESULT_QUEUE_URL`.
    pub result_queue_url: Option<String>,
    /// `WARDEN_AUDIT_TABLE`.
    pub audit_table: Option<String>,
    /// `WARDEN_DYNAMODB_TABLE`.
    pub state_table: Option<String>,
    /// `WARDEN_S3_QUARANTINE_BUCKET`.
    pub quarantine_bucket: Option<String>,
    /// `WARDEN_S3_PROCESSED_BUCKET`.
    pub processed_bucket: Option<String>,
    /// `WARDEN_S3_APPROVED_BUCKET`.
    pub approved_bucket: Option<String>,
    /// `WARDEN_S3_KEEP_SOURCE`.
    pub keep_source: bool,
    /// `WARDEN_DLQ_QUEUE_URL`.
    pub dlq_queue_url: Option<String>,
    /// `WARDEN_DLQ_S3`: bucket and prefix.
    pub dlq_s3: Option<(String, String)>,
    /// `WARDEN_EMF`.
    pub metrics: bool,
    /// `AWS_LAMBDA_FUNCTION_NAME` (the metric dimension).
    pub function_name: String,
    /// `WARDEN_FUNCTION_URL_STREAMING`: Function URL requests are answered as streaming
    /// responses (the URL's `InvokeMode` is `RESPONSE_STREAM`, so Lambda expects every answer
    /// through it in the streaming format).
    pub function_url_streaming: bool,
}

impl AwsSettings {
    /// Parses the AWS-only variables.
    pub fn from_vars(vars: &Vars<'_>) -> Result<AwsSettings, ConfigError> {
        let dlq_s3 = match vars.get("WARDEN_DLQ_S3") {
            None => None,
            Some(v) => {
                let rest = v
                    .strip_prefix("s3://")
                    .ok_or_else(|| ConfigError::new("WARDEN_DLQ_S3", "expected s3://bucket/prefix"))?;
                let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
                if bucket.is_empty() {
                    return Err(ConfigError::new("WARDEN_DLQ_S3", "expected s3://bucket/prefix"));
                }
                Some((bucket.to_owned(), prefix.trim_end_matches('/').to_owned()))
            }
        };
        Ok(AwsSettings {
            result_queue_url: vars.get("WARDEN_RESULT_QUEUE_URL"),
            audit_table: vars.get("WARDEN_AUDIT_TABLE"),
            state_table: vars.get("WARDEN_DYNAMODB_TABLE"),
            quarantine_bucket: vars.get("WARDEN_S3_QUARANTINE_BUCKET"),
            processed_bucket: vars.get("WARDEN_S3_PROCESSED_BUCKET"),
            approved_bucket: vars.get("WARDEN_S3_APPROVED_BUCKET"),
            keep_source: vars.flag("WARDEN_S3_KEEP_SOURCE", false)?,
            function_url_streaming: vars.flag("WARDEN_FUNCTION_URL_STREAMING", false)?,
            dlq_queue_url: vars.get("WARDEN_DLQ_QUEUE_URL"),
            dlq_s3,
            metrics: vars.flag("WARDEN_EMF", true)?,
            function_name: vars.get("AWS_LAMBDA_FUNCTION_NAME").unwrap_or_else(|| "warden".into()),
        })
    }
}

/// Builds the function from its environment: every failure names the variable.
pub async fn build(lookup: impl Fn(&str) -> Option<String>) -> Result<App, String> {
    let settings = Settings::from_lookup(&lookup).map_err(|e| e.to_string())?;
    let vars = Vars::new(&lookup);
    let config = AwsSettings::from_vars(&vars).map_err(|e| e.to_string())?;
    let aws = AwsConfig::from_lookup(&lookup).map(AwsClient::new).transpose()?;
    let mut extras = Extras::default();
    if settings.store == Some(StoreKind::DynamoDb) {
        let table = config.state_table.clone().ok_or("WARDEN_STORE=dynamodb: WARDEN_DYNAMODB_TABLE is not set")?;
        let client = aws.clone().ok_or("WARDEN_STORE=dynamodb: no AWS credentials in the environment")?;
        let table = Table::new(client, table);
        let budgets = settings.budget_enabled.then(|| Budgets {
            store: Arc::new(DynamoBudgetStore::new(table.clone(), settings.budget_default_limit)),
            prices: settings.prices.clone(),
        });
        extras.stores = Some(Stores {
            budgets,
            limiter: settings.rate_limit.map(|n| Arc::new(DynamoRateLimiter::new(table.clone(), n)) as _),
            caller_limiter: settings
                .rate_limit_per_key
                .map(|n| Arc::new(DynamoRateLimiter::new(table.clone(), n)) as _),
            dedupe: Some(Arc::new(DynamoDedupe::new(table))),
        });
    }
    extras.dead_letter = match (&config.dlq_queue_url, &config.dlq_s3, &aws) {
        (Some(url), _, Some(c)) => Some(Box::new(SqsDeadLetter { client: c.clone(), queue_url: url.clone() })),
        (None, Some((bucket, prefix)), Some(c)) => Some(Box::new(S3DeadLetter {
            client: c.clone(),
            bucket: bucket.clone(),
            prefix: prefix.clone(),
            seq: AtomicU64::new(0),
        })),
        (Some(_), _, None) | (_, Some(_), None) => {
            return Err("WARDEN_DLQ_*: no AWS credentials in the environment".into())
        }
        _ => None,
    };
    let emf = Arc::new(Emf::default());
    extras.observers.push(Arc::clone(&emf) as Arc<dyn Observer>);
    let built = assemble_with(&settings, &Platform::function(crate::DEFAULT_AGENT), extras).await?;
    Ok(App::new(built, aws, config, emf))
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Undelivered decision events to an SQS queue, one DLQ line per message.
struct SqsDeadLetter {
    client: AwsClient,
    queue_url: String,
}

#[async_trait]
impl DeadLetter for SqsDeadLetter {
    async fn put(&self, event_json: &str, error: &str, attempts: u32) -> Result<(), StoreError> {
        let line = dlq_line(event_json, error, attempts, now_ms());
        let body = json!({"QueueUrl": self.queue_url, "MessageBody": line});
        self.client
            .json("sqs", "AmazonSQS.SendMessage", &body)
            .await
            .map(|_| ())
            .map_err(|e| StoreError::new("sqs", e.to_string()))
    }
}

/// Undelivered decision events as objects under a bucket prefix.
struct S3DeadLetter {
    client: AwsClient,
    bucket: String,
    prefix: String,
    seq: AtomicU64,
}

#[async_trait]
impl DeadLetter for S3DeadLetter {
    async fn put(&self, event_json: &str, error: &str, attempts: u32) -> Result<(), StoreError> {
        let now = now_ms();
        let line = dlq_line(event_json, error, attempts, now);
        let n = self.seq.fetch_add(1, Ordering::Relaxed);
        // Instances share process ids; the event's digest keeps keys of different events apart.
        let digest: String =
            sha2::Sha256::digest(event_json.as_bytes()).iter().take(8).map(|b| format!("{b:02x}")).collect();
        let key = format!("{}/{now}-{digest}-{n}.json", self.prefix).trim_start_matches('/').to_owned();
        self.client
            .put_object(&self.bucket, &key, line.into_bytes(), Some("application/json"), &[])
            .await
            .map_err(|e| StoreError::new("s3", e.to_string()))
    }
}
