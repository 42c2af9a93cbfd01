//! What the host reports about itself: a snapshot per instance (state,
//! revision, load status, counters; the admin API reads it), a lighter
//! read of each instance's counters (metrics read it for every tenant on
//! every scrape) and the host's lifetime counters. Read-only: nothing here changes an
//! instance, and nothing here is on the decision path.

use crate::host::{Host, HostInner};
use crate::instance::{Instance, InstanceState, NO_FETCH};
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// Counters over the host's life, for tests, metrics and benchmarks.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct HostStats {
    /// Bundle fetches started.
    pub fetches: u64,
    /// Bundles compiled (a shared compile is not counted).
    pub compiles: u64,
    /// Activations that reused another tenant's compiled policy.
    pub shared_compiles: u64,
    /// Revisions activated.
    pub activations: u64,
    /// Loads that failed (fetch, bundle or compile error).
    pub activation_failures: u64,
    /// Instances collected after their grace period.
    pub collected: u64,
    /// Instances evicted for capacity before their grace period ended.
    pub evicted: u64,
    /// Evaluations run on the async worker that asked for them (inline
    /// turns of cheap tenants, `FairShareConfig::inline`), not handed to
    /// an evaluation thread.
    pub inline_evaluations: u64,
    /// Inline evaluations cut off at the inline budget and evaluated again
    /// on an evaluation thread.
    pub inline_overruns: u64,
}

#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) fetches: AtomicU64,
    pub(crate) compiles: AtomicU64,
    pub(crate) shared_compiles: AtomicU64,
    pub(crate) activations: AtomicU64,
    pub(crate) activation_failures: AtomicU64,
    pub(crate) collected: AtomicU64,
    pub(crate) evicted: AtomicU64,
}

/// What one instance looks like now; the admin API and metrics read this.
#[derive(Debug, Clone, Serialize)]
pub struct TenantSnapshot {
    /// The tenant id.
    pub tenant: String,
    /// `tenant=<id>` plus the configured labels.
    pub labels: BTreeMap<String, String>,
    /// Lifecycle state.
    pub state: InstanceState,
    /// Leases and route references held.
    pub references: usize,
    /// Created by an on-demand decision.
    pub on_demand: bool,
    /// How long it has been unreferenced, if it is (seconds in JSON).
    #[serde(serialize_with = "as_secs")]
    pub idle_for: Option<Duration>,
    /// Active revision.
    pub revision: Option<String>,
    /// Content digest of the active bundle.
    pub digest: Option<String>,
    /// Where the bundle comes from.
    pub source: String,
    /// Last fetch attempt.
    #[serde(serialize_with = "as_rfc3339")]
    pub last_fetch: Option<SystemTime>,
    /// Next scheduled fetch (polling, a retry, or a file change). `None`
    /// while a fetch runs and when none is scheduled (polling off after
    /// the first activation).
    #[serde(serialize_with = "as_rfc3339")]
    pub next_fetch: Option<SystemTime>,
    /// Last successful download of a new bundle.
    #[serde(serialize_with = "as_rfc3339")]
    pub last_download: Option<SystemTime>,
    /// Last successful activation.
    #[serde(serialize_with = "as_rfc3339")]
    pub last_activation: Option<SystemTime>,
    /// Last load error, cleared by a successful load.
    pub last_error: Option<String>,
    /// Failed loads since the last success.
    pub consecutive_failures: u32,
    /// Approximate bytes: the compiled policy (possibly shared) plus the
    /// instance's own state.
    pub approx_bytes: u64,
    /// Evaluators pooled for the next decisions (dropped once the instance
    /// has made no decision for `trim_after`).
    pub idle_evaluators: usize,
    /// Its evaluations waiting for or running on an evaluation thread.
    pub pending_evaluations: usize,
    /// Moving average of its recent evaluation times, in microseconds
    /// (what the evaluation pool's fair share calls heavy past
    /// `FairShareConfig::heavy_after`).
    pub evaluation_cost_us: u64,
    /// Where its evaluations run.
    pub isolation: crate::IsolationLevel,
    /// Outcomes, deadline hits, latencies and loads.
    pub tally: crate::DecisionTally,
    /// Decisions answered.
    pub decisions: u64,
    /// Decisions that failed.
    pub decision_errors: u64,
    /// Decisions answered from the cache.
    pub cache_hits: u64,
}

fn as_secs<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_f64(d.as_secs_f64()),
        None => s.serialize_none(),
    }
}

fn as_rfc3339<S: serde::Serializer>(t: &Option<SystemTime>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => s.serialize_str(&humantime::format_rfc3339_millis(*t).to_string()),
        None => s.serialize_none(),
    }
}

impl Host {
    /// The counters and gauges of every instance, sorted by tenant: what
    /// `/metrics` reads on each scrape. Copies no strings (names, labels
    /// and revisions are shared) and takes no lock but the instance map's
    /// pin, so reading 100,000 tenants stays cheap.
    pub fn tenant_counters(&self) -> Vec<TenantCounters> {
        let pin = self.inner.instances.pin();
        let mut out = Vec::with_capacity(pin.len());
        out.extend(
            pin.iter()
                .filter(|(_, i)| !i.is_collected())
                .map(|(_, i)| counters(i)),
        );
        out.sort_unstable_by(|a, b| a.tenant.cmp(&b.tenant));
        out
    }

