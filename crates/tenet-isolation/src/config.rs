//! How the supervisor runs workers: the command, per-worker limits,
//! timings and bounds. Plain data with documented defaults.

use crate::process::WorkerCommand;
use std::path::PathBuf;
use std::time::Duration;

/// Configuration of a [`crate::Supervisor`].
#[derive(Debug, Clone)]
pub struct SupervisorConfig {
    /// How to start a worker. Default: this executable with `worker`.
    pub command: WorkerCommand,
    /// Workers started ahead of need and handed to the next tenant that
    /// needs one (the warm pool). Default 0.
    pub pool_size: usize,
    /// A tenant worker with no decision for this long is stopped. Default
    /// 30 s.
    pub idle_after: Duration,
    /// A session worker with no decision for this long is stopped. Default
    /// 30 s.
    pub session_idle_after: Duration,
    /// Most session workers of one tenant. Default 64.
    pub max_sessions_per_tenant: usize,
    /// Most workers at once. Default 256.
    pub max_workers: usize,
    /// Most decisions waiting for one worker's answers; the next gets
    /// `too_many_requests` at once. Default 1,024 (as the evaluation
    /// pool's `max_pending`).
    pub max_pending: usize,
    /// Longest a worker may take to start and greet. Default 5 s.
    pub start_timeout: Duration,
    /// Longest a worker may take to compile a revision. Default 60 s.
    pub load_timeout: Duration,
    /// A decision without an answer after its deadline plus this gets its
    /// worker killed (the caller gets `evaluation_timeout`). Default 1 s.
    pub kill_grace: Duration,
    /// When set, the time after which an unanswered decision kills its
    /// worker, whatever the deadline (a wall-clock cap beside the engine's
    /// own deadline). Default unset.
    pub kill_after: Option<Duration>,
    /// First delay before a crashed worker is started again; doubles per
    /// crash in a row (with jitter) up to `backoff_max`. Default 100 ms.
    pub backoff_initial: Duration,
    /// Longest restart delay. Default 10 s.
    pub backoff_max: Duration,
    /// How long a decision for a tenant whose worker is down waits for it
    /// before failing with `tenant_unavailable`. Default 0 (fail at once).
    pub unavailable_wait: Duration,
    /// How often each worker is asked for its health. Default 5 s.
    pub health_interval: Duration,
    /// A health check unanswered this long kills the worker. Default 2 s.
    pub health_timeout: Duration,
    /// How long a stopping worker may take before it is killed. Default
    /// 2 s.
    pub stop_timeout: Duration,
}

impl Default for SupervisorConfig {
    fn default() -> Self {
        Self {
            command: WorkerCommand {
                program: std::env::current_exe().unwrap_or_else(|_| PathBuf::from("tenet")),
                args: vec!["worker".into()],
                threads: 2,
                stack_bytes: 8 << 20,
                max_memory_bytes: 0,
                max_cpu_seconds: 0,
            },
            pool_size: 0,
            idle_after: Duration::from_secs(30),
            session_idle_after: Duration::from_secs(30),
            max_sessions_per_tenant: 64,
            max_workers: 256,
            max_pending: 1024,
            start_timeout: Duration::from_secs(5),
            load_timeout: Duration::from_secs(60),
            kill_grace: Duration::from_secs(1),
            kill_after: None,
            backoff_initial: Duration::from_millis(100),
            backoff_max: Duration::from_secs(10),
            unavailable_wait: Duration::ZERO,
            health_interval: Duration::from_secs(5),
            health_timeout: Duration::from_secs(2),
            stop_timeout: Duration::from_secs(2),
        }
    }
}

impl SupervisorConfig {
    /// The delay before restart number `failures` (1 for the first crash),
    /// with jitter in [½, 1] of the doubled delay.
    pub(crate) fn backoff(&self, failures: u32) -> Duration {
        let doubled = self
            .backoff_initial
            .saturating_mul(1u32 << failures.saturating_sub(1).min(20));
        let capped = doubled.min(self.backoff_max);
        capped.mul_f64(0.5 + fastrand::f64() / 2.0)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_up_to_the_cap() {
        let config = SupervisorConfig {
            backoff_initial: Duration::from_millis(100),
            backoff_max: Duration::from_secs(1),
            ..SupervisorConfig::default()
        };
        for (failures, full) in [
            (1, 100),
            (2, 200),
            (3, 400),
            (4, 800),
            (5, 1000),
            (40, 1000),
        ] {
            for _ in 0..20 {
                let d = config.backoff(failures);
                let full = Duration::from_millis(full);
                assert!(d <= full && d >= full / 2, "{failures}: {d:?}");
            }
        }
    }
}
