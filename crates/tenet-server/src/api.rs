//! OPA's REST API, per tenant: the data API (`GET`/`POST /v1/data/{path}`),
//! the default decision (`POST /`) and health. Every route exists twice:
//! under `/tenants/{tenant}` (so an OPA SDK pointed at
//! `http://host/tenants/{tenant}` works unchanged) and bare, with the tenant
//! in a header (`X-Tenant-ID` by default). Parsing and error mapping only.

use crate::auth::{Auth, Scope};
use crate::decision_log::{decision_log, deferred};
use crate::front::{GuardLayer, Guarded, OpaRoutingLayer};
use crate::input::{input_from_value, is_yaml, parse_input_document, parse_json};
use crate::ApiError;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, HeaderName, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{middleware, Json, Router};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::io::Read;
use std::sync::Arc;
use std::time::Instant;
use tenet::{Evaluator, Host, Input, InstanceState, PolicyError};

/// What the handlers share.
#[derive(Debug)]
pub struct AppState {
    /// The instances.
    pub host: Host,
    /// Header naming the tenant on bare paths.
    pub tenant_header: HeaderName,
    /// Path of the default decision (`POST /`), e.g. `system/main`.
    pub default_decision: String,
    /// Largest request body, after gzip decoding, in bytes.
    pub max_body_bytes: usize,
    /// Tokens, their scopes, and whether writes need one (auth.rs).
    pub auth: Auth,
    /// Leases taken by `PUT /v1/tenants/{id}` (pins).
    pub pins: std::sync::Mutex<HashMap<String, tenet::Lease>>,
    /// Log every decision (console decision log) and give each a
    /// `decision_id`, as OPA does when decision logging is on.
    pub decision_log: bool,
    /// Records every decision, with its `decision_id`, in the decision
    /// logs uploaded to a service (`decision_logs.service`;
    /// decision_log.rs).
    pub decision_logs: Option<tenet_telemetry::Recorder>,
    /// Most inputs in one batch request; 413 past it.
    pub max_batch_inputs: usize,
    /// Where AuthZEN evaluations decide (authzen.rs).
    pub authzen: crate::authzen::AuthzenConfig,
    /// Where PORC requests decide, and their input's shape (authzen.rs).
    pub porc: crate::authzen::PorcConfig,
    /// Most distinct `tenant` label values in `/metrics`; the rest are
    /// added up under `tenant="__other__"` (label_cap.rs).
    pub max_tenant_labels: usize,
    /// Most work in one batch request: the sizes of its merged inputs
    /// added up (each input plus `common_input`, measured as inputs are);
    /// 413 past it, before any input is decided.
    pub max_batch_bytes: u64,
    /// The worker supervisor (`isolation:`), when worker processes run.
    pub workers: Option<tenet::Supervisor>,
    /// Header carrying the session key (isolation level `session`).
    pub session_header: Option<HeaderName>,
    /// The last decisions of each tenant, for the status page (page.rs).
    pub(crate) recent: crate::page::RecentDecisions,
    /// Run every request in a span that joins the caller's trace
    /// (traces.rs); set when traces are exported.
    pub traces: bool,
    /// The gRPC calls' families in `/metrics` (grpc_metrics.rs): wrap the
    /// gRPC routes with [`crate::GrpcMetrics::instrument`] to fill them.
    pub grpc_metrics: crate::GrpcMetrics,
}

impl AppState {
    /// State with no tokens and no pins. Policy and data writes are
    /// refused until `auth` allows them (a token with the write scope, or
    /// `Auth::new(true)`): an embedder opts in to open writes.
    pub fn new(
        host: Host,
        tenant_header: HeaderName,
        default_decision: String,
        max_body_bytes: usize,
    ) -> Self {
        Self {
            host,
            tenant_header,
            default_decision,
            max_body_bytes,
            auth: Auth::new(false),
            pins: std::sync::Mutex::new(HashMap::new()),
            decision_log: false,
            decision_logs: None,
            max_batch_inputs: crate::batch::MAX_BATCH_INPUTS,
            max_tenant_labels: 1_000,
            authzen: Default::default(),
            porc: Default::default(),
            max_batch_bytes: crate::batch::MAX_BATCH_BYTES,
            workers: None,
            session_header: None,
            recent: Default::default(),
            traces: false,
            grpc_metrics: Default::default(),
        }
    }
}

