//! The custom handler the Functions host starts (`host.json` → `customHandler`): listens on
//! `127.0.0.1:$FUNCTIONS_CUSTOMHANDLER_PORT` (the host calls it on localhost).

use std::process::ExitCode;
use std::time::Duration;
use warden_azure::Handler;
use warden_service::native::{self, log, Platform};
use warden_service::settings::{Settings, Vars};

/// How long shutdown waits for in-flight invocations and queued events.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log("error", &e);
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), String> {
    let lookup = |k: &str| std::env::var(k).ok();
    let settings = Settings::from_lookup(lookup).map_err(|e| e.to_string())?;
    let port: u16 =
        Vars::new(&lookup).parse("FUNCTIONS_CUSTOMHANDLER_PORT", 0, "a TCP port").map_err(|e| e.to_string())?;
    if port == 0 {
        return Err("FUNCTIONS_CUSTOMHANDLER_PORT is not set: the Functions host sets it".into());
    }
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().map_err(|e| e.to_string())?;
    rt.block_on(async {
        let built = native::assemble(&settings, &Platform::function("azure-default")).await?;
        let app = Handler::new(&built).app();
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .map_err(|e| format!("cannot listen on 127.0.0.1:{port}: {e}"))?;
        let local = listener.local_addr().map_err(|e| e.to_string())?;
        let origin = built.service.policy_source().origin().to_owned();
        log(
            "info",
            &format!("warden-azure {} listening on http://{local} (policy: {origin})", env!("CARGO_PKG_VERSION")),
        );
        native::serve_app(built, app, listener, &settings, SHUTDOWN_GRACE).await
    })
}
