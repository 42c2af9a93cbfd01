//! `tenet serve` end to end: the real binary on an ephemeral loopback port,
//! driven by a real HTTP client. Each test stops its server (SIGTERM via
//! `kill`, then a hard kill on drop) so nothing outlives the test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use support::{root, Server};

use serde_json::{json, Value};
use std::io::Write;
use std::process::Command;
use std::time::{Duration, Instant};

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

async fn call(req: reqwest::RequestBuilder) -> (u16, Value) {
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let content_type = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    assert!(
        content_type.starts_with("application/json"),
        "content-type {content_type:?}"
    );
    let body = resp.bytes().await.unwrap();
    (status, serde_json::from_slice(&body).unwrap())
}

fn example_input(tenant: &str, name: &str) -> Value {
    let text =
        std::fs::read_to_string(root().join(format!("examples/inputs/{tenant}/{name}.json")))
            .unwrap();
    serde_json::from_str(&text).unwrap()
}

#[tokio::test]
async fn decisions_over_the_opa_data_api_per_tenant() {
    let server = Server::start(&[]);
    let c = client();
    let alice = example_input("payments", "alice-refund");

    // URL prefix and header forms give the same decision.
    let (s, body) = call(
        c.post(server.url("/tenants/payments/v1/data/payments/authz/allow"))
            .json(&json!({ "input": alice })),
    )
    .await;
    assert_eq!((s, body), (200, json!({"result": true})));
    let (s, body) = call(
        c.post(server.url("/v1/data/payments/authz/allow"))
            .header("X-Tenant-ID", "payments")
            .json(&json!({ "input": alice })),
    )
    .await;
    assert_eq!((s, body), (200, json!({"result": true})));

    // GET with ?input=, and ?metrics.
    let (s, body) = call(
        c.get(server.url("/tenants/payments/v1/data/payments/authz/allow"))
            .query(&[("input", alice.to_string()), ("metrics", String::new())]),
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(body["result"], json!(true));
    assert!(body["metrics"]["timer_server_handler_ns"]
        .as_u64()
        .is_some());
    // The RVM decided (the default evaluator).
    assert_eq!(body["metrics"]["counter_tenet_eval_vm"], 1, "{body}");
    assert_eq!(
        body["metrics"]["counter_tenet_eval_interpreter"], 0,
        "{body}"
    );

    // Undefined: 200 with no result. Missing input: OPA's warning.
    let (s, body) = call(
        c.post(server.url("/tenants/payments/v1/data/payments/authz/no_such_rule"))
            .json(&json!({"input": {}})),
    )
    .await;
    assert_eq!((s, body), (200, json!({})));
    let (s, body) =
        call(c.post(server.url("/tenants/payments/v1/data/payments/authz/allow"))).await;
    assert_eq!(s, 200);
    assert_eq!(body["warning"]["code"], "api_usage_warning");
    assert_eq!(body["result"], json!(false));

    // A gzip request body.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(json!({ "input": alice }).to_string().as_bytes())
        .unwrap();
    let (s, body) = call(
        c.post(server.url("/tenants/payments/v1/data/payments/authz/allow"))
            .header("content-encoding", "gzip")
            .body(gz.finish().unwrap()),
    )
    .await;
    assert_eq!((s, body), (200, json!({"result": true})));

    // The default decision: undefined is OPA's 404 undefined_document.
    let (s, body) = call(c.post(server.url("/tenants/payments/")).json(&json!({}))).await;
    assert_eq!(
        (s, body["code"].as_str()),
        (404, Some("undefined_document"))
    );
}

#[tokio::test]
async fn tenants_never_see_each_others_documents() {
    let server = Server::start(&[]);
    let c = client();
    let (s, payments) = call(c.get(server.url("/tenants/payments/v1/data"))).await;
    assert_eq!(s, 200);
    assert!(payments["result"]["payments"].is_object());
    let (s, storefront) = call(c.get(server.url("/tenants/storefront/v1/data"))).await;
    assert_eq!(s, 200);
    assert!(storefront["result"]["storefront"].is_object());
    assert!(
        storefront["result"].get("payments").is_none(),
        "{storefront}"
    );
    let (s, body) = call(c.get(server.url("/tenants/storefront/v1/data/payments"))).await;
    assert_eq!((s, body), (200, json!({})));
    // The same through the tenant header, on the routes without a path.
    let (s, body) = call(
        c.get(server.url("/v1/data"))
            .header("X-Tenant-ID", "storefront"),
    )
    .await;
    assert_eq!((s, body), (200, storefront));
    let (s, body) = call(
        c.post(server.url("/"))
            .header("X-Tenant-ID", "storefront")
            .json(&json!({})),
    )
    .await;
    assert_eq!(
        (s, body["code"].as_str()),
        (404, Some("undefined_document"))
    );
}

#[tokio::test]
async fn bad_requests_get_opa_shaped_errors() {
    let server = Server::start(&["--max-body-bytes", "4096"]);
    let c = client();
    let allow = server.url("/tenants/payments/v1/data/payments/authz/allow");

    let (s, body) = call(c.post(&allow).body("{\"input\": ")).await;
    assert_eq!((s, body["code"].as_str()), (400, Some("invalid_parameter")));
    assert!(
        body["message"].as_str().unwrap().contains("line 1"),
        "{body}"
    );

    let big = json!({"input": {"pad": "x".repeat(10_000)}}).to_string();
    let (s, body) = call(c.post(&allow).body(big)).await;
    assert_eq!((s, body["code"].as_str()), (413, Some("invalid_parameter")));

    let deep = format!("{{\"input\": {}1{}}}", "[".repeat(100), "]".repeat(100));
    let (s, body) = call(c.post(&allow).body(deep)).await;
    assert_eq!((s, body["code"].as_str()), (400, Some("invalid_parameter")));

    let (s, body) = call(
        c.post(server.url("/tenants/nobody/v1/data/x"))
            .json(&json!({"input": {}})),
    )
    .await;
    assert_eq!((s, body["code"].as_str()), (404, Some("tenant_not_found")));

    let (s, body) = call(
        c.post(server.url("/tenants/a%20b/v1/data/x"))
            .json(&json!({"input": {}})),
    )
    .await;
    assert_eq!((s, body["code"].as_str()), (400, Some("invalid_parameter")));

    let (s, body) = call(c.post(server.url("/v1/data/x")).json(&json!({"input": {}}))).await;
    assert_eq!((s, body["code"].as_str()), (400, Some("invalid_parameter")));

    let (s, body) = call(c.get(server.url("/no/such/endpoint"))).await;
    assert_eq!(
        (s, body["code"].as_str()),
        (404, Some("resource_not_found"))
    );
}

#[tokio::test]
async fn health_endpoints_answer() {
    let server = Server::start(&[]);
    let c = client();
    for path in [
        "/health",
        "/health/live",
        "/health/ready",
        "/health?bundles",
    ] {
        let (s, body) = call(c.get(server.url(path))).await;
        assert_eq!((s, body), (200, json!({})), "{path}");
    }
}

#[test]
fn sigterm_drains_and_exits_cleanly() {
    let mut server = Server::start(&[]);
    let pid = server.child.id().to_string();
    let status = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(exit) = server.child.try_wait().unwrap() {
            assert!(exit.success(), "{exit:?}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "server did not stop after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test]
async fn admin_api_lists_pins_reloads_and_releases_tenants_behind_its_token() {
    let server = Server::start(&["--admin-token", "s3cret", "--decision-token", "d3cide"]);
    let c = client();
    let admin = |req: reqwest::RequestBuilder| req.bearer_auth("s3cret");

    let (s, body) = call(c.get(server.url("/v1/tenants"))).await;
    assert_eq!((s, body["code"].as_str()), (401, Some("unauthorized")));
    let (s, body) = call(c.get(server.url("/v1/tenants")).bearer_auth("d3cide")).await;
    assert_eq!(s, 401, "{body}");

    let (s, body) = call(admin(c.put(server.url("/v1/tenants/payments")))).await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["result"]["references"], 1);
    assert_eq!(body["result"]["labels"]["tenant"], "payments");

    // Decisions need their own token.
    let allow = server.url("/tenants/payments/v1/data/payments/authz/allow");
    let (s, _) = call(c.post(&allow).json(&json!({"input": {}}))).await;
    assert_eq!(s, 401);
    let (s, body) = call(
        c.post(&allow)
            .bearer_auth("d3cide")
            .json(&json!({"input": {}})),
    )
    .await;
    assert_eq!((s, body), (200, json!({"result": false})));

    let (s, body) = call(admin(c.get(server.url("/v1/tenants/payments")))).await;
    assert_eq!(s, 200);
    assert_eq!(body["result"]["state"], "active");
    assert_eq!(body["result"]["revision"], "payments-2026.11.1");
    assert!(body["result"]["last_activation"]
        .as_str()
        .unwrap()
        .ends_with('Z'));
    assert_eq!(body["result"]["decisions"], 1);

    let (s, body) = call(admin(c.post(server.url("/v1/tenants/payments/reload")))).await;
    assert_eq!((s, body), (200, json!({"result": {"revision": null}})));

    let (s, body) = call(admin(c.get(server.url("/v1/tenants")))).await;
    assert_eq!(s, 200);
    let names: Vec<&str> = body["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["tenant"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["payments"]);

    let (s, _) = call(admin(c.delete(server.url("/v1/tenants/payments")))).await;
    assert_eq!(s, 200);
    let (s, body) = call(admin(c.delete(server.url("/v1/tenants/payments")))).await;
    assert_eq!(
        (s, body["code"].as_str()),
        (404, Some("resource_not_found"))
    );
    let (s, body) = call(admin(c.get(server.url("/v1/tenants/nobody")))).await;
    assert_eq!((s, body["code"].as_str()), (404, Some("tenant_not_found")));
}

/// With decision logging on, every data-API and batch answer carries a
/// fresh UUID `decision_id`; without it, none does (as in OPA).
#[tokio::test]
async fn decision_ids_only_with_decision_logging() {
    let c = client();
    let alice = example_input("payments", "alice-refund");
    let is_uuid = |v: &Value| {
        v.as_str().is_some_and(|s| {
            s.len() == 36
                && s.chars().filter(|c| *c == '-').count() == 4
                && s.as_bytes()[14] == b'4'
        })
    };
    let logged = Server::start(&["--log-decisions"]);
    let url = logged.url("/tenants/payments/v1/data/payments/authz/allow");
    let (s, first) = call(c.post(&url).json(&json!({ "input": alice }))).await;
    assert_eq!((s, &first["result"]), (200, &json!(true)));
    assert!(is_uuid(&first["decision_id"]), "{first}");
    let (_, second) = call(c.post(&url).json(&json!({ "input": alice }))).await;
    assert!(is_uuid(&second["decision_id"]));
    assert_ne!(first["decision_id"], second["decision_id"]);
    let (s, batch) = call(
        c.post(logged.url("/tenants/payments/v1/batch/data/payments/authz/allow"))
            .json(&json!({ "inputs": { "a": alice, "b": alice } })),
    )
    .await;
    assert_eq!(s, 200);
    assert!(is_uuid(&batch["responses"]["a"]["decision_id"]), "{batch}");
    assert_ne!(
        batch["responses"]["a"]["decision_id"],
        batch["responses"]["b"]["decision_id"]
    );

    let quiet = Server::start(&[]);
    let (_, body) = call(
        c.post(quiet.url("/tenants/payments/v1/data/payments/authz/allow"))
            .json(&json!({ "input": alice })),
    )
    .await;
    assert_eq!(body, json!({"result": true}));
}

/// Any token guards the admin API: with only a decision token set, the
/// admin API and `/metrics` need it too. `/tenants/{t}/health` needs no
/// token (OPAL's and Kubernetes's probes send none): it says only whether
/// the tenant is ready.
#[tokio::test]
async fn a_decision_token_alone_also_guards_admin_but_not_tenant_health() {
    let server = Server::start(&["--decision-token", "d3cide"]);
    let c = client();
    let (s, body) = call(c.get(server.url("/tenants/payments/health"))).await;
    assert_eq!((s, body), (200, json!({})));
    for path in ["/v1/tenants", "/metrics"] {
        let resp = c.get(server.url(path)).send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 401, "{path}");
        let resp = c
            .get(server.url(path))
            .bearer_auth("d3cide")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 200, "{path}");
    }
}

/// Requests axum itself rejects (a path that is not UTF-8) still answer in
/// OPA's JSON shape; an oversized batch is refused up front.
#[tokio::test]
async fn rejections_are_json_and_batches_are_bounded() {
    let server = Server::start(&[]);
    let c = client();
    let (s, body) = call(c.get(server.url("/tenants/payments/v1/data/%FF"))).await;
    assert_eq!((s, body["code"].as_str()), (400, Some("invalid_parameter")));

    let inputs: serde_json::Map<String, Value> =
        (0..10_001).map(|i| (i.to_string(), json!({}))).collect();
    let (s, body) = call(
        c.post(server.url("/tenants/payments/v1/batch/data/payments/authz/allow"))
            .json(&json!({ "inputs": inputs })),
    )
    .await;
    assert_eq!((s, body["code"].as_str()), (413, Some("invalid_parameter")));
    assert!(
        body["message"].as_str().unwrap().contains("10000"),
        "{body}"
    );
}

/// A forced reload whose new revision does not compile answers 502
/// `load_failed`, and the tenant keeps deciding on its last good revision.
#[tokio::test]
async fn a_failed_reload_is_502_and_the_last_revision_keeps_serving() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("t");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("p.rego"), "package p\n\nx := 1\n").unwrap();
    let template = format!("{}/{{tenant}}", tmp.path().display());
    let server = Server::start(&["--bundles", &template]);
    let c = client();
    let (s, body) = call(c.get(server.url("/tenants/t/v1/data/p/x"))).await;
    assert_eq!((s, body), (200, json!({"result": 1})));
    std::fs::write(dir.join("p.rego"), "package p\n\nx := \n").unwrap();
    let (s, body) = call(c.post(server.url("/v1/tenants/t/reload"))).await;
    assert_eq!(
        (s, body["code"].as_str()),
        (502, Some("load_failed")),
        "{body}"
    );
    let (s, body) = call(c.get(server.url("/tenants/t/v1/data/p/x"))).await;
    assert_eq!((s, body), (200, json!({"result": 1})));
}

