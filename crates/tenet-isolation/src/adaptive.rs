//! Adaptive isolation: a tenant at level `none` whose in-process
//! evaluations cross a threshold within a sliding window (deadline hits,
//! memory-budget hits, errors, or its share of the evaluation threads'
//! time) is moved into a worker of its own (`Host::set_isolation`),
//! logged, reported, and moved back after a quiet period when configured.
//! Strikes arrive through a bounded channel that never blocks an
//! evaluation (a full channel drops the strike). It evaluates nothing.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tenet_host::{IsolationLevel, Strike, WeakHost};
use tokio::sync::mpsc;

/// When a tenant is moved out of the shared process.
#[derive(Debug, Clone, PartialEq)]
pub struct AdaptiveConfig {
    /// The sliding window the counts are over. Default 60 s.
    pub window: Duration,
    /// Deadline (or instruction-cap) hits in the window. Default 3.
    pub deadline_hits: u32,
    /// Memory-budget hits in the window. Default 1.
    pub memory_hits: u32,
    /// Other evaluation errors in the window. Default 100.
    pub errors: u32,
    /// Share of the evaluation threads' time its evaluations of 1 ms or
    /// more took over the window, 0–1. Default 0.5.
    pub cpu_share: f64,
    /// Evaluation threads of the host (to turn time into a share).
    pub threads: usize,
    /// Moved back to `none` this long after the move, unless its level was
    /// changed meanwhile. Default unset: it stays.
    pub move_back_after: Option<Duration>,
}

impl Default for AdaptiveConfig {
    fn default() -> Self {
        Self {
            window: Duration::from_secs(60),
            deadline_hits: 3,
            memory_hits: 1,
            errors: 100,
            cpu_share: 0.5,
            threads: 1,
            move_back_after: None,
        }
    }
}

/// A tenant and what it did.
type Struck = (Arc<str>, Strike);

#[derive(Debug, Clone)]
struct Moved {
    reason: String,
    at: Instant,
}

/// The strike counter and the mover. Cheap to clone.
#[derive(Clone)]
pub struct Adaptive {
    config: Arc<AdaptiveConfig>,
    strikes: mpsc::Sender<Struck>,
    queue: Arc<Mutex<Option<mpsc::Receiver<Struck>>>>,
    moved: Arc<Mutex<BTreeMap<String, Moved>>>,
}

impl std::fmt::Debug for Adaptive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Adaptive")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[derive(Default)]
struct Window {
    strikes: VecDeque<(Instant, Strike)>,
}

impl Window {
    /// Adds a strike and says which threshold, if any, is now crossed.
    fn add(&mut self, now: Instant, strike: Strike, config: &AdaptiveConfig) -> Option<String> {
        self.strikes.push_back((now, strike));
        while self
            .strikes
            .front()
            .is_some_and(|(at, _)| now.duration_since(*at) > config.window)
        {
            self.strikes.pop_front();
        }
        let (mut deadline, mut memory, mut errors, mut busy) = (0u32, 0u32, 0u32, Duration::ZERO);
        for (_, strike) in &self.strikes {
            match strike {
                Strike::Deadline => deadline += 1,
                Strike::Memory => memory += 1,
                Strike::Error => errors += 1,
                Strike::Cost(took) => busy += *took,
            }
        }
        let share =
            busy.as_secs_f64() / (config.window.as_secs_f64() * config.threads.max(1) as f64);
        let window = config.window.as_secs();
        if config.deadline_hits > 0 && deadline >= config.deadline_hits {
            Some(format!("{deadline} deadline hits in {window} s"))
        } else if config.memory_hits > 0 && memory >= config.memory_hits {
            Some(format!("{memory} memory-budget hits in {window} s"))
        } else if config.errors > 0 && errors >= config.errors {
            Some(format!("{errors} evaluation errors in {window} s"))
        } else if config.cpu_share > 0.0 && share >= config.cpu_share {
            Some(format!(
                "{:.0} % of the evaluation threads over {window} s",
                share * 100.0
            ))
        } else {
            None
        }
    }
}

impl Adaptive {
    /// A counter with `config`; nothing moves until [`Adaptive::start`].
    pub fn new(config: AdaptiveConfig) -> Self {
        let (strikes, queue) = mpsc::channel(4096);
        Self {
            config: Arc::new(config),
            strikes,
            queue: Arc::new(Mutex::new(Some(queue))),
            moved: Arc::new(Mutex::new(BTreeMap::new())),
        }
    }

