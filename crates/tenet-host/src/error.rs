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
    /// A push would pass `max_pushed_tenants`, `max_pushed_bytes` or the
    /// memory budget; nothing changed.
    #[error("push to tenant {tenant:?} refused: {reason}")]
    PushLimit { tenant: String, reason: String },
    /// A push would write where the tenant's bundle owns the data (under
    /// its manifest's roots).
    /// (`path` is slash-separated; empty when the bundle owns every path.)
    #[error("{}", owned_message(tenant, path))]
    OwnedByBundle { tenant: String, path: String },
    /// Pushed data and a rule claim the same path (`path`, slash-separated,
    /// is the rule's).
    #[error("rego_compile_error: conflicting rule for data path {path} found")]
    DataConflict { tenant: String, path: String },
    /// A write of the whole data document while the bundle has roots.
    #[error("can't write to document root with bundle roots configured")]
    RootWrite { tenant: String },
    /// A write below a document that is not an object.
    #[error("storage_write_conflict_error: {path}")]
    WriteConflict { tenant: String, path: String },
    /// A data write or patch names a document that does not exist.
    #[error("tenant {tenant:?}: {path}: document does not exist")]
    DocumentNotFound { tenant: String, path: String },
    /// No pushed policy has this id.
    #[error("tenant {tenant:?}: policy id {id:?} not found")]
    PolicyNotFound { tenant: String, id: String },
    /// A data write cannot apply (a scalar in the way, a bad array index).
    #[error("tenant {tenant:?}: invalid write: {reason}")]
    InvalidWrite { tenant: String, reason: String },
    /// The tenant already has as many evaluations waiting or running as it
    /// may (`FairShareConfig::max_pending`); other tenants are unaffected.
    #[error(
        "tenant {tenant:?} has {pending} evaluations waiting or running, its limit; retry later"
    )]
    TooManyRequests { tenant: String, pending: usize },
    /// Pushed content could not be written to disk (`persist_pushed_dir`);
    /// the push was not applied.
    #[error("tenant {tenant:?}: cannot persist pushed content: {reason}")]
    PersistFailed { tenant: String, reason: String },
    /// The tenant's worker process is down (crashed, restarting, backing
    /// off) or could not be started; other tenants are unaffected.
    #[error("tenant {tenant:?} is unavailable: {reason}")]
    Unavailable { tenant: String, reason: String },
    /// The tenant (at isolation level `session`) already has as many
    /// session workers as it may.
    #[error("tenant {tenant:?} has {limit} session workers, its limit; retry later")]
    TooManySessions { tenant: String, limit: usize },
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
            Self::PushLimit { .. } => "push_limit_exceeded",
            Self::OwnedByBundle { .. } => "owned_by_bundle",
            Self::DocumentNotFound { .. } => "document_not_found",
            Self::PolicyNotFound { .. } => "policy_not_found",
            Self::InvalidWrite { .. } => "invalid_write",
            Self::WriteConflict { .. } => "write_conflict",
            Self::RootWrite { .. } => "root_write",
            Self::DataConflict { .. } => "data_conflict",
            Self::PersistFailed { .. } => "persist_failed",
            Self::TooManyRequests { .. } => "too_many_requests",
            Self::Unavailable { .. } => "tenant_unavailable",
            Self::TooManySessions { .. } => "too_many_sessions",
            Self::Policy { source, .. } => source.kind(),
        }
    }
}

/// OPA's wording, with the tenant as the bundle's name.
fn owned_message(tenant: &str, path: &str) -> String {
    if path.is_empty() {
        format!("all paths owned by bundle {tenant:?}")
    } else {
        format!("path {path} is owned by bundle {tenant:?}")
    }
}
