//! `GET /metrics`: Prometheus metrics in the OpenMetrics text format
//! (`application/openmetrics-text; version=1.0.0`, which Prometheus asks for
//! and parses; counters carry the `_total` suffix there).
//!
//! Two kinds of metrics:
//! - **HTTP**, recorded by a middleware on every route:
//!   `tenet_http_requests_total{handler,code}` and the histogram
//!   `tenet_http_request_duration_seconds{handler}`. `handler` is the route
//!   template (`/tenants/{tenant}/v1/data/{*path}`), never the raw path, and
//!   `unmatched` for the fallback, so the label set stays bounded whatever
//!   clients send.
//! - **Host**, read at scrape time from [`tenet::Host`]: instance count and
//!   approximate memory, the lifetime load counters of [`tenet::HostStats`],
//!   instances by state, and per tenant (from [`tenet::Host::tenants`]):
//!   `tenet_decisions_total`, `tenet_decision_errors_total`,
//!   `tenet_decision_cache_hits_total`, `tenet_tenant_approx_bytes`,
//!   `tenet_tenant_references`. A tenant's counters start again from zero
//!   when its instance is collected and created again (Prometheus treats
//!   that as a counter reset). A scrape costs one snapshot per live
//!   instance.
//!
//! Access: per-tenant labels name tenants, which the admin API also lists,
//! so `/metrics` requires the admin token when one is configured (Prometheus
//! sends it with `authorization: {credentials: …}`) and is open otherwise,
//! as in OPA. It never requires the decision token.
//!
//! This module only counts and encodes; it makes no decisions and changes
//! no state of the host.

use crate::label_cap::{LabelCap, OTHER};
use crate::AppState;
use axum::extract::{MatchedPath, Request};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use pin_project_lite::pin_project;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeLabelSet, EncodeLabelValue, EncodeMetric, LabelValueEncoder,
};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};
use std::collections::{BTreeMap, HashSet};
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Instant;
use tenet::{Host, InstanceState};

/// The content type of a scrape.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Request-duration buckets, in seconds: 0.5 ms to 10 s.
const BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    handler: Route,
    code: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HandlerLabels {
    handler: Route,
}

/// The `handler` label: the route template a request matched, or
/// `unmatched`. It holds axum's own shared template, so labelling a
/// request allocates nothing.
#[derive(Debug, Clone)]
struct Route(Option<MatchedPath>);

impl Route {
    fn as_str(&self) -> &str {
        self.0.as_ref().map_or("unmatched", MatchedPath::as_str)
    }
}

