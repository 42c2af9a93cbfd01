//! The subject / action / resource / context endpoints over HTTP, per
//! tenant: the OpenID AuthZEN Authorization API's evaluation endpoints
//! (`POST [/tenants/{tenant}]/access/v1/evaluation` and `…/evaluations`)
//! and Manetu-style PORC requests (`POST [/tenants/{tenant}]/v1/porc`).
//! The mapping (fields as input, required fields, batch semantics, the
//! answer's shape) is `tenet_grpc::authzen` and `tenet_grpc::porc`, which
//! the gRPC calls share; this module reads bodies, finds the tenant and
//! maps errors to HTTP. Parsing only: decisions are the host's.

use crate::api::{body, tenant_of, AppResult, AppState};
use crate::decision_log::{decision_log, deferred};
use crate::input::parse_json;
use crate::ApiError;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::sync::Arc;
use tenet::Input;
pub use tenet_grpc::authzen::AuthzenConfig;
pub use tenet_grpc::porc::{PorcConfig, PorcInput};
use tenet_grpc::{authzen, porc};

/// `POST [/tenants/{tenant}]/access/v1/evaluation`.
pub(crate) async fn evaluation(
    State(state): State<Arc<AppState>>,
    Path(params): Path<HashMap<String, String>>,
    headers: HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> AppResult {
    let tenant = tenant_of(&state, &params, &headers)?;
    let request = object(&state, &headers, raw, "AuthZEN")?;
    let evaluation =
        authzen::evaluation(&request, &Map::new()).map_err(ApiError::invalid_parameter)?;
    let path = state.authzen.path(&tenant);
    Ok(Json(decide(&state, &tenant, path, Value::Object(evaluation)).await?).into_response())
}

/// `POST [/tenants/{tenant}]/access/v1/evaluations`.
pub(crate) async fn evaluations(
    State(state): State<Arc<AppState>>,
    Path(params): Path<HashMap<String, String>>,
    headers: HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> AppResult {
    let tenant = tenant_of(&state, &params, &headers)?;
    let request = object(&state, &headers, raw, "AuthZEN")?;
    let path = state.authzen.path(&tenant);
    let batch = authzen::batch(&request, state.authzen.max_evaluations)
        .map_err(ApiError::invalid_parameter)?;
    let Some(batch) = batch else {
        let evaluation =
            authzen::evaluation(&request, &Map::new()).map_err(ApiError::invalid_parameter)?;
        return Ok(
            Json(decide(&state, &tenant, path, Value::Object(evaluation)).await?).into_response(),
        );
    };
    // A tenant that cannot decide fails the request, not each item.
    state.host.ready(&tenant).await?;
    let (state, tenant) = (&state, tenant.as_str());
    let answer = batch
        .run(&request, |evaluation| async move {
            decide(state, tenant, path, Value::Object(evaluation))
                .await
                .map_err(|e| (e.status().as_u16(), e.message().to_string()))
        })
        .await;
    Ok(Json(answer).into_response())
}

/// `POST [/tenants/{tenant}]/v1/porc`.
pub(crate) async fn porc(
    State(state): State<Arc<AppState>>,
    Path(params): Path<HashMap<String, String>>,
    headers: HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> AppResult {
    let tenant = tenant_of(&state, &params, &headers)?;
    let request = object(&state, &headers, raw, "PORC")?;
    let document = porc::input(&request, state.porc.input).map_err(ApiError::invalid_parameter)?;
    let path = state.porc.path(&tenant);
    Ok(Json(decide(&state, &tenant, path, document).await?).into_response())
}

/// The request body as a JSON object.
fn object(
    state: &AppState,
    headers: &HeaderMap,
    raw: Result<Bytes, BytesRejection>,
    what: &str,
) -> Result<Map<String, Value>, ApiError> {
    let bytes = body(state, headers, raw)?;
    match parse_json(&bytes, &format!("invalid {what} request"))? {
        Value::Object(o) => Ok(o),
        _ => Err(ApiError::invalid_parameter(format!(
            "invalid {what} request: expected a JSON object"
        ))),
    }
}

/// One decision of `document` at `path`, answered as AuthZEN answers.
async fn decide(
    state: &AppState,
    tenant: &str,
    path: &str,
    document: Value,
) -> Result<Value, ApiError> {
    let limits = &state.host.config().eval_limits;
    let input = Input::from_value(&document, limits)?;
    let decision = state.host.decide(tenant, path, &input).await?;
    decision_log(state, tenant, path, &decision, || deferred(&input));
    authzen::answer(decision.result, path).map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            e.to_string(),
        )
    })
}
