//! The one place where an internal error becomes an HTTP status and an OPA
//! error body `{"code", "message"}`. OPA's codes are kept for OPA's cases
//! (`invalid_parameter`, `resource_not_found`, `internal_error`,
//! `undefined_document`); tenet's own cases have their own codes.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tenet::{HostError, PolicyError};

/// An error answer in OPA's shape.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    /// OPA's `errors` array (compile errors with their locations).
    errors: Option<Vec<serde_json::Value>>,
    /// Seconds for a `Retry-After` header.
    retry_after: Option<u64>,
}

impl ApiError {
    /// A 400 `invalid_parameter`.
    pub fn invalid_parameter(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_parameter", message)
    }

    /// A 405, as OPA answers a method a route does not have.
    pub fn method_not_allowed() -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "method not allowed",
        )
    }

    /// Any status and code.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            errors: None,
            retry_after: None,
        }
    }

    /// The same error with a `Retry-After` header of `seconds`.
    pub fn with_retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    /// The same error with OPA's `errors` array.
    pub fn with_errors(mut self, errors: Vec<serde_json::Value>) -> Self {
        self.errors = Some(errors);
        self
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The OPA error code.
    pub fn code(&self) -> &'static str {
        self.code
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl From<HostError> for ApiError {
    fn from(e: HostError) -> Self {
        let message = e.to_string();
        match &e {
            HostError::InvalidTenant { .. } => Self::invalid_parameter(message),
            HostError::TenantNotFound { .. } => {
                Self::new(StatusCode::NOT_FOUND, "tenant_not_found", message)
            }
            HostError::NotReady { .. } | HostError::LoadFailed { .. } => {
                Self::new(StatusCode::SERVICE_UNAVAILABLE, "tenant_not_ready", message)
            }
            HostError::CapacityExceeded { .. } => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "capacity_exceeded",
                message,
            ),
            // A quota, not an outage: the client may retry once content
            // was deleted elsewhere; bundle tenants are unaffected.
            // One tenant at its bound of waiting evaluations: the others
            // are served; this one may retry in a moment.
            HostError::TooManyRequests { .. } => {
                Self::new(StatusCode::TOO_MANY_REQUESTS, "too_many_requests", message)
                    .with_retry_after(1)
            }
            HostError::TooManySessions { .. } => {
                Self::new(StatusCode::TOO_MANY_REQUESTS, "too_many_sessions", message)
                    .with_retry_after(1)
            }
            // The tenant's worker process is down or restarting; other
            // tenants are served.
            HostError::Unavailable { .. } => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "tenant_unavailable",
                message,
            )
            .with_retry_after(1),
            HostError::PushLimit { .. } => Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "push_limit_exceeded",
                message,
            ),
            HostError::OwnedByBundle { .. }
            | HostError::InvalidWrite { .. }
            | HostError::RootWrite { .. }
            | HostError::DataConflict { .. } => Self::invalid_parameter(message),
            HostError::WriteConflict { .. } => {
                Self::new(StatusCode::NOT_FOUND, "resource_conflict", message)
            }
            HostError::DocumentNotFound { path, .. } => Self::new(
                StatusCode::NOT_FOUND,
                "resource_not_found",
                format!("storage_not_found_error: {path}: document does not exist"),
            ),
            HostError::PolicyNotFound { id, .. } => Self::new(
                StatusCode::NOT_FOUND,
                "resource_not_found",
                format!("storage_not_found_error: policy id {id:?}"),
            ),
            HostError::Policy { source, .. } => match source {
                PolicyError::Compile { file, message } => compile_error(file, message),
                PolicyError::Evaluation { message }
                    if message.contains("conflicts with rule")
                        || message.contains("eval_conflict_error") =>
                {
                    // The RVM words it as OPA does; the interpreter does not.
                    let what = [
                        "functions must not produce multiple outputs for same inputs",
                        "object keys must be unique",
                    ]
                    .into_iter()
                    .find(|m| message.contains(m))
                    .unwrap_or("complete rules must not produce multiple outputs");
                    ApiError::new(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "internal_error",
                        "error(s) occurred while evaluating query",
                    )
                    .with_errors(vec![json!({
                        "code": "eval_conflict_error",
                        "message": what,
                        "location": location(message, ""),
                    })])
                }
                other => policy_error(other, message),
            },
            _ => Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal_error", message),
        }
    }
}

