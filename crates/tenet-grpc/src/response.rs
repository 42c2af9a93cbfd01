//! A decision as Envoy's `CheckResponse`, mapped as opa-envoy-plugin maps
//! it (internal/internal.go `check`, envoyauth/response.go):
//!
//! - `true` / `false`: status `OK` / `PERMISSION_DENIED`, no HTTP response.
//! - an object: `allowed` (required, a boolean) sets the status; `headers`
//!   (an object of string or string-list values, or a list of such
//!   objects) and `dynamic_metadata` (an object) apply either way; when
//!   allowed, an `OkHttpResponse` with `headers`, `request_headers_to_remove`,
//!   `response_headers_to_add`, `query_parameters_to_remove` and
//!   `query_parameters_to_set`; when denied, a `DeniedHttpResponse` with
//!   `headers`, `body` (a string) and `http_status` (an HTTP status Envoy
//!   knows; 403 by default).
//! - anything else, or a field of the wrong type: an error ([`ResultError`]),
//!   which the service turns into a gRPC error as the plugin does.
//!
//! The decision id goes into the dynamic metadata as `decision_id` (the
//! service adds it), and dry-run turns a denial into an empty
//! `OkHttpResponse` ([`dry_run`]). Mapping only: no evaluation, no I/O.

use envoy_types::pb::envoy::config::core::v3::{HeaderValue, HeaderValueOption, QueryParameter};
use envoy_types::pb::envoy::r#type::v3::{HttpStatus, StatusCode as HttpCode};
use envoy_types::pb::envoy::service::auth::v3::{
    check_response::HttpResponse, CheckResponse, DeniedHttpResponse, OkHttpResponse,
};
use envoy_types::pb::google::protobuf::{value::Kind, ListValue, Struct, Value as PbValue};
use envoy_types::pb::google::rpc::Status as RpcStatus;
use serde_json::{Map, Value};

/// gRPC `OK`.
pub const OK: i32 = 0;
/// gRPC `PERMISSION_DENIED`.
pub const PERMISSION_DENIED: i32 = 7;

