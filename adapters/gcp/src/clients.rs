//! The official `google-cloud-pubsub` clients, pointed at the emulator when
//! `PUBSUB_EMULATOR_HOST` is set (the crate does not read it: the endpoint is set explicitly
//! and the credentials are anonymous, as the emulator wants), else at Google with Application
//! Default Credentials (the Cloud Run service account).

use crate::config::GcpSettings;
use crate::results::Results;
use google_cloud_auth::credentials::anonymous::Builder as Anonymous;
use google_cloud_pubsub::client::{Publisher, Subscriber};

/// The publisher of results to `topic`.
pub async fn publisher(settings: &GcpSettings, topic: &str) -> Result<Publisher, String> {
    let mut builder = Publisher::builder(topic);
    if let Some(endpoint) = settings.endpoint() {
        builder = builder.with_endpoint(endpoint).with_credentials(Anonymous::new().build());
    }
    builder.build().await.map_err(|e| format!("cannot create a publisher for {topic}: {e}"))
}

/// Where results go per `WARDEN_RESULT_TOPIC` (or `topic` when given, e.g. by `--result-topic`).
pub async fn results(settings: &GcpSettings, topic: Option<&str>) -> Result<Results, String> {
    match topic.map(str::to_owned).or_else(|| settings.result_topic.clone()) {
        None => Ok(Results::LogOnly),
        Some(topic) => Ok(Results::Topic {
            publisher: publisher(settings, &topic).await?,
            topic,
            timeout: settings.publish_timeout,
        }),
    }
}

/// The streaming-pull subscriber client.
pub async fn subscriber(settings: &GcpSettings) -> Result<Subscriber, String> {
    let mut builder = Subscriber::builder();
    if let Some(endpoint) = settings.endpoint() {
        builder = builder.with_endpoint(endpoint).with_credentials(Anonymous::new().build());
    }
    builder.build().await.map_err(|e| format!("cannot create a subscriber: {e}"))
}
