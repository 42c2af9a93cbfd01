//! The OpenID AuthZEN Authorization API's evaluation endpoints, per tenant:
//! `POST [/tenants/{tenant}]/access/v1/evaluation` and `…/evaluations`.
//! A request's `subject`, `action`, `resource` and `context` are the input
//! document, as they arrive; the tenant's policy at `authzen.path` (or its
//! entry in `authzen.tenant_paths`) decides. A boolean result is the
//! decision; an object `{"decision": bool, "context": {…}}` is returned as
//! it is (reasons for the PEP); an undefined result is a denial, as a PEP
//! expects one.
//!
//! `evaluations` takes the request's top-level fields as defaults that an
//! item's own fields replace, runs the items in order, and stops early as
//! `options.evaluations_semantic` says (`execute_all`, the default;
//! `deny_on_first_deny`; `permit_on_first_permit`). An item that cannot be
//! decided is a denial carrying `context.error` (`status`, `message`); a
//! request without items is a single evaluation. Parsing and mapping only:
//! decisions are the host's.

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
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use tenet::Input;

/// Where tenants' AuthZEN decisions are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthzenConfig {
    /// Decision path for every tenant. Default `authzen/allow`.
    pub path: String,
    /// Paths of tenants that decide elsewhere.
    pub tenant_paths: BTreeMap<String, String>,
    /// Most items in one `evaluations` request (400 past it). Default
    /// 1,000.
    pub max_evaluations: usize,
}

impl Default for AuthzenConfig {
    fn default() -> Self {
        Self {
            path: "authzen/allow".into(),
            tenant_paths: BTreeMap::new(),
            max_evaluations: 1_000,
        }
    }
}

impl AuthzenConfig {
    fn path(&self, tenant: &str) -> &str {
        self.tenant_paths.get(tenant).unwrap_or(&self.path)
    }
}

const FIELDS: [&str; 4] = ["subject", "action", "resource", "context"];

