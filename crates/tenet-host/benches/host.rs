//! Host benchmarks (results in BENCHMARKS.md):
//! - `decide_overhead`: `Host::decide` against evaluating the same prepared
//!   query directly, same policy and input, in one run (the ratio is the
//!   host's cost: tenant lookup, activation load, path parse, counters);
//! - `cold_start`: a new tenant from a local bundle directory: fetch,
//!   validate, compile, first decision; on a fresh host (its threads and
//!   watcher started for it), and on a host already serving the tenants of
//!   earlier iterations;
//! - memory with 10,000 idle instances (`TENET_BENCH_TENANTS` to change),
//!   printed after the criterion groups: RSS growth and the host's own
//!   estimate, for tenants on one shared bundle, each with its own copy of
//!   the payments example, and each with its own small RBAC bundle.
//!
//! Transparent huge pages are off, as `tenet serve` sets them
//! (`TENET_BENCH_THP=on` leaves them on).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use support::copy_dir;

use criterion::{criterion_group, Criterion};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;
use tenet_bundle::{Bundle, DirectorySource, Limits};
use tenet_host::{Host, HostConfig, SourceFactory, SourceTemplate};
use tenet_policy::{CompileOptions, Input, Policy, QueryPath};

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples")
}

/// Polls a future once: `decide` on an active instance completes without
/// waiting, so this measures it without any executor cost.
fn ready<F: Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("decide did not complete at once"),
    }
}

fn input() -> Input {
    let text =
        std::fs::read_to_string(examples().join("inputs/payments/alice-refund.json")).unwrap();
    Input::from_json(&text, &Default::default()).unwrap()
}

/// A host on the example bundles. `eval_inline`: evaluate on the calling
/// thread (what `decide_overhead` polls once) instead of the evaluation pool.
fn host(rt: &tokio::runtime::Runtime, eval_inline: bool) -> Host {
    let _guard = rt.enter();
    let template = format!("{}/bundles/{{tenant}}", examples().display());
    Host::new(
        HostConfig {
            eval_inline,
            ..HostConfig::default()
        },
        Arc::new(SourceTemplate::new(template, Limits::default()).unwrap()),
    )
}

fn decide_overhead(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let host = host(&rt, true);
    let _lease = host.acquire("payments").unwrap();
    let input = input();
    let path = "data.payments.authz.allow";
    rt.block_on(host.decide("payments", path, &input)).unwrap();

    let bundle = Bundle::load(&examples().join("bundles/payments"), &Limits::default()).unwrap();
    let policy = Policy::compile(&bundle, CompileOptions::default()).unwrap();
    let prepared = policy.query(&QueryPath::parse(path).unwrap()).unwrap();
    assert_eq!(
        prepared.evaluate(&input).unwrap().result,
        ready(host.decide("payments", path, &input)).unwrap().result
    );

    let mut g = c.benchmark_group("decide_overhead");
    g.bench_function("direct_prepared_query", |b| {
        b.iter(|| prepared.evaluate(&input).unwrap())
    });
    g.bench_function("host_decide", |b| {
        b.iter(|| ready(host.decide("payments", path, &input)).unwrap())
    });
    g.finish();
}

fn cold_start(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let input = input();
    let mut g = c.benchmark_group("cold_start");
    g.bench_function("payments_fetch_compile_first_decision", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                // A fresh host each time, so nothing is shared or cached.
                let host = host(&rt, false);
                let start = std::time::Instant::now();
                let d = rt
                    .block_on(host.decide_on_demand_for_bench("payments", &input))
                    .unwrap();
                total += start.elapsed();
                assert_eq!(d, Some(serde_json::json!(true)));
            }
            total
        })
    });
    // A new tenant on a host that is already serving others: its own copy
    // of payments (a distinct revision, so nothing is shared), made before
    // the clock starts; earlier tenants stay loaded.
    let scratch = tempfile::tempdir().unwrap();
    let template = format!("{}/{{tenant}}", scratch.path().display());
    let running = {
        let _guard = rt.enter();
        Host::new(
            HostConfig::default(),
            Arc::new(SourceTemplate::new(template, Limits::default()).unwrap()),
        )
    };
    let mut leases = Vec::new();
    let mut next = 0_u64;
    g.bench_function("payments_new_tenant_on_running_host", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let tenant = format!("t{next}");
                next += 1;
                let dir = scratch.path().join(&tenant);
                copy_dir(&examples().join("bundles/payments"), &dir);
                std::fs::write(
                    dir.join(".manifest"),
                    format!(r#"{{"revision": "{tenant}", "roots": ["payments"]}}"#),
                )
                .unwrap();
                let start = std::time::Instant::now();
                let d = rt.block_on(async {
                    leases.push(running.acquire(&tenant).unwrap());
                    running
                        .decide(&tenant, "data.payments.authz.allow", &input)
                        .await
                        .map(|d| d.result)
                });
                total += start.elapsed();
                assert_eq!(d.unwrap(), Some(serde_json::json!(true)));
            }
            total
        })
    });
    g.finish();
}

