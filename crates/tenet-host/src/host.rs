//! The registry of virtual policy instances. One `Host` per process holds an
//! instance per tenant in a lock-free map (papaya): a decision is a map read,
//! an atomic pointer load and an evaluation, with no lock taken. Instances
//! are created by leases, route tables, preloading or (when enabled) a first
//! decision; each is loaded once in the background however many callers
//! wait, then fetched again by the host's one polling scheduler
//! (`schedule`), right after a change on disk for local sources (`watch`),
//! and persisted for restarts when configured (`persist`); unreferenced
//! instances stay warm for the grace period and are then collected by a
//! sweeper (and leave the scheduler and the watcher); capacity limits evict
//! unreferenced instances, least recently used first. Tenants whose
//! bundles are identical share one compiled policy. How one decision is
//! made is decide.rs; how one instance is loaded, load.rs; what the host
//! reports about instances, snapshot.rs.
//!
//! The host must not parse HTTP or know where requests come from; it must
//! never block a caller that changes references on a load.

use crate::instance::Instance;
use crate::pool::EvalPool;
use crate::schedule::{self, Scheduler, Timing};
use crate::snapshot::Counters;
use crate::watch::Watch;
use crate::{validate_tenant, HostConfig, HostError, IsolationLevel, Offload, SourceFactory};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tenet_bundle::Bundle;
use tenet_policy::Evaluator;
use tokio::sync::Semaphore;
use tokio::time::Instant;

/// What a new instance counts against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Capacity {
    /// `max_instances` and the memory budget, evicting to make room.
    Bundle,
    /// The push limits, checked by the push that creates it; evicts nothing.
    PushOnly,
}

/// The result of a decision.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// The document, or `None` for OPA's undefined.
    pub result: Option<serde_json::Value>,
    /// The revision that produced it.
    pub revision: Arc<str>,
    /// True when it came from the decision cache.
    pub cached: bool,
    /// The evaluator that decided (`None` for a cached decision).
    pub evaluator: Option<Evaluator>,
}

/// What `set_references` changed.
#[derive(Debug, Default)]
pub struct ReferenceChange {
    /// Tenants that got a route reference.
    pub added: Vec<String>,
    /// Tenants whose route reference was released.
    pub removed: Vec<String>,
    /// Tenants that could not be referenced, and why.
    pub refused: Vec<HostError>,
}

/// A reference to a tenant's instance: while any lease is alive the
/// instance is never collected or evicted. Dropping it releases the
/// reference and, if it was the last, starts the grace period.
pub struct Lease {
    pub(crate) instance: Arc<Instance>,
    epoch: Instant,
}

impl Lease {
    /// The tenant this lease holds.
    pub fn tenant(&self) -> &str {
        &self.instance.tenant
    }
}

impl std::fmt::Debug for Lease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lease")
            .field("tenant", &self.tenant())
            .finish()
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.instance.unref(nanos_since(self.epoch));
    }
}

