//! The polling scheduler: one task per host decides when each instance's
//! bundle is fetched next. It owns a queue of deadlines (a `BTreeSet` of
//! `(instant, instance id)` and one timer), is fed by a channel of commands
//! (track an instance, poll it now, forget it, a poll finished), and starts
//! each due poll as its own task, bounded per remote host here and across
//! the host by the load semaphore.
//!
//! After a poll: success or not-modified → next poll after a delay drawn
//! uniformly from `[min_delay, max_delay]`; failure → exponential backoff
//! with jitter; a long-polling source → again at once (see
//! [`LONG_POLL_FLOOR`]). With polling off, an instance is polled only until
//! its first activation and when asked (`PollNow`, from the file watcher).
//!
//! The scheduler holds the host weakly and stops when the host is dropped
//! (its command channel closes). It never fetches or compiles itself and
//! never blocks: loads run in their own tasks.

use crate::host::HostInner;
use crate::instance::{Instance, NO_FETCH};
use crate::HostConfig;
use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio::sync::{mpsc, Semaphore};
use tokio::time::Instant;

/// A long-polling source is fetched again this long after a fetch returns…
pub(crate) const LONG_POLL_FLOOR: Duration = Duration::from_millis(10);
/// …but at most once per this period. A server that honours long polling
/// holds each request for many seconds, so this never delays it; a server
/// that claims to and answers at once costs one request per second per
/// tenant instead of a hot loop.
pub(crate) const LONG_POLL_PERIOD: Duration = Duration::from_secs(1);

/// What a poll reports back to the scheduler.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PollOutcome {
    /// The fetch succeeded (a new revision activated, or not modified).
    pub(crate) ok: bool,
    /// The instance was dropped (an on-demand tenant without a bundle).
    pub(crate) dropped: bool,
    /// The source asks to be fetched again right away.
    pub(crate) long_polls: bool,
}

enum Command {
    Add {
        id: u64,
        instance: Weak<Instance>,
        authority: Option<Arc<str>>,
    },
    PollNow(u64),
    Forget(u64),
    Done {
        id: u64,
        started: Instant,
        outcome: PollOutcome,
    },
}

/// The handle the host (and the file watcher) use to talk to the scheduler
/// task. Sending never blocks.
#[derive(Clone)]
pub(crate) struct Scheduler {
    tx: mpsc::UnboundedSender<Command>,
}

/// The receiving end, until the task is started.
pub(crate) struct Queue {
    rx: mpsc::UnboundedReceiver<Command>,
}

/// A scheduler handle and the queue its task will run.
pub(crate) fn channel() -> (Scheduler, Queue) {
    let (tx, rx) = mpsc::unbounded_channel();
    (Scheduler { tx }, Queue { rx })
}

impl Scheduler {
    /// Tracks `instance` and polls it at once (its first load).
    pub(crate) fn add(&self, instance: &Arc<Instance>) {
        let _ = self.tx.send(Command::Add {
            id: instance.id,
            instance: Arc::downgrade(instance),
            authority: authority(&instance.source.location()),
        });
    }

    /// Polls the instance as soon as possible (after the running poll, if
    /// one is running).
    pub(crate) fn poll_now(&self, id: u64) {
        let _ = self.tx.send(Command::PollNow(id));
    }

    /// Stops polling the instance (it was collected).
    pub(crate) fn forget(&self, id: u64) {
        let _ = self.tx.send(Command::Forget(id));
    }

    fn done(&self, id: u64, started: Instant, outcome: PollOutcome) {
        let _ = self.tx.send(Command::Done {
            id,
            started,
            outcome,
        });
    }
}

/// The delays the scheduler applies, copied from the host's configuration.
#[derive(Debug, Clone)]
pub(crate) struct Timing {
    polling: bool,
    min_delay: Duration,
    max_delay: Duration,
    retry_initial: Duration,
    retry_max: Duration,
    per_host: usize,
}

impl Timing {
    pub(crate) fn new(config: &HostConfig) -> Self {
        Self {
            polling: config.polling.enabled,
            min_delay: config.polling.min_delay,
            max_delay: config.polling.max_delay,
            retry_initial: config.retry_initial,
            retry_max: config.retry_max,
            per_host: config.polling.load_concurrency_per_host.max(1),
        }
    }

    /// A delay drawn uniformly from `[min_delay, max_delay]`.
    fn poll_delay(&self) -> Duration {
        let spread = self.max_delay.saturating_sub(self.min_delay);
        self.min_delay + spread.mul_f64(fastrand::f64())
    }

