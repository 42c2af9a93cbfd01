//! OPA's policy API (`/v1/policies`) and data write API (`PUT`, `PATCH`,
//! `DELETE /v1/data/{path}`), per tenant. Parses the request into a
//! [`tenet::DataWrite`] or a policy text and answers with OPA's status codes:
//! 200 with a JSON body for policy writes, 204 for data writes, 304 for
//! `If-None-Match: *` on an existing document. The host does the merging,
//! compiling and activation; nothing here holds tenant state.

use crate::api::{body, tenant_of, AppResult, AppState};
use crate::ApiError;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;
use tenet::{DataWrite, PatchKind, PatchOp, WriteOutcome};

/// `GET /v1/policies`: every module of the tenant's active revision.
pub(crate) async fn list(
    State(state): State<Arc<AppState>>,
    Path(params): Path<HashMap<String, String>>,
    headers: HeaderMap,
) -> AppResult {
    let tenant = tenant_of(&state, &params, &headers)?;
    let modules = state.host.policies(&tenant).await?;
    let result: Vec<Value> = modules.iter().map(|m| module_json(&m.id, &m.raw)).collect();
    Ok(Json(json!({ "result": result })).into_response())
}

/// `GET`, `PUT` and `DELETE /v1/policies/{id}`; ids may contain `/`.
pub(crate) async fn policy(
    State(state): State<Arc<AppState>>,
    Path(params): Path<HashMap<String, String>>,
    method: Method,
    headers: HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> AppResult {
    let tenant = tenant_of(&state, &params, &headers)?;
    let id = params.get("id").map_or("", String::as_str);
    if id.is_empty() {
        return Err(ApiError::invalid_parameter("missing policy id"));
    }
    match method {
        Method::GET => {
            let modules = state.host.policies(&tenant).await?;
            match modules.iter().find(|m| m.id == id) {
                Some(m) => {
                    Ok(Json(json!({ "result": module_json(&m.id, &m.raw) })).into_response())
                }
                None => Err(tenet::HostError::PolicyNotFound {
                    tenant,
                    id: id.to_string(),
                }
                .into()),
            }
        }
        Method::PUT => {
            // OPA reads the body as Rego whatever the content type says.
            let bytes = body(&state, &headers, raw)?;
            let text = String::from_utf8(bytes.to_vec())
                .map_err(|_| ApiError::invalid_parameter("policy is not valid UTF-8"))?;
            let module = text.clone();
            state
                .host
                .put_policy(&tenant, id, text)
                .await
                .map_err(|e| match e {
                    // A module whose rules land on pushed data is a compile
                    // error in OPA, reported like one.
                    tenet::HostError::DataConflict { ref path, .. } => {
                        ApiError::invalid_parameter("error(s) occurred while compiling module(s)")
                            .with_errors(vec![json!({
                                "code": "rego_compile_error",
                                "message": e.to_string().trim_start_matches("rego_compile_error: "),
                                "location": {
                                    "file": id,
                                    "row": rule_row(&module, path.rsplit('/').next().unwrap_or("")),
                                    "col": 1,
                                },
                            })])
                    }
                    other => other.into(),
                })?;
            Ok(Json(json!({})).into_response())
        }
        _ => {
            state.host.delete_policy(&tenant, id).await?;
            Ok(Json(json!({})).into_response())
        }
    }
}

/// The 1-based row of the first line of `module` that starts a rule named
/// `name` (1 when none does): where OPA locates a rule's errors.
fn rule_row(module: &str, name: &str) -> usize {
    module
        .lines()
        .position(|line| {
            let rest = line.strip_prefix("default ").unwrap_or(line);
            rest.strip_prefix(name).is_some_and(|after| {
                !after.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
            })
        })
        .map_or(1, |i| i + 1)
}

/// A module as OPA lists it. tenet does not expose Rego ASTs: `ast` holds
/// the package only (enough for clients that group policies by package).
fn module_json(id: &str, raw: &str) -> Value {
    let mut path = vec![json!({"type": "var", "value": "data"})];
    path.extend(
        tenet::package_path(raw)
            .unwrap_or_default()
            .into_iter()
            .map(|c| json!({"type": "string", "value": c})),
    );
    json!({ "id": id, "raw": raw, "ast": { "package": { "path": path } } })
}

/// `PUT`, `PATCH` and `DELETE /v1/data/{path}`.
pub(crate) async fn write_data(
    state: &AppState,
    tenant: &str,
    components: &[String],
    method: &Method,
    headers: &HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> AppResult {
    let write = match *method {
        Method::PUT => {
            let bytes = body(state, headers, raw)?;
            let if_none_match = headers
                .get(axum::http::header::IF_NONE_MATCH)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.trim() == "*");
            DataWrite::Put {
                value: parse_document(&bytes)?,
                if_none_match,
            }
        }
        Method::PATCH => {
            let bytes = body(state, headers, raw)?;
            DataWrite::Patch(parse_patch(&parse_document(&bytes)?)?)
        }
        _ => DataWrite::Delete,
    };
    match state.host.write_data(tenant, components, write).await? {
        WriteOutcome::Written => Ok(StatusCode::NO_CONTENT.into_response()),
        WriteOutcome::Exists => Ok(StatusCode::NOT_MODIFIED.into_response()),
    }
}

/// A JSON document in a write body, with OPA's message and the parse
/// position on failure. An empty body is an error, as in OPA.
fn parse_document(bytes: &[u8]) -> Result<Value, ApiError> {
    crate::input::parse_json(bytes, "body contains malformed JSON")
}

/// A JSON Patch document: an array of `{"op", "path", "value"}` with the
/// operations OPA supports (`add`, `remove`, `replace`).
fn parse_patch(doc: &Value) -> Result<Vec<PatchOp>, ApiError> {
    let Value::Array(ops) = doc else {
        return Err(ApiError::invalid_parameter(
            "patch body must be a JSON array of operations",
        ));
    };
    ops.iter()
        .map(|op| {
            let kind = match op.get("op").and_then(Value::as_str) {
                Some("add") => PatchKind::Add,
                Some("remove") => PatchKind::Remove,
                Some("replace") => PatchKind::Replace,
                other => {
                    return Err(ApiError::invalid_parameter(format!(
                        "bad patch operation: {}",
                        other.unwrap_or("missing \"op\"")
                    )))
                }
            };
            let path = op
                .get("path")
                .and_then(Value::as_str)
                .ok_or_else(|| ApiError::invalid_parameter("patch operation without \"path\""))?;
            let value = match (kind, op.get("value")) {
                (PatchKind::Remove, _) => Value::Null,
                (_, Some(v)) => v.clone(),
                (_, None) => {
                    return Err(ApiError::invalid_parameter(
                        "add and replace operations need a \"value\"",
                    ))
                }
            };
            Ok(PatchOp {
                kind,
                path: pointer(path),
                value,
            })
        })
        .collect()
}

/// The tokens of a JSON Pointer (`/a/b~1c` → `["a", "b/c"]`); the leading
/// slash is optional, as OPA accepts both.
fn pointer(path: &str) -> Vec<String> {
    path.split('/')
        .filter(|t| !t.is_empty())
        .map(|t| {
            // OPA also unescapes URL escapes in patch paths (`a%2Fb`).
            let t = percent_encoding::percent_decode_str(t).decode_utf8_lossy();
            t.replace("~1", "/").replace("~0", "~")
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn patches_parse_like_opa() {
        let ops = parse_patch(&json!([
            {"op": "add", "path": "/a/b~1c", "value": 1},
            {"op": "remove", "path": "x"}
        ]))
        .unwrap();
        assert_eq!(ops[0].path, vec!["a", "b/c"]);
        assert_eq!(ops[1].kind, PatchKind::Remove);
        assert!(parse_patch(&json!([{"op": "move", "path": "/a"}])).is_err());
        assert!(parse_patch(&json!([{"op": "add", "path": "/a"}])).is_err());
        assert!(parse_patch(&json!({"op": "add"})).is_err());
    }
}
