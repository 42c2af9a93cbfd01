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
}

impl ApiError {
    /// A 400 `invalid_parameter`.
    pub fn invalid_parameter(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_parameter", message)
    }

    /// Any status and code.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The OPA error code.
    pub fn code(&self) -> &'static str {
        self.code
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
            HostError::Policy { source, .. } => match source {
                PolicyError::InvalidPath { .. }
                | PolicyError::InputTooLarge { .. }
                | PolicyError::InputTooDeep { .. }
                | PolicyError::InvalidInput { .. } => Self::invalid_parameter(message),
                PolicyError::Timeout { .. } | PolicyError::InstructionLimit { .. } => Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "evaluation_timeout",
                    message,
                ),
                _ => Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal_error", message),
            },
            _ => Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal_error", message),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({ "code": self.code, "message": self.message });
        (self.status, axum::Json(body)).into_response()
    }
}
