//! How a host behaves: timings, capacity, caches and limits. Plain data with
//! documented defaults; the host reads it, nothing here acts.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;
use tenet_bundle::Limits;
use tenet_policy::{EvalLimits, Evaluator};

/// Configuration of a [`crate::Host`].
#[derive(Debug, Clone)]
pub struct HostConfig {
    /// How long an unreferenced instance stays warm before it is collected.
    /// Default 30 s.
    pub grace_period: Duration,
    /// How often the sweeper looks for instances to collect. Default 5 s.
    pub sweep_interval: Duration,
    /// An instance that has made no decision for this long drops the
    /// evaluators pooled for it (the sweeper checks; the next decision
    /// builds one again), so idle tenants hold only their compiled policy;
    /// a busy one drops its policy's analysed engine once no new path,
    /// interpreter fallback or error report has needed it for this long
    /// (the RVM decides without it; the next need rebuilds it, a compile).
    /// Default 10 s.
    pub trim_after: Duration,
    /// Create and load an instance on the first decision for an unknown
    /// tenant. Default false.
    pub on_demand: bool,
    /// How long an on-demand instance counts as referenced after its last
    /// decision. Default 5 min.
    pub idle_timeout: Duration,
    /// How long a decision waits for an instance's first activation before
    /// failing with `NotReady`. Default 5 s.
    pub startup_timeout: Duration,
    /// Most instances at once; unreferenced ones are evicted least recently
    /// used first to make room. Default 100,000.
    pub max_instances: usize,
    /// Approximate memory budget for all activations, in bytes. Default
    /// unlimited (`u64::MAX`). Bundle tenants are evicted and refused by what
    /// bundle tenants use; a push is refused (never evicts) when the whole
    /// host, pushed content included, would pass it.
    pub memory_budget: u64,
    /// Most tenants fed by pushes alone (their source has no bundle) at
    /// once; a push that would create one more is refused with
    /// `HostError::PushLimit`. They are not counted against
    /// `max_instances`, so pushes can never evict or block bundle tenants.
    /// Default 1,000.
    pub max_pushed_tenants: usize,
    /// Most bytes of pushed content (policy text plus serialized data) over
    /// all tenants; a push that would grow past it is refused with
    /// `HostError::PushLimit` (one that shrinks the content never is).
    /// Default 64 MiB.
    pub max_pushed_bytes: u64,
    /// Longest a bundle fetch may take before it counts as failed.
    /// Default 60 s.
    pub fetch_timeout: Duration,
    /// How long an on-demand tenant whose source has no bundle is answered
    /// `TenantNotFound` without asking the source again (a negative cache,
    /// so requests for unknown names cannot turn into a fetch each against
    /// a bundle server). Zero disables it. Default 10 s.
    pub unknown_ttl: Duration,
    /// Most bundle loads (fetch + compile) running at once. Default 8.
    pub load_concurrency: usize,
    /// First retry delay after a failed load; doubles per failure, with
    /// jitter, up to `retry_max`. Default 500 ms.
    pub retry_initial: Duration,
    /// Longest retry delay. Default 60 s.
    pub retry_max: Duration,
    /// Labels added to every instance (besides `tenant=<id>`).
    pub labels: BTreeMap<String, String>,
    /// Labels of particular tenants (`team`, `app`, …), added to theirs
    /// and taking precedence over `labels`; `tenant` cannot be overridden.
    pub tenant_labels: BTreeMap<String, BTreeMap<String, String>>,
    /// Bundle limits for every tenant.
    pub bundle_limits: Limits,
    /// Evaluation limits for every tenant.
    pub eval_limits: EvalLimits,
    /// Which evaluator compiled policies use.
    pub evaluator: Evaluator,
    /// Per-instance decision cache.
    pub decision_cache: DecisionCacheConfig,
    /// When bundles are fetched again after the first load: periodic
    /// polling and file watching.
    pub polling: PollingConfig,
    /// Where fetched bundles are kept (`{dir}/{tenant}/bundle.tar.gz` and
    /// `meta.json`), so a restarted host can serve the last good revision
    /// while its sources are down (OPA's `persist`). Default `None`: nothing
    /// is written.
    pub persist_dir: Option<PathBuf>,
    /// Where pushed policies and data are kept (`{dir}/{tenant}/pushed.json`,
    /// usually the same directory as `persist_dir`), so a restarted host
    /// serves them again after [`crate::Host::restore_pushed`]; OPA loses
    /// them. A push answers only once its content is on disk. Default
    /// `None`: pushed content lives in memory only.
    pub persist_pushed_dir: Option<PathBuf>,
    /// Threads that run evaluations (the evaluation pool), so a policy that
    /// runs to its deadline never holds an async worker. Zero means one per
    /// available core. Default 0.
    pub eval_threads: usize,
    /// Stack of each evaluation thread, in bytes. Default 8 MiB (the
    /// evaluators also bound their own depth).
    pub eval_stack_bytes: usize,
    /// Evaluate on the thread that awaits `Host::decide` instead of the
    /// evaluation pool: for embedders that already decide on threads of
    /// their own, and for tests on tokio's paused clock (which jumps ahead
    /// while a task waits for another thread). Default false.
    pub eval_inline: bool,
    /// How tenants share the evaluation threads.
    pub fair_share: FairShareConfig,
    /// Which tenants run in worker processes (effective once an
    /// [`crate::Offload`] is set with [`crate::Host::set_offload`]).
    pub isolation: crate::IsolationRules,
}