fn nanos_since(epoch: Instant) -> u64 {
    u64::try_from(epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// The registry of instances. Cheap to clone; all clones are one host.
#[derive(Clone)]
pub struct Host {
    pub(crate) inner: Arc<HostInner>,
}

pub(crate) struct HostInner {
    pub(crate) config: HostConfig,
    sources: Arc<dyn SourceFactory>,
    pub(crate) instances: papaya::HashMap<Arc<str>, Arc<Instance>>,
    /// Compiled policies by bundle digest, for sharing; load path only.
    pub(crate) compiled: crate::shared_compiles::SharedCompiles,
    /// On-demand tenants the source had no bundle for, with the host-clock
    /// nanos until which they are answered `TenantNotFound` at once.
    unknown: papaya::HashMap<Arc<str>, u64>,
    /// Route references held by `set_references`; not on the decision path.
    routes: Mutex<HashMap<Arc<str>, Lease>>,
    pub(crate) load_permits: Arc<Semaphore>,
    /// The polling scheduler (schedule.rs): every fetch but `reload` goes
    /// through it.
    pub(crate) scheduler: Scheduler,
    /// The file watcher for local sources (watch.rs), unless disabled.
    pub(crate) watch: Option<Watch>,
    /// Policies and data pushed through the API, per tenant (overlay.rs);
    /// taken by pushes and loads, never by decisions.
    pub(crate) pushed: Mutex<HashMap<Arc<str>, crate::overlay::Pushed>>,
    epoch: Instant,
    runtime: tokio::runtime::Handle,
    pub(crate) counters: Counters,
    labels: BTreeMap<String, String>,
    /// Threads that run evaluations (pool/), off the async runtime.
    pub(crate) pool: EvalPool,
    /// Where isolated tenants' evaluations go (worker processes), once set.
    pub(crate) offload: std::sync::OnceLock<Arc<dyn Offload>>,
    /// Isolation levels set at run time (`Host::set_isolation`), over the
    /// configured rules; kept when an instance is collected.
    pub(crate) levels: Mutex<HashMap<Arc<str>, IsolationLevel>>,
}

/// A handle that does not keep the host alive (for tasks that act on it,
/// like adaptive isolation, and must stop when it goes).
#[derive(Clone)]
pub struct WeakHost(std::sync::Weak<HostInner>);

impl WeakHost {
    /// The host, while it lives.
    pub fn upgrade(&self) -> Option<Host> {
        self.0.upgrade().map(|inner| Host { inner })
    }
}

impl std::fmt::Debug for WeakHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WeakHost")
    }
}

impl std::fmt::Debug for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Host")
            .field("instances", &self.inner.instances.len())
            .finish_non_exhaustive()
    }
}

impl Host {
    /// A host whose tenants' bundles come from `sources`. Must be called
    /// inside a tokio runtime: the sweeper and loads run on it. The sweeper
    /// stops when the last clone of the host is dropped.
    pub fn new(config: HostConfig, sources: Arc<dyn SourceFactory>) -> Self {
        let config = config.sanitized();
        let (scheduler, queue) = schedule::channel();
        let watch = config
            .polling
            .watch
            .then(|| Watch::start(scheduler.clone(), config.polling.watch_debounce))
            .flatten();
        let timing = Timing::new(&config);
        // An inline host never uses the pool: it starts no thread.
        let threads = if config.eval_inline {
            0
        } else {
            config.eval_threads
        };
        let fair = &config.fair_share;
        let shares = crate::pool::Shares {
            fair: fair.enabled,
            max_pending: fair.max_pending,
            max_running: fair.max_running,
            heavy: fair.heavy_after,
            // One async worker is always left for the accept loop and I/O.
            max_inline: if fair.inline {
                tokio::runtime::Handle::current()
                    .metrics()
                    .num_workers()
                    .saturating_sub(1)
            } else {
                0
            },
        };
        let pool = EvalPool::new(threads, config.eval_stack_bytes, shares);
        let inner = Arc::new(HostInner {
            load_permits: Arc::new(Semaphore::new(config.load_concurrency.max(1))),
            scheduler,
            watch,
            labels: config.labels.clone(),
            config,
            sources,
            // Blocking resize: only writers wait while the table grows;
            // readers never do, and re-inserting a removed key stays cheap
            // (measured in benches/map.rs, BENCHMARKS.md).
            instances: papaya::HashMap::builder()
                .resize_mode(papaya::ResizeMode::Blocking)
                .build(),
            compiled: crate::shared_compiles::SharedCompiles::new(),
            unknown: papaya::HashMap::new(),
            routes: Mutex::new(HashMap::new()),
            pushed: Mutex::new(HashMap::new()),
            epoch: Instant::now(),
            runtime: tokio::runtime::Handle::current(),
            counters: Counters::default(),
            pool,
            offload: std::sync::OnceLock::new(),
            levels: Mutex::new(HashMap::new()),
        });
        let weak = Arc::downgrade(&inner);
        queue.start(weak.clone(), timing, inner.epoch, &inner.runtime);
        let interval = inner.config.sweep_interval;
        inner.runtime.spawn(async move {
            loop {
                tokio::time::sleep(interval).await;
                let Some(inner) = weak.upgrade() else { return };
                inner.sweep();
            }
        });
        Self { inner }
    }

