//! The bulkhead: tenants whose evaluations must not share a fate with the
//! others run in worker processes. Isolation levels (`none`, `tenant`,
//! `session`) are the host's ([`tenet_host::IsolationLevel`]); this crate
//! is where isolated evaluations go.
//!
//! - `protocol`: the length-framed, versioned messages between host and
//!   worker.
//! - `worker`: the worker process's loop (`tenet worker`, `tenet-worker`).
//! - `process`: one started worker and its request channel.
//! - `supervisor`: worker slots per tenant and session, lifecycle, restarts
//!   with backoff, deadline kills, health checks, idle stops, the warm
//!   pool; the host's [`tenet_host::Offload`].
//! - `adaptive`: moving misbehaving tenants into workers on their own.
//! - `limits`: setrlimit, the parent-death signal, cgroup detection.
//! - `config`, `report`: settings and what the admin API shows.
//!
//! It knows nothing of HTTP; the server wires it to the host.

mod adaptive;
mod batch;
mod config;
mod limits;
mod process;
pub mod protocol;
mod report;
mod supervisor;
pub mod worker;

pub use adaptive::{Adaptive, AdaptiveConfig};
pub use config::SupervisorConfig;
pub use limits::{
    cgroup_v2_delegation, rss_bytes, set_transparent_huge_pages, transparent_huge_pages,
};
pub use process::WorkerCommand;
pub use report::{WorkerReport, WorkerState, WorkersReport};
pub use supervisor::Supervisor;
pub use worker::{run as run_worker, WorkerArgs, WorkerError};

/// Parses the worker's own arguments (`--threads N --stack-bytes N
/// --max-memory-bytes N --max-cpu-seconds N --parent-pid N`), as the
/// supervisor passes them.
pub fn parse_worker_args<I: IntoIterator<Item = String>>(args: I) -> Result<WorkerArgs, String> {
    let mut parsed = WorkerArgs {
        threads: 1,
        stack_bytes: 8 << 20,
        ..WorkerArgs::default()
    };
    let mut args = args.into_iter();
    while let Some(flag) = args.next() {
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let number = || {
            value
                .parse::<u64>()
                .map_err(|e| format!("{flag} {value}: {e}"))
        };
        match flag.as_str() {
            "--threads" => parsed.threads = number()? as usize,
            "--stack-bytes" => parsed.stack_bytes = number()? as usize,
            "--max-memory-bytes" => parsed.max_memory_bytes = number()?,
            "--max-cpu-seconds" => parsed.max_cpu_seconds = number()?,
            "--parent-pid" => parsed.parent_pid = Some(number()? as u32),
            other => return Err(format!("unknown worker argument {other}")),
        }
    }
    Ok(parsed)
}
