//! The supervisor: one worker slot per isolated tenant (or tenant and
//! session), each with its lifecycle (starting, ready, draining, stopped,
//! failed, backing off). It starts workers on demand (or hands out a
//! pre-started one from the warm pool), loads each revision into a worker
//! once, restarts crashed workers after a capped, jittered exponential
//! delay, kills a worker whose decision overruns its deadline or whose
//! health check goes unanswered, stops idle ones, and drains them all at
//! shutdown. It is the host's [`Offload`]: decisions reach it through
//! `Host::decide`, never directly. It knows nothing of HTTP.

use crate::adaptive::Adaptive;
use crate::config::SupervisorConfig;
use crate::process::{Unanswered, WorkerProcess};
use crate::protocol::{load_frame, Decide, Decided, Failure, Frame, HealthReport, Kind, Loaded};
use crate::report::{WorkerReport, WorkerState, WorkersReport};
use async_trait::async_trait;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant, SystemTime};
use tenet_host::{IsolationLevel, Offload, OffloadBatch, OffloadError, OffloadRequest, Strike};
use tenet_policy::{Evaluation, Policy, PolicyError};

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Which worker a decision goes to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct Key {
    tenant: Arc<str>,
    session: Option<Arc<str>>,
}

struct SlotState {
    state: WorkerState,
    process: Option<Arc<WorkerProcess>>,
    restarts: u64,
    /// Failures since the last answered decision: the backoff exponent.
    failures: u32,
    retry_at: Option<Instant>,
    last_error: Option<String>,
    errors: BTreeMap<String, u64>,
    last_health: Option<SystemTime>,
    rss_bytes: Option<u64>,
}

pub(crate) struct Slot {
    key: Key,
    state: Mutex<SlotState>,
    /// One start at a time.
    starting: tokio::sync::Mutex<()>,
    /// Supervisor-clock millis of the last decision.
    last_used: AtomicU64,
}

#[derive(Default)]
pub(crate) struct Counters {
    transitions: BTreeMap<&'static str, u64>,
    errors: BTreeMap<String, u64>,
    restarts: u64,
    starts: u64,
    start_seconds: f64,
    stops: u64,
    stop_seconds: f64,
    backoff_seconds: f64,
    pub(crate) batches: u64,
}

pub(crate) struct Inner {
    pub(crate) config: SupervisorConfig,
    slots: Mutex<HashMap<Key, Arc<Slot>>>,
    warm: Mutex<Vec<Arc<WorkerProcess>>>,
    pub(crate) counters: Mutex<Counters>,
    epoch: Instant,
    pub(crate) adaptive: Option<Adaptive>,
    cgroup: String,
    closed: std::sync::atomic::AtomicBool,
}

/// Runs isolated tenants' evaluations in worker processes. Cheap to clone.
#[derive(Clone)]
pub struct Supervisor {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Supervisor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Supervisor").finish_non_exhaustive()
    }
}

/// What came of a request to a worker.
pub(crate) enum Ran<T> {
    /// Answered.
    Done(T),
    /// The worker does not hold the policy: load it and ask again.
    NotLoaded,
    /// Failed as a whole.
    Failed(OffloadError),
}

impl Supervisor {
    /// A supervisor; starts the warm pool, the idle sweeper and the health
    /// checks on the current tokio runtime. `adaptive` moves misbehaving
    /// tenants into workers (see [`crate::AdaptiveConfig`]).
    pub fn new(config: SupervisorConfig, adaptive: Option<Adaptive>) -> Self {
        let cgroup = match crate::limits::cgroup_v2_delegation() {
            Ok(dir) => format!(
                "cgroup v2 is delegated at {}; workers are limited by setrlimit only (cgroup limits are not applied)",
                dir.display()
            ),
            Err(why) => {
                tracing::debug!(%why, "worker cgroup v2 limits unavailable; workers are limited by setrlimit only");
                format!("unavailable: {why}")
            }
        };
        let inner = Arc::new(Inner {
            config,
            slots: Mutex::new(HashMap::new()),
            warm: Mutex::new(Vec::new()),
            counters: Mutex::new(Counters::default()),
            epoch: Instant::now(),
            adaptive,
            cgroup,
            closed: std::sync::atomic::AtomicBool::new(false),
        });
        let weak = Arc::downgrade(&inner);
        tokio::spawn(housekeeping(weak.clone()));
        Inner::refill(&inner);
        Self { inner }
    }

