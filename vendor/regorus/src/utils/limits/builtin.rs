// Copyright (c) Microsoft Corporation.
// Licensed under the MIT License.

// Some functions below have a body only with `std`, and could be `const` without.
#![allow(clippy::missing_const_for_fn)]

//! Bounds on the values a single builtin call may build.
//!
//! Builtins whose output size is computed from their arguments
//! (`numbers.range(1, 1e13)`, `concat` with a huge separator, `sprintf` with a
//! huge width, ...) check the size they are about to produce against
//! [`BuiltinLimits`] before allocating, and fail with
//! [`LimitError::BuiltinLimitExceeded`] instead of exhausting memory.
//!
//! Builtins receive no evaluator context, so the interpreter and the RVM
//! install the limits of the engine or VM for the duration of each builtin
//! call in a per-thread scope. A builtin called outside of any evaluator sees
//! [`BuiltinLimits::default`]. Without the `std` feature there is no
//! thread-local storage: builtins always use the defaults.
//!
//! The same scope carries the evaluator's execution deadline, so that loops
//! inside builtins whose length follows from their arguments
//! (`numbers.range`, `net.cidr_expand`, graph walks, ...) stop at the
//! deadline: they call [`tick_builtin_deadline`], which reads the clock every
//! [`BUILTIN_DEADLINE_CHECK_INTERVAL`] units of work.
//!
//! It also carries the evaluation's memory budget, if one is set
//! ([`EvalMemoryBudget`]): every tick checks it, and the size checks below
//! refuse a value that would not fit in what is left of it.

#[cfg(feature = "std")]
use core::time::Duration;

#[cfg(feature = "std")]
use super::monotonic_now;
use super::{EvalMemoryBudget, ExecutionTimer, LimitError};

/// Bounds on the size of the value produced by one builtin call.
///
/// Set with [`Engine::set_builtin_limits`](crate::Engine::set_builtin_limits)
/// or `RegoVM::set_builtin_limits`. Exceeding a bound is reported as
/// [`LimitError::BuiltinLimitExceeded`], an error even when strict builtin
/// errors are disabled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BuiltinLimits {
    /// Maximum number of elements in a collection built by one builtin call
    /// (for example `numbers.range`, `net.cidr_expand`, `split`,
    /// `array.concat`, `union`, the total number of path elements built by
    /// `graph.reachable_paths`, the nodes created by `yaml.unmarshal`).
    /// Default: [`BuiltinLimits::DEFAULT_MAX_ELEMENTS`].
    pub max_elements: usize,
    /// Maximum number of bytes of a string built by one builtin call (for
    /// example `concat`, `sprintf`, `replace`, `json.marshal`), and of the
    /// binary representation of an integer built by `bits.lsh`.
    /// Default: [`BuiltinLimits::DEFAULT_MAX_STRING_BYTES`].
    pub max_string_bytes: usize,
}

impl BuiltinLimits {
    /// Default for [`BuiltinLimits::max_elements`]: 1,000,000 elements.
    pub const DEFAULT_MAX_ELEMENTS: usize = 1_000_000;
    /// Default for [`BuiltinLimits::max_string_bytes`]: 16 MiB.
    pub const DEFAULT_MAX_STRING_BYTES: usize = 16 * 1024 * 1024;
}

impl Default for BuiltinLimits {
    fn default() -> Self {
        Self {
            max_elements: Self::DEFAULT_MAX_ELEMENTS,
            max_string_bytes: Self::DEFAULT_MAX_STRING_BYTES,
        }
    }
}

/// Units of work (an element produced, or a comparable step) between two
/// reads of the clock by builtins.
pub const BUILTIN_DEADLINE_CHECK_INTERVAL: u32 = 1024;

#[cfg(feature = "std")]
#[derive(Clone, Copy)]
struct Scope {
    limits: BuiltinLimits,
    /// Start and limit of the evaluator's execution timer, if it runs.
    deadline: Option<(Duration, Duration)>,
    /// Units of work since the last clock read.
    work: u32,
    /// The evaluation's memory budget, if it has one.
    memory: Option<EvalMemoryBudget>,
}

