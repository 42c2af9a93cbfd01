//! OPA REST API compatibility: the examples of OPA's REST API reference
//! (`docs/docs/rest-api.md` in open-policy-agent/opa), the request tables of
//! OPA's `v1/server/server_test.go` and the Enterprise OPA batch API, played
//! against the real `tenet serve` binary over loopback HTTP.
//!
//! An OPA client pointed at `http://host/tenants/{tenant}` must work
//! unchanged, so every request goes to `/tenants/{tenant}/…` unless a test
//! checks the bare form with the tenant in `X-Tenant-ID`. Tenants are the
//! bundle directories under `fixtures/compat/` (see its README). Each test
//! starts its own server (pushed policies and data live in the process) and
//! kills it on drop; nothing waits on a clock.
//!
//! Bodies are compared exactly where OPA's documentation or tests give the
//! exact body. Where OPA's text comes from Go internals that a non-Go server
//! cannot reproduce (`encoding/json` decoder messages, AST JSON, parser
//! messages) the test checks the code, the fixed prefix and the location.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use support::root;

use serde_json::{json, Value};
use std::time::Duration;

// ---------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------

/// `tenet serve` on an ephemeral port with `fixtures/compat/{tenant}`.
struct Server(support::Server);

impl Server {
    fn start() -> Self {
        Self(support::Server::start(&[
            "--bundles",
            "fixtures/compat/{tenant}",
        ]))
    }

    /// `/tenants/{tenant}{path}`.
    fn t(&self, tenant: &str, path: &str) -> String {
        self.0.url(&format!("/tenants/{tenant}{path}"))
    }

