//! One tenant's latency while another hammers a slow policy (the bulkhead
//! issue's fair-share target: tenant B's p50 within 2x of its unloaded
//! value while 8 clients loop on tenant A's deadline-bound policy).
//!
//! Tenant `payments` (the example bundle, alice's refund) is measured alone,
//! then while 8 tasks loop on tenant `slow`, whose policy only the deadline
//! stops (fixtures/policies/hostile/busy-loop.rego, 50 ms deadline); once
//! with the evaluation pool's fair share on (the default) and once off
//! (arrival order), in one run, so the ratios compare like with like on a
//! noisy machine. Results in BENCHMARKS.md.
//!
//! `cargo bench -p tenet-host --bench noisy_neighbour`;
//! `TENET_BENCH_SAMPLES` sets the decisions measured per phase (default
//! 2,000).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use support::copy_dir;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tenet_bundle::Limits;
use tenet_host::{FairShareConfig, Host, HostConfig, SourceTemplate};
use tenet_policy::{EvalLimits, Input};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Bundles `payments` (the example) and `slow` (the busy loop) under one
/// temporary directory.
fn bundles() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    let payments = repo().join("examples/bundles/payments");
    copy_dir(&payments, &tmp.path().join("payments"));
    let slow = tmp.path().join("slow");
    std::fs::create_dir_all(&slow).unwrap();
    std::fs::copy(
        repo().join("fixtures/policies/hostile/busy-loop.rego"),
        slow.join("policy.rego"),
    )
    .unwrap();
    tmp
}

fn host(root: &Path, fair: bool) -> Host {
    let template = format!("{}/{{tenant}}", root.display());
    Host::new(
        HostConfig {
            eval_limits: EvalLimits {
                deadline: Duration::from_millis(50),
                ..EvalLimits::default()
            },
            fair_share: FairShareConfig {
                enabled: fair,
                ..FairShareConfig::default()
            },
            ..HostConfig::default()
        },
        Arc::new(SourceTemplate::new(template, Limits::default()).unwrap()),
    )
}

/// Latencies of `n` sequential payments decisions (fewer if `within` runs
/// out first), sorted, in µs.
async fn measure(host: &Host, input: &Input, n: usize, within: Duration) -> Vec<u64> {
    let mut took = Vec::with_capacity(n);
    let until = Instant::now() + within;
    while took.len() < n && Instant::now() < until {
        let start = Instant::now();
        let d = host
            .decide("payments", "payments/authz/allow", input)
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

struct Phase {
    p50: u64,
    p99: u64,
    n: usize,
}

async fn run(root: &Path, fair: bool, samples: usize) -> (Phase, Phase, u64) {
    let host = host(root, fair);
    let _a = host.acquire("slow").unwrap();
    let _b = host.acquire("payments").unwrap();
    let text =
        std::fs::read_to_string(repo().join("examples/inputs/payments/alice-refund.json")).unwrap();
    let input = Input::from_json(&text, &Default::default()).unwrap();
    // Warm both tenants (the slow one to its deadline).
    measure(&host, &input, 200, Duration::from_secs(10)).await;
    let _ = host.decide("slow", "hostile/x", &Input::none()).await;
    let alone = measure(&host, &input, samples, Duration::from_secs(30)).await;

    let stop = Arc::new(AtomicBool::new(false));
    let hammered = Arc::new(AtomicU64::new(0));
    let clients: Vec<_> = (0..8)
        .map(|_| {
            let (host, stop, hammered) = (host.clone(), stop.clone(), hammered.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let _ = host.decide("slow", "hostile/x", &Input::none()).await;
                    hammered.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Fewer samples under load, and at most 15 s: in arrival order each
    // waits for several slow evaluations.
    let loaded = measure(&host, &input, samples / 4, Duration::from_secs(15)).await;
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.await.unwrap();
    }
    let phase = |s: &[u64]| Phase {
        p50: pct(s, 0.5),
        p99: pct(s, 0.99),
        n: s.len(),
    };
    (
        phase(&alone),
        phase(&loaded),
        hammered.load(Ordering::Relaxed),
    )
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else is taken.
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
    println!("payments decisions while 8 clients loop on a 50 ms deadline-bound policy");
    println!(
        "{:<14} {:>10} {:>10} {:>12} {:>12} {:>8} {:>9} {:>11}",
        "pool",
        "alone p50",
        "alone p99",
        "loaded p50",
        "loaded p99",
        "samples",
        "p50 x",
        "slow evals"
    );
    for fair in [true, false] {
        let (alone, loaded, hammered) = rt.block_on(run(tmp.path(), fair, samples));
        println!(
            "{:<14} {:>8}µs {:>8}µs {:>10}µs {:>10}µs {:>8} {:>8.1}x {:>11}",
            if fair { "fair share" } else { "arrival order" },
            alone.p50,
            alone.p99,
            loaded.p50,
            loaded.p99,
            loaded.n,
            loaded.p50 as f64 / alone.p50.max(1) as f64,
            hammered
        );
    }
}
