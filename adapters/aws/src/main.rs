//! The Lambda bootstrap: builds the function once per instance (cold start), then serves
//! every event through [`warden_aws::App::respond`] (buffered, or streamed for a Function URL
//! in `RESPONSE_STREAM` mode).

use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::Value;
use std::sync::Arc;
use warden_aws::{App, Invocation};

// One invocation at a time per instance: a single-threaded runtime starts faster and uses
// less memory than a thread pool that would sit idle.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let app = match warden_aws::config::build(|k| std::env::var(k).ok()).await {
        Ok(app) => Arc::new(app),
        Err(e) => {
            // An init error: Lambda reports it and retries the cold start.
            warden_aws::log(serde_json::json!({"level": "error", "msg": format!("warden: cannot start: {e}")}));
            return Err(e.into());
        }
    };
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        let app: Arc<App> = Arc::clone(&app);
        async move {
            let inv = Invocation {
                request_id: event.context.request_id.clone(),
                deadline_ms: i64::try_from(event.context.deadline).unwrap_or(0),
            };
            app.respond(event.payload, inv).await.map_err(Error::from)
        }
    }))
    .await
}
