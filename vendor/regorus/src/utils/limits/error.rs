// Copyright (c) Microsoft Corporation.
// Licensed under the MIT License.

#![allow(dead_code)]

use alloc::format;
use alloc::string::String;
use core::fmt;
use core::time::Duration;

/// Errors reported when execution time or memory ceilings are enforced.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum LimitError {
    /// Reported when the execution timer observes elapsed time beyond the configured limit.
    TimeLimitExceeded {
        /// Elapsed work duration when the threshold was exceeded.
        elapsed: Duration,
        /// Configured time limit.
        limit: Duration,
    },
    /// Reported when the memory tracker estimates usage beyond the configured limit.
    MemoryLimitExceeded {
        /// Estimated bytes in use when the limit was detected.
        usage: u64,
        /// Configured memory ceiling in bytes.
        limit: u64,
    },
    /// Reported when one evaluation holds more memory than its budget
    /// (`Engine::set_memory_budget_config`), or a builtin would allocate past
    /// it.
    MemoryBudgetExceeded {
        /// Bytes the evaluation held, or would have held after the refused
        /// allocation (saturates at `u64::MAX`).
        usage: u64,
        /// Configured budget in bytes.
        budget: u64,
    },
    /// Reported when a compiled regex NFA exceeds the configured size limit.
    RegexSizeLimitExceeded {
        /// Configured compiled-NFA size ceiling in bytes.
        limit: usize,
    },
    /// Reported when a builtin would build a value larger than a
    /// [`BuiltinLimits`](super::BuiltinLimits) bound. Checked before the value
    /// is allocated.
    BuiltinLimitExceeded {
        /// Name of the builtin, e.g. `numbers.range`.
        builtin: &'static str,
        /// Name of the exceeded `BuiltinLimits` field: `max_elements` or
        /// `max_string_bytes`.
        limit: &'static str,
        /// Size the call would have produced, at least (saturates at `u64::MAX`).
        requested: u64,
        /// Configured bound.
        max: u64,
    },
}

impl fmt::Debug for LimitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TimeLimitExceeded { elapsed, limit } => f
                .debug_struct("TimeLimitExceeded")
                .field("elapsed", elapsed)
                .field("limit", limit)
                .finish(),
            Self::MemoryLimitExceeded { usage, limit } => f
                .debug_struct("MemoryLimitExceeded")
                .field("usage", usage)
                .field("limit", limit)
                .finish(),
            Self::MemoryBudgetExceeded { usage, budget } => f
                .debug_struct("MemoryBudgetExceeded")
                .field("usage", usage)
                .field("budget", budget)
                .finish(),
            Self::RegexSizeLimitExceeded { limit } => f
                .debug_struct("RegexSizeLimitExceeded")
                .field("limit", limit)
                .finish(),
            Self::BuiltinLimitExceeded {
                builtin,
                limit,
                requested,
                max,
            } => f
                .debug_struct("BuiltinLimitExceeded")
                .field("builtin", builtin)
                .field("limit", limit)
                .field("requested", requested)
                .field("max", max)
                .finish(),
        }
    }
}

impl fmt::Display for LimitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TimeLimitExceeded { elapsed, limit } => {
                let elapsed_ns = elapsed.as_nanos();
                let limit_ns = limit.as_nanos();
                write!(
                    f,
                    "execution exceeded time limit (elapsed={}ns, limit={}ns)",
                    elapsed_ns, limit_ns
                )
            }
            Self::MemoryLimitExceeded { usage, limit } => {
                write!(
                    f,
                    "execution exceeded memory limit (usage={} bytes, limit={} bytes)",
                    usage, limit
                )
            }
            Self::MemoryBudgetExceeded { usage, budget } => write!(
                f,
                "evaluation exceeded its memory budget (usage={} bytes, budget={} bytes)",
                usage, budget
            ),
            Self::RegexSizeLimitExceeded { limit } => {
                write!(f, "compiled regex exceeded size limit ({} bytes)", limit)
            }
            Self::BuiltinLimitExceeded {
                builtin,
                limit,
                requested,
                max,
            } => f.write_str(&builtin_limit_message(builtin, limit, *requested, *max)),
        }
    }
}

impl core::error::Error for LimitError {}

/// Message of [`LimitError::BuiltinLimitExceeded`]; always starts with
/// `builtin limit exceeded: `.
pub fn builtin_limit_message(builtin: &str, limit: &str, requested: u64, max: u64) -> String {
    let unit = match limit {
        "max_elements" => "elements",
        _ => "bytes",
    };
    format!(
        "builtin limit exceeded: {builtin} would produce {requested} {unit}, over {limit} = {max}"
    )
}
