//! The one place where a decision's failure becomes a gRPC status: the
//! gRPC analogue of tenet-server's HTTP mapping (`error.rs` there) for the
//! native service, and opa-envoy-plugin's mapping for ext_authz (where an
//! evaluation error must reach Envoy's `failure_mode_allow`). No I/O.

use tenet::{HostError, PolicyError};
use tonic::{Code, Status};

/// The status of a failed decision of the native service: what the REST
/// API answers with an HTTP status, as its gRPC counterpart (404 →
/// `NOT_FOUND`, 400/413 → `INVALID_ARGUMENT`, 503 → `UNAVAILABLE`, 429 →
/// `RESOURCE_EXHAUSTED`, an evaluation past its deadline →
/// `DEADLINE_EXCEEDED`, other 500s → `INTERNAL`).
pub fn host_status(e: &HostError) -> Status {
    Status::new(host_code(e), e.to_string())
}

/// The code of [`host_status`].
pub fn host_code(e: &HostError) -> Code {
    match e {
        HostError::InvalidTenant { .. } => Code::InvalidArgument,
        HostError::TenantNotFound { .. }
        | HostError::DocumentNotFound { .. }
        | HostError::PolicyNotFound { .. } => Code::NotFound,
        HostError::NotReady { .. }
        | HostError::LoadFailed { .. }
        | HostError::CapacityExceeded { .. }
        | HostError::Unavailable { .. } => Code::Unavailable,
        HostError::TooManyRequests { .. }
        | HostError::TooManySessions { .. }
        | HostError::PushLimit { .. } => Code::ResourceExhausted,
        HostError::Policy { source, .. } => policy_code(source),
        _ => Code::Internal,
    }
}

/// The status of an input or evaluation error.
pub fn policy_status(e: &PolicyError) -> Status {
    Status::new(policy_code(e), e.to_string())
}

fn policy_code(e: &PolicyError) -> Code {
    match e {
        PolicyError::InvalidPath { .. }
        | PolicyError::InputTooLarge { .. }
        | PolicyError::InputDocumentTooLarge { .. }
        | PolicyError::InputTooDeep { .. }
        | PolicyError::InvalidInput { .. } => Code::InvalidArgument,
        PolicyError::Timeout { .. } | PolicyError::InstructionLimit { .. } => {
            Code::DeadlineExceeded
        }
        PolicyError::MemoryLimit { .. } => Code::ResourceExhausted,
        _ => Code::Internal,
    }
}

/// The HTTP status the REST API would answer for a call that failed with
/// `code` (grpc-gateway's table), for AuthZEN items whose error is
/// reported in the answer rather than as a status.
pub fn http_status(code: Code) -> u16 {
    match code {
        Code::Ok => 200,
        Code::InvalidArgument | Code::FailedPrecondition | Code::OutOfRange => 400,
        Code::Unauthenticated => 401,
        Code::PermissionDenied => 403,
        Code::NotFound => 404,
        Code::AlreadyExists | Code::Aborted => 409,
        Code::ResourceExhausted => 429,
        Code::Cancelled => 499,
        Code::Unimplemented => 501,
        Code::Unavailable => 503,
        Code::DeadlineExceeded => 504,
        _ => 500,
    }
}

/// The status of a failed ext_authz decision, as opa-envoy-plugin answers:
/// a tenant not loaded, failing or refused for capacity is `UNAVAILABLE`,
/// one at its bound of waiting evaluations `RESOURCE_EXHAUSTED`, and an
/// evaluation error `UNKNOWN` (grpc-go's code for the plugin's Go errors),
/// so that Envoy's `failure_mode_allow` decides.
pub(crate) fn ext_authz_status(e: HostError) -> Status {
    let message = e.to_string();
    match e {
        HostError::NotReady { .. }
        | HostError::LoadFailed { .. }
        | HostError::CapacityExceeded { .. }
        | HostError::Unavailable { .. } => Status::unavailable(message),
        HostError::TooManyRequests { .. } | HostError::TooManySessions { .. } => {
            Status::resource_exhausted(message)
        }
        HostError::InvalidTenant { .. } => Status::invalid_argument(message),
        _ => Status::unknown(message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn host_errors_map_to_the_grpc_analogue_of_their_http_status() {
        let t = || "acme".to_string();
        let policy = |source| HostError::Policy {
            tenant: t(),
            source,
        };
        for (e, code) in [
            (HostError::TenantNotFound { tenant: t() }, Code::NotFound),
            (
                HostError::NotReady {
                    tenant: t(),
                    waited: Duration::ZERO,
                },
                Code::Unavailable,
            ),
            (
                HostError::TooManyRequests {
                    tenant: t(),
                    pending: 1,
                },
                Code::ResourceExhausted,
            ),
            (
                HostError::Unavailable {
                    tenant: t(),
                    reason: "its worker is restarting".into(),
                },
                Code::Unavailable,
            ),
            (
                HostError::TooManySessions {
                    tenant: t(),
                    limit: 64,
                },
                Code::ResourceExhausted,
            ),
            (
                policy(PolicyError::Timeout {
                    limit: Duration::from_millis(1),
                }),
                Code::DeadlineExceeded,
            ),
            (
                policy(PolicyError::InputTooDeep { limit: 64 }),
                Code::InvalidArgument,
            ),
            (
                policy(PolicyError::Evaluation {
                    message: "x".into(),
                }),
                Code::Internal,
            ),
        ] {
            assert_eq!(host_code(&e), code, "{e}");
        }
        assert_eq!(http_status(Code::ResourceExhausted), 429);
        assert_eq!(http_status(Code::NotFound), 404);
    }
}
