//! The gRPC services and their listener. [`Grpc`] holds the routes
//! (`envoy.service.auth.v3.Authorization`, `tenet.v1.Decisions`,
//! `grpc.health.v1.Health`, and server reflection for all three) with
//! their message bound, and the health reporter; [`serve`] runs them on a
//! listener of their own (plain or TLS) with the header and stream bounds
//! of [`GrpcConfig`], until a shutdown signal; then health turns
//! `NOT_SERVING`, the listener closes, open calls get GOAWAY and the drain
//! is cut off at its deadline. tenet-server mounts the same routes on the
//! REST port when `grpc.on_rest_port` is set. No request handling here.

use crate::config::GrpcConfig;
use crate::decisions::DecisionService;
use crate::pb::decisions_server::DecisionsServer;
use crate::service::ExtAuthz;
use envoy_types::pb::envoy::service::auth::v3::authorization_server::AuthorizationServer;
use std::future::Future;
use std::time::Duration;
use tokio::net::TcpListener;
use tonic::service::Routes;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Identity, ServerTlsConfig};
use tonic_health::server::HealthReporter;

/// Why the gRPC server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// tonic's transport failed (including an unusable TLS identity).
    #[error("gRPC server: {0}")]
    Transport(#[from] tonic::transport::Error),
    /// A reflection descriptor set did not load.
    #[error("gRPC reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
}

/// The services one server offers.
#[derive(Debug, Clone)]
pub struct Services {
    /// Envoy's ext_authz.
    pub ext_authz: ExtAuthz,
    /// tenet's native decision service.
    pub decisions: DecisionService,
}

/// The routes of every gRPC service and their health; cheap to clone.
#[derive(Clone)]
pub struct Grpc {
    routes: Routes,
    reporter: HealthReporter,
}

impl std::fmt::Debug for Grpc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Grpc").finish_non_exhaustive()
    }
}

impl Grpc {
    /// The routes of `services` (and health, and reflection when
    /// configured), every service `SERVING`.
    pub async fn new(config: &GrpcConfig, services: Services) -> Result<Self, ServeError> {
        let (reporter, health) = tonic_health::server::health_reporter();
        reporter
            .set_serving::<AuthorizationServer<ExtAuthz>>()
            .await;
        reporter
            .set_serving::<DecisionsServer<DecisionService>>()
            .await;
        let max = config.max_message_bytes;
        let mut builder = Routes::builder();
        builder
            .add_service(health)
            .add_service(
                AuthorizationServer::new(services.ext_authz).max_decoding_message_size(max),
            )
            .add_service(DecisionsServer::new(services.decisions).max_decoding_message_size(max));
        if config.reflection {
            let reflection = || {
                tonic_reflection::server::Builder::configure()
                    .register_encoded_file_descriptor_set(crate::pb::FILE_DESCRIPTOR_SET)
                    .register_encoded_file_descriptor_set(crate::pb::ENVOY_AUTHZ_DESCRIPTOR_SET)
                    .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            };
            builder
                .add_service(reflection().build_v1()?)
                .add_service(reflection().build_v1alpha()?);
        }
        Ok(Self {
            routes: builder.routes(),
            reporter,
        })
    }

    /// The routes, as a tower service of HTTP/2 requests.
    pub fn routes(&self) -> Routes {
        self.routes.clone()
    }

    /// The same services behind routes that `wrap` makes of these: for an
    /// embedder's layers (the server's metrics) on every port that serves
    /// them.
    pub fn map_routes(mut self, wrap: impl FnOnce(Routes) -> Routes) -> Self {
        self.routes = wrap(self.routes);
        self
    }

    /// Health turns `NOT_SERVING` for every service (at shutdown).
    pub async fn set_not_serving(&self) {
        self.reporter
            .set_not_serving::<AuthorizationServer<ExtAuthz>>()
            .await;
        self.reporter
            .set_not_serving::<DecisionsServer<DecisionService>>()
            .await;
        self.reporter
            .set_service_status("", tonic_health::ServingStatus::NotServing)
            .await;
    }
}

/// Fails when `identity` (a PEM certificate chain and key) cannot serve
/// TLS: for a check before the server announces itself.
pub fn check_tls(identity: &Identity) -> Result<(), ServeError> {
    tonic::transport::Server::builder()
        .tls_config(ServerTlsConfig::new().identity(identity.clone()))
        .map(|_| ())
        .map_err(ServeError::from)
}

/// Serves `grpc` on `listener` (TLS with `tls` when given) until
/// `shutdown` resolves, then drains for at most `drain`. A TLS identity
/// that cannot be used fails before anything is served.
pub async fn serve(
    listener: TcpListener,
    config: &GrpcConfig,
    grpc: Grpc,
    tls: Option<Identity>,
    shutdown: impl Future<Output = ()> + Send + 'static,
    drain: Duration,
) -> Result<(), ServeError> {
    let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
    let (stopping_tx, stopping_rx) = tokio::sync::oneshot::channel::<()>();
    let routes = grpc.routes();
    let signal = async move {
        shutdown.await;
        grpc.set_not_serving().await;
        let _ = stopping_tx.send(());
    };
    let secs = |s: u64| (s > 0).then(|| Duration::from_secs(s));
    let mut builder = tonic::transport::Server::builder()
        .http2_max_header_list_size(config.max_header_list_bytes)
        .max_concurrent_streams(config.max_concurrent_streams)
        .http2_keepalive_interval(secs(config.keep_alive_interval_seconds))
        .http2_keepalive_timeout(secs(config.keep_alive_timeout_seconds));
    if let Some(identity) = tls {
        builder = builder.tls_config(ServerTlsConfig::new().identity(identity))?;
    }
    if let Some(timeout) = secs(config.call_timeout_seconds) {
        builder = builder.timeout(timeout);
    }
    let serving = builder
        .add_routes(routes)
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
