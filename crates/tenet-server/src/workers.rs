//! The bulkhead's admin API and the session key: `GET /v1/workers` (the
//! supervisor's report: states, pids, restarts, errors, health),
//! `GET`/`POST /v1/tenants/{id}/isolation` (a tenant's level, and moving
//! it at run time without losing a request), and reading the session
//! header for decisions. Parsing and mapping only: where evaluations run is
//! the host's and the supervisor's business.

use crate::api::AppResult;
use crate::api::AppState;
use crate::ApiError;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use serde_json::{json, Value};
use std::sync::Arc;
use tenet::{Decision, HostError, Input, IsolationLevel};

/// Longest session key taken from a request (a longer one is refused).
const MAX_SESSION_BYTES: usize = 256;

impl AppState {
    /// Decides for `tenant` with the request's session key (if any), so a
    /// tenant at level `session` runs it in that session's worker.
    pub(crate) async fn decide(
        &self,
        tenant: &str,
        headers: &HeaderMap,
        path: &str,
        input: &Input,
    ) -> Result<Decision, ApiError> {
        let session = self.session(headers)?;
        Ok(self
            .host
            .decide_in_session(tenant, session, path, input)
            .await?)
    }

    /// The request's session key: printable ASCII, at most 256 bytes.
    fn session<'h>(&self, headers: &'h HeaderMap) -> Result<Option<&'h str>, ApiError> {
        let Some(name) = &self.session_header else {
            return Ok(None);
        };
        let Some(value) = headers.get(name) else {
            return Ok(None);
        };
        match value.to_str() {
            Ok(key) if !key.is_empty() && key.len() <= MAX_SESSION_BYTES => Ok(Some(key)),
            _ => Err(ApiError::invalid_parameter(format!(
                "header {name}: a session key is 1 to {MAX_SESSION_BYTES} printable ASCII characters"
            ))),
        }
    }
}

/// `GET /v1/workers`: every worker slot and the supervisor's counters.
pub(crate) async fn workers(State(state): State<Arc<AppState>>) -> AppResult {
    let report = state.workers.as_ref().map(|w| w.report());
    Ok(Json(json!({
        "result": {
            "enabled": report.is_some(),
            "report": report,
        }
    }))
    .into_response())
}

/// `GET /v1/tenants/{id}/isolation`: the tenant's level.
pub(crate) async fn isolation(
    State(state): State<Arc<AppState>>,
    Path(tenant): Path<String>,
) -> AppResult {
    tenet::validate_tenant(&tenant)?;
    let level = state.host.isolation(&tenant);
    Ok(Json(json!({ "result": { "tenant": tenant, "level": level } })).into_response())
}

/// `POST /v1/tenants/{id}/isolation` with `{"level": "none" | "tenant" |
/// "session"}`: moves the tenant from its next decision on; decisions
/// already running finish where they started.
pub(crate) async fn set_isolation(
    State(state): State<Arc<AppState>>,
    Path(tenant): Path<String>,
    body: axum::body::Bytes,
) -> AppResult {
    tenet::validate_tenant(&tenant)?;
    let request: Value = crate::input::parse_json(&body, "isolation request")?;
    let level = request
        .get("level")
        .and_then(Value::as_str)
        .and_then(IsolationLevel::parse)
        .ok_or_else(|| {
            ApiError::invalid_parameter(
                "isolation request: expected {\"level\": \"none\" | \"tenant\" | \"session\"}",
            )
        })?;
    if level != IsolationLevel::None && state.workers.is_none() {
        return Err(HostError::Unavailable {
            tenant,
            reason: "worker processes are disabled (isolation.workers.enabled)".into(),
        }
        .into());
    }
    let previous = state.host.set_isolation(&tenant, level)?;
    tracing::info!(tenant = %tenant, from = %previous, to = %level, "isolation level changed through the admin API");
    Ok((
        StatusCode::OK,
        Json(json!({ "result": { "tenant": tenant, "level": level, "previous": previous } })),
    )
        .into_response())
}
