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
//! every decision in the decision logs and uploads them (every 1–2 s, to a
//! collector route of the first listener), and the no-op route. Client and server share the machine's
//! two cores, so compare ratios within one run.
//!
//! Run: `cargo bench -p tenet-server --bench http` (`-- --secs N` per level;
//! `TENET_BENCH_INLINE=1` evaluates on the async workers instead of the
//! evaluation pool; `TENET_BENCH_POOL=1` turns inline turns off, so every
//! evaluation is handed to the pool).
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
        p50: pct(0.50),
        p99: pct(0.99),
        errors,
    }
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
        // The same host behind a listener that logs every decision.
        let logs = tenet_telemetry::DecisionLogs::new(Default::default());
        let uploads = tenet_telemetry::UploadConfig {
            url: base.clone(),
            resource: "/bench/logs".into(),
            min_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(2),
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
        println!("| target | concurrency | rps | p50 | p99 | errors | rps vs no-op |");
        println!("|---|---|---|---|---|---|---|");
        for concurrency in [1, 4, 16, 64] {
            let ceiling = drive(&client, noop.clone(), body.clone(), concurrency, secs).await;
            for (name, urls) in [
                ("no-op handler", None),
                ("1 tenant", Some(&one)),
                ("1,000 tenants", Some(&many)),
                ("1 tenant, decision logs", Some(&one_logged)),
            ] {
                let level = match urls {
                    None => Level { ..ceiling },
                    Some(urls) => {
                        drive(&client, urls.clone(), body.clone(), concurrency, secs).await
                    }
                };
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
    });
}
