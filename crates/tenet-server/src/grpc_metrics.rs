//! gRPC calls in `/metrics`: calls by method and status code, and their
//! duration by method, for the gRPC services wherever they are served
//! (`grpc.listen`, and the REST port with `grpc.on_rest_port`). A layer on
//! the gRPC routes records each call once, when its status is known
//! (grpc_status.rs).
//!
//! Method labels are the full gRPC path of a method tenet serves; any
//! call answered `UNIMPLEMENTED` counts under `method="unknown"`, so
//! random method names cannot grow `/metrics`. It observes calls; it never
//! changes one.

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};
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
pub(crate) fn code_name(code: i32) -> &'static str {
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

async fn track(State(metrics): State<GrpcMetrics>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.uri().path().to_string();
    let response = next.run(request).await;
    crate::grpc_status::on_status(response, move |code| metrics.record(&method, code, started))
}
