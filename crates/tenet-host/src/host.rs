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
//! bundles are identical share one compiled policy.
//!
//! The host must not parse HTTP or know where requests come from; it must
//! never block a caller that changes references on a load.

use crate::cache::DecisionCache;
use crate::instance::NO_FETCH;
use crate::instance::{Activation, Instance, InstanceState};
use crate::pool::{EvalPool, PoolClosed};
use crate::schedule::{self, PollOutcome, Scheduler, Timing};
use crate::watch::Watch;
use crate::{validate_tenant, HostConfig, HostError, SourceFactory};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use tenet_bundle::{Bundle, BundleError, Fetched};
use tenet_policy::{CompileOptions, Evaluator, Input, Policy, PolicyError, QueryPath, WeakPolicy};
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
}

#[derive(Default)]
struct Counters {
    fetches: AtomicU64,
    compiles: AtomicU64,
    shared_compiles: AtomicU64,
    activations: AtomicU64,
    activation_failures: AtomicU64,
    collected: AtomicU64,
    evicted: AtomicU64,
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
    instances: papaya::HashMap<Arc<str>, Arc<Instance>>,
    /// Compiled policies by bundle digest, for sharing; load path only. The
    /// per-digest mutex makes concurrent loads of one bundle compile once.
    compiled: Mutex<HashMap<String, Arc<Mutex<WeakPolicy>>>>,
    /// On-demand tenants the source had no bundle for, with the host-clock
    /// nanos until which they are answered `TenantNotFound` at once.
    unknown: papaya::HashMap<Arc<str>, u64>,
    /// Route references held by `set_references`; not on the decision path.
    routes: Mutex<HashMap<Arc<str>, Lease>>,
    load_permits: Arc<Semaphore>,
    /// The polling scheduler (schedule.rs): every fetch but `reload` goes
    /// through it.
    pub(crate) scheduler: Scheduler,
    /// The file watcher for local sources (watch.rs), unless disabled.
    watch: Option<Watch>,
    /// Policies and data pushed through the API, per tenant (overlay.rs);
    /// taken by pushes and loads, never by decisions.
    pub(crate) pushed: Mutex<HashMap<Arc<str>, crate::overlay::Pushed>>,
    epoch: Instant,
    runtime: tokio::runtime::Handle,
    counters: Counters,
    labels: BTreeMap<String, String>,
    /// Threads that run evaluations (pool.rs), off the async runtime.
    pool: EvalPool,
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
        let pool = EvalPool::new(threads, config.eval_stack_bytes);
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
            compiled: Mutex::new(HashMap::new()),
            unknown: papaya::HashMap::new(),
            routes: Mutex::new(HashMap::new()),
            pushed: Mutex::new(HashMap::new()),
            epoch: Instant::now(),
            runtime: tokio::runtime::Handle::current(),
            counters: Counters::default(),
            pool,
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

