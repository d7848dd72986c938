//! `warden serve`: the native long-running server.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use warden_service::native::{self, log};
use warden_service::router::router;

pub fn serve(addr: &str, policy: Option<PathBuf>) -> Result<ExitCode, String> {
    let settings = crate::settings(policy)?;
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().map_err(|e| e.to_string())?;
    rt.block_on(run(addr, settings))
}

async fn run(addr: &str, settings: native::Settings) -> Result<ExitCode, String> {
    let built = native::build(&settings).await?;
    let service = Arc::clone(&built.service);
    if let Some(path) = settings.policy_file.clone() {
        let source = Arc::clone(service.policy_source());
        let metrics = Arc::clone(&built.metrics);
        tokio::spawn(native::watch_policy(source, path, settings.policy_poll, move |ok| metrics.policy_reload(ok)));
    }
    let metrics = Arc::clone(&built.metrics);
    let app = router(built.state).layer(axum::middleware::from_fn(move |req, next: axum::middleware::Next| {
        let guard = metrics.active_request();
        async move {
            let resp = next.run(req).await;
            drop(guard);
            resp
        }
    }));
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    log(
        "info",
        &format!(
            "warden {} listening on http://{local} (policy: {})",
            warden_engine::VERSION,
            service.policy_source().origin()
        ),
    );
    axum::serve(listener, app.into_make_service_with_connect_info::<std::net::SocketAddr>())
        .with_graceful_shutdown(shutdown_signal())
        .await
        .map_err(|e| format!("server error: {e}"))?;
    if let Some(d) = built.dispatcher {
        // Undelivered events go to the DLQ, never lost.
        d.shutdown(std::time::Duration::from_secs(5)).await;
    }
    log("info", "warden stopped");
    Ok(ExitCode::SUCCESS)
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
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
