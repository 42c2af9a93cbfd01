//! The recorder's worker takes decisions in batches and lets the next ones
//! gather: a flood larger than a batch from many tasks is buffered whole,
//! per tenant, and a lone decision is buffered soon without anyone asking
//! for a flush.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tenet_telemetry::{
    Decided, DecisionLogConfig, DecisionLogs, LogRules, LoggedInput, Recorder, RuleEvaluator,
    RuleFuture,
};

/// Tenants without `system.log` rules.
struct NoRules;

impl RuleEvaluator for NoRules {
    fn rules(&self, _tenant: &str) -> LogRules {
        LogRules::default()
    }
    fn evaluate(
        &self,
        _tenant: &str,
        _path: &'static str,
        _input: serde_json::Value,
    ) -> RuleFuture {
        Box::pin(async { Ok(None) })
    }
}

fn decided(tenant: &str, n: usize) -> Decided {
    Decided {
        tenant: tenant.into(),
        decision_id: format!("{tenant}-{n}"),
        path: "app/allow".into(),
        revision: "r1".into(),
        input: Some(LoggedInput::Json(serde_json::json!({ "n": n }))),
        result: Some(serde_json::json!(true)),
        at: SystemTime::now(),
        requested_by: None,
        req_id: Some(n as u64),
        metrics: vec![],
    }
}

fn recorder() -> Recorder {
    let logs = DecisionLogs::new(DecisionLogConfig::default());
    Recorder::start(logs, Default::default(), Arc::new(NoRules))
}

fn buffered(recorder: &Recorder, tenant: &str) -> usize {
    recorder
        .logs()
        .stats()
        .into_iter()
        .find(|s| s.tenant == tenant)
        .map_or(0, |s| s.buffered_events)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_decisions_is_buffered_whole() {
    let recorder = recorder();
    // Eight tasks, 1,000 decisions each, well past one batch of the worker
    // and under its queue.
    let tasks: Vec<_> = (0..8)
        .map(|t| {
            let recorder = recorder.clone();
            tokio::spawn(async move {
                let tenant = format!("t{}", t % 4);
                for n in 0..1_000 {
                    recorder.record(decided(&tenant, n));
                    if n % 100 == 0 {
                        tokio::task::yield_now().await;
                    }
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    recorder.flush().await;
    for t in 0..4 {
        let tenant = format!("t{t}");
        assert_eq!(buffered(&recorder, &tenant), 2_000, "{tenant}");
    }
    let dropped: u64 = recorder.logs().stats().iter().map(|s| s.dropped).sum();
    assert_eq!(dropped, 0);
}

#[tokio::test]
async fn a_lone_decision_is_buffered_without_a_flush() {
    let recorder = recorder();
    recorder.record(decided("quiet", 0));
    let deadline = Instant::now() + Duration::from_secs(5);
    while buffered(&recorder, "quiet") == 0 {
        assert!(Instant::now() < deadline, "the decision was never buffered");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // And the worker is still taking decisions after it.
    recorder.record(decided("quiet", 1));
    while buffered(&recorder, "quiet") < 2 {
        assert!(
            Instant::now() < deadline,
            "the second decision was never buffered"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
