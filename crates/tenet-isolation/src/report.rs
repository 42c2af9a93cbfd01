//! What the supervisor reports about its workers (the admin API's
//! `GET /v1/workers` and `/metrics`): lifecycle states, per-worker health,
//! and lifetime counters. Data only.

use serde::Serialize;
use std::collections::BTreeMap;
use std::time::SystemTime;

/// A worker's lifecycle state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkerState {
    /// Being started and greeted.
    Starting,
    /// Taking requests.
    Ready,
    /// Finishing its requests before it stops (idle, moved, shutdown).
    Draining,
    /// Stopped on purpose.
    Stopped,
    /// Exited or was killed unexpectedly (crash, deadline overrun, failed
    /// health check, failed start).
    Failed,
    /// Waiting out the restart delay after a failure.
    BackingOff,
}

impl WorkerState {
    /// Every state, for metrics.
    pub const ALL: [WorkerState; 6] = [
        Self::Starting,
        Self::Ready,
        Self::Draining,
        Self::Stopped,
        Self::Failed,
        Self::BackingOff,
    ];

    /// Its name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Starting => "starting",
            Self::Ready => "ready",
            Self::Draining => "draining",
            Self::Stopped => "stopped",
            Self::Failed => "failed",
            Self::BackingOff => "backing_off",
        }
    }
}

/// One worker slot (a tenant, or a tenant's session).
#[derive(Debug, Clone, Serialize)]
pub struct WorkerReport {
    /// The tenant.
    pub tenant: String,
    /// The session key, at level `session`.
    pub session: Option<String>,
    /// Its state.
    pub state: WorkerState,
    /// The current process, when there is one.
    pub pid: Option<u32>,
    /// Seconds since the current process started.
    pub uptime_seconds: Option<f64>,
    /// Restarts after failures.
    pub restarts: u64,
    /// Failures by type (`crash`, `killed_deadline`, `health`, `start`).
    pub errors: BTreeMap<String, u64>,
    /// The last failure.
    pub last_error: Option<String>,
    /// When its health was last confirmed (seconds since the Unix epoch).
    #[serde(serialize_with = "unix_seconds")]
    pub last_health_check: Option<SystemTime>,
    /// Its resident memory at the last health check, bytes.
    pub rss_bytes: Option<u64>,
    /// Requests waiting for its answers.
    pub in_flight: usize,
}

/// Every worker, totals, and lifetime counters.
#[derive(Debug, Clone, Default, Serialize)]
pub struct WorkersReport {
    /// Slots by state.
    pub totals: BTreeMap<&'static str, u64>,
    /// Each slot.
    pub workers: Vec<WorkerReport>,
    /// Started workers waiting in the warm pool.
    pub warm: usize,
    /// Times a slot entered each state.
    pub transitions: BTreeMap<&'static str, u64>,
    /// Failures by type, over all slots ever.
    pub errors: BTreeMap<String, u64>,
    /// Restarts after failures, over all slots ever.
    pub restarts: u64,
    /// Workers started, and the seconds their starts took in all.
    pub starts: u64,
    /// Sum of start durations, seconds.
    pub start_seconds: f64,
    /// Stops on purpose, and the seconds they took in all.
    pub stops: u64,
    /// Sum of stop durations, seconds.
    pub stop_seconds: f64,
    /// Sum of restart delays waited, seconds.
    pub backoff_seconds: f64,
    /// Batches sent to workers as one request each (`BatchDecide`).
    pub batches: u64,
    /// Decisions that waited for a worker's answer right now.
    pub queue_depth: usize,
    /// Tenants adaptive isolation moved into workers, with why.
    pub adaptive: BTreeMap<String, String>,
    /// Why cgroup v2 limits are or are not used.
    pub cgroup: String,
}

fn unix_seconds<S: serde::Serializer>(t: &Option<SystemTime>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => s.serialize_u64(
            t.duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
        ),
        None => s.serialize_none(),
    }
}
