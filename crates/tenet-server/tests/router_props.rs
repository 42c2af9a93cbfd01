//! Property tests over the HTTP router (`tenet_server::app` with the
//! example bundles, driven in-process with `oneshot`): random paths (odd
//! and percent-encoded segments, `..`, very long and deep paths, trailing
//! slashes), methods, headers, bodies, content types and content encodings.
//! For every request: no panic, an answer within a generous bound, no 5xx
//! but the documented ones (docs/api.md, "Errors"), and every non-2xx
//! answer with a body in OPA's one error shape `{"code": string,
//! "message": string, …}`; every other body is JSON too, except the
//! Prometheus text of `/metrics`. Part of #10 ("Done when": property tests
//! over the router).
//!
//! The number of cases is bounded (256, or `PROPTEST_CASES`) so the test
//! stays around a minute in a debug build. Bugs it found have their own
//! regression cases at the end of this file.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderName, HeaderValue, Method, Request, StatusCode, Uri};
use proptest::prelude::*;
use serde_json::{json, Value};
use std::io::Write;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tower::ServiceExt;

mod support;
use support::{alice, root};

/// One runtime and one router for every case: the state a case leaves
/// (pushed policies and data, tenants created) is part of what the next
/// case meets.
fn harness() -> &'static (tokio::runtime::Runtime, axum::Router) {
    static HARNESS: OnceLock<(tokio::runtime::Runtime, axum::Router)> = OnceLock::new();
    HARNESS.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let app = runtime.block_on(async {
            let template = root().join("examples/bundles/{tenant}");
            let sources = tenet_server::sources::Sources::new(
                template.to_str().unwrap(),
                tenet_source::SourceOptions::default(),
                None,
            )
            .unwrap();
            // As `tenet serve` configures it: tenants load on first use.
            let config = tenet::HostConfig {
                on_demand: true,
                ..tenet::HostConfig::default()
            };
            let host = tenet::Host::new(config, Arc::new(sources));
            let state = tenet_server::AppState::new(
                host,
                HeaderName::from_static("x-tenant-id"),
                "system/main".into(),
                1 << 20,
            );
            tenet_server::app(state)
        });
        (runtime, app)
    })
}

/// A request as generated, kept printable for proptest's report.
#[derive(Debug, Clone)]
struct Case {
    method: String,
    path: String,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
}

fn segment() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(vec![
            "payments", "authz", "allow", "deny_reasons", "storefront", "analytics", "system",
            "main", "v1", "data", "tenants", "0", "-1", "99999999999999999999", "",
            ".", "..", "%2e%2e", "%2E", "%2F", "%2f..%2f", "%00", "%ff", "%FF%FE", "%zz", "%",
            "%25", "a%20b", "%E2%9C%93", "%C0%AF", "*", "~", "a.b", "_", "x:y", "@", "$", "!",
            "'", "(", ")", ";", "=", "&", "+", ",",
        ])
        .prop_map(str::to_string),
        3 => "[a-zA-Z0-9_.~-]{1,12}",
        1 => "[a-z]{200,2000}",
    ]
}

fn path() -> impl Strategy<Value = String> {
    let prefix = prop_oneof![
        3 => Just(String::new()),
        3 => Just("/tenants/payments".to_string()),
        1 => Just("/tenants/storefront".to_string()),
        1 => Just("/tenants/analytics".to_string()),
        2 => segment().prop_map(|s| format!("/tenants/{s}")),
    ];
    // The decision and push routes most often.
    let route = prop::sample::select(vec![
        "/v1/data",
        "/v1/data",
        "/v1/data",
        "/v1/data",
        "/v1/data",
        "/v1/data",
        "/v1/batch/data",
        "/v1/batch/data",
        "/v1/policies",
        "/v1/policies",
        "/v0/data",
        "/v0/data",
        "/v1/tenants",
        "/health",
        "/health/ready",
        "/health/live",
        "/metrics",
        "",
        "/",
        "/v1/query",
        "/v1/compile",
        "/v1/status",
        "/v1/config",
    ]);
    let rest = prop_oneof![
        8 => prop::collection::vec(segment(), 0..6).prop_map(|s| s.join("/")),
        4 => prop::sample::select(vec![
            "payments/authz/allow",
            "payments/authz/deny_reasons",
            "payments/authz",
            "payments",
            "system/main",
            "payments/authz/policy.rego",
        ])
        .prop_map(str::to_string),
        1 => (1usize..400).prop_map(|n| vec!["a"; n].join("/")),
        1 => (1usize..4000).prop_map(|n| "/".repeat(n)),
    ];
    let query = prop::sample::select(vec![
        "",
        "",
        "?pretty",
        "?metrics",
        "?provenance",
        "?bundles",
        "?input=%7B%7D",
        "?input=%7B%22user%22%3A%22alice%22%7D",
        "?input=garbage",
        "?input=%5B%5B%5B%5B",
        "?pretty=true&metrics=1&provenance",
        "?%zz",
        "?a=%FF",
        "?&&&",
        "?explain=full&instrument",
    ]);
    (prefix, route, rest, prop::bool::weighted(0.15), query).prop_map(
        |(prefix, route, rest, slash, query)| {
            let mut p = format!("{prefix}{route}");
            if !rest.is_empty() {
                p.push('/');
                p.push_str(&rest);
            }
            if slash {
                p.push('/');
            }
            if p.is_empty() {
                p.push('/');
            }
            format!("{p}{query}")
        },
    )
}