    /// What every worker is doing.
    pub fn report(&self) -> WorkersReport {
        self.inner.report()
    }

    /// Stops every worker (and the warm pool): each finishes what it runs,
    /// within `stop_timeout`, then is killed. Later decisions of isolated
    /// tenants fail with `tenant_unavailable`.
    pub async fn shutdown(&self) {
        let inner = &self.inner;
        inner.closed.store(true, Ordering::Release);
        let slots: Vec<Arc<Slot>> = lock(&inner.slots).drain().map(|(_, s)| s).collect();
        let warm: Vec<Arc<WorkerProcess>> = lock(&inner.warm).drain(..).collect();
        let stops = slots
            .iter()
            .map(|slot| inner.stop_slot(slot.clone()))
            .collect::<Vec<_>>();
        for stop in stops {
            stop.await;
        }
        for process in warm {
            process.stop(inner.config.stop_timeout).await;
        }
    }

    /// Makes this supervisor `host`'s offload (isolated tenants' decisions
    /// come here from now on) and starts adaptive isolation on it. False if
    /// the host already had an offload.
    pub fn attach(&self, host: &tenet_host::Host) -> bool {
        if !host.set_offload(Arc::new(self.clone())) {
            return false;
        }
        if let Some(adaptive) = &self.inner.adaptive {
            adaptive.start(host.downgrade());
        }
        true
    }
}

#[async_trait]
impl Offload for Supervisor {
    async fn evaluate(&self, request: OffloadRequest) -> Result<Evaluation, OffloadError> {
        let inner = &self.inner;
        let (slot, process) = inner
            .worker(&request.tenant, request.level, request.session.as_ref())
            .await?;
        inner
            .on_loaded(&slot, &process, &request.policy, || {
                inner.run(&slot, &process, &request)
            })
            .await
    }

    async fn evaluate_batch(&self, batch: OffloadBatch) -> Vec<Result<Evaluation, OffloadError>> {
        self.inner.evaluate_batch(&batch).await
    }

    fn wants_strikes(&self) -> bool {
        self.inner.adaptive.is_some()
    }

    fn strike(&self, tenant: &str, strike: Strike) {
        if let Some(adaptive) = &self.inner.adaptive {
            adaptive.strike(tenant, strike);
        }
    }
}

impl Slot {
    /// Its worker answered: the failures in a row start again from zero.
    pub(crate) fn answered(&self) {
        lock(&self.state).failures = 0;
    }
}

impl Inner {
    /// The slot and running process for a tenant (and session), started
    /// if need be.
    pub(crate) async fn worker(
        self: &Arc<Self>,
        tenant: &Arc<str>,
        level: IsolationLevel,
        session: Option<&Arc<str>>,
    ) -> Result<(Arc<Slot>, Arc<WorkerProcess>), OffloadError> {
        let key = Key {
            tenant: tenant.clone(),
            session: match level {
                IsolationLevel::Session => Some(session.cloned().unwrap_or_else(|| "".into())),
                _ => None,
            },
        };
        // A slot retired (idle, moved) while this decision reached it is
        // asked for again: a fresh slot starts a fresh worker.
        let mut attempts = 0;
        loop {
            let slot = self.slot(key.clone())?;
            slot.last_used.store(self.millis(), Ordering::Relaxed);
            match self.ready(&slot).await {
                Ok(process) => return Ok((slot, process)),
                Err(Some(e)) => return Err(e),
                Err(None) if attempts < 3 => attempts += 1,
                Err(None) => return Err(Self::unavailable("its worker is being stopped")),
            }
        }
    }

