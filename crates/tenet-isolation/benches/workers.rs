//! What a worker process costs and buys (the bulkhead issue's targets):
//!
//! 1. the latency a worker adds to a decision (payments, alice's refund,
//!    sequential) against the same decision in the host process;
//! 2. worker start to first decision (a new tenant at level `tenant`, no
//!    warm pool: start, greet, compile, decide), and the same with a warm
//!    pool;
//! 3. the resident memory of an idle worker holding payments;
//! 4. tenant B's (payments) latency while 8 clients loop on tenant A's
//!    deadline-bound policy (fixtures/policies/hostile/busy-loop.rego,
//!    50 ms), with A at level `none` (fair shares) and at `tenant`;
//! 5. a batch of 100 payments decisions for a tenant in a worker: one
//!    `Host::decide_batch` (one request to the worker) against 100
//!    `Host::decide` one after the other (what batches did before), and
//!    the same batch in the host process.
//!
//! All in one run, so ratios compare like with like on a noisy machine.
//! Transparent huge pages are off, as `tenet serve` sets them
//! (`TENET_BENCH_THP=on` leaves them on).
//! `cargo bench -p tenet-isolation --bench workers`; `TENET_BENCH_SAMPLES`
//! sets the decisions per phase (default 2,000). Results in BENCHMARKS.md.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tenet_host::{Host, HostConfig, IsolationLevel, IsolationRules, SourceTemplate};
use tenet_isolation::{Supervisor, SupervisorConfig, WorkerCommand};
use tenet_policy::{EvalLimits, Input};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// `payments`, `payments-iso`, `fresh-0..39` (payments copies) and `slow`.
fn bundles() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    let payments = repo().join("examples/bundles/payments");
    for name in ["payments", "payments-iso"] {
        copy_dir(&payments, &tmp.path().join(name));
    }
    for i in 0..40 {
        copy_dir(&payments, &tmp.path().join(format!("fresh-{i}")));
    }
    let slow = tmp.path().join("slow");
    std::fs::create_dir_all(&slow).unwrap();
    std::fs::copy(
        repo().join("fixtures/policies/hostile/busy-loop.rego"),
        slow.join("policy.rego"),
    )
    .unwrap();
    tmp
}

/// The worker binary next to this bench (`cargo bench` builds it).
fn worker_binary() -> PathBuf {
    let bench = std::env::current_exe().unwrap();
    let dir = bench.parent().unwrap().parent().unwrap();
    let binary = dir.join("tenet-worker");
    assert!(
        binary.exists(),
        "{} is missing: run `cargo build --release -p tenet-isolation` first",
        binary.display()
    );
    binary
}

fn setup(root: &Path, levels: &[(&str, IsolationLevel)], pool_size: usize) -> (Host, Supervisor) {
    let template = format!("{}/{{tenant}}", root.display());
    let host = Host::new(
        HostConfig {
            eval_limits: EvalLimits {
                deadline: Duration::from_millis(50),
                ..EvalLimits::default()
            },
            isolation: IsolationRules {
                default: IsolationLevel::None,
                tenants: levels
                    .iter()
                    .map(|(t, l)| (t.to_string(), *l))
                    .collect::<BTreeMap<_, _>>(),
            },
            on_demand: true,
            ..HostConfig::default()
        },
        Arc::new(SourceTemplate::new(template, Default::default()).unwrap()),
    );
    let supervisor = Supervisor::new(
        SupervisorConfig {
            command: WorkerCommand {
                program: worker_binary(),
                args: Vec::new(),
                threads: 2,
                stack_bytes: 8 << 20,
                max_memory_bytes: 0,
                max_cpu_seconds: 0,
            },
            pool_size,
            ..SupervisorConfig::default()
        },
        None,
    );
    supervisor.attach(&host);
    (host, supervisor)
}

fn alice() -> Input {
    let text =
        std::fs::read_to_string(repo().join("examples/inputs/payments/alice-refund.json")).unwrap();
    Input::from_json(&text, &Default::default()).unwrap()
}