/// How tenants share the evaluation threads (the evaluation pool), so one
/// tenant's load cannot stall another's decisions in the same process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FairShareConfig {
    /// Threads take evaluations by weighted round robin across tenants
    /// (true), or in arrival order whatever the tenant (false, for
    /// comparison). Default true.
    pub enabled: bool,
    /// Most evaluations one tenant may have waiting or running; past it a
    /// decision fails at once with `HostError::TooManyRequests`. Default 1,024.
    pub max_pending: usize,
    /// Most evaluations one tenant may run at once. Zero (the default)
    /// bounds only *heavy* tenants, whose recent evaluations average at
    /// least `heavy_after` (or one of whose evaluations has run four times
    /// that long; both in wall time):
    /// they run on background threads of their own, all threads but a
    /// quarter as many (at least one), at a lower CPU priority, and take no
    /// thread from the others. Cheap tenants may use every thread.
    pub max_running: usize,
    /// Average evaluation time from which a tenant counts as heavy.
    /// Default 1 ms (the examples decide in 10 to 150 µs).
    pub heavy_after: Duration,
    /// Turns in a row per round, by tenant (default 1): a tenant of weight
    /// 3 gets three evaluations to another's one while both have some
    /// waiting. Clamped to 1..=1000.
    pub weights: BTreeMap<String, u32>,
    /// Let a cheap tenant's evaluation run on the async worker that
    /// received the request instead of being handed to an evaluation
    /// thread and back (two thread wake-ups, often more than the
    /// evaluation). Only for tenants whose evaluations average under an
    /// eighth of `heavy_after`, at most one fewer at once than the async
    /// runtime has workers (none on a single-threaded runtime), and cut
    /// off at `heavy_after`: such an evaluation runs again, from the
    /// start, on the pool, and its tenant decides on the pool for the next
    /// second.
    /// Off with a fixed `max_running`. Default true.
    pub inline: bool,
}

impl Default for FairShareConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            max_pending: 1024,
            max_running: 0,
            heavy_after: Duration::from_millis(1),
            weights: BTreeMap::new(),
            inline: true,
        }
    }
}

impl FairShareConfig {
    /// `tenant`'s weight.
    pub(crate) fn weight(&self, tenant: &str) -> u32 {
        self.weights
            .get(tenant)
            .copied()
            .unwrap_or(1)
            .clamp(1, 1000)
    }
}

impl HostConfig {
    /// The configuration with every value brought into a range the host can
    /// run with (no busy sweeper, no timer overflow, no zero capacity).
    pub(crate) fn sanitized(mut self) -> Self {
        const CENTURY: Duration = Duration::from_secs(100 * 365 * 24 * 3600);
        self.sweep_interval = self
            .sweep_interval
            .clamp(Duration::from_millis(10), CENTURY);
        self.grace_period = self.grace_period.min(CENTURY);
        self.trim_after = self.trim_after.min(CENTURY);
        self.idle_timeout = self.idle_timeout.min(CENTURY);
        self.startup_timeout = self.startup_timeout.min(CENTURY);
        self.fetch_timeout = self.fetch_timeout.clamp(Duration::from_millis(1), CENTURY);
        self.unknown_ttl = self.unknown_ttl.min(CENTURY);
        self.retry_initial = self.retry_initial.clamp(Duration::from_millis(1), CENTURY);
        self.retry_max = self
            .retry_max
            .clamp(self.retry_initial, Duration::from_secs(24 * 3600));
        self.max_instances = self.max_instances.max(1);
        self.load_concurrency = self.load_concurrency.clamp(1, 4096);
        self.decision_cache.ttl = self.decision_cache.ttl.min(CENTURY);
        self.polling = self.polling.sanitized();
        if self.eval_threads == 0 {
            self.eval_threads = std::thread::available_parallelism().map_or(2, |n| n.get());
        }
        self.eval_threads = self.eval_threads.clamp(1, 1024);
        self.eval_stack_bytes = self.eval_stack_bytes.clamp(256 << 10, 1 << 30);
        self.fair_share.max_pending = self.fair_share.max_pending.max(1);
        self.fair_share.heavy_after = self.fair_share.heavy_after.min(CENTURY);
        self
    }
}