#[cfg(feature = "std")]
std::thread_local! {
    static CURRENT: core::cell::Cell<Option<Scope>> = const { core::cell::Cell::new(None) };
}

/// Installs `limits`, the deadline of `timer` and the evaluation's memory
/// budget as seen by builtins called on this thread until the returned guard
/// is dropped.
pub struct BuiltinLimitsScope {
    #[cfg(feature = "std")]
    previous: Option<Scope>,
    _not_send: core::marker::PhantomData<*const ()>,
}

impl BuiltinLimitsScope {
    #[allow(unused_variables)]
    pub fn enter(
        limits: BuiltinLimits,
        timer: &ExecutionTimer,
        memory: Option<EvalMemoryBudget>,
    ) -> Self {
        #[cfg(feature = "std")]
        let scope = Scope {
            limits,
            deadline: timer.started_at().zip(timer.limit()),
            work: 0,
            memory,
        };
        Self {
            #[cfg(feature = "std")]
            previous: CURRENT.with(|current| current.replace(Some(scope))),
            _not_send: core::marker::PhantomData,
        }
    }
}

impl Drop for BuiltinLimitsScope {
    fn drop(&mut self) {
        #[cfg(feature = "std")]
        CURRENT.with(|current| current.set(self.previous));
    }
}

/// The limits that apply to the builtin being evaluated on this thread.
pub fn current_builtin_limits() -> BuiltinLimits {
    #[cfg(feature = "std")]
    if let Some(scope) = CURRENT.with(core::cell::Cell::get) {
        return scope.limits;
    }
    BuiltinLimits::default()
}

/// Counts `work` units done by the builtin being evaluated on this thread
/// and, every [`BUILTIN_DEADLINE_CHECK_INTERVAL`] units, fails with
/// [`LimitError::TimeLimitExceeded`] once the evaluator's deadline has passed.
/// Fails with [`LimitError::MemoryBudgetExceeded`] as soon as the evaluation
/// holds more than its memory budget.
#[allow(unused_variables)]
pub fn tick_builtin_deadline(work: u32) -> Result<(), LimitError> {
    #[cfg(feature = "std")]
    {
        check_builtin_memory(0)?;
        let deadline = CURRENT.with(|current| {
            let mut scope = current.get()?;
            let deadline = scope.deadline?;
            scope.work = scope.work.saturating_add(work);
            let due = scope.work >= BUILTIN_DEADLINE_CHECK_INTERVAL;
            if due {
                scope.work = 0;
            }
            current.set(Some(scope));
            due.then_some(deadline)
        });
        if let (Some((start, limit)), Some(now)) =
            (deadline, deadline.and_then(|_| monotonic_now()))
        {
            let elapsed = now.saturating_sub(start);
            if elapsed > limit {
                return Err(LimitError::TimeLimitExceeded { elapsed, limit });
            }
        }
    }
    Ok(())
}

/// Fails if the builtin being evaluated on this thread would take its
/// evaluation past its memory budget by allocating `requested` more bytes.
#[allow(unused_variables)]
pub fn check_builtin_memory(requested: u128) -> Result<(), LimitError> {
    #[cfg(feature = "std")]
    return CURRENT.with(|current| {
        let Some(mut scope) = current.get() else {
            return Ok(());
        };
        let Some(budget) = scope.memory.as_mut() else {
            return Ok(());
        };
        let outcome = budget.check_with(requested);
        // Keep the lowered baseline (see `EvalMemoryBudget::usage`).
        current.set(Some(scope));
        outcome
    });
    #[cfg(not(feature = "std"))]
    Ok(())
}

fn saturate(n: u128) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

fn widen(n: usize) -> u128 {
    u128::try_from(n).unwrap_or(u128::MAX)
}

/// Fails unless a collection of `count` elements fits in `max_elements`, and
/// in what is left of the evaluation's memory budget.
pub fn check_builtin_elements(builtin: &'static str, count: u128) -> Result<(), LimitError> {
    let max = current_builtin_limits().max_elements;
    if count > widen(max) {
        return Err(LimitError::BuiltinLimitExceeded {
            builtin,
            limit: "max_elements",
            requested: saturate(count),
            max: saturate(widen(max)),
        });
    }
    // Each element is at least one `Value`.
    check_builtin_memory(count.saturating_mul(widen(core::mem::size_of::<crate::Value>())))
}

