//! One virtual policy instance: a tenant's activation (compiled revision and
//! decision cache) behind an atomic pointer, its reference count, its
//! timestamps and its load status. The decision path reads only atomics and
//! the activation pointer; the mutex here guards load bookkeeping and is
//! taken only by loads and snapshots.

use crate::cache::DecisionCache;
use arc_swap::{ArcSwap, ArcSwapOption, Guard};
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;
use tenet_bundle::{BundleSource, VersionTag};
use tenet_policy::Policy;
use tokio::sync::Notify;

/// Reference count value of an instance that the sweeper has collected: it
/// can never be referenced again, so a lease cannot land on a dead instance.
pub(crate) const COLLECTED: usize = usize::MAX;

/// `Instance::next_fetch` when no poll is scheduled.
pub(crate) const NO_FETCH: u64 = u64::MAX;

/// Source of instance ids (unique in the process, never reused).
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// One compiled revision as served to one tenant.
pub(crate) struct Activation {
    pub(crate) policy: Policy,
    pub(crate) revision: Arc<str>,
    pub(crate) cache: Option<DecisionCache>,
}

/// Lifecycle state, as reported in snapshots.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum InstanceState {
    /// No revision activated yet; the first load is running or waiting.
    Loading,
    /// A revision is active.
    Active,
    /// No revision activated and the last load failed (a retry is scheduled).
    Failed,
}

/// Load bookkeeping; guarded by a mutex that decisions never take.
#[derive(Default)]
pub(crate) struct LoadStatus {
    pub(crate) version: Option<VersionTag>,
    pub(crate) last_fetch: Option<SystemTime>,
    pub(crate) last_download: Option<SystemTime>,
    pub(crate) last_activation: Option<SystemTime>,
    pub(crate) last_error: Option<String>,
    pub(crate) consecutive_failures: u32,
}

pub(crate) struct Instance {
    /// Unique per instance (a tenant re-created after collection gets a new
    /// id): how the scheduler and the watcher name it.
    pub(crate) id: u64,
    pub(crate) tenant: Arc<str>,
    /// The host's labels, the tenant's own from the config, and `tenant`.
    pub(crate) base_labels: Arc<BTreeMap<String, String>>,
    /// `base_labels` over the active revision's bundle labels (the
    /// config's win).
    pub(crate) labels: ArcSwap<BTreeMap<String, String>>,
    pub(crate) source: Arc<dyn BundleSource>,
    /// Checks the signatures of every bundle the source returns, if set.
    pub(crate) verifier: Option<Arc<tenet_bundle::Verifier>>,
    pub(crate) activation: ArcSwapOption<Activation>,
    /// Its lane in the evaluation pool (weight, recent cost, pending).
    pub(crate) lane: Arc<crate::pool::Lane>,
    /// Its `IsolationLevel` (`to_u8`): where its evaluations run.
    pub(crate) isolation: std::sync::atomic::AtomicU8,
    /// Lease and route references; `COLLECTED` once collected.
    pub(crate) refs: AtomicUsize,
    /// Created by an on-demand decision: referenced while recently used.
    pub(crate) on_demand: AtomicBool,
    /// Host-clock nanos when `refs` last dropped to zero (or creation).
    pub(crate) idle_since: AtomicU64,
    /// Host-clock nanos of the last decision or reference change.
    pub(crate) last_used: AtomicU64,
    /// `last_used` when the sweeper last dropped the pooled evaluators, so
    /// an idle instance is trimmed once, not at every sweep.
    pub(crate) trimmed_at_use: AtomicU64,
    /// The policy's `engine_uses` at the last sweep, and since when (host
    /// time) it has not changed: a busy instance drops its analysed engine
    /// after `trim_after` without a use.
    pub(crate) engine_uses_seen: AtomicU64,
    pub(crate) engine_unused_since: AtomicU64,
    pub(crate) decisions: AtomicU64,
    pub(crate) decision_errors: AtomicU64,
    pub(crate) cache_hits: AtomicU64,
    /// Outcomes, latencies, loads (for metrics).
    pub(crate) tally: crate::tally::Tally,
    pub(crate) failed: AtomicBool,
    /// The last fetch failed because the source has no bundle for the tenant.
    pub(crate) missing: AtomicBool,
    /// A bundle from the source was activated at least once. Until then
    /// the instance has served pushed content alone (or nothing), so a
    /// source with no bundle is its normal state and a push may be laid
    /// over an empty bundle; after, it would silently drop the bundle.
    pub(crate) bundle_seen: AtomicBool,
    /// A load has begun fetching. The file watcher arms its watches while
    /// the first load runs, and polls again if that load's fetch may have
    /// read the files before the watches were armed (`watch.rs`).
    pub(crate) fetch_started: AtomicBool,
    pub(crate) status: Mutex<LoadStatus>,
    /// Serialises loads of this instance (a reload never runs beside the
    /// initial load); decisions never touch it.
    pub(crate) loading: tokio::sync::Mutex<()>,
    pub(crate) ready: Notify,
    /// Host-clock nanos of the next scheduled poll; `NO_FETCH` while none
    /// is scheduled (a fetch is running, or polling is off). Written by the
    /// scheduler only.
    pub(crate) next_fetch: AtomicU64,
}

