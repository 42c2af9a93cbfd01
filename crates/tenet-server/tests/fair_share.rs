//! Tenants sharing the evaluation threads (the bulkhead issue, "fair
//! shares, even at level none"), against the real binary: a tenant past
//! its bound of waiting evaluations gets 429 `too_many_requests` with
//! `Retry-After`, at once and for that tenant only, while another tenant
//! keeps deciding correctly. Latency under load is measured in
//! `tenet-host`'s `noisy_neighbour` bench, not here.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use serde_json::{json, Value};
use std::time::{Duration, Instant};
use support::{client, root, still_answers, write_config, Server};

#[tokio::test]
async fn a_tenant_past_its_pending_bound_gets_429_and_others_still_decide() {
    let tmp = tempfile::tempdir().unwrap();
    let config = write_config(
        tmp.path(),
        "host:\n  deadline_ms: 400\n  fair_share:\n    max_pending: 2\n",
    );
    let mut server = Server::start(&["--config", &config]);
    let c = client(60);
    let rss = server.rss_kib();
    let busy_loop =
        std::fs::read_to_string(root().join("fixtures/policies/hostile/busy-loop.rego")).unwrap();
    let resp = c
        .put(server.url("/tenants/slow/v1/policies/loop"))
        .body(busy_loop)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);

    // Twelve at once on the slow tenant: two may wait or run, the rest are
    // refused without waiting for any evaluation.
    let started = Instant::now();
    let calls: Vec<_> = (0..12)
        .map(|_| {
            let (c, url) = (c.clone(), server.url("/tenants/slow/v1/data/hostile/x"));
            tokio::spawn(async move {
                let resp = c.post(url).json(&json!({})).send().await.unwrap();
                let status = resp.status().as_u16();
                let retry = resp
                    .headers()
                    .get("retry-after")
                    .map(|v| v.to_str().unwrap().to_string());
                let body: Value = resp.json().await.unwrap();
                (status, retry, body, started.elapsed())
            })
        })
        .collect();
    // Meanwhile payments decides.
    still_answers(&c, &mut server, "the slow tenant's burst", rss, 200 << 10).await;
    let mut refused = 0;
    let mut timed_out = 0;
    for call in calls {
        let (status, retry, body, took) = call.await.unwrap();
        match status {
            429 => {
                refused += 1;
                assert_eq!(body["code"], "too_many_requests", "{body}");
                assert_eq!(retry.as_deref(), Some("1"), "{body}");
                assert!(took < Duration::from_secs(5), "a refusal waited {took:?}");
            }
            500 => {
                timed_out += 1;
                assert_eq!(body["code"], "evaluation_timeout", "{body}");
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert!(refused >= 8, "{refused} refused, {timed_out} timed out");
    assert!(timed_out >= 1, "{refused} refused, {timed_out} timed out");
    // The admin API shows the tenant's recent evaluation cost.
    let snapshot: Value = support::get_json(&c, &server.url("/v1/tenants/slow")).await;
    assert!(
        snapshot["result"]["evaluation_cost_us"].as_u64().unwrap() >= 1_000,
        "{snapshot}"
    );
    still_answers(&c, &mut server, "the slow tenant's burst", rss, 200 << 10).await;
}