/// The router: every endpoint, with `state`.
pub fn app(state: AppState) -> Router {
    let limit = state.max_body_bytes;
    let state = Arc::new(state);
    let data_methods = || get(data).post(data).put(data).patch(data).delete(data);
    let policy_methods = || {
        get(crate::push::policy)
            .put(crate::push::policy)
            .delete(crate::push::policy)
    };
    let mut decisions = Router::new();
    // Every API route twice: bare (tenant from the header) and under
    // `/tenants/{tenant}`. Trailing slashes are redirected (see
    // `OpaRoutingLayer`).
    for prefix in ["", "/tenants/{tenant}"] {
        decisions = decisions
            .route(&format!("{prefix}/v1/data"), data_methods())
            .route(&format!("{prefix}/v1/data/{{*path}}"), data_methods())
            .route(
                &format!("{prefix}/v1/batch/data"),
                post(crate::batch::batch),
            )
            .route(
                &format!("{prefix}/v1/batch/data/{{*path}}"),
                post(crate::batch::batch),
            )
            .route(&format!("{prefix}/v1/status"), get(crate::status::status))
            .route(&format!("{prefix}/v1/config"), get(crate::status::config))
            .route(&format!("{prefix}/v1/policies"), get(crate::push::list))
            .route(&format!("{prefix}/v1/policies/{{*id}}"), policy_methods())
            .route(
                &format!("{prefix}/access/v1/evaluation"),
                post(crate::authzen::evaluation),
            )
            .route(
                &format!("{prefix}/access/v1/evaluations"),
                post(crate::authzen::evaluations),
            )
            .route(&format!("{prefix}/v1/porc"), post(crate::authzen::porc));
    }
    let decisions = decisions
        .route("/v0/data/{*path}", post(webhook))
        .route("/tenants/{tenant}/v0/data/{*path}", post(webhook))
        .route("/", post(default_decision))
        .route("/tenants/{tenant}", post(default_decision))
        .route("/tenants/{tenant}/", post(default_decision))
        .route_layer(GuardLayer::new(state.clone(), Guarded::Decisions));
    let admin = Router::new()
        .route("/v1/tenants", get(list_tenants))
        .route(
            "/v1/tenants/{tenant}",
            get(get_tenant).put(pin_tenant).delete(unpin_tenant),
        )
        .route("/v1/tenants/{tenant}/reload", post(reload_tenant))
        .route(
            "/v1/tenants/{tenant}/isolation",
            get(crate::workers::isolation).post(crate::workers::set_isolation),
        )
        .route("/v1/workers", get(crate::workers::workers))
        .route(
            "/v1/tenants/{tenant}/decisions",
            get(crate::page::decisions),
        )
        // The tenant's status document for admins (the status page).
        .route("/v1/tenants/{tenant}/status", get(crate::status::status))
        .route_layer(GuardLayer::new(state.clone(), Guarded::Admin));
    let router = Router::new()
        .route("/health", get(health))
        // The status page holds no data (its calls are admin calls).
        .route("/", get(crate::page::page))
        .route("/ui", get(crate::page::page))
        .route("/health/live", get(live))
        .route("/health/ready", get(ready))
        .route("/tenants/{tenant}/health", get(tenant_health))
        .merge(decisions)
        .merge(admin)
        .fallback(not_found)
        .layer(OpaRoutingLayer)
        // The body limit is enforced by `body()` below with an OPA-shaped
        // 413; axum's own limit is lifted so it does not answer first.
        .layer(DefaultBodyLimit::max(limit.saturating_add(1)))
        .with_state(state.clone());
    let router = if state.decision_logs.is_some() {
        router.layer(crate::decision_log::RequestInfoLayer)
    } else {
        router
    };
    let router = if state.traces {
        router.layer(middleware::from_fn(crate::traces::request))
    } else {
        router
    };
    crate::metrics::instrument(router, &state)
}

async fn list_tenants(State(state): State<Arc<AppState>>) -> Json<Value> {
    Json(json!({ "result": state.host.tenants() }))
}

