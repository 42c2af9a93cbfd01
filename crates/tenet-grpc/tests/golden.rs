//! Golden tests against opa-envoy-plugin: for each documented request
//! (tests/fixtures/plugin_inputs.json) the same input document, and for
//! each documented decision (tests/fixtures/plugin_results.json) the same
//! `CheckResponse`. Every case names the plugin test or source it comes
//! from (open-policy-agent/opa-envoy-plugin).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use serde_json::Value;
use tenet_grpc::input::{build, InputLimits};
use tenet_grpc::response::{dry_run, to_response, with_decision_id};
use tenet_grpc::ExtAuthzConfig;

fn limits() -> InputLimits {
    InputLimits::new(&ExtAuthzConfig::default(), 64)
}

#[test]
fn input_documents_are_the_plugins() {
    let fixture = support::fixture("plugin_inputs.json");
    let cases = fixture["cases"].as_array().unwrap();
    assert!(cases.len() >= 10);
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let source = case["source"].as_str().unwrap();
        assert!(
            source.contains("opa-envoy-plugin"),
            "{name}: cite the plugin"
        );
        let request = support::check_request(&case["request"]);
        let skip = case["skip_request_body_parse"].as_bool().unwrap_or(false);
        let built = build(&request, skip, &limits());
        match (&case["input"], &case["error"]) {
            (expected @ Value::Object(_), Value::Null) => {
                let got = built.unwrap_or_else(|e| panic!("{name}: {e}"));
                assert_eq!(
                    &got,
                    expected,
                    "{name} ({source}):\n got {}\nwant {}",
                    serde_json::to_string_pretty(&got).unwrap(),
                    serde_json::to_string_pretty(expected).unwrap()
                );
            }
            (Value::Null, error) => {
                let e = built.expect_err(name);
                assert_eq!(
                    u64::from(e.http_status()),
                    error["http_status"].as_u64().unwrap(),
                    "{name}"
                );
                let prefix = error["body_prefix"].as_str().unwrap();
                assert!(e.to_string().starts_with(prefix), "{name}: {e}");
            }
            _ => panic!("{name}: a case has an input or an error"),
        }
    }
}

#[test]
fn responses_are_the_plugins() {
    let fixture = support::fixture("plugin_results.json");
    let cases = fixture["cases"].as_array().unwrap();
    assert!(cases.len() >= 10);
    for case in cases {
        let name = case["name"].as_str().unwrap();
        assert!(case["source"]
            .as_str()
            .unwrap()
            .contains("opa-envoy-plugin"));
        let mapped = to_response(&case["decision"]);
        if let Some(contains) = case["error_contains"].as_str() {
            let e = mapped.expect_err(name).to_string();
            assert!(e.contains(contains), "{name}: {e:?} lacks {contains:?}");
            continue;
        }
        let mut response = mapped.unwrap_or_else(|e| panic!("{name}: {e}"));
        if case["dry_run"].as_bool().unwrap_or(false) {
            dry_run(&mut response);
        }
        with_decision_id(&mut response, "9f3c1f8e-0000-4000-8000-000000000000");
        let (got, decision_id) = support::response_json(&response);
        assert_eq!(
            decision_id.as_deref(),
            Some("9f3c1f8e-0000-4000-8000-000000000000"),
            "{name}: the decision id is in the dynamic metadata"
        );
        assert_eq!(got, case["response"], "{name}");
    }
}