fn method() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "GET", "GET", "POST", "POST", "POST", "PUT", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS",
        "TRACE", "PROPFIND", "X",
    ])
    .prop_map(str::to_string)
}

/// A small JSON value.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        "[ -~]{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map("[a-z_]{0,6}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A body before any content encoding.
fn plain_body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        2 => Just(Vec::new()),
        2 => Just(json!({ "input": alice() }).to_string().into_bytes()),
        3 => json_value().prop_map(|v| v.to_string().into_bytes()),
        2 => json_value().prop_map(|v| json!({ "input": v }).to_string().into_bytes()),
        1 => (json_value(), json_value()).prop_map(|(a, b)| {
            json!({"inputs": {"a": a, "b": b}, "common_input": {"x": 1}}).to_string().into_bytes()
        }),
        1 => json_value().prop_map(|v| {
            json!([{"op": "add", "path": "/a", "value": v}, {"op": "remove", "path": "/zz"}])
                .to_string().into_bytes()
        }),
        1 => prop::sample::select(vec![
            "input:\n  user: alice\n  action: refund\n",
            "a: &x [1, 2]\nb: *x\ninput: *x\n",
            "- - - - 1\n",
            "input: {a: [1, {b: c}]}\n",
            "input: !!binary aGVsbG8=\n",
            "input: *undefined\n",
            "{\"input\": 1",
            "package x\n\nallow := true\n",
            "package payments.authz\n\nallow := false\n",
            "package x\n\np contains x if { x := input.y }\n",
            "package",
            "null",
            "[]",
            "\"input\"",
        ])
        .prop_map(|s| s.as_bytes().to_vec()),
        2 => prop::collection::vec(any::<u8>(), 0..256),
        // Nesting around and past the input depth limit (kept shallow
        // enough that a YAML parser's own cost stays small).
        1 => (1usize..3000).prop_map(|n| {
            format!("{{\"input\": {}{}}}", "[".repeat(n), "]".repeat(n)).into_bytes()
        }),
        1 => (1usize..200).prop_map(|n| format!("input:\n{}1\n", "- ".repeat(n)).into_bytes()),
        1 => (1usize..200).prop_map(|n| {
            format!("input: {}1{}\n", "{a: ".repeat(n), "}".repeat(n)).into_bytes()
        }),
    ]
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

fn header_value() -> impl Strategy<Value = String> {
    "[ -~]{0,24}"
}

