//! `warden serve`: the native long-running server.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use warden_service::native::{self, log};
use warden_service::router::{router, AppState};

pub fn serve(addr: &str, policy: Option<PathBuf>) -> Result<ExitCode, String> {
    let settings = crate::settings(policy)?;
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().map_err(|e| e.to_string())?;
    rt.block_on(run(addr, settings))
}

async fn run(addr: &str, settings: native::Settings) -> Result<ExitCode, String> {
    let service = Arc::new(native::base_service(&settings)?);
    if let Some(path) = settings.policy_file.clone() {
        let source = Arc::clone(service.policy_source());
        tokio::spawn(native::watch_policy(source, path, settings.policy_poll, |_| {}));
    }
    let state = AppState { service: Arc::clone(&service), api_keys: None, metrics: None };
    let app = router(state);
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

pub fn dlq_replay(_file: Option<PathBuf>) -> Result<ExitCode, String> {
    Err(String::from("dlq replay: wiring in progress"))
}
