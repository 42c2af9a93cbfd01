//! Who may write, what pushes may hold, and which bundle directories are
//! read, against the real binary: the default write policy, the cap on
//! push-only tenants (bundle tenants keep answering), a push-only tenant
//! emptied and pushed to again or collected, links in the bundles
//! directory refused, and one token for clients that read and write with
//! the same one. After each attack the process must be alive, its memory
//! bounded, and the example tenant `payments` still answering.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use serde_json::{json, Value};
use std::time::Duration;
use support::{client, copy_dir, root, still_answers, write_config, Server};

async fn put_policy(
    c: &reqwest::Client,
    server: &Server,
    tenant: &str,
    id: &str,
    token: Option<&str>,
) -> (u16, Value) {
    let package = id.replace(['-', '.'], "_");
    let mut req = c
        .put(server.url(&format!("/tenants/{tenant}/v1/policies/{id}")))
        .body(format!("package {package}\n\nok := true\n"));
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn delete_policy(c: &reqwest::Client, server: &Server, tenant: &str, id: &str) -> u16 {
    c.delete(server.url(&format!("/tenants/{tenant}/v1/policies/{id}")))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// `GET /tenants/{tenant}/v1/data/{package}/ok`: status and body.
async fn read_ok(
    c: &reqwest::Client,
    server: &Server,
    tenant: &str,
    package: &str,
) -> (u16, Value) {
    let resp = c
        .get(server.url(&format!("/tenants/{tenant}/v1/data/{package}/ok")))
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// #10 finding 6: writes without a token are accepted on a loopback
/// address (the zero-config start) and refused with 403 `writes_disabled`
/// where they are not allowed (`server.allow_unauthenticated_writes:
/// false` stands in for a non-loopback address, which tests may not bind;
/// the address rule itself is unit-tested in `auth.rs`). Reads stay open.
#[tokio::test]
async fn writes_without_a_token_follow_the_write_policy() {
    let c = client(60);
    let mut open = Server::start(&[]);
    let rss = open.rss_kib();
    let (status, body) = put_policy(&c, &open, "w-open", "p", None).await;
    assert_eq!(status, 200, "{body}");
    still_answers(&c, &mut open, "the requests above", rss, 400 << 10).await;

    let tmp = tempfile::tempdir().unwrap();
    let file = write_config(
        tmp.path(),
        "server:\n  allow_unauthenticated_writes: false\n",
    );
    let mut closed = Server::start(&["--config", &file]);
    let rss = closed.rss_kib();
    let (status, body) = put_policy(&c, &closed, "w-closed", "p", None).await;
    assert_eq!(
        (status, &body["code"]),
        (403, &json!("writes_disabled")),
        "{body}"
    );
    let resp = c
        .put(closed.url("/tenants/w-closed/v1/data/x"))
        .json(&json!(1))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 403);
    let resp = c
        .get(closed.url("/v1/tenants/w-closed"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status().as_u16(),
        404,
        "the refused write created nothing"
    );
    still_answers(&c, &mut closed, "the requests above", rss, 400 << 10).await;
}

/// #10 finding 6: pushes to new names stop at `host.max_pushed_tenants`
/// (429 `push_limit_exceeded`), and push-only tenants neither count against
/// `max_instances` nor evict: with `max_instances` at 3, the three example
/// tenants still load and answer after the flood.
#[tokio::test]
async fn pushed_tenants_are_capped_and_bundle_tenants_keep_answering() {
    let tmp = tempfile::tempdir().unwrap();
    let file = write_config(
        tmp.path(),
        "host:\n  max_instances: 3\n  max_pushed_tenants: 20\n",
    );
    let mut server = Server::start(&["--config", &file]);
    let c = client(60);
    let rss = server.rss_kib();
    let mut refused = 0;
    for i in 0..40 {
        let (status, body) = put_policy(&c, &server, &format!("flood-{i}"), "p", None).await;
        match status {
            200 => assert!(i < 20, "push {i} was accepted past the cap"),
            429 => {
                assert_eq!(body["code"], "push_limit_exceeded", "{body}");
                refused += 1;
            }
            other => panic!("push {i}: {other} {body}"),
        }
    }
    assert_eq!(refused, 20);
    for (tenant, path) in [
        ("storefront", "/tenants/storefront/v1/data"),
        ("analytics", "/tenants/analytics/v1/data"),
    ] {
        let resp = c.get(server.url(path)).send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 200, "{tenant}");
    }
    still_answers(&c, &mut server, "the requests above", rss, 400 << 10).await;
}

/// #10 finding 7: PUT p1 → DELETE p1 → PUT p2 on a tenant fed by pushes
/// alone works (it used to answer 503 `tenant_not_ready` forever).
#[tokio::test]
async fn a_push_only_tenant_takes_pushes_after_its_content_was_deleted() {
    let mut server = Server::start(&[]);
    let c = client(60);
    let rss = server.rss_kib();
    assert_eq!(put_policy(&c, &server, "again", "p1", None).await.0, 200);
    assert_eq!(delete_policy(&c, &server, "again", "p1").await, 200);
    let (status, body) = put_policy(&c, &server, "again", "p2", None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        read_ok(&c, &server, "again", "p2").await,
        (200, json!({"result": true}))
    );
    still_answers(&c, &mut server, "the requests above", rss, 400 << 10).await;
}

/// #10 finding 6: a push-only tenant whose content was all deleted is
/// collected like any unreferenced tenant (the admin API stops listing it).
#[tokio::test]
async fn an_emptied_push_only_tenant_is_collected() {
    let mut server = Server::start(&["--grace-period-secs", "1"]);
    let c = client(60);
    let rss = server.rss_kib();
    assert_eq!(put_policy(&c, &server, "emptied", "p", None).await.0, 200);
    let listed = |c: reqwest::Client, url: String| async move {
        c.get(url).send().await.unwrap().status().as_u16()
    };
    let url = server.url("/v1/tenants/emptied");
    assert_eq!(listed(c.clone(), url.clone()).await, 200);
    assert_eq!(delete_policy(&c, &server, "emptied", "p").await, 200);
    // The sweeper runs every 5 s; give it many turns before failing.
    let mut gone = false;
    for _ in 0..120 {
        if listed(c.clone(), url.clone()).await == 404 {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(gone, "the emptied tenant was never collected");
    still_answers(&c, &mut server, "the requests above", rss, 400 << 10).await;
}

/// #10, "pushed content is lost on restart": with `host.persist_pushed`, a
/// server killed without warning (SIGKILL) and started again serves what
/// was pushed to it, policies and data, before its first request; OPAL and
/// other clients that do not push again find their tenant as they left it.
#[tokio::test]
async fn pushed_content_survives_a_kill_and_restart_when_persisted() {
    let tmp = tempfile::tempdir().unwrap();
    let config = write_config(
        tmp.path(),
        &format!(
            "host:\n  persist_dir: {}\n  persist_pushed: true\n",
            tmp.path().join("persist").display()
        ),
    );
    let c = client(60);
    let server = Server::start(&["--config", &config]);
    assert_eq!(put_policy(&c, &server, "kept", "p1", None).await.0, 200);
    let resp = c
        .put(server.url("/tenants/kept/v1/data/settings"))
        .json(&json!({"mode": "strict"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 204);
    drop(server);

    let mut server = Server::start(&["--config", &config]);
    let rss = server.rss_kib();
    assert_eq!(
        read_ok(&c, &server, "kept", "p1").await,
        (200, json!({"result": true}))
    );
    let body: Value =
        support::get_json(&c, &server.url("/tenants/kept/v1/data/settings/mode")).await;
    assert_eq!(body, json!({"result": "strict"}));
    still_answers(&c, &mut server, "the restart", rss, 400 << 10).await;
}

/// #10 finding 11: a tenant directory that is a symbolic link (here to a
/// directory outside the bundles directory) is not served, and a bundle
/// with a hard-linked file is refused — for a new tenant and, keeping its
/// last good revision, for an active one — while other tenants serve.
#[tokio::test]
async fn linked_tenant_directories_and_files_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let bundles = tmp.path().join("bundles");
    let outside = tmp.path().join("outside");
    copy_dir(
        &root().join("examples/bundles/payments"),
        &bundles.join("payments"),
    );
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("data.json"), r#"{"secret": "host file"}"#).unwrap();
    std::os::unix::fs::symlink(&outside, bundles.join("via-symlink")).unwrap();
    std::fs::create_dir_all(bundles.join("via-hardlink")).unwrap();
    std::fs::hard_link(
        outside.join("data.json"),
        bundles.join("via-hardlink/data.json"),
    )
    .unwrap();
    std::fs::create_dir_all(bundles.join("active")).unwrap();
    std::fs::write(bundles.join("active/data.json"), r#"{"v": 1}"#).unwrap();

    let template = format!("{}/{{tenant}}", bundles.display());
    let mut server = Server::start(&["--bundles", &template]);
    let c = client(60);
    let rss = server.rss_kib();
    for tenant in ["via-symlink", "via-hardlink"] {
        let resp = c
            .get(server.url(&format!("/tenants/{tenant}/v1/data/secret")))
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let body: Value = resp.json().await.unwrap();
        assert_ne!(status, 200, "{tenant} was served: {body}");
        assert!(
            !body.to_string().contains("host file"),
            "{tenant} leaked: {body}"
        );
    }
    let v = |c: reqwest::Client, url: String| async move {
        let resp = c.get(url).send().await.unwrap();
        (resp.status().as_u16(), resp.json::<Value>().await.unwrap())
    };
    let url = server.url("/tenants/active/v1/data/v");
    assert_eq!(v(c.clone(), url.clone()).await, (200, json!({"result": 1})));
    std::fs::hard_link(
        outside.join("data.json"),
        bundles.join("active/linked.json"),
    )
    .unwrap();
    let resp = c
        .post(server.url("/v1/tenants/active/reload"))
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(status, 502, "{body}");
    assert!(body["message"].to_string().contains("hard link"), "{body}");
    assert_eq!(v(c.clone(), url).await, (200, json!({"result": 1})));
    still_answers(&c, &mut server, "the requests above", rss, 400 << 10).await;
}

/// #10 one-token clients (opa-python-client, OPAL): a `server.tokens`
/// entry with `decide` and `write` reads and writes with one token, beside
/// an admin and a decision token that keep their own scopes.
#[tokio::test]
async fn one_token_reads_and_writes() {
    let tmp = tempfile::tempdir().unwrap();
    let file = write_config(
        tmp.path(),
        "server:\n  admin_token: adm\n  decision_token: dec\n  tokens:\n    - token: opal\n      scopes: [decide, write]\n",
    );
    let mut server = Server::start(&["--config", &file]);
    let c = client(60);
    let rss = server.rss_kib();
    let (status, body) = put_policy(&c, &server, "one", "p", Some("opal")).await;
    assert_eq!(status, 200, "{body}");
    let resp = c
        .get(server.url("/tenants/one/v1/data/p/ok"))
        .bearer_auth("opal")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(resp.json::<Value>().await.unwrap(), json!({"result": true}));
    // The decision token cannot write; the one-token client is not admin.
    assert_eq!(
        put_policy(&c, &server, "one", "q", Some("dec")).await.0,
        401
    );
    let resp = c
        .get(server.url("/v1/tenants"))
        .bearer_auth("opal")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    // Reads need a token now; payments with the decision token.
    let input: Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("examples/inputs/payments/alice-refund.json"))
            .unwrap(),
    )
    .unwrap();
    let resp = c
        .post(server.url("/tenants/payments/v1/data/payments/authz/allow"))
        .bearer_auth("dec")
        .json(&json!({ "input": input }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert!(server.alive());
    assert!(server.rss_kib().saturating_sub(rss) < 400 << 10);
}
