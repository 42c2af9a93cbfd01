//! Compiled policies by bundle digest, so tenants whose bundles are
//! identical share one compiled policy, and concurrent loads of one bundle
//! compile it once (each digest's slot is a mutex the loads wait on).
//!
//! The table holds weak references: a policy lives as long as some tenant
//! serves it. Slots whose policy is gone are pruned when the table has
//! doubled since the last pruning, so a load costs amortised constant time
//! however many tenants the host has (scanning the whole table on every
//! load made starting N tenants cost N² under one lock). This module
//! never compiles anything.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, TryLockError};
use tenet_policy::WeakPolicy;

/// The fewest slots at which the table is pruned.
const MIN_PRUNE_AT: usize = 64;

/// A digest's slot: the policy compiled from it, if any tenant still holds it.
pub(crate) type Slot = Arc<Mutex<WeakPolicy>>;

/// Compiled policies by bundle digest (see the module documentation).
pub(crate) struct SharedCompiles {
    table: Mutex<Table>,
}

struct Table {
    slots: HashMap<String, Slot>,
    /// Prune when the table reaches this many slots.
    prune_at: usize,
    /// Prunings so far (each scans the whole table).
    prunes: u64,
}

impl SharedCompiles {
    pub(crate) fn new() -> Self {
        Self {
            table: Mutex::new(Table {
                slots: HashMap::new(),
                prune_at: MIN_PRUNE_AT,
                prunes: 0,
            }),
        }
    }

    /// The slot of `digest`, created empty if absent.
    pub(crate) fn slot(&self, digest: &str) -> Slot {
        let mut table = self.table.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(slot) = table.slots.get(digest) {
            return slot.clone();
        }
        if table.slots.len() >= table.prune_at {
            table.slots.retain(|_, slot| live(slot));
            table.prune_at = (table.slots.len() * 2).max(MIN_PRUNE_AT);
            table.prunes += 1;
        }
        let slot = Slot::default();
        table.slots.insert(digest.to_string(), slot.clone());
        slot
    }

    /// Slots in the table (live or not yet pruned) and prunings so far.
    #[cfg(test)]
    fn len_and_prunes(&self) -> (usize, u64) {
        let table = self.table.lock().unwrap_or_else(|p| p.into_inner());
        (table.slots.len(), table.prunes)
    }
}

/// A slot worth keeping: a load is using it, or its policy is alive.
fn live(slot: &Slot) -> bool {
    Arc::strong_count(slot) > 1
        || match slot.try_lock() {
            Ok(weak) => weak.upgrade().is_some(),
            // A compile panicked holding it: nothing to share.
            Err(TryLockError::Poisoned(_)) => false,
            Err(TryLockError::WouldBlock) => true,
        }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use tenet_bundle::{Bundle, BundleFile, Limits};
    use tenet_policy::{CompileOptions, Policy};

    fn policy(n: usize) -> Policy {
        let files = vec![BundleFile {
            path: "p.rego".into(),
            bytes: format!("package p\nn := {n}\n").into_bytes(),
        }];
        let bundle = Bundle::from_files(files, &Limits::default()).unwrap();
        Policy::compile(&bundle, CompileOptions::default()).unwrap()
    }

    #[test]
    fn a_digest_has_one_slot_while_its_policy_lives() {
        let shared = SharedCompiles::new();
        let p = policy(1);
        *shared.slot("d1").lock().unwrap() = p.downgrade();
        assert!(shared.slot("d1").lock().unwrap().upgrade().is_some());
        assert!(shared.slot("d2").lock().unwrap().upgrade().is_none());
    }

    #[test]
    fn dead_slots_are_pruned_and_live_ones_kept_as_the_table_grows() {
        let shared = SharedCompiles::new();
        let kept: Vec<Policy> = (0..10).map(policy).collect();
        for (i, p) in kept.iter().enumerate() {
            *shared.slot(&format!("live{i}")).lock().unwrap() = p.downgrade();
        }
        // 10,000 loads of bundles whose policies are already gone.
        let gone = policy(0).downgrade();
        for i in 0..10_000 {
            *shared.slot(&format!("dead{i}")).lock().unwrap() = gone.clone();
        }
        // Bounded, and pruned about once per MIN_PRUNE_AT loads, not at
        // every load.
        let (len, prunes) = shared.len_and_prunes();
        assert!(len <= 2 * MIN_PRUNE_AT, "{len} slots");
        assert!(
            prunes <= 10_000 / (MIN_PRUNE_AT as u64 / 2),
            "{prunes} prunings"
        );
        for (i, p) in kept.iter().enumerate() {
            let slot = shared.slot(&format!("live{i}"));
            let held = slot
                .lock()
                .unwrap()
                .upgrade()
                .map(|q| q.digest().to_string());
            assert_eq!(held.as_deref(), Some(p.digest()));
        }
    }
}