/// `POST [/tenants/{tenant}]/access/v1/evaluation`.
pub(crate) async fn evaluation(
    State(state): State<Arc<AppState>>,
    Path(params): Path<HashMap<String, String>>,
    headers: HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> AppResult {
    let tenant = tenant_of(&state, &params, &headers)?;
    let request = object(&state, &headers, raw)?;
    let evaluation = pick(&request, &Map::new());
    check(&evaluation).map_err(ApiError::invalid_parameter)?;
    Ok(Json(decide(&state, &tenant, evaluation).await?).into_response())
}

/// `POST [/tenants/{tenant}]/access/v1/evaluations`.
pub(crate) async fn evaluations(
    State(state): State<Arc<AppState>>,
    Path(params): Path<HashMap<String, String>>,
    headers: HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> AppResult {
    let tenant = tenant_of(&state, &params, &headers)?;
    let request = object(&state, &headers, raw)?;
    let items = match request.get("evaluations") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items.clone(),
        Some(_) => return Err(ApiError::invalid_parameter("evaluations must be an array")),
    };
    if items.is_empty() {
        let evaluation = pick(&request, &Map::new());
        check(&evaluation).map_err(ApiError::invalid_parameter)?;
        return Ok(Json(decide(&state, &tenant, evaluation).await?).into_response());
    }
    if items.len() > state.authzen.max_evaluations {
        return Err(ApiError::invalid_parameter(format!(
            "{} evaluations in one request; the limit is {} (authzen.max_evaluations)",
            items.len(),
            state.authzen.max_evaluations
        )));
    }
    let semantic = request
        .get("options")
        .and_then(|o| o.get("evaluations_semantic"))
        .map_or(Ok("execute_all"), |s| s.as_str().ok_or(()))
        .map_err(|()| {
            ApiError::invalid_parameter("options.evaluations_semantic must be a string")
        })?;
    let stop_on = match semantic {
        "execute_all" => None,
        "deny_on_first_deny" => Some(false),
        "permit_on_first_permit" => Some(true),
        other => {
            return Err(ApiError::invalid_parameter(format!(
                "options.evaluations_semantic {other:?} is not execute_all, deny_on_first_deny or permit_on_first_permit"
            )))
        }
    };
    // A tenant that cannot decide fails the request, not each item.
    state.host.ready(&tenant).await?;
    let mut answers = Vec::with_capacity(items.len());
    for item in &items {
        // Items of an active tenant decide without waiting: yield, so a
        // large request does not hold its worker thread.
        tokio::task::yield_now().await;
        let Value::Object(item) = item else {
            answers.push(item_error(400, "an evaluation must be an object".into()));
            continue;
        };
        let evaluation = pick(&request, item);
        let answer = match check(&evaluation) {
            Err(message) => item_error(400, message),
            Ok(()) => match decide(&state, &tenant, evaluation).await {
                Ok(answer) => answer,
                Err(e) => item_error(e.status().as_u16(), e.message().to_string()),
            },
        };
        let decision = answer["decision"].as_bool();
        answers.push(answer);
        if stop_on.is_some() && decision == stop_on {
            break;
        }
    }
    Ok(Json(json!({ "evaluations": answers })).into_response())
}

/// The request body as a JSON object.
fn object(
    state: &AppState,
    headers: &HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Map<String, Value>, ApiError> {
    let bytes = body(state, headers, raw)?;
    match parse_json(&bytes, "invalid AuthZEN request")? {
        Value::Object(o) => Ok(o),
        _ => Err(ApiError::invalid_parameter(
            "invalid AuthZEN request: expected a JSON object",
        )),
    }
}

/// The evaluation's four fields: the item's where it has them, else the
/// request's.
fn pick(request: &Map<String, Value>, item: &Map<String, Value>) -> Map<String, Value> {
    FIELDS
        .iter()
        .filter_map(|f| {
            item.get(*f)
                .or_else(|| request.get(*f))
                .map(|v| (f.to_string(), v.clone()))
        })
        .collect()
}

/// AuthZEN's required fields: `subject` and `resource` with string `type`
/// and `id`, `action` with a string `name`, `context` an object if given.
fn check(evaluation: &Map<String, Value>) -> Result<(), String> {
    let has = |field: &str, keys: &[&str]| -> Result<(), String> {
        let Some(Value::Object(o)) = evaluation.get(field) else {
            return Err(format!("{field} is required and must be an object"));
        };
        for key in keys {
            if !o.get(*key).is_some_and(Value::is_string) {
                return Err(format!("{field}.{key} is required and must be a string"));
            }
        }
        Ok(())
    };
    has("subject", &["type", "id"])?;
    has("action", &["name"])?;
    has("resource", &["type", "id"])?;
    match evaluation.get("context") {
        None | Some(Value::Object(_)) => Ok(()),
        Some(_) => Err("context must be an object".into()),
    }
}

/// One decision as AuthZEN answers it.
async fn decide(
    state: &AppState,
    tenant: &str,
    evaluation: Map<String, Value>,
) -> Result<Value, ApiError> {
    let limits = &state.host.config().eval_limits;
    let input = Input::from_value(&Value::Object(evaluation), limits)?;
    let path = state.authzen.path(tenant);
    let decision = state.host.decide(tenant, path, &input).await?;
    decision_log(state, tenant, path, &decision, || deferred(&input));
    match decision.result {
        None => Ok(json!({ "decision": false })),
        Some(Value::Bool(b)) => Ok(json!({ "decision": b })),
        Some(Value::Object(o)) if o.get("decision").is_some_and(Value::is_boolean) => {
            let mut answer = Map::new();
            answer.insert("decision".into(), o["decision"].clone());
            if let Some(context) = o.get("context").filter(|c| c.is_object()) {
                answer.insert("context".into(), context.clone());
            }
            Ok(Value::Object(answer))
        }
        Some(other) => Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            format!(
                "the AuthZEN decision at {path} is {}, not a boolean or {{\"decision\": bool, \"context\": {{…}}}}",
                short(&other)
            ),
        )),
    }
}

fn short(value: &Value) -> String {
    let text = value.to_string();
    match text.char_indices().nth(100) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text,
    }
}

fn item_error(status: u16, message: String) -> Value {
    json!({ "decision": false, "context": { "error": { "status": status, "message": message } } })
}