    /// A bare path (tenant in the header).
    fn bare(&self, path: &str) -> String {
        self.0.url(path)
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

/// A client that reports redirects instead of following them.
fn no_redirect_client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// One answer, kept whole so a failing assertion can print it.
#[derive(Debug)]
struct Reply {
    /// Method and URL, shown by `Debug` when an assertion fails.
    #[allow(dead_code)]
    what: String,
    status: u16,
    content_type: String,
    location: Option<String>,
    text: String,
}

impl Reply {
    /// The body as JSON; every JSON answer must say `application/json`.
    #[track_caller]
    fn json(&self) -> Value {
        assert!(
            self.content_type.starts_with("application/json"),
            "content-type {:?} for {self:#?}",
            self.content_type
        );
        serde_json::from_str(&self.text)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {self:#?}"))
    }

    /// Status and exact JSON body.
    #[track_caller]
    fn expect(&self, status: u16, body: Value) {
        assert_eq!(self.status, status, "{self:#?}");
        assert_eq!(self.json(), body, "{self:#?}");
    }

    /// Status and the OPA error code; returns the body for further checks.
    #[track_caller]
    fn expect_error(&self, status: u16, code: &str) -> Value {
        assert_eq!(self.status, status, "{self:#?}");
        let body = self.json();
        assert_eq!(body["code"], code, "{self:#?}");
        assert!(body["message"].is_string(), "{self:#?}");
        body
    }

    /// A status with no body (204, 304).
    #[track_caller]
    fn expect_empty(&self, status: u16) {
        assert_eq!(self.status, status, "{self:#?}");
        assert!(self.text.is_empty(), "{self:#?}");
    }

    /// The error message, which must start with `prefix`.
    #[track_caller]
    fn expect_message_prefix(&self, prefix: &str) {
        let body = self.json();
        let message = body["message"].as_str().unwrap_or_default();
        assert!(
            message.starts_with(prefix),
            "message should start with {prefix:?}: {self:#?}"
        );
    }
}

async fn send(req: reqwest::RequestBuilder) -> Reply {
    let (c, req) = req.build_split();
    let req = req.unwrap();
    let what = format!("{} {}", req.method(), req.url());
    let resp = c.execute(req).await.unwrap();
    let status = resp.status().as_u16();
    let header = |name| {
        resp.headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_string())
    };
    let content_type = header(reqwest::header::CONTENT_TYPE).unwrap_or_default();
    let location = header(reqwest::header::LOCATION);
    let text = resp.text().await.unwrap();
    Reply {
        what,
        status,
        content_type,
        location,
        text,
    }
}

fn rego(req: reqwest::RequestBuilder, text: &str) -> reqwest::RequestBuilder {
    req.header("content-type", "text/plain")
        .body(text.to_string())
}

fn json_body(req: reqwest::RequestBuilder, value: &Value) -> reqwest::RequestBuilder {
    req.header("content-type", "application/json")
        .body(value.to_string())
}

fn patch_body(req: reqwest::RequestBuilder, ops: &Value) -> reqwest::RequestBuilder {
    req.header("content-type", "application/json-patch+json")
        .body(ops.to_string())
}

const WARNING: &str = "'input' key missing from the request";

fn warning() -> Value {
    json!({"code": "api_usage_warning", "message": WARNING})
}

/// The servers of OPA's REST API reference that sit on a public network.
fn public_servers() -> Value {
    json!([
        {"id": "s1", "name": "app", "ports": ["p1", "p2", "p3"], "protocols": ["https", "ssh"]},
        {"id": "s4", "name": "dev", "ports": ["p1", "p2"], "protocols": ["http"]}
    ])
}

/// OPA's REST API reference, "Create or Update a Policy" (`example1`).
const EXAMPLE1: &str = "package opa.examples

import data.networks
import data.ports
import data.servers

public_servers contains server if {
\tsome k, m
\tserver := servers[_]
\tserver.ports[_] == ports[k].id
\tports[k].networks[_] == networks[m].id
\tnetworks[m].public == true
}
";

/// OPA's REST API reference, "List Policies" (`example2`, in Rego v1).
const EXAMPLE2: &str = "package opa.examples

import data.servers

violations contains server if {
\tserver := servers[_]
\tserver.protocols[_] == \"http\"
\tpublic_servers[server]
}
";

/// Loads the servers / networks / ports data set of OPA's REST API
/// reference into `tenant` with `PUT /v1/data/…`.
async fn put_servers_data(server: &Server, tenant: &str) {
    let c = client();
    let data = serde_json::from_str::<Value>(
        &std::fs::read_to_string(root().join("fixtures/compat/docs/opa/examples/data.json"))
            .unwrap(),
    )
    .unwrap();
    for key in ["servers", "networks", "ports"] {
        send(json_body(
            c.put(server.t(tenant, &format!("/v1/data/{key}"))),
            &data[key],
        ))
        .await
        .expect_empty(204);
    }
}

// ---------------------------------------------------------------------------
// Data API: reads and decisions
// ---------------------------------------------------------------------------

/// rest-api.md, Data API, "Get a Document":
/// `GET /v1/data/opa/examples/public_servers`.
#[tokio::test]
async fn data_get_a_document_public_servers() {
    let server = Server::start();
    let c = client();
    send(c.get(server.t("docs", "/v1/data/opa/examples/public_servers")))
        .await
        .expect(200, json!({"result": public_servers()}));
    // A base document through the same API.
    send(c.get(server.t("docs", "/v1/data/opa/examples/networks/2")))
        .await
        .expect(200, json!({"result": {"id": "n3", "public": true}}));
}

/// rest-api.md, "Get a Document (with Input)": both example requests —
/// `flag: true` gives `{"result": true}`, `flag: false` gives `{}`.
#[tokio::test]
async fn data_get_a_document_with_input_allow_request() {
    let server = Server::start();
    let c = client();
    let url = server.t("docs", "/v1/data/opa/examples/allow_request");
    send(json_body(
        c.post(&url),
        &json!({"input": {"example": {"flag": true}}}),
    ))
    .await
    .expect(200, json!({"result": true}));
    send(json_body(
        c.post(&url),
        &json!({"input": {"example": {"flag": false}}}),
    ))
    .await
    .expect(200, json!({}));
}

/// server_test.go TestDataV1 "get empty and undefined": an undefined rule
/// and a missing document are both 200 with no `result` key.
#[tokio::test]
async fn data_undefined_document_is_200_without_result() {
    let server = Server::start();
    let c = client();
    for path in [
        "/v1/data/doesnot/exist",
        "/v1/data/opa/examples/allow_request",
        "/v1/data/opa/examples/no_such_rule",
    ] {
        send(c.get(server.t("docs", path)))
            .await
            .expect(200, json!({}));
    }
}

/// server_test.go TestDataV1 "get with input", "get with input (bad
/// format)", "get with input (path error)": `?input=` carries URL-encoded
/// JSON; a missing or malformed value is 400 `invalid_parameter` with the
/// message prefix "parameter contains malformed input document: ".
#[tokio::test]
async fn data_get_with_input_query_parameter() {
    let server = Server::start();
    let c = client();
    let url = server.t("docs", "/v1/data/opa/examples/allow_request");
    send(
        c.get(&url)
            .query(&[("input", r#"{"example": {"flag": true}}"#)]),
    )
    .await
    .expect(200, json!({"result": true}));
    // GET never warns about a missing input.
    send(c.get(&url)).await.expect(200, json!({}));
    for query in [
        "?input",
        "?input=",
        "?input=%22foo",
        "?input=%7B%22foo:1%7D",
    ] {
        let reply = send(c.get(format!("{url}{query}"))).await;
        reply.expect_error(400, "invalid_parameter");
        reply.expect_message_prefix("parameter contains malformed input document: ");
    }
}

/// server_test.go TestDataV1 "post root", "post empty object", "post api
/// usage warning", "escaped paths": a POST without an `input` key answers
/// with OPA's `api_usage_warning`, next to the result or alone when the
/// document is undefined; `{"input": {}}` has no warning.
#[tokio::test]
async fn data_post_without_input_key_warns_api_usage_warning() {
    let server = Server::start();
    let c = client();
    let defined = server.t("docs", "/v1/data/opa/examples/public_servers");
    let undefined = server.t("docs", "/v1/data/opa/examples/allow_request");
    let with_warning = json!({"result": public_servers(), "warning": warning()});
    // Empty body.
    send(c.post(&defined))
        .await
        .expect(200, with_warning.clone());
    send(c.post(&undefined))
        .await
        .expect(200, json!({"warning": warning()}));
    // An object without `input`.
    send(json_body(c.post(&defined), &json!({})))
        .await
        .expect(200, with_warning.clone());
    send(json_body(c.post(&defined), &json!({"inputs": {}})))
        .await
        .expect(200, with_warning);
    // With `input`, even an empty one, there is no warning.
    send(json_body(c.post(&defined), &json!({"input": {}})))
        .await
        .expect(200, json!({"result": public_servers()}));
    send(json_body(c.post(&undefined), &json!({"input": {}})))
        .await
        .expect(200, json!({}));
}

/// server_test.go TestDataV1 "post malformed input": 400
/// `invalid_parameter`, "body contains malformed input document: …". A body
/// that is JSON but not an object fails the same way in OPA (its decoder
/// cannot unmarshal an array into the request struct).
#[tokio::test]
async fn data_post_malformed_input_is_400_invalid_parameter() {
    let server = Server::start();
    let c = client();
    let url = server.t("docs", "/v1/data/opa/examples/allow_request");
    for body in [
        r#"{"input": @}"#,
        r#"{"input": "#,
        "[1]",
        r#""input""#,
        "42",
    ] {
        let reply = send(
            c.post(&url)
                .header("content-type", "application/json")
                .body(body),
        )
        .await;
        reply.expect_error(400, "invalid_parameter");
        reply.expect_message_prefix("body contains malformed input document: ");
    }
}

/// rest-api.md, "Get a Document (with Input)" request headers
/// ("Content-Type: application/json or application/yaml") and
/// server_test.go TestDataYAML: a YAML body (any content type containing
/// "yaml") is read like the JSON one, for the data API and for `POST /`.
#[tokio::test]
async fn data_post_yaml_input_is_accepted() {
    let server = Server::start();
    let c = client();
    for content_type in ["application/x-yaml", "application/yaml"] {
        send(
            c.post(server.t("docs", "/v1/data/opa/examples/allow_request"))
                .header("content-type", content_type)
                .body("---\ninput:\n  example:\n    flag: true\n"),
        )
        .await
        .expect(200, json!({"result": true}));
        send(
            c.post(server.t("docs", "/"))
                .header("content-type", content_type)
                .body("---\nuser: alice\n"),
        )
        .await
        .expect(200, json!("hello, alice"));
    }
}

/// rest-api.md, "Performance Metrics" and server_test.go TestDataV1Metrics /
/// TestDataMetrics: `?metrics` (and `?metrics=true`) adds a `metrics` object
/// with OPA's timer names; `?metrics=false` does not.
#[tokio::test]
async fn data_metrics_use_opa_timer_names() {
    let server = Server::start();
    let c = client();
    let url = server.t("docs", "/v1/data/opa/examples/allow_request");
    let input = json!({"input": {"example": {"flag": true}}});
    for query in ["?metrics", "?metrics=true"] {
        for reply in [
            send(json_body(c.post(format!("{url}{query}")), &input)).await,
            send(
                c.get(format!("{url}{query}"))
                    .query(&[("input", input["input"].to_string())]),
            )
            .await,
        ] {
            assert_eq!(reply.status, 200, "{reply:#?}");
            let body = reply.json();
            assert_eq!(body["result"], json!(true), "{reply:#?}");
            for name in [
                "counter_server_query_cache_hit",
                "timer_rego_input_parse_ns",
                "timer_rego_query_eval_ns",
                "timer_server_handler_ns",
            ] {
                assert!(
                    body["metrics"][name].is_u64(),
                    "metric {name} missing or not a count: {reply:#?}"
                );
            }
        }
    }
    let reply = send(json_body(c.post(format!("{url}?metrics=false")), &input)).await;
    reply.expect(200, json!({"result": true}));
}

/// server_test.go TestV1Pretty and rest-api.md "pretty": `?pretty` /
/// `?pretty=true` indents with two spaces (Go's `SetIndent("", "  ")`).
#[tokio::test]
async fn data_pretty_indents_with_two_spaces() {
    let server = Server::start();
    let c = client();
    let expected = serde_json::to_string_pretty(&json!({"result": public_servers()})).unwrap();
    for query in ["?pretty", "?pretty=true"] {
        let reply = send(c.get(server.t(
            "docs",
            &format!("/v1/data/opa/examples/public_servers{query}"),
        )))
        .await;
        assert_eq!(reply.status, 200, "{reply:#?}");
        reply.json();
        assert_eq!(reply.text.trim_end(), expected, "{reply:#?}");
    }
    // POST too.
    let reply = send(json_body(
        c.post(server.t("docs", "/v1/data/opa/examples/allow_request?pretty=true")),
        &json!({"input": {"example": {"flag": true}}}),
    ))
    .await;
    assert_eq!(reply.status, 200, "{reply:#?}");
    reply.json();
    assert_eq!(
        reply.text.trim_end(),
        "{\n  \"result\": true\n}",
        "{reply:#?}"
    );
}

/// rest-api.md, "Provenance": `?provenance` adds build information and the
/// revision of each activated bundle (`bundles.{name}.revision`, or the
/// legacy single-bundle `revision`).
#[tokio::test]
async fn data_provenance_reports_the_bundle_revision() {
    let server = Server::start();
    let c = client();
    let reply = send(json_body(
        c.post(server.t("docs", "/v1/data/opa/examples/allow_request?provenance")),
        &json!({"input": {"example": {"flag": true}}}),
    ))
    .await;
    assert_eq!(reply.status, 200, "{reply:#?}");
    let body = reply.json();
    assert_eq!(body["result"], json!(true), "{reply:#?}");
    let provenance = &body["provenance"];
    for key in [
        "version",
        "build_commit",
        "build_timestamp",
        "build_hostname",
    ] {
        assert!(provenance[key].is_string(), "{key}: {reply:#?}");
    }
    let legacy = provenance["revision"] == json!("docs-1");
    let named = provenance["bundles"]
        .as_object()
        .is_some_and(|b| b.values().any(|v| v["revision"] == json!("docs-1")));
    assert!(legacy || named, "no bundle revision docs-1: {reply:#?}");
}

/// rest-api.md "Get a Document (with Input)" at the root: `POST /v1/data`
/// with an input evaluates the whole document; `/v1/data` and `/v1/data/…`
/// answer the same document.
#[tokio::test]
async fn data_post_root_with_input_evaluates_every_rule() {
    let server = Server::start();
    let c = client();
    let reply = send(json_body(
        c.post(server.t("docs", "/v1/data")),
        &json!({"input": {"example": {"flag": true}, "user": "alice"}}),
    ))
    .await;
    assert_eq!(reply.status, 200, "{reply:#?}");
    let body = reply.json();
    assert_eq!(body["result"]["opa"]["examples"]["allow_request"], true);
    assert_eq!(
        body["result"]["opa"]["examples"]["public_servers"],
        public_servers()
    );
    assert_eq!(body["result"]["system"]["main"], "hello, alice");
    assert!(body.get("warning").is_none(), "{reply:#?}");
}

/// rest-api.md, "Get a Document (Webhook)": `POST /v0/data/{path}` takes the
/// body as the input and answers with the bare value; undefined is 404
/// `undefined_document`.
#[tokio::test]
async fn data_webhook_v0_returns_the_bare_value() {
    let server = Server::start();
    let c = client();
    let url = server.t("docs", "/v0/data/opa/examples/allow_request");
    send(json_body(c.post(&url), &json!({"example": {"flag": true}})))
        .await
        .expect(200, json!(true));
    send(json_body(
        c.post(&url),
        &json!({"example": {"flag": false}}),
    ))
    .await
    .expect_error(404, "undefined_document");
}

/// server_test.go TestDataV1 "evaluation conflict": two complete
/// definitions with different values are a 500 `internal_error` with
/// message "error(s) occurred while evaluating query" and one
/// `eval_conflict_error` with its location.
#[tokio::test]
async fn data_evaluation_conflict_is_500_internal_error_with_errors() {
    let server = Server::start();
    let c = client();
    let reply = send(json_body(
        c.post(server.t("docs", "/v1/data/opa/conflict/p")),
        &json!({"input": {"on": true}}),
    ))
    .await;
    let body = reply.expect_error(500, "internal_error");
    assert_eq!(
        body["message"], "error(s) occurred while evaluating query",
        "{reply:#?}"
    );
    let errors = body["errors"].as_array().expect("errors array");
    assert_eq!(errors.len(), 1, "{reply:#?}");
    assert_eq!(errors[0]["code"], "eval_conflict_error", "{reply:#?}");
    assert_eq!(
        errors[0]["message"], "complete rules must not produce multiple outputs",
        "{reply:#?}"
    );
    let file = errors[0]["location"]["file"].as_str().unwrap_or_default();
    assert!(file.ends_with("opa/conflict/policy.rego"), "{reply:#?}");
    assert!(errors[0]["location"]["row"].is_u64(), "{reply:#?}");
    assert!(errors[0]["location"]["col"].is_u64(), "{reply:#?}");
    // Without the conflict the same path is simply undefined.
    send(json_body(
        c.post(server.t("docs", "/v1/data/opa/conflict/p")),
        &json!({"input": {"on": false}}),
    ))
    .await
    .expect(200, json!({}));
}

// ---------------------------------------------------------------------------
// Query API: the default decision
// ---------------------------------------------------------------------------

/// rest-api.md, "Execute a Simple Query": `POST /` evaluates
/// `data.system.main` with the whole body as input and answers with the bare
/// value. (The reference sends `{"user": ["alice"]}` and shows
/// `"hello, alice"`; `sprintf("%v")` of an array prints the array, so the
/// example here sends the string.)
#[tokio::test]
async fn default_decision_post_root_hello_alice() {
    let server = Server::start();
    let c = client();
    for url in [server.t("docs", "/"), server.t("docs", "")] {
        send(json_body(c.post(&url), &json!({"user": "alice"})))
            .await
            .expect(200, json!("hello, alice"));
    }
    send(json_body(
        c.post(server.bare("/")).header("X-Tenant-ID", "docs"),
        &json!({"user": "bob"}),
    ))
    .await
    .expect(200, json!("hello, bob"));
}

/// server.go v0QueryPath: undefined is 404 `undefined_document` with
/// "document undefined: data.system.main" when rules exist for the path and
/// "document missing: data.system.main" when none do; a malformed body is
/// 400 "unexpected parse error for input: …".
#[tokio::test]
async fn default_decision_undefined_and_missing_are_404_undefined_document() {
    let server = Server::start();
    let c = client();
    send(json_body(c.post(server.t("docs", "/")), &json!({})))
        .await
        .expect(
            404,
            json!({"code": "undefined_document", "message": "document undefined: data.system.main"}),
        );
    send(json_body(c.post(server.t("alpha", "/")), &json!({})))
        .await
        .expect(
            404,
            json!({"code": "undefined_document", "message": "document missing: data.system.main"}),
        );
    let reply = send(
        c.post(server.t("docs", "/"))
            .header("content-type", "application/json")
            .body("{\"user\": "),
    )
    .await;
    reply.expect_error(400, "invalid_parameter");
    reply.expect_message_prefix("unexpected parse error for input: ");
}

// ---------------------------------------------------------------------------
// Policy API
// ---------------------------------------------------------------------------

/// rest-api.md, "Create or Update a Policy" (`PUT /v1/policies/example1`,
/// text/plain → 200 `{}`), "Get a Document" on the new rules, and "List
/// Policies" with example1 and example2.
#[tokio::test]
async fn policy_put_example1_then_its_rules_answer_through_the_data_api() {
    let server = Server::start();
    let c = client();
    // Before: the tenant has no policies, and the rules do not exist.
    send(c.get(server.t("alpha", "/v1/policies")))
        .await
        .expect(200, json!({"result": []}));
    put_servers_data(&server, "alpha").await;
    send(c.get(server.t("alpha", "/v1/data/opa/examples/public_servers")))
        .await
        .expect(200, json!({}));

    send(rego(
        c.put(server.t("alpha", "/v1/policies/example1")),
        EXAMPLE1,
    ))
    .await
    .expect(200, json!({}));
    send(c.get(server.t("alpha", "/v1/data/opa/examples/public_servers")))
        .await
        .expect(200, json!({"result": public_servers()}));

    send(rego(
        c.put(server.t("alpha", "/v1/policies/example2")),
        EXAMPLE2,
    ))
    .await
    .expect(200, json!({}));
    send(c.get(server.t("alpha", "/v1/data/opa/examples/violations")))
        .await
        .expect(
            200,
            json!({"result": [{"id": "s4", "name": "dev", "ports": ["p1", "p2"], "protocols": ["http"]}]}),
        );

    let reply = send(c.get(server.t("alpha", "/v1/policies"))).await;
    assert_eq!(reply.status, 200, "{reply:#?}");
    let body = reply.json();
    let mut listed: Vec<(String, String)> = body["result"]
        .as_array()
        .expect("result array")
        .iter()
        .map(|p| {
            (
                p["id"].as_str().unwrap().to_string(),
                p["raw"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    listed.sort();
    assert_eq!(
        listed,
        [
            ("example1".to_string(), EXAMPLE1.to_string()),
            ("example2".to_string(), EXAMPLE2.to_string())
        ],
        "{reply:#?}"
    );
}

/// rest-api.md, "Get a Policy": `{"result": {"id", "raw", "ast"}}`. The AST
/// is Go's JSON form of the module; only its package path (the part clients
/// read) is checked.
#[tokio::test]
async fn policy_get_example1_returns_id_raw_and_package() {
    let server = Server::start();
    let c = client();
    send(rego(
        c.put(server.t("alpha", "/v1/policies/example1")),
        EXAMPLE1,
    ))
    .await
    .expect(200, json!({}));
    let reply = send(c.get(server.t("alpha", "/v1/policies/example1"))).await;
    assert_eq!(reply.status, 200, "{reply:#?}");
    let body = reply.json();
    assert_eq!(body["result"]["id"], "example1", "{reply:#?}");
    assert_eq!(body["result"]["raw"], EXAMPLE1, "{reply:#?}");
    assert_eq!(
        body["result"]["ast"]["package"]["path"],
        json!([
            {"type": "var", "value": "data"},
            {"type": "string", "value": "opa"},
            {"type": "string", "value": "examples"}
        ]),
        "{reply:#?}"
    );
}

/// rest-api.md, "Get a Policy" 404 and the storage layer's message
/// (`storage_not_found_error: policy id "…"`, code `resource_not_found`).
#[tokio::test]
async fn policy_get_unknown_id_is_404_resource_not_found() {
    let server = Server::start();
    let c = client();
    send(c.get(server.t("alpha", "/v1/policies/nope")))
        .await
        .expect(
            404,
            json!({"code": "resource_not_found", "message": "storage_not_found_error: policy id \"nope\""}),
        );
    send(c.delete(server.t("alpha", "/v1/policies/nope")))
        .await
        .expect(
            404,
            json!({"code": "resource_not_found", "message": "storage_not_found_error: policy id \"nope\""}),
        );
}

/// rest-api.md, "Delete a Policy": `DELETE /v1/policies/example2` → 200
/// `{}`; the policy and its rules are gone.
#[tokio::test]
async fn policy_delete_example2_returns_empty_object() {
    let server = Server::start();
    let c = client();
    put_servers_data(&server, "alpha").await;
    for (id, text) in [("example1", EXAMPLE1), ("example2", EXAMPLE2)] {
        send(rego(
            c.put(server.t("alpha", &format!("/v1/policies/{id}"))),
            text,
        ))
        .await
        .expect(200, json!({}));
    }
    send(c.delete(server.t("alpha", "/v1/policies/example2")))
        .await
        .expect(200, json!({}));
    send(c.get(server.t("alpha", "/v1/policies/example2")))
        .await
        .expect_error(404, "resource_not_found");
    send(c.get(server.t("alpha", "/v1/data/opa/examples/violations")))
        .await
        .expect(200, json!({}));
    // example1 is untouched.
    send(c.get(server.t("alpha", "/v1/data/opa/examples/public_servers")))
        .await
        .expect(200, json!({"result": public_servers()}));
    let reply = send(c.get(server.t("alpha", "/v1/policies"))).await;
    let ids: Vec<Value> = reply.json()["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].clone())
        .collect();
    assert_eq!(ids, [json!("example1")], "{reply:#?}");
}

/// server.go routes `PUT /v1/policies/{path...}`: an id is the rest of the
/// path, slashes included (`opa run -s dir` uses file paths as ids).
#[tokio::test]
async fn policy_ids_may_contain_slashes() {
    let server = Server::start();
    let c = client();
    let text = "package nested.ids\n\nanswer := 42\n";
    send(rego(
        c.put(server.t("alpha", "/v1/policies/a/b/c.rego")),
        text,
    ))
    .await
    .expect(200, json!({}));
    let reply = send(c.get(server.t("alpha", "/v1/policies/a/b/c.rego"))).await;
    assert_eq!(reply.status, 200, "{reply:#?}");
    assert_eq!(reply.json()["result"]["id"], "a/b/c.rego", "{reply:#?}");
    assert_eq!(reply.json()["result"]["raw"], text, "{reply:#?}");
    send(c.get(server.t("alpha", "/v1/data/nested/ids/answer")))
        .await
        .expect(200, json!({"result": 42}));
    // `a/b` is not a prefix match of `a/b/c.rego`.
    send(c.get(server.t("alpha", "/v1/policies/a/b")))
        .await
        .expect_error(404, "resource_not_found");
    send(c.delete(server.t("alpha", "/v1/policies/a/b/c.rego")))
        .await
        .expect(200, json!({}));
    send(c.get(server.t("alpha", "/v1/policies")))
        .await
        .expect(200, json!({"result": []}));
}

/// rest-api.md, "Create or Update a Policy": "If the policy module is
/// invalid … the server will respond with 400"; the error body is the one
/// shown under "Errors": `invalid_parameter`, "error(s) occurred while
/// compiling module(s)", and one error per problem with its location (the
/// file is the policy id).
#[tokio::test]
async fn policy_put_parse_error_is_400_rego_parse_error() {
    let server = Server::start();
    let c = client();
    let reply = send(rego(
        c.put(server.t("alpha", "/v1/policies/broken.rego")),
        "package compat.broken\n\nallow if {\n\tinput.x ==\n",
    ))
    .await;
    let body = reply.expect_error(400, "invalid_parameter");
    assert_eq!(
        body["message"], "error(s) occurred while compiling module(s)",
        "{reply:#?}"
    );
    let error = &body["errors"][0];
    assert_eq!(error["code"], "rego_parse_error", "{reply:#?}");
    assert!(error["message"].is_string(), "{reply:#?}");
    assert_eq!(error["location"]["file"], "broken.rego", "{reply:#?}");
    assert!(
        error["location"]["row"].as_u64().unwrap_or(0) >= 3,
        "{reply:#?}"
    );
    // Nothing was stored.
    send(c.get(server.t("alpha", "/v1/policies/broken.rego")))
        .await
        .expect_error(404, "resource_not_found");
    // An empty module (no package) is refused too.
    send(rego(
        c.put(server.t("alpha", "/v1/policies/empty.rego")),
        "",
    ))
    .await
    .expect_error(400, "invalid_parameter");
}

/// rest-api.md, "Errors": the documented example error,
/// `rego_unsafe_var_error` "var x is unsafe" at the variable's row, inside
/// `invalid_parameter` "error(s) occurred while compiling module(s)".
#[tokio::test]
async fn policy_put_compile_error_var_x_is_unsafe() {
    let server = Server::start();
    let c = client();
    let reply = send(rego(
        c.put(server.t("alpha", "/v1/policies/example")),
        "package compat.unsafe\n\nallow if {\n\tx\n}\n",
    ))
    .await;
    let body = reply.expect_error(400, "invalid_parameter");
    assert_eq!(
        body["message"], "error(s) occurred while compiling module(s)",
        "{reply:#?}"
    );
    let errors = body["errors"].as_array().expect("errors array");
    assert_eq!(errors.len(), 1, "{reply:#?}");
    assert_eq!(errors[0]["code"], "rego_unsafe_var_error", "{reply:#?}");
    assert_eq!(errors[0]["message"], "var x is unsafe", "{reply:#?}");
    assert_eq!(errors[0]["location"]["file"], "example", "{reply:#?}");
    assert_eq!(errors[0]["location"]["row"], 4, "{reply:#?}");
    assert!(errors[0]["location"]["col"].is_u64(), "{reply:#?}");
}

/// rest-api.md, "Delete a Policy": "If other policy modules in the same
/// package depend on rules in the policy module to be deleted, the server
/// will return 400" (`invalid_operation`, a `rego_type_error`).
///
/// KNOWN DIVERGENCE (docs/api.md): regorus resolves function calls only
/// when it evaluates them, so tenet cannot see the broken dependency at
/// delete time. The delete succeeds and the dependent rule then fails at
/// decision time with a 500 `internal_error` naming the missing function.
/// This test pins that behaviour, so a regorus that checks calls at
/// compile time shows up here.
#[tokio::test]
async fn policy_delete_of_a_dependency_fails_at_decision_time_not_at_delete() {
    let server = Server::start();
    let c = client();
    send(rego(
        c.put(server.t("alpha", "/v1/policies/lib.rego")),
        "package compat.shared\n\ndouble(x) := x * 2\n",
    ))
    .await
    .expect(200, json!({}));
    send(rego(
        c.put(server.t("alpha", "/v1/policies/app.rego")),
        "package compat.shared\n\nanswer := double(21)\n",
    ))
    .await
    .expect(200, json!({}));
    send(c.get(server.t("alpha", "/v1/data/compat/shared/answer")))
        .await
        .expect(200, json!({"result": 42}));

    send(c.delete(server.t("alpha", "/v1/policies/lib.rego")))
        .await
        .expect(200, json!({}));
    let reply = send(c.get(server.t("alpha", "/v1/data/compat/shared/answer"))).await;
    let body = reply.expect_error(500, "internal_error");
    assert!(
        body["message"]
            .as_str()
            .unwrap_or_default()
            .contains("could not find function"),
        "{reply:#?}"
    );
}

/// rest-api.md, "Create or Update a Policy": "If the policy module already
/// exists, it is replaced"; server.go answers `{}` without recompiling when
/// the text is unchanged.
#[tokio::test]
async fn policy_put_replaces_an_existing_module() {
    let server = Server::start();
    let c = client();
    let url = server.t("alpha", "/v1/policies/version.rego");
    send(rego(c.put(&url), "package compat.version\n\nv := 1\n"))
        .await
        .expect(200, json!({}));
    send(rego(c.put(&url), "package compat.version\n\nv := 2\n"))
        .await
        .expect(200, json!({}));
    send(rego(c.put(&url), "package compat.version\n\nv := 2\n"))
        .await
        .expect(200, json!({}));
    send(c.get(server.t("alpha", "/v1/data/compat/version/v")))
        .await
        .expect(200, json!({"result": 2}));
    // A replacement may move the module to another package.
    send(rego(c.put(&url), "package compat.moved\n\nv := 3\n"))
        .await
        .expect(200, json!({}));
    send(c.get(server.t("alpha", "/v1/data/compat/version/v")))
        .await
        .expect(200, json!({}));
    send(c.get(server.t("alpha", "/v1/data/compat/moved/v")))
        .await
        .expect(200, json!({"result": 3}));
}

/// rest-api.md, "Create or Update a Policy": "if a package path is owned by
/// a loaded Bundle, you will not be able to update this path using the
/// Policy API" — server_test.go TestBundleScope: 400 `invalid_parameter`
/// "path a/b is owned by bundle \"…\"", for pushes and for deleting a
/// bundle's module; a bundle without roots owns every path ("all paths
/// owned by bundle \"…\"").
#[tokio::test]
async fn policy_under_a_bundle_root_is_refused() {
    let server = Server::start();
    let c = client();
    let reply = send(rego(
        c.put(server.t("docs", "/v1/policies/more.rego")),
        "package opa.examples.more\n\nx := 1\n",
    ))
    .await;
    reply.expect_error(400, "invalid_parameter");
    reply.expect_message_prefix("path opa/examples/more is owned by bundle \"");

    let reply = send(rego(
        c.put(server.t("noroots", "/v1/policies/any.rego")),
        "package anything\n\nx := 1\n",
    ))
    .await;
    reply.expect_error(400, "invalid_parameter");
    reply.expect_message_prefix("all paths owned by bundle \"");

    // The bundle's own modules are listed (OPA lists every module in the
    // store) and cannot be deleted through the API.
    let reply = send(c.get(server.t("docs", "/v1/policies"))).await;
    assert_eq!(reply.status, 200, "{reply:#?}");
    let body = reply.json();
    let listed = body["result"].as_array().expect("result array");
    let allow = listed
        .iter()
        .find(|p| {
            p["id"]
                .as_str()
                .is_some_and(|id| id.ends_with("opa/examples/allow.rego"))
        })
        .unwrap_or_else(|| panic!("bundle module not listed: {reply:#?}"));
    let on_disk =
        std::fs::read_to_string(root().join("fixtures/compat/docs/opa/examples/allow.rego"))
            .unwrap();
    assert_eq!(allow["raw"], on_disk, "{reply:#?}");
    assert_eq!(listed.len(), 5, "{reply:#?}");
    let id = allow["id"].as_str().unwrap();
    let reply = send(c.delete(server.t("docs", &format!("/v1/policies/{id}")))).await;
    reply.expect_error(400, "invalid_parameter");
    reply.expect_message_prefix("path opa/examples is owned by bundle \"");
    send(c.get(server.t("docs", &format!("/v1/policies/{id}"))))
        .await
        .json();
}

/// server_test.go TestDataV1 "put base/virtual conflict": data under a
/// rule's path and a rule over existing data are refused with
/// `rego_compile_error` "conflicting rule for data path x/y/p found".
#[tokio::test]
async fn policy_and_data_conflicts_are_400() {
    let server = Server::start();
    let c = client();
    let module = "package x.y\n\np := 1\n\nq := 2\n";
    send(rego(
        c.put(server.t("alpha", "/v1/policies/testmod")),
        module,
    ))
    .await
    .expect(200, json!({}));
    for (path, value) in [
        ("/v1/data/x", json!({"y": {"p": "xxx"}})),
        ("/v1/data/x/y", json!({"p": "xxx"})),
        ("/v1/data/x/y/p", json!("xxx")),
        ("/v1/data/x/y/p/a", json!(1)),
    ] {
        let reply = send(json_body(c.put(server.t("alpha", path)), &value)).await;
        let body = reply.expect_error(400, "invalid_parameter");
        assert!(
            body["message"]
                .as_str()
                .unwrap_or_default()
                .contains("rego_compile_error: conflicting rule for data path x/y/p found"),
            "{reply:#?}"
        );
    }
    send(c.delete(server.t("alpha", "/v1/policies/testmod")))
        .await
        .expect(200, json!({}));
    send(json_body(
        c.put(server.t("alpha", "/v1/data/x/y/p/a")),
        &json!(1),
    ))
    .await
    .expect_empty(204);
    let reply = send(rego(
        c.put(server.t("alpha", "/v1/policies/testmod")),
        module,
    ))
    .await;
    let body = reply.expect_error(400, "invalid_parameter");
    assert_eq!(
        body["message"], "error(s) occurred while compiling module(s)",
        "{reply:#?}"
    );
    assert_eq!(
        body["errors"][0],
        json!({
            "code": "rego_compile_error",
            "message": "conflicting rule for data path x/y/p found",
            "location": {"file": "testmod", "row": 3, "col": 1}
        }),
        "{reply:#?}"
    );
}

// ---------------------------------------------------------------------------
// Data API: writes
// ---------------------------------------------------------------------------

/// server_test.go TestDataV1 "put deep makedir", "put deep makedir
/// partial", "put exists overwrite": `PUT /v1/data/{path}` is 204 with no
/// body and creates the containing objects (`mkdir -p`).
#[tokio::test]
async fn data_put_creates_intermediate_documents() {
    let server = Server::start();
    let c = client();
    send(json_body(
        c.put(server.t("alpha", "/v1/data/a/b/c/d")),
        &json!(1),
    ))
    .await
    .expect_empty(204);
    send(c.get(server.t("alpha", "/v1/data/a/b/c")))
        .await
        .expect(200, json!({"result": {"d": 1}}));
    send(json_body(
        c.put(server.t("alpha", "/v1/data/a/b/c/e")),
        &json!(0),
    ))
    .await
    .expect_empty(204);
    send(c.get(server.t("alpha", "/v1/data/a/b/c")))
        .await
        .expect(200, json!({"result": {"d": 1, "e": 0}}));
    send(json_body(
        c.put(server.t("alpha", "/v1/data/a/b")),
        &json!("goodbye"),
    ))
    .await
    .expect_empty(204);
    send(c.get(server.t("alpha", "/v1/data/a")))
        .await
        .expect(200, json!({"result": {"b": "goodbye"}}));
    // Written data sits next to the bundle's data.
    let reply = send(c.get(server.t("alpha", "/v1/data"))).await;
    let body = reply.json();
    assert_eq!(body["result"]["a"], json!({"b": "goodbye"}), "{reply:#?}");
    assert_eq!(
        body["result"]["owned"],
        json!({"tenant": "alpha"}),
        "{reply:#?}"
    );
}

/// rest-api.md, "Create or Overwrite a Document", "Example Request To
/// Initialize Document With If-None-Match" (`PUT /v1/data/us-west/servers`
/// with `If-None-Match: *`): 204 when absent, 304 when it exists (and the
/// document is left alone); server_test.go TestDataPutV1IfNoneMatch.
#[tokio::test]
async fn data_put_if_none_match_star_is_304_when_the_document_exists() {
    let server = Server::start();
    let c = client();
    let url = server.t("alpha", "/v1/data/us-west/servers");
    send(json_body(
        c.put(&url).header("If-None-Match", "*"),
        &json!({}),
    ))
    .await
    .expect_empty(204);
    send(json_body(
        c.put(&url).header("If-None-Match", "*"),
        &json!({"s1": "replaced?"}),
    ))
    .await
    .expect_empty(304);
    send(c.get(&url)).await.expect(200, json!({"result": {}}));
}

/// server_test.go TestDataV1 "put base write conflict": writing below a
/// non-object is 404 `resource_conflict` "storage_write_conflict_error: /a/b".
#[tokio::test]
async fn data_put_below_a_non_object_is_404_resource_conflict() {
    let server = Server::start();
    let c = client();
    send(json_body(
        c.put(server.t("alpha", "/v1/data/a/b")),
        &json!([1, 2, 3, 4]),
    ))
    .await
    .expect_empty(204);
    send(json_body(
        c.put(server.t("alpha", "/v1/data/a/b/c/d")),
        &json!(0),
    ))
    .await
    .expect(
        404,
        json!({"code": "resource_conflict", "message": "storage_write_conflict_error: /a/b"}),
    );
}

/// server.go v1DataPut decodes the body as JSON whatever the content type
/// says (there is no content-type check); an empty or malformed body is
/// 400 `invalid_parameter`.
#[tokio::test]
async fn data_put_parses_json_whatever_the_content_type() {
    let server = Server::start();
    let c = client();
    for (i, content_type) in [
        Some("application/json"),
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        None,
    ]
    .into_iter()
    .enumerate()
    {
        let mut req = c
            .put(server.t("alpha", &format!("/v1/data/typed/k{i}")))
            .body(r#"{"n": 1}"#);
        if let Some(content_type) = content_type {
            req = req.header("content-type", content_type);
        }
        send(req).await.expect_empty(204);
        send(c.get(server.t("alpha", &format!("/v1/data/typed/k{i}/n"))))
            .await
            .expect(200, json!({"result": 1}));
    }
    for body in ["", "{", "{\"a\": @}"] {
        send(
            c.put(server.t("alpha", "/v1/data/typed/bad"))
                .header("content-type", "application/json")
                .body(body),
        )
        .await
        .expect_error(400, "invalid_parameter");
    }
    send(c.get(server.t("alpha", "/v1/data/typed/bad")))
        .await
        .expect(200, json!({}));
}

/// rest-api.md, "Patch a Document" (`PATCH /v1/data/servers`, add at `-`),
/// and server_test.go TestDataV1 "append array", "insert array": JSON Patch
/// add / replace / remove relative to the URL path, 204 with no body.
#[tokio::test]
async fn data_patch_servers_appends_replaces_and_removes() {
    let server = Server::start();
    let c = client();
    let url = server.t("alpha", "/v1/data/servers");
    send(json_body(
        c.put(&url),
        &json!([{"id": "s1", "name": "app", "protocols": ["https"], "ports": ["p1"]}]),
    ))
    .await
    .expect_empty(204);
    let s5 = json!({"id": "s5", "name": "job", "protocols": ["amqp"], "ports": ["p3"]});
    send(patch_body(
        c.patch(&url),
        &json!([{"op": "add", "path": "-", "value": s5}]),
    ))
    .await
    .expect_empty(204);
    send(c.get(server.t("alpha", "/v1/data/servers/1")))
        .await
        .expect(200, json!({"result": s5}));
    // Insert before index 0, replace a field, remove another.
    send(patch_body(
        c.patch(&url),
        &json!([
            {"op": "add", "path": "/0", "value": {"id": "s0"}},
            {"op": "replace", "path": "/1/name", "value": "web"},
            {"op": "remove", "path": "/1/ports"}
        ]),
    ))
    .await
    .expect_empty(204);
    send(c.get(&url)).await.expect(
        200,
        json!({"result": [
            {"id": "s0"},
            {"id": "s1", "name": "web", "protocols": ["https"]},
            s5
        ]}),
    );
    // `"path": "/"` addresses the URL's document itself.
    send(patch_body(
        c.patch(server.t("alpha", "/v1/data/x")),
        &json!([{"op": "add", "path": "/", "value": {"a": 1}}]),
    ))
    .await
    .expect_empty(204);
    send(c.get(server.t("alpha", "/v1/data/x/a")))
        .await
        .expect(200, json!({"result": 1}));
}

/// server.go prepareV1PatchSlice / types.BadPatchOperationErr: only add,
/// remove and replace exist; anything else is 400 `invalid_parameter`
/// "bad patch operation: …". A body that is not a JSON array of operations
/// is 400 as well.
#[tokio::test]
async fn data_patch_bad_operation_is_400_invalid_parameter() {
    let server = Server::start();
    let c = client();
    send(json_body(
        c.put(server.t("alpha", "/v1/data/x")),
        &json!({"a": 1}),
    ))
    .await
    .expect_empty(204);
    for op in ["move", "copy", "test", "upsert"] {
        send(patch_body(
            c.patch(server.t("alpha", "/v1/data/x")),
            &json!([{"op": op, "path": "/a", "value": 2}]),
        ))
        .await
        .expect(
            400,
            json!({"code": "invalid_parameter", "message": format!("bad patch operation: {op}")}),
        );
    }
    for body in ["{", r#"{"op": "add"}"#] {
        send(
            c.patch(server.t("alpha", "/v1/data/x"))
                .header("content-type", "application/json-patch+json")
                .body(body),
        )
        .await
        .expect_error(400, "invalid_parameter");
    }
    send(c.get(server.t("alpha", "/v1/data/x")))
        .await
        .expect(200, json!({"result": {"a": 1}}));
}

/// rest-api.md, "Patch a Document": "the parent of the effective path MUST
/// refer to an existing document, otherwise the server returns 404", and
/// remove / replace need the document itself; server_test.go TestDataV1
/// "patch abort": a failing operation aborts the whole patch.
#[tokio::test]
async fn data_patch_missing_path_is_404_and_aborts_the_patch() {
    let server = Server::start();
    let c = client();
    send(json_body(
        c.put(server.t("alpha", "/v1/data/x")),
        &json!({"a": 1}),
    ))
    .await
    .expect_empty(204);
    for op in [
        json!({"op": "remove", "path": "/nope"}),
        json!({"op": "replace", "path": "/nope", "value": 1}),
        json!({"op": "add", "path": "/no/parent", "value": 1}),
    ] {
        let reply = send(patch_body(
            c.patch(server.t("alpha", "/v1/data/x")),
            &json!([op]),
        ))
        .await;
        reply.expect_error(404, "resource_not_found");
        reply.expect_message_prefix("storage_not_found_error: ");
    }
    let reply = send(patch_body(
        c.patch(server.t("alpha", "/v1/data/x")),
        &json!([
            {"op": "add", "path": "/foo", "value": "hello"},
            {"op": "add", "path": "/bar", "value": "world"},
            {"op": "add", "path": "/foo/bad", "value": "deadbeef"}
        ]),
    ))
    .await;
    assert_eq!(reply.status, 404, "{reply:#?}");
    send(c.get(server.t("alpha", "/v1/data/x")))
        .await
        .expect(200, json!({"result": {"a": 1}}));
}

/// rest-api.md, "Delete a Document" (`DELETE /v1/data/servers` → 204, 404
/// when missing) and server_test.go TestDataV1 "delete and check".
#[tokio::test]
async fn data_delete_then_the_document_is_undefined() {
    let server = Server::start();
    let c = client();
    let reply = send(c.delete(server.t("alpha", "/v1/data/a/b"))).await;
    reply.expect_error(404, "resource_not_found");
    reply.expect_message_prefix("storage_not_found_error: ");
    send(json_body(
        c.put(server.t("alpha", "/v1/data/a/b/c/d")),
        &json!(1),
    ))
    .await
    .expect_empty(204);
    send(c.delete(server.t("alpha", "/v1/data/a/b")))
        .await
        .expect_empty(204);
    send(c.get(server.t("alpha", "/v1/data/a/b/c/d")))
        .await
        .expect(200, json!({}));
    send(c.get(server.t("alpha", "/v1/data/a")))
        .await
        .expect(200, json!({"result": {}}));
    put_servers_data(&server, "alpha").await;
    send(c.delete(server.t("alpha", "/v1/data/servers")))
        .await
        .expect_empty(204);
    send(c.get(server.t("alpha", "/v1/data/servers")))
        .await
        .expect(200, json!({}));
}

/// server_test.go TestDataV1 "escaped paths": `%2F` inside a segment is part
/// of the key, for writes, reads and patches.
#[tokio::test]
async fn data_escaped_slashes_stay_inside_keys() {
    let server = Server::start();
    let c = client();
    send(json_body(
        c.put(server.t("alpha", "/v1/data/a%2Fb")),
        &json!({"c/d": 1}),
    ))
    .await
    .expect_empty(204);
    let reply = send(c.get(server.t("alpha", "/v1/data"))).await;
    assert_eq!(
        reply.json()["result"]["a/b"],
        json!({"c/d": 1}),
        "{reply:#?}"
    );
    send(c.get(server.t("alpha", "/v1/data/a%2Fb/c%2Fd")))
        .await
        .expect(200, json!({"result": 1}));
    send(c.get(server.t("alpha", "/v1/data/a/b")))
        .await
        .expect(200, json!({}));
    send(patch_body(
        c.patch(server.t("alpha", "/v1/data/a%2Fb")),
        &json!([{"op": "add", "path": "/e%2Ff", "value": 2}]),
    ))
    .await
    .expect_empty(204);
    send(c.get(server.t("alpha", "/v1/data/a%2Fb")))
        .await
        .expect(200, json!({"result": {"c/d": 1, "e/f": 2}}));
}

/// server.go checkPathScope and server_test.go TestBundleScope: writes at or
/// under a bundle root — and writes to an ancestor of a root — are 400
/// `invalid_parameter` "path … is owned by bundle \"…\""; the document root
/// is "can't write to document root with bundle roots configured"; a bundle
/// without roots owns "all paths".
#[tokio::test]
async fn data_writes_under_bundle_roots_are_refused() {
    let server = Server::start();
    let c = client();
    let reply = send(json_body(
        c.put(server.t("docs", "/v1/data/opa/x")),
        &json!(1),
    ))
    .await;
    reply.expect_error(400, "invalid_parameter");
    reply.expect_message_prefix("path opa/x is owned by bundle \"");

    let reply = send(json_body(
        c.put(server.t("docs", "/v1/data/system")),
        &json!(1),
    ))
    .await;
    reply.expect_error(400, "invalid_parameter");
    reply.expect_message_prefix("path system is owned by bundle \"");

    let reply = send(patch_body(
        c.patch(server.t("docs", "/v1/data/opa")),
        &json!([{"op": "add", "path": "/examples/extra", "value": 1}]),
    ))
    .await;
    reply.expect_error(400, "invalid_parameter");
    reply.expect_message_prefix("path opa/examples/extra is owned by bundle \"");

    let reply = send(c.delete(server.t("docs", "/v1/data/opa/examples/servers"))).await;
    reply.expect_error(400, "invalid_parameter");
    reply.expect_message_prefix("path opa/examples/servers is owned by bundle \"");

    send(json_body(c.put(server.t("docs", "/v1/data")), &json!({"a": "b"})))
        .await
        .expect(
            400,
            json!({"code": "invalid_parameter", "message": "can't write to document root with bundle roots configured"}),
        );

    // Outside the roots, writes are fine.
    send(json_body(
        c.put(server.t("docs", "/v1/data/foo/bar")),
        &json!(1),
    ))
    .await
    .expect_empty(204);
    // The bundle's data is untouched.
    send(c.get(server.t("docs", "/v1/data/opa/examples/networks/2/public")))
        .await
        .expect(200, json!({"result": true}));

    let reply = send(json_body(
        c.put(server.t("noroots", "/v1/data/x")),
        &json!(1),
    ))
    .await;
    reply.expect_error(400, "invalid_parameter");
    reply.expect_message_prefix("all paths owned by bundle \"");
}

// ---------------------------------------------------------------------------
// Health API
// ---------------------------------------------------------------------------

/// rest-api.md, "Health API": `/health`, `/health?bundles`,
/// `/health?plugins`, `/health?plugins&exclude-plugin=…` → 200 `{}`; and
/// server_test.go TestUnversionedGetHealthBundleNoBundleSet. tenet adds
/// `/health/live` and `/health/ready` (200 `{}` without a health policy)
/// and the same health endpoint under each tenant prefix.
#[tokio::test]
async fn health_endpoints_answer_empty_objects() {
    let server = Server::start();
    let c = client();
    // Activate a tenant first, so `?bundles` has something to wait for.
    send(c.get(server.t("docs", "/v1/data/opa/examples/public_servers")))
        .await
        .expect(200, json!({"result": public_servers()}));
    for path in [
        "/health",
        "/health?bundles",
        "/health?bundles=true",
        "/health?bundle=true",
        "/health?plugins",
        "/health?plugins&bundles",
        "/health?plugins&exclude-plugin=decision-logs&exclude-plugin=status",
        "/health/live",
        "/health/ready",
    ] {
        send(c.get(server.bare(path))).await.expect(200, json!({}));
    }
    for path in ["/health", "/health?bundles"] {
        send(c.get(server.t("docs", path)))
            .await
            .expect(200, json!({}));
    }
}

// ---------------------------------------------------------------------------
// Protocol details: redirects, methods, content types, unknown tenants
// ---------------------------------------------------------------------------

/// server/handlers/handlers.go TrailingSlashRedirectHandler and
/// server_test.go TestDataV1Redirection: every path but `/` that ends in a
/// slash is redirected to the same path without it — `/v1/data/`,
/// `/v1/policies/`, `/v1/data/a/b/c/`. A client that follows redirects gets
/// the collection. OPA answers 301 for every method; tenet answers 308 for
/// POST, PUT and PATCH so the method and body survive the redirect (a
/// fetch client turns a 301'd POST into a GET without its input).
#[tokio::test]
async fn trailing_slash_redirects_to_the_path_without_it() {
    let server = Server::start();
    let strict = no_redirect_client();
    for path in ["/v1/data/", "/v1/policies/", "/v1/data/opa/examples/"] {
        let reply = send(strict.get(server.t("docs", path))).await;
        assert_eq!(reply.status, 301, "{reply:#?}");
        let expected = format!("/tenants/docs{}", path.trim_end_matches('/'));
        assert_eq!(
            reply.location.as_deref(),
            Some(expected.as_str()),
            "{reply:#?}"
        );
    }
    let reply = send(
        strict
            .put(server.t("alpha", "/v1/data/a/b/c/"))
            .body("{\"foo\": [1, 2, 3]}"),
    )
    .await;
    assert_eq!(reply.status, 308, "{reply:#?}");
    assert_eq!(
        reply.location.as_deref(),
        Some("/tenants/alpha/v1/data/a/b/c"),
        "{reply:#?}"
    );
    // Nothing was written by the redirected PUT.
    send(client().get(server.t("alpha", "/v1/data/a")))
        .await
        .expect(200, json!({}));
    // Bare paths redirect to bare paths.
    let reply = send(
        strict
            .get(server.bare("/v1/policies/"))
            .header("X-Tenant-ID", "alpha"),
    )
    .await;
    assert_eq!(reply.status, 301, "{reply:#?}");
    assert_eq!(
        reply.location.as_deref(),
        Some("/v1/policies"),
        "{reply:#?}"
    );

    let c = client();
    send(c.get(server.t("alpha", "/v1/policies/")))
        .await
        .expect(200, json!({"result": []}));
    let reply = send(c.get(server.t("docs", "/v1/data/opa/examples/"))).await;
    assert_eq!(
        reply.json()["result"]["allow_request"],
        Value::Null,
        "{reply:#?}"
    );
    assert_eq!(
        reply.json()["result"]["public_servers"],
        public_servers(),
        "{reply:#?}"
    );
}

/// rest-api.md "Method not Allowed" and server_test.go Test405StatusCodev1:
/// HEAD anywhere under the API, and methods a resource does not have, are
/// 405.
#[tokio::test]
async fn unsupported_methods_are_405() {
    let server = Server::start();
    let c = client();
    let cases = [
        (reqwest::Method::HEAD, "/v1/data/lvl1"),
        (reqwest::Method::HEAD, "/v1/data"),
        (reqwest::Method::OPTIONS, "/v1/data"),
        (reqwest::Method::DELETE, "/v1/data"),
        (reqwest::Method::HEAD, "/v1/policies"),
        (reqwest::Method::DELETE, "/v1/policies"),
        (reqwest::Method::POST, "/v1/policies"),
        (reqwest::Method::PUT, "/v1/policies"),
        (reqwest::Method::PATCH, "/v1/policies"),
        (reqwest::Method::HEAD, "/v1/policies/lvl1"),
        (reqwest::Method::POST, "/v1/policies/lvl1"),
        (reqwest::Method::PATCH, "/v1/policies/x"),
        (reqwest::Method::GET, "/v1/batch/data/x"),
        (reqwest::Method::PUT, "/v1/batch/data/x"),
        (reqwest::Method::GET, "/"),
        (reqwest::Method::POST, "/health"),
    ];
    for (method, path) in cases {
        let head = method == reqwest::Method::HEAD;
        let reply = send(c.request(method, server.t("alpha", path))).await;
        assert_eq!(reply.status, 405, "{reply:#?}");
        // Every 405 with a body carries OPA's error shape (HEAD has none).
        if !head {
            assert_eq!(reply.json()["code"], "method_not_allowed", "{reply:#?}");
        }
    }
}

/// rest-api.md, "Errors": every answer with a body is JSON, errors included,
/// with `Content-Type: application/json`.
#[tokio::test]
async fn every_answer_with_a_body_is_application_json() {
    let server = Server::start();
    let c = client();
    let replies = [
        send(c.get(server.t("docs", "/v1/data"))).await,
        send(c.get(server.t("docs", "/v1/policies"))).await,
        send(c.get(server.t("docs", "/v1/policies/nope"))).await,
        send(json_body(
            c.post(server.t("docs", "/")),
            &json!({"user": "x"}),
        ))
        .await,
        send(json_body(c.post(server.t("docs", "/")), &json!({}))).await,
        send(c.post(server.t("docs", "/v1/data/x")).body("{")).await,
        send(json_body(
            c.post(server.t("docs", "/v1/data/opa/conflict/p")),
            &json!({"input": {"on": true}}),
        ))
        .await,
        send(rego(c.put(server.t("alpha", "/v1/policies/p")), "package")).await,
        send(rego(
            c.put(server.t("alpha", "/v1/policies/p")),
            "package p\n",
        ))
        .await,
        send(c.delete(server.t("alpha", "/v1/data/missing"))).await,
        send(json_body(
            c.put(server.t("docs", "/v1/data/opa")),
            &json!(1),
        ))
        .await,
        send(c.get(server.t("nobody", "/v1/policies"))).await,
        send(c.get(server.bare("/health"))).await,
        send(json_body(
            c.post(server.t("docs", "/v1/batch/data/opa/batch/verdict")),
            &json!({"inputs": {"a": {"user": "a"}}}),
        ))
        .await,
    ];
    for reply in replies {
        reply.json();
    }
}

/// tenet: a tenant without a bundle directory and without pushed content is
/// unknown to every read — 404 `tenant_not_found` — and reads do not create
/// it.
#[tokio::test]
async fn unknown_tenants_are_404_tenant_not_found_on_reads() {
    let server = Server::start();
    let c = client();
    let replies = [
        send(c.get(server.t("nobody", "/v1/policies"))).await,
        send(c.get(server.t("nobody", "/v1/policies/p"))).await,
        send(c.delete(server.t("nobody", "/v1/policies/p"))).await,
        send(c.delete(server.t("nobody", "/v1/data/x"))).await,
        send(json_body(
            c.post(server.t("nobody", "/v1/batch/data/x")),
            &json!({"inputs": {"a": {}}}),
        ))
        .await,
        send(c.get(server.t("nobody", "/v1/data/x"))).await,
        send(json_body(
            c.post(server.t("nobody", "/v1/data/x")),
            &json!({"input": {}}),
        ))
        .await,
        send(c.get(server.t("nobody", "/v1/policies"))).await,
    ];
    for reply in replies {
        reply.expect_error(404, "tenant_not_found");
    }
}

/// tenet (overlay.rs): a push to a tenant without a bundle creates a tenant
/// fed only by pushes, whose empty bundle owns no path.
#[tokio::test]
async fn push_to_a_tenant_without_a_bundle_creates_it() {
    let server = Server::start();
    let c = client();
    send(rego(
        c.put(server.t("fresh", "/v1/policies/p.rego")),
        "package fresh\n\nhello := data.greeting\n",
    ))
    .await
    .expect(200, json!({}));
    send(json_body(
        c.put(server.t("fresh", "/v1/data/greeting")),
        &json!("hi"),
    ))
    .await
    .expect_empty(204);
    send(c.get(server.t("fresh", "/v1/data/fresh/hello")))
        .await
        .expect(200, json!({"result": "hi"}));
    let reply = send(c.get(server.t("fresh", "/v1/policies"))).await;
    assert_eq!(reply.status, 200, "{reply:#?}");
    assert_eq!(reply.json()["result"][0]["id"], "p.rego", "{reply:#?}");
    // Other unknown tenants stay unknown.
    send(c.get(server.t("other", "/v1/policies")))
        .await
        .expect_error(404, "tenant_not_found");
}

// ---------------------------------------------------------------------------
// Multi-tenant isolation
// ---------------------------------------------------------------------------

/// tenet: policies and data pushed to tenant `alpha` are invisible to
/// tenant `beta`, by URL prefix and by header, and the same policy id can
/// hold different modules in each tenant.
#[tokio::test]
async fn pushed_policies_and_data_stay_in_their_tenant() {
    let server = Server::start();
    let c = client();
    send(rego(
        c.put(server.t("alpha", "/v1/policies/shared-id")),
        "package pushed\n\nwho := \"alpha\"\n",
    ))
    .await
    .expect(200, json!({}));
    send(json_body(
        c.put(server.t("alpha", "/v1/data/secrets")),
        &json!({"key": "alpha-only"}),
    ))
    .await
    .expect_empty(204);

    // beta sees none of it.
    send(c.get(server.t("beta", "/v1/policies")))
        .await
        .expect(200, json!({"result": []}));
    send(c.get(server.t("beta", "/v1/policies/shared-id")))
        .await
        .expect_error(404, "resource_not_found");
    send(c.get(server.t("beta", "/v1/data")))
        .await
        .expect(200, json!({"result": {"owned": {"tenant": "beta"}}}));
    send(c.get(server.t("beta", "/v1/data/pushed/who")))
        .await
        .expect(200, json!({}));
    send(c.get(server.t("beta", "/v1/data/secrets")))
        .await
        .expect(200, json!({}));
    send(c.get(server.bare("/v1/data")).header("X-Tenant-ID", "beta"))
        .await
        .expect(200, json!({"result": {"owned": {"tenant": "beta"}}}));
    send(
        c.get(server.bare("/v1/policies"))
            .header("X-Tenant-ID", "beta"),
    )
    .await
    .expect(200, json!({"result": []}));
    let reply = send(c.get(server.t("docs", "/v1/data"))).await;
    let body = reply.json();
    assert!(body["result"].get("pushed").is_none(), "{reply:#?}");
    assert!(body["result"].get("secrets").is_none(), "{reply:#?}");

    // The same id in beta is beta's own module.
    send(rego(
        c.put(server.t("beta", "/v1/policies/shared-id")),
        "package pushed\n\nwho := \"beta\"\n",
    ))
    .await
    .expect(200, json!({}));
    send(c.get(server.t("alpha", "/v1/data/pushed/who")))
        .await
        .expect(200, json!({"result": "alpha"}));
    send(c.get(server.t("beta", "/v1/data/pushed/who")))
        .await
        .expect(200, json!({"result": "beta"}));
    // Deleting in beta leaves alpha's.
    send(c.delete(server.t("beta", "/v1/policies/shared-id")))
        .await
        .expect(200, json!({}));
    send(c.get(server.t("alpha", "/v1/data/pushed/who")))
        .await
        .expect(200, json!({"result": "alpha"}));
    send(c.get(server.t("alpha", "/v1/data/secrets/key")))
        .await
        .expect(200, json!({"result": "alpha-only"}));
}

/// tenet: the bare routes with `X-Tenant-ID` serve the policy, data-write
/// and batch APIs exactly as the `/tenants/{tenant}` routes do.
#[tokio::test]
async fn tenant_header_form_serves_every_api() {
    let server = Server::start();
    let c = client();
    let h = |req: reqwest::RequestBuilder| req.header("X-Tenant-ID", "alpha");
    send(h(rego(
        c.put(server.bare("/v1/policies/hdr.rego")),
        "package hdr\n\nv := data.hdr_data.n\n",
    )))
    .await
    .expect(200, json!({}));
    send(h(json_body(
        c.put(server.bare("/v1/data/hdr_data")),
        &json!({"n": 1}),
    )))
    .await
    .expect_empty(204);
    send(h(patch_body(
        c.patch(server.bare("/v1/data/hdr_data")),
        &json!([{"op": "replace", "path": "/n", "value": 2}]),
    )))
    .await
    .expect_empty(204);
    send(h(c.get(server.bare("/v1/data/hdr/v"))))
        .await
        .expect(200, json!({"result": 2}));
    // The same state through the URL prefix.
    send(c.get(server.t("alpha", "/v1/data/hdr/v")))
        .await
        .expect(200, json!({"result": 2}));
    let reply = send(h(c.get(server.bare("/v1/policies/hdr.rego")))).await;
    assert_eq!(reply.json()["result"]["id"], "hdr.rego", "{reply:#?}");
    send(h(json_body(
        c.post(server.bare("/v1/batch/data/hdr/v")),
        &json!({"inputs": {"one": {}}}),
    )))
    .await
    .expect(200, json!({"responses": {"one": {"result": 2}}}));
    send(h(c.delete(server.bare("/v1/data/hdr_data"))))
        .await
        .expect_empty(204);
    send(h(c.delete(server.bare("/v1/policies/hdr.rego"))))
        .await
        .expect(200, json!({}));
    send(h(c.get(server.bare("/v1/policies"))))
        .await
        .expect(200, json!({"result": []}));
    // Without the header the bare routes cannot pick a tenant.
    send(c.get(server.bare("/v1/policies")))
        .await
        .expect_error(400, "invalid_parameter");
}

// ---------------------------------------------------------------------------
// Batch API (Enterprise OPA shape)
// ---------------------------------------------------------------------------

/// EOPA "Batch Query API" (`POST /v1/batch/data/{path}`): when every query
/// succeeds the answer is 200 `{"responses": {id: DataResponse}}`, each
/// response shaped as the data API's (an undefined result is `{}`), with no
/// `http_status_code`.
#[tokio::test]
async fn batch_all_inputs_succeed_is_200() {
    let server = Server::start();
    let c = client();
    send(json_body(
        c.post(server.t("docs", "/v1/batch/data/opa/batch/verdict")),
        &json!({"inputs": {"a": {"user": "alice"}, "b": {"user": "bob"}}}),
    ))
    .await
    .expect(
        200,
        json!({"responses": {"a": {"result": "alice"}, "b": {"result": "bob"}}}),
    );
    send(json_body(
        c.post(server.t("docs", "/v1/batch/data/opa/examples/allow_request")),
        &json!({"inputs": {
            "yes": {"example": {"flag": true}},
            "no": {"example": {"flag": false}}
        }}),
    ))
    .await
    .expect(
        200,
        json!({"responses": {"yes": {"result": true}, "no": {}}}),
    );
}

/// EOPA "Batch Query API", request body `common_input`: "Shared input
/// object which individual inputs are deep merged with. Any keys specified
/// in both … will prefer the inputs value" (eopa batchquery mergeMaps).
#[tokio::test]
async fn batch_common_input_is_deep_merged_under_each_input() {
    let server = Server::start();
    let c = client();
    send(rego(
        c.put(server.t("alpha", "/v1/policies/echo.rego")),
        "package batch\n\necho := input\n",
    ))
    .await
    .expect(200, json!({}));
    send(json_body(
        c.post(server.t("alpha", "/v1/batch/data/batch/echo")),
        &json!({
            "common_input": {"user": "carol", "ctx": {"tenant": "t1", "region": "eu"}},
            "inputs": {
                "plain": {},
                "override": {"user": "dave", "ctx": {"region": "us"}, "extra": [1]}
            }
        }),
    ))
    .await
    .expect(
        200,
        json!({"responses": {
            "plain": {"result": {"user": "carol", "ctx": {"tenant": "t1", "region": "eu"}}},
            "override": {"result": {
                "user": "dave",
                "ctx": {"tenant": "t1", "region": "us"},
                "extra": [1]
            }}
        }}),
    );
}

/// EOPA "Batch Query API" status codes: 207 when some queries fail and some
/// succeed — then every response carries its `http_status_code` ("200" /
/// "500", strings) and failures are OPA error objects — and 500 when all
/// fail (without `http_status_code`).
#[tokio::test]
async fn batch_mixed_results_are_207_and_all_failures_500() {
    let server = Server::start();
    let c = client();
    let url = server.t("docs", "/v1/batch/data/opa/batch/verdict");
    let reply = send(json_body(
        c.post(&url),
        &json!({"inputs": {"ok": {"user": "alice"}, "bad": {"conflict": true}}}),
    ))
    .await;
    assert_eq!(reply.status, 207, "{reply:#?}");
    let body = reply.json();
    assert_eq!(
        body["responses"]["ok"],
        json!({"result": "alice", "http_status_code": "200"}),
        "{reply:#?}"
    );
    let bad = &body["responses"]["bad"];
    assert_eq!(bad["http_status_code"], "500", "{reply:#?}");
    assert_eq!(bad["code"], "internal_error", "{reply:#?}");
    assert!(bad["message"].is_string(), "{reply:#?}");
    assert!(bad.get("result").is_none(), "{reply:#?}");

    let reply = send(json_body(
        c.post(&url),
        &json!({"inputs": {"x": {"conflict": true}, "y": {"conflict": true}}}),
    ))
    .await;
    assert_eq!(reply.status, 500, "{reply:#?}");
    let body = reply.json();
    for id in ["x", "y"] {
        let response = &body["responses"][id];
        assert_eq!(response["code"], "internal_error", "{reply:#?}");
        assert!(response.get("http_status_code").is_none(), "{reply:#?}");
    }
}

/// eopa batchquery: no `inputs` key is 200 with the warning "'inputs' key
/// missing from the request"; a malformed body is 400 `invalid_parameter`
/// "body contains malformed input document: …".
#[tokio::test]
async fn batch_without_inputs_warns_and_malformed_body_is_400() {
    let server = Server::start();
    let c = client();
    let url = server.t("docs", "/v1/batch/data/opa/batch/verdict");
    send(json_body(c.post(&url), &json!({})))
        .await
        .expect(
            200,
            json!({"warning": {"code": "api_usage_warning", "message": "'inputs' key missing from the request"}}),
        );
    let reply = send(
        c.post(&url)
            .header("content-type", "application/json")
            .body("{\"inputs\": "),
    )
    .await;
    reply.expect_error(400, "invalid_parameter");
    reply.expect_message_prefix("body contains malformed input document: ");
}
