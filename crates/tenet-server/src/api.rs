//! OPA's REST API, per tenant: the data API (`GET`/`POST /v1/data/{path}`),
//! the default decision (`POST /`) and health. Every route exists twice:
//! under `/tenants/{tenant}` (so an OPA SDK pointed at
//! `http://host/tenants/{tenant}` works unchanged) and bare, with the tenant
//! in a header (`X-Tenant-ID` by default). Parsing and error mapping only.

use crate::ApiError;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, HeaderName, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{middleware, Json, Router};
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::io::Read;
use std::sync::Arc;
use std::time::Instant;
use tenet::{Host, Input, InstanceState};

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
    /// Bearer token required on `/v1/tenants` (admin), if set.
    pub admin_token: Option<String>,
    /// Bearer token required on the decision API, if set.
    pub decision_token: Option<String>,
    /// Leases taken by `PUT /v1/tenants/{id}` (pins).
    pub pins: std::sync::Mutex<HashMap<String, tenet::Lease>>,
}

impl AppState {
    /// State with no tokens and no pins.
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
            admin_token: None,
            decision_token: None,
            pins: std::sync::Mutex::new(HashMap::new()),
        }
    }
}

/// The router: every endpoint, with `state`.
pub fn app(state: AppState) -> Router {
    let limit = state.max_body_bytes;
    let state = Arc::new(state);
    let decisions = Router::new()
        .route("/v1/data", get(data).post(data))
        .route("/v1/data/", get(data).post(data))
        .route("/v1/data/{*path}", get(data).post(data))
        .route("/", post(default_decision))
        .route("/tenants/{tenant}/v1/data", get(data).post(data))
        .route("/tenants/{tenant}/v1/data/", get(data).post(data))
        .route("/tenants/{tenant}/v1/data/{*path}", get(data).post(data))
        .route("/tenants/{tenant}", post(default_decision))
        .route("/tenants/{tenant}/", post(default_decision))
        .route_layer(middleware::from_fn_with_state(state.clone(), decision_auth));
    let admin = Router::new()
        .route("/v1/tenants", get(list_tenants))
        .route("/v1/tenants/", get(list_tenants))
        .route(
            "/v1/tenants/{tenant}",
            get(get_tenant).put(pin_tenant).delete(unpin_tenant),
        )
        .route("/v1/tenants/{tenant}/reload", post(reload_tenant))
        .route_layer(middleware::from_fn_with_state(state.clone(), admin_auth));
    Router::new()
        .route("/health", get(health))
        .route("/health/live", get(live))
        .route("/health/ready", get(ready))
        .merge(decisions)
        .merge(admin)
        .fallback(not_found)
        // The body limit is enforced by `body()` below with an OPA-shaped
        // 413; axum's own limit is lifted so it does not answer first.
        .layer(DefaultBodyLimit::max(limit.saturating_add(1)))
        .with_state(state)
}

/// Refuses a request without `Authorization: Bearer <token>` when a token
/// is configured; compares in constant time.
fn check_bearer(expected: Option<&str>, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(expected) = expected else {
        return Ok(());
    };
    let given = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    let same = given.len() == expected.len()
        && given
            .bytes()
            .zip(expected.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0;
    if same {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing or invalid bearer token",
        ))
    }
}

async fn admin_auth(
    State(state): State<Arc<AppState>>,
    request: axum::extract::Request,
    next: middleware::Next,
) -> Response {
    match check_bearer(state.admin_token.as_deref(), request.headers()) {
        Ok(()) => next.run(request).await,
        Err(e) => e.into_response(),
    }
}

async fn decision_auth(
    State(state): State<Arc<AppState>>,
    request: axum::extract::Request,
    next: middleware::Next,
) -> Response {
    match check_bearer(state.decision_token.as_deref(), request.headers()) {
        Ok(()) => next.run(request).await,
        Err(e) => e.into_response(),
    }
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
    let revision = state.host.reload(&tenant).await?;
    Ok(Json(json!({ "result": { "revision": revision.as_deref() } })).into_response())
}

type AppResult = Result<Response, ApiError>;

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
) -> AppResult {
    if q.contains_key("bundles") {
        return ready(State(state)).await;
    }
    Ok(Json(json!({})).into_response())
}

async fn ready(State(state): State<Arc<AppState>>) -> AppResult {
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
            Json(json!({"error": format!("not activated: {}", waiting.join(", "))})),
        )
            .into_response())
    }
}

/// The tenant: from `/tenants/{tenant}/…` when the route has it, else from
/// the tenant header.
fn tenant_of(
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
    method: Method,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> AppResult {
    let tenant = tenant_of(&state, &params, &headers)?;
    let path = params.get("path").map_or("", String::as_str);
    decide_data(&state, &tenant, path, &method, &q, &headers, body).await
}

/// The request body, gzip-decoded when `Content-Encoding: gzip`, refused
/// past the body limit with an OPA-shaped 413.
fn body(
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

fn parse_json(bytes: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| {
        ApiError::invalid_parameter(format!("body contains malformed input document: {e}"))
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
    let input_value = if method == Method::GET {
        match q.get("input") {
            Some(text) => Some(parse_json(text.as_bytes())?),
            None => None,
        }
    } else {
        let bytes = body(state, headers, raw)?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            None
        } else {
            match parse_json(&bytes)? {
                Value::Object(mut o) => o.remove("input"),
                _ => {
                    return Err(ApiError::invalid_parameter(
                        "body must be a JSON object with an \"input\" key",
                    ))
                }
            }
        }
    };
    let input = match &input_value {
        Some(v) => {
            Input::from_value(v, &limits).map_err(|e| ApiError::invalid_parameter(e.to_string()))?
        }
        None => Input::none(),
    };
    let decision = state.host.decide(tenant, path, &input).await?;
    let mut out = Map::new();
    if let Some(result) = decision.result {
        out.insert("result".into(), result);
    }
    if input_value.is_none() && method == Method::POST {
        out.insert(
            "warning".into(),
            json!({"code": "api_usage_warning", "message": "'input' key missing from the request"}),
        );
    }
    if q.contains_key("metrics") {
        out.insert(
            "metrics".into(),
            json!({"timer_server_handler_ns": started.elapsed().as_nanos() as u64}),
        );
    }
    Ok(Json(Value::Object(out)).into_response())
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
        Input::from_value(&parse_json(&bytes)?, &limits)
            .map_err(|e| ApiError::invalid_parameter(e.to_string()))?
    };
    let decision = state
        .host
        .decide(tenant, &state.default_decision, &input)
        .await?;
    match decision.result {
        Some(result) => Ok(Json(result).into_response()),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "undefined_document",
            format!(
                "document missing: data/{}",
                state.default_decision.trim_matches('/')
            ),
        )),
    }
}
