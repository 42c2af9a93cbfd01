//! gRPC calls in `/metrics`: calls by method and status code, and their
//! duration by method, for the gRPC services wherever they are served
//! (`grpc.listen`, and the REST port with `grpc.on_rest_port`). A layer on
//! the gRPC routes records each call once, when its status is known: from
//! the response head for a trailers-only answer (every error tonic sends
//! before a message), else from the trailers at the end of the body; a
//! body dropped before its trailers (the client went away) counts as
//! `CANCELLED`.
//!
//! Method labels are the full gRPC path of a method tenet serves; any
//! call answered `UNIMPLEMENTED` counts under `method="unknown"`, so
//! random method names cannot grow `/metrics`. It observes calls; it never
//! changes one.

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    method: String,
    code: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MethodLabels {
    method: String,
}

/// The gRPC families; cheap to clone (the families are shared).
#[derive(Debug, Clone)]
pub struct GrpcMetrics {
    calls: Family<CallLabels, Counter>,
    durations: Family<MethodLabels, Histogram, fn() -> Histogram>,
}

impl Default for GrpcMetrics {
    fn default() -> Self {
        Self {
            calls: Family::default(),
            durations: Family::new_with_constructor(crate::metrics::histogram),
        }
    }
}

impl GrpcMetrics {
    /// Adds the families to `registry`.
    pub(crate) fn register(&self, registry: &mut Registry) {
        registry.register(
            "tenet_grpc_calls",
            "gRPC calls answered, by method and status code",
            self.calls.clone(),
        );
        registry.register_with_unit(
            "tenet_grpc_call_duration",
            "Time from a gRPC call's request head to its status, by method",
            Unit::Seconds,
            self.durations.clone(),
        );
    }

    /// `routes` with every call recorded here.
    pub fn instrument(&self, routes: tenet_grpc::GrpcRoutes) -> tenet_grpc::GrpcRoutes {
        let router = routes
            .into_axum_router()
            .layer(axum::middleware::from_fn_with_state(self.clone(), track));
        tenet_grpc::GrpcRoutes::from(router)
    }

    fn record(&self, method: &str, code: i32, started: Instant) {
        // UNIMPLEMENTED: a method tenet does not serve.
        let method = if code == 12 { "unknown" } else { method };
        self.calls
            .get_or_create(&CallLabels {
                method: method.to_string(),
                code: code_name(code),
            })
            .inc();
        self.durations
            .get_or_create(&MethodLabels {
                method: method.to_string(),
            })
            .observe(started.elapsed().as_secs_f64());
    }
}

/// gRPC's name of a status code (`OK`, `NOT_FOUND`, …).
fn code_name(code: i32) -> &'static str {
    const NAMES: [&str; 17] = [
        "OK",
        "CANCELLED",
        "UNKNOWN",
        "INVALID_ARGUMENT",
        "DEADLINE_EXCEEDED",
        "NOT_FOUND",
        "ALREADY_EXISTS",
        "PERMISSION_DENIED",
        "RESOURCE_EXHAUSTED",
        "FAILED_PRECONDITION",
        "ABORTED",
        "OUT_OF_RANGE",
        "UNIMPLEMENTED",
        "INTERNAL",
        "UNAVAILABLE",
        "DATA_LOSS",
        "UNAUTHENTICATED",
    ];
    usize::try_from(code)
        .ok()
        .and_then(|i| NAMES.get(i))
        .copied()
        .unwrap_or("UNKNOWN")
}

/// The `grpc-status` of a header map, if it has one.
fn status_of(headers: &axum::http::HeaderMap) -> Option<i32> {
    headers
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}

async fn track(State(metrics): State<GrpcMetrics>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.uri().path().to_string();
    let response = next.run(request).await;
    if let Some(code) = status_of(response.headers()) {
        metrics.record(&method, code, started);
        return response;
    }
    response.map(|body| {
        Body::new(Observed {
            inner: body,
            call: Some((metrics, method, started)),
        })
    })
}

/// A response body that records its call at its trailers (or when it is
/// dropped without them).
struct Observed {
    inner: Body,
    /// Taken when the call is recorded.
    call: Option<(GrpcMetrics, String, Instant)>,
}

impl Observed {
    fn finish(&mut self, code: i32) {
        if let Some((metrics, method, started)) = self.call.take() {
            metrics.record(&method, code, started);
        }
    }
}

impl HttpBody for Observed {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(code) = frame.trailers_ref().and_then(status_of) {
                    self.finish(code);
                }
            }
            // A body that ends or fails without a status: UNKNOWN.
            Poll::Ready(None) | Poll::Ready(Some(Err(_))) => self.finish(2),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Observed {
    fn drop(&mut self) {
        // Dropped before its status was sent: the client went away.
        self.finish(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_have_grpcs_names_and_anything_else_is_unknown() {
        for (code, name) in [
            (0, "OK"),
            (7, "PERMISSION_DENIED"),
            (12, "UNIMPLEMENTED"),
            (16, "UNAUTHENTICATED"),
            (17, "UNKNOWN"),
            (-1, "UNKNOWN"),
        ] {
            assert_eq!(code_name(code), name);
        }
    }
}