/// Fails unless a string of `bytes` bytes fits in `max_string_bytes`.
pub fn check_builtin_string_bytes(builtin: &'static str, bytes: u128) -> Result<(), LimitError> {
    let max = current_builtin_limits().max_string_bytes;
    if bytes > widen(max) {
        return Err(LimitError::BuiltinLimitExceeded {
            builtin,
            limit: "max_string_bytes",
            requested: saturate(bytes),
            max: saturate(widen(max)),
        });
    }
    check_builtin_memory(bytes)
}

#[cfg(feature = "std")]
std::thread_local! {
    static ELEMENT_BUDGET: core::cell::Cell<Option<(u128, u128)>> = const { core::cell::Cell::new(None) };
}

/// Counts the elements created by a deserialization (for example the nodes
/// that YAML aliases expand to) until dropped; past `max` elements the
/// deserializer fails (see [`take_deserialized_element`]).
pub struct DeserializeElementBudget {
    #[cfg(feature = "std")]
    previous: Option<(u128, u128)>,
    _not_send: core::marker::PhantomData<*const ()>,
}

impl DeserializeElementBudget {
    #[allow(unused_variables)]
    pub fn enter(max: usize) -> Self {
        Self {
            #[cfg(feature = "std")]
            previous: ELEMENT_BUDGET.with(|budget| budget.replace(Some((widen(max), 0)))),
            _not_send: core::marker::PhantomData,
        }
    }

    /// Number of elements created so far (at most `max + 1`).
    #[allow(clippy::unused_self)] // reads the budget this guard installed
    pub fn used(&self) -> u128 {
        #[cfg(feature = "std")]
        if let Some((_, used)) = ELEMENT_BUDGET.with(core::cell::Cell::get) {
            return used;
        }
        0
    }
}

impl Drop for DeserializeElementBudget {
    fn drop(&mut self) {
        #[cfg(feature = "std")]
        ELEMENT_BUDGET.with(|budget| budget.set(self.previous));
    }
}

/// Counts one deserialized element against the active
/// [`DeserializeElementBudget`], if any. Returns `false` once it is exhausted.
pub fn take_deserialized_element() -> bool {
    #[cfg(feature = "std")]
    return ELEMENT_BUDGET.with(|budget| match budget.get() {
        Some((max, used)) => {
            let used = used.saturating_add(1);
            budget.set(Some((max, used)));
            used <= max
        }
        None => true,
    });
    #[cfg(not(feature = "std"))]
    true
}

#[cfg(all(test, feature = "std"))]
mod tests {
    use super::*;

    // Without the counting allocator the evaluation holds nothing, so what
    // is refused here is the requested size alone: the check happens before
    // the allocation.
    #[test]
    fn sizes_from_arguments_are_refused_past_the_memory_budget() {
        let timer = ExecutionTimer::new(None);
        let budget = EvalMemoryBudget::from_baseline(i64::MAX, 1024);
        let _scope = BuiltinLimitsScope::enter(BuiltinLimits::default(), &timer, Some(budget));
        assert_eq!(check_builtin_string_bytes("concat", 1024), Ok(()));
        assert_eq!(
            check_builtin_string_bytes("concat", 1025),
            Err(LimitError::MemoryBudgetExceeded {
                usage: 1025,
                budget: 1024
            })
        );
        let per_value = core::mem::size_of::<crate::Value>() as u128;
        assert_eq!(
            check_builtin_elements("numbers.range", 1024 / per_value),
            Ok(())
        );
        assert!(matches!(
            check_builtin_elements("numbers.range", 1024 / per_value + 1),
            Err(LimitError::MemoryBudgetExceeded { budget: 1024, .. })
        ));
    }

    #[test]
    fn without_a_memory_budget_only_the_builtin_limits_apply() {
        let timer = ExecutionTimer::new(None);
        let _scope = BuiltinLimitsScope::enter(BuiltinLimits::default(), &timer, None);
        assert_eq!(check_builtin_string_bytes("concat", 1 << 20), Ok(()));
        assert_eq!(tick_builtin_deadline(1), Ok(()));
    }
}
