//! Load harness for the HTTP decision API (results in BENCHMARKS.md).
//!
//! Starts the real server stack (`tenet_server::app`) in-process on a
//! loopback port, plus one extra route that answers without deciding (the
//! no-op ceiling: same listener, router, body handling and JSON response,
//! no policy evaluation). A real HTTP client (reqwest, HTTP/1.1 keep-alive)
//! then drives each target at concurrency 1, 4, 16 and 64 for a fixed time
//! and reports requests per second, p50 and p99. Targets: one tenant, 1,000
//! tenants (round-robin, all on the payments bundle, so the compiled policy
//! is shared), one tenant through a second listener whose state records
//! every decision in the decision logs and uploads them (every 0.25–0.5 s,
//! to a collector route of the first listener; the target's time runs until
//! its last event is uploaded), and the no-op route. Client and server
//! share the machine's two cores, so compare ratios within one run.
//!
//! `TENET_BENCH_PAIRS=N` instead alternates the one-tenant target without
//! and with decision logs N times (at concurrency 16, or
//! `TENET_BENCH_CONCURRENCY`) and reports the ratio and the CPU time per
//! request of each: the decision-log cost, with the machine's noise moving
//! both sides of a pair alike. With `TENET_BENCH_PAIRS_OF=noop` the pairs
//! are the no-op handler and the one-tenant target: what a decision costs
//! against the ceiling, read the same way.
//!
//! Run: `cargo bench -p tenet-server --bench http` (`-- --secs N` per level;
//! `TENET_BENCH_INLINE=1` evaluates on the async workers instead of the
//! evaluation pool; `TENET_BENCH_POOL=1` turns inline turns off, so every
//! evaluation is handed to the pool; `TENET_BENCH_ONLY=<text>` drives only
//! the targets whose name contains it and `TENET_BENCH_CONCURRENCY=16` only
//! that level, for a profiler: the no-op ceiling is measured regardless).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use axum::routing::post;
use axum::Json;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tenet::{BundleSource, DirectorySource, Host, HostConfig, Limits, SourceFactory};

#[derive(Debug)]
struct OneBundle(PathBuf);

impl SourceFactory for OneBundle {
    fn source(&self, _tenant: &str) -> Arc<dyn BundleSource> {
        Arc::new(DirectorySource::new(self.0.clone(), Limits::default()))
    }
}

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples")
}

struct Level {
    rps: f64,
    /// Requests answered.
    requests: usize,
    /// Seconds they took.
    elapsed: f64,
    p50: Duration,
    p99: Duration,
    errors: u64,
}

async fn drive(
    client: &reqwest::Client,
    urls: Arc<Vec<String>>,
    body: Arc<Value>,
    concurrency: usize,
    secs: f64,
) -> Level {
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let started = Instant::now();
    let tasks: Vec<_> = (0..concurrency)
        .map(|worker| {
            let (client, urls, body) = (client.clone(), urls.clone(), body.clone());
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut errors = 0u64;
                let mut i = worker;
                while Instant::now() < deadline {
                    let url = &urls[i % urls.len()];
                    i += concurrency;
                    let t = Instant::now();
                    match client.post(url).json(&*body).send().await {
                        Ok(r) if r.status().is_success() => {
                            let _ = r.bytes().await;
                            latencies.push(t.elapsed());
                        }
                        _ => errors += 1,
                    }
                }
                (latencies, errors)
            })
        })
        .collect();
    let mut all = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (l, e) = t.await.unwrap();
        all.extend(l);
        errors += e;
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.sort();
    let pct = |p: f64| {
        all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    Level {
        rps: all.len() as f64 / elapsed,
        requests: all.len(),
        elapsed,
        p50: pct(0.50),
        p99: pct(0.99),
        errors,
    }
}

/// CPU time this process has used (user and system), in seconds, from
/// `/proc/self/stat` (clock ticks of 10 ms: enough over a second on two
/// cores). Client and server share the process, so this is the CPU of a
/// request at both ends.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which may hold spaces) in parentheses.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime: fields 14 and 15 of the line, 12 and 13 after `)`.
    (ticks(11) + ticks(12)) / 100.0
}

