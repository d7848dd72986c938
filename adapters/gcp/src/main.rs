//! `warden-gcp`: the Cloud Run service (default, or `serve`) and the Pub/Sub pull worker
//! (`pull`).

use clap::{Parser, Subcommand};
use serde_json::{Map, Value};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use warden_gcp::clients;
use warden_gcp::config::{self, GcpSettings, HTTP_DEFAULT_AGENT};
use warden_gcp::http::{extend, GcpState};
use warden_gcp::logging::log;
use warden_gcp::oidc::{PushAuth, Verifier};
use warden_gcp::process::{Counters, Processor};
use warden_gcp::pull::{self, PullOptions};
use warden_service::native::{self, Platform};
use warden_service::settings::Settings;

/// Cloud Run sends SIGKILL 10 s after SIGTERM; [`native::serve_with`] spends the grace twice
/// at most (in-flight requests, then queued events).
const SERVE_GRACE: Duration = Duration::from_millis(4500);

/// In-flight messages, then the acknowledgements, each get this much of the 10 s.
const PULL_GRACE: Duration = Duration::from_millis(4500);

#[derive(Parser)]
#[command(name = "warden-gcp", version, about = "Warden on Google Cloud: Cloud Run service and Pub/Sub pull worker")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve HTTP on 0.0.0.0:$PORT: every route of `warden serve`, Pub/Sub push and CloudEvents.
    Serve,
    /// Govern the messages of a Pub/Sub subscription (streaming pull).
    Pull {
        /// Subscription: `projects/P/subscriptions/S`, or a bare name with GOOGLE_CLOUD_PROJECT.
        #[arg(long, env = "WARDEN_PULL_SUBSCRIPTION")]
        subscription: String,
        /// Topic for results (default WARDEN_RESULT_TOPIC; none → results are only logged).
        #[arg(long)]
        result_topic: Option<String>,
        /// Messages governed at once.
        #[arg(long, env = "WARDEN_PULL_CONCURRENCY", default_value_t = 64)]
        concurrency: usize,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => return fail(&format!("cannot start the runtime: {e}")),
    };
    let outcome = rt.block_on(async {
        match cli.command.unwrap_or(Command::Serve) {
            Command::Serve => serve().await,
            Command::Pull { subscription, result_topic, concurrency } => {
                pull(&subscription, result_topic.as_deref(), concurrency).await
            }
        }
    });
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}

fn fail(message: &str) -> ExitCode {
    log("ERROR", message, None, Map::new());
    ExitCode::from(1)
}

fn settings() -> Result<(Settings, GcpSettings), String> {
    let lookup = |k: &str| std::env::var(k).ok();
    let settings = Settings::from_lookup(lookup).map_err(|e| e.to_string())?;
    let gcp = GcpSettings::from_lookup(&lookup).map_err(|e| e.to_string())?;
    Ok((settings, gcp))
}

async fn serve() -> Result<(), String> {
    let (settings, gcp) = settings()?;
    let built = native::assemble(&settings, &Platform::server(HTTP_DEFAULT_AGENT)).await?;
    let processor = Arc::new(Processor {
        service: Arc::clone(&built.service),
        results: clients::results(&gcp, None).await?,
        default_agent_id: gcp.pubsub_agent.clone(),
        counters: Counters::default(),
    });
    let push_auth = match PushAuth::from_lookup(&|k| std::env::var(k).ok()).map_err(|e| e.to_string())? {
        Some(auth) => Some(Arc::new(Verifier::new(auth)?)),
        None => None,
    };
    let state = GcpState { processor, project: gcp.project.clone(), push_auth: push_auth.clone() };
    let addr = format!("0.0.0.0:{}", gcp.port);
    let listener = tokio::net::TcpListener::bind(&addr).await.map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    log(
        "INFO",
        "warden-gcp listening",
        None,
        Map::from_iter([
            ("address".to_owned(), Value::from(addr.as_str())),
            ("version".to_owned(), Value::from(warden_engine::VERSION)),
            ("result_topic".to_owned(), Value::from(gcp.result_topic.as_deref())),
            ("push_auth".to_owned(), Value::from(push_auth.is_some())),
        ]),
    );
    native::serve_with(built, listener, &settings, SERVE_GRACE, |core| extend(core, state)).await?;
    log("INFO", "warden-gcp stopped", None, Map::new());
    Ok(())
}

async fn pull(subscription: &str, result_topic: Option<&str>, concurrency: usize) -> Result<(), String> {
    let (settings, gcp) = settings()?;
    let project = gcp.project.as_deref();
    let subscription = config::resource("WARDEN_PULL_SUBSCRIPTION", subscription, "subscriptions", project)
        .map_err(|e| e.to_string())?;
    let result_topic = result_topic
        .map(|t| config::resource("WARDEN_RESULT_TOPIC", t, "topics", project))
        .transpose()
        .map_err(|e| e.to_string())?;
    let built = native::assemble(&settings, &Platform::server(&gcp.pubsub_agent)).await?;
    let processor = Arc::new(Processor {
        service: Arc::clone(&built.service),
        results: clients::results(&gcp, result_topic.as_deref()).await?,
        default_agent_id: gcp.pubsub_agent.clone(),
        counters: Counters::default(),
    });
    let subscriber = clients::subscriber(&gcp).await?;
    let options = PullOptions { subscription, concurrency, grace: PULL_GRACE, progress_every: Duration::from_secs(10) };
    let outcome = pull::run(processor, &subscriber, &options, shutdown_signal()).await;
    built.shutdown(PULL_GRACE).await;
    outcome.map(|_| ())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
