//! The evaluation pool: dedicated threads that run policy evaluations, so a
//! tenant whose policy runs to its deadline occupies one of these threads
//! and never a tokio worker (the accept loop and every other request keep
//! their threads).
//!
//! Jobs arrive in *lanes*, one per tenant, and threads take them by
//! weighted round robin across lanes, not in arrival order: a tenant with a
//! thousand queued evaluations delays another tenant's next evaluation by
//! at most one turn. A lane is *heavy* while its recent jobs average
//! `Shares::heavy` or more, or one of its running jobs has run four times
//! that long (both measured in wall time, so they are set well above the
//! few milliseconds the OS may hold a cheap job off its core).
//! Heavy lanes run only on *background threads*: all threads but a quarter
//! as many (at least one), at a lower CPU priority (nice 10 on Linux). A
//! tenant looping on a slow policy then takes no evaluation thread from the
//! others and, when every core is busy, little of their CPU; with cores to
//! spare it runs at full speed. Cheap lanes use every normal thread, so one
//! busy tenant with fast policies loses nothing. With a fixed
//! `Shares::max_running` there are no background threads: every lane runs
//! on the normal threads, at most that many jobs at once. Each lane has a
//! bound on the jobs it may have waiting or running (`max_pending`); past
//! it a job is refused at once ([`RunError::Busy`]) instead of queueing
//! without end.
//!
//! Hand-written rather than `rayon` or `tokio::task::spawn_blocking`:
//! `spawn_blocking` grows to 512 threads under load (no bound on concurrent
//! evaluations) and rayon's work-stealing knows no lanes or weights; this
//! pool is a bounded set of threads with a larger stack than tokio's 2 MiB,
//! fed under one mutex (held for a queue operation, never during a job),
//! answering through a oneshot. A job whose caller has gone away (client
//! disconnected) is skipped, not evaluated.
//!
//! *Inline turns* skip the hand-off for cheap work. Handing a job to a
//! pool thread and its answer back costs two thread wake-ups (tens of
//! microseconds on a VM, more than a cheap decision itself), so a caller
//! on an async worker may run the job itself ([`EvalPool::inline_turn`])
//! when its lane is cheap (its average below an eighth of `heavy`, after a
//! few jobs), has not overrun an inline turn in the last
//! [`INLINE_COOLDOWN`], and fewer than `max_inline` inline turns run (one
//! fewer than the async workers, so one is always left for the accept loop
//! and I/O). The caller must cut the job off at [`EvalPool::inline_budget`]
//! (`heavy`) and, if it had to, report it ([`InlineTurn::overran`]) and run
//! it again on the pool: a policy that turns slow on some input holds an
//! async worker for at most that long, once per cooldown. Inline turns are
//! off with a fixed `max_running` (which bounds every job) and in an unfair
//! pool.
//!
//! This module knows nothing of tenants or policies: it runs closures in
//! named lanes.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

type Job = Box<dyn FnOnce() + Send + 'static>;

/// How the pool shares its threads between lanes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Shares {
    /// Take jobs by weighted round robin across lanes (true), or in arrival
    /// order whatever their lane (false: no fairness, for comparison).
    pub(crate) fair: bool,
    /// Most jobs one lane may have waiting or running.
    pub(crate) max_pending: usize,
    /// Most jobs one lane may run at once; 0 for the automatic bound (every
    /// normal thread while the lane is cheap, the background threads once
    /// it is heavy).
    pub(crate) max_running: usize,
    /// Average job time from which a lane counts as heavy.
    pub(crate) heavy: Duration,
    /// Most inline turns at once (see the module's documentation); 0 for
    /// none.
    pub(crate) max_inline: usize,
}

impl Default for Shares {
    fn default() -> Self {
        Self {
            fair: true,
            max_pending: 1024,
            max_running: 0,
            heavy: Duration::from_millis(1),
            max_inline: 0,
        }
    }
}

/// How long a lane whose inline turn overran its budget takes no inline
/// turn. Short, because the budget is wall time: on a busy machine a cheap
/// evaluation is sometimes held off its core for longer than the budget
/// (the HTTP bench saw 9 to 19 such cut-offs in a run), and a long
/// cooldown would send a busy cheap tenant to the pool for nothing. Each
/// overrun holds one async worker for at most the budget, and one worker
/// is always left free.
pub(crate) const INLINE_COOLDOWN: Duration = Duration::from_secs(1);

