//! Decision logs uploaded to a real decision-log service (an axum server on
//! 127.0.0.1 speaking OPA's decision-log API) by the real binary: the
//! `decision_id` a client gets is the event's, the event has OPA's fields
//! with the tenant in its labels and bundles, the tenant is in the
//! resource, the service's credentials are sent, the tenant's own
//! `system.log.drop` and `system.log.mask` rules apply, and what is
//! buffered at SIGTERM is uploaded before the process exits.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use serde_json::{json, Value};
use std::io::Read;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::{alice, client, write_config, Server, ALLOW};

type Received = Arc<Mutex<Vec<(String, String, Value)>>>;

async fn receive(
    State(got): State<Received>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let mut text = String::new();
    flate2::read::GzDecoder::new(&body[..])
        .read_to_string(&mut text)
        .unwrap();
    let auth = headers
        .get("authorization")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    for event in serde_json::from_str::<Vec<Value>>(&text).unwrap() {
        got.lock()
            .unwrap()
            .push((tenant.clone(), auth.clone(), event));
    }
    StatusCode::OK
}

/// The payments tenant's `tenet_tenant_info` line in a scrape.
fn payments_info(scrape: &str) -> &str {
    scrape
        .lines()
        .find(|l| l.starts_with("tenet_tenant_info{") && l.contains("tenant=\"payments\""))
        .unwrap_or_else(|| panic!("no info series for payments in {scrape}"))
}

