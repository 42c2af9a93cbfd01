//! The hostile-policy corpus pushed to a running server: every policy in
//! `fixtures/policies/hostile/` goes to its own tenant over OPA's policy
//! API, is refused (compile errors such as recursion) or evaluated, and the
//! process keeps answering another tenant correctly after each one. A stack
//! overflow or an allocation abort here would kill the server and fail the
//! next request.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use serde_json::{json, Value};
use support::{client, root, still_answers, Server};

#[tokio::test]
async fn every_hostile_policy_fails_alone_and_the_server_keeps_answering() {
    let mut server = Server::start(&["--deadline-ms", "300"]);
    let c = client(30);
    let dir = root().join("fixtures/policies/hostile");
    let expected: serde_json::Map<String, Value> =
        serde_json::from_str(&std::fs::read_to_string(dir.join("expected.json")).unwrap()).unwrap();
    still_answers(&c, &mut server, "start", 0, 0).await;
    let mut names: Vec<&String> = expected.keys().collect();
    names.sort();
    for name in names {
        let case = &expected[name];
        let source = std::fs::read_to_string(dir.join(format!("{name}.rego"))).unwrap();
        let tenant = format!("hostile-{name}");
        let resp = c
            .put(server.url(&format!("/tenants/{tenant}/v1/policies/{name}.rego")))
            .body(source)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{name}: push: {e}"));
        let status = resp.status().as_u16();
        let body: Value = resp.json().await.unwrap();
        if let Some(want) = case.get("compile_error").and_then(Value::as_str) {
            // OPA's shape: 400, and the error's own code and message.
            assert_eq!(status, 400, "{name}: {body}");
            assert_eq!(body["code"], "invalid_parameter", "{name}: {body}");
            let (code, message) = want.split_once(": ").unwrap();
            assert_eq!(body["errors"][0]["code"], code, "{name}: {body}");
            assert_eq!(body["errors"][0]["message"], message, "{name}: {body}");
        } else {
            assert_eq!(status, 200, "{name}: push: {body}");
            let input = match case.get("input").and_then(Value::as_str) {
                Some(f) => {
                    serde_json::from_str(&std::fs::read_to_string(dir.join(f)).unwrap()).unwrap()
                }
                None => Value::Null,
            };
            let resp = c
                .post(server.url(&format!("/tenants/{tenant}/v1/data/hostile/x")))
                .json(&json!({ "input": input }))
                .send()
                .await
                .unwrap_or_else(|e| panic!("{name}: decide: {e}"));
            let status = resp.status().as_u16();
            let body: Value = resp.json().await.unwrap();
            match case.get("result") {
                Some(result) => assert_eq!((status, &body["result"]), (200, result), "{name}"),
                None => {
                    assert!(status >= 400, "{name}: {status} {body}");
                    assert!(body["code"].is_string(), "{name}: {body}");
                }
            }
        }
        still_answers(&c, &mut server, name, 0, 0).await;
    }
}

/// #9, per-evaluation memory budget: a policy whose every builtin call stays
/// within the builtin limits but which builds 15 GB in one evaluation ends
/// in its own 500 `evaluation_memory_exceeded`, long before its deadline; the
/// process keeps its memory and another tenant keeps its answers.
#[tokio::test]
async fn an_evaluation_past_its_memory_budget_fails_alone() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("tenet.yaml");
    std::fs::write(
        &config,
        "host:\n  deadline_ms: 60000\n  eval_memory_bytes: 67108864\n",
    )
    .unwrap();
    let mut server = Server::start(&["--config", config.to_str().unwrap()]);
    let c = client(30);
    still_answers(&c, &mut server, "start", 0, 0).await;
    let before = server.rss_kib();
    let source =
        std::fs::read_to_string(root().join("fixtures/policies/hostile/memory-many-strings.rego"))
            .unwrap();
    let resp = c
        .put(server.url("/tenants/hog/v1/policies/hog.rego"))
        .body(source)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    for _ in 0..3 {
        let resp = c
            .post(server.url("/tenants/hog/v1/data/hostile/x"))
            .json(&json!({ "input": {} }))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 500);
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["code"], "evaluation_memory_exceeded", "{body}");
        assert!(
            body["message"].as_str().unwrap().contains("67108864"),
            "{body}"
        );
    }
    let grown = server.rss_kib().saturating_sub(before);
    assert!(grown < 512 * 1024, "RSS grew by {grown} KiB");
    still_answers(&c, &mut server, "the memory attack", 0, 0).await;
}