/// Jobs a lane runs before it may take inline turns (its average starts at
/// zero).
const INLINE_AFTER_JOBS: u64 = 4;

/// Nanoseconds since the first call, for times kept in atomics.
fn now_ns() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    let epoch = *EPOCH.get_or_init(Instant::now);
    u64::try_from(epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// One lane: a tenant's place in the pool, kept by its instance.
#[derive(Debug)]
pub(crate) struct Lane {
    /// Turns in a row this lane gets in the round robin (at least 1).
    weight: u32,
    /// Moving average of its jobs' run time, in nanoseconds.
    cost_ns: AtomicU64,
    /// Its jobs waiting or running.
    pending: AtomicUsize,
    /// Jobs it has run (on the pool or inline).
    jobs: AtomicU64,
    /// Until when (`now_ns`) it takes no inline turn.
    no_inline_until: AtomicU64,
}

impl Lane {
    pub(crate) fn new(weight: u32) -> Arc<Self> {
        Arc::new(Self {
            weight: weight.max(1),
            cost_ns: AtomicU64::new(0),
            pending: AtomicUsize::new(0),
            jobs: AtomicU64::new(0),
            no_inline_until: AtomicU64::new(0),
        })
    }

    /// The moving average of this lane's job times.
    pub(crate) fn cost(&self) -> Duration {
        Duration::from_nanos(self.cost_ns.load(Ordering::Relaxed))
    }

    /// Jobs of this lane waiting or running.
    pub(crate) fn pending(&self) -> usize {
        self.pending.load(Ordering::Relaxed)
    }

    /// Folds one job's time into the average (an eighth of the way): a lane
    /// turns heavy on its first job that takes 8 × `heavy`, within a few
    /// slower ones otherwise, and one cheap job held off its core for a
    /// few milliseconds does not make it heavy.
    fn record(&self, took: Duration) {
        self.jobs.fetch_add(1, Ordering::Relaxed);
        let sample = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        let old = self.cost_ns.load(Ordering::Relaxed);
        let new = if sample >= old {
            old + (sample - old) / 8
        } else {
            old - (old - sample) / 8
        };
        // A lost update between two threads only skips one sample.
        self.cost_ns.store(new, Ordering::Relaxed);
    }
}

/// Why a job did not run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RunError {
    /// The pool is gone (only while the process shuts down).
    Closed,
    /// The lane already has `max_pending` jobs waiting or running.
    Busy { pending: usize },
}

/// A job of a cheap lane running on its caller's thread (see the module's
/// documentation). Dropping it records the job's time in its lane.
#[must_use = "the turn ends when it is dropped"]
pub(crate) struct InlineTurn<'a> {
    shared: &'a Shared,
    lane: &'a Lane,
    started: Instant,
}

impl InlineTurn<'_> {
    /// The job was cut off at the inline budget: its lane takes no inline
    /// turn for [`INLINE_COOLDOWN`], and the caller runs it on the pool.
    pub(crate) fn overran(self) {
        let until = now_ns().saturating_add(INLINE_COOLDOWN.as_nanos() as u64);
        self.lane.no_inline_until.store(until, Ordering::Relaxed);
        self.shared.inline_overruns.fetch_add(1, Ordering::Relaxed);
    }
}

impl Drop for InlineTurn<'_> {
    fn drop(&mut self) {
        self.lane.record(self.started.elapsed());
        self.lane.pending.fetch_sub(1, Ordering::Relaxed);
        self.shared.inline_running.fetch_sub(1, Ordering::Release);
    }
}

/// A lane's jobs in the queue, and how many of them run now.
struct Entry {
    lane: Arc<Lane>,
    jobs: VecDeque<Job>,
    running: usize,
    /// When each running job started: a lane whose job has run past four
    /// times `heavy` is heavy at once, before its average says so.
    started: Vec<Instant>,
    /// Turns left before the round robin moves past this lane.
    credits: u32,
}

/// Which jobs a thread takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Every lane's, within its cap (no background threads), or only cheap
    /// lanes' (with background threads).
    Normal = 0,
    /// Only heavy lanes', at a lower priority.
    Background = 1,
}

