//! tenet: a multi-tenant policy decision point. This crate is the library to
//! embed; it re-exports the public API of tenet's crates and adds nothing.
//!
//! ```
//! use tenet::{Bundle, CompileOptions, Input, Limits, Policy};
//! let bundle = Bundle::load("../../examples/bundles/payments".as_ref(), &Limits::default())?;
//! let policy = Policy::compile(&bundle, CompileOptions::default())?;
//! let input = Input::from_json(r#"{"user": "alice", "action": "refund", "resource": "orders/123", "amount": 120}"#, policy.limits())?;
//! assert_eq!(policy.evaluate("data.payments.authz.allow", &input)?, Some(serde_json::json!(true)));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub use tenet_bundle::{
    build_archive, package_path, read_dir, read_tar_gz, write_tar_gz, Bundle, BundleError,
    BundleFile, BundleSource, DataFile, DirectorySource, Fetched, FileSource, Limits, Manifest,
    Module, Payload, VersionTag,
};
pub use tenet_bundle::{
    sign_files, KeyConfig, SignatureFailure, SigningKey, VerificationConfig, Verifier,
};
pub use tenet_host::{
    validate_tenant, DataWrite, Decision, DecisionCacheConfig, DecisionTally, FairShareConfig,
    Host, HostConfig, HostError, HostStats, InstanceState, IsolationLevel, IsolationRules, Lease,
    Offload, OffloadError, OffloadRequest, Outcome, PatchKind, PatchOp, PolicyModule,
    PollingConfig, ReferenceChange, SourceFactory, SourceTemplate, Strike, TenantCounters,
    TenantSnapshot, WeakHost, WriteOutcome, LATENCY_BOUNDS_US,
};
pub use tenet_isolation::{
    parse_worker_args, run_worker, set_transparent_huge_pages, transparent_huge_pages, Adaptive,
    AdaptiveConfig, Supervisor, SupervisorConfig, WorkerArgs, WorkerCommand, WorkerError,
    WorkerReport, WorkerState, WorkersReport,
};
pub use tenet_policy::{
    document_size, parse_yaml_input, CompileOptions, EvalLimits, Evaluation, Evaluator,
    ImageModule, Input, Policy, PolicyError, PolicyImage, PreparedQuery, QueryPath, WeakPolicy,
};
