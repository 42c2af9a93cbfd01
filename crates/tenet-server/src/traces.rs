//! The request span (`traces:`): every request runs inside an info-level
//! `request` span named by its route template (never the raw path), the
//! child of the caller's W3C trace context (`traceparent`) when it sends
//! one, so a decision's span (tenet-host) and the spans below it join the
//! caller's trace. A gRPC call's span is named `package.Service/Method`
//! and carries OpenTelemetry's `rpc.*` attributes, its status code
//! recorded when the call ends (grpc_status.rs); the trace context comes
//! from the call's metadata, where gRPC clients propagate it. Added only
//! when traces are exported; the export itself is tenet-telemetry's
//! (`traces`).

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

/// Runs the request inside its span.
pub(crate) async fn request(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str)
        .to_string();
    let span = tracing::info_span!(
        "request",
        otel.name = %format!("{} {route}", request.method()),
        otel.kind = "server",
        http.request.method = %request.method(),
        http.route = %route,
        http.response.status_code = tracing::field::Empty,
    );
    #[cfg(feature = "otlp")]
    tenet_telemetry::traces::set_parent(&span, request.headers());
    let response = next.run(request).instrument(span.clone()).await;
    span.record("http.response.status_code", response.status().as_u16());
    response
}

/// Longest gRPC method path put in a span name: a caller chooses it, and
/// it may name no method tenet serves.
const MAX_GRPC_METHOD: usize = 128;

/// `routes` with every gRPC call inside its span.
pub fn instrument_grpc(routes: tenet_grpc::GrpcRoutes) -> tenet_grpc::GrpcRoutes {
    let router = routes
        .into_axum_router()
        .layer(axum::middleware::from_fn(grpc_call));
    tenet_grpc::GrpcRoutes::from(router)
}

async fn grpc_call(request: Request, next: Next) -> Response {
    let path = request.uri().path();
    let mut end = path.len().min(MAX_GRPC_METHOD);
    while !path.is_char_boundary(end) {
        end -= 1;
    }
    let name = path[..end].trim_start_matches('/');
    let (service, method) = name.split_once('/').unwrap_or((name, ""));
    let span = tracing::info_span!(
        "request",
        otel.name = %name,
        otel.kind = "server",
        rpc.system = "grpc",
        rpc.service = %service,
        rpc.method = %method,
        rpc.grpc.status_code = tracing::field::Empty,
    );
    #[cfg(feature = "otlp")]
    tenet_telemetry::traces::set_parent(&span, request.headers());
    let response = next.run(request).instrument(span.clone()).await;
    crate::grpc_status::on_status(response, move |code| {
        span.record("rpc.grpc.status_code", code);
    })
}
