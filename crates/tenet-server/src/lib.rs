//! tenet's front ends: the HTTP server speaking OPA's REST API per tenant
//! ([`app`], [`serve`]). It parses requests, asks the [`tenet::Host`] for
//! decisions and maps every error to OPA's error shape in one place
//! ([`ApiError`]); it holds no policy logic.

mod api;
mod error;

pub use api::{app, AppState};
pub use axum::http::HeaderName;
pub use error::ApiError;

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

/// Serves `app` on `listener` until `shutdown` resolves, then stops
/// accepting and drains in-flight requests for at most `drain`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: axum::Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
    drain: Duration,
) -> std::io::Result<()> {
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async move {
        shutdown.await;
        let _ = stop_tx.send(());
    });
    let server = tokio::spawn(async move { server.await });
    tokio::pin!(server);
    tokio::select! {
        done = &mut server => return done.map_err(std::io::Error::other)?,
        _ = stop_rx => {}
    }
    match tokio::time::timeout(drain, &mut server).await {
        Ok(done) => done.map_err(std::io::Error::other)?,
        Err(_) => {
            tracing::warn!(
                ?drain,
                "drain deadline passed; closing remaining connections"
            );
            server.abort();
            Ok(())
        }
    }
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
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
        _ = ctrl_c => {}
        _ = term => {}
    }
    tracing::info!("shutdown signal received; draining");
}