    /// The configuration.
    pub fn config(&self) -> &HostConfig {
        &self.inner.config
    }

    /// Takes a reference to `tenant`, creating its instance (and starting
    /// its load in the background) if needed. Returns at once.
    pub fn acquire(&self, tenant: &str) -> Result<Lease, HostError> {
        self.inner.acquire(tenant)
    }

    /// Reconciles the route table: every tenant in `tenants` holds one route
    /// reference, tenants no longer listed are released (and start their
    /// grace period). Returns at once; loads run in the background.
    pub fn set_references<I, S>(&self, tenants: I) -> ReferenceChange
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let wanted: BTreeSet<String> = tenants
            .into_iter()
            .map(|t| t.as_ref().to_string())
            .collect();
        let mut change = ReferenceChange::default();
        let released: Vec<Lease>;
        {
            let mut routes = self.inner.routes.lock().unwrap_or_else(|p| p.into_inner());
            let gone: Vec<Arc<str>> = routes
                .keys()
                .filter(|t| !wanted.contains(t.as_ref()))
                .cloned()
                .collect();
            released = gone.iter().filter_map(|t| routes.remove(t)).collect();
            change.removed = gone.iter().map(|t| t.to_string()).collect();
            for tenant in wanted {
                if routes.contains_key(tenant.as_str()) {
                    continue;
                }
                match self.inner.acquire(&tenant) {
                    Ok(lease) => {
                        routes.insert(tenant.as_str().into(), lease);
                        change.added.push(tenant);
                    }
                    Err(e) => change.refused.push(e),
                }
            }
        }
        drop(released);
        change
    }

    /// Loads `tenants` in the background (bounded by `load_concurrency`
    /// like every load). They are unreferenced: without a reference they are
    /// collected after the grace period.
    pub fn preload<I, S>(&self, tenants: I) -> Vec<HostError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        tenants
            .into_iter()
            .filter_map(|t| self.inner.get_or_create(t.as_ref(), false).err())
            .collect()
    }

    /// Fetches `tenant`'s bundle now and activates it if it changed. A bad
    /// revision leaves the current one active and is returned (and recorded
    /// in the status).
    pub async fn reload(&self, tenant: &str) -> Result<Option<Arc<str>>, HostError> {
        let instance = self
            .inner
            .lookup(tenant)
            .ok_or_else(|| HostError::TenantNotFound {
                tenant: tenant.to_string(),
            })?;
        self.inner.load(&instance).await
    }

    /// Activates `bundle` for `tenant` directly (a policy or data push),
    /// creating the instance if needed. Atomic: decisions see the old
    /// revision or the new one, never a mix.
    pub async fn install(&self, tenant: &str, bundle: Bundle) -> Result<Arc<str>, HostError> {
        let instance = self.inner.get_or_create(tenant, false)?;
        // Serialised with loads of the same instance, so a fetch that was
        // in flight cannot overwrite the pushed bundle afterwards.
        let _serial = instance.loading.lock().await;
        let _permit = self.inner.load_permits.acquire().await.ok();
        let inner = self.inner.clone();
        let tenant_name = tenant.to_string();
        let policy = tokio::task::spawn_blocking(move || {
            inner.compiled_policy(&bundle).map_err(|e| e.to_string())
        })
        .await
        .map_err(|e| HostError::LoadFailed {
            tenant: tenant_name.clone(),
            reason: format!("compile task failed: {e}"),
        })?
        .map_err(|reason| HostError::LoadFailed {
            tenant: tenant_name,
            reason,
        })?;
        Ok(self.inner.activate(&instance, policy))
    }

    /// `tenant`'s labels (the host's, its own, `tenant`, and those its
    /// active bundle's manifest gives it), when it has an instance.
    pub fn labels(&self, tenant: &str) -> Option<Arc<BTreeMap<String, String>>> {
        self.inner.lookup(tenant).map(|i| i.labels.load_full())
    }

    /// True when `tenant`'s active revision defines a rule at `path` (e.g.
    /// `["system", "log", "mask"]`); false when it has none active.
    pub fn defines_rule(&self, tenant: &str, path: &[&str]) -> bool {
        let Some(instance) = self.inner.lookup(tenant) else {
            return false;
        };
        let current = instance.current();
        let Some(activation) = current.as_ref() else {
            return false;
        };
        let path: Vec<String> = path.iter().map(|p| p.to_string()).collect();
        activation.policy.rule_paths().contains(&path)
    }

    /// [`Host::defines_rule`] for several paths at once, with one lookup of
    /// the tenant and no allocation (the decision-log worker asks this for
    /// every event).
    pub fn defines_rules<const N: usize>(&self, tenant: &str, paths: [&[String]; N]) -> [bool; N] {
        let Some(instance) = self.inner.lookup(tenant) else {
            return [false; N];
        };
        let current = instance.current();
        let Some(activation) = current.as_ref() else {
            return [false; N];
        };
        let defined = activation.policy.rule_paths();
        paths.map(|path| defined.contains(path))
    }

    /// A handle that does not keep the host alive.
    pub fn downgrade(&self) -> WeakHost {
        WeakHost(Arc::downgrade(&self.inner))
    }

    /// Sends the evaluations of tenants at isolation level `tenant` or
    /// `session` to `offload` from now on. Set once; false if one was set.
    pub fn set_offload(&self, offload: Arc<dyn Offload>) -> bool {
        self.inner.offload.set(offload).is_ok()
    }

    /// `tenant`'s isolation level: set at run time, else configured.
    pub fn isolation(&self, tenant: &str) -> IsolationLevel {
        self.inner.isolation_of(tenant)
    }

    /// Moves `tenant` to `level` (from its next decision on: evaluations
    /// already running finish where they are, so no request is lost) and
    /// returns its previous level. Refused for an isolated level while no
    /// offload is set.
    pub fn set_isolation(
        &self,
        tenant: &str,
        level: IsolationLevel,
    ) -> Result<IsolationLevel, HostError> {
        validate_tenant(tenant)?;
        if level != IsolationLevel::None && self.inner.offload.get().is_none() {
            return Err(HostError::Unavailable {
                tenant: tenant.to_string(),
                reason: "worker processes are not enabled (isolation.workers)".into(),
            });
        }
        let previous = self.inner.isolation_of(tenant);
        self.inner
            .levels
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(Arc::from(tenant), level);
        if let Some(instance) = self.inner.lookup_live(tenant) {
            instance.isolation.store(level.to_u8(), Ordering::Relaxed);
        }
        Ok(previous)
    }

    /// Number of live instances.
    pub fn len(&self) -> usize {
        self.inner.instances.len()
    }

    /// True when no instance exists.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Evaluation threads, and evaluations waiting for one of them.
    pub fn evaluation_queue(&self) -> (usize, usize) {
        (self.inner.pool.threads(), self.inner.pool.queued())
    }

    /// Runs one sweep now (the sweeper also runs every `sweep_interval`).
    pub fn sweep(&self) {
        self.inner.sweep();
    }

    /// Approximate memory of all activations: each compiled policy counted
    /// once however many tenants share it, plus every instance's own state.
    pub fn approx_memory(&self) -> u64 {
        self.inner.approx_memory()
    }
}