async fn get_tenant(State(state): State<Arc<AppState>>, Path(tenant): Path<String>) -> AppResult {
    tenet::validate_tenant(&tenant)?;
    match state.host.tenant(&tenant) {
        Some(snapshot) => Ok(Json(json!({ "result": snapshot })).into_response()),
        None => Err(tenet::HostError::TenantNotFound { tenant }.into()),
    }
}

/// Pins a tenant: the server holds a lease until `DELETE`. Idempotent.
async fn pin_tenant(State(state): State<Arc<AppState>>, Path(tenant): Path<String>) -> AppResult {
    let mut pins = state.pins.lock().unwrap_or_else(|p| p.into_inner());
    if !pins.contains_key(&tenant) {
        let lease = state.host.acquire(&tenant)?;
        pins.insert(tenant.clone(), lease);
    }
    drop(pins);
    Ok(Json(json!({ "result": state.host.tenant(&tenant) })).into_response())
}

/// Releases a pin; the tenant then stays warm for the grace period.
async fn unpin_tenant(State(state): State<Arc<AppState>>, Path(tenant): Path<String>) -> AppResult {
    let lease = state
        .pins
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remove(&tenant);
    match lease {
        Some(lease) => {
            drop(lease);
            Ok(Json(json!({})).into_response())
        }
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "resource_not_found",
            format!("tenant {tenant:?} is not pinned"),
        )),
    }
}

/// Fetches the tenant's bundle now; answers with the revision activated
/// (`null` when the bundle did not change).
async fn reload_tenant(
    State(state): State<Arc<AppState>>,
    Path(tenant): Path<String>,
) -> AppResult {
    let revision = state.host.reload(&tenant).await.map_err(|e| match e {
        // The fetch or the new revision failed; the tenant keeps serving
        // its last good revision, so this is not "not ready".
        tenet::HostError::LoadFailed { .. } => {
            ApiError::new(StatusCode::BAD_GATEWAY, "load_failed", e.to_string())
        }
        other => other.into(),
    })?;
    Ok(Json(json!({ "result": { "revision": revision.as_deref() } })).into_response())
}

pub(crate) type AppResult = Result<Response, ApiError>;

async fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "resource_not_found",
        "page not found",
    )
}

async fn live() -> Json<Value> {
    Json(json!({}))
}