impl PartialEq for Route {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for Route {}

impl std::hash::Hash for Route {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl EncodeLabelValue for Route {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        EncodeLabelValue::encode(&self.as_str(), encoder)
    }
}

pub(crate) fn histogram() -> Histogram {
    Histogram::new(BUCKETS)
}

/// Set by the server when a request's body did not arrive within the body
/// read timeout; the server then answers 408 in place of the handler's
/// answer, and the middleware counts that code.
#[derive(Debug, Clone, Default)]
pub(crate) struct BodyTimedOut(pub(crate) Arc<AtomicBool>);

impl BodyTimedOut {
    pub(crate) fn set(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    pub(crate) fn get(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// The registry and the HTTP metrics the middleware writes.
#[derive(Debug)]
struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    durations: Family<HandlerLabels, Histogram, fn() -> Histogram>,
}

impl Metrics {
    fn new(
        host: Host,
        logs: Option<tenet_telemetry::DecisionLogs>,
        max_tenant_labels: usize,
        workers: Option<tenet::Supervisor>,
        grpc: &crate::GrpcMetrics,
    ) -> Self {
        let cap = Arc::new(LabelCap::new(max_tenant_labels));
        let mut registry = Registry::default();
        grpc.register(&mut registry);
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "tenet_http_requests",
            "HTTP requests answered, by route template and status code",
            requests.clone(),
        );
        let durations =
            Family::<HandlerLabels, Histogram, fn() -> Histogram>::new_with_constructor(histogram);
        registry.register_with_unit(
            "tenet_http_request_duration",
            "Time from the request head to the response head, by route template",
            Unit::Seconds,
            durations.clone(),
        );
        // The host's collector chooses the tenant labels; it is encoded
        // before the decision logs', which use its choice.
        registry.register_collector(Box::new(HostCollector {
            host,
            cap: cap.clone(),
        }));
        if let Some(logs) = logs {
            registry.register_collector(Box::new(DecisionLogCollector { logs, cap }));
        }
        if let Some(workers) = workers {
            registry.register_collector(Box::new(WorkerCollector { workers }));
        }
        Self {
            registry,
            requests,
            durations,
        }
    }

    fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

/// Adds `GET /metrics` to `router` and the middleware that counts every
/// request on it (including `/metrics` itself and the fallback).
pub(crate) fn instrument(router: Router, state: &Arc<AppState>) -> Router {
    let metrics = Arc::new(Metrics::new(
        state.host.clone(),
        state.decision_logs.as_ref().map(|r| r.logs().clone()),
        state.max_tenant_labels,
        state.workers.clone(),
        &state.grpc_metrics,
    ));
    let scrape = {
        let metrics = metrics.clone();
        let state = state.clone();
        move |headers: HeaderMap| async move { scrape(&metrics, &state, &headers) }
    };
    router
        .route("/metrics", get(scrape))
        .layer(TrackLayer(metrics))
}

fn scrape(metrics: &Metrics, state: &AppState, headers: &HeaderMap) -> Response {
    if let Err(e) = state.auth.check(crate::auth::Scope::Admin, headers) {
        return e.into_response();
    }
    match metrics.encode() {
        Ok(body) => (
            [(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE))],
            body,
        )
            .into_response(),
        Err(_) => crate::ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "encoding metrics failed",
        )
        .into_response(),
    }
}

/// Counts and times every request ([`Metrics::requests`],
/// [`Metrics::durations`]). A tower layer rather than
/// `axum::middleware::from_fn`, which clones the route and boxes the
/// middleware's future on every request (see front.rs).
#[derive(Debug, Clone)]
struct TrackLayer(Arc<Metrics>);

impl<S> tower::Layer<S> for TrackLayer {
    type Service = Track<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Track {
            inner,
            metrics: self.0.clone(),
        }
    }
}

/// The service [`TrackLayer`] wraps a route in.
#[derive(Debug, Clone)]
struct Track<S> {
    inner: S,
    metrics: Arc<Metrics>,
}

impl<S> tower::Service<Request> for Track<S>
where
    S: tower::Service<Request, Response = Response, Error = Infallible>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Tracked<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let route = Route(request.extensions().get::<MatchedPath>().cloned());
        let timed_out = request.extensions().get::<BodyTimedOut>().cloned();
        Tracked {
            future: self.inner.call(request),
            metrics: self.metrics.clone(),
            route,
            timed_out,
            started: Instant::now(),
        }
    }
}

pin_project! {
    /// A route's answer, counted when it comes.
    struct Tracked<F> {
        #[pin]
        future: F,
        metrics: Arc<Metrics>,
        route: Route,
        timed_out: Option<BodyTimedOut>,
        started: Instant,
    }
}

impl<F> Future for Tracked<F>
where
    F: Future<Output = Result<Response, Infallible>>,
{
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let Ok(response) = ready!(this.future.poll(cx));
        let elapsed = this.started.elapsed().as_secs_f64();
        let code = if this.timed_out.as_ref().is_some_and(BodyTimedOut::get) {
            StatusCode::REQUEST_TIMEOUT.as_u16()
        } else {
            response.status().as_u16()
        };
        let handler = this.route.clone();
        this.metrics
            .durations
            .get_or_create(&HandlerLabels {
                handler: handler.clone(),
            })
            .observe(elapsed);
        this.metrics
            .requests
            .get_or_create(&RequestLabels { handler, code })
            .inc();
        Poll::Ready(Ok(response))
    }
}

/// Reads the host at scrape time.
#[derive(Debug)]
struct HostCollector {
    host: Host,
    cap: Arc<LabelCap>,
}

/// Reads the decision-log buffers at scrape time.
#[derive(Debug)]
struct DecisionLogCollector {
    logs: tenet_telemetry::DecisionLogs,
    cap: Arc<LabelCap>,
}