impl HostInner {
    pub(crate) fn now(&self) -> u64 {
        nanos_since(self.epoch)
    }

    /// `tenant`'s level: set at run time, else from the rules.
    pub(crate) fn isolation_of(&self, tenant: &str) -> IsolationLevel {
        if let Some(level) = self
            .levels
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(tenant)
        {
            return *level;
        }
        self.config.isolation.level_of(tenant)
    }

    pub(crate) fn lookup(&self, tenant: &str) -> Option<Arc<Instance>> {
        self.instances.pin().get(tenant).cloned()
    }

    /// The tenant's instance unless there is none or it was collected.
    pub(crate) fn lookup_live(&self, tenant: &str) -> Option<Arc<Instance>> {
        self.lookup(tenant).filter(|i| !i.is_collected())
    }

    /// Where `tenant`'s bundles come from, and what checks their signatures.
    pub(crate) fn source_of(
        &self,
        tenant: &str,
    ) -> (
        Arc<dyn tenet_bundle::BundleSource>,
        Option<Arc<tenet_bundle::Verifier>>,
    ) {
        (self.sources.source(tenant), self.sources.verifier(tenant))
    }

    /// Drops `instance` now if nothing references it (a refused first push
    /// created it): it leaves the map, the scheduler and the watcher.
    pub(crate) fn discard(&self, instance: &Arc<Instance>) {
        if instance.try_collect() {
            self.retire(instance);
            instance.ready.notify_waiters();
            let _ = self
                .instances
                .pin()
                .remove_if(instance.tenant.as_ref(), |_, v| Arc::ptr_eq(v, instance));
            tracing::info!(tenant = %instance.tenant, "instance dropped after a refused first push");
        }
    }