#[tokio::test]
async fn decisions_reach_the_decision_log_service_by_exit() {
    let got: Received = Arc::default();
    let app = axum::Router::new()
        .route("/v1/logs/{tenant}", post(receive))
        .with_state(got.clone());
    let addr = support::serve_on_loopback(app).await;

    let tmp = tempfile::tempdir().unwrap();
    // Rounds far apart: what arrives is the upload at shutdown.
    let config = write_config(
        tmp.path(),
        &format!(
            "services:\n  collector:\n    url: http://{addr}/v1\n    credentials:\n      bearer:\n        token: logs-token\n\
             decision_logs:\n  service: collector\n  resource: /logs/{{tenant}}\n  reporting:\n    min_delay_seconds: 600\n    max_delay_seconds: 900\n\
             host:\n  labels:\n    env: test\n  tenant_labels:\n    payments:\n      team: billing\n      app.kubernetes.io/name: pay\n"
        ),
    );
    let mut server = Server::start(&["--config", &config]);
    let c = client(30);
    // The tenant's own log rules, pushed beside its bundle (outside its
    // roots), as OPA's decision-log plugin applies them.
    let rules = "package system.log\n\n\
        drop if input.input.action == \"view\"\n\n\
        mask contains \"/input/amount\"\n\n\
        mask contains {\"op\": \"upsert\", \"path\": \"/input/user\", \"value\": \"**\"}\n";
    let resp = c
        .put(server.url("/tenants/payments/v1/policies/log"))
        .body(rules)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let mut viewed = alice();
    viewed["action"] = json!("view");
    let dropped: Value = c
        .post(server.url(ALLOW))
        .json(&json!({ "input": viewed }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(dropped["decision_id"].is_string(), "{dropped}");
    let body: Value = c
        .post(server.url(ALLOW))
        .json(&json!({ "input": alice() }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["result"], true, "{body}");
    let id = body["decision_id"]
        .as_str()
        .expect("a decision_id")
        .to_string();
    assert!(got.lock().unwrap().is_empty());
    // The tenant's own labels, on its info series (sanitized names).
    let scrape = support::get_text(&c, &server.url("/metrics")).await;
    let info = payments_info(&scrape);
    for label in [
        "team=\"billing\"",
        "app_kubernetes_io_name=\"pay\"",
        "env=\"test\"",
    ] {
        assert!(info.contains(label), "{info}");
    }

    let status = std::process::Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let until = Instant::now() + Duration::from_secs(30);
    while server.alive() {
        assert!(Instant::now() < until, "the server did not exit");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let got = got.lock().unwrap();
    assert_eq!(got.len(), 1, "{got:?}");
    let (tenant, auth, event) = &got[0];
    assert_eq!(
        (tenant.as_str(), auth.as_str()),
        ("payments", "Bearer logs-token")
    );
    assert_eq!(event["decision_id"], json!(id));
    assert_eq!(event["path"], "payments/authz/allow");
    let mut masked = alice();
    masked.as_object_mut().unwrap().remove("amount");
    masked["user"] = json!("**");
    assert_eq!(event["input"], masked);
    assert_eq!(event["erased"], json!(["/input/amount"]));
    assert_eq!(event["masked"], json!(["/input/user"]));
    assert_eq!(event["result"], true);
    // Who asked, which request, how long the server took (OPA's fields).
    assert!(
        event["requested_by"]
            .as_str()
            .is_some_and(|a| a.starts_with("127.0.0.1:")),
        "{event}"
    );
    assert!(event["req_id"].as_u64().is_some_and(|n| n > 0), "{event}");
    assert!(
        event["metrics"]["timer_server_handler_ns"]
            .as_u64()
            .is_some_and(|n| n > 0),
        "{event}"
    );
    assert_eq!(event["labels"]["tenant"], "payments");
    assert_eq!(event["labels"]["env"], "test");
    assert_eq!(event["labels"]["team"], "billing");
    assert!(event["labels"]["id"].is_string() && event["labels"]["version"].is_string());
    assert!(
        event["bundles"]["payments"]["revision"].is_string(),
        "{event}"
    );
    assert!(event["timestamp"].is_string());
}

/// `decision_logs.file` without a service: events as JSON lines in a
/// rotating file, with the configured mask pointers erased (for every
/// tenant and for one), written by the time the process has exited.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decisions_reach_the_decision_log_file_masked_by_exit() {
    let tmp = tempfile::tempdir().unwrap();
    let log = tmp.path().join("decisions.log");
    let config = write_config(
        tmp.path(),
        &format!(
            "decision_logs:\n  file:\n    path: {}\n    max_bytes: 2048\n    max_files: 3\n  mask:\n    \"*\": [/input/amount]\n    payments: [/input/user]\n",
            log.display()
        ),
    );
    let mut server = Server::start(&["--config", &config]);
    let c = client(60);
    let mut ids = Vec::new();
    for _ in 0..20 {
        let body: Value = c
            .post(server.url(ALLOW))
            .json(&json!({ "input": alice() }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        ids.push(body["decision_id"].as_str().unwrap().to_string());
    }
    let status = std::process::Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let until = Instant::now() + Duration::from_secs(30);
    while server.alive() {
        assert!(Instant::now() < until, "the server did not exit");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Twenty events of a few hundred bytes in 2 KiB files: rotated,
    // three kept.
    let mut lines = Vec::new();
    for name in ["decisions.log.2", "decisions.log.1", "decisions.log"] {
        let text = std::fs::read_to_string(tmp.path().join(name)).unwrap();
        assert!(text.len() <= 2048, "{name}: {} bytes", text.len());
        lines.extend(
            text.lines()
                .map(|l| serde_json::from_str::<Value>(l).unwrap()),
        );
    }
    assert!(!tmp.path().join("decisions.log.3").exists());
    assert!(lines.len() < 20, "the oldest files were deleted");
    let last = lines.last().unwrap();
    assert_eq!(last["decision_id"], json!(ids.last().unwrap()));
    assert_eq!(last["path"], "payments/authz/allow");
    assert_eq!(last["result"], true);
    assert!(last["input"].get("amount").is_none(), "{last}");
    assert!(last["input"].get("user").is_none(), "{last}");
    assert_eq!(last["erased"], json!(["/input/amount", "/input/user"]));
    assert_eq!(last["labels"]["tenant"], "payments");
}

/// Labels a bundle's manifest gives its tenant (`metadata.labels`) reach
/// its `/metrics` info series and its status document, under the config's
/// own labels; names a metrics system cannot take are refused.
#[tokio::test]
async fn a_bundles_manifest_labels_reach_metrics_and_status() {
    let tmp = tempfile::tempdir().unwrap();
    let bundles = tmp.path().join("bundles");
    support::copy_dir(
        &support::root().join("examples/bundles/payments"),
        &bundles.join("payments"),
    );
    std::fs::write(
        bundles.join("payments/.manifest"),
        json!({
            "revision": "labelled",
            "roots": ["payments"],
            "metadata": {"labels": {
                "app": "payments-api", "team": "bundle", "bad-name": "x",
                "note": "a\"b\n# TYPE evil gauge\nevil 1",
            }},
        })
        .to_string(),
    )
    .unwrap();
    let config = write_config(
        tmp.path(),
        &format!(
            "bundles:\n  template: {}/{{tenant}}\nhost:\n  tenant_labels:\n    payments:\n      team: billing\n",
            bundles.display()
        ),
    );
    let server = Server::start(&["--config", &config]);
    let c = client(30);
    let body: Value = c
        .post(server.url(ALLOW))
        .json(&json!({ "input": alice() }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["result"], true, "{body}");
    let scrape = support::get_text(&c, &server.url("/metrics")).await;
    let info = payments_info(&scrape);
    assert!(info.contains("app=\"payments-api\""), "{info}");
    assert!(info.contains("team=\"billing\""), "the config wins: {info}");
    assert!(!info.contains("bad"), "{info}");
    // A value cannot inject lines into the exposition: it is escaped.
    assert!(
        info.contains(r#"note="a\"b\n# TYPE evil gauge\nevil 1""#),
        "{info}"
    );
    assert!(!scrape.lines().any(|l| l.starts_with("evil")), "{scrape}");
    let status: Value = support::get_json(&c, &server.url("/tenants/payments/v1/status")).await;
    let labels = &status["result"]["labels"];
    assert_eq!(labels["app"], "payments-api", "{status}");
    assert_eq!(labels["team"], "billing", "{status}");
}
