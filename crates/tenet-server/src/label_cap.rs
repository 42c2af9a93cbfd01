//! The cap on distinct `tenant` label values in `/metrics`: at most `cap`
//! tenants have series of their own; every other tenant's samples are
//! added up under `tenant="__other__"`. Which tenants keep their own series
//! is decided by activity, not arrival order: at each scrape, a tenant that
//! decided since the last one may take the place of a member that has not
//! decided for `IDLE_SCRAPES` scrapes, busiest first. Membership is sticky
//! otherwise, so series do not flap between scrapes.
//!
//! Counters of a tenant that moves between its own series and `__other__`
//! restart there (Prometheus reads that as a counter reset). This module
//! only chooses labels; metrics.rs encodes.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

/// The label for every tenant without series of its own.
pub(crate) const OTHER: &str = "__other__";

/// Scrapes without a decision after which a member may be replaced.
const IDLE_SCRAPES: u64 = 3;

#[derive(Debug)]
pub(crate) struct LabelCap {
    cap: usize,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    scrape: u64,
    /// Decisions per tenant at the previous scrape.
    seen: HashMap<String, u64>,
    /// Members, with the scrape at which each last decided.
    members: HashMap<String, u64>,
}

impl LabelCap {
    pub(crate) fn new(cap: usize) -> Self {
        Self {
            cap,
            state: Mutex::new(State::default()),
        }
    }

    /// Updates the members from this scrape's decision counts (every live
    /// tenant, with its total decisions) and returns them.
    pub(crate) fn update<'a>(
        &self,
        tenants: impl Iterator<Item = (&'a str, u64)>,
    ) -> HashSet<String> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.scrape += 1;
        let scrape = state.scrape;
        let mut seen = HashMap::new();
        let mut candidates = Vec::new();
        for (tenant, decisions) in tenants {
            let before = state.seen.get(tenant).copied().unwrap_or(0);
            let active = decisions.saturating_sub(before);
            seen.insert(tenant.to_string(), decisions);
            match state.members.get_mut(tenant) {
                Some(last) if active > 0 => *last = scrape,
                Some(_) => {}
                None => candidates.push((active, tenant)),
            }
        }
        // Tenants that are gone leave.
        state.members.retain(|t, _| seen.contains_key(t));
        state.seen = seen;
        // Busiest first, then by name for a stable order.
        candidates.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(b.1)));
        for (active, tenant) in candidates {
            if state.members.len() < self.cap {
                state.members.insert(tenant.to_string(), scrape);
                continue;
            }
            if active == 0 {
                break;
            }
            let idlest = state
                .members
                .iter()
                .filter(|(_, last)| scrape.saturating_sub(**last) >= IDLE_SCRAPES)
                .min_by(|a, b| a.1.cmp(b.1).then(a.0.cmp(b.0)))
                .map(|(t, _)| t.clone());
            match idlest {
                Some(out) => {
                    state.members.remove(&out);
                    state.members.insert(tenant.to_string(), scrape);
                }
                None => break,
            }
        }
        state.members.keys().cloned().collect()
    }

    /// The members as of the last scrape.
    pub(crate) fn members(&self) -> HashSet<String> {
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.members.keys().cloned().collect()
    }
}

/// `tenant`'s label: itself when a member, else [`OTHER`].
pub(crate) fn label<'a>(members: &HashSet<String>, tenant: &'a str) -> &'a str {
    if members.contains(tenant) {
        tenant
    } else {
        OTHER
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn names(set: &HashSet<String>) -> Vec<String> {
        let mut v: Vec<_> = set.iter().cloned().collect();
        v.sort();
        v
    }

    #[test]
    fn busy_tenants_keep_their_series_and_idle_ones_give_way() {
        let cap = LabelCap::new(2);
        // a and b arrive first; c is busier but there is no room yet.
        let m = cap.update([("a", 1), ("b", 1), ("c", 0)].into_iter());
        assert_eq!(names(&m), ["a", "b"]);
        // c decides while a and b stay idle: it waits until one of them has
        // been idle for IDLE_SCRAPES scrapes.
        let mut decisions = 0;
        let mut members = m;
        for _ in 0..IDLE_SCRAPES {
            decisions += 10;
            members = cap.update([("a", 1), ("b", 2), ("c", decisions)].into_iter());
        }
        assert_eq!(names(&members), ["b", "c"], "a was idle the longest");
        // Random names that never decide never get series.
        let many: Vec<(String, u64)> = (0..1000).map(|i| (format!("r{i}"), 0)).collect();
        let m = cap.update(
            many.iter()
                .map(|(t, d)| (t.as_str(), *d))
                .chain([("b", 2), ("c", decisions + 1)]),
        );
        assert_eq!(names(&m), ["b", "c"]);
        assert_eq!(label(&m, "r7"), OTHER);
        assert_eq!(label(&m, "c"), "c");
        // A member that is gone leaves room.
        let m = cap.update([("c", decisions + 1), ("d", 0)].into_iter());
        assert_eq!(names(&m), ["c", "d"]);
    }
}