/// hardening (issue 10, finding 8): with a token configured, `/health/ready`
/// and `/health?bundles` say how many tenants are not ready but not which,
/// unless the admin token comes with the request.
#[tokio::test]
async fn readiness_does_not_name_tenants_to_unauthenticated_callers() {
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("tenet.yaml");
    std::fs::write(&config, "tenants: [secret-tenant-name]\n").unwrap();
    let config = config.to_str().unwrap();
    let c = client();

    let open = Server::start(&["--config", config]);
    let (s, body) = call(c.get(open.url("/health/ready"))).await;
    assert_eq!(s, 500);
    assert!(body.to_string().contains("secret-tenant-name"), "{body}");

    let guarded = Server::start(&["--config", config, "--admin-token", "adm1n"]);
    for path in ["/health/ready", "/health?bundles"] {
        let (s, body) = call(c.get(guarded.url(path))).await;
        assert_eq!(s, 500, "{path}");
        assert!(
            !body.to_string().contains("secret-tenant-name"),
            "{path}: {body}"
        );
        assert!(body.to_string().contains("1 tenants"), "{path}: {body}");
        let (s, body) = call(c.get(guarded.url(path)).bearer_auth("adm1n")).await;
        assert_eq!(s, 500, "{path}");
        assert!(
            body.to_string().contains("secret-tenant-name"),
            "{path}: {body}"
        );
    }
}