trait ColdStart {
    fn decide_on_demand_for_bench(
        &self,
        tenant: &str,
        input: &Input,
    ) -> impl Future<Output = Result<Option<serde_json::Value>, tenet_host::HostError>>;
}

impl ColdStart for Host {
    async fn decide_on_demand_for_bench(
        &self,
        tenant: &str,
        input: &Input,
    ) -> Result<Option<serde_json::Value>, tenet_host::HostError> {
        let _lease = self.acquire(tenant)?;
        self.decide(tenant, "data.payments.authz.allow", input)
            .await
            .map(|d| d.result)
    }
}

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

/// What each tenant of the memory pass loads.
#[derive(Clone, Copy)]
enum Tenants {
    /// Every tenant reads the payments example: one compiled policy shared.
    OneSharedBundle,
    /// Every tenant has its own copy of the payments example.
    OwnPaymentsEach,
    /// Every tenant has its own small RBAC bundle (~1 KB of Rego and data,
    /// different data per tenant): the issue's "distinct small tenant".
    OwnSmallRbacEach,
}

const SMALL_RBAC: &str = r#"package rbac

import rego.v1

default allow := false

allow if {
	some role in data.rbac.bindings[input.user]
	some grant in data.rbac.roles[role]
	grant.action in {"*", input.action}
	glob.match(grant.resource, ["/"], input.resource)
}

deny_reasons contains msg if {
	not allow
	msg := sprintf("%s may not %s %s", [input.user, input.action, input.resource])
}
"#;

/// `n` idle (leased, activated, one decision each) instances: RSS growth
/// per instance. With `trim`, the sweeper drops idle evaluators right away
/// (`trim_after: 0`, a sweep every 100 tenants), as it does for tenants idle
/// for `trim_after` (10 s by default); without, every tenant keeps the
/// evaluator of its decision. With `busy` as well, every tenant then decides
/// once more: the steady state of a tenant that keeps deciding on its
/// paths (its evaluator back, its analysed engine still dropped, as the
/// sweeper leaves a busy tenant after `trim_after` without a new path).
fn memory(tenants: Tenants, n: usize, trim: bool, busy: bool) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let payments = examples().join("bundles/payments");
    let (sources, path, input): (Arc<dyn SourceFactory>, &str, Input) = match tenants {
        Tenants::OneSharedBundle => (
            Arc::new(SameBundle(payments)),
            "data.payments.authz.allow",
            input(),
        ),
        Tenants::OwnPaymentsEach | Tenants::OwnSmallRbacEach => {
            for i in 0..n {
                let dir = tmp.path().join(format!("t{i}"));
                if let Tenants::OwnPaymentsEach = tenants {
                    copy_dir(&payments, &dir);
                    // A different revision makes a different bundle digest.
                    std::fs::write(
                        dir.join(".manifest"),
                        format!(r#"{{"revision": "t{i}", "roots": ["payments"]}}"#),
                    )
                    .unwrap();
                } else {
                    std::fs::create_dir_all(dir.join("rbac")).unwrap();
                    std::fs::write(dir.join("policy.rego"), SMALL_RBAC).unwrap();
                    let data = serde_json::json!({
                        "bindings": {"alice": ["admin"], "bob": ["viewer"], format!("user{i}"): ["viewer"]},
                        "roles": {
                            "admin": [{"action": "*", "resource": "/**"}],
                            "viewer": [{"action": "read", "resource": format!("/t{i}/**")}],
                        },
                    });
                    std::fs::write(dir.join("rbac/data.json"), data.to_string()).unwrap();
                }
            }
            let template = format!("{}/{{tenant}}", tmp.path().display());
            let sources = Arc::new(SourceTemplate::new(template, Limits::default()).unwrap());
            match tenants {
                Tenants::OwnPaymentsEach => (sources, "data.payments.authz.allow", input()),
                _ => (
                    sources,
                    "data.rbac.allow",
                    Input::from_json(
                        r#"{"user": "bob", "action": "read", "resource": "/t1/report"}"#,
                        &Default::default(),
                    )
                    .unwrap(),
                ),
            }
        }
    };
    let _guard = rt.enter();
    let host = Host::new(
        HostConfig {
            load_concurrency: 2,
            max_instances: n.max(100_000),
            trim_after: if trim {
                Duration::ZERO
            } else {
                Duration::from_secs(3600)
            },
            sweep_interval: Duration::from_secs(3600),
            ..HostConfig::default()
        },
        sources,
    );
    let before = rss_bytes();
    let leases: Vec<_> = (0..n)
        .map(|i| host.acquire(&format!("t{i}")).unwrap())
        .collect();
    for i in 0..n {
        rt.block_on(host.decide(&format!("t{i}"), path, &input))
            .unwrap();
        if trim && i % 100 == 99 {
            host.sweep();
        }
    }
    host.sweep();
    if busy {
        for i in 0..n {
            rt.block_on(host.decide(&format!("t{i}"), path, &input))
                .unwrap();
        }
    }
    let after = rss_bytes();
    let stats = host.stats();
    println!(
        "memory/{}{}: {} instances, RSS +{:.1} MiB = {:.1} KiB per instance; host estimate {:.1} MiB; compiles {}, shared {}",
        match tenants {
            Tenants::OneSharedBundle => "one_shared_bundle",
            Tenants::OwnPaymentsEach => "own_payments_each",
            Tenants::OwnSmallRbacEach => "own_small_rbac_each",
        },
        match (trim, busy) {
            (true, true) => "/busy",
            (true, false) => "/trimmed",
            _ => "",
        },
        n,
        (after - before) as f64 / (1 << 20) as f64,
        (after - before) as f64 / 1024.0 / n as f64,
        host.approx_memory() as f64 / (1 << 20) as f64,
        stats.compiles,
        stats.shared_compiles,
    );
    drop(leases);
}

