//! Compiled policies: a [`tenet_bundle::Bundle`] turned into an immutable,
//! `Send + Sync` [`Policy`] that many threads evaluate at once without a
//! lock, under per-evaluation [`EvalLimits`] (deadline, instruction cap,
//! input size and depth, bounded builtins).
//!
//! A tenant's policy is hostile input: nothing it can express may take the
//! process down. The patched regorus (vendor/regorus/PATCHES.md) refuses
//! recursion at compile time, bounds evaluation depth and the size of every
//! value a builtin builds, and checks the deadline inside long builtins;
//! this crate sets those limits per tenant, captures `print` output, and
//! catches a panic inside the evaluator.
//!
//! This crate does no I/O and knows nothing of tenants.

mod error;
mod extensions;
mod image;
mod input;
mod limits;
mod output;
mod path;
mod policy;
mod pool;
mod scan;

pub use error::PolicyError;
pub use image::{ImageModule, PolicyImage};
pub use input::{document_size, parse_yaml_input, Input};
pub use limits::EvalLimits;
pub use path::QueryPath;
pub use policy::{
    CompileOptions, Evaluation, Evaluator, Policy, PreparedQuery, WeakPolicy, MAX_CACHED_QUERIES,
};
