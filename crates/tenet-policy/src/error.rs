//! Why compiling or evaluating a policy failed. One enum for the crate, with
//! a stable `kind()` so the server can map each case to an OPA error code.

use std::time::Duration;

/// A failed compile or evaluation. Evaluation errors concern one call only:
/// the policy stays usable for the next one.
///
/// Serializable (tagged by `error`), so an evaluation in a worker process
/// fails with the same error as one in the host process.
#[derive(Debug, Clone, thiserror::Error, serde::Serialize, serde::Deserialize)]
#[serde(tag = "error", rename_all = "snake_case")]
#[non_exhaustive]
pub enum PolicyError {
    /// A module does not parse or does not type-check.
    #[error("compile error in {file}: {message}")]
    Compile { file: String, message: String },
    /// The query path is not a valid `data` reference.
    #[error("invalid query path {path:?}: {reason}")]
    InvalidPath { path: String, reason: String },
    /// The input document is larger than the limit.
    #[error("input is {size} bytes, over the limit of {limit} bytes")]
    InputTooLarge { size: usize, limit: usize },
    /// The parsed input document (YAML aliases expanded, batch inputs
    /// merged) measures more than the limit: one per value plus the bytes
    /// of every string and key.
    #[error("input document is larger than the limit of {limit} bytes once parsed (one per value plus string and key bytes)")]
    InputDocumentTooLarge { limit: usize },
    /// The input document nests deeper than the limit.
    #[error("input nests deeper than the limit of {limit}")]
    InputTooDeep { limit: usize },
    /// The input is not valid JSON.
    #[error("invalid input JSON: {reason}")]
    InvalidInput { reason: String },
    /// The evaluation ran past its deadline.
    #[error("evaluation exceeded its deadline of {limit:?}")]
    Timeout { limit: Duration },
    /// The evaluation executed more VM instructions than allowed.
    #[error("evaluation exceeded the instruction limit of {limit}")]
    InstructionLimit { limit: usize },
    /// Rule, function or expression evaluation nested deeper than the
    /// evaluator allows (a guard behind the compile-time recursion check:
    /// nothing a policy does may reach the native stack's end).
    #[error("evaluation depth limit exceeded (max {limit})")]
    DepthLimit { limit: usize },
    /// A builtin call asked for more than the tenant's limits allow (a range,
    /// a format width, a string too large to build).
    #[error("{builtin}: {reason}")]
    BuiltinLimit { builtin: String, reason: String },
    /// The evaluation held more memory than its budget, or a builtin would
    /// have allocated past it.
    #[error("evaluation exceeded its memory budget of {limit} bytes")]
    MemoryLimit { limit: u64 },
    /// The result measures more than `max_result_bytes` (one per value plus
    /// string and key bytes, a shared value counted each time it appears);
    /// it was dropped before being converted or serialised.
    #[error("result is larger than the limit of {limit} bytes (max_result_bytes)")]
    ResultTooLarge { limit: u64 },
    /// Any other evaluation error (conflicting rule values, a strict builtin
    /// error, a runtime type error).
    #[error("evaluation error: {message}")]
    Evaluation { message: String },
    /// The evaluator itself failed (a panic inside regorus was caught).
    #[error("internal evaluator error: {message}")]
    Internal { message: String },
}

impl PolicyError {
    /// Stable snake_case name of the failure, for fixtures, metrics and
    /// error-code mapping.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Compile { .. } => "compile_error",
            Self::InvalidPath { .. } => "invalid_path",
            Self::InputTooLarge { .. } | Self::InputDocumentTooLarge { .. } => "input_too_large",
            Self::InputTooDeep { .. } => "input_too_deep",
            Self::InvalidInput { .. } => "invalid_input",
            Self::Timeout { .. } => "timeout",
            Self::InstructionLimit { .. } => "instruction_limit",
            Self::BuiltinLimit { .. } => "builtin_limit",
            Self::DepthLimit { .. } => "depth_limit",
            Self::MemoryLimit { .. } => "memory_limit",
            Self::ResultTooLarge { .. } => "result_too_large",
            Self::Evaluation { .. } => "evaluation_error",
            Self::Internal { .. } => "internal_error",
        }
    }
}
