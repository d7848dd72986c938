//! `warden serve`: the native long-running server.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use warden_service::native::{self, log, Platform};

/// How long shutdown waits for in-flight requests and queued events.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

pub fn serve(addr: &str, policy: Option<PathBuf>) -> Result<ExitCode, String> {
    let settings = crate::settings(policy)?;
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().map_err(|e| e.to_string())?;
    rt.block_on(async {
        let built = native::assemble(&settings, &Platform::server("warden-default")).await?;
        let listener =
            tokio::net::TcpListener::bind(addr).await.map_err(|e| format!("cannot listen on {addr}: {e}"))?;
        let local = listener.local_addr().map_err(|e| e.to_string())?;
        let origin = built.service.policy_source().origin().to_owned();
        log("info", &format!("warden {} listening on http://{local} (policy: {origin})", warden_engine::VERSION));
        native::serve(built, listener, &settings, SHUTDOWN_GRACE).await?;
        log("info", "warden stopped");
        Ok(ExitCode::SUCCESS)
    })
}

/// `warden dlq replay`: re-sends every DLQ line to the configured sink once; keeps the rest.
pub fn dlq_replay(file: Option<PathBuf>) -> Result<ExitCode, String> {
    let settings = crate::settings(None)?;
    let path = file.unwrap_or_else(|| settings.events.dlq_path.clone());
    let sink = settings
        .events
        .sink()
        .map_err(|e| format!("events: {e}"))?
        .ok_or("WEBHOOK_URL is not set: there is nowhere to replay the dead-letter queue to")?;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
    let report = rt
        .block_on(warden_service::events::replay(&path, sink.as_ref()))
        .map_err(|e| format!("{}: {e}", path.display()))?;
    println!(
        "{}: {} events, {} delivered, {} remaining, {} unparsable",
        path.display(),
        report.total,
        report.delivered,
        report.remaining,
        report.unparsable
    );
    Ok(if report.remaining == 0 { ExitCode::SUCCESS } else { ExitCode::from(1) })
}
