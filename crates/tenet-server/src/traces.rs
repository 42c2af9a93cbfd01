//! The request span (`traces:`): every request runs inside an info-level
//! `request` span named by its route template (never the raw path), the
//! child of the caller's W3C trace context (`traceparent`) when it sends
//! one, so a decision's span (tenet-host) and the spans below it join the
//! caller's trace. Added to the router only when traces are exported; the
//! export itself is tenet-telemetry's (`traces`).

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
