//! Compiled policies: a [`tenet_bundle::Bundle`] turned into an immutable,
//! `Send + Sync` [`Policy`] that many threads evaluate at once without a
//! lock, under per-evaluation [`EvalLimits`] (deadline, instruction cap,
//! input size and depth, bounded builtins).
//!
//! A tenant's policy is hostile input: nothing it can express may take the
//! process down. Builtins that size allocations from their arguments are
//! replaced by bounded versions, `print` output is captured, deadlines apply
//! on both evaluators, and a panic inside the evaluator is caught.
//!
//! This crate does no I/O and knows nothing of tenants.

mod error;
mod extensions;
mod guard;
mod input;
mod limits;
mod path;
mod policy;
mod scan;

pub use error::PolicyError;
pub use input::Input;
pub use limits::EvalLimits;
pub use path::QueryPath;
pub use policy::{
    CompileOptions, Evaluation, Evaluator, Policy, PreparedQuery, WeakPolicy, MAX_CACHED_QUERIES,
};
