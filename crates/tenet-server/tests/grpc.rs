//! The real `tenet serve` binary with `grpc.listen`: Envoy's ext_authz
//! Check over a loopback socket next to the REST API, the decision token
//! required on both, and SIGTERM draining both servers.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::grpc::{address, channel, check as request, config, raw_call};
use tenet_grpc::envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient;
use tenet_grpc::envoy_types::pb::envoy::service::auth::v3::CheckRequest;
use tonic::Code;

/// The real binary serving the fixture bundles, with `grpc.listen` on a
/// loopback port, plus `extra` config: its temporary directory, the
/// server and the gRPC address.
fn with_grpc_port(extra: &str) -> (tempfile::TempDir, support::Server, String) {
    let dir = tempfile::tempdir().unwrap();
    let config = config(
        dir.path(),
        &format!("grpc:\n  listen: 127.0.0.1:0\n{extra}"),
    );
    let (server, lines) = support::Server::start_reading(&["--config", &config], 1);
    let addr = address(&lines[0]);
    (dir, server, addr)
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
    let config = config(
        dir.path(),
        "server:\n  decision_token: tok\n  drain_seconds: 2\ngrpc:\n  listen: 127.0.0.1:0\n",
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
    let addr = address(&lines.next().unwrap().unwrap());
    let mut client =
        AuthorizationClient::new(channel(format!("http://{addr}"), None).await.unwrap());
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

/// #11's session level over gRPC: the session key (`isolation.session_header`)
/// comes from the checked HTTP request's header for ext_authz, and from the
/// call's metadata for `tenet.v1.Decisions`; each session decides in its own
/// worker (asserted by pid from `/v1/workers`). A malformed key in a Check
/// is a 400 denial, never a gRPC error (which `failure_mode_allow` would
/// turn into an allow).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_calls_decide_in_their_sessions_worker() {
    use tenet_grpc::pb::decisions_client::DecisionsClient;
    use tenet_grpc::pb::{document, DecideRequest, Document};

    let (_dir, server, addr) = with_grpc_port("isolation:\n  tenants:\n    acme: session\n");
    let channel = channel(format!("http://{addr}"), None).await.unwrap();
    let mut authz = AuthorizationClient::new(channel.clone());
    let mut decisions = DecisionsClient::new(channel);
    let with_session = |session: &str| {
        let mut r = request("acme", "/public");
        let http = r
            .attributes
            .as_mut()
            .and_then(|a| a.request.as_mut())
            .and_then(|r| r.http.as_mut())
            .unwrap();
        http.headers.insert("x-session-id".into(), session.into());
        r
    };

    let checked = authz.check(with_session("e1")).await.unwrap().into_inner();
    assert_eq!(checked.status.unwrap().code, 0);
    let mut decide = tonic::Request::new(DecideRequest {
        tenant: "acme".into(),
        path: "envoy/authz/public".into(),
        input: Some(Document {
            kind: Some(document::Kind::Json(
                br#"{"parsed_path": ["public"]}"#.to_vec(),
            )),
        }),
        id: String::new(),
    });
    decide
        .metadata_mut()
        .insert("x-session-id", "g1".parse().unwrap());
    let decided = decisions.decide(decide).await.unwrap().into_inner();
    assert_eq!(decided.result_json, b"true");

    let http = support::client(10);
    let report: serde_json::Value = http
        .get(server.url("/v1/workers"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let pid = |session: &str| {
        report["result"]["report"]["workers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|w| w["tenant"] == "acme" && w["session"] == session)
            .and_then(|w| w["pid"].as_u64())
            .unwrap_or_else(|| panic!("no worker for session {session}: {report}"))
    };
    let (e1, g1) = (pid("e1"), pid("g1"));
    assert_ne!(e1, g1, "two sessions never share a process");
    assert_ne!(e1, u64::from(server.child.id()));

    let refused = authz
        .check(with_session(&"x".repeat(300)))
        .await
        .expect("a denial, not a gRPC error")
        .into_inner();
    assert_eq!(refused.status.unwrap().code, 7, "PERMISSION_DENIED");
    let denied = refused.http_response.unwrap();
    let tenet_grpc::envoy_types::pb::envoy::service::auth::v3::check_response::HttpResponse::DeniedResponse(denied) = denied else {
        panic!("not a denied response");
    };
    assert_eq!(denied.status.unwrap().code, 400);
}

/// gRPC calls are in `/metrics`, by method and status code, with their
/// duration; a method tenet does not serve counts under `unknown`, so
/// random method names cannot grow `/metrics`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_calls_are_counted_in_metrics_by_method_and_code() {
    let (_dir, server, addr) = with_grpc_port("");
    let mut authz =
        AuthorizationClient::new(channel(format!("http://{addr}"), None).await.unwrap());
    for path in ["/public", "/public", "/private"] {
        authz.check(request("acme", path)).await.unwrap();
    }
    // A tenant that does not exist is a denial (OK with a 403 inside).
    authz.check(request("nobody", "/public")).await.unwrap();
    // Methods nobody serves, each with another name.
    for i in 0..5 {
        let status = raw_call(&addr, &format!("/tenet.v1.Decisions/Nope{i}")).await;
        assert_eq!(status, "12");
    }

    let text = support::get_text(&support::client(10), &server.url("/metrics")).await;
    let sample = |labels: &str| {
        let series = format!("tenet_grpc_calls_total{{{labels}}}");
        support::sample(&text, &series)
            .unwrap_or_else(|| panic!("no {series} in\n{text}"))
            .to_string()
    };
    let check = "/envoy.service.auth.v3.Authorization/Check";
    assert_eq!(sample(&format!("method=\"{check}\",code=\"OK\"")), "4");
    assert_eq!(sample("method=\"unknown\",code=\"UNIMPLEMENTED\""), "5");
    assert!(!text.contains("Nope"), "method names of unknown calls leak");
    assert!(
        text.contains(&format!(
            "tenet_grpc_call_duration_seconds_count{{method=\"{check}\"}} 4"
        )),
        "{text}"
    );
}