fn case() -> impl Strategy<Value = Case> {
    let content_type = prop_oneof![
        3 => Just(None),
        3 => Just(Some("application/json".to_string())),
        1 => Just(Some("application/json; charset=utf-8".to_string())),
        1 => Just(Some("application/x-yaml".to_string())),
        1 => Just(Some("application/yaml".to_string())),
        1 => Just(Some("text/yaml".to_string())),
        1 => Just(Some("text/plain".to_string())),
        1 => Just(Some("application/x-www-form-urlencoded".to_string())),
        1 => header_value().prop_map(Some),
    ];
    // 0: no encoding; 1: gzip of the body; 2: gzip declared, body raw;
    // 3: gzip, truncated; 4: another or a garbage encoding.
    let encoding = prop_oneof![
        4 => Just((0u8, None)),
        2 => Just((1u8, Some("gzip".to_string()))),
        1 => Just((2u8, Some("gzip".to_string()))),
        1 => Just((3u8, Some("gzip".to_string()))),
        1 => prop::sample::select(vec!["GZIP", "deflate", "br", "gzip, gzip", "identity", "x"])
            .prop_map(|e| (4u8, Some(e.to_string()))),
        1 => header_value().prop_map(|e| (4u8, Some(e))),
    ];
    let tenant_header = prop_oneof![
        3 => Just(None),
        2 => Just(Some("payments".to_string())),
        1 => header_value().prop_map(Some),
    ];
    let auth = prop_oneof![
        4 => Just(None),
        1 => header_value().prop_map(|t| Some(format!("Bearer {t}"))),
    ];
    let if_none_match = prop_oneof![5 => Just(false), 1 => Just(true)];
    (
        method(),
        path(),
        content_type,
        encoding,
        tenant_header,
        auth,
        if_none_match,
        plain_body(),
    )
        .prop_map(
            |(method, path, content_type, (how, encoding), tenant, auth, inm, body)| {
                let body = match how {
                    1 => gzip(&body),
                    3 => {
                        let g = gzip(&body);
                        g[..g.len() / 2].to_vec()
                    }
                    _ => body,
                };
                let mut headers = Vec::new();
                if let Some(v) = content_type {
                    headers.push(("content-type", v));
                }
                if let Some(v) = encoding {
                    headers.push(("content-encoding", v));
                }
                if let Some(v) = tenant {
                    headers.push(("x-tenant-id", v));
                }
                if let Some(v) = auth {
                    headers.push(("authorization", v));
                }
                if inm {
                    headers.push(("if-none-match", "*".to_string()));
                }
                Case {
                    method,
                    path,
                    headers,
                    body,
                }
            },
        )
}

/// `path` as a URI: as generated when `http` accepts it, else with every
/// byte outside the unreserved set and `/?=&%` percent-encoded.
fn uri(path: &str) -> Uri {
    if let Ok(uri) = Uri::try_from(path) {
        return uri;
    }
    let mut out = String::new();
    for b in path.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/?=&%".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    Uri::try_from(out.as_str()).unwrap_or_else(|_| Uri::from_static("/"))
}

fn request(case: &Case) -> Request<Body> {
    let mut builder = Request::builder()
        .method(Method::from_bytes(case.method.as_bytes()).unwrap())
        .uri(uri(&case.path));
    for (name, value) in &case.headers {
        if let Ok(value) = HeaderValue::from_str(value) {
            builder = builder.header(*name, value);
        }
    }
    let mut request = builder.body(Body::from(case.body.clone())).unwrap();
    request
        .extensions_mut()
        .insert(ConnectInfo(SocketAddr::from(([127, 0, 0, 1], 40000))));
    request
}

/// The 5xx answers docs/api.md lists, by status and code.
const DOCUMENTED_5XX: &[(u16, &str)] = &[
    (500, "internal_error"),
    (500, "evaluation_timeout"),
    (502, "load_failed"),
    (503, "tenant_not_ready"),
    (503, "capacity_exceeded"),
];

/// Sends `case` and checks the answer; `Err` says what was wrong.
fn check(case: &Case) -> Result<(), TestCaseError> {
    let (runtime, app) = harness();
    let (status, content_type, body) = runtime.block_on(async {
        let response =
            tokio::time::timeout(Duration::from_secs(60), app.clone().oneshot(request(case)))
                .await
                .map_err(|_| TestCaseError::fail("no answer within 60 s"))?
                .unwrap();
        let status = response.status();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let body = axum::body::to_bytes(response.into_body(), 64 << 20)
            .await
            .map_err(|e| TestCaseError::fail(format!("reading the body: {e}")))?;
        Ok::<_, TestCaseError>((status, content_type, body))
    })?;
    let text = String::from_utf8_lossy(&body);
    let path = uri(&case.path).path().to_string();
    if status == StatusCode::OK && path == "/metrics" {
        return Ok(());
    }
    // The status page (docs/api.md): HTML, on `GET /` and `GET /ui`.
    if status == StatusCode::OK && (path == "/" || path == "/ui") {
        prop_assert!(
            content_type.starts_with("text/html"),
            "{status}: content type {content_type:?} for the status page"
        );
        return Ok(());
    }
    let parsed: Option<Value> = (!body.is_empty())
        .then(|| serde_json::from_slice(&body))
        .transpose()
        .map_err(|e| TestCaseError::fail(format!("{status}: body is not JSON ({e}): {text}")))?;
    if parsed.is_some() {
        prop_assert!(
            content_type.starts_with("application/json"),
            "{status}: content type {content_type:?} for {text}"
        );
    }
    // OPA's health answers (documented with /health?bundles and
    // /health/ready): 500 {"error": "..."} while a tenant is not ready.
    let health = path == "/health" || path == "/health/ready";
    if status.is_server_error() {
        let code = parsed
            .as_ref()
            .and_then(|v| v.get("code"))
            .and_then(Value::as_str)
            .unwrap_or_default();
        let documented = DOCUMENTED_5XX.contains(&(status.as_u16(), code))
            || (health && status == StatusCode::INTERNAL_SERVER_ERROR);
        prop_assert!(documented, "undocumented {status}: {text}");
    }
    if !status.is_success() {
        if let Some(v) = &parsed {
            let shaped = v.get("code").is_some_and(Value::is_string)
                && v.get("message").is_some_and(Value::is_string);
            let health_error = health && v.get("error").is_some_and(Value::is_string);
            prop_assert!(
                shaped || health_error,
                "{status}: not OPA's error shape: {text}"
            );
        }
    }
    Ok(())
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(256)
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: cases(),
        // Failures are pinned as named regression cases below, not in a
        // proptest-regressions file.
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn every_request_gets_a_documented_answer_in_one_shape(case in case()) {
        check(&case)?;
    }
}