/// `/health`: 200 once the process can decide. `?bundles` also requires
/// every referenced tenant to have an active revision, as OPA's `?bundles`.
async fn health(
    State(state): State<Arc<AppState>>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> AppResult {
    if q.contains_key("bundles") {
        return ready(State(state), headers).await;
    }
    Ok(Json(json!({})).into_response())
}

/// `/tenants/{tenant}/health`: 200 `{}` once the tenant can decide (it is
/// loaded on demand, like a decision would). Needs no token, like OPA's
/// `/health` (OPAL and Kubernetes probe it without one): it answers only
/// whether the tenant is ready, never its data.
async fn tenant_health(
    State(state): State<Arc<AppState>>,
    Path(tenant): Path<String>,
) -> AppResult {
    state.host.ready(&tenant).await?;
    Ok(Json(json!({})).into_response())
}

/// `/health/ready` (and `/health?bundles`): 500 while a referenced tenant
/// has no active revision. The tenants are named only when no token is
/// configured or the request carries the admin token; otherwise only their
/// number is given, so tenant names do not leak to unauthenticated callers.
async fn ready(State(state): State<Arc<AppState>>, headers: HeaderMap) -> AppResult {
    let open = !state.auth.any_token();
    let admin = state.auth.grants(Scope::Admin, &headers);
    let waiting: Vec<String> = state
        .host
        .tenants()
        .into_iter()
        .filter(|t| t.references > 0 && t.state != InstanceState::Active)
        .map(|t| t.tenant)
        .collect();
    if waiting.is_empty() {
        Ok(Json(json!({})).into_response())
    } else {
        Ok((
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(json!({"error": if open || admin {
                format!("not activated: {}", waiting.join(", "))
            } else {
                format!("not activated: {} tenants", waiting.len())
            }})),
        )
            .into_response())
    }
}

/// The tenant: from `/tenants/{tenant}/…` when the route has it, else from
/// the tenant header.
pub(crate) fn tenant_of(
    state: &AppState,
    params: &HashMap<String, String>,
    headers: &HeaderMap,
) -> Result<String, ApiError> {
    if let Some(tenant) = params.get("tenant") {
        return Ok(tenant.clone());
    }
    headers
        .get(&state.tenant_header)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .ok_or_else(|| {
            ApiError::invalid_parameter(format!(
                "missing tenant: use /tenants/{{tenant}}/… or the {} header",
                state.tenant_header
            ))
        })
}

/// Every data-API route, with or without `{tenant}` and `{*path}`.
async fn data(
    State(state): State<Arc<AppState>>,
    Path(params): Path<HashMap<String, String>>,
    uri: axum::http::Uri,
    method: Method,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> AppResult {
    let tenant = tenant_of(&state, &params, &headers)?;
    let components = data_path(&uri, params.contains_key("tenant"))?;
    if method == Method::DELETE && !params.contains_key("path") {
        // OPA has no DELETE on the data root.
        return Err(ApiError::method_not_allowed());
    }
    if matches!(method, Method::PUT | Method::PATCH | Method::DELETE) {
        return crate::push::write_data(&state, &tenant, &components, &method, &headers, body)
            .await;
    }
    let path = tenet::QueryPath::from_components(components).to_rego();
    decide_data(&state, &tenant, &path, &method, &q, &headers, body).await
}

/// The document path of a data-API request, from the raw URI so that an
/// escaped slash (`a%2Fb`) stays inside its key, as in OPA.
/// Most segments a data path may have. OPA has no bound; without one, a
/// write to `/v1/data/a/a/…` 5,000 deep recursed past the end of the stack
/// (hardening issue, finding 1). Real documents are nowhere near this deep,
/// and a query reference past ~250 segments is beyond the Rego parser's
/// nesting bound anyway.
pub const MAX_DATA_PATH_SEGMENTS: usize = 128;

/// The data path of a request, decoded; more than
/// [`MAX_DATA_PATH_SEGMENTS`] segments is a 400 `invalid_parameter`.
pub(crate) fn data_path(
    uri: &axum::http::Uri,
    tenant_prefix: bool,
) -> Result<Vec<String>, ApiError> {
    let mut raw = uri.path();
    if tenant_prefix {
        // `/tenants/{tenant}` first: the tenant id itself has no slash.
        raw = raw.strip_prefix("/tenants/").unwrap_or(raw);
        raw = raw.find('/').map_or("", |i| &raw[i..]);
    }
    let raw = raw
        .strip_prefix("/v1/batch/data")
        .or_else(|| raw.strip_prefix("/v1/data"))
        .or_else(|| raw.strip_prefix("/v0/data"))
        .unwrap_or(raw);
    let segments = raw.split('/').filter(|c| !c.is_empty());
    if segments.clone().nth(MAX_DATA_PATH_SEGMENTS).is_some() {
        return Err(ApiError::invalid_parameter(format!(
            "data path has more than {MAX_DATA_PATH_SEGMENTS} segments"
        )));
    }
    Ok(segments
        .map(|c| {
            percent_encoding::percent_decode_str(c)
                .decode_utf8_lossy()
                .into_owned()
        })
        .collect())
}

/// The request body, gzip-decoded when `Content-Encoding: gzip`, refused
/// past the body limit with an OPA-shaped 413.
pub(crate) fn body(
    state: &AppState,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Bytes, ApiError> {
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid_parameter",
            format!("request body exceeds {} bytes", state.max_body_bytes),
        )
    };
    let raw = body.map_err(|e| match e {
        BytesRejection::FailedToBufferBody(_) => too_large(),
        other => ApiError::invalid_parameter(other.body_text()),
    })?;
    if raw.len() > state.max_body_bytes {
        return Err(too_large());
    }
    let gzip = headers
        .get(axum::http::header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("gzip"));
    if !gzip {
        return Ok(raw);
    }
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(raw.as_ref())
        .take(state.max_body_bytes as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| ApiError::invalid_parameter(format!("invalid gzip body: {e}")))?;
    if out.len() > state.max_body_bytes {
        return Err(too_large());
    }
    Ok(out.into())
}

/// True when the boolean query parameter is set: `?name`, `?name=true`
/// (OPA's reading of `pretty`, `metrics`, `provenance`).
pub(crate) fn flag(q: &HashMap<String, String>, name: &str) -> bool {
    q.get(name)
        .is_some_and(|v| v.is_empty() || v.eq_ignore_ascii_case("true"))
}

/// A JSON answer, indented with two spaces under `?pretty`.
pub(crate) fn reply(status: StatusCode, body: Value, pretty: bool) -> Response {
    reply_with(status, &body, pretty)
}

/// [`reply`] for anything serializable.
fn reply_with(status: StatusCode, body: &impl serde::Serialize, pretty: bool) -> Response {
    let text = if pretty {
        serde_json::to_vec_pretty(body)
    } else {
        serde_json::to_vec(body)
    };
    match text {
        Ok(text) => (
            status,
            [(
                axum::http::header::CONTENT_TYPE,
                axum::http::HeaderValue::from_static("application/json"),
            )],
            text,
        )
            .into_response(),
        // Values from the engine and serde_json always serialize; should
        // one not, the client gets OPA's shape of an internal error.
        Err(e) => ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            format!("encoding the answer failed: {e}"),
        )
        .into_response(),
    }
}

