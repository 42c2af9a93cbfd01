//! The polling scheduler's cost at 10,000 tenants: every tenant is polled
//! every second (min = max = 1 s, so about 10,000 polls/s) and every poll
//! answers "not modified", so what is measured is the scheduler and the
//! load path around a fetch (queue, per-host bound, task, semaphore, status,
//! timeout), not a transport. Process CPU time (user + system, from
//! /proc/self/stat) over a window gives the cost per poll, extrapolated to
//! 10,000 tenants at OPA's default polling delays.
//!
//! Run: `cargo bench -p tenet-host --bench polling` (window length in
//! seconds from `TENET_BENCH_SECS`, default 10). Linux only (reads /proc).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tenet_bundle::{BundleError, BundleFile, BundleSource, Fetched, Payload, VersionTag};
use tenet_host::{Host, HostConfig, PollingConfig, SourceFactory};

const TENANTS: usize = 10_000;

/// A trivial source (this is a benchmark, not a test): the first fetch of
/// each tenant returns one small bundle, every later one "not modified".
#[derive(Debug)]
struct NotModified {
    tenant: String,
    fetches: Arc<AtomicU64>,
}

#[async_trait::async_trait]
impl BundleSource for NotModified {
    async fn fetch(&self, known: Option<&VersionTag>) -> Result<Fetched, BundleError> {
        self.fetches.fetch_add(1, Ordering::Relaxed);
        if known.is_some() {
            return Ok(Fetched::NotModified);
        }
        Ok(Fetched::Bundle {
            payload: Payload::Files(vec![BundleFile {
                path: "policy.rego".into(),
                bytes: b"package app\n\nallow if input.user == \"alice\"\n".to_vec(),
            }]),
            version: VersionTag("v1".into()),
        })
    }

    fn location(&self) -> String {
        format!("bench://{}", self.tenant)
    }
}

#[derive(Debug)]
struct Sources {
    fetches: Arc<AtomicU64>,
}

impl SourceFactory for Sources {
    fn source(&self, tenant: &str) -> Arc<dyn BundleSource> {
        Arc::new(NotModified {
            tenant: tenant.to_string(),
            fetches: self.fetches.clone(),
        })
    }
}

/// User + system CPU time of this process.
fn cpu_time() -> Duration {
    // Fields after the command name (which may hold spaces) start at field
    // 3; utime and stime are fields 14 and 15, in clock ticks (USER_HZ,
    // 100 on Linux).
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<u64> = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|f| f.parse().ok())
        .collect();
    Duration::from_millis(fields.iter().sum::<u64>() * 10)
}

/// Runs `TENANTS` tenants with `polling` for `window` after they are all
/// active; returns (polls, CPU time) over the window.
async fn run(polling: bool, window: Duration) -> (u64, Duration) {
    let fetches = Arc::new(AtomicU64::new(0));
    let config = HostConfig {
        sweep_interval: Duration::from_secs(3600),
        load_concurrency: 64,
        polling: PollingConfig {
            enabled: polling,
            min_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(1),
            watch: false,
            ..PollingConfig::default()
        },
        ..HostConfig::default()
    };
    let host = Host::new(
        config,
        Arc::new(Sources {
            fetches: fetches.clone(),
        }),
    );
    let tenants: Vec<String> = (0..TENANTS).map(|i| format!("tenant-{i}")).collect();
    let change = host.set_references(&tenants);
    assert!(change.refused.is_empty());
    while host.stats().activations < TENANTS as u64 {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Let the first polls spread out before measuring.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (f0, c0, t0) = (fetches.load(Ordering::Relaxed), cpu_time(), Instant::now());
    tokio::time::sleep(window).await;
    let (f1, c1, elapsed) = (fetches.load(Ordering::Relaxed), cpu_time(), t0.elapsed());
    let polls = f1 - f0;
    let rate = polls as f64 / elapsed.as_secs_f64();
    eprintln!(
        "  polling {}: {polls} polls in {:.1} s ({rate:.0}/s), CPU {:.2} s ({:.1}% of one core)",
        if polling { "on " } else { "off" },
        elapsed.as_secs_f64(),
        (c1 - c0).as_secs_f64(),
        100.0 * (c1 - c0).as_secs_f64() / elapsed.as_secs_f64(),
    );
    drop(host);
    (polls, c1 - c0)
}

fn main() {
    let secs: u64 = std::env::var("TENET_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let window = Duration::from_secs(secs);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| {
            eprintln!("cannot build a runtime: {e}");
            std::process::exit(1)
        });
    println!("command: cargo bench -p tenet-host --bench polling (TENET_BENCH_SECS={secs})");
    println!(
        "{TENANTS} tenants, polling min = max = 1 s, every poll answers NotModified \
         (a trivial in-process source: scheduler and load path only, no transport)"
    );
    let (idle_polls, idle_cpu) = runtime.block_on(run(false, window));
    let (polls, cpu) = runtime.block_on(run(true, window));
    let rate = polls as f64 / window.as_secs_f64();
    let per_poll = cpu.saturating_sub(idle_cpu).as_secs_f64() / polls.max(1) as f64;
    println!(
        "polls/s: {rate:.0}; CPU per poll: {:.1} µs (idle host baseline subtracted: {:.2} s CPU, {idle_polls} polls)",
        per_poll * 1e6,
        idle_cpu.as_secs_f64()
    );
    for (label, interval) in [
        ("every 60 s", 60.0),
        ("OPA default 60-120 s (mean 90 s)", 90.0),
    ] {
        let polls_per_sec = TENANTS as f64 / interval;
        println!(
            "10,000 tenants polled {label}: {polls_per_sec:.0} polls/s = {:.3}% of one core",
            100.0 * polls_per_sec * per_poll
        );
    }
}