    /// Runs `run` on `process` once `policy` is loaded there, loading it
    /// again (once) if the worker dropped it meanwhile.
    pub(crate) async fn on_loaded<T, F>(
        &self,
        slot: &Slot,
        process: &Arc<WorkerProcess>,
        policy: &Policy,
        mut run: impl FnMut() -> F,
    ) -> Result<T, OffloadError>
    where
        F: std::future::Future<Output = Ran<T>>,
    {
        for _ in 0..2 {
            self.ensure_loaded(slot, process, policy).await?;
            match run().await {
                Ran::Done(answer) => {
                    slot.answered();
                    return Ok(answer);
                }
                Ran::NotLoaded => {
                    lock(&process.loaded).remove(policy.digest());
                }
                Ran::Failed(e) => return Err(e),
            }
        }
        Err(Self::unavailable(
            "the worker dropped the policy twice while it was being loaded",
        ))
    }

    fn millis(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    pub(crate) fn unavailable(reason: impl Into<String>) -> OffloadError {
        OffloadError::Unavailable {
            reason: reason.into(),
        }
    }

    fn slot(&self, key: Key) -> Result<Arc<Slot>, OffloadError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(Self::unavailable("the host is shutting down"));
        }
        let mut slots = lock(&self.slots);
        if let Some(slot) = slots.get(&key) {
            return Ok(slot.clone());
        }
        if key.session.is_some() {
            let sessions = slots
                .keys()
                .filter(|k| k.tenant == key.tenant && k.session.is_some())
                .count();
            if sessions >= self.config.max_sessions_per_tenant {
                return Err(OffloadError::TooManySessions {
                    limit: self.config.max_sessions_per_tenant,
                });
            }
        }
        if slots.len() >= self.config.max_workers {
            return Err(Self::unavailable(format!(
                "the host runs {} workers, its limit (isolation.workers.max_workers)",
                self.config.max_workers
            )));
        }
        let slot = Arc::new(Slot {
            key: key.clone(),
            state: Mutex::new(SlotState {
                state: WorkerState::Stopped,
                process: None,
                restarts: 0,
                failures: 0,
                retry_at: None,
                last_error: None,
                errors: BTreeMap::new(),
                last_health: None,
                rss_bytes: None,
            }),
            starting: tokio::sync::Mutex::new(()),
            last_used: AtomicU64::new(self.millis()),
        });
        slots.insert(key, slot.clone());
        Ok(slot)
    }

    fn enter(&self, state: &mut SlotState, next: WorkerState) {
        state.state = next;
        *lock(&self.counters)
            .transitions
            .entry(next.as_str())
            .or_default() += 1;
    }

    /// The slot's live process, starting one if needed; fails fast while
    /// the slot backs off after a failure (or waits `unavailable_wait`).
    /// `Err(None)`: the slot was retired meanwhile (ask for it again).
    async fn ready(
        self: &Arc<Self>,
        slot: &Arc<Slot>,
    ) -> Result<Arc<WorkerProcess>, Option<OffloadError>> {
        let waited_until = Instant::now() + self.config.unavailable_wait;
        loop {
            let dead = {
                let state = lock(&slot.state);
                match state.process.as_ref() {
                    Some(process) if process.is_alive() => return Ok(process.clone()),
                    Some(process) => Some(process.clone()),
                    None => None,
                }
            };
            if let Some(process) = dead {
                // A decision found the crash before `watch_exit` did: wait
                // for the exit's reason (the reader reaps at once), then
                // record it here; whichever comes second does nothing.
                let reason = tokio::time::timeout(Duration::from_secs(2), process.exited())
                    .await
                    .unwrap_or_else(|_| format!("worker {} stopped answering", process.pid));
                self.failed(slot, Some(&process), "crash", reason);
            }
            let backing_off = {
                let state = lock(&slot.state);
                state
                    .retry_at
                    .filter(|at| *at > Instant::now())
                    .map(|at| (at, state.last_error.clone().unwrap_or_default()))
            };
            if let Some((retry_at, why)) = backing_off {
                if retry_at <= waited_until {
                    tokio::time::sleep_until(retry_at.into()).await;
                    continue;
                }
                if Instant::now() < waited_until {
                    tokio::time::sleep_until(waited_until.into()).await;
                    continue;
                }
                return Err(Some(Self::unavailable(format!(
                    "its worker is restarting after a failure ({why}); retry in {} ms",
                    retry_at
                        .saturating_duration_since(Instant::now())
                        .as_millis()
                ))));
            }
            let _starting = slot.starting.lock().await;
            if let Some(process) = lock(&slot.state).process.as_ref().filter(|p| p.is_alive()) {
                return Ok(process.clone());
            }
            if self.closed.load(Ordering::Acquire) {
                return Err(Some(Self::unavailable("the host is shutting down")));
            }
            if !self.owns(slot) {
                return Err(None);
            }
            {
                let mut state = lock(&slot.state);
                // A start after a failure (by the scheduled restart or by a
                // decision that came first) is a restart.
                if state.failures > 0 {
                    state.restarts += 1;
                    lock(&self.counters).restarts += 1;
                }
                self.enter(&mut state, WorkerState::Starting);
            }
            let started = Instant::now();
            match self.take_or_start().await {
                Ok(process) => {
                    // Retired (or shut down) while it started: it must not
                    // outlive its slot.
                    if !self.owns(slot) || self.closed.load(Ordering::Acquire) {
                        process.stop(self.config.stop_timeout).await;
                        return Err(None);
                    }
                    {
                        let mut counters = lock(&self.counters);
                        counters.starts += 1;
                        counters.start_seconds += started.elapsed().as_secs_f64();
                    }
                    let mut state = lock(&slot.state);
                    state.process = Some(process.clone());
                    state.retry_at = None;
                    self.enter(&mut state, WorkerState::Ready);
                    drop(state);
                    tracing::info!(
                        tenant = %slot.key.tenant,
                        session = slot.key.session.as_deref().unwrap_or(""),
                        pid = process.pid,
                        "worker ready"
                    );
                    tokio::spawn(watch_exit(
                        Arc::downgrade(self),
                        slot.clone(),
                        process.clone(),
                    ));
                    return Ok(process);
                }
                Err(why) => {
                    self.failed(slot, None, "start", why.clone());
                    return Err(Some(Self::unavailable(why)));
                }
            }
        }
    }

    /// A warm worker if one is alive, else a new one; refills the pool.
    async fn take_or_start(self: &Arc<Self>) -> Result<Arc<WorkerProcess>, String> {
        let warm = {
            let mut warm = lock(&self.warm);
            warm.retain(|p| p.is_alive());
            warm.pop()
        };
        if let Some(process) = warm {
            Self::refill(self);
            return Ok(process);
        }
        WorkerProcess::start(&self.config.command, self.config.start_timeout).await
    }

    /// Starts warm workers until the pool has `pool_size`, in the
    /// background.
    fn refill(self: &Arc<Self>) {
        let missing = self.config.pool_size.saturating_sub(lock(&self.warm).len());
        for _ in 0..missing {
            let weak = Arc::downgrade(self);
            tokio::spawn(async move {
                let Some(inner) = weak.upgrade() else { return };
                if inner.closed.load(Ordering::Acquire) {
                    return;
                }
                match WorkerProcess::start(&inner.config.command, inner.config.start_timeout).await
                {
                    Ok(process) => {
                        let mut warm = lock(&inner.warm);
                        if warm.len() < inner.config.pool_size
                            && !inner.closed.load(Ordering::Acquire)
                        {
                            warm.push(process);
                        }
                    }
                    Err(why) => tracing::warn!(%why, "starting a warm worker failed"),
                }
            });
        }
    }

    /// Records a failure of the slot's worker and schedules its restart.
    /// `process` is the one that failed (`None` for a failed start): a
    /// failure of a process the slot no longer runs was already handled.
    fn failed(
        self: &Arc<Self>,
        slot: &Arc<Slot>,
        process: Option<&Arc<WorkerProcess>>,
        kind: &str,
        why: String,
    ) {
        let mut state = lock(&slot.state);
        if let Some(process) = process {
            let current = state
                .process
                .as_ref()
                .is_some_and(|p| Arc::ptr_eq(p, process));
            if !current || matches!(state.state, WorkerState::Draining | WorkerState::Stopped) {
                return;
            }
        }
        self.enter(&mut state, WorkerState::Failed);
        state.process = None;
        state.failures = state.failures.saturating_add(1);
        *state.errors.entry(kind.to_string()).or_default() += 1;
        state.last_error = Some(why.clone());
        let delay = self.config.backoff(state.failures);
        state.retry_at = Some(Instant::now() + delay);
        self.enter(&mut state, WorkerState::BackingOff);
        {
            let mut counters = lock(&self.counters);
            *counters.errors.entry(kind.to_string()).or_default() += 1;
            counters.backoff_seconds += delay.as_secs_f64();
        }
        drop(state);
        tracing::warn!(
            tenant = %slot.key.tenant,
            session = slot.key.session.as_deref().unwrap_or(""),
            kind,
            %why,
            restart_in_ms = delay.as_millis() as u64,
            "worker failed"
        );
        // Start it again after the delay if the slot is still wanted.
        let (weak, slot) = (Arc::downgrade(self), slot.clone());
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let Some(inner) = weak.upgrade() else { return };
            if !inner.owns(&slot) {
                return;
            }
            let _ = inner.ready(&slot).await;
        });
    }

    fn owns(&self, slot: &Arc<Slot>) -> bool {
        lock(&self.slots)
            .get(&slot.key)
            .is_some_and(|s| Arc::ptr_eq(s, slot))
    }

    async fn ensure_loaded(
        &self,
        slot: &Slot,
        process: &Arc<WorkerProcess>,
        policy: &Policy,
    ) -> Result<(), OffloadError> {
        let digest = policy.digest();
        if lock(&process.loaded).contains(digest) {
            return Ok(());
        }
        let _loading = process.loading.lock().await;
        if lock(&process.loaded).contains(digest) {
            return Ok(());
        }
        let data = policy.data_json().map_err(OffloadError::Policy)?;
        let image = policy.image();
        let answer = process
            .request(
                |id| load_frame(id, &image, data),
                self.config.load_timeout,
                usize::MAX,
            )
            .await;
        match answer {
            Ok(frame) if frame.kind == Kind::Loaded => {
                let loaded: Loaded = frame.head().map_err(|e| Self::unavailable(e.to_string()))?;
                lock(&process.loaded).insert(loaded.digest);
                Ok(())
            }
            Ok(frame) => Err(failure(&frame)),
            Err(Unanswered::Gone(why)) => Err(Self::unavailable(why)),
            Err(Unanswered::Busy(pending)) => Err(OffloadError::Busy { pending }),
            Err(Unanswered::TimedOut) => {
                tracing::warn!(tenant = %slot.key.tenant, pid = process.pid, "worker did not load a revision in time; killing it");
                process.kill();
                Err(Self::unavailable(format!(
                    "its worker did not compile the revision within {:?}",
                    self.config.load_timeout
                )))
            }
        }
    }

    async fn run(
        self: &Arc<Self>,
        slot: &Arc<Slot>,
        process: &Arc<WorkerProcess>,
        request: &OffloadRequest,
    ) -> Ran<Evaluation> {
        let body = match request.input.to_json_bytes() {
            None => Vec::new(),
            Some(Ok(bytes)) => bytes,
            Some(Err(e)) => return Ran::Failed(OffloadError::Policy(e)),
        };
        let head = Decide {
            digest: request.policy.digest().to_string(),
            path: request.path.components().to_vec(),
            has_input: !request.input.is_none(),
        };
        let deadline = request.policy.limits().deadline;
        let allowed = self.kill_after(&request.policy, 1);
        let answer = process
            .request(
                |id| Frame::new(Kind::Decide, id, &head, body),
                allowed,
                self.config.max_pending,
            )
            .await;
        match answer {
            Ok(frame) if frame.kind == Kind::Decided => match decided(&frame) {
                Ok(evaluation) => Ran::Done(evaluation),
                Err(e) => Ran::Failed(e),
            },
            Ok(frame) => {
                if let Ok(Failure::NotLoaded { .. }) = frame.head::<Failure>() {
                    return Ran::NotLoaded;
                }
                Ran::Failed(failure(&frame))
            }
            Err(Unanswered::Gone(why)) => Ran::Failed(Self::unavailable(why)),
            Err(Unanswered::Busy(pending)) => Ran::Failed(OffloadError::Busy { pending }),
            Err(Unanswered::TimedOut) => {
                Ran::Failed(self.overran(slot, process, allowed, deadline))
            }
        }
    }

    /// How long a request of `inputs` evaluations on `policy` may go
    /// unanswered before its worker is killed.
    pub(crate) fn kill_after(&self, policy: &Policy, inputs: usize) -> Duration {
        let each = self.config.kill_after.unwrap_or(
            policy
                .limits()
                .deadline
                .saturating_add(self.config.kill_grace),
        );
        each.saturating_mul(u32::try_from(inputs.max(1)).unwrap_or(u32::MAX))
    }

    /// Kills a worker that let a request go unanswered for `allowed`: the
    /// request ends as a timeout of `deadline`.
    pub(crate) fn overran(
        self: &Arc<Self>,
        slot: &Arc<Slot>,
        process: &Arc<WorkerProcess>,
        allowed: Duration,
        deadline: Duration,
    ) -> OffloadError {
        process.kill();
        self.failed(
            slot,
            Some(process),
            "killed_deadline",
            format!(
                "a decision ran {allowed:?} without an answer; worker {} killed",
                process.pid
            ),
        );
        OffloadError::Policy(PolicyError::Timeout { limit: deadline })
    }

    /// Stops a slot's worker on purpose (idle, shutdown).
    async fn stop_slot(&self, slot: Arc<Slot>) {
        let process = {
            let mut state = lock(&slot.state);
            let process = state.process.clone();
            if process.is_some() {
                self.enter(&mut state, WorkerState::Draining);
            }
            process
        };
        if let Some(process) = process {
            let started = Instant::now();
            process.stop(self.config.stop_timeout).await;
            let mut counters = lock(&self.counters);
            counters.stops += 1;
            counters.stop_seconds += started.elapsed().as_secs_f64();
        }
        let mut state = lock(&slot.state);
        state.process = None;
        self.enter(&mut state, WorkerState::Stopped);
    }

    fn report(&self) -> WorkersReport {
        let slots: Vec<Arc<Slot>> = lock(&self.slots).values().cloned().collect();
        let mut report = WorkersReport::default();
        for state in WorkerState::ALL {
            report.totals.insert(state.as_str(), 0);
        }
        for slot in slots {
            let state = lock(&slot.state);
            let process = state.process.as_ref().filter(|p| p.is_alive());
            *report.totals.entry(state.state.as_str()).or_default() += 1;
            let in_flight = process.map_or(0, |p| p.in_flight());
            report.queue_depth += in_flight;
            report.workers.push(WorkerReport {
                tenant: slot.key.tenant.to_string(),
                session: slot.key.session.as_ref().map(|s| s.to_string()),
                state: state.state,
                pid: process.map(|p| p.pid),
                uptime_seconds: process.map(|p| p.started.elapsed().as_secs_f64()),
                restarts: state.restarts,
                errors: state.errors.clone(),
                last_error: state.last_error.clone(),
                last_health_check: state.last_health,
                rss_bytes: state.rss_bytes,
                in_flight,
            });
        }
        report
            .workers
            .sort_by(|a, b| (&a.tenant, &a.session).cmp(&(&b.tenant, &b.session)));
        report.warm = lock(&self.warm).iter().filter(|p| p.is_alive()).count();
        let counters = lock(&self.counters);
        report.transitions = counters.transitions.clone();
        report.errors = counters.errors.clone();
        report.restarts = counters.restarts;
        report.starts = counters.starts;
        report.start_seconds = counters.start_seconds;
        report.stops = counters.stops;
        report.stop_seconds = counters.stop_seconds;
        report.backoff_seconds = counters.backoff_seconds;
        report.batches = counters.batches;
        drop(counters);
        if let Some(adaptive) = &self.adaptive {
            report.adaptive = adaptive.moved();
        }
        report.cgroup = self.cgroup.clone();
        report
    }
}

