//! Status uploads against a real status service on 127.0.0.1 (an axum
//! server taking OPA's status API: `POST` of one JSON report): a report is
//! sent when what it says changed, once per round, again after the
//! service failed, and with the tenant in the resource.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::post;
use axum::Json;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use tenet_source::{HttpClient, HttpOptions};
use tenet_telemetry::{StatusConfig, StatusReport, StatusUploads};

#[derive(Default)]
struct Service {
    got: Mutex<Vec<(String, Value)>>,
    failing: AtomicBool,
}

async fn receive(
    State(s): State<Arc<Service>>,
    Path(tenant): Path<String>,
    Json(report): Json<Value>,
) -> StatusCode {
    if s.failing.load(Ordering::SeqCst) {
        return StatusCode::BAD_GATEWAY;
    }
    s.got.lock().unwrap().push((tenant, report));
    StatusCode::OK
}

fn report(tenant: &str, revision: &str) -> StatusReport {
    StatusReport {
        tenant: tenant.into(),
        report: json!({"labels": {"id": tenant}, "bundles": {tenant: {"active_revision": revision}}}),
        fingerprint: json!(revision),
    }
}

#[tokio::test]
async fn reports_go_when_they_change_and_again_after_a_failure() {
    let service = Arc::new(Service::default());
    let app = axum::Router::new()
        .route("/status/{tenant}", post(receive))
        .with_state(service.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let client = HttpClient::new(&HttpOptions::default(), tenet_bundle::Limits::default()).unwrap();
    let config = StatusConfig {
        url: format!("http://{addr}"),
        resource: "/status/{tenant}".into(),
        ..StatusConfig::default()
    };
    let uploads = StatusUploads::new();
    let sent = |n: usize| service.got.lock().unwrap().len() == n;

    let round = uploads
        .round(&client, &config, vec![report("a", "1"), report("b", "1")])
        .await;
    assert_eq!((round.uploaded, round.failed), (2, 0));
    // Nothing changed: nothing sent.
    let round = uploads
        .round(&client, &config, vec![report("a", "1"), report("b", "1")])
        .await;
    assert_eq!((round.uploaded, round.failed), (0, 0));
    assert!(sent(2));
    // b changed while the service fails: sent again once it is back.
    service.failing.store(true, Ordering::SeqCst);
    let round = uploads
        .round(&client, &config, vec![report("a", "1"), report("b", "2")])
        .await;
    assert_eq!((round.uploaded, round.failed), (0, 1));
    service.failing.store(false, Ordering::SeqCst);
    let round = uploads
        .round(&client, &config, vec![report("a", "1"), report("b", "2")])
        .await;
    assert_eq!((round.uploaded, round.failed), (1, 0));
    let got = service.got.lock().unwrap().clone();
    assert_eq!(got[2].0, "b");
    assert_eq!(got[2].1["bundles"]["b"]["active_revision"], "2");
}