/// The answers the payments example must give, so the property test is
/// known to reach the decision path (and not only error paths).
#[test]
fn the_harness_decides() {
    let case = Case {
        method: "POST".into(),
        path: "/tenants/payments/v1/data/payments/authz/allow".into(),
        headers: vec![("content-type", "application/json".into())],
        body: json!({ "input": alice() }).to_string().into_bytes(),
    };
    check(&case).unwrap();
    let (runtime, app) = harness();
    let body = runtime.block_on(async {
        let response = app.clone().oneshot(request(&case)).await.unwrap();
        axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap()
    });
    assert_eq!(
        serde_json::from_slice::<Value>(&body).unwrap(),
        json!({"result": true})
    );
}

/// Found by the property test: `/tenants/` (the tenant prefix and no
/// tenant) underflowed in the trailing-slash check, a panic in a debug
/// build (and a wrong branch in release). It is redirected like any other
/// trailing slash.
#[test]
fn regression_the_tenants_prefix_without_a_tenant() {
    for method in ["GET", "POST", "PUT", "PATCH", "DELETE"] {
        let case = Case {
            method: method.into(),
            path: "/tenants/".into(),
            headers: vec![],
            body: vec![],
        };
        check(&case).unwrap();
        let (runtime, app) = harness();
        let response = runtime
            .block_on(app.clone().oneshot(request(&case)))
            .unwrap();
        assert!(
            response.status().is_redirection(),
            "{method}: {}",
            response.status()
        );
        assert_eq!(response.headers()["location"], "/tenants", "{method}");
    }
}

/// A gap found while hardening (#10 finding 6): with no token configured,
/// the admin API's changes (pin, unpin, reload) follow the write rule, so
/// where unauthenticated writes are not allowed (`AppState::new`'s default,
/// as on a non-loopback address) nobody can pin a tenant without a bundle
/// and hold `/health/ready` at 500. Reading the tenants stays open.
#[test]
fn admin_changes_without_a_token_follow_the_write_rule() {
    let (runtime, app) = harness();
    let send = |method: &str, path: &str| {
        let case = Case {
            method: method.into(),
            path: path.into(),
            headers: vec![],
            body: vec![],
        };
        runtime.block_on(async {
            let response = app.clone().oneshot(request(&case)).await.unwrap();
            let status = response.status();
            let body = axum::body::to_bytes(response.into_body(), 1 << 20)
                .await
                .unwrap();
            (
                status,
                serde_json::from_slice::<Value>(&body).unwrap_or(Value::Null),
            )
        })
    };
    for (method, path) in [
        ("PUT", "/v1/tenants/pinned-by-anyone"),
        ("DELETE", "/v1/tenants/payments"),
        ("POST", "/v1/tenants/payments/reload"),
    ] {
        let (status, body) = send(method, path);
        assert_eq!(status, StatusCode::FORBIDDEN, "{method} {path}: {body}");
        assert_eq!(body["code"], "writes_disabled", "{method} {path}: {body}");
    }
    let (status, body) = send("GET", "/v1/tenants");
    assert_eq!(status, StatusCode::OK, "{body}");
}