/// hardening (issue 10, finding 1): a data path 5,000 segments deep used to
/// recurse past the end of the stack on a write and abort the process. Now
/// every data route refuses more than 128 segments with OPA's 400, and the
/// server keeps answering.
#[tokio::test]
async fn a_very_deep_data_path_is_refused_and_the_server_survives() {
    let mut server = Server::start(&[]);
    let c = client();
    let deep = "/a".repeat(5_000);
    let requests = [
        c.put(server.url(&format!("/tenants/x/v1/data{deep}")))
            .body("1"),
        c.patch(server.url(&format!("/tenants/x/v1/data{deep}")))
            .body("[]"),
        c.get(server.url(&format!("/tenants/payments/v1/data{deep}"))),
        c.post(server.url(&format!("/tenants/payments/v1/data{deep}")))
            .body("{}"),
        c.post(server.url(&format!("/tenants/payments/v0/data{deep}")))
            .body("{}"),
        c.post(server.url(&format!("/tenants/payments/v1/batch/data{deep}")))
            .body("{\"inputs\": {}}"),
    ];
    for request in requests {
        let (s, body) = call(request).await;
        assert_eq!(
            (s, body["code"].as_str()),
            (400, Some("invalid_parameter")),
            "{body}"
        );
        assert!(body["message"].as_str().unwrap().contains("128"), "{body}");
    }
    // 128 segments are still a path (undefined here), not an error.
    let (s, _) =
        call(c.get(server.url(&format!("/tenants/payments/v1/data{}", "/a".repeat(128))))).await;
    assert_eq!(s, 200);
    assert!(
        server.child.try_wait().unwrap().is_none(),
        "the server died"
    );
    let (s, body) = call(
        c.post(server.url("/tenants/payments/v1/data/payments/authz/allow"))
            .json(&json!({ "input": example_input("payments", "alice-refund") })),
    )
    .await;
    assert_eq!((s, body), (200, json!({"result": true})));
}

