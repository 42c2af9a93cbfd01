//! Virtual policy instances: the [`Host`] registry holds one instance per
//! tenant, each with its own bundle source, activation (compiled revision,
//! prepared queries, decision cache), status, limits and references.
//!
//! Invariants: a decision takes no lock (papaya map read, atomic pointer
//! load, lock-free evaluation); a decision that started on revision N
//! finishes on N; a bad revision never replaces a good one; callers that
//! change references never wait for a load; a referenced instance is never
//! collected or evicted. This crate does not parse HTTP.

mod batch;
mod cache;
mod config;
mod decide;
mod document;
mod error;
mod host;
mod instance;
mod isolation;
mod load;
mod offloaded;
mod overlay;
mod persist;
mod pool;
mod pushed_file;
mod quota;
mod schedule;
mod shared_compiles;
mod snapshot;
mod tally;
mod tenant;
mod watch;

pub use config::{DecisionCacheConfig, FairShareConfig, HostConfig, PollingConfig};
pub use error::HostError;
pub use host::{Decision, Host, Lease, ReferenceChange, WeakHost};
pub use instance::InstanceState;
pub use isolation::{
    IsolationLevel, IsolationRules, Offload, OffloadBatch, OffloadError, OffloadRequest, Strike,
};
pub use overlay::{DataWrite, PatchKind, PatchOp, PolicyModule, WriteOutcome};
pub use snapshot::{HostStats, TenantCounters, TenantSnapshot};
pub use tally::{DecisionTally, Outcome, LATENCY_BOUNDS_US};
pub use tenant::{validate_tenant, SourceFactory, SourceTemplate, MAX_TENANT_LEN};