    /// A snapshot of every instance.
    pub fn tenants(&self) -> Vec<TenantSnapshot> {
        let pin = self.inner.instances.pin();
        let mut out: Vec<TenantSnapshot> = pin
            .iter()
            .filter(|(_, i)| !i.is_collected())
            .map(|(_, i)| self.inner.snapshot(i))
            .collect();
        out.sort_by(|a, b| a.tenant.cmp(&b.tenant));
        out
    }

    /// A snapshot of one instance.
    pub fn tenant(&self, tenant: &str) -> Option<TenantSnapshot> {
        self.inner.lookup(tenant).map(|i| self.inner.snapshot(&i))
    }

    /// Lifetime counters.
    pub fn stats(&self) -> HostStats {
        let c = &self.inner.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        HostStats {
            fetches: get(&c.fetches),
            compiles: get(&c.compiles),
            shared_compiles: get(&c.shared_compiles),
            activations: get(&c.activations),
            activation_failures: get(&c.activation_failures),
            collected: get(&c.collected),
            evicted: get(&c.evicted),
            inline_evaluations: self.inner.pool.inline_turns(),
            inline_overruns: self.inner.pool.inline_overruns(),
        }
    }
}

/// What `/metrics` reads of one instance ([`Host::tenant_counters`]): the
/// fields of its [`TenantSnapshot`] that are numbers, with its name, labels
/// and revision shared rather than copied.
#[derive(Debug, Clone)]
pub struct TenantCounters {
    /// The tenant id.
    pub tenant: Arc<str>,
    /// `tenant=<id>` plus the configured labels.
    pub labels: Arc<BTreeMap<String, String>>,
    /// Lifecycle state.
    pub state: InstanceState,
    /// Active revision.
    pub revision: Option<Arc<str>>,
    /// Leases and route references held.
    pub references: usize,
    /// As [`TenantSnapshot::approx_bytes`].
    pub approx_bytes: u64,
    /// As [`TenantSnapshot::pending_evaluations`].
    pub pending_evaluations: usize,
    /// As [`TenantSnapshot::evaluation_cost_us`].
    pub evaluation_cost_us: u64,
    /// Outcomes, deadline hits, latencies and loads.
    pub tally: crate::DecisionTally,
    /// Decisions answered.
    pub decisions: u64,
    /// Decisions that failed.
    pub decision_errors: u64,
    /// Decisions answered from the cache.
    pub cache_hits: u64,
}

fn counters(i: &Instance) -> TenantCounters {
    let current = i.current();
    TenantCounters {
        tenant: i.tenant.clone(),
        labels: i.labels.load_full(),
        state: i.state(),
        revision: current.as_ref().map(|a| a.revision.clone()),
        references: i.references(),
        approx_bytes: i.own_bytes()
            + current
                .as_ref()
                .map_or(0, |a| a.policy.approx_bytes() as u64),
        pending_evaluations: i.lane.pending(),
        evaluation_cost_us: u64::try_from(i.lane.cost().as_micros()).unwrap_or(u64::MAX),
        tally: i.tally.snapshot(),
        decisions: i.decisions.load(Ordering::Relaxed),
        decision_errors: i.decision_errors.load(Ordering::Relaxed),
        cache_hits: i.cache_hits.load(Ordering::Relaxed),
    }
}

impl HostInner {
    /// The instance's next scheduled fetch as a wall-clock time.
    fn next_fetch(&self, instance: &Instance) -> Option<SystemTime> {
        let at = instance.next_fetch.load(Ordering::Relaxed);
        if at == NO_FETCH {
            return None;
        }
        let now = self.now();
        let wall = SystemTime::now();
        Some(if at >= now {
            wall + Duration::from_nanos(at - now)
        } else {
            wall - Duration::from_nanos(now - at)
        })
    }

    fn snapshot(&self, i: &Instance) -> TenantSnapshot {
        let now = self.now();
        let c = counters(i);
        let status = i.status.lock().unwrap_or_else(|p| p.into_inner());
        let current = i.current();
        let references = c.references;
        TenantSnapshot {
            tenant: c.tenant.to_string(),
            labels: c.labels.as_ref().clone(),
            state: c.state,
            references,
            on_demand: i.on_demand.load(Ordering::Relaxed),
            idle_for: (references == 0).then(|| {
                Duration::from_nanos(now.saturating_sub(i.idle_since.load(Ordering::Relaxed)))
            }),
            revision: c.revision.as_deref().map(str::to_string),
            digest: current.as_ref().map(|a| a.policy.digest().to_string()),
            source: i.source.location(),
            last_fetch: status.last_fetch,
            next_fetch: self.next_fetch(i),
            last_download: status.last_download,
            last_activation: status.last_activation,
            last_error: status.last_error.clone(),
            consecutive_failures: status.consecutive_failures,
            approx_bytes: c.approx_bytes,
            idle_evaluators: current.as_ref().map_or(0, |a| a.policy.idle_evaluators()),
            pending_evaluations: c.pending_evaluations,
            evaluation_cost_us: c.evaluation_cost_us,
            isolation: i.isolation(),
            tally: c.tally,
            decisions: c.decisions,
            decision_errors: c.decision_errors,
            cache_hits: c.cache_hits,
        }
    }
}
