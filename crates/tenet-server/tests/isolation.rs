//! The bulkhead on the real binary: tenants at levels `none`, `tenant` and
//! `session` decide in the right process (asserted by worker pid from the
//! admin API) with OPA's answers, through the data and the batch APIs; a worker SIGKILLed a hundred times fails
//! only its own tenant's decisions, as `tenant_unavailable`, and comes
//! back each time while another tenant sees no failure; a runaway policy
//! ends at the engine's deadline in the shared process and by a kill in a
//! worker; a memory-hungry policy kills only its worker; adaptive
//! isolation moves a misbehaving tenant out by itself; a tenant moved
//! through the admin API loses no request; no worker outlives its host,
//! even one killed with SIGKILL. Latency is measured in benches, not here.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use serde_json::{json, Value};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use support::{alice, client, root, still_answers, write_config, Server, ALLOW};

/// Fast restarts, so a hundred kills take seconds.
const WORKERS: &str = "  workers:\n    backoff_initial_ms: 10\n    backoff_max_ms: 100\n";

fn alive(pid: u64) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| !stat.contains(") Z "))
}

/// Whether the kernel lets `pid` have transparent huge pages.
fn huge_pages(pid: u64) -> bool {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status
        .lines()
        .find_map(|l| l.strip_prefix("THP_enabled:"))
        .expect("THP_enabled in /proc/pid/status");
    line.trim() == "1"
}

fn kill(pid: u64, signal: &str) {
    let status = std::process::Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill {signal} {pid}");
}

/// Pushes `fixtures/policies/hostile/{name}.rego` as `tenant`'s policy.
async fn push_hostile(c: &reqwest::Client, server: &Server, tenant: &str, name: &str) {
    let rego =
        std::fs::read_to_string(root().join(format!("fixtures/policies/hostile/{name}.rego")))
            .unwrap();
    let resp = c
        .put(server.url(&format!("/tenants/{tenant}/v1/policies/{name}")))
        .body(rego)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200, "{tenant}");
}

async fn workers(c: &reqwest::Client, server: &Server) -> Value {
    let body: Value = support::get_json(c, &server.url("/v1/workers")).await;
    body["result"]["report"].clone()
}

async fn pid_of(
    c: &reqwest::Client,
    server: &Server,
    tenant: &str,
    session: Option<&str>,
) -> Option<u64> {
    let report = workers(c, server).await;
    report["workers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["tenant"] == tenant && w["session"].as_str() == session)
        .and_then(|w| w["pid"].as_u64())
}

/// Every case of `examples/cases/{tenant}.json` through the data API
/// (with `session` in the session header), against OPA's answers.
async fn cases_agree(c: &reqwest::Client, server: &Server, tenant: &str, session: Option<&str>) {
    let text =
        std::fs::read_to_string(root().join(format!("examples/cases/{tenant}.json"))).unwrap();
    let cases: Vec<Value> = serde_json::from_str(&text).unwrap();
    for case in cases {
        let input: Value = serde_json::from_str(
            &std::fs::read_to_string(
                root()
                    .join("examples/inputs")
                    .join(case["input"].as_str().unwrap()),
            )
            .unwrap(),
        )
        .unwrap();
        let path = case["query"]
            .as_str()
            .unwrap()
            .trim_start_matches("data.")
            .replace('.', "/");
        let mut request = c
            .post(server.url(&format!("/tenants/{tenant}/v1/data/{path}")))
            .json(&json!({ "input": input }));
        if let Some(session) = session {
            request = request.header("x-session-id", session);
        }
        let resp = request.send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 200, "{}", case["name"]);
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body, case["expected"], "{tenant} {}", case["name"]);
    }
}

