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
//! Recording a decision never waits: the front end hands it to a worker
//! through a bounded queue (recorder.rs), which builds the event, applies
//! the tenant's drop and mask rules and buffers it under the tenant's
//! buffer lock; uploads run on their own task. This
//! crate knows nothing of HTTP requests, hosts or policies; the server
//! builds events from its decisions.

mod buffer;
mod encode;
mod event;
mod file_sink;
mod mask;
mod recorder;
mod status;
#[cfg(feature = "otlp")]
pub mod traces;
mod upload;

pub use buffer::{DecisionLogConfig, DecisionLogs, TenantLogStats};
pub use event::DecisionEvent;
pub use file_sink::{FileSink, FileSinkConfig};
pub use mask::{apply_log_rules, check_mask_pointer, LogRules, MaskError};
pub use recorder::{
    Decided, InputDocument, LoggedInput, Recorder, RecorderOptions, RuleEvaluator, RuleFuture,
};
pub use status::{StatusConfig, StatusReport, StatusUploads};
pub use upload::{RoundReport, UploadConfig, UploadError};