#[derive(Default)]
struct State {
    /// Lanes with jobs or running jobs, by the address of their `Lane`.
    entries: HashMap<usize, Entry>,
    /// Lanes with waiting jobs, in round-robin order.
    ring: VecDeque<usize>,
    /// Threads of each kind waiting for a job.
    idle: [usize; 2],
    closed: bool,
}

struct Shared {
    state: Mutex<State>,
    /// One per kind of thread, so a job wakes a thread that may take it.
    work: [Condvar; 2],
    queued: AtomicUsize,
    /// Inline turns running now, and taken in all.
    inline_running: AtomicUsize,
    inline_turns: AtomicU64,
    inline_overruns: AtomicU64,
    shares: Shares,
    /// Most jobs a heavy lane may run at once (automatic bound).
    heavy_cap: usize,
    /// Heavy lanes run on background threads (set once they started).
    background: std::sync::atomic::AtomicBool,
}

/// A fixed set of evaluation threads.
pub(crate) struct EvalPool {
    shared: Arc<Shared>,
    threads: usize,
    /// The lane every job takes when the pool is not fair.
    single: Arc<Lane>,
}

impl EvalPool {
    /// Starts `threads` threads with `stack_bytes` of stack each. The
    /// threads end when the pool is dropped. With none (zero asked for, or
    /// the OS refused every one, which is logged), jobs run on the caller's
    /// thread.
    pub(crate) fn new(threads: usize, stack_bytes: usize, shares: Shares) -> Self {
        let reserve = (threads / 4).max(1);
        let heavy_cap = threads.saturating_sub(reserve).max(1);
        let background = shares.fair && shares.max_running == 0 && threads > 0;
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            work: [Condvar::new(), Condvar::new()],
            queued: AtomicUsize::new(0),
            inline_running: AtomicUsize::new(0),
            inline_turns: AtomicU64::new(0),
            inline_overruns: AtomicU64::new(0),
            heavy_cap,
            shares,
            background: std::sync::atomic::AtomicBool::new(false),
        });
        let spawn = |name: String, kind: Kind| {
            let shared = shared.clone();
            let spawned = std::thread::Builder::new()
                .name(name)
                .stack_size(stack_bytes)
                .spawn(move || {
                    if kind == Kind::Background {
                        lower_priority();
                    }
                    shared.work_loop(kind)
                });
            match spawned {
                Ok(_) => true,
                Err(e) => {
                    tracing::error!(error = %e, "cannot start an evaluation thread");
                    false
                }
            }
        };
        let started = (0..threads)
            .filter(|i| spawn(format!("tenet-eval-{i}"), Kind::Normal))
            .count();
        // Heavy lanes keep to the background threads only when every one
        // of them started; otherwise the normal threads bound them.
        if background && started > 0 {
            let all = (0..heavy_cap)
                .filter(|i| spawn(format!("tenet-eval-bg-{i}"), Kind::Background))
                .count()
                == heavy_cap;
            shared.background.store(all, Ordering::Release);
        }
        Self {
            shared,
            threads: started,
            single: Lane::new(1),
        }
    }

    /// Runs `f` on a pool thread in `lane` and waits for its answer. If the
    /// returned future is dropped before a thread takes the job, `f` never
    /// runs.
    pub(crate) async fn run<T, F>(&self, lane: &Arc<Lane>, f: F) -> Result<T, RunError>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        if self.threads == 0 {
            return Ok(f());
        }
        let (tx, rx) = oneshot::channel();
        let owner = lane.clone();
        // The lane's accounting is done before the answer is sent, so a
        // caller that got its answer sees its job no longer pending.
        let job: Job = Box::new(move || {
            if tx.is_closed() {
                owner.pending.fetch_sub(1, Ordering::Relaxed);
                return;
            }
            let started = Instant::now();
            let answer = f();
            owner.record(started.elapsed());
            owner.pending.fetch_sub(1, Ordering::Relaxed);
            let _ = tx.send(answer);
        });
        let shares = &self.shared.shares;
        let queue = if shares.fair { lane } else { &self.single };
        // The bound is the lane's own, whether or not the pool is fair.
        let pending = lane.pending.load(Ordering::Relaxed);
        if pending >= shares.max_pending {
            return Err(RunError::Busy { pending });
        }
        self.shared.submit(queue, lane, job)?;
        rx.await.map_err(|_| RunError::Closed)
    }

    /// A turn to run a job of `lane` on the caller's thread, if the lane
    /// may take one now (see the module's documentation). The caller runs
    /// the job within [`EvalPool::inline_budget`] and drops the turn.
    pub(crate) fn inline_turn<'a>(&'a self, lane: &'a Lane) -> Option<InlineTurn<'a>> {
        let shared = &*self.shared;
        let shares = &shared.shares;
        if shares.max_inline == 0 || !shares.fair || shares.max_running > 0 || self.threads == 0 {
            return None;
        }
        let cheap = lane.jobs.load(Ordering::Relaxed) >= INLINE_AFTER_JOBS
            && lane.cost() < shares.heavy / 8
            && lane.pending() < shares.max_pending;
        if !cheap || lane.no_inline_until.load(Ordering::Relaxed) > now_ns() {
            return None;
        }
        let running = &shared.inline_running;
        if running.fetch_add(1, Ordering::Acquire) >= shares.max_inline {
            running.fetch_sub(1, Ordering::Release);
            return None;
        }
        lane.pending.fetch_add(1, Ordering::Relaxed);
        shared.inline_turns.fetch_add(1, Ordering::Relaxed);
        Some(InlineTurn {
            shared,
            lane,
            started: Instant::now(),
        })
    }

    /// How long an inline turn may run before the caller must cut it off
    /// and run the job on the pool instead: `heavy`, the time that would
    /// make its lane heavy.
    pub(crate) fn inline_budget(&self) -> Duration {
        self.shared.shares.heavy
    }

    /// Inline turns taken since the pool started.
    pub(crate) fn inline_turns(&self) -> u64 {
        self.shared.inline_turns.load(Ordering::Relaxed)
    }

    /// Inline turns cut off at the budget (and run again on the pool).
    pub(crate) fn inline_overruns(&self) -> u64 {
        self.shared.inline_overruns.load(Ordering::Relaxed)
    }

    /// Jobs waiting for a thread.
    pub(crate) fn queued(&self) -> usize {
        self.shared.queued.load(Ordering::Relaxed)
    }

    /// How many threads evaluate.
    pub(crate) fn threads(&self) -> usize {
        self.threads
    }
}