    /// Decides `path` (`data.a.b` or `a/b`) for `tenant` with `input`.
    ///
    /// Takes no lock. An unknown tenant is created and loaded when
    /// `on_demand` is set, else refused; an instance that has never
    /// activated is waited for up to `startup_timeout`.
    pub async fn decide(
        &self,
        tenant: &str,
        path: &str,
        input: &Input,
    ) -> Result<Decision, HostError> {
        let inner = &self.inner;
        let instance = inner.requested(tenant)?;
        instance.last_used.store(inner.now(), Ordering::Relaxed);
        // With on-demand loading, traffic itself keeps an instance alive,
        // whoever created it.
        if inner.config.on_demand && !instance.on_demand.load(Ordering::Relaxed) {
            instance.on_demand.store(true, Ordering::Relaxed);
        }
        let current = instance.current();
        let activation = match current.as_ref() {
            Some(activation) => activation.clone(),
            None => {
                drop(current);
                inner.wait_ready(&instance).await?
            }
        };
        let query = QueryPath::parse(path).map_err(|e| evaluation_failed(&instance, e))?;
        let cache_key = activation
            .cache
            .as_ref()
            .and_then(|_| Some((Arc::<str>::from(path), input.cache_key()?)));
        if let (Some(cache), Some((p, i))) = (&activation.cache, &cache_key) {
            if let Some(hit) = cache.get(p, i) {
                instance.decisions.fetch_add(1, Ordering::Relaxed);
                instance.cache_hits.fetch_add(1, Ordering::Relaxed);
                return Ok(Decision {
                    result: hit.as_ref().clone(),
                    revision: activation.revision.clone(),
                    cached: true,
                    evaluator: None,
                });
            }
        }
        let input = input.clone();
        let job = {
            let (instance, activation) = (instance.clone(), activation.clone());
            move || evaluate(&instance, &activation, &query, &input, cache_key)
        };
        if inner.config.eval_inline {
            return job();
        }
        match inner.pool.run(job).await {
            Ok(decision) => decision,
            Err(PoolClosed) => Err(evaluation_failed(
                &instance,
                PolicyError::Internal {
                    message: "the evaluation pool has shut down".into(),
                },
            )),
        }
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

    /// Number of live instances.
    pub fn len(&self) -> usize {
        self.inner.instances.len()
    }

    /// True when no instance exists.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
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
        }
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

fn evaluation_failed(instance: &Instance, source: PolicyError) -> HostError {
    instance.decision_errors.fetch_add(1, Ordering::Relaxed);
    HostError::Policy {
        tenant: instance.tenant.to_string(),
        source,
    }
}

/// Evaluates on an evaluation thread (a cache miss) and fills the cache.
fn evaluate(
    instance: &Instance,
    activation: &Activation,
    query: &QueryPath,
    input: &Input,
    cache_key: Option<(Arc<str>, Vec<u8>)>,
) -> Result<Decision, HostError> {
    let fail = |e| evaluation_failed(instance, e);
    let prepared = activation.policy.query(query).map_err(fail)?;
    let evaluation = prepared.evaluate(input).map_err(fail)?;
    instance.decisions.fetch_add(1, Ordering::Relaxed);
    if let (Some(cache), Some((p, i))) = (&activation.cache, cache_key) {
        cache.insert(p, i, Arc::new(evaluation.result.clone()));
    }
    Ok(Decision {
        result: evaluation.result,
        revision: activation.revision.clone(),
        cached: false,
        evaluator: Some(evaluation.evaluator),
    })
}

impl HostInner {
    fn now(&self) -> u64 {
        nanos_since(self.epoch)
    }

