//! The gRPC listener: `envoy.service.auth.v3.Authorization` and
//! `grpc.health.v1.Health` on one tonic server, with the message, header
//! and stream bounds of [`GrpcConfig`], until a shutdown signal; then health
//! turns `NOT_SERVING`, the listener closes, open calls get GOAWAY and the
//! drain is cut off at its deadline. No request handling here (`service`).

use crate::config::GrpcConfig;
use crate::service::ExtAuthz;
use envoy_types::pb::envoy::service::auth::v3::authorization_server::AuthorizationServer;
use std::future::Future;
use std::time::Duration;
use tokio::net::TcpListener;
use tonic::transport::server::TcpIncoming;

/// Why the gRPC server stopped with an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// tonic's transport failed.
    #[error("gRPC server: {0}")]
    Transport(#[from] tonic::transport::Error),
}

/// Serves `service` on `listener` until `shutdown` resolves, then drains
/// for at most `drain`.
pub async fn serve(
    listener: TcpListener,
    config: &GrpcConfig,
    service: ExtAuthz,
    shutdown: impl Future<Output = ()> + Send + 'static,
    drain: Duration,
) -> Result<(), ServeError> {
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter
        .set_serving::<AuthorizationServer<ExtAuthz>>()
        .await;
    let authz =
        AuthorizationServer::new(service).max_decoding_message_size(config.max_message_bytes);
    let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
    let (stopping_tx, stopping_rx) = tokio::sync::oneshot::channel::<()>();
    let signal = async move {
        shutdown.await;
        reporter
            .set_not_serving::<AuthorizationServer<ExtAuthz>>()
            .await;
        reporter
            .set_service_status("", tonic_health::ServingStatus::NotServing)
            .await;
        let _ = stopping_tx.send(());
    };
    let secs = |s: u64| (s > 0).then(|| Duration::from_secs(s));
    let mut builder = tonic::transport::Server::builder()
        .http2_max_header_list_size(config.max_header_list_bytes)
        .max_concurrent_streams(config.max_concurrent_streams)
        .http2_keepalive_interval(secs(config.keep_alive_interval_seconds))
        .http2_keepalive_timeout(secs(config.keep_alive_timeout_seconds));
    if let Some(timeout) = secs(config.call_timeout_seconds) {
        builder = builder.timeout(timeout);
    }
    let serving = builder
        .add_service(health)
        .add_service(authz)
        .serve_with_incoming_shutdown(incoming, signal);
    tokio::pin!(serving);
    tokio::select! {
        done = &mut serving => return Ok(done?),
        _ = stopping_rx => {}
    }
    match tokio::time::timeout(drain, serving).await {
        Ok(done) => Ok(done?),
        Err(_) => {
            tracing::warn!(
                ?drain,
                "gRPC drain deadline passed; closing remaining connections"
            );
            Ok(())
        }
    }
}