impl Instance {
    pub(crate) fn new(
        tenant: Arc<str>,
        labels: Arc<BTreeMap<String, String>>,
        source: Arc<dyn BundleSource>,
        verifier: Option<Arc<tenet_bundle::Verifier>>,
        now: u64,
        on_demand: bool,
        weight: u32,
    ) -> Self {
        Self {
            isolation: std::sync::atomic::AtomicU8::new(0),
            lane: crate::pool::Lane::new(weight),
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            tenant,
            labels: ArcSwap::new(labels.clone()),
            base_labels: labels,
            source,
            verifier,
            activation: ArcSwapOption::empty(),
            refs: AtomicUsize::new(0),
            on_demand: AtomicBool::new(on_demand),
            idle_since: AtomicU64::new(now),
            last_used: AtomicU64::new(now),
            trimmed_at_use: AtomicU64::new(u64::MAX),
            engine_uses_seen: AtomicU64::new(u64::MAX),
            engine_unused_since: AtomicU64::new(0),
            decisions: AtomicU64::new(0),
            decision_errors: AtomicU64::new(0),
            cache_hits: AtomicU64::new(0),
            tally: crate::tally::Tally::default(),
            failed: AtomicBool::new(false),
            missing: AtomicBool::new(false),
            bundle_seen: AtomicBool::new(false),
            fetch_started: AtomicBool::new(false),
            status: Mutex::new(LoadStatus::default()),
            loading: tokio::sync::Mutex::new(()),
            ready: Notify::new(),
            next_fetch: AtomicU64::new(NO_FETCH),
        }
    }

    /// Where its evaluations run.
    pub(crate) fn isolation(&self) -> crate::IsolationLevel {
        crate::IsolationLevel::from_u8(self.isolation.load(Ordering::Relaxed))
    }

    /// The current activation, without touching a reference count.
    pub(crate) fn current(&self) -> Guard<Option<Arc<Activation>>> {
        self.activation.load()
    }

    /// Adds a reference unless the instance was collected.
    pub(crate) fn try_ref(&self) -> bool {
        self.refs
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n != COLLECTED).then_some(n + 1)
            })
            .is_ok()
    }

    /// Drops a reference; the last one starts the grace period. The idle
    /// time is written before the count drops, so a sweep that sees zero
    /// references also sees when they went (never a stale, older time).
    pub(crate) fn unref(&self, now: u64) {
        self.idle_since.store(now, Ordering::Release);
        self.last_used.store(now, Ordering::Relaxed);
        let _ = self
            .refs
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n != COLLECTED && n > 0).then(|| n - 1)
            });
    }

    /// True while something keeps the instance: a lease or route reference,
    /// or (on-demand) a decision within the last `idle_timeout`.
    pub(crate) fn in_use(&self, now: u64, idle_timeout: u64) -> bool {
        self.references() > 0
            || (self.on_demand.load(Ordering::Relaxed)
                && now
                    < self
                        .last_used
                        .load(Ordering::Relaxed)
                        .saturating_add(idle_timeout))
    }

    /// Marks the instance collected if nothing references it; after this,
    /// `try_ref` fails forever.
    pub(crate) fn try_collect(&self) -> bool {
        self.refs
            .compare_exchange(0, COLLECTED, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    pub(crate) fn references(&self) -> usize {
        match self.refs.load(Ordering::Acquire) {
            COLLECTED => 0,
            n => n,
        }
    }

    pub(crate) fn is_collected(&self) -> bool {
        self.refs.load(Ordering::Acquire) == COLLECTED
    }

    pub(crate) fn state(&self) -> InstanceState {
        if self.current().is_some() {
            InstanceState::Active
        } else if self.failed.load(Ordering::Acquire) {
            InstanceState::Failed
        } else {
            InstanceState::Loading
        }
    }

    /// Approximate heap bytes this instance alone accounts for (its decision
    /// cache and bookkeeping); the compiled policy may be shared and is
    /// counted by the host once per digest.
    pub(crate) fn own_bytes(&self) -> u64 {
        let cache = self
            .current()
            .as_ref()
            .and_then(|a| a.cache.as_ref().map(|c| c.weighted_bytes()))
            .unwrap_or(0);
        std::mem::size_of::<Self>() as u64 + self.tenant.len() as u64 + cache
    }
}
