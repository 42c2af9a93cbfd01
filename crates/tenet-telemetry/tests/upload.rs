//! Decision-log uploads against a real decision-log service on 127.0.0.1
//! (an axum server speaking OPA's decision-log API: `POST` of a gzip JSON
//! array): chunking, the tenant in the resource, credentials, nothing lost
//! or repeated while the service fails and comes back, and the bound on
//! concurrent uploads.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use serde_json::{json, Value};
use std::io::Read;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tenet_source::{BearerCredentials, HttpClient, HttpOptions, Secret};
use tenet_telemetry::{DecisionEvent, DecisionLogConfig, DecisionLogs, UploadConfig};

/// What the collector received, and how it answers.
#[derive(Default)]
struct Collector {
    /// (tenant from the path, uncompressed body size, events).
    uploads: Mutex<Vec<(String, usize, Vec<Value>)>>,
    failing: AtomicBool,
    in_flight: AtomicUsize,
    most_in_flight: AtomicUsize,
    delay: Mutex<Duration>,
    auth: Mutex<Vec<String>>,
}

async fn receive(
    State(c): State<Arc<Collector>>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let now = c.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    c.most_in_flight.fetch_max(now, Ordering::SeqCst);
    let delay = *c.delay.lock().unwrap();
    tokio::time::sleep(delay).await;
    c.in_flight.fetch_sub(1, Ordering::SeqCst);
    assert_eq!(headers["content-encoding"], "gzip");
    assert_eq!(headers["content-type"], "application/json");
    c.auth.lock().unwrap().push(
        headers
            .get("authorization")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default(),
    );
    if c.failing.load(Ordering::SeqCst) {
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    let mut text = String::new();
    flate2::read::GzDecoder::new(&body[..])
        .read_to_string(&mut text)
        .unwrap();
    let events: Vec<Value> = serde_json::from_str(&text).unwrap();
    c.uploads.lock().unwrap().push((tenant, text.len(), events));
    StatusCode::NO_CONTENT
}

async fn collector() -> (Arc<Collector>, String) {
    let c = Arc::new(Collector::default());
    let app = axum::Router::new()
        .route("/v1/logs/{tenant}", post(receive))
        .with_state(c.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (c, format!("http://{addr}/v1"))
}

fn client() -> HttpClient {
    let mut options = HttpOptions {
        timeout_seconds: 10,
        response_header_timeout_seconds: 10,
        ..HttpOptions::default()
    };
    options.credentials.bearer = Some(BearerCredentials {
        token: Some(Secret::new("s3cret")),
        ..BearerCredentials::default()
    });
    HttpClient::new(&options, tenet_bundle::Limits::default()).unwrap()
}

fn event(tenant: &str, n: usize) -> DecisionEvent {
    let mut labels = serde_json::Map::new();
    labels.insert("tenant".into(), json!(tenant));
    let mut e = DecisionEvent::new(
        labels,
        format!("{tenant}-{n}"),
        tenant,
        "r1",
        "app/allow".into(),
    );
    e.input = Some(json!({"n": n, "pad": "x".repeat(150)}));
    e.result = Some(json!(n.is_multiple_of(2)));
    e
}

fn config(url: &str) -> UploadConfig {
    UploadConfig {
        url: url.to_string(),
        resource: "/logs/{tenant}".into(),
        upload_size_limit_bytes: 2_000,
        ..UploadConfig::default()
    }
}

/// Decision ids per tenant, in upload order.
fn received(c: &Collector) -> Vec<(String, Vec<String>)> {
    let uploads = c.uploads.lock().unwrap();
    let mut by: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for (tenant, _, events) in uploads.iter() {
        for e in events {
            assert_eq!(e["labels"]["tenant"], json!(tenant));
            by.entry(tenant.clone())
                .or_default()
                .push(e["decision_id"].as_str().unwrap().to_string());
        }
    }
    by.into_iter().collect()
}

fn ids(tenant: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{tenant}-{i}")).collect()
}

#[tokio::test]
async fn events_arrive_chunked_per_tenant_once_each_even_across_failures() {
    let (c, url) = collector().await;
    let logs = DecisionLogs::new(DecisionLogConfig::default());
    for i in 0..40 {
        logs.record("a", &event("a", i));
    }
    for i in 0..5 {
        logs.record("b", &event("b", i));
    }
    let (client, config) = (client(), config(&url));

    // The service is down: nothing is lost.
    c.failing.store(true, Ordering::SeqCst);
    let report = logs.upload_round(&client, &config).await;
    assert_eq!((report.uploaded, report.failed), (0, 2));
    let buffered: usize = logs.stats().iter().map(|s| s.buffered_events).sum();
    assert_eq!(buffered, 45);

    // It is back: everything arrives once, in order, chunked.
    c.failing.store(false, Ordering::SeqCst);
    let report = logs.upload_round(&client, &config).await;
    assert_eq!((report.uploaded, report.failed), (45, 0));
    assert_eq!(
        received(&c),
        [
            ("a".to_string(), ids("a", 40)),
            ("b".to_string(), ids("b", 5))
        ]
    );
    let uploads = c.uploads.lock().unwrap();
    assert!(uploads.len() > 3, "{} uploads", uploads.len());
    for (_, size, events) in uploads.iter() {
        let one = serde_json::to_vec(&events[0]).unwrap().len();
        assert!(*size <= 2_000 + one, "a chunk of {size} bytes");
    }
    assert!(c.auth.lock().unwrap().iter().all(|a| a == "Bearer s3cret"));
    let stats = logs.stats();
    assert!(stats
        .iter()
        .all(|s| s.buffered_events == 0 && s.dropped == 0));
    assert_eq!(stats.iter().map(|s| s.uploaded).sum::<u64>(), 45);
}

#[tokio::test]
async fn uploads_run_a_bounded_number_at_once() {
    let (c, url) = collector().await;
    *c.delay.lock().unwrap() = Duration::from_millis(50);
    let logs = DecisionLogs::new(DecisionLogConfig::default());
    for t in 0..12 {
        logs.record(&format!("t{t}"), &event(&format!("t{t}"), 0));
    }
    let config = UploadConfig {
        max_concurrent: 3,
        ..config(&url)
    };
    let report = logs.upload_round(&client(), &config).await;
    assert_eq!(report.uploaded, 12);
    let most = c.most_in_flight.load(Ordering::SeqCst);
    assert!((2..=3).contains(&most), "{most} uploads at once");
}

/// The upload loop sends on its own once its delay passes, and at once
/// when asked to flush.
#[tokio::test]
async fn the_upload_loop_sends_by_itself() {
    let (c, url) = collector().await;
    let logs = DecisionLogs::new(DecisionLogConfig::default());
    let config = UploadConfig {
        min_delay: Duration::from_millis(50),
        max_delay: Duration::from_millis(100),
        ..config(&url)
    };
    let task = logs.start_upload(client(), config);
    logs.record("a", &event("a", 0));
    tokio::time::timeout(Duration::from_secs(10), async {
        while received(&c).is_empty() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("uploaded within its delay");
    task.abort();
    assert_eq!(received(&c), [("a".to_string(), ids("a", 1))]);
}
