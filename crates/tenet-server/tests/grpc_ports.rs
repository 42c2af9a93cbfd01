//! One port or two, with TLS, against the real binary: `grpc.on_rest_port`
//! serves REST and gRPC on the REST port (HTTP/2 with `content-type:
//! application/grpc*` to gRPC, the rest to REST), with the REST port's
//! TLS; `grpc.listen` with `grpc.tls` serves gRPC on its own TLS port.
//! Real clients on loopback: reqwest for REST, tonic (ext_authz and
//! `tenet.v1.Decisions`) for gRPC. Also PORC over HTTP.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use serde_json::{json, Value};
use std::time::Duration;
use support::grpc::{address, channel, check, config};
use tenet_grpc::envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient;
use tenet_grpc::pb::decisions_client::DecisionsClient;
use tenet_grpc::pb::{DecideRequest, JsonRequest};
use tonic::transport::Channel;

/// ext_authz and `Decide` answer on `channel`.
async fn grpc_answers(channel: Channel) {
    let mut authz = AuthorizationClient::new(channel.clone());
    let r = authz.check(check("acme", "/public")).await.unwrap();
    assert_eq!(r.into_inner().status.unwrap().code, 0);
    let mut decisions = DecisionsClient::new(channel);
    let d = decisions
        .decide(DecideRequest {
            tenant: "native".into(),
            path: "native/allow".into(),
            input: Some(tenet_grpc::documents::json_document(
                &json!({"user": "alice"}),
            )),
            id: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(d.result_json, b"true");
}

/// REST answers on `base` with `client` (a decision, and PORC).
async fn rest_answers(client: &reqwest::Client, base: &str) {
    let r = client
        .post(format!("{base}/tenants/native/v1/data/native/allow"))
        .json(&json!({"input": {"user": "alice"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap(), json!({"result": true}));
    let porc = json!({
        "principal": {"sub": "alice"},
        "operation": "vault:read",
        "resource": "mrn:vault:acme:v1",
    });
    let r = client
        .post(format!("{base}/v1/porc"))
        .header("x-tenant-id", "native")
        .json(&porc)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap(), json!({"decision": true}));
    let r = client
        .post(format!("{base}/tenants/native/v1/porc"))
        .json(&json!({"principal": "alice"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_tls_port_serves_rest_and_grpc_by_content_type() {
    let dir = tempfile::tempdir().unwrap();
    let ca = support::make_certificates(dir.path());
    let (cert, key) = (dir.path().join("server.crt"), dir.path().join("server.key"));
    let config = config(
        dir.path(),
        &format!(
            "server:\n  tls:\n    cert_file: {}\n    private_key_file: {}\ngrpc:\n  on_rest_port: true\n",
            cert.display(),
            key.display()
        ),
    );
    let server = support::Server::start(&["--config", &config]);
    assert!(server.base.starts_with("https://"), "{}", server.base);
    let base = server.base.replace("127.0.0.1", "localhost");
    // HTTP/1.1 and HTTP/2 REST clients on the port.
    for h2 in [false, true] {
        let mut builder = reqwest::Client::builder()
            .tls_certs_only([reqwest::Certificate::from_pem(ca.as_bytes()).unwrap()])
            .timeout(Duration::from_secs(20));
        builder = if h2 { builder } else { builder.http1_only() };
        rest_answers(&builder.build().unwrap(), &base).await;
    }
    grpc_answers(channel(base.clone(), Some(&ca)).await.unwrap()).await;
    // Calls on the shared port are in /metrics too.
    let tls = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(ca.as_bytes()).unwrap()])
        .build()
        .unwrap();
    let metrics = support::get_text(&tls, &format!("{base}/metrics")).await;
    assert!(
        metrics.contains(
            "tenet_grpc_calls_total{method=\"/tenet.v1.Decisions/Decide\",code=\"OK\"} 1"
        ),
        "{metrics}"
    );
    // The REST API's own routes do not answer gRPC's content type on
    // HTTP/1.1: gRPC is HTTP/2 only.
    let r = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(ca.as_bytes()).unwrap()])
        .http1_only()
        .build()
        .unwrap()
        .post(format!("{base}/tenet.v1.Decisions/Decide"))
        .header("content-type", "application/grpc")
        .body(vec![0u8; 5])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_rest_port_with_grpc_and_a_separate_tls_grpc_port() {
    let dir = tempfile::tempdir().unwrap();
    let ca = support::make_certificates(dir.path());
    let (cert, key) = (dir.path().join("server.crt"), dir.path().join("server.key"));
    let config = config(
        dir.path(),
        &format!(
            "grpc:\n  listen: 127.0.0.1:0\n  on_rest_port: true\n  tls:\n    cert_file: {}\n    private_key_file: {}\n",
            cert.display(),
            key.display()
        ),
    );
    let (server, lines) = support::Server::start_reading(&["--config", &config], 1);
    let grpc_addr = address(&lines[0]);
    // REST and h2c gRPC on the REST port.
    rest_answers(&support::client(20), &server.base).await;
    grpc_answers(channel(server.base.clone(), None).await.unwrap()).await;
    // TLS gRPC on its own port; plaintext there fails.
    let port = grpc_addr.rsplit_once(':').unwrap().1;
    grpc_answers(
        channel(format!("https://localhost:{port}"), Some(&ca))
            .await
            .unwrap(),
    )
    .await;
    let plain = channel(format!("http://{grpc_addr}"), None).await;
    if let Ok(plain) = plain {
        let e = DecisionsClient::new(plain)
            .porc(JsonRequest::default())
            .await
            .unwrap_err();
        assert_ne!(e.code(), tonic::Code::InvalidArgument, "{e:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unusable_grpc_certificate_fails_the_start() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("bad.pem"), "not a certificate").unwrap();
    let bad = dir.path().join("bad.pem");
    let config = config(
        dir.path(),
        &format!(
            "grpc:\n  listen: 127.0.0.1:0\n  tls:\n    cert_file: {}\n    private_key_file: {}\n",
            bad.display(),
            bad.display()
        ),
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tenet"))
        .args(["serve", "--addr", "127.0.0.1:0", "--config", &config])
        .current_dir(support::root())
        .env("RUST_LOG", "off")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("gRPC"), "{stderr}");
}