/// The evaluation in a `Decided` frame.
fn decided(frame: &Frame) -> Result<Evaluation, OffloadError> {
    let head: Decided = frame
        .head()
        .map_err(|e| Inner::unavailable(e.to_string()))?;
    let result = if head.defined {
        Some(
            serde_json::from_slice(&frame.body)
                .map_err(|e| Inner::unavailable(format!("the worker's result: {e}")))?,
        )
    } else {
        None
    };
    Ok(Evaluation {
        result,
        prints: Vec::new(),
        evaluator: head.evaluator,
    })
}

/// The error in a `Failure` frame (or an unexpected one).
pub(crate) fn failure(frame: &Frame) -> OffloadError {
    match frame.head::<Failure>() {
        Ok(failed) => failure_error(failed),
        Err(e) => Inner::unavailable(format!("unexpected answer {:?}: {e}", frame.kind)),
    }
}

/// What a worker's `Failure` means to the host.
pub(crate) fn failure_error(failure: Failure) -> OffloadError {
    match failure {
        Failure::Policy { error } => OffloadError::Policy(error),
        Failure::NotLoaded { digest } => {
            Inner::unavailable(format!("the worker does not hold revision {digest}"))
        }
        Failure::BadRequest { reason } => {
            Inner::unavailable(format!("the worker refused a request: {reason}"))
        }
    }
}