impl Collector for DecisionLogCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let e = &mut encoder;
        gauge(
            e,
            "tenet_decision_log_buffered",
            "Bytes of decision-log events waiting for an upload, all tenants",
            Some(&Unit::Bytes),
            clamp(self.logs.total_bytes()),
        )?;
        let stats = self.logs.stats();
        let members = self.cap.members();
        type PerTenant = (
            &'static str,
            &'static str,
            fn(&tenet_telemetry::TenantLogStats) -> u64,
        );
        let counters: [PerTenant; 2] = [
            (
                "tenet_decision_log_dropped",
                "Decision-log events dropped (buffer full, too large), per tenant",
                |s| s.dropped,
            ),
            (
                "tenet_decision_log_uploaded",
                "Decision-log events the service accepted, per tenant",
                |s| s.uploaded,
            ),
        ];
        for (name, help, value) in counters {
            let rows = stats.iter().map(|s| (s.tenant.as_str(), value(s)));
            per_tenant(e, name, help, true, per_label(rows, &members, add))?;
        }
        Ok(())
    }
}

/// A metric family of the worker report: name, help, whether it is a
/// counter, and its value per label.
type WorkerFamily<'a> = (&'a str, &'a str, bool, Vec<(&'a str, u64)>);

/// Reads the worker supervisor's report at scrape time. Totals only: each
/// worker's detail (pid, restarts, last error) is the admin API's
/// (`GET /v1/workers`), so workers add no tenant label.
#[derive(Debug)]
struct WorkerCollector {
    workers: tenet::Supervisor,
}

impl Collector for WorkerCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let e = &mut encoder;
        let report = self.workers.report();
        let families: [WorkerFamily<'_>; 3] = [
            (
                "tenet_workers",
                "Worker slots by lifecycle state",
                false,
                report.totals.iter().map(|(s, n)| (*s, *n)).collect(),
            ),
            (
                "tenet_worker_transitions",
                "Times a worker slot entered each lifecycle state",
                true,
                tenet::WorkerState::ALL
                    .iter()
                    .map(|s| {
                        (
                            s.as_str(),
                            report.transitions.get(s.as_str()).copied().unwrap_or(0),
                        )
                    })
                    .collect(),
            ),
            (
                "tenet_worker_errors",
                "Worker failures by type (crash, killed_deadline, health, start)",
                true,
                ["crash", "killed_deadline", "health", "start"]
                    .iter()
                    .map(|t| (*t, report.errors.get(*t).copied().unwrap_or(0)))
                    .collect(),
            ),
        ];
        for (name, help, is_counter, rows) in families {
            let key = if name == "tenet_worker_errors" {
                "type"
            } else {
                "state"
            };
            by_label(e, name, help, is_counter, key, rows)?;
        }
        for (name, help, value) in [
            (
                "tenet_worker_restarts",
                "Worker restarts after failures",
                report.restarts,
            ),
            (
                "tenet_worker_starts",
                "Worker processes started",
                report.starts,
            ),
            (
                "tenet_worker_stops",
                "Workers stopped on purpose (idle, moved, shutdown)",
                report.stops,
            ),
            (
                "tenet_worker_batches",
                "Batches of decisions sent to workers as one request each",
                report.batches,
            ),
        ] {
            counter(e, name, help, value)?;
        }
        for (name, help, seconds) in [
            (
                "tenet_worker_start_seconds",
                "Time spent starting workers, in all",
                report.start_seconds,
            ),
            (
                "tenet_worker_stop_seconds",
                "Time spent stopping workers, in all",
                report.stop_seconds,
            ),
            (
                "tenet_worker_backoff_seconds",
                "Restart delays after failures, in all",
                report.backoff_seconds,
            ),
        ] {
            let c = ConstCounter::new(seconds);
            c.encode(e.encode_descriptor(name, help, None, c.metric_type())?)?;
        }
        gauge(
            e,
            "tenet_worker_queue_depth",
            "Decisions waiting for a worker's answer",
            None,
            clamp(report.queue_depth as u64),
        )?;
        gauge(
            e,
            "tenet_worker_warm",
            "Started workers waiting in the warm pool",
            None,
            clamp(report.warm as u64),
        )?;
        gauge(
            e,
            "tenet_adaptive_isolated",
            "Tenants adaptive isolation moved into workers",
            None,
            clamp(report.adaptive.len() as u64),
        )?;
        Ok(())
    }
}

fn counter(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: u64,
) -> Result<(), std::fmt::Error> {
    let c = ConstCounter::new(value);
    c.encode(encoder.encode_descriptor(name, help, None, c.metric_type())?)
}

fn gauge(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    value: i64,
) -> Result<(), std::fmt::Error> {
    let g = ConstGauge::new(value);
    g.encode(encoder.encode_descriptor(name, help, unit, g.metric_type())?)
}