/// What `?provenance` adds: the build and the revision that decided.
fn provenance(tenant: &str, revision: &str) -> Value {
    json!({
        "version": env!("CARGO_PKG_VERSION"),
        "build_commit": option_env!("TENET_BUILD_COMMIT").unwrap_or(""),
        "build_timestamp": option_env!("TENET_BUILD_TIMESTAMP").unwrap_or(""),
        "build_hostname": option_env!("TENET_BUILD_HOSTNAME").unwrap_or(""),
        "bundles": { tenant: { "revision": revision } },
    })
}

async fn decide_data(
    state: &AppState,
    tenant: &str,
    path: &str,
    method: &Method,
    q: &HashMap<String, String>,
    headers: &HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> AppResult {
    let started = Instant::now();
    let limits = state.host.config().eval_limits.clone();
    let yaml = is_yaml(headers);
    // The input and whether the request gave one (OPA warns when a POST
    // has no `input`).
    let (input, given) = if method == Method::GET {
        match q.get("input") {
            Some(text) => {
                let value: Value = serde_json::from_str(text).map_err(|e| {
                    ApiError::invalid_parameter(format!(
                        "parameter contains malformed input document: {e}"
                    ))
                })?;
                (input_from_value(&value, &limits)?, true)
            }
            None => (Input::none(), false),
        }
    } else {
        let bytes = body(state, headers, raw)?;
        let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
        match first {
            None => (Input::none(), false),
            // The common case, a JSON object: parsed once, straight into
            // the engine's values.
            Some(b'{') if !yaml => match Input::from_envelope_json(&bytes, &limits) {
                Ok(Some(input)) => (input, true),
                Ok(None) => (Input::none(), false),
                Err(PolicyError::InvalidInput { reason }) => {
                    return Err(ApiError::invalid_parameter(format!(
                        "body contains malformed input document: {reason}"
                    )))
                }
                Err(e) => return Err(e.into()),
            },
            Some(_) => {
                let document = parse_input_document(
                    &bytes,
                    yaml,
                    "body contains malformed input document",
                    &limits,
                    true,
                )?;
                match document {
                    Value::Object(mut o) => match o.remove("input") {
                        Some(v) => (input_from_value(&v, &limits)?, true),
                        None => (Input::none(), false),
                    },
                    _ => {
                        return Err(ApiError::invalid_parameter(
                            "body contains malformed input document: expected a JSON object with an \"input\" key",
                        ))
                    }
                }
            }
        }
    };
    let parsed = Instant::now();
    let decision = state.decide(tenant, headers, path, &input).await?;
    let evaluated = Instant::now();
    let decision_id = decision_log(state, tenant, path, &decision, || deferred(&input));
    let metrics = flag(q, "metrics").then(|| {
        let ns = |d: std::time::Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        json!({
            "counter_server_query_cache_hit": u64::from(decision.cached),
            "timer_rego_input_parse_ns": ns(parsed - started),
            "timer_rego_query_eval_ns": ns(evaluated - parsed),
            "timer_server_handler_ns": ns(started.elapsed()),
            // Which evaluator decided (tenet's own; OPA has one).
            "counter_tenet_eval_vm": u64::from(decision.evaluator == Some(Evaluator::Vm)),
            "counter_tenet_eval_interpreter": u64::from(decision.evaluator == Some(Evaluator::Interpreter)),
        })
    });
    let answer = DataAnswer {
        decision_id: decision_id.as_deref(),
        result: decision.result.as_ref(),
        warning: (!given && method == Method::POST).then(|| {
            json!({"code": "api_usage_warning", "message": "'input' key missing from the request"})
        }),
        provenance: flag(q, "provenance").then(|| provenance(tenant, &decision.revision)),
        metrics,
    };
    Ok(reply_with(StatusCode::OK, &answer, flag(q, "pretty")))
}

/// The answer of the data API, in OPA's key order; absent keys are left
/// out. Serialized straight from the decision (no JSON map is built).
#[derive(serde::Serialize)]
struct DataAnswer<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    decision_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    result: Option<&'a Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    warning: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    provenance: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    metrics: Option<Value>,
}

