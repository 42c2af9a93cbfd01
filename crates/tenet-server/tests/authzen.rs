//! The AuthZEN evaluation endpoints against the real binary: single and
//! batch evaluations per tenant (by path and by header), the batch
//! semantics and defaults, objects with a context, undefined as a denial,
//! and malformed requests. The policy is pushed to a tenant through OPA's
//! policy API.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use serde_json::{json, Value};
use support::{client, write_config, Server};

const POLICY: &str = r#"package authzen

default allow := false

allow if {
    input.subject.id == "alice"
    input.action.name == "read"
}

allow if input.subject.properties.role == "admin"

# A decision with reasons, for tenants whose path is authzen/decision.
decision := {"decision": allow, "context": {"reason": reason}}

reason := "granted" if allow
reason := "not allowed" if not allow
"#;

async fn post(c: &reqwest::Client, url: String, body: Value) -> (u16, Value) {
    let resp = c.post(url).json(&body).send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

fn evaluation(subject: &str, action: &str) -> Value {
    json!({
        "subject": {"type": "user", "id": subject},
        "action": {"name": action},
        "resource": {"type": "document", "id": "roadmap"},
    })
}

#[tokio::test]
async fn authzen_evaluations_decide_per_tenant() {
    let tmp = tempfile::tempdir().unwrap();
    let config = write_config(
        tmp.path(),
        "authzen:\n  tenant_paths:\n    reasons: authzen/decision\n",
    );
    let server = Server::start(&["--config", &config]);
    let c = client(30);
    for tenant in ["docs", "reasons"] {
        let resp = c
            .put(server.url(&format!("/tenants/{tenant}/v1/policies/authzen")))
            .body(POLICY)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 200, "{tenant}");
    }
    let one = |t: &str| server.url(&format!("/tenants/{t}/access/v1/evaluation"));
    let many = |t: &str| server.url(&format!("/tenants/{t}/access/v1/evaluations"));

    // Single evaluations: (request, answer).
    let mut admin = evaluation("carol", "delete");
    admin["subject"]["properties"] = json!({"role": "admin"});
    for (request, answer) in [
        (evaluation("alice", "read"), json!({"decision": true})),
        (evaluation("bob", "read"), json!({"decision": false})),
        (admin, json!({"decision": true})),
    ] {
        assert_eq!(post(&c, one("docs"), request).await, (200, answer));
    }
    // A tenant whose policy answers with reasons.
    let (s, body) = post(&c, one("reasons"), evaluation("bob", "read")).await;
    assert_eq!(
        (s, body),
        (
            200,
            json!({"decision": false, "context": {"reason": "not allowed"}})
        )
    );
    // The tenant from the header on the bare path.
    let resp = c
        .post(server.url("/access/v1/evaluation"))
        .header("X-Tenant-ID", "docs")
        .json(&evaluation("alice", "read"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.json::<Value>().await.unwrap(),
        json!({"decision": true})
    );

    // Batch: top-level defaults, replaced by an item's own fields.
    let batch = |semantic: &str| {
        json!({
            "subject": {"type": "user", "id": "alice"},
            "resource": {"type": "document", "id": "roadmap"},
            "options": {"evaluations_semantic": semantic},
            "evaluations": [
                {"action": {"name": "read"}},
                {"action": {"name": "write"}},
                {"action": {"name": "read"}, "subject": {"type": "user", "id": "bob"}},
                {"action": {"name": "read"}, "subject": {"type": "user"}},
            ],
        })
    };
    let (s, body) = post(&c, many("docs"), batch("execute_all")).await;
    assert_eq!(s, 200, "{body}");
    let decisions: Vec<_> = body["evaluations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["decision"].clone())
        .collect();
    assert_eq!(
        decisions,
        [json!(true), json!(false), json!(false), json!(false)]
    );
    assert_eq!(body["evaluations"][3]["context"]["error"]["status"], 400);
    let (_, body) = post(&c, many("docs"), batch("deny_on_first_deny")).await;
    assert_eq!(body["evaluations"].as_array().unwrap().len(), 2, "{body}");
    let (_, body) = post(&c, many("docs"), batch("permit_on_first_permit")).await;
    assert_eq!(body["evaluations"].as_array().unwrap().len(), 1, "{body}");
    // No items: a single evaluation.
    let (s, body) = post(&c, many("docs"), evaluation("alice", "read")).await;
    assert_eq!((s, body), (200, json!({"decision": true})));

    // Malformed requests: OPA's error shape, 400.
    for (url, request) in [
        (one("docs"), json!({"action": {"name": "read"}})),
        (one("docs"), json!([1])),
        (
            many("docs"),
            json!({"evaluations": [{}], "options": {"evaluations_semantic": "some"}}),
        ),
        (many("docs"), json!({"evaluations": 7})),
    ] {
        let (s, body) = post(&c, url, request.clone()).await;
        assert_eq!(
            (s, body["code"].as_str()),
            (400, Some("invalid_parameter")),
            "{request}"
        );
    }
    // A tenant that does not exist.
    let (s, body) = post(&c, one("nobody"), evaluation("alice", "read")).await;
    assert_eq!((s, body["code"].as_str()), (404, Some("tenant_not_found")));
}