fn clamp(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

impl Collector for HostCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let e = &mut encoder;
        let host = &self.host;
        gauge(
            e,
            "tenet_instances",
            "Live policy instances",
            None,
            clamp(host.len() as u64),
        )?;
        gauge(
            e,
            "tenet_approx_memory",
            "Approximate memory of all activations (shared policies counted once)",
            Some(&Unit::Bytes),
            clamp(host.approx_memory()),
        )?;
        let (threads, queued) = host.evaluation_queue();
        gauge(
            e,
            "tenet_eval_threads",
            "Threads of the evaluation pool",
            None,
            clamp(threads as u64),
        )?;
        gauge(
            e,
            "tenet_eval_queued",
            "Evaluations waiting for an evaluation thread",
            None,
            clamp(queued as u64),
        )?;
        let s = host.stats();
        for (name, help, value) in [
            ("tenet_bundle_fetches", "Bundle fetches started", s.fetches),
            ("tenet_compiles", "Bundles compiled", s.compiles),
            (
                "tenet_shared_compiles",
                "Activations that reused another tenant's compiled policy",
                s.shared_compiles,
            ),
            ("tenet_activations", "Revisions activated", s.activations),
            (
                "tenet_activation_failures",
                "Loads that failed (fetch, bundle or compile error)",
                s.activation_failures,
            ),
            (
                "tenet_instances_collected",
                "Instances collected after their grace period",
                s.collected,
            ),
            (
                "tenet_instances_evicted",
                "Instances evicted for capacity",
                s.evicted,
            ),
            (
                "tenet_eval_inline",
                "Evaluations of cheap tenants run on the async worker that received them",
                s.inline_evaluations,
            ),
            (
                "tenet_eval_inline_overruns",
                "Inline evaluations cut off at the inline budget and run again on the pool",
                s.inline_overruns,
            ),
        ] {
            counter(e, name, help, value)?;
        }

        let tenants = host.tenant_counters();
        let members = self
            .cap
            .update(tenants.iter().map(|t| (&*t.tenant, t.decisions)));
        let by_state = [
            InstanceState::Loading,
            InstanceState::Active,
            InstanceState::Failed,
        ];
        {
            let mut m = e.encode_descriptor(
                "tenet_instances_by_state",
                "Live policy instances by lifecycle state",
                None,
                prometheus_client::metrics::MetricType::Gauge,
            )?;
            for state in by_state {
                let n = tenants.iter().filter(|t| t.state == state).count();
                let label = [("state", state_name(state))];
                ConstGauge::new(clamp(n as u64)).encode(m.encode_family(&label)?)?;
            }
        }
        type PerTenant = (
            &'static str,
            &'static str,
            fn(&tenet::TenantCounters) -> u64,
        );
        let counters: [PerTenant; 8] = [
            ("tenet_decisions", "Decisions answered, per tenant", |t| {
                t.decisions
            }),
            (
                "tenet_decision_errors",
                "Decisions that failed, per tenant",
                |t| t.decision_errors,
            ),
            (
                "tenet_decision_cache_hits",
                "Decisions answered from the decision cache, per tenant",
                |t| t.cache_hits,
            ),
            (
                "tenet_tenant_deadline_hits",
                "Decisions that ran into their deadline or instruction cap, per tenant",
                |t| t.tally.deadline_hits,
            ),
            (
                "tenet_tenant_evaluations",
                "Decisions evaluated (decision-cache misses), per tenant",
                |t| t.tally.evaluations,
            ),
            (
                "tenet_tenant_bundle_fetches",
                "Bundle fetches started, per tenant",
                |t| t.tally.fetches,
            ),
            (
                "tenet_tenant_activations",
                "Revisions activated, per tenant",
                |t| t.tally.activations,
            ),
            (
                "tenet_tenant_activation_failures",
                "Loads that failed (fetch, bundle or compile error), per tenant",
                |t| t.tally.activation_failures,
            ),
        ];
        for (name, help, value) in counters {
            let rows = tenants.iter().map(|t| (&*t.tenant, value(t)));
            per_tenant(e, name, help, true, per_label(rows, &members, add))?;
        }
        crate::tenant_metrics::encode(e, &tenants, &members)?;
        // Each tenant with its own series also has an info series with its
        // labels (Prometheus's info pattern: join on `tenant`).
        {
            let mut m = e.encode_descriptor(
                "tenet_tenant_info",
                "The labels of each tenant that has its own series (value 1)",
                None,
                prometheus_client::metrics::MetricType::Gauge,
            )?;
            for t in tenants.iter().filter(|t| members.contains(&*t.tenant)) {
                // Two keys that read the same once sanitized: the first wins.
                let mut seen = HashSet::new();
                let labels: Vec<(String, String)> = t
                    .labels
                    .iter()
                    .map(|(k, v)| (label_name(k), v.clone()))
                    .filter(|(k, _)| seen.insert(k.clone()))
                    .collect();
                ConstGauge::new(1).encode(m.encode_family(&labels)?)?;
            }
        }
        let gauges: [PerTenant; 4] = [
            (
                "tenet_tenant_approx_bytes",
                "Approximate memory of the tenant's activation, per tenant",
                |t| t.approx_bytes,
            ),
            (
                "tenet_tenant_references",
                "Leases and route references held, per tenant",
                |t| t.references as u64,
            ),
            (
                "tenet_tenant_pending_evaluations",
                "Evaluations waiting for or running on an evaluation thread, per tenant",
                |t| t.pending_evaluations as u64,
            ),
            (
                "tenet_tenant_evaluation_cost_microseconds",
                "Moving average of recent evaluation times (the fair share's heavy measure), per tenant",
                |t| t.evaluation_cost_us,
            ),
        ];
        for (name, help, value) in gauges {
            // Added up under `__other__`, but for the cost, whose largest
            // value is the one that tells.
            let fold = if name.ends_with("cost_microseconds") {
                u64::max
            } else {
                add
            };
            let rows = tenants.iter().map(|t| (&*t.tenant, value(t)));
            per_tenant(e, name, help, false, per_label(rows, &members, fold))?;
        }
        Ok(())
    }
}