/// Every case of `examples/cases/{tenant}.json` through the batch API,
/// one batch per query, against OPA's answers.
async fn batches_agree(c: &reqwest::Client, server: &Server, tenant: &str) {
    let text =
        std::fs::read_to_string(root().join(format!("examples/cases/{tenant}.json"))).unwrap();
    let cases: Vec<Value> = serde_json::from_str(&text).unwrap();
    let mut by_query: std::collections::BTreeMap<String, Vec<&Value>> = Default::default();
    for case in &cases {
        let query = case["query"].as_str().unwrap().to_string();
        by_query.entry(query).or_default().push(case);
    }
    for (query, cases) in by_query {
        let inputs: serde_json::Map<String, Value> = cases
            .iter()
            .map(|case| {
                let file = root()
                    .join("examples/inputs")
                    .join(case["input"].as_str().unwrap());
                let input: Value =
                    serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
                (case["name"].as_str().unwrap().to_string(), input)
            })
            .collect();
        let path = query.trim_start_matches("data.").replace('.', "/");
        let resp = c
            .post(server.url(&format!("/tenants/{tenant}/v1/batch/data/{path}")))
            .json(&json!({ "inputs": inputs }))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 200, "{tenant} {query}");
        let body: Value = resp.json().await.unwrap();
        for case in cases {
            let name = case["name"].as_str().unwrap();
            assert_eq!(
                body["responses"][name].get("result"),
                case["expected"].get("result"),
                "{tenant} {name}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_level_decides_in_the_right_process_with_opas_answers() {
    let tmp = tempfile::tempdir().unwrap();
    let config = write_config(
        tmp.path(),
        &format!(
            "isolation:\n  tenants:\n    storefront: tenant\n    analytics: session\n{WORKERS}"
        ),
    );
    let server = Server::start(&["--config", &config]);
    let c = client(60);
    cases_agree(&c, &server, "payments", None).await;
    cases_agree(&c, &server, "storefront", None).await;
    cases_agree(&c, &server, "analytics", Some("s1")).await;
    cases_agree(&c, &server, "analytics", Some("s2")).await;
    // Batches for a tenant in a worker go to it in one request each.
    assert_eq!(workers(&c, &server).await["batches"], 0);
    batches_agree(&c, &server, "storefront").await;
    batches_agree(&c, &server, "payments").await;
    assert!(
        workers(&c, &server).await["batches"].as_u64().unwrap() > 0,
        "storefront's batches reached its worker as batches"
    );
    let metrics = support::get_text(&c, &server.url("/metrics")).await;
    let sent: u64 = support::sample(&metrics, "tenet_worker_batches_total")
        .expect("tenet_worker_batches_total in /metrics")
        .parse()
        .unwrap();
    assert!(sent > 0);
    let host = u64::from(server.child.id());
    assert_eq!(
        pid_of(&c, &server, "payments", None).await,
        None,
        "payments stays in the host"
    );
    let storefront = pid_of(&c, &server, "storefront", None)
        .await
        .expect("storefront's worker");
    let s1 = pid_of(&c, &server, "analytics", Some("s1"))
        .await
        .expect("session s1");
    let s2 = pid_of(&c, &server, "analytics", Some("s2"))
        .await
        .expect("session s2");
    for pid in [storefront, s1, s2] {
        assert_ne!(pid, host);
        assert!(alive(pid));
    }
    assert_ne!(s1, s2, "two sessions never share a process");
    // Transparent huge pages are off for the host, and so for its workers.
    for pid in [host, storefront, s1] {
        assert!(!huge_pages(pid), "huge pages on for {pid}");
    }
    assert_ne!(storefront, s1);
    let level: Value = support::get_json(&c, &server.url("/v1/tenants/analytics/isolation")).await;
    assert_eq!(level["result"]["level"], "session", "{level}");
    // A session key that is not a header-safe short string is refused.
    let resp = c
        .post(server.url("/tenants/analytics/v1/data/analytics/access/allow"))
        .header("x-session-id", "x".repeat(300))
        .json(&json!({"input": {}}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_pages_stay_as_the_system_sets_them_when_configured() {
    let tmp = tempfile::tempdir().unwrap();
    let config = write_config(
        tmp.path(),
        &format!(
            "host:\n  transparent_huge_pages: true\nisolation:\n  tenants:\n    storefront: tenant\n{WORKERS}"
        ),
    );
    let server = Server::start(&["--config", &config]);
    let c = client(60);
    cases_agree(&c, &server, "storefront", None).await;
    let worker = pid_of(&c, &server, "storefront", None).await.unwrap();
    let ours = huge_pages(u64::from(std::process::id()));
    assert_eq!(huge_pages(u64::from(server.child.id())), ours);
    assert_eq!(huge_pages(worker), ours);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_a_hundred_times_fails_only_its_tenant() {
    let tmp = tempfile::tempdir().unwrap();
    let config = write_config(
        tmp.path(),
        &format!("isolation:\n  tenants:\n    storefront: tenant\n{WORKERS}"),
    );
    let mut server = Server::start(&["--config", &config]);
    let c = client(60);
    let storefront = || {
        c.post(server.url("/tenants/storefront/v1/data/storefront/ingress/allow"))
            .json(&json!({"input": {"request": {"method": "GET", "path": "/products/1", "headers": {}}}}))
    };
    assert_eq!(storefront().send().await.unwrap().status().as_u16(), 200);
    // B decides in a loop the whole time; every failure is counted.
    let stop = Arc::new(AtomicBool::new(false));
    let (b_ok, b_failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let b = {
        let (c, url, stop, ok, failed) = (
            c.clone(),
            server.url(ALLOW),
            stop.clone(),
            b_ok.clone(),
            b_failed.clone(),
        );
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let resp = c.post(&url).json(&json!({"input": alice()})).send().await;
                match resp {
                    Ok(r) if r.status().as_u16() == 200 => ok.fetch_add(1, Ordering::Relaxed),
                    _ => failed.fetch_add(1, Ordering::Relaxed),
                };
            }
        })
    };
    let mut a_unavailable = 0;
    for round in 0..100 {
        let pid = pid_of(&c, &server, "storefront", None)
            .await
            .expect("a worker");
        kill(pid, "-9");
        let recovered = tokio::time::timeout(Duration::from_secs(20), async {
            loop {
                let resp = storefront().send().await.unwrap();
                let status = resp.status().as_u16();
                let body: Value = resp.json().await.unwrap();
                match status {
                    200 => {
                        if pid_of(&c, &server, "storefront", None)
                            .await
                            .is_some_and(|p| p != pid)
                        {
                            return;
                        }
                    }
                    503 => {
                        assert_eq!(body["code"], "tenant_unavailable", "{body}");
                        a_unavailable += 1;
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                    other => panic!("round {round}: storefront answered {other}: {body}"),
                }
            }
        })
        .await;
        assert!(
            recovered.is_ok(),
            "round {round}: storefront did not recover"
        );
    }
    stop.store(true, Ordering::Relaxed);
    b.await.unwrap();
    assert_eq!(
        b_failed.load(Ordering::Relaxed),
        0,
        "payments failed while storefront's worker was killed"
    );
    assert!(b_ok.load(Ordering::Relaxed) > 100);
    let report = workers(&c, &server).await;
    assert!(report["restarts"].as_u64().unwrap() >= 100, "{report}");
    assert!(
        report["errors"]["crash"].as_u64().unwrap() >= 100,
        "{report}"
    );
    let metrics = support::get_text(&c, &server.url("/metrics")).await;
    let crashes: u64 = support::sample(&metrics, "tenet_worker_errors_total{type=\"crash\"}")
        .unwrap_or_else(|| panic!("no crash counter in\n{metrics}"))
        .parse()
        .unwrap();
    assert!(crashes >= 100, "{crashes}");
    assert!(
        metrics.contains("tenet_workers{state=\"ready\"} 1"),
        "{metrics}"
    );
    eprintln!("storefront answered 503 tenant_unavailable {a_unavailable} times over 100 kills");
    still_answers(&c, &mut server, "100 worker kills", 0, 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runaway_policy_ends_at_the_deadline_in_process_and_by_a_kill_in_a_worker() {
    let tmp = tempfile::tempdir().unwrap();
    // In a worker the kill at 300 ms ends the decision, well before the
    // engine's deadline (2 s); in the host process (the `slow` tenant,
    // pushed the same policy) the engine's deadline does. The instruction
    // cap is out of the way: the RVM runs the default 10,000,000 in less
    // than 300 ms.
    let config = write_config(
        tmp.path(),
        &format!(
            "host:\n  deadline_ms: 2000\n  max_instructions: 1000000000000\nisolation:\n  tenants:\n    untrusted-*: tenant\n{WORKERS}    kill_after_ms: 300\n"
        ),
    );
    let mut server = Server::start(&["--config", &config]);
    let c = client(60);
    for tenant in ["slow", "untrusted-slow"] {
        push_hostile(&c, &server, tenant, "busy-loop").await;
    }
    for tenant in ["slow", "untrusted-slow"] {
        let started = std::time::Instant::now();
        let resp = c
            .post(server.url(&format!("/tenants/{tenant}/v1/data/hostile/x")))
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 500, "{tenant}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["code"], "evaluation_timeout", "{tenant}: {body}");
        eprintln!("{tenant}: evaluation_timeout after {:?}", started.elapsed());
    }
    let report = workers(&c, &server).await;
    assert_eq!(report["errors"]["killed_deadline"], 1, "{report}");
    assert!(pid_of(&c, &server, "slow", None).await.is_none());
    still_answers(&c, &mut server, "runaway policies", 0, 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_memory_hungry_policy_kills_only_its_worker() {
    let tmp = tempfile::tempdir().unwrap();
    // No per-evaluation budget: the worker's address-space limit is what
    // stops it; the host process's memory does not move.
    let config = write_config(
        tmp.path(),
        &format!(
            "host:\n  eval_memory_bytes: 0\n  deadline_ms: 30000\nisolation:\n  tenants:\n    hungry: tenant\n{WORKERS}    max_memory_bytes: 805306368\n"
        ),
    );
    let mut server = Server::start(&["--config", &config]);
    let c = client(60);
    push_hostile(&c, &server, "hungry", "memory-many-strings").await;
    let rss = server.rss_kib();
    let resp = c
        .post(server.url("/tenants/hungry/v1/data/hostile/x"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 503);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["code"], "tenant_unavailable", "{body}");
    still_answers(&c, &mut server, "a worker out of memory", rss, 64 << 10).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adaptive_isolation_moves_a_misbehaving_tenant_out_by_itself() {
    let tmp = tempfile::tempdir().unwrap();
    let config = write_config(
        tmp.path(),
        &format!(
            "host:\n  deadline_ms: 100\nisolation:\n  adaptive:\n    enabled: true\n    deadline_hits: 2\n{WORKERS}"
        ),
    );
    let mut server = Server::start(&["--config", &config]);
    let c = client(60);
    push_hostile(&c, &server, "noisy", "busy-loop").await;
    let decide = || async {
        let resp = c
            .post(server.url("/tenants/noisy/v1/data/hostile/x"))
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["code"], "evaluation_timeout", "{body}");
    };
    decide().await;
    assert!(
        pid_of(&c, &server, "noisy", None).await.is_none(),
        "one hit is under the threshold"
    );
    decide().await;
    let moved = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let level: Value =
                support::get_json(&c, &server.url("/v1/tenants/noisy/isolation")).await;
            if level["result"]["level"] == "tenant" {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(moved.is_ok(), "noisy was not moved");
    let report = workers(&c, &server).await;
    assert!(
        report["adaptive"]["noisy"]
            .as_str()
            .unwrap()
            .contains("deadline"),
        "{report}"
    );
    // Its next decision runs in a worker of its own.
    decide().await;
    assert!(pid_of(&c, &server, "noisy", None).await.is_some());
    still_answers(&c, &mut server, "adaptive isolation", 0, 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moving_a_tenant_through_the_admin_api_loses_no_request() {
    let tmp = tempfile::tempdir().unwrap();
    let config = write_config(tmp.path(), &format!("isolation:\n{WORKERS}"));
    let server = Server::start(&["--config", &config]);
    let c = client(60);
    let stop = Arc::new(AtomicBool::new(false));
    let failed = Arc::new(AtomicU64::new(0));
    let deciders: Vec<_> = (0..4)
        .map(|_| {
            let (c, url, stop, failed) =
                (c.clone(), server.url(ALLOW), stop.clone(), failed.clone());
            tokio::spawn(async move {
                let mut ok = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let resp = c
                        .post(&url)
                        .json(&json!({"input": alice()}))
                        .send()
                        .await
                        .unwrap();
                    if resp.status().as_u16() == 200
                        && resp.json::<Value>().await.unwrap() == json!({"result": true})
                    {
                        ok += 1;
                    } else {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
                ok
            })
        })
        .collect();
    for level in ["tenant", "none", "session", "tenant", "none"] {
        tokio::time::sleep(Duration::from_millis(150)).await;
        let resp = c
            .post(server.url("/v1/tenants/payments/isolation"))
            .json(&json!({ "level": level }))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 200, "{level}");
    }
    tokio::time::sleep(Duration::from_millis(150)).await;
    stop.store(true, Ordering::Relaxed);
    let mut ok = 0;
    for d in deciders {
        ok += d.await.unwrap();
    }
    assert_eq!(failed.load(Ordering::Relaxed), 0);
    assert!(ok > 20, "{ok}");
    let resp = c
        .post(server.url("/v1/tenants/payments/isolation"))
        .json(&json!({ "level": "sandbox" }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
}

async fn wait_gone(pid: u64, what: &str) {
    let gone = tokio::time::timeout(Duration::from_secs(10), async {
        while alive(pid) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(gone.is_ok(), "worker {pid} outlived its host ({what})");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_worker_outlives_its_host() {
    for (signal, what) in [("-9", "SIGKILL"), ("-15", "SIGTERM")] {
        let tmp = tempfile::tempdir().unwrap();
        let config = write_config(
            tmp.path(),
            &format!("isolation:\n  tenants:\n    storefront: tenant\n    analytics: session\n{WORKERS}    pool_size: 2\n"),
        );
        let mut server = Server::start(&["--config", &config]);
        let c = client(60);
        cases_agree(&c, &server, "storefront", None).await;
        cases_agree(&c, &server, "analytics", Some("a")).await;
        let mut pids = vec![
            pid_of(&c, &server, "storefront", None).await.unwrap(),
            pid_of(&c, &server, "analytics", Some("a")).await.unwrap(),
        ];
        // The warm pool's workers too: every child of every thread.
        let tasks = std::fs::read_dir(format!("/proc/{}/task", server.child.id())).unwrap();
        for task in tasks {
            let children =
                std::fs::read_to_string(task.unwrap().path().join("children")).unwrap_or_default();
            pids.extend(
                children
                    .split_whitespace()
                    .filter_map(|p| p.parse::<u64>().ok()),
            );
        }
        assert!(
            pids.len() >= 4,
            "two workers and a warm pool of two: {pids:?}"
        );
        kill(u64::from(server.child.id()), signal);
        let _ = server.child.wait();
        for pid in pids {
            wait_gone(pid, what).await;
        }
        assert!(Path::new("/proc/self").exists());
    }
}