    /// The instance a request for `tenant` is served by: the existing one,
    /// or with on-demand loading a new one (unless the tenant is in the
    /// negative cache); else `TenantNotFound`.
    pub(crate) fn requested(self: &Arc<Self>, tenant: &str) -> Result<Arc<Instance>, HostError> {
        match self.lookup(tenant) {
            Some(i) => Ok(i),
            None if self.config.on_demand && !self.recently_unknown(tenant) => {
                self.get_or_create(tenant, true)
            }
            None => {
                validate_tenant(tenant)?;
                Err(HostError::TenantNotFound {
                    tenant: tenant.to_string(),
                })
            }
        }
    }

    /// True while `tenant` is in the negative cache (its source had no
    /// bundle less than `unknown_ttl` ago). Lock-free.
    pub(crate) fn recently_unknown(&self, tenant: &str) -> bool {
        let pin = self.unknown.pin();
        match pin.get(tenant) {
            Some(&until) if until > self.now() => true,
            Some(_) => {
                pin.remove(tenant);
                false
            }
            None => false,
        }
    }

    /// Puts `tenant` in the negative cache. Bounded: past 100,000 names the
    /// expired ones go, and if that is not enough, all of them.
    pub(crate) fn remember_unknown(&self, tenant: &Arc<str>) {
        const MAX_UNKNOWN: usize = 100_000;
        let ttl = self.config.unknown_ttl;
        if ttl.is_zero() {
            return;
        }
        let pin = self.unknown.pin();
        if pin.len() >= MAX_UNKNOWN {
            let now = self.now();
            pin.retain(|_, &until| until > now);
            if pin.len() >= MAX_UNKNOWN {
                pin.clear();
            }
        }
        pin.insert(tenant.clone(), self.now().saturating_add(nanos(ttl)));
    }

    /// Forgets that `tenant` was unknown (it was referenced or pushed to
    /// explicitly).
    pub(crate) fn forget_unknown(&self, tenant: &str) {
        self.unknown.pin().remove(tenant);
    }

    pub(crate) fn acquire(self: &Arc<Self>, tenant: &str) -> Result<Lease, HostError> {
        self.acquire_as(tenant, Capacity::Bundle)
    }

    /// `acquire`, creating a missing instance as `capacity` says.
    pub(crate) fn acquire_as(
        self: &Arc<Self>,
        tenant: &str,
        capacity: Capacity,
    ) -> Result<Lease, HostError> {
        self.forget_unknown(tenant);
        loop {
            let instance = self.get_or_create_as(tenant, false, capacity)?;
            if instance.try_ref() {
                instance.last_used.store(self.now(), Ordering::Relaxed);
                return Ok(Lease {
                    instance,
                    epoch: self.epoch,
                });
            }
            // Collected between lookup and reference: drop the dead entry
            // and create a fresh instance on the next turn.
            let _ = self
                .instances
                .pin()
                .remove_if(tenant, |_, v| Arc::ptr_eq(v, &instance));
        }
    }