/// `key` as a Prometheus label name: characters outside `[A-Za-z0-9_]`
/// become `_`, and a leading digit gets a `_` before it.
fn label_name(key: &str) -> String {
    let mut name: String = key
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
        name.insert(0, '_');
    }
    name
}

/// One value per tenant label: a member's own, and the others' folded
/// together under `__other__` (which is absent when every tenant has its
/// own series).
fn per_label<'a>(
    rows: impl Iterator<Item = (&'a str, u64)>,
    members: &HashSet<String>,
    fold: fn(u64, u64) -> u64,
) -> BTreeMap<&'a str, u64> {
    let mut by_label: BTreeMap<&str, u64> = BTreeMap::new();
    // Most tenants fold into `__other__`: kept apart, out of the map.
    let mut other: Option<u64> = None;
    for (tenant, v) in rows {
        if members.contains(tenant) {
            by_label
                .entry(tenant)
                .and_modify(|n| *n = fold(*n, v))
                .or_insert(v);
        } else {
            other = Some(other.map_or(v, |n| fold(n, v)));
        }
    }
    if let Some(v) = other {
        by_label.insert(OTHER, v);
    }
    by_label
}

fn add(a: u64, b: u64) -> u64 {
    a + b
}

/// One family of per-tenant samples (`counter`, else a gauge), one sample
/// per tenant label.
fn per_tenant(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    counter: bool,
    values: BTreeMap<&str, u64>,
) -> Result<(), std::fmt::Error> {
    by_label(encoder, name, help, counter, "tenant", values)
}

/// One family with one sample per value of the label `key` (`counter`,
/// else a gauge).
fn by_label<'a>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    counter: bool,
    key: &str,
    values: impl IntoIterator<Item = (&'a str, u64)>,
) -> Result<(), std::fmt::Error> {
    use prometheus_client::metrics::MetricType;
    let kind = if counter {
        MetricType::Counter
    } else {
        MetricType::Gauge
    };
    let mut m = encoder.encode_descriptor(name, help, None, kind)?;
    for (value, n) in values {
        let label = [(key, value)];
        let family = m.encode_family(&label)?;
        if counter {
            ConstCounter::new(n).encode(family)?;
        } else {
            ConstGauge::new(clamp(n)).encode(family)?;
        }
    }
    Ok(())
}

fn state_name(state: InstanceState) -> &'static str {
    match state {
        InstanceState::Loading => "loading",
        InstanceState::Active => "active",
        InstanceState::Failed => "failed",
    }
}