    /// Counts a strike; never blocks (a full queue drops it).
    pub fn strike(&self, tenant: &str, strike: Strike) {
        let _ = self.strikes.try_send((Arc::from(tenant), strike));
    }

    /// Tenants moved into workers, with why.
    pub fn moved(&self) -> BTreeMap<String, String> {
        lock(&self.moved)
            .iter()
            .map(|(t, m)| (t.clone(), m.reason.clone()))
            .collect()
    }

    /// Starts moving tenants of `host` (once; later calls do nothing).
    pub fn start(&self, host: WeakHost) {
        let Some(mut queue) = lock(&self.queue).take() else {
            return;
        };
        let (config, moved) = (self.config.clone(), self.moved.clone());
        tokio::spawn(async move {
            let mut windows: HashMap<Arc<str>, Window> = HashMap::new();
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tokio::select! {
                    next = queue.recv() => {
                        let Some((tenant, strike)) = next else { return };
                        let Some(host) = host.upgrade() else { return };
                        if host.isolation(&tenant) != IsolationLevel::None {
                            windows.remove(&tenant);
                            continue;
                        }
                        let crossed = windows
                            .entry(tenant.clone())
                            .or_default()
                            .add(Instant::now(), strike, &config);
                        if let Some(reason) = crossed {
                            windows.remove(&tenant);
                            match host.set_isolation(&tenant, IsolationLevel::Tenant) {
                                Ok(_) => {
                                    tracing::warn!(tenant = %tenant, %reason, "adaptive isolation: tenant moved into its own worker");
                                    lock(&moved).insert(tenant.to_string(), Moved { reason, at: Instant::now() });
                                }
                                Err(e) => tracing::warn!(tenant = %tenant, error = %e, "adaptive isolation could not move the tenant"),
                            }
                        }
                    }
                    _ = tick.tick() => {
                        let Some(host) = host.upgrade() else { return };
                        // Forget quiet tenants' windows.
                        let now = Instant::now();
                        windows.retain(|_, w| w.strikes.back().is_some_and(|(at, _)| now.duration_since(*at) <= config.window));
                        let Some(after) = config.move_back_after else { continue };
                        let due: Vec<String> = lock(&moved)
                            .iter()
                            .filter(|(_, m)| m.at.elapsed() >= after)
                            .map(|(t, _)| t.clone())
                            .collect();
                        for tenant in due {
                            lock(&moved).remove(&tenant);
                            // Only what adaptive isolation moved goes back.
                            if host.isolation(&tenant) == IsolationLevel::Tenant
                                && host.set_isolation(&tenant, IsolationLevel::None).is_ok()
                            {
                                tracing::info!(tenant = %tenant, "adaptive isolation: tenant moved back into the shared process");
                            }
                        }
                    }
                }
            }
        });
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn config() -> AdaptiveConfig {
        AdaptiveConfig {
            window: Duration::from_secs(10),
            deadline_hits: 3,
            memory_hits: 1,
            errors: 5,
            cpu_share: 0.5,
            threads: 2,
            move_back_after: None,
        }
    }

    #[test]
    fn thresholds_are_crossed_within_the_window_only() {
        let config = config();
        let start = Instant::now();
        let mut w = Window::default();
        assert!(w.add(start, Strike::Deadline, &config).is_none());
        assert!(w.add(start, Strike::Deadline, &config).is_none());
        // The first two leave the window before the third arrives.
        let later = start + Duration::from_secs(11);
        assert!(w.add(later, Strike::Deadline, &config).is_none());
        assert!(w.add(later, Strike::Deadline, &config).is_none());
        let reason = w.add(later, Strike::Deadline, &config).unwrap();
        assert!(reason.contains("3 deadline hits"), "{reason}");

        let mut w = Window::default();
        assert!(w
            .add(start, Strike::Memory, &config)
            .unwrap()
            .contains("memory"));

        let mut w = Window::default();
        for _ in 0..4 {
            assert!(w.add(start, Strike::Error, &config).is_none());
        }
        assert!(w
            .add(start, Strike::Error, &config)
            .unwrap()
            .contains("errors"));
    }

    #[test]
    fn cpu_share_counts_time_against_the_threads() {
        let config = config();
        let now = Instant::now();
        let mut w = Window::default();
        // 10 s window × 2 threads = 20 s; half is 10 s.
        for _ in 0..9 {
            assert!(w
                .add(now, Strike::Cost(Duration::from_secs(1)), &config)
                .is_none());
        }
        let reason = w
            .add(now, Strike::Cost(Duration::from_secs(1)), &config)
            .unwrap();
        assert!(reason.contains("50 %"), "{reason}");
    }
}