    /// The delay after the `failures`-th failure in a row: `retry_initial`
    /// doubled per failure up to `retry_max`, times a jitter in [0.5, 1.5)
    /// so failing tenants do not retry in lockstep.
    fn backoff(&self, failures: u32) -> Duration {
        let doublings = failures.saturating_sub(1).min(20);
        let base = self.retry_initial.saturating_mul(1u32 << doublings);
        base.min(self.retry_max).mul_f64(0.5 + fastrand::f64())
    }
}

/// The authority (`host:port`) of a URL location, lowercased: loads against
/// one remote host are bounded together. `None` for local paths.
pub(crate) fn authority(location: &str) -> Option<Arc<str>> {
    let (scheme, rest) = location.split_once("://")?;
    if scheme.is_empty() || scheme.eq_ignore_ascii_case("file") {
        return None;
    }
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..end];
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    (!host.is_empty()).then(|| host.to_ascii_lowercase().into())
}

struct Entry {
    instance: Weak<Instance>,
    authority: Option<Arc<str>>,
    /// When the next poll is queued, if it is.
    due: Option<Instant>,
    running: bool,
    /// A poll was asked for while one was running: run another after it.
    again: bool,
    failures: u32,
}

struct State {
    timing: Timing,
    epoch: Instant,
    entries: HashMap<u64, Entry>,
    queue: BTreeSet<(Instant, u64)>,
    /// Per-remote-host load bounds, dropped when no poll holds them.
    hosts: HashMap<Arc<str>, Arc<Semaphore>>,
}

impl Queue {
    /// Starts the scheduler task on `runtime`. `epoch` is the host clock's
    /// origin (for `Instance::next_fetch`).
    pub(crate) fn start(
        self,
        host: Weak<HostInner>,
        timing: Timing,
        epoch: Instant,
        runtime: &tokio::runtime::Handle,
    ) {
        let state = State {
            timing,
            epoch,
            entries: HashMap::new(),
            queue: BTreeSet::new(),
            hosts: HashMap::new(),
        };
        runtime.spawn(run(self.rx, state, host, runtime.clone()));
    }
}

async fn run(
    mut rx: mpsc::UnboundedReceiver<Command>,
    mut state: State,
    host: Weak<HostInner>,
    runtime: tokio::runtime::Handle,
) {
    let timer = tokio::time::sleep(Duration::ZERO);
    tokio::pin!(timer);
    loop {
        let next = state.queue.first().map(|(at, _)| *at);
        if let Some(at) = next {
            if timer.deadline() != at || timer.is_elapsed() {
                timer.as_mut().reset(at);
            }
        }
        tokio::select! {
            biased;
            command = rx.recv() => match command {
                Some(command) => state.handle(command),
                // Every handle is gone: the host was dropped.
                None => return,
            },
            () = &mut timer, if next.is_some() => {}
        }
        // Take whatever else is waiting before starting polls, so a burst of
        // commands costs one pass.
        while let Ok(command) = rx.try_recv() {
            state.handle(command);
        }
        state.dispatch_due(&host, &runtime);
    }
}

impl State {
    fn handle(&mut self, command: Command) {
        match command {
            Command::Add {
                id,
                instance,
                authority,
            } => {
                self.entries.entry(id).or_insert(Entry {
                    instance,
                    authority,
                    due: None,
                    running: false,
                    again: false,
                    failures: 0,
                });
                self.set_due(id, Instant::now());
            }
            Command::PollNow(id) => {
                if let Some(entry) = self.entries.get_mut(&id) {
                    if entry.running {
                        entry.again = true;
                    } else {
                        self.set_due(id, Instant::now());
                    }
                }
            }
            Command::Forget(id) => {
                if let Some(entry) = self.entries.remove(&id) {
                    if let Some(at) = entry.due {
                        self.queue.remove(&(at, id));
                    }
                    self.release_host(entry.authority.as_ref());
                }
            }
            Command::Done {
                id,
                started,
                outcome,
            } => self.done(id, started, outcome),
        }
    }