/// A policy error that is not a compile error or a conflict: the input's
/// (400, or 413 when too large, as for a body past `max_body_bytes`), and
/// the evaluation's (500).
fn policy_error(e: &PolicyError, message: String) -> ApiError {
    match e {
        PolicyError::InputTooLarge { .. } | PolicyError::InputDocumentTooLarge { .. } => {
            ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "invalid_parameter", message)
        }
        PolicyError::InvalidPath { .. }
        | PolicyError::InputTooDeep { .. }
        | PolicyError::InvalidInput { .. } => ApiError::invalid_parameter(message),
        PolicyError::Timeout { .. } | PolicyError::InstructionLimit { .. } => ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "evaluation_timeout",
            message,
        ),
        PolicyError::MemoryLimit { .. } => ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "evaluation_memory_exceeded",
            message,
        ),
        // OPA has no result limit; a result too large to answer is the
        // server's failure to answer (500), named in the message.
        _ => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal_error", message),
    }
}

/// Errors from parsing a request's input (the host is not involved).
impl From<PolicyError> for ApiError {
    fn from(e: PolicyError) -> Self {
        let message = e.to_string();
        policy_error(&e, message)
    }
}

/// OPA's answer to a module that does not compile: 400 with one entry per
/// error, located by file, row and column when regorus reports them
/// (`--> file:row:col` followed by `error: message`).
fn compile_error(file: &str, message: &str) -> ApiError {
    let text = message
        .rsplit_once("error: ")
        .map_or(message, |(_, m)| m)
        .trim();
    // Regorus parses modules as they are added (syntax errors name the
    // module); later analysis errors name the bundle. Unsafe variables get
    // OPA's own code and wording.
    let unsafe_var = text
        .strip_prefix("use of undefined variable `")
        .and_then(|rest| rest.strip_suffix("` is unsafe"));
    let (code, text) = match unsafe_var {
        Some(var) => ("rego_unsafe_var_error", format!("var {var} is unsafe")),
        None if message.contains("rego_recursion_error: ") => {
            ("rego_recursion_error", text.to_string())
        }
        None if matches!(file, "bundle" | "data") => ("rego_compile_error", text.to_string()),
        None if message.contains("is unsafe") => ("rego_unsafe_var_error", text.to_string()),
        None => ("rego_parse_error", text.to_string()),
    };
    ApiError::invalid_parameter("error(s) occurred while compiling module(s)").with_errors(vec![
        json!({ "code": code, "message": text, "location": location(message, file) }),
    ])
}

/// `{"file", "row", "col"}` from regorus's `--> file:row:col` line.
fn location(message: &str, file: &str) -> serde_json::Value {
    message
        .lines()
        .find_map(|l| l.trim().strip_prefix("--> "))
        .and_then(|loc| {
            let mut parts = loc.rsplitn(3, ':');
            let col: u64 = parts.next()?.trim().parse().ok()?;
            let row: u64 = parts.next()?.trim().parse().ok()?;
            Some(json!({ "file": parts.next()?, "row": row, "col": col }))
        })
        .unwrap_or_else(|| json!({ "file": file, "row": 0, "col": 0 }))
}

impl ApiError {
    /// The JSON body: `{"code", "message", "errors"?}`.
    pub fn body(&self) -> serde_json::Value {
        let mut body = json!({ "code": self.code, "message": self.message });
        if let Some(errors) = &self.errors {
            body["errors"] = serde_json::Value::Array(errors.clone());
        }
        body
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, axum::Json(self.body())).into_response();
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, seconds.into());
        }
        response
    }
}
