//! What pushes may hold, host-wide: how many tenants are fed by pushes
//! alone (`max_pushed_tenants`), how many bytes of pushed content all
//! tenants hold together (`max_pushed_bytes`), and whether a push fits the
//! memory budget. Push-only tenants are capped here and not by
//! `max_instances`, so a flood of pushes can neither evict bundle tenants
//! nor leave them answering `capacity_exceeded`.
//!
//! This module only counts and refuses; it never evicts, and it does not
//! decide what a push writes (overlay.rs does).

use crate::host::HostInner;
use crate::overlay::Pushed;
use crate::HostError;
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

/// The size a push is counted at: every pushed policy's text plus the
/// pushed data serialized as JSON. Close to what the merged bundle adds to
/// the compiled policy, and cheap next to the compile every push runs.
pub(crate) fn content_bytes(policies: &BTreeMap<String, String>, data: &Map<String, Value>) -> u64 {
    let text: usize = policies.iter().map(|(id, raw)| id.len() + raw.len()).sum();
    let data = if data.is_empty() {
        0
    } else {
        serde_json::to_vec(data).map_or(0, |v| v.len())
    };
    (text + data) as u64
}

/// A push about to be committed, as the limits see it.
pub(crate) struct PushSize {
    /// The tenant would be fed by pushes alone.
    pub(crate) push_only: bool,
    /// Bytes of pushed content the tenant holds now (0 for none).
    pub(crate) before: u64,
    /// Bytes it would hold after the push.
    pub(crate) after: u64,
}

impl HostInner {
    /// Tenants fed by pushes alone (their pushed content is laid over the
    /// empty bundle).
    pub(crate) fn push_only_tenants(&self) -> BTreeSet<Arc<str>> {
        let pushed = self.pushed.lock().unwrap_or_else(|p| p.into_inner());
        pushed
            .iter()
            .filter(|(_, p)| p.is_push_only())
            .map(|(t, _)| t.clone())
            .collect()
    }

    /// Refuses a push that would pass the push limits, given the pushed
    /// state of every tenant (`pushed`, under its lock so concurrent pushes
    /// to different tenants cannot both take the last place). A push that
    /// does not grow the content (a delete) always passes, so a tenant over
    /// a lowered limit can still be emptied.
    pub(crate) fn check_push_limits(
        &self,
        pushed: &HashMap<Arc<str>, Pushed>,
        tenant: &str,
        size: &PushSize,
    ) -> Result<(), HostError> {
        let refuse = |reason: String| {
            Err(HostError::PushLimit {
                tenant: tenant.to_string(),
                reason,
            })
        };
        let existing = pushed.get(tenant);
        let new_push_only = size.push_only && existing.is_none_or(|p| !p.is_push_only());
        if new_push_only && size.after > 0 {
            let count = pushed.values().filter(|p| p.is_push_only()).count();
            if count >= self.config.max_pushed_tenants {
                return refuse(format!(
                    "{count} tenants are fed by pushes alone (host.max_pushed_tenants)"
                ));
            }
        }
        if size.after <= size.before {
            return Ok(());
        }
        let others: u64 = pushed
            .iter()
            .filter(|(t, _)| t.as_ref() != tenant)
            .map(|(_, p)| p.bytes())
            .sum();
        let total = others.saturating_add(size.after);
        if total > self.config.max_pushed_bytes {
            return refuse(format!(
                "pushed content would take {total} bytes, over host.max_pushed_bytes ({})",
                self.config.max_pushed_bytes
            ));
        }
        Ok(())
    }

    /// Refuses a push that would take the host's approximate memory past
    /// the memory budget. A push never evicts to make room: bundle tenants
    /// are what the budget evicts, and pushes must not push them out.
    pub(crate) fn check_push_memory(&self, tenant: &str, size: &PushSize) -> Result<(), HostError> {
        let budget = self.config.memory_budget;
        if budget == u64::MAX || size.after <= size.before {
            return Ok(());
        }
        let now = self.approx_memory();
        let after = now.saturating_add(size.after - size.before);
        if after > budget {
            return Err(HostError::PushLimit {
                tenant: tenant.to_string(),
                reason: format!(
                    "approximate memory would be {after} bytes, over host.memory_budget_bytes ({budget})"
                ),
            });
        }
        Ok(())
    }
}