async fn measure(host: &Host, tenant: &str, n: usize, within: Duration) -> Vec<u64> {
    let input = alice();
    let mut took = Vec::with_capacity(n);
    let until = Instant::now() + within;
    while took.len() < n && Instant::now() < until {
        let start = Instant::now();
        let d = host
            .decide(tenant, "payments/authz/allow", &input)
            .await
            .unwrap();
        took.push(start.elapsed().as_micros() as u64);
        assert_eq!(d.result, Some(serde_json::json!(true)));
    }
    took.sort_unstable();
    took
}

fn pct(sorted: &[u64], p: f64) -> u64 {
    sorted[((sorted.len() - 1) as f64 * p) as usize]
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

async fn overhead(root: &Path, samples: usize) {
    let (host, supervisor) = setup(root, &[("payments-iso", IsolationLevel::Tenant)], 0);
    measure(&host, "payments", 300, Duration::from_secs(10)).await;
    measure(&host, "payments-iso", 300, Duration::from_secs(10)).await;
    let local = measure(&host, "payments", samples, Duration::from_secs(30)).await;
    let worker = measure(&host, "payments-iso", samples, Duration::from_secs(30)).await;
    println!("1. payments allow, sequential, {samples} decisions each");
    println!(
        "   in the host process: p50 {} µs, p99 {} µs",
        pct(&local, 0.5),
        pct(&local, 0.99)
    );
    println!(
        "   in a worker:         p50 {} µs, p99 {} µs (added at p50: {} µs)",
        pct(&worker, 0.5),
        pct(&worker, 0.99),
        pct(&worker, 0.5).saturating_sub(pct(&local, 0.5))
    );
    let pid = supervisor
        .report()
        .workers
        .iter()
        .find(|w| w.tenant == "payments-iso")
        .and_then(|w| w.pid)
        .unwrap();
    println!(
        "3. RSS of the idle worker holding payments: {} KiB",
        rss_kib(pid)
    );
    supervisor.shutdown().await;
}

async fn batches(root: &Path, rounds: usize) {
    const INPUTS: usize = 100;
    let (host, supervisor) = setup(root, &[("payments-iso", IsolationLevel::Tenant)], 0);
    let inputs = vec![alice(); INPUTS];
    let path = "payments/authz/allow";
    let (mut batched, mut one_by_one, mut local) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..rounds + 5 {
        let start = Instant::now();
        let answers = host
            .decide_batch("payments-iso", None, path, &inputs)
            .await
            .unwrap();
        let b = start.elapsed().as_micros() as u64;
        assert!(answers
            .iter()
            .all(|a| a.as_ref().unwrap().result == Some(serde_json::json!(true))));
        let start = Instant::now();
        for input in &inputs {
            host.decide("payments-iso", path, input).await.unwrap();
        }
        let o = start.elapsed().as_micros() as u64;
        let start = Instant::now();
        host.decide_batch("payments", None, path, &inputs)
            .await
            .unwrap();
        let l = start.elapsed().as_micros() as u64;
        if round >= 5 {
            batched.push(b);
            one_by_one.push(o);
            local.push(l);
        }
    }
    for v in [&mut batched, &mut one_by_one, &mut local] {
        v.sort_unstable();
    }
    println!("5. a batch of {INPUTS} payments decisions, {rounds} rounds, p50 per batch");
    println!(
        "   in a worker, one request:      {} µs ({} µs per input)",
        pct(&batched, 0.5),
        pct(&batched, 0.5) / INPUTS as u64
    );
    println!(
        "   in a worker, {INPUTS} requests:     {} µs ({} µs per input)",
        pct(&one_by_one, 0.5),
        pct(&one_by_one, 0.5) / INPUTS as u64
    );
    println!(
        "   in the host process:           {} µs ({} µs per input)",
        pct(&local, 0.5),
        pct(&local, 0.5) / INPUTS as u64
    );
    supervisor.shutdown().await;
}

async fn cold_starts(root: &Path) {
    for pool_size in [0, 2] {
        let levels: Vec<(String, IsolationLevel)> = (0..20)
            .map(|i| {
                (
                    format!("fresh-{}", i + pool_size * 10),
                    IsolationLevel::Tenant,
                )
            })
            .collect();
        let levels: Vec<(&str, IsolationLevel)> =
            levels.iter().map(|(t, l)| (t.as_str(), *l)).collect();
        let (host, supervisor) = setup(root, &levels, pool_size);
        let input = alice();
        let mut took = Vec::new();
        for (tenant, _) in &levels {
            // The tenant's bundle is loaded in the host first: what is
            // measured is the worker's part (start or hand-out, greeting,
            // compile, first decision).
            let lease = host.acquire(tenant).unwrap();
            while host.tenant(tenant).and_then(|t| t.revision).is_none() {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            // Let the warm pool refill between tenants.
            tokio::time::sleep(Duration::from_millis(50)).await;
            let start = Instant::now();
            host.decide(tenant, "payments/authz/allow", &input)
                .await
                .unwrap();
            took.push(start.elapsed().as_micros() as u64);
            drop(lease);
        }
        took.sort_unstable();
        let report = supervisor.report();
        println!(
            "2. worker start to first decision, warm pool {pool_size}: p50 {:.1} ms, max {:.1} ms ({} tenants; process start and greeting {:.1} ms on average)",
            pct(&took, 0.5) as f64 / 1000.0,
            *took.last().unwrap() as f64 / 1000.0,
            took.len(),
            report.start_seconds * 1000.0 / report.starts.max(1) as f64
        );
        supervisor.shutdown().await;
    }
}

async fn hammered(root: &Path, samples: usize) {
    println!("4. payments p50 while 8 clients loop on `slow` (50 ms deadline)");
    for level in [IsolationLevel::None, IsolationLevel::Tenant] {
        let (host, supervisor) = setup(root, &[("slow", level)], 0);
        measure(&host, "payments", 300, Duration::from_secs(10)).await;
        let _ = host.decide("slow", "hostile/x", &Input::none()).await;
        let alone = measure(&host, "payments", samples, Duration::from_secs(30)).await;
        let stop = Arc::new(AtomicBool::new(false));
        let slow_done = Arc::new(AtomicU64::new(0));
        let clients: Vec<_> = (0..8)
            .map(|_| {
                let (host, stop, done) = (host.clone(), stop.clone(), slow_done.clone());
                tokio::spawn(async move {
                    while !stop.load(Ordering::Relaxed) {
                        let _ = host.decide("slow", "hostile/x", &Input::none()).await;
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(300)).await;
        let loaded = measure(&host, "payments", samples / 4, Duration::from_secs(15)).await;
        stop.store(true, Ordering::Relaxed);
        for c in clients {
            c.await.unwrap();
        }
        println!(
            "   A at {:<7} alone p50 {} µs p99 {} µs; loaded p50 {} µs p99 {} µs ({:.1}x); slow evaluations {}",
            level.as_str(),
            pct(&alone, 0.5),
            pct(&alone, 0.99),
            pct(&loaded, 0.5),
            pct(&loaded, 0.99),
            pct(&loaded, 0.5) as f64 / pct(&alone, 0.5).max(1) as f64,
            slow_done.load(Ordering::Relaxed)
        );
        supervisor.shutdown().await;
    }
}

fn main() {
    // As `tenet serve` runs by default (host.transparent_huge_pages:
    // false; its workers inherit it); TENET_BENCH_THP=on leaves them as
    // the system sets them.
    if std::env::var("TENET_BENCH_THP").as_deref() != Ok("on") {
        let _ = tenet_isolation::set_transparent_huge_pages(false);
    }
    let samples = std::env::var("TENET_BENCH_SAMPLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000usize);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let tmp = bundles();
    rt.block_on(async {
        overhead(tmp.path(), samples).await;
        cold_starts(tmp.path()).await;
        hammered(tmp.path(), samples).await;
        batches(tmp.path(), (samples / 20).max(20)).await;
    });
}
