//! End to end over a real loopback socket: a tonic client (Envoy's
//! generated `Authorization` client) calls `Check` on the in-process
//! server, which decides with a real host over the fixture bundles
//! (tests/fixtures/bundles): acme answers objects, globex a boolean at its
//! own path; undefined, conflict and shapeless fail in their own ways.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;
use tenet_grpc::envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient;
use tenet_grpc::envoy_types::pb::envoy::service::auth::v3::CheckRequest;
use tenet_grpc::{ExtAuthz, ExtAuthzConfig, GrpcConfig, TenantSource};
use tonic::transport::Channel;
use tonic::Code;

fn config(ext_authz: ExtAuthzConfig) -> GrpcConfig {
    GrpcConfig {
        listen: Some("127.0.0.1:0".into()),
        ext_authz,
        ..GrpcConfig::default()
    }
}

fn routed() -> ExtAuthzConfig {
    ExtAuthzConfig {
        tenant_from: vec![
            TenantSource::ContextExtension("tenant".into()),
            TenantSource::Header("X-Tenant-ID".into()),
        ],
        tenant_paths: [("globex".to_string(), "globex/authz/allow".to_string())].into(),
        ..ExtAuthzConfig::default()
    }
}

async fn start(c: GrpcConfig) -> (support::Server, AuthorizationClient<Channel>) {
    let service = ExtAuthz::new(support::host(), c.ext_authz.clone());
    start_with(c, service).await
}

async fn start_with(
    c: GrpcConfig,
    service: ExtAuthz,
) -> (support::Server, AuthorizationClient<Channel>) {
    let server = support::Server::start(c, service).await;
    let channel = Channel::from_shared(server.url())
        .unwrap()
        .timeout(Duration::from_secs(30))
        .connect()
        .await
        .unwrap();
    let client = AuthorizationClient::new(channel).max_encoding_message_size(64 << 20);
    (server, client)
}

/// A request: `tenant` as a context extension, `headers`, method, path and body.
fn request(
    extension: Option<&str>,
    headers: Value,
    method: &str,
    path: &str,
    body: &str,
) -> CheckRequest {
    let mut attributes = json!({"request": {"http": {
        "id": "1", "method": method, "path": path, "headers": headers, "body": body,
        "host": "example.com", "protocol": "HTTP/1.1",
    }}});
    if let Some(t) = extension {
        attributes["contextExtensions"] = json!({ "tenant": t });
    }
    support::check_request(&json!({ "attributes": attributes }))
}

