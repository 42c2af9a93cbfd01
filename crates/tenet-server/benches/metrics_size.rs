//! How big `/metrics` gets as tenants accumulate (the telemetry issue's
//! cardinality cap: bounded by `server.max_tenant_labels`, not by the
//! number of tenants). An in-process host whose every tenant serves the
//! payments bundle (one compiled policy, shared) decides once for each of
//! 1,000, 10,000 and 100,000 tenants (a quarter of them ten times more, so
//! the busy ones are known), then `/metrics` is scraped over loopback HTTP:
//! its size, its distinct tenant labels and the time the scrape took.
//!
//! Run: `cargo bench -p tenet-server --bench metrics_size`. Results in
//! BENCHMARKS.md.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tenet::{BundleSource, DirectorySource, Host, HostConfig, Input, Limits, SourceFactory};

#[derive(Debug)]
struct OneBundle(PathBuf);

impl SourceFactory for OneBundle {
    fn source(&self, _tenant: &str) -> Arc<dyn BundleSource> {
        Arc::new(DirectorySource::new(self.0.clone(), Limits::default()))
    }
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
        let host = Host::new(
            HostConfig {
                on_demand: true,
                eval_inline: true,
                idle_timeout: Duration::from_secs(3600),
                ..HostConfig::default()
            },
            Arc::new(OneBundle(examples.join("bundles/payments"))),
        );
        let state = tenet_server::AppState::new(
            host.clone(),
            tenet_server::HeaderName::from_static("x-tenant-id"),
            "system/main".into(),
            1 << 20,
        );
        let app = tenet_server::app(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        let client = reqwest::Client::new();
        let text =
            std::fs::read_to_string(examples.join("inputs/payments/alice-refund.json")).unwrap();
        let input = Input::from_json(&text, &Default::default()).unwrap();
        println!(
            "{:>9} {:>14} {:>16} {:>12} {:>12}",
            "tenants", "scrape bytes", "tenant labels", "scrape ms", "decided in s"
        );
        let mut seen = 0usize;
        for target in [1_000usize, 10_000, 100_000] {
            let started = Instant::now();
            for i in seen..target {
                let tenant = format!("t{i}");
                let times = if i % 4 == 0 { 11 } else { 1 };
                for _ in 0..times {
                    host.decide(&tenant, "payments/authz/allow", &input)
                        .await
                        .unwrap();
                }
            }
            seen = target;
            let decided = started.elapsed();
            let scraped = Instant::now();
            let body = client
                .get(format!("http://{addr}/metrics"))
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            let took = scraped.elapsed();
            let labels: BTreeSet<&str> = body
                .lines()
                .filter_map(|l| l.split("tenant=\"").nth(1))
                .map(|rest| rest.split('"').next().unwrap())
                .collect();
            println!(
                "{:>9} {:>14} {:>16} {:>12.1} {:>12.1}",
                target,
                body.len(),
                labels.len(),
                took.as_secs_f64() * 1000.0,
                decided.as_secs_f64()
            );
        }
    });
}