    fn done(&mut self, id: u64, started: Instant, outcome: PollOutcome) {
        let timing = self.timing.clone();
        let Some(entry) = self.entries.get_mut(&id) else {
            // Forgotten while its poll ran: the bound that poll held may
            // now be unused.
            self.hosts.retain(|_, bound| Arc::strong_count(bound) > 1);
            return;
        };
        entry.running = false;
        let authority = entry.authority.clone();
        if outcome.dropped {
            self.entries.remove(&id);
            self.release_host(authority.as_ref());
            return;
        }
        let now = Instant::now();
        let next = if std::mem::take(&mut entry.again) {
            Some(now)
        } else if outcome.ok {
            entry.failures = 0;
            match (timing.polling, outcome.long_polls) {
                (false, _) => None,
                (true, true) => Some((now + LONG_POLL_FLOOR).max(started + LONG_POLL_PERIOD)),
                (true, false) => Some(now + timing.poll_delay()),
            }
        } else {
            entry.failures = entry.failures.saturating_add(1);
            let active = entry
                .instance
                .upgrade()
                .is_some_and(|i| i.current().is_some());
            // Until the first activation a failing instance is always
            // retried; after it, only while polling is on.
            (timing.polling || !active).then(|| now + timing.backoff(entry.failures))
        };
        if let Some(at) = next {
            self.set_due(id, at);
        }
        self.release_host(authority.as_ref());
    }

    /// Queues the entry's next poll at `at` (replacing any queued one).
    fn set_due(&mut self, id: u64, at: Instant) {
        let Some(entry) = self.entries.get_mut(&id) else {
            return;
        };
        if let Some(old) = entry.due.replace(at) {
            self.queue.remove(&(old, id));
        }
        self.queue.insert((at, id));
        if let Some(instance) = entry.instance.upgrade() {
            let nanos = u64::try_from(at.saturating_duration_since(self.epoch).as_nanos())
                .unwrap_or(NO_FETCH - 1);
            instance.next_fetch.store(nanos, Ordering::Relaxed);
        }
    }

    /// Drops a remote host's bound once no poll holds it.
    fn release_host(&mut self, authority: Option<&Arc<str>>) {
        if let Some(a) = authority {
            if self.hosts.get(a).is_some_and(|s| Arc::strong_count(s) == 1) {
                self.hosts.remove(a);
            }
        }
    }

    /// Starts every poll that is due.
    fn dispatch_due(&mut self, host: &Weak<HostInner>, runtime: &tokio::runtime::Handle) {
        let now = Instant::now();
        while let Some(&(at, id)) = self.queue.first() {
            if at > now {
                break;
            }
            self.queue.pop_first();
            let Some(entry) = self.entries.get_mut(&id) else {
                continue;
            };
            entry.due = None;
            let Some(instance) = entry.instance.upgrade().filter(|i| !i.is_collected()) else {
                let gone = self.entries.remove(&id);
                self.release_host(gone.and_then(|e| e.authority).as_ref());
                continue;
            };
            instance.next_fetch.store(NO_FETCH, Ordering::Relaxed);
            entry.running = true;
            let per_host = self.timing.per_host;
            let bound = entry.authority.as_ref().map(|a| {
                self.hosts
                    .entry(a.clone())
                    .or_insert_with(|| Arc::new(Semaphore::new(per_host)))
                    .clone()
            });
            let host = host.clone();
            runtime.spawn(async move {
                let _permit = match bound.as_ref() {
                    Some(bound) => bound.acquire().await.ok(),
                    None => None,
                };
                let Some(inner) = host.upgrade() else { return };
                let started = Instant::now();
                let outcome = inner.poll_once(&instance).await;
                drop(_permit);
                // The bound goes before `done`, so that the scheduler sees
                // it unused and can drop it.
                drop(bound);
                inner.scheduler.done(id, started, outcome);
            });
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn authorities_of_urls_and_none_for_paths() {
        let a = |s: &str| authority(s).map(|a| a.to_string());
        assert_eq!(a("http://a:1/x").as_deref(), Some("a:1"));
        assert_eq!(
            a("https://user:pw@Bundles.Example:8443?q").as_deref(),
            Some("bundles.example:8443")
        );
        assert_eq!(a("s3://bucket/key.tar.gz").as_deref(), Some("bucket"));
        assert_eq!(a("/srv/bundles/t1"), None);
        assert_eq!(a("file:///srv/bundles/t1"), None);
        assert_eq!(a("http:///x"), None);
    }

    #[test]
    fn delays_stay_in_their_ranges() {
        let config = HostConfig::default().sanitized();
        let timing = Timing::new(&config);
        for _ in 0..1000 {
            let d = timing.poll_delay();
            assert!(
                d >= Duration::from_secs(60) && d <= Duration::from_secs(120),
                "{d:?}"
            );
        }
        // First retry around retry_initial, then doubling, capped.
        let first = timing.backoff(1);
        assert!(first >= Duration::from_millis(250) && first < Duration::from_millis(750));
        let late = timing.backoff(40);
        assert!(late >= Duration::from_secs(30) && late < Duration::from_secs(90));
    }
}
