//! The real `tenet serve` binary with `grpc.listen`: Envoy's ext_authz
//! Check over a loopback socket next to the REST API, the decision token
//! required on both, and SIGTERM draining both servers.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use tenet_grpc::envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient;
use tenet_grpc::envoy_types::pb::envoy::service::auth::v3::{
    attribute_context, AttributeContext, CheckRequest,
};
use tonic::Code;

fn request(tenant: &str, path: &str) -> CheckRequest {
    let mut attributes = AttributeContext::default();
    attributes
        .context_extensions
        .insert("tenant".into(), tenant.into());
    attributes.request = Some(attribute_context::Request {
        time: None,
        http: Some(attribute_context::HttpRequest {
            method: "GET".into(),
            path: path.into(),
            ..Default::default()
        }),
    });
    CheckRequest {
        attributes: Some(attributes),
    }
}

fn authorized(r: CheckRequest, token: &str) -> tonic::Request<CheckRequest> {
    let mut r = tonic::Request::new(r);
    r.metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_answers_ext_authz_beside_rest_with_the_same_token_and_drains_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let bundles = support::root().join("crates/tenet-grpc/tests/fixtures/bundles/{tenant}");
    let config = support::write_config(
        dir.path(),
        &format!(
            "bundles:\n  template: {}\nserver:\n  decision_token: tok\n  drain_seconds: 2\ngrpc:\n  listen: 127.0.0.1:0\n",
            bundles.display()
        ),
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_tenet"))
        .args(["serve", "--addr", "127.0.0.1:0", "--config", &config])
        .current_dir(support::root())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let rest = lines.next().unwrap().unwrap();
    assert!(rest.starts_with("tenet listening on http://"), "{rest}");
    let grpc = lines.next().unwrap().unwrap();
    let addr = grpc
        .strip_prefix("tenet grpc listening on ")
        .unwrap_or_else(|| panic!("second line {grpc:?}"))
        .to_string();

    let channel = tonic::transport::Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .timeout(Duration::from_secs(30))
        .connect()
        .await
        .unwrap();
    let mut client = AuthorizationClient::new(channel);
    // REST's decide rule: a decision token is configured, so it is needed.
    let e = client
        .check(request("acme", "/public"))
        .await
        .expect_err("no token");
    assert_eq!(e.code(), Code::Unauthenticated);
    let e = client
        .check(authorized(request("acme", "/public"), "wrong"))
        .await
        .expect_err("wrong token");
    assert_eq!(e.code(), Code::Unauthenticated);
    for (path, code) in [("/public", 0), ("/private", 7)] {
        let response = client
            .check(authorized(request("acme", path), "tok"))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(response.status.unwrap().code, code, "{path}");
        let metadata = response.dynamic_metadata.unwrap();
        assert!(metadata.fields.contains_key("decision_id"), "{path}");
    }
    // The REST API still answers on its own port.
    let http = support::client(10);
    let status = http
        .get(format!(
            "{}/health",
            rest.strip_prefix("tenet listening on ").unwrap()
        ))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status.as_u16(), 200);

    // SIGTERM: both servers drain and the process exits cleanly.
    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "still running 20 s after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "{status:?}");
}