/// Every tenant reads the same bundle directory.
#[derive(Debug)]
struct SameBundle(PathBuf);

impl SourceFactory for SameBundle {
    fn source(&self, _tenant: &str) -> Arc<dyn tenet_bundle::BundleSource> {
        Arc::new(DirectorySource::new(self.0.clone(), Limits::default()))
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(30)
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_millis(500));
    targets = decide_overhead, cold_start
}

fn main() {
    // As `tenet serve` runs by default (host.transparent_huge_pages:
    // false); TENET_BENCH_THP=on leaves them as the system sets them.
    if std::env::var("TENET_BENCH_THP").as_deref() != Ok("on") {
        let _ = rustix::thread::disable_transparent_huge_pages(true);
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
    if std::env::args().any(|a| a == "--bench") {
        // TENET_BENCH_TENANTS=100000 for the large run. TENET_BENCH_MEMORY
        // names one pass (e.g. `own_small_rbac_each/trimmed`): run each in
        // its own process, since a pass after another reuses the memory the
        // first one freed and so under-reports its growth.
        let n = std::env::var("TENET_BENCH_TENANTS")
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(10_000);
        let only = std::env::var("TENET_BENCH_MEMORY").ok();
        let passes = [
            (
                "one_shared_bundle",
                Tenants::OneSharedBundle,
                n,
                false,
                false,
            ),
            (
                "own_payments_each",
                Tenants::OwnPaymentsEach,
                n.min(10_000),
                false,
                false,
            ),
            (
                "own_payments_each/trimmed",
                Tenants::OwnPaymentsEach,
                n.min(10_000),
                true,
                false,
            ),
            (
                "own_payments_each/busy",
                Tenants::OwnPaymentsEach,
                n.min(10_000),
                true,
                true,
            ),
            (
                "own_small_rbac_each",
                Tenants::OwnSmallRbacEach,
                n,
                false,
                false,
            ),
            (
                "own_small_rbac_each/trimmed",
                Tenants::OwnSmallRbacEach,
                n,
                true,
                false,
            ),
            (
                "own_small_rbac_each/busy",
                Tenants::OwnSmallRbacEach,
                n,
                true,
                true,
            ),
        ];
        for (name, tenants, n, trim, busy) in passes {
            if only.as_deref().is_none_or(|o| o == name) {
                memory(tenants, n, trim, busy);
            }
        }
    }
}
