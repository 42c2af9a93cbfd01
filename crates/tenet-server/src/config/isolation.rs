//! The `isolation:` section: each tenant's isolation level (a default and
//! rules by tenant id or `*` pattern), the session header, how worker
//! processes run, and adaptive isolation; with its checks and what it
//! builds for the host and the supervisor. Reading only.

use super::{Config, ConfigError};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::time::Duration;
use tenet::{IsolationLevel, IsolationRules};

/// `isolation:`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IsolationSection {
    /// Level of tenants no rule names: `none` (this process), `tenant` (a
    /// worker process per tenant) or `session` (one per session key).
    pub level: String,
    /// Levels by tenant id or pattern (`untrusted-*: tenant`); an exact id
    /// wins, then the longest matching pattern.
    pub tenants: BTreeMap<String, String>,
    /// Request header carrying the session key at level `session`.
    pub session_header: String,
    /// How worker processes run.
    pub workers: WorkersSection,
    /// Moving misbehaving tenants into workers on their own.
    pub adaptive: AdaptiveSection,
}

impl Default for IsolationSection {
    fn default() -> Self {
        Self {
            level: "none".into(),
            tenants: BTreeMap::new(),
            session_header: "x-session-id".into(),
            workers: WorkersSection::default(),
            adaptive: AdaptiveSection::default(),
        }
    }
}

/// `isolation.workers:` (see `tenet::SupervisorConfig`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WorkersSection {
    /// Run worker processes at all (needed for levels other than `none`,
    /// for the isolation API and for adaptive isolation).
    pub enabled: bool,
    /// Evaluation threads per worker.
    pub threads: usize,
    /// Address-space limit per worker, bytes (0: none).
    pub max_memory_bytes: u64,
    /// CPU-time limit per worker, seconds (0: none).
    pub max_cpu_seconds: u64,
    /// Pre-started workers waiting for tenants.
    pub pool_size: usize,
    /// A tenant worker with no decision for this long stops.
    pub idle_seconds: u64,
    /// A session worker with no decision for this long stops.
    pub session_idle_seconds: u64,
    /// Most session workers per tenant.
    pub max_sessions_per_tenant: usize,
    /// Most workers at once.
    pub max_workers: usize,
    /// Most decisions waiting for one worker (429 past it).
    pub max_pending: usize,
    /// Longest a worker may take to start.
    pub start_timeout_ms: u64,
    /// A decision unanswered this long after its deadline kills its worker.
    pub kill_grace_ms: u64,
    /// When set, a decision unanswered this long kills its worker, whatever
    /// the deadline.
    pub kill_after_ms: Option<u64>,
    /// First restart delay after a crash (doubles per crash in a row).
    pub backoff_initial_ms: u64,
    /// Longest restart delay.
    pub backoff_max_ms: u64,
    /// How long a decision waits for a restarting worker before 503.
    pub unavailable_wait_ms: u64,
    /// How often workers are health-checked.
    pub health_interval_seconds: u64,
}

impl Default for WorkersSection {
    fn default() -> Self {
        let d = tenet::SupervisorConfig::default();
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        Self {
            enabled: true,
            threads: d.command.threads,
            max_memory_bytes: d.command.max_memory_bytes,
            max_cpu_seconds: d.command.max_cpu_seconds,
            pool_size: d.pool_size,
            idle_seconds: d.idle_after.as_secs(),
            session_idle_seconds: d.session_idle_after.as_secs(),
            max_sessions_per_tenant: d.max_sessions_per_tenant,
            max_workers: d.max_workers,
            max_pending: d.max_pending,
            start_timeout_ms: ms(d.start_timeout),
            kill_grace_ms: ms(d.kill_grace),
            kill_after_ms: d.kill_after.map(ms),
            backoff_initial_ms: ms(d.backoff_initial),
            backoff_max_ms: ms(d.backoff_max),
            unavailable_wait_ms: ms(d.unavailable_wait),
            health_interval_seconds: d.health_interval.as_secs(),
        }
    }
}

/// `isolation.adaptive:` (see `tenet::AdaptiveConfig`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdaptiveSection {
    /// Move tenants that cross a threshold into their own worker.
    pub enabled: bool,
    /// The window the thresholds count over.
    pub window_seconds: u64,
    /// Deadline hits in the window (0: not counted).
    pub deadline_hits: u32,
    /// Memory-budget hits in the window (0: not counted).
    pub memory_hits: u32,
    /// Evaluation errors in the window (0: not counted).
    pub errors: u32,
    /// Share of the evaluation threads' time, 0–1 (0: not counted).
    pub cpu_share: f64,
    /// Move back to `none` this long after the move (unset: never).
    pub move_back_after_seconds: Option<u64>,
}