impl Default for HostConfig {
    fn default() -> Self {
        Self {
            grace_period: Duration::from_secs(30),
            sweep_interval: Duration::from_secs(5),
            trim_after: Duration::from_secs(10),
            on_demand: false,
            idle_timeout: Duration::from_secs(300),
            startup_timeout: Duration::from_secs(5),
            max_instances: 100_000,
            memory_budget: u64::MAX,
            max_pushed_tenants: 1_000,
            max_pushed_bytes: 64 << 20,
            fetch_timeout: Duration::from_secs(60),
            unknown_ttl: Duration::from_secs(10),
            load_concurrency: 8,
            retry_initial: Duration::from_millis(500),
            retry_max: Duration::from_secs(60),
            labels: BTreeMap::new(),
            tenant_labels: BTreeMap::new(),
            bundle_limits: Limits::default(),
            eval_limits: EvalLimits::default(),
            evaluator: Evaluator::default(),
            decision_cache: DecisionCacheConfig::default(),
            polling: PollingConfig::default(),
            persist_dir: None,
            persist_pushed_dir: None,
            eval_threads: 0,
            eval_stack_bytes: 8 << 20,
            eval_inline: false,
            fair_share: FairShareConfig::default(),
            isolation: crate::IsolationRules::default(),
        }
    }
}

/// When a host fetches a tenant's bundle again after the first load. One
/// scheduler per host runs every poll; a watched local source is also
/// fetched right after it changes on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PollingConfig {
    /// Fetch every instance's bundle periodically. When false, a bundle is
    /// fetched only until its first activation (retrying failures), on a
    /// file-watch event and on `Host::reload`. Default true.
    pub enabled: bool,
    /// Shortest delay between two polls of one tenant; each delay is drawn
    /// uniformly from `[min_delay, max_delay]` so tenants spread out.
    /// Default 60 s (OPA's `min_delay_seconds`); at least 1 s.
    pub min_delay: Duration,
    /// Longest delay between two polls of one tenant. Default 120 s (OPA's
    /// `max_delay_seconds`); at least `min_delay`.
    pub max_delay: Duration,
    /// Most loads running at once against one remote host (the authority of
    /// a source URL, `host:port`); local sources are bounded only by
    /// `HostConfig::load_concurrency`. Default 4.
    pub load_concurrency_per_host: usize,
    /// Watch local sources (directories and archives) for changes with the
    /// OS's file notifications, one watcher per host. Default true.
    pub watch: bool,
    /// Quiet time after the last file event before the tenant is fetched
    /// (a burst of writes causes one fetch). Default 250 ms.
    pub watch_debounce: Duration,
}

impl PollingConfig {
    fn sanitized(mut self) -> Self {
        const DAY: Duration = Duration::from_secs(24 * 3600);
        self.min_delay = self.min_delay.clamp(Duration::from_secs(1), 7 * DAY);
        self.max_delay = self.max_delay.clamp(self.min_delay, 7 * DAY);
        self.load_concurrency_per_host = self.load_concurrency_per_host.clamp(1, 4096);
        self.watch_debounce = self
            .watch_debounce
            .clamp(Duration::from_millis(1), Duration::from_secs(60));
        self
    }
}

impl Default for PollingConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            min_delay: Duration::from_secs(60),
            max_delay: Duration::from_secs(120),
            load_concurrency_per_host: 4,
            watch: true,
            watch_debounce: Duration::from_millis(250),
        }
    }
}

/// The decision cache of each instance. Only deterministic policies are
/// cached; the cache is dropped with its activation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DecisionCacheConfig {
    /// Cache decisions. Default false.
    pub enabled: bool,
    /// Most entries per instance. Default 10,000.
    pub max_entries: u64,
    /// Most bytes (keys + values) per instance. Default 16 MiB.
    pub max_bytes: u64,
    /// How long an entry lives. Default 60 s.
    #[serde(with = "secs")]
    pub ttl: Duration,
}

impl Default for DecisionCacheConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            max_entries: 10_000,
            max_bytes: 16 << 20,
            ttl: Duration::from_secs(60),
        }
    }
}

mod secs {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_secs())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_secs(u64::deserialize(d)?))
    }
}
