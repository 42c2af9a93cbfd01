//! Why the host could not give a decision or change an instance. One enum;
//! the server maps each variant to an HTTP status and an OPA error code.

use std::time::Duration;
use tenet_policy::PolicyError;

/// A failed host operation. Each names the tenant it concerns.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum HostError {
    /// The tenant id cannot name a bundle (empty, too long, or characters
    /// outside `[A-Za-z0-9._-]`).
    #[error("invalid tenant id {tenant:?}: {reason}")]
    InvalidTenant {
        tenant: String,
        reason: &'static str,
    },
    /// No instance for the tenant, and on-demand loading is off.
    #[error("tenant {tenant:?} not found")]
    TenantNotFound { tenant: String },
    /// The instance has not activated any revision within the startup timeout.
    #[error("tenant {tenant:?} is not ready after {waited:?}")]
    NotReady { tenant: String, waited: Duration },
    /// The instance has never activated and its last load failed.
    #[error("tenant {tenant:?} failed to load: {reason}")]
    LoadFailed { tenant: String, reason: String },
    /// Creating the instance would exceed `max_instances` or the memory
    /// budget and every instance is referenced.
    #[error("cannot create an instance for tenant {tenant:?}: {reason}")]
    CapacityExceeded { tenant: String, reason: String },
    /// The evaluation failed.
    #[error("tenant {tenant:?}: {source}")]
    Policy {
        tenant: String,
        #[source]
        source: PolicyError,
    },
}

impl HostError {
    /// Stable snake_case name of the failure.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::InvalidTenant { .. } => "invalid_tenant",
            Self::TenantNotFound { .. } => "tenant_not_found",
            Self::NotReady { .. } => "tenant_not_ready",
            Self::LoadFailed { .. } => "load_failed",
            Self::CapacityExceeded { .. } => "capacity_exceeded",
            Self::Policy { source, .. } => source.kind(),
        }
    }
}
