// Copyright (c) Microsoft Corporation.
// Licensed under the MIT License.

//! A memory budget for one evaluation, measured as the growth of the
//! evaluating thread's live bytes since the evaluation began.
//!
//! The interpreter starts one per evaluation (see
//! [`Engine::set_memory_budget_config`](crate::Engine)), and both evaluators
//! hand theirs to the builtins they call, so that loops inside builtins and
//! allocations sized from a builtin's arguments are held to it too. Live
//! bytes are counted by the allocator of the `allocator-memory-limits`
//! feature; without that feature (or under miri) nothing is counted and no
//! budget is ever exceeded.

use super::LimitError;

/// Bytes this thread holds, as counted by the global allocator.
#[inline]
#[allow(clippy::missing_const_for_fn)] // only without the counting allocator
fn thread_live_bytes() -> i64 {
    #[cfg(all(feature = "allocator-memory-limits", not(miri)))]
    return mimalloc::limits::current_thread_live_bytes();
    #[cfg(any(miri, not(feature = "allocator-memory-limits")))]
    0
}

/// A running evaluation's budget: how many bytes it may add to the live
/// bytes of its thread.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EvalMemoryBudget {
    /// Live bytes of the thread when the evaluation began, lowered whenever
    /// the evaluation frees memory it did not allocate (so what it allocates
    /// afterwards is charged in full).
    baseline: i64,
    limit: u64,
}

impl EvalMemoryBudget {
    /// Starts a budget of `limit` bytes from the thread's current live bytes.
    pub fn start(limit: u64) -> Self {
        Self::from_baseline(thread_live_bytes(), limit)
    }

    /// A budget of `limit` bytes whose evaluation began at `baseline` live
    /// bytes (the RVM keeps its own baseline).
    pub const fn from_baseline(baseline: i64, limit: u64) -> Self {
        Self { baseline, limit }
    }

    /// The configured limit in bytes.
    pub const fn limit(&self) -> u64 {
        self.limit
    }

    /// Bytes charged to the evaluation so far.
    pub fn usage(&mut self) -> u64 {
        let live = thread_live_bytes();
        self.baseline = self.baseline.min(live);
        live.saturating_sub(self.baseline).unsigned_abs()
    }

    /// Fails with [`LimitError::MemoryBudgetExceeded`] once the evaluation
    /// holds more than its limit.
    pub fn check(&mut self) -> Result<(), LimitError> {
        self.check_with(0)
    }

    /// Fails with [`LimitError::MemoryBudgetExceeded`] if allocating
    /// `requested` more bytes would take the evaluation past its limit, so a
    /// builtin can refuse an allocation sized from its arguments before
    /// making it.
    pub fn check_with(&mut self, requested: u128) -> Result<(), LimitError> {
        let usage = u128::from(self.usage()).saturating_add(requested);
        if usage > u128::from(self.limit) {
            return Err(LimitError::MemoryBudgetExceeded {
                usage: u64::try_from(usage).unwrap_or(u64::MAX),
                budget: self.limit,
            });
        }
        Ok(())
    }
}
