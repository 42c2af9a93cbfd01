//! One tenant's running counts for metrics: decisions by outcome, deadline
//! hits, evaluations (cache misses), a latency histogram, and bundle
//! fetches, activations and failures. Atomics only, written on the
//! decision and load paths without a lock, an allocation or a label;
//! read at scrape time (`TenantSnapshot::tally`).

use serde::Serialize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the latency buckets, in microseconds (then +Inf): from
/// a cached decision (~1 µs) to one at a long deadline.
pub const LATENCY_BOUNDS_US: [u64; 14] = [
    10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 1_000_000,
];

/// What a decision came to, as metrics, spans and the status page name
/// it: `allow`/`deny` for a boolean result, `defined` for another result,
/// `undefined` for none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// `true`.
    Allow,
    /// `false`.
    Deny,
    /// A result that is not a boolean.
    Defined,
    /// No result.
    Undefined,
}

impl Outcome {
    /// The outcome of `result`.
    pub fn of(result: Option<&serde_json::Value>) -> Self {
        match result {
            Some(serde_json::Value::Bool(true)) => Self::Allow,
            Some(serde_json::Value::Bool(false)) => Self::Deny,
            Some(_) => Self::Defined,
            None => Self::Undefined,
        }
    }

    /// Its name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Allow => "allow",
            Self::Deny => "deny",
            Self::Defined => "defined",
            Self::Undefined => "undefined",
        }
    }
}

#[derive(Default)]
pub(crate) struct Tally {
    allow: AtomicU64,
    deny: AtomicU64,
    defined: AtomicU64,
    undefined: AtomicU64,
    deadline_hits: AtomicU64,
    pub(crate) evaluations: AtomicU64,
    pub(crate) fetches: AtomicU64,
    pub(crate) activations: AtomicU64,
    pub(crate) activation_failures: AtomicU64,
    latency: [AtomicU64; LATENCY_BOUNDS_US.len() + 1],
    latency_sum_ns: AtomicU64,
}

/// What a tenant's decisions and loads came to.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct DecisionTally {
    /// Decisions whose result was `true`.
    pub allow: u64,
    /// Decisions whose result was `false`.
    pub deny: u64,
    /// Decisions with a result that is not a boolean.
    pub defined: u64,
    /// Decisions whose result was undefined.
    pub undefined: u64,
    /// Decisions that ran into their deadline (or instruction cap).
    pub deadline_hits: u64,
    /// Decisions that were evaluated (not answered from the cache).
    pub evaluations: u64,
    /// Bundle fetches started.
    pub fetches: u64,
    /// Revisions activated.
    pub activations: u64,
    /// Loads that failed.
    pub activation_failures: u64,
    /// Decisions per latency bucket (bounds in [`LATENCY_BOUNDS_US`], then
    /// +Inf), not cumulative.
    #[serde(skip)]
    pub latency_buckets: Vec<u64>,
    /// Total time of all decisions.
    #[serde(skip)]
    pub latency_sum: Duration,
}

impl Tally {
    /// Counts a decision's outcome (`None` for a failed decision) and
    /// latency.
    pub(crate) fn decided(&self, outcome: Option<Outcome>, deadline: bool, took: Duration) {
        if let Some(outcome) = outcome {
            let counter = match outcome {
                Outcome::Allow => &self.allow,
                Outcome::Deny => &self.deny,
                Outcome::Defined => &self.defined,
                Outcome::Undefined => &self.undefined,
            };
            counter.fetch_add(1, Ordering::Relaxed);
        }
        if deadline {
            self.deadline_hits.fetch_add(1, Ordering::Relaxed);
        }
        let us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        let bucket = LATENCY_BOUNDS_US
            .iter()
            .position(|bound| us <= *bound)
            .unwrap_or(LATENCY_BOUNDS_US.len());
        self.latency[bucket].fetch_add(1, Ordering::Relaxed);
        self.latency_sum_ns.fetch_add(
            u64::try_from(took.as_nanos()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }

    pub(crate) fn snapshot(&self) -> DecisionTally {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        DecisionTally {
            allow: get(&self.allow),
            deny: get(&self.deny),
            defined: get(&self.defined),
            undefined: get(&self.undefined),
            deadline_hits: get(&self.deadline_hits),
            evaluations: get(&self.evaluations),
            fetches: get(&self.fetches),
            activations: get(&self.activations),
            activation_failures: get(&self.activation_failures),
            latency_buckets: self.latency.iter().map(get).collect(),
            latency_sum: Duration::from_nanos(get(&self.latency_sum_ns)),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn outcomes_and_latencies_land_in_their_counters() {
        let t = Tally::default();
        t.decided(
            Some(Outcome::of(Some(&json!(true)))),
            false,
            Duration::from_micros(5),
        );
        t.decided(
            Some(Outcome::of(Some(&json!(false)))),
            false,
            Duration::from_micros(10),
        );
        t.decided(
            Some(Outcome::of(Some(&json!({"allowed": true})))),
            false,
            Duration::from_micros(11),
        );
        t.decided(Some(Outcome::of(None)), false, Duration::from_millis(3));
        t.decided(None, true, Duration::from_secs(5));
        let s = t.snapshot();
        assert_eq!(
            (s.allow, s.deny, s.defined, s.undefined, s.deadline_hits),
            (1, 1, 1, 1, 1)
        );
        assert_eq!(s.latency_buckets[0], 2, "5 and 10 µs are ≤ 10 µs");
        assert_eq!(s.latency_buckets[1], 1, "11 µs");
        assert_eq!(s.latency_buckets[8], 1, "3 ms is ≤ 5 ms");
        assert_eq!(
            *s.latency_buckets.last().unwrap(),
            1,
            "5 s is past every bound"
        );
        assert_eq!(s.latency_buckets.iter().sum::<u64>(), 5);
        assert!(s.latency_sum >= Duration::from_secs(5));
    }
}