/// #10, "`/v1/status` and `/v1/config` answer 404 per tenant": OPA's status
/// report (active revision, bundle plugin state) and redacted configuration
/// per tenant, by path and by header; an unknown tenant is a 404.
#[tokio::test]
async fn status_and_config_per_tenant_in_opas_shapes() {
    let server = Server::start(&[]);
    let c = client();
    let (status, body) = call(c.get(server.url("/tenants/payments/v1/status"))).await;
    assert_eq!(status, 200, "{body}");
    let report = &body["result"];
    assert_eq!(report["labels"]["id"], "payments");
    assert_eq!(report["plugins"]["bundle"]["state"], "OK");
    let bundle = &report["bundles"]["payments"];
    assert_eq!(bundle["name"], "payments");
    assert!(bundle["active_revision"].is_string(), "{body}");
    assert!(bundle["last_successful_activation"].is_string(), "{body}");

    let (status, body) = call(
        c.get(server.url("/v1/config"))
            .header("X-Tenant-ID", "payments"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let config = &body["result"];
    assert_eq!(config["labels"]["id"], "payments");
    assert_eq!(config["default_decision"], "/system/main");
    let resource = config["bundles"]["payments"]["resource"].as_str().unwrap();
    assert!(resource.ends_with("bundles/payments"), "{resource}");

    let (status, body) = call(c.get(server.url("/tenants/nobody/v1/status"))).await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["code"], "tenant_not_found", "{body}");
}
