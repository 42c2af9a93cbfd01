//! Per-tenant telemetry: decision logs in the shape of OPA's decision-log
//! API, kept in a bounded buffer per tenant (events and bytes, oldest
//! dropped first, drops counted per tenant) under a byte cap over all
//! tenants, and uploaded to a decision-log service as OPA uploads them
//! (gzip-compressed JSON arrays, chunked, at random delays between a
//! minimum and a maximum, backing off and keeping the events while the
//! service fails), with a bound on concurrent uploads.
//!
//! Status reports (OPA's status API) are uploaded per tenant when what they
//! say changes, coalesced into rounds (status.rs).
//!
//! Recording an event never waits on an upload or on the network: it
//! takes the tenant's buffer lock for a queue operation and returns. This
//! crate knows nothing of HTTP requests, hosts or policies; the server
//! builds events from its decisions.

mod buffer;
mod event;
mod mask;
mod status;
mod upload;

pub use buffer::{DecisionLogConfig, DecisionLogs, TenantLogStats};
pub use event::DecisionEvent;
pub use mask::{apply_log_rules, LogRules, MaskError};
pub use status::{StatusConfig, StatusReport, StatusUploads};
pub use upload::{RoundReport, UploadConfig, UploadError};
