//! Status reports uploaded to a real status service (an axum server on
//! 127.0.0.1 taking OPA's status API) by the real binary: each tenant's
//! report arrives once it has something to say, a new tenant's arrives in
//! the next round, and an unchanged report is not sent again.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::post;
use axum::Json;
use serde_json::Value;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::{client, write_config, Server};

type Got = Arc<Mutex<Vec<(String, Value)>>>;

async fn receive(
    State(got): State<Got>,
    Path(tenant): Path<String>,
    Json(report): Json<Value>,
) -> StatusCode {
    got.lock().unwrap().push((tenant, report));
    StatusCode::OK
}

async fn until(got: &Got, what: &str, ok: impl Fn(&[(String, Value)]) -> bool) {
    let by = Instant::now() + Duration::from_secs(30);
    while !ok(&got.lock().unwrap()) {
        assert!(
            Instant::now() < by,
            "never: {what}: {:?}",
            got.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn reports_for(got: &[(String, Value)], tenant: &str) -> usize {
    got.iter().filter(|(t, _)| t == tenant).count()
}

#[tokio::test]
async fn tenants_report_their_status_when_it_changes() {
    let got: Got = Arc::default();
    let app = axum::Router::new()
        .route("/status/{tenant}", post(receive))
        .with_state(got.clone());
    let addr = support::serve_on_loopback(app).await;
    let tmp = tempfile::tempdir().unwrap();
    let config = write_config(
        tmp.path(),
        &format!(
            "services:\n  control:\n    url: http://{addr}\n\
             status:\n  service: control\n  resource: /status/{{tenant}}\n  interval_seconds: 1\n\
             tenants: [payments]\n\
             host:\n  tenant_labels:\n    payments:\n      team: billing\n"
        ),
    );
    let server = Server::start(&["--config", &config]);
    // A report while it loads, then one once its revision is active.
    let active = |tenant: &'static str| {
        move |g: &[(String, Value)]| {
            g.iter()
                .any(|(t, r)| t == tenant && r["plugins"]["bundle"]["state"] == "OK")
        }
    };
    until(&got, "payments reports it is active", active("payments")).await;
    {
        let got = got.lock().unwrap();
        let (_, report) = got.iter().rev().find(|(t, _)| t == "payments").unwrap();
        assert_eq!(report["labels"]["id"], "payments");
        assert_eq!(report["labels"]["team"], "billing");
        assert!(
            report["bundles"]["payments"]["active_revision"].is_string(),
            "{report}"
        );
    }
    let payments = reports_for(&got.lock().unwrap(), "payments");
    assert!(payments <= 2, "{payments} reports");
    // A tenant created by a push reports in the next round.
    let resp = client(30)
        .put(server.url("/tenants/fresh/v1/policies/p"))
        .body("package fresh\n\nok := true\n")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    until(&got, "fresh reports it is active", active("fresh")).await;
    let fresh = reports_for(&got.lock().unwrap(), "fresh");
    // Three more rounds: nothing changed, nothing sent again.
    tokio::time::sleep(Duration::from_millis(3_500)).await;
    let got = got.lock().unwrap();
    assert_eq!(reports_for(&got, "payments"), payments, "{got:?}");
    assert_eq!(reports_for(&got, "fresh"), fresh, "{got:?}");
}