/// Waits for `process` to exit; an exit nobody asked for is a failure.
async fn watch_exit(inner: Weak<Inner>, slot: Arc<Slot>, process: Arc<WorkerProcess>) {
    let reason = process.exited().await;
    let Some(inner) = inner.upgrade() else { return };
    inner.failed(&slot, Some(&process), "crash", reason);
}

/// Stops idle workers and checks the health of the others, until the
/// supervisor is dropped.
async fn housekeeping(inner: Weak<Inner>) {
    let mut last_health = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let Some(inner) = inner.upgrade() else { return };
        if inner.closed.load(Ordering::Acquire) {
            return;
        }
        let now = inner.millis();
        let idle: Vec<Arc<Slot>> = {
            let mut slots = lock(&inner.slots);
            let idle: Vec<Key> = slots
                .values()
                .filter(|slot| {
                    let limit = if slot.key.session.is_some() {
                        inner.config.session_idle_after
                    } else {
                        inner.config.idle_after
                    };
                    let used = slot.last_used.load(Ordering::Relaxed);
                    let in_flight = lock(&slot.state)
                        .process
                        .as_ref()
                        .map_or(0, |p| p.in_flight());
                    in_flight == 0
                        && now.saturating_sub(used)
                            >= u64::try_from(limit.as_millis()).unwrap_or(u64::MAX)
                })
                .map(|slot| slot.key.clone())
                .collect();
            idle.iter().filter_map(|k| slots.remove(k)).collect()
        };
        for slot in idle {
            tracing::info!(tenant = %slot.key.tenant, session = slot.key.session.as_deref().unwrap_or(""), "stopping idle worker");
            let inner = inner.clone();
            tokio::spawn(async move { inner.stop_slot(slot).await });
        }
        if last_health.elapsed() >= inner.config.health_interval {
            last_health = Instant::now();
            let slots: Vec<Arc<Slot>> = lock(&inner.slots).values().cloned().collect();
            for slot in slots {
                let inner = inner.clone();
                tokio::spawn(async move { check_health(&inner, &slot).await });
            }
        }
    }
}

async fn check_health(inner: &Arc<Inner>, slot: &Arc<Slot>) {
    let Some(process) = lock(&slot.state).process.clone().filter(|p| p.is_alive()) else {
        return;
    };
    match process
        .request(
            |id| Frame::bare(Kind::Health, id),
            inner.config.health_timeout,
            usize::MAX,
        )
        .await
    {
        Ok(frame) if frame.kind == Kind::HealthReport => {
            let report: HealthReport = frame.head().unwrap_or_default();
            let mut state = lock(&slot.state);
            state.last_health = Some(SystemTime::now());
            state.rss_bytes = Some(report.rss_bytes);
        }
        Ok(_) | Err(Unanswered::TimedOut) | Err(Unanswered::Busy(_)) => {
            process.kill();
            inner.failed(
                slot,
                Some(&process),
                "health",
                format!("worker {} did not answer its health check", process.pid),
            );
        }
        // Its exit is handled by `watch_exit`.
        Err(Unanswered::Gone(_)) => {}
    }
}
