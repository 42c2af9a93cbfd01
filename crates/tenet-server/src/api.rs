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
use axum::{Json, Router};
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::io::Read;
use std::sync::Arc;
use std::time::Instant;
use tenet::{Host, Input, InstanceState};

/// What the handlers share.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The instances.
    pub host: Host,
    /// Header naming the tenant on bare paths.
    pub tenant_header: HeaderName,
    /// Path of the default decision (`POST /`), e.g. `system/main`.
    pub default_decision: String,
    /// Largest request body, after gzip decoding, in bytes.
    pub max_body_bytes: usize,
}

/// The router: every endpoint, with `state`.
pub fn app(state: AppState) -> Router {
    let limit = state.max_body_bytes;
    let state = Arc::new(state);
    Router::new()
        .route("/health", get(health))
        .route("/health/live", get(live))
        .route("/health/ready", get(ready))
        .route("/v1/data", get(data_header_root).post(data_header_root))
        .route("/v1/data/", get(data_header_root).post(data_header_root))
        .route("/v1/data/{*path}", get(data_header).post(data_header))
        .route("/", post(default_header))
        .route("/tenants/{tenant}/v1/data", get(data_root).post(data_root))
        .route("/tenants/{tenant}/v1/data/", get(data_root).post(data_root))
        .route("/tenants/{tenant}/v1/data/{*path}", get(data).post(data))
        .route("/tenants/{tenant}", post(default_decision))
        .route("/tenants/{tenant}/", post(default_decision))
        .fallback(not_found)
        // The body limit is enforced by `body()` below with an OPA-shaped
        // 413; axum's own limit is lifted so it does not answer first.
        .layer(DefaultBodyLimit::max(limit.saturating_add(1)))
        .with_state(state)
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

fn tenant_from_header(state: &AppState, headers: &HeaderMap) -> Result<String, ApiError> {
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

#[allow(clippy::too_many_arguments)]
async fn data(
    State(state): State<Arc<AppState>>,
    Path((tenant, path)): Path<(String, String)>,
    method: Method,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> AppResult {
    decide_data(&state, &tenant, &path, &method, &q, &headers, body).await
}

async fn data_root(
    State(state): State<Arc<AppState>>,
    Path(tenant): Path<String>,
    method: Method,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> AppResult {
    decide_data(&state, &tenant, "", &method, &q, &headers, body).await
}

async fn data_header(
    State(state): State<Arc<AppState>>,
    Path(path): Path<String>,
    method: Method,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> AppResult {
    let tenant = tenant_from_header(&state, &headers)?;
    decide_data(&state, &tenant, &path, &method, &q, &headers, body).await
}

async fn data_header_root(
    State(state): State<Arc<AppState>>,
    method: Method,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> AppResult {
    let tenant = tenant_from_header(&state, &headers)?;
    decide_data(&state, &tenant, "", &method, &q, &headers, body).await
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
    Path(tenant): Path<String>,
    headers: HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> AppResult {
    decide_default(&state, &tenant, &headers, raw).await
}

async fn default_header(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> AppResult {
    let tenant = tenant_from_header(&state, &headers)?;
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