impl Drop for EvalPool {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        for work in &self.shared.work {
            work.notify_all();
        }
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues `job` in `queue`'s entry; `owner` is the lane whose pending
    /// count it adds to (the same lane unless the pool is unfair; the job
    /// itself takes it off).
    fn submit(&self, queue: &Arc<Lane>, owner: &Lane, job: Job) -> Result<(), RunError> {
        let key = Arc::as_ptr(queue) as usize;
        let mut state = self.lock();
        if state.closed {
            return Err(RunError::Closed);
        }
        owner.pending.fetch_add(1, Ordering::Relaxed);
        let entry = state.entries.entry(key).or_insert_with(|| Entry {
            lane: queue.clone(),
            jobs: VecDeque::new(),
            running: 0,
            started: Vec::new(),
            credits: queue.weight,
        });
        entry.jobs.push_back(job);
        if entry.jobs.len() == 1 {
            entry.credits = entry.lane.weight;
            state.ring.push_back(key);
        }
        self.queued.fetch_add(1, Ordering::Relaxed);
        let kind = state
            .entries
            .get(&key)
            .map_or(Kind::Normal, |entry| self.kind_for(entry)) as usize;
        if state.idle[kind] > 0 {
            self.work[kind].notify_one();
        }
        Ok(())
    }

    /// A lane is heavy while its recent jobs averaged `heavy` or more, or
    /// one of its running jobs has run four times that long.
    fn is_heavy(&self, entry: &Entry) -> bool {
        let heavy = self.shares.heavy;
        self.shares.fair
            && (entry.lane.cost() >= heavy
                || entry
                    .started
                    .iter()
                    .any(|t| t.elapsed() >= heavy.saturating_mul(4)))
    }

    /// The kind of thread that takes `entry`'s jobs now.
    fn kind_for(&self, entry: &Entry) -> Kind {
        if self.background.load(Ordering::Relaxed) && self.is_heavy(entry) {
            Kind::Background
        } else {
            Kind::Normal
        }
    }