/// Calls Check: the response as JSON (decision id apart), or the error.
async fn check(
    client: &mut AuthorizationClient<Channel>,
    r: CheckRequest,
) -> Result<(Value, Option<String>), tonic::Status> {
    let response = client.check(r).await?;
    Ok(support::response_json(response.get_ref()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_by_context_extension_or_header_get_their_own_decisions() {
    let (server, mut client) = start(config(routed())).await;
    let form = json!({"content-type": "application/x-www-form-urlencoded"});
    let json_body = json!({"content-type": "application/json"});
    // (name, request, expected response without the decision id)
    let cases = [
        (
            "acme allows GET /public, with headers and metadata",
            request(Some("acme"), json!({}), "GET", "/public/x?user=bob", ""),
            json!({"status": {"code": 0}, "dynamicMetadata": {"user": "bob"}, "okResponse": {
                "headers": [{"key": "x-tenant", "value": "acme"}],
                "responseHeadersToAdd": [{"key": "x-checked", "value": "yes"}],
                "headersToRemove": ["x-secret"],
            }}),
        ),
        (
            "acme reads a form body",
            request(Some("acme"), form, "POST", "/private", "user=alice"),
            json!({"status": {"code": 0}, "okResponse": {"headers": [{"key": "x-form-user", "value": "alice"}]}}),
        ),
        (
            "acme reads a JSON body",
            request(
                Some("acme"),
                json_body,
                "POST",
                "/private",
                r#"{"action": "read"}"#,
            ),
            json!({"status": {"code": 0}, "okResponse": {"headers": [{"key": "x-json-action", "value": "read"}]}}),
        ),
        (
            "acme denies with its own status, header and body",
            request(Some("acme"), json!({}), "GET", "/private", ""),
            json!({"status": {"code": 7}, "deniedResponse": {
                "status": {"code": 401},
                "headers": [{"key": "x-denied-by", "value": "acme"}],
                "body": "acme says no",
            }}),
        ),
        (
            "globex by header, at its own path, allows with its key",
            request(
                None,
                json!({"x-tenant-id": "globex", "x-api-key": "globex-key"}),
                "GET",
                "/",
                "",
            ),
            json!({"status": {"code": 0}}),
        ),
        (
            "globex denies without its key",
            request(None, json!({"x-tenant-id": "globex"}), "GET", "/", ""),
            json!({"status": {"code": 7}}),
        ),
        (
            "the context extension comes first",
            request(
                Some("acme"),
                json!({"x-tenant-id": "globex", "x-api-key": "globex-key"}),
                "GET",
                "/private",
                "",
            ),
            json!({"status": {"code": 7}, "deniedResponse": {
                "status": {"code": 401},
                "headers": [{"key": "x-denied-by", "value": "acme"}],
                "body": "acme says no",
            }}),
        ),
    ];
    for (name, r, expected) in cases {
        let (got, decision_id) = check(&mut client, r)
            .await
            .unwrap_or_else(|e| panic!("{name}: {e:?}"));
        assert_eq!(got, expected, "{name}");
        let id = decision_id.unwrap_or_else(|| panic!("{name}: no decision_id"));
        assert!(uuid_like(&id), "{name}: decision_id {id:?}");
    }
    server.stop().await;
}

fn uuid_like(s: &str) -> bool {
    s.len() == 36 && s.chars().filter(|c| *c == '-').count() == 4
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_without_a_usable_tenant_are_denied_and_failures_are_grpc_errors() {
    let (server, mut client) = start(config(routed())).await;
    // Denials the server makes itself: 403 with the reason.
    for (name, r, body) in [
        (
            "no tenant anywhere",
            request(None, json!({}), "GET", "/", ""),
            "no tenant",
        ),
        (
            "a tenant id that cannot name a bundle",
            request(Some("../etc"), json!({}), "GET", "/", ""),
            "invalid tenant id",
        ),
        (
            "a tenant without a bundle, named by a header the client sets",
            request(None, json!({"x-tenant-id": "nosuch"}), "GET", "/", ""),
            "not found",
        ),
    ] {
        let (got, decision_id) = check(&mut client, r).await.unwrap();
        assert_eq!(got["status"]["code"], 7, "{name}");
        assert_eq!(got["deniedResponse"]["status"]["code"], 403, "{name}");
        let text = got["deniedResponse"]["body"].as_str().unwrap();
        assert!(text.contains(body), "{name}: {text}");
        assert_eq!(decision_id, None, "{name}: no decision was made");
    }
    // Failures Envoy's failure_mode_allow decides, as with OPA.
    for (name, tenant, code, message) in [
        (
            "undefined decision",
            "undefined",
            Code::Unknown,
            "undefined decision",
        ),
        (
            "conflicting rules",
            "conflict",
            Code::Unknown,
            "conflicts with rule",
        ),
        (
            "allowed is not a boolean",
            "shapeless",
            Code::Unknown,
            "expected allowed",
        ),
    ] {
        let r = request(Some(tenant), json!({}), "GET", "/x", "");
        let e = check(&mut client, r).await.expect_err(name);
        assert_eq!(e.code(), code, "{name}: {e:?}");
        assert!(e.message().contains(message), "{name}: {:?}", e.message());
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_requests_get_clear_errors_and_the_server_keeps_answering() {
    let c = GrpcConfig {
        max_message_bytes: 2 << 20,
        ..config(ExtAuthzConfig {
            max_body_bytes: 64 << 10,
            max_headers: 50,
            ..routed()
        })
    };
    let (server, mut client) = start(c).await;
    let json_body = json!({"content-type": "application/json"});
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let many: serde_json::Map<String, Value> =
        (0..60).map(|i| (format!("h{i}"), json!("v"))).collect();
    let mut raw = request(Some("acme"), json_body.clone(), "POST", "/private", "");
    raw.attributes
        .as_mut()
        .unwrap()
        .request
        .as_mut()
        .unwrap()
        .http
        .as_mut()
        .unwrap()
        .raw_body = vec![b'"', 0xff, 0xfe, b'"'];
    for (name, r, status, reason) in [
        (
            "a JSON body nested 100,000 deep",
            request(
                Some("acme"),
                json_body.clone(),
                "POST",
                "/private",
                &deep[..60_000],
            ),
            400,
            "nests deeper",
        ),
        (
            "a body over max_body_bytes",
            request(
                Some("acme"),
                json_body.clone(),
                "POST",
                "/private",
                &"x".repeat(100 << 10),
            ),
            413,
            "over the limit",
        ),
        (
            "more headers than max_headers",
            request(Some("acme"), Value::Object(many), "GET", "/public", ""),
            431,
            "headers",
        ),
        (
            "raw_body that is not UTF-8",
            raw,
            400,
            "request_parse_error",
        ),
        (
            "a path with a broken escape",
            request(Some("acme"), json!({}), "GET", "/a%zz", ""),
            400,
            "invalid URL escape",
        ),
        (
            "invalid JSON",
            request(
                Some("acme"),
                json_body.clone(),
                "POST",
                "/private",
                "{\"a\": ",
            ),
            400,
            "request_parse_error",
        ),
    ] {
        let (got, _) = check(&mut client, r)
            .await
            .unwrap_or_else(|e| panic!("{name}: {e:?}"));
        assert_eq!(got["status"]["code"], 7, "{name}");
        assert_eq!(
            got["deniedResponse"]["status"]["code"], status,
            "{name}: {got}"
        );
        let body = got["deniedResponse"]["body"].as_str().unwrap();
        assert!(body.contains(reason), "{name}: {body}");
    }
    // A message over max_message_bytes is refused before it is decoded.
    let huge = request(
        Some("acme"),
        json_body,
        "POST",
        "/private",
        &"x".repeat(3 << 20),
    );
    let e = check(&mut client, huge)
        .await
        .expect_err("oversized message");
    // tonic answers OUT_OF_RANGE ("decoded message length too large").
    assert_eq!(e.code(), Code::OutOfRange, "{e:?}");
    // And the server still answers.
    let (got, _) = check(
        &mut client,
        request(
            Some("globex"),
            json!({"x-api-key": "globex-key"}),
            "GET",
            "/",
            "",
        ),
    )
    .await
    .unwrap();
    assert_eq!(got, json!({"status": {"code": 0}}));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_allows_what_the_policy_denies_and_tokens_are_checked() {
    let c = config(ExtAuthzConfig {
        dry_run: true,
        ..routed()
    });
    let authorize: tenet_grpc::Authorize = Arc::new(|headers: &tonic::codegen::http::HeaderMap| {
        headers
            .get("authorization")
            .is_some_and(|v| v.as_bytes() == b"Bearer s3cret")
    });
    let service = ExtAuthz::new(support::host(), c.ext_authz.clone()).with_authorize(authorize);
    let (server, mut client) = start_with(c, service).await;
    let denied = || request(Some("acme"), json!({}), "GET", "/private", "");
    let e = check(&mut client, denied()).await.expect_err("no token");
    assert_eq!(e.code(), Code::Unauthenticated);
    let mut wrong = tonic::Request::new(denied());
    wrong
        .metadata_mut()
        .insert("authorization", "Bearer nope".parse().unwrap());
    assert_eq!(
        client.check(wrong).await.unwrap_err().code(),
        Code::Unauthenticated
    );
    let mut right = tonic::Request::new(denied());
    right
        .metadata_mut()
        .insert("authorization", "Bearer s3cret".parse().unwrap());
    let response = client.check(right).await.unwrap();
    let (got, decision_id) = support::response_json(response.get_ref());
    assert_eq!(got, json!({"status": {"code": 0}, "okResponse": {}}));
    assert!(decision_id.is_some());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_is_serving_while_up() {
    use tonic_health::pb::health_client::HealthClient;
    use tonic_health::pb::{health_check_response::ServingStatus, HealthCheckRequest};
    let (server, _client) = start(config(routed())).await;
    let channel = Channel::from_shared(server.url())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut health = HealthClient::new(channel);
    for service in ["", "envoy.service.auth.v3.Authorization"] {
        let status = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner()
            .status;
        assert_eq!(status, ServingStatus::Serving as i32, "{service:?}");
    }
    let e = health
        .check(HealthCheckRequest {
            service: "no.such.Service".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    server.stop().await;
}

/// The host evaluates the tenant's decision-log rules (as tenet-server's
/// `HostLogRules` does).
struct Rules(tenet::Host);

impl tenet_telemetry::RuleEvaluator for Rules {
    fn rules(&self, tenant: &str) -> tenet_telemetry::LogRules {
        tenet_telemetry::LogRules {
            drop: self.0.defines_rule(tenant, &["system", "log", "drop"]),
            mask: self.0.defines_rule(tenant, &["system", "log", "mask"]),
        }
    }

    fn evaluate(
        &self,
        tenant: &str,
        path: &'static str,
        input: Value,
    ) -> tenet_telemetry::RuleFuture {
        let (host, tenant) = (self.0.clone(), tenant.to_string());
        Box::pin(async move {
            let input =
                tenet::Input::from_value(&input, &Default::default()).map_err(|e| e.to_string())?;
            host.decide(&tenant, path, &input)
                .await
                .map(|d| d.result)
                .map_err(|e| e.to_string())
        })
    }
}

/// Waits until the tenant's decision log counts `(buffered, dropped)`.
async fn logged(logs: &tenet_telemetry::DecisionLogs, tenant: &str, want: (usize, u64)) {
    let by = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let stats = logs.stats();
        let got = stats
            .iter()
            .find(|s| s.tenant == tenant)
            .map(|s| (s.buffered_events, s.dropped));
        if got == Some(want) {
            assert_eq!(stats.len(), 1, "{stats:?}");
            return;
        }
        assert!(std::time::Instant::now() < by, "{stats:?}, want {want:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// With decision logs, every answered Check is recorded for its tenant as
/// an OPA decision-log event (uploads are tested in tenet-telemetry and
/// tenet-server), after the tenant's own `system.log.drop` rule; refused
/// requests are not decisions and are not recorded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answered_decisions_are_recorded_in_the_tenants_decision_log() {
    let c = config(routed());
    let logs = tenet_telemetry::DecisionLogs::new(Default::default());
    let mut labels = serde_json::Map::new();
    labels.insert("id".into(), json!("test"));
    let host = support::host();
    let recorder =
        tenet_telemetry::Recorder::start(logs.clone(), labels, Arc::new(Rules(host.clone())));
    let service = ExtAuthz::new(host, c.ext_authz.clone()).with_decision_logs(recorder);
    let (_server, mut client) = start_with(c, service).await;
    let allowed = request(Some("acme"), json!({}), "GET", "/public/x?user=bob", "");
    check(&mut client, allowed).await.unwrap();
    let no_tenant = request(None, json!({}), "GET", "/public", "");
    check(&mut client, no_tenant).await.unwrap();
    logged(&logs, "acme", (1, 0)).await;
    // The tenant's own rule (fixtures/bundles/acme/system_log.rego) drops
    // decisions on /dropme.
    let dropme = request(Some("acme"), json!({}), "GET", "/dropme", "");
    check(&mut client, dropme).await.unwrap();
    logged(&logs, "acme", (1, 1)).await;
}