/// OPA's webhook API, `POST /v0/data/{path}`: the body is the input and the
/// answer is the bare document; undefined is a 404.
async fn webhook(
    State(state): State<Arc<AppState>>,
    Path(params): Path<HashMap<String, String>>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> AppResult {
    let tenant = tenant_of(&state, &params, &headers)?;
    let components = data_path(&uri, params.contains_key("tenant"))?;
    let path = &components.join("/");
    let bytes = body(&state, &headers, raw)?;
    let limits = state.host.config().eval_limits.clone();
    let input = if bytes.iter().all(u8::is_ascii_whitespace) {
        Input::none()
    } else {
        let document = parse_json(&bytes, "body contains malformed input document")?;
        input_from_value(&document, &limits)?
    };
    let decision = state.decide(&tenant, &headers, path, &input).await?;
    // The answer is the bare document, so the id is only logged.
    decision_log(&state, &tenant, path, &decision, || deferred(&input));
    match decision.result {
        Some(result) => Ok(Json(result).into_response()),
        None => Err(undefined_document(&state, &tenant, path).await),
    }
}

/// OPA's 404 for an undefined document: "document undefined" when some
/// module defines rules at or above the path, "document missing" when none
/// does.
async fn undefined_document(state: &AppState, tenant: &str, path: &str) -> ApiError {
    let components: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
    let dotted = format!("data.{}", components.join("."));
    let defined = state.host.policies(tenant).await.is_ok_and(|modules| {
        modules.iter().any(|m| {
            tenet::package_path(&m.raw).is_ok_and(|pkg| {
                pkg.len() <= components.len() && pkg.iter().zip(&components).all(|(a, b)| a == b)
            })
        })
    });
    let what = if defined { "undefined" } else { "missing" };
    ApiError::new(
        StatusCode::NOT_FOUND,
        "undefined_document",
        format!("document {what}: {dotted}"),
    )
}

async fn default_decision(
    State(state): State<Arc<AppState>>,
    Path(params): Path<HashMap<String, String>>,
    headers: HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> AppResult {
    let tenant = tenant_of(&state, &params, &headers)?;
    decide_default(&state, &tenant, &headers, raw).await
}

/// `POST /`: the whole body is the input; an undefined result is a 404
/// `undefined_document`, as in OPA.
async fn decide_default(
    state: &AppState,
    tenant: &str,
    headers: &HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> AppResult {
    let bytes = body(state, headers, raw)?;
    let limits = state.host.config().eval_limits.clone();
    let input = if bytes.iter().all(u8::is_ascii_whitespace) {
        Input::none()
    } else {
        let document = parse_input_document(
            &bytes,
            is_yaml(headers),
            "unexpected parse error for input",
            &limits,
            false,
        )?;
        input_from_value(&document, &limits)?
    };
    let decision = state
        .decide(tenant, headers, &state.default_decision, &input)
        .await?;
    decision_log(state, tenant, &state.default_decision, &decision, || {
        deferred(&input)
    });
    match decision.result {
        Some(result) => Ok(Json(result).into_response()),
        None => Err(undefined_document(state, tenant, &state.default_decision).await),
    }
}