/// A decision that cannot be turned into a response. The wording follows
/// the plugin's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ResultError {
    /// Neither a boolean nor an object.
    #[error("illegal value for policy evaluation result: {0}")]
    Illegal(&'static str),
    /// An object without `allowed`.
    #[error("unable to determine evaluation result due to missing \"allowed\" key")]
    MissingAllowed,
    /// A field of the wrong type (`field`, what was expected, what was found).
    #[error("type assertion error, expected {field} to be of type '{expected}' but got '{found}'")]
    Type {
        field: String,
        expected: &'static str,
        found: &'static str,
    },
    /// `http_status` is not a status Envoy knows.
    #[error("invalid HTTP status code {0}")]
    HttpStatus(String),
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn type_error(field: &str, expected: &'static str, found: &Value) -> ResultError {
    ResultError::Type {
        field: field.into(),
        expected,
        found: type_name(found),
    }
}

/// The response for `decision`, without the decision id.
pub fn to_response(decision: &Value) -> Result<CheckResponse, ResultError> {
    let object = match decision {
        Value::Bool(allowed) => {
            return Ok(CheckResponse {
                status: Some(status(*allowed)),
                ..Default::default()
            })
        }
        Value::Object(o) => o,
        other => return Err(ResultError::Illegal(type_name(other))),
    };
    let allowed = match object.get("allowed") {
        None => return Err(ResultError::MissingAllowed),
        Some(Value::Bool(b)) => *b,
        Some(other) => return Err(type_error("allowed", "boolean", other)),
    };
    let headers = headers_of(object, "headers")?;
    let dynamic_metadata = match object.get("dynamic_metadata") {
        None => None,
        Some(Value::Object(m)) => Some(to_struct(m)),
        Some(other) => return Err(type_error("dynamic_metadata", "object", other)),
    };
    let http_response = if allowed {
        HttpResponse::OkResponse(OkHttpResponse {
            headers,
            headers_to_remove: strings(object, "request_headers_to_remove")?,
            response_headers_to_add: headers_of(object, "response_headers_to_add")?,
            query_parameters_to_remove: strings(object, "query_parameters_to_remove")?,
            query_parameters_to_set: query_parameters(object)?,
            ..Default::default()
        })
    } else {
        let body = match object.get("body") {
            None => String::new(),
            Some(Value::String(s)) => s.clone(),
            Some(other) => return Err(type_error("body", "string", other)),
        };
        HttpResponse::DeniedResponse(DeniedHttpResponse {
            status: Some(HttpStatus {
                code: http_status(object)?,
            }),
            headers,
            body,
        })
    };
    Ok(CheckResponse {
        status: Some(status(allowed)),
        dynamic_metadata,
        http_response: Some(http_response),
    })
}

fn status(allowed: bool) -> RpcStatus {
    RpcStatus {
        code: if allowed { OK } else { PERMISSION_DENIED },
        ..Default::default()
    }
}

/// `http_status`: 403 when absent; an integer naming a status that both
/// Envoy's `StatusCode` enum and Go's `http.StatusText` know.
fn http_status(object: &Map<String, Value>) -> Result<i32, ResultError> {
    let Some(value) = object.get("http_status") else {
        return Ok(HttpCode::Forbidden as i32);
    };
    let Value::Number(n) = value else {
        return Err(type_error("http_status", "number", value));
    };
    let code = n
        .as_i64()
        .and_then(|c| i32::try_from(c).ok())
        .ok_or_else(|| ResultError::HttpStatus(n.to_string()))?;
    match HttpCode::try_from(code) {
        Ok(HttpCode::Empty) | Err(_) => Err(ResultError::HttpStatus(n.to_string())),
        Ok(_) => Ok(code),
    }
}

/// Headers from an object of string or string-list values, or a list of
/// such objects; absent is none.
fn headers_of(
    object: &Map<String, Value>,
    field: &str,
) -> Result<Vec<HeaderValueOption>, ResultError> {
    let mut out = Vec::new();
    match object.get(field) {
        None => {}
        Some(Value::Object(map)) => header_map(map, &mut out)?,
        Some(Value::Array(list)) => {
            for item in list {
                match item {
                    Value::Object(map) => header_map(map, &mut out)?,
                    other => return Err(type_error(field, "object", other)),
                }
            }
        }
        Some(other) => return Err(type_error(field, "object", other)),
    }
    Ok(out)
}

fn header_map(
    map: &Map<String, Value>,
    out: &mut Vec<HeaderValueOption>,
) -> Result<(), ResultError> {
    let mut add = |key: &str, value: &str| {
        out.push(HeaderValueOption {
            header: Some(HeaderValue {
                key: key.into(),
                value: value.into(),
                ..Default::default()
            }),
            ..Default::default()
        });
    };
    for (key, value) in map {
        match value {
            Value::String(s) => add(key, s),
            Value::Array(values) => {
                for v in values {
                    match v {
                        Value::String(s) => add(key, s),
                        other => {
                            return Err(type_error(&format!("header '{key}'"), "string", other))
                        }
                    }
                }
            }
            other => return Err(type_error(&format!("header '{key}'"), "string", other)),
        }
    }
    Ok(())
}

/// A list of strings; absent is empty.
fn strings(object: &Map<String, Value>, field: &str) -> Result<Vec<String>, ResultError> {
    match object.get(field) {
        None => Ok(Vec::new()),
        Some(Value::Array(list)) => list
            .iter()
            .map(|v| match v {
                Value::String(s) => Ok(s.clone()),
                other => Err(type_error(&format!("{field} value"), "string", other)),
            })
            .collect(),
        Some(other) => Err(type_error(field, "[]string", other)),
    }
}

/// `query_parameters_to_set`: an object of string or string-list values.
fn query_parameters(object: &Map<String, Value>) -> Result<Vec<QueryParameter>, ResultError> {
    let field = "query_parameters_to_set";
    let map = match object.get(field) {
        None => return Ok(Vec::new()),
        Some(Value::Object(m)) => m,
        Some(other) => return Err(type_error(field, "object", other)),
    };
    let mut out = Vec::new();
    for (key, value) in map {
        let mut set = |v: &Value| match v {
            Value::String(s) => {
                out.push(QueryParameter {
                    key: key.clone(),
                    value: s.clone(),
                });
                Ok(())
            }
            other => Err(type_error(&format!("{field}.{key}"), "string", other)),
        };
        match value {
            Value::Array(values) => values.iter().try_for_each(&mut set)?,
            other => set(other)?,
        }
    }
    Ok(out)
}

/// A JSON object as a `google.protobuf.Struct` (numbers as doubles).
pub fn to_struct(map: &Map<String, Value>) -> Struct {
    Struct {
        fields: map
            .iter()
            .map(|(k, v)| (k.clone(), to_pb_value(v)))
            .collect(),
    }
}

fn to_pb_value(v: &Value) -> PbValue {
    let kind = match v {
        Value::Null => Kind::NullValue(0),
        Value::Bool(b) => Kind::BoolValue(*b),
        Value::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or_default()),
        Value::String(s) => Kind::StringValue(s.clone()),
        Value::Array(a) => Kind::ListValue(ListValue {
            values: a.iter().map(to_pb_value).collect(),
        }),
        Value::Object(m) => Kind::StructValue(to_struct(m)),
    };
    PbValue { kind: Some(kind) }
}

/// Dry run: a denial becomes `OK` with an empty `OkHttpResponse`; the
/// dynamic metadata stays.
pub fn dry_run(response: &mut CheckResponse) {
    if response.status.as_ref().map_or(OK, |s| s.code) != OK {
        response.status = Some(status(true));
        response.http_response = Some(HttpResponse::OkResponse(OkHttpResponse::default()));
    }
}

/// Adds `decision_id` to the dynamic metadata.
pub fn with_decision_id(response: &mut CheckResponse, decision_id: &str) {
    response
        .dynamic_metadata
        .get_or_insert_with(Struct::default)
        .fields
        .insert(
            "decision_id".into(),
            PbValue {
                kind: Some(Kind::StringValue(decision_id.into())),
            },
        );
}

/// A denial the server makes itself (no tenant, a request it could not
/// read): `PERMISSION_DENIED` with an HTTP status and a plain body.
pub fn denied(http_status: u16, body: String) -> CheckResponse {
    CheckResponse {
        status: Some(RpcStatus {
            code: PERMISSION_DENIED,
            message: body.clone(),
            ..Default::default()
        }),
        dynamic_metadata: None,
        http_response: Some(HttpResponse::DeniedResponse(DeniedHttpResponse {
            status: Some(HttpStatus {
                code: i32::from(http_status),
            }),
            headers: Vec::new(),
            body,
        })),
    }
}