impl Default for AdaptiveSection {
    fn default() -> Self {
        let d = tenet::AdaptiveConfig::default();
        Self {
            enabled: false,
            window_seconds: d.window.as_secs(),
            deadline_hits: d.deadline_hits,
            memory_hits: d.memory_hits,
            errors: d.errors,
            cpu_share: d.cpu_share,
            move_back_after_seconds: d.move_back_after.map(|d| d.as_secs()),
        }
    }
}

impl IsolationSection {
    /// The host's rules (levels already checked).
    pub fn rules(&self) -> IsolationRules {
        let level = |s: &str| IsolationLevel::parse(s).unwrap_or_default();
        IsolationRules {
            default: level(&self.level),
            tenants: self
                .tenants
                .iter()
                .map(|(t, l)| (t.clone(), level(l)))
                .collect(),
        }
    }

    /// The supervisor's configuration.
    pub fn supervisor(&self) -> tenet::SupervisorConfig {
        let w = &self.workers;
        let mut config = tenet::SupervisorConfig::default();
        config.command.threads = w.threads.max(1);
        config.command.max_memory_bytes = w.max_memory_bytes;
        config.command.max_cpu_seconds = w.max_cpu_seconds;
        config.pool_size = w.pool_size;
        config.idle_after = Duration::from_secs(w.idle_seconds);
        config.session_idle_after = Duration::from_secs(w.session_idle_seconds);
        config.max_sessions_per_tenant = w.max_sessions_per_tenant;
        config.max_workers = w.max_workers;
        config.max_pending = w.max_pending.max(1);
        config.start_timeout = Duration::from_millis(w.start_timeout_ms);
        config.kill_grace = Duration::from_millis(w.kill_grace_ms);
        config.kill_after = w.kill_after_ms.map(Duration::from_millis);
        config.backoff_initial = Duration::from_millis(w.backoff_initial_ms.max(1));
        config.backoff_max = Duration::from_millis(w.backoff_max_ms.max(w.backoff_initial_ms));
        config.unavailable_wait = Duration::from_millis(w.unavailable_wait_ms);
        config.health_interval = Duration::from_secs(w.health_interval_seconds.max(1));
        config
    }

    /// Adaptive isolation's configuration, when enabled.
    pub fn adaptive(&self, threads: usize) -> Option<tenet::AdaptiveConfig> {
        let a = &self.adaptive;
        a.enabled.then(|| tenet::AdaptiveConfig {
            window: Duration::from_secs(a.window_seconds.max(1)),
            deadline_hits: a.deadline_hits,
            memory_hits: a.memory_hits,
            errors: a.errors,
            cpu_share: a.cpu_share,
            threads: threads.max(1),
            move_back_after: a.move_back_after_seconds.map(Duration::from_secs),
        })
    }
}

impl Config {
    /// Checks `isolation:`; `invalid` builds the error for a key.
    pub(super) fn check_isolation(
        &self,
        invalid: &dyn Fn(&str, String) -> ConfigError,
    ) -> Result<(), ConfigError> {
        let i = &self.isolation;
        let level = |key: &str, value: &str| {
            IsolationLevel::parse(value)
                .ok_or_else(|| invalid(key, format!("{value:?}: expected none, tenant or session")))
        };
        let mut isolated = level("isolation.level", &i.level)? != IsolationLevel::None;
        for (tenant, value) in &i.tenants {
            isolated |=
                level(&format!("isolation.tenants.{tenant}"), value)? != IsolationLevel::None;
            let name = tenant.replace('*', "");
            if !name.is_empty() {
                tenet::validate_tenant(&name)
                    .map_err(|e| invalid(&format!("isolation.tenants.{tenant}"), e.to_string()))?;
            }
        }
        if (isolated || i.adaptive.enabled) && !i.workers.enabled {
            return Err(invalid(
                "isolation.workers.enabled",
                "isolated tenants and adaptive isolation need worker processes".into(),
            ));
        }
        if i.session_header.trim().is_empty()
            || axum::http::HeaderName::from_bytes(i.session_header.as_bytes()).is_err()
        {
            return Err(invalid(
                "isolation.session_header",
                format!("{:?} is not a header name", i.session_header),
            ));
        }
        if !(0.0..=1.0).contains(&i.adaptive.cpu_share) {
            return Err(invalid(
                "isolation.adaptive.cpu_share",
                format!("{} is not between 0 and 1", i.adaptive.cpu_share),
            ));
        }
        Ok(())
    }
}