    /// Most jobs of `entry`'s lane that may run at once.
    fn cap(&self, entry: &Entry) -> usize {
        if !self.shares.fair {
            usize::MAX
        } else if self.shares.max_running > 0 {
            self.shares.max_running
        } else if self.is_heavy(entry) {
            self.heavy_cap
        } else {
            usize::MAX
        }
    }

    /// The next job for a thread of `kind` by weighted round robin,
    /// skipping lanes at their cap and lanes for the other kind (which is
    /// woken if it has an idle thread: a lane turns heavy or cheap while
    /// its jobs wait).
    fn pick(&self, state: &mut State, kind: Kind) -> Option<(usize, Instant, Job)> {
        let mut other = false;
        let picked = self.pick_for(state, kind, &mut other);
        let theirs = match kind {
            Kind::Normal => Kind::Background,
            Kind::Background => Kind::Normal,
        } as usize;
        if other && state.idle[theirs] > 0 {
            self.work[theirs].notify_one();
        }
        picked
    }

    fn pick_for(
        &self,
        state: &mut State,
        kind: Kind,
        other: &mut bool,
    ) -> Option<(usize, Instant, Job)> {
        let background = self.background.load(Ordering::Relaxed);
        for at in 0..state.ring.len() {
            let key = state.ring[at];
            let entry = state.entries.get_mut(&key)?;
            if background {
                if self.kind_for(entry) != kind {
                    *other = true;
                    continue;
                }
            } else if entry.running >= self.cap(entry) {
                continue;
            }
            let job = entry.jobs.pop_front()?;
            entry.running += 1;
            entry.started.push(Instant::now());
            entry.credits = entry.credits.saturating_sub(1);
            if entry.jobs.is_empty() {
                state.ring.remove(at);
            } else if entry.credits == 0 {
                entry.credits = entry.lane.weight;
                state.ring.remove(at);
                state.ring.push_back(key);
            }
            self.queued.fetch_sub(1, Ordering::Relaxed);
            let started = entry.started.last().copied().unwrap_or_else(Instant::now);
            return Some((key, started, job));
        }
        None
    }

    fn work_loop(&self, kind: Kind) {
        let me = kind as usize;
        let mut state = self.lock();
        loop {
            if let Some((key, started, job)) = self.pick(&mut state, kind) {
                drop(state);
                job();
                state = self.lock();
                let done = state.entries.get_mut(&key).is_some_and(|entry| {
                    entry.running -= 1;
                    if let Some(at) = entry.started.iter().position(|t| *t == started) {
                        entry.started.swap_remove(at);
                    }
                    entry.running == 0 && entry.jobs.is_empty()
                });
                if done {
                    state.entries.remove(&key);
                }
                // A lane held at its cap may take a thread that waits.
                if state.idle[me] > 0 && !state.ring.is_empty() {
                    self.work[me].notify_one();
                }
                continue;
            }
            if state.closed && state.ring.is_empty() {
                return;
            }
            state.idle[me] += 1;
            state = self.work[me].wait(state).unwrap_or_else(|p| p.into_inner());
            state.idle[me] -= 1;
        }
    }
}

/// Nice value of the background threads: a tenth of a normal thread's CPU
/// share when both want the same core (Linux's weights: 110 against 1024).
const BACKGROUND_NICE: i32 = 10;

/// Lowers the calling thread's CPU priority (Linux: `setpriority` on the
/// thread id, which changes that thread only). A failure is logged; the
/// thread then runs at normal priority, still apart from the others.
fn lower_priority() {
    #[cfg(target_os = "linux")]
    {
        let tid = rustix::thread::gettid();
        if let Err(e) = rustix::process::setpriority_process(Some(tid), BACKGROUND_NICE) {
            tracing::warn!(error = %e, "cannot lower the priority of a background evaluation thread");
        }
    }
}

/// The calling thread's nice value (Linux only), for tests.
#[cfg(all(test, target_os = "linux"))]
fn priority() -> i32 {
    rustix::process::getpriority_process(Some(rustix::thread::gettid())).unwrap_or(i32::MIN)
}

#[cfg(test)]
mod tests;