/// Waits until `logged` decisions have left the decision logs (uploaded or
/// dropped); the seconds it waited. The logged target's time includes
/// them, so every event it logged is encoded, gzipped and sent inside it.
async fn drain(recorder: &tenet_telemetry::Recorder, logged: u64) -> f64 {
    let started = Instant::now();
    recorder.flush().await;
    recorder.logs().flush();
    let gone = || {
        recorder
            .logs()
            .stats()
            .iter()
            .map(|t| t.uploaded + t.dropped)
            .sum::<u64>()
    };
    while gone() < logged && started.elapsed() < Duration::from_secs(60) {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    assert!(gone() >= logged, "decision logs did not drain in 60 s");
    started.elapsed().as_secs_f64()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let secs: f64 = args
        .iter()
        .position(|a| a == "--secs")
        .and_then(|i| args.get(i + 1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(3.0);
    // `cargo test --benches` runs this with `--test`; do nothing then.
    if args.iter().any(|a| a == "--test") {
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let host = Host::new(
            HostConfig {
                on_demand: true,
                // TENET_BENCH_INLINE=1 decides on the tokio worker instead
                // of the evaluation pool, to measure what the pool costs.
                eval_inline: std::env::var_os("TENET_BENCH_INLINE").is_some(),
                // TENET_BENCH_POOL=1 hands every evaluation to the pool
                // (no inline turns for cheap tenants), for comparison.
                fair_share: tenet::FairShareConfig {
                    inline: std::env::var_os("TENET_BENCH_POOL").is_none(),
                    ..Default::default()
                },
                ..HostConfig::default()
            },
            Arc::new(OneBundle(examples().join("bundles/payments"))),
        );
        let state = |host: Host| {
            tenet_server::AppState::new(
                host,
                tenet_server::HeaderName::from_static("x-tenant-id"),
                "system/main".into(),
                10 << 20,
            )
        };
        let app = tenet_server::app(state(host.clone()))
            .merge(axum::Router::new().route(
                "/bench/noop",
                post(|Json(_body): Json<Value>| async { Json(json!({"result": true})) }),
            ))
            .merge(axum::Router::new().route(
                "/bench/logs",
                post(|_body: axum::body::Bytes| async { axum::http::StatusCode::NO_CONTENT }),
            ));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        // The same host behind a listener that logs every decision. Its
        // buffer holds what arrives between two uploads (OPA's default
        // 10,000 events would drop most of them at this rate, and a dropped
        // event is never gzipped or sent): every event is uploaded, and the
        // target's time runs until the last one is (see `drain`).
        let logs = tenet_telemetry::DecisionLogs::new(tenet_telemetry::DecisionLogConfig {
            max_events: 1_000_000,
            max_bytes: 1 << 30,
            max_total_bytes: 1 << 30,
        });
        let uploads = tenet_telemetry::UploadConfig {
            url: base.clone(),
            resource: "/bench/logs".into(),
            // Frequent rounds: the work per event is the same whatever the
            // delay (chunks of `upload_size_limit_bytes`), but the backlog
            // `drain` waits for at the end of a run is shorter, so the
            // target's time is the machine's work and not its wait for the
            // last round.
            min_delay: Duration::from_millis(250),
            max_delay: Duration::from_millis(500),
            ..Default::default()
        };
        let http = tenet_source::HttpClient::new(&Default::default(), Limits::default()).unwrap();
        let _uploading = logs.start_upload(http, uploads);
        let recorder = tenet_telemetry::Recorder::start(
            logs,
            Default::default(),
            Arc::new(tenet_server::decision_log::HostLogRules(host.clone())),
        );
        let stats = host.clone();
        let mut logged = state(host);
        let log_stats = recorder.logs().clone();
        let drain_recorder = recorder.clone();
        logged.decision_logs = Some(recorder);
        let logged_app = tenet_server::app(logged);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let logged_base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, logged_app).await });

        let input: Value = serde_json::from_str(
            &std::fs::read_to_string(examples().join("inputs/payments/alice-refund.json")).unwrap(),
        )
        .unwrap();
        let body = Arc::new(json!({ "input": input }));
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(128)
            .build()
            .unwrap();
        let path = "v1/data/payments/authz/allow";
        let one = Arc::new(vec![format!("{base}/tenants/payments/{path}")]);
        let many = Arc::new(
            (0..1000)
                .map(|i| format!("{base}/tenants/t{i}/{path}"))
                .collect::<Vec<_>>(),
        );
        let noop = Arc::new(vec![format!("{base}/bench/noop")]);
        let one_logged = Arc::new(vec![format!("{logged_base}/tenants/payments/{path}")]);
        // Warm up: load every tenant once.
        for url in many.iter().chain(one.iter()) {
            let r = client.post(url).json(&*body).send().await.unwrap();
            assert!(r.status().is_success(), "{url}: {}", r.status());
        }
        // Decisions of the logged target so far (warm-up: none).
        let mut logged_requests = 0u64;
        if let Ok(pairs) = std::env::var("TENET_BENCH_PAIRS") {
            // Decision logs on vs off, alternating, at one concurrency (16
            // unless set): a noisy machine moves both sides of a pair alike.
            let pairs: usize = pairs.parse().expect("TENET_BENCH_PAIRS: a number");
            let concurrency = std::env::var("TENET_BENCH_CONCURRENCY")
                .map_or(16, |c| c.parse().expect("TENET_BENCH_CONCURRENCY: a number"));
            // TENET_BENCH_PAIRS_OF=noop alternates the no-op handler and
            // the one-tenant target instead: #9's decisions ÷ no-op ratio.
            let of_noop = std::env::var("TENET_BENCH_PAIRS_OF").is_ok_and(|v| v == "noop");
            let (first, second, what) = if of_noop {
                (noop.clone(), one.clone(), "decisions")
            } else {
                (one.clone(), one_logged.clone(), "decision logs")
            };
            println!("| pair | without, rps | with {what}, rps (drain) | with ÷ without |");
            println!("|---|---|---|---|");
            let (mut off, mut on) = ((0usize, 0f64), (0usize, 0f64));
            let (mut off_cpu, mut on_cpu) = (0f64, 0f64);
            let mut ratios = Vec::new();
            for pair in 1..=pairs {
                let cpu = cpu_seconds();
                let a = drive(&client, first.clone(), body.clone(), concurrency, secs).await;
                let between = cpu_seconds();
                let b = drive(&client, second.clone(), body.clone(), concurrency, secs).await;
                let waited = if of_noop {
                    0.0
                } else {
                    logged_requests += b.requests as u64;
                    drain(&drain_recorder, logged_requests).await
                };
                (off_cpu, on_cpu) = (off_cpu + between - cpu, on_cpu + cpu_seconds() - between);
                let (a_rps, b_rps) = (a.rps, b.requests as f64 / (b.elapsed + waited));
                off = (off.0 + a.requests, off.1 + a.elapsed);
                on = (on.0 + b.requests, on.1 + b.elapsed + waited);
                ratios.push(b_rps / a_rps);
                println!(
                    "| {pair} | {a_rps:.0} | {b_rps:.0} ({:.0} ms) | {:.1} % |",
                    waited * 1e3,
                    100.0 * b_rps / a_rps
                );
            }
            ratios.sort_by(f64::total_cmp);
            println!(
                "\nAt concurrency {concurrency}: with ÷ without over all pairs {:.1} %, median pair {:.1} %",
                100.0 * (on.0 as f64 / on.1) / (off.0 as f64 / off.1),
                100.0 * ratios[ratios.len() / 2]
            );
            // CPU per request, client and server together (the drain's
            // uploads included): what throughput is when both cores are
            // busy, less moved by other guests than the wall clock.
            let (off_us, on_us) = (
                1e6 * off_cpu / off.0 as f64,
                1e6 * on_cpu / on.0 as f64,
            );
            println!(
                "CPU per request: without {off_us:.1} µs, with {what} {on_us:.1} µs ({:.1} µs more; without ÷ with {:.1} %)",
                on_us - off_us,
                100.0 * off_us / on_us
            );
            for t in log_stats.stats() {
                println!(
                    "Decision logs of {}: {} uploaded, {} dropped, {} buffered",
                    t.tenant, t.uploaded, t.dropped, t.buffered_events
                );
            }
            return;
        }
        println!("| target | concurrency | rps | p50 | p99 | errors | rps vs no-op |");
        println!("|---|---|---|---|---|---|---|");
        let only = std::env::var("TENET_BENCH_ONLY").ok();
        let levels: Vec<usize> = match std::env::var("TENET_BENCH_CONCURRENCY") {
            Ok(level) => vec![level.parse().expect("TENET_BENCH_CONCURRENCY: a number")],
            Err(_) => vec![1, 4, 16, 64],
        };
        for concurrency in levels {
            let ceiling = drive(&client, noop.clone(), body.clone(), concurrency, secs).await;
            for (name, urls) in [
                ("no-op handler", None),
                ("1 tenant", Some(&one)),
                ("1,000 tenants", Some(&many)),
                ("1 tenant, decision logs", Some(&one_logged)),
            ] {
                if only.as_deref().is_some_and(|o| !name.contains(o)) && urls.is_some() {
                    continue;
                }
                let mut level = match urls {
                    None => Level { ..ceiling },
                    Some(urls) => {
                        drive(&client, urls.clone(), body.clone(), concurrency, secs).await
                    }
                };
                if urls == Some(&one_logged) {
                    logged_requests += level.requests as u64;
                    let waited = drain(&drain_recorder, logged_requests).await;
                    level.elapsed += waited;
                    level.rps = level.requests as f64 / level.elapsed;
                }
                println!(
                    "| {name} | {concurrency} | {:.0} | {:.0} µs | {:.0} µs | {} | {:.0} % |",
                    level.rps,
                    level.p50.as_secs_f64() * 1e6,
                    level.p99.as_secs_f64() * 1e6,
                    level.errors,
                    100.0 * level.rps / ceiling.rps,
                );
            }
        }
        let s = stats.stats();
        println!(
            "\nInline evaluations: {}, cut off at the inline budget: {}",
            s.inline_evaluations, s.inline_overruns
        );
        // Events the logged target's buffer dropped (full between two
        // uploads) were encoded but never sent: a share that hides upload
        // cost.
        for t in log_stats.stats() {
            println!(
                "Decision logs of {}: {} uploaded, {} dropped, {} buffered",
                t.tenant, t.uploaded, t.dropped, t.buffered_events
            );
        }
    });
}