    /// The tenant's live instance, created (and its load started) if absent.
    pub(crate) fn get_or_create(
        self: &Arc<Self>,
        tenant: &str,
        on_demand: bool,
    ) -> Result<Arc<Instance>, HostError> {
        self.get_or_create_as(tenant, on_demand, Capacity::Bundle)
    }

    /// `get_or_create`, with the capacity a new instance counts against:
    /// a push-only tenant is capped by the push limits (checked by the
    /// push) and never evicts anything to make room.
    pub(crate) fn get_or_create_as(
        self: &Arc<Self>,
        tenant: &str,
        on_demand: bool,
        capacity: Capacity,
    ) -> Result<Arc<Instance>, HostError> {
        if let Some(i) = self.lookup(tenant) {
            if !i.is_collected() {
                return Ok(i);
            }
            let _ = self
                .instances
                .pin()
                .remove_if(tenant, |_, v| Arc::ptr_eq(v, &i));
        }
        validate_tenant(tenant)?;
        if capacity == Capacity::Bundle {
            self.make_room(tenant)?;
        }
        let name: Arc<str> = tenant.into();
        let mut labels = self.labels.clone();
        if let Some(own) = self.config.tenant_labels.get(tenant) {
            labels.extend(own.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        labels.insert("tenant".to_string(), tenant.to_string());
        let fresh = Arc::new(Instance::new(
            name.clone(),
            Arc::new(labels),
            self.sources.source(tenant),
            self.sources.verifier(tenant),
            self.now(),
            on_demand,
            self.config.fair_share.weight(tenant),
        ));
        fresh
            .isolation
            .store(self.isolation_of(tenant).to_u8(), Ordering::Relaxed);
        let pin = self.instances.pin();
        match pin.try_insert(name.clone(), fresh.clone()) {
            Err(occupied) if occupied.current.is_collected() => {
                let dead = occupied.current.clone();
                let _ = pin.remove_if(name.as_ref(), |_, v| Arc::ptr_eq(v, &dead));
                drop(pin);
                self.get_or_create_as(tenant, on_demand, capacity)
            }
            Ok(_) => {
                tracing::info!(tenant, on_demand, "instance created");
                self.track(&fresh);
                Ok(fresh)
            }
            Err(occupied) => Ok(occupied.current.clone()),
        }
    }

    /// Evicts unreferenced instances, least recently used first, until a new
    /// one fits under `max_instances` and the memory budget. Push-only
    /// tenants count against the push limits instead (quota.rs), so pushes
    /// can neither fill these limits nor make bundle tenants be evicted.
    fn make_room(&self, tenant: &str) -> Result<(), HostError> {
        let config = &self.config;
        let bundle_instances = || {
            self.instances
                .len()
                .saturating_sub(self.push_only_tenants().len())
        };
        while self.instances.len() >= config.max_instances
            && bundle_instances() >= config.max_instances
        {
            if !self.evict_one(tenant) {
                return Err(HostError::CapacityExceeded {
                    tenant: tenant.to_string(),
                    reason: format!(
                        "{} instances exist (max_instances) and all are referenced",
                        bundle_instances()
                    ),
                });
            }
        }
        if config.memory_budget != u64::MAX {
            while self.bundle_memory() >= config.memory_budget {
                if !self.evict_one(tenant) {
                    return Err(HostError::CapacityExceeded {
                        tenant: tenant.to_string(),
                        reason: format!(
                            "approximate memory {} B is over the budget of {} B and all instances are referenced",
                            self.bundle_memory(),
                            config.memory_budget
                        ),
                    });
                }
            }
        }
        Ok(())
    }

    /// Collects the least recently used unreferenced instance; false if
    /// every instance is referenced.
    fn evict_one(&self, for_tenant: &str) -> bool {
        let pin = self.instances.pin();
        let (now, idle_timeout) = (self.now(), nanos(self.config.idle_timeout));
        let mut victims: Vec<(u64, Arc<Instance>)> = pin
            .iter()
            .filter(|(_, i)| !i.in_use(now, idle_timeout) && !i.is_collected())
            .map(|(_, i)| (i.last_used.load(Ordering::Relaxed), i.clone()))
            .collect();
        victims.sort_by_key(|(used, _)| *used);
        for (_, victim) in victims {
            if victim.try_collect() {
                self.retire(&victim);
                victim.ready.notify_waiters();
                let _ = pin.remove_if(victim.tenant.as_ref(), |_, v| Arc::ptr_eq(v, &victim));
                self.counters.evicted.fetch_add(1, Ordering::Relaxed);
                tracing::info!(tenant = %victim.tenant, for_tenant, "instance evicted");
                return true;
            }
        }
        false
    }

    /// Approximate memory of every instance (pushed content included: it
    /// is compiled into the tenant's policy).
    pub(crate) fn approx_memory(&self) -> u64 {
        self.memory_of(&BTreeSet::new())
    }

    /// Approximate memory of the instances that are not push-only: what the
    /// memory budget evicts and refuses bundle tenants by.
    fn bundle_memory(&self) -> u64 {
        self.memory_of(&self.push_only_tenants())
    }

    fn memory_of(&self, skip: &BTreeSet<Arc<str>>) -> u64 {
        let pin = self.instances.pin();
        let mut policies: HashMap<String, u64> = HashMap::new();
        let mut own = 0;
        for (_, i) in pin.iter().filter(|(t, _)| !skip.contains(*t)) {
            own += i.own_bytes();
            if let Some(a) = i.current().as_ref() {
                policies
                    .entry(a.policy.digest().to_string())
                    .or_insert(a.policy.approx_bytes() as u64);
            }
        }
        own + policies.values().sum::<u64>()
    }

    fn sweep(&self) {
        let now = self.now();
        let grace = nanos(self.config.grace_period);
        let idle_timeout = nanos(self.config.idle_timeout);
        let trim_after = nanos(self.config.trim_after);
        let pin = self.instances.pin();
        for (tenant, instance) in pin.iter() {
            let used = instance.last_used.load(Ordering::Relaxed);
            if now >= used.saturating_add(trim_after)
                && instance.trimmed_at_use.swap(used, Ordering::Relaxed) != used
            {
                if let Some(activation) = instance.current().as_ref() {
                    activation.policy.trim();
                }
            } else if let Some(activation) = instance.current().as_ref() {
                // A busy instance keeps its evaluators; it drops the
                // analysed engine once nothing has needed it for as long.
                let uses = activation.policy.engine_uses();
                if instance.engine_uses_seen.swap(uses, Ordering::Relaxed) != uses {
                    instance.engine_unused_since.store(now, Ordering::Relaxed);
                } else if now
                    >= instance
                        .engine_unused_since
                        .load(Ordering::Relaxed)
                        .saturating_add(trim_after)
                {
                    activation.policy.drop_engine();
                }
            }
            if instance.in_use(now, idle_timeout) || instance.is_collected() {
                continue;
            }
            let mut idle_from = instance.idle_since.load(Ordering::Acquire);
            if instance.on_demand.load(Ordering::Relaxed) {
                let used = instance.last_used.load(Ordering::Relaxed);
                idle_from = idle_from.max(used.saturating_add(idle_timeout));
            }
            if now >= idle_from.saturating_add(grace) && instance.try_collect() {
                self.retire(instance);
                instance.ready.notify_waiters();
                let _ = pin.remove_if(tenant.as_ref(), |_, v| Arc::ptr_eq(v, instance));
                self.counters.collected.fetch_add(1, Ordering::Relaxed);
                tracing::info!(tenant = %tenant, "instance collected");
            }
        }
        drop(pin);
        if self.config.memory_budget != u64::MAX {
            while self.bundle_memory() > self.config.memory_budget && self.evict_one("") {}
        }
    }
}