    fn lookup(&self, tenant: &str) -> Option<Arc<Instance>> {
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
    fn remember_unknown(&self, tenant: &Arc<str>) {
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
        labels.insert("tenant".to_string(), tenant.to_string());
        let fresh = Arc::new(Instance::new(
            name.clone(),
            Arc::new(labels),
            self.sources.source(tenant),
            self.sources.verifier(tenant),
            self.now(),
            on_demand,
        ));
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

    pub(crate) async fn wait_ready(
        &self,
        instance: &Instance,
    ) -> Result<Arc<Activation>, HostError> {
        let timeout = self.config.startup_timeout;
        let now = Instant::now();
        let deadline = now.checked_add(timeout).unwrap_or(now);
        loop {
            let notified = instance.ready.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(a) = instance.activation.load_full() {
                return Ok(a);
            }
            if instance.failed.load(Ordering::Acquire) || instance.is_collected() {
                if instance.missing.load(Ordering::Acquire) {
                    return Err(HostError::TenantNotFound {
                        tenant: instance.tenant.to_string(),
                    });
                }
                let reason = instance
                    .status
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .last_error
                    .clone()
                    .unwrap_or_default();
                return Err(HostError::LoadFailed {
                    tenant: instance.tenant.to_string(),
                    reason,
                });
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return Err(HostError::NotReady {
                    tenant: instance.tenant.to_string(),
                    waited: timeout,
                });
            }
        }
    }

    /// One load: fetch (with the last version tag), validate and compile off
    /// the async runtime, activate. Serialised per instance and bounded by
    /// `load_concurrency` across the host. Returns the new revision, or
    /// `None` when the bundle did not change.
    async fn load(
        self: &Arc<Self>,
        instance: &Arc<Instance>,
    ) -> Result<Option<Arc<str>>, HostError> {
        let _serial = instance.loading.lock().await;
        let _permit = self.load_permits.acquire().await.ok();
        let known = self.status(instance, |s| {
            s.last_fetch = Some(SystemTime::now());
            s.version.clone()
        });
        self.counters.fetches.fetch_add(1, Ordering::Relaxed);
        let fetch_timeout = self.config.fetch_timeout;
        let fetched = tokio::time::timeout(fetch_timeout, instance.source.fetch(known.as_ref()))
            .await
            .unwrap_or_else(|_| {
                Err(BundleError::Io {
                    path: instance.source.location().into(),
                    source: std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        format!("no answer within {fetch_timeout:?}"),
                    ),
                })
            });
        // A new instance whose source fails starts from its persisted copy
        // (the failure is still reported).
        let (fetched, restored) = match fetched {
            Err(e) => match self.restore(instance, &e).await {
                Some((bundle, restored)) => (Ok(bundle), Some(restored)),
                None => (Err(e), None),
            },
            fetched => (fetched, None),
        };
        let outcome = match fetched {
            Err(e) => {
                let missing = matches!(&e, BundleError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound);
                instance.missing.store(missing, Ordering::Release);
                // A tenant fed by pushes alone: no bundle is its normal
                // state, not a failure — also once its pushed content was
                // deleted (it is then collected like any unreferenced
                // tenant), as long as no bundle ever activated.
                let pushes_only = self.push_only(&instance.tenant)
                    || (instance.current().is_some()
                        && !instance.bundle_seen.load(Ordering::Acquire));
                if missing && pushes_only {
                    Ok(None)
                } else {
                    Err(format!("fetching from {}: {e}", instance.source.location()))
                }
            }
            Ok(Fetched::NotModified) => Ok(None),
            Ok(Fetched::Bundle { payload, version }) => {
                let raw = (self.config.persist_dir.is_some() && restored.is_none())
                    .then(|| payload.clone());
                let inner = self.clone();
                let limits = self.config.bundle_limits.clone();
                let tenant = instance.tenant.clone();
                let verifier = instance.verifier.clone();
                let compiled = tokio::task::spawn_blocking(move || {
                    let bundle = payload
                        .into_bundle_verified(&limits, verifier.as_deref())
                        .map_err(|e| e.to_string())?;
                    // Pushed policies and data are laid over every revision.
                    let (bundle, rebase) = inner.overlay(&tenant, bundle);
                    let policy = inner.compiled_policy(&bundle).map_err(|e| e.to_string())?;
                    if let Some(rebase) = rebase {
                        inner.check_pushed_data(&rebase, &policy)?;
                        inner.rebase(&tenant, rebase);
                    }
                    Ok(policy)
                })
                .await
                .unwrap_or_else(|e| Err(format!("compile task failed: {e}")));
                compiled.map(|policy| Some((policy, version, raw)))
            }
        };
        let result = match outcome {
            Ok(None) => {
                self.status(instance, |s| {
                    s.consecutive_failures = 0;
                    s.last_error = None;
                });
                instance.failed.store(false, Ordering::Release);
                Ok(None)
            }
            Ok(Some((policy, _, _))) if restored.is_some() => {
                instance.bundle_seen.store(true, Ordering::Release);
                let revision = self.activate(instance, policy);
                Err(self.restored(instance, restored, &revision))
            }
            Ok(Some((policy, version, raw))) => {
                instance.missing.store(false, Ordering::Release);
                instance.bundle_seen.store(true, Ordering::Release);
                let revision = self.activate(instance, policy);
                self.status(instance, |s| {
                    s.version = Some(version.clone());
                    s.last_download = Some(SystemTime::now());
                });
                if let Some(raw) = raw {
                    self.persist(instance, raw, version, &revision).await;
                }
                Ok(Some(revision))
            }
            Err(reason) => {
                let reason = match &restored {
                    Some(r) => format!("{}; the persisted bundle failed too: {reason}", r.reason),
                    None => reason,
                };
                self.counters
                    .activation_failures
                    .fetch_add(1, Ordering::Relaxed);
                self.status(instance, |s| {
                    s.consecutive_failures += 1;
                    s.last_error = Some(reason.clone());
                });
                if instance.current().is_none() {
                    instance.failed.store(true, Ordering::Release);
                }
                tracing::warn!(tenant = %instance.tenant, error = %reason, "activation failed");
                Err(HostError::LoadFailed {
                    tenant: instance.tenant.to_string(),
                    reason,
                })
            }
        };
        instance.ready.notify_waiters();
        result
    }

    fn status<T>(
        &self,
        instance: &Instance,
        f: impl FnOnce(&mut crate::instance::LoadStatus) -> T,
    ) -> T {
        f(&mut instance.status.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Compiles `bundle`, or reuses the compiled policy of another tenant
    /// whose bundle has the same digest. Runs on a blocking thread: loads of
    /// the same digest wait on that digest's slot, so however many tenants
    /// load one bundle at once, it is compiled once.
    pub(crate) fn compiled_policy(&self, bundle: &Bundle) -> Result<Policy, PolicyError> {
        let slot = {
            let mut compiled = self.compiled.lock().unwrap_or_else(|p| p.into_inner());
            compiled.retain(|_, slot| {
                Arc::strong_count(slot) > 1
                    || match slot.try_lock() {
                        Ok(w) => w.upgrade().is_some(),
                        // A compile panicked holding it: nothing to share.
                        Err(std::sync::TryLockError::Poisoned(_)) => false,
                        Err(std::sync::TryLockError::WouldBlock) => true,
                    }
            });
            compiled.entry(bundle.digest.clone()).or_default().clone()
        };
        let mut weak = slot.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(policy) = weak.upgrade() {
            self.counters
                .shared_compiles
                .fetch_add(1, Ordering::Relaxed);
            return Ok(policy);
        }
        let options = CompileOptions {
            limits: self.config.eval_limits.clone(),
            evaluator: self.config.evaluator,
        };
        let policy = Policy::compile(bundle, options)?;
        self.counters.compiles.fetch_add(1, Ordering::Relaxed);
        *weak = policy.downgrade();
        Ok(policy)
    }

    /// Swaps in a new activation (with a fresh decision cache) atomically.
    pub(crate) fn activate(&self, instance: &Instance, policy: Policy) -> Arc<str> {
        let config = &self.config.decision_cache;
        let cache =
            (config.enabled && policy.is_deterministic()).then(|| DecisionCache::new(config));
        let revision: Arc<str> = policy.revision().into();
        instance.activation.store(Some(Arc::new(Activation {
            policy,
            revision: revision.clone(),
            cache,
        })));
        instance.failed.store(false, Ordering::Release);
        self.status(instance, |s| {
            s.last_activation = Some(SystemTime::now());
            s.consecutive_failures = 0;
            s.last_error = None;
        });
        self.counters.activations.fetch_add(1, Ordering::Relaxed);
        tracing::info!(tenant = %instance.tenant, revision = %revision, "activated");
        instance.ready.notify_waiters();
        revision
    }

    fn snapshot(&self, i: &Instance) -> TenantSnapshot {
        let now = self.now();
        let status = i.status.lock().unwrap_or_else(|p| p.into_inner());
        let current = i.current();
        let references = i.references();
        TenantSnapshot {
            tenant: i.tenant.to_string(),
            labels: i.labels.as_ref().clone(),
            state: i.state(),
            references,
            on_demand: i.on_demand.load(Ordering::Relaxed),
            idle_for: (references == 0).then(|| {
                Duration::from_nanos(now.saturating_sub(i.idle_since.load(Ordering::Relaxed)))
            }),
            revision: current.as_ref().map(|a| a.revision.to_string()),
            digest: current.as_ref().map(|a| a.policy.digest().to_string()),
            source: i.source.location(),
            last_fetch: status.last_fetch,
            next_fetch: self.next_fetch(i),
            last_download: status.last_download,
            last_activation: status.last_activation,
            last_error: status.last_error.clone(),
            consecutive_failures: status.consecutive_failures,
            approx_bytes: i.own_bytes()
                + current
                    .as_ref()
                    .map_or(0, |a| a.policy.approx_bytes() as u64),
            idle_evaluators: current.as_ref().map_or(0, |a| a.policy.idle_evaluators()),
            decisions: i.decisions.load(Ordering::Relaxed),
            decision_errors: i.decision_errors.load(Ordering::Relaxed),
            cache_hits: i.cache_hits.load(Ordering::Relaxed),
        }
    }
}

/// A fetch that failed while the persisted copy was activated instead.
struct Restored {
    /// The fetch error, as the status reports it.
    reason: String,
    /// The persisted bundle's version tag, when its meta file matched.
    version: Option<tenet_bundle::VersionTag>,
}

/// Polling, watching and persistence: how loads are started and what
/// outlives the process.
impl HostInner {
    /// Starts polling (and, for a local source, watching) a new instance;
    /// its first poll runs at once (for a watched source, as soon as the
    /// watch is set up, so no change can slip between the two).
    fn track(&self, instance: &Arc<Instance>) {
        let watched = match (&self.watch, instance.source.watch_path()) {
            (Some(watch), Some(path)) => watch.register(instance, path),
            _ => false,
        };
        if !watched {
            self.scheduler.add(instance);
        }
    }

    /// Stops polling and watching a collected instance.
    fn retire(&self, instance: &Instance) {
        self.scheduler.forget(instance.id);
        if let Some(watch) = &self.watch {
            watch.unregister(instance.id);
        }
    }

    /// One scheduled poll: a load, then (for an on-demand tenant whose
    /// source has no bundle and that never activated) dropping the
    /// instance, so unknown tenant names do not pile up retrying.
    pub(crate) async fn poll_once(self: &Arc<Self>, instance: &Arc<Instance>) -> PollOutcome {
        let ok = self.load(instance).await.is_ok();
        let dropped = !ok
            && instance.current().is_none()
            && instance.on_demand.load(Ordering::Relaxed)
            && instance.missing.load(Ordering::Acquire)
            && instance.try_collect();
        if dropped {
            let _ = self
                .instances
                .pin()
                .remove_if(instance.tenant.as_ref(), |_, v| Arc::ptr_eq(v, instance));
            self.retire(instance);
            self.remember_unknown(&instance.tenant);
            tracing::info!(tenant = %instance.tenant, "no bundle for on-demand tenant; instance dropped");
        }
        PollOutcome {
            ok,
            dropped,
            long_polls: instance.source.long_polls(),
        }
    }

    /// The persisted copy of a never-activated instance's bundle, to load
    /// in place of a failed fetch. Not for an on-demand tenant the source
    /// does not know (it is dropped instead).
    async fn restore(
        &self,
        instance: &Instance,
        error: &BundleError,
    ) -> Option<(Fetched, Restored)> {
        let dir = self.config.persist_dir.clone()?;
        if instance.current().is_some() {
            return None;
        }
        let missing = matches!(error, BundleError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound);
        if missing && instance.on_demand.load(Ordering::Relaxed) {
            return None;
        }
        let (tenant, location) = (instance.tenant.clone(), instance.source.location());
        let limit = self.config.bundle_limits.max_compressed_bytes;
        let read = tokio::task::spawn_blocking(move || {
            crate::persist::read(&dir, &tenant, &location, limit)
        })
        .await;
        let persisted = match read {
            Ok(Ok(Some(p))) => p,
            Ok(Ok(None)) => return None,
            Ok(Err(e)) => {
                tracing::warn!(tenant = %instance.tenant, error = %e, "cannot read the persisted bundle");
                return None;
            }
            Err(e) => {
                tracing::warn!(tenant = %instance.tenant, error = %e, "cannot read the persisted bundle");
                return None;
            }
        };
        instance.missing.store(missing, Ordering::Release);
        tracing::info!(tenant = %instance.tenant, error = %error, "fetch failed; activating the persisted bundle");
        let bundle = Fetched::Bundle {
            payload: tenet_bundle::Payload::Archive(persisted.archive),
            // Not used: the status takes `Restored::version`.
            version: tenet_bundle::VersionTag(String::new()),
        };
        let restored = Restored {
            reason: format!("fetching from {}: {error}", instance.source.location()),
            version: persisted.version,
        };
        Some((bundle, restored))
    }

    /// Records a load that activated the persisted bundle: the fetch
    /// failed, so the status keeps its error and the scheduler retries.
    fn restored(
        &self,
        instance: &Instance,
        restored: Option<Restored>,
        revision: &str,
    ) -> HostError {
        let Restored { reason, version } = restored.unwrap_or(Restored {
            reason: String::new(),
            version: None,
        });
        self.counters
            .activation_failures
            .fetch_add(1, Ordering::Relaxed);
        self.status(instance, |s| {
            s.version = version;
            s.consecutive_failures += 1;
            s.last_error = Some(reason.clone());
        });
        tracing::warn!(tenant = %instance.tenant, revision, error = %reason, "serving the persisted bundle");
        HostError::LoadFailed {
            tenant: instance.tenant.to_string(),
            reason,
        }
    }

    /// Writes a freshly activated bundle to `persist_dir`, off the async
    /// runtime. A failure is logged: the bundle is active either way.
    async fn persist(
        &self,
        instance: &Instance,
        payload: tenet_bundle::Payload,
        version: tenet_bundle::VersionTag,
        revision: &str,
    ) {
        let Some(dir) = self.config.persist_dir.clone() else {
            return;
        };
        let (tenant, source) = (instance.tenant.clone(), instance.source.location());
        let revision_owned = revision.to_string();
        let written = tokio::task::spawn_blocking(move || {
            crate::persist::write(&dir, &tenant, payload, &version, &revision_owned, &source)
        })
        .await;
        match written {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::warn!(tenant = %instance.tenant, revision, error = %e, "cannot persist the bundle");
            }
            Err(e) => {
                tracing::warn!(tenant = %instance.tenant, revision, error = %e, "cannot persist the bundle");
            }
        }
    }

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
}
