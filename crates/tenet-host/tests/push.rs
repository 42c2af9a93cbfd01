//! Policies and data pushed over the API, laid over the tenant's bundle, end
//! to end through `Host` with real bundle directories: what a push may
//! write, what a new bundle revision does to pushed content, and that a
//! push never drops the bundle's own policies.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::{json, Value};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tenet_host::{
    DataWrite, Host, HostConfig, PatchKind, PatchOp, PollingConfig, SourceTemplate, WriteOutcome,
};
use tenet_policy::Input;

fn write_bundle(dir: &Path, manifest: Value, files: &[(&str, &str)]) {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join(".manifest"), manifest.to_string()).unwrap();
    for (name, text) in files {
        let path = dir.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
}

const APP: &str = "package app\n\nallow if input.user == \"alice\"\n";

fn host(root: &Path, polling: bool) -> Host {
    let template = format!("{}/{{tenant}}", root.display());
    Host::new(
        HostConfig {
            // Paused clock: decide inline (see tests/host.rs `config`).
            eval_inline: true,
            on_demand: true,
            polling: PollingConfig {
                enabled: polling,
                min_delay: Duration::from_secs(60),
                max_delay: Duration::from_secs(60),
                watch: false,
                ..PollingConfig::default()
            },
            ..HostConfig::default()
        },
        Arc::new(SourceTemplate::new(template, Default::default()).unwrap()),
    )
}

async fn get(host: &Host, tenant: &str, path: &str) -> Option<Value> {
    host.decide(tenant, path, &Input::none())
        .await
        .unwrap()
        .result
}

fn put(value: Value) -> DataWrite {
    DataWrite::Put {
        value,
        if_none_match: false,
    }
}

fn path(p: &str) -> Vec<String> {
    p.split('/')
        .filter(|c| !c.is_empty())
        .map(String::from)
        .collect()
}

/// A push to an active tenant whose bundle has gone from its source is
/// refused: laying it over nothing would drop the bundle's policies.
#[tokio::test(start_paused = true)]
async fn a_push_never_replaces_the_bundle_with_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    write_bundle(
        &tmp.path().join("a"),
        json!({"roots": ["app"]}),
        &[("app/policy.rego", APP)],
    );
    let h = host(tmp.path(), false);
    let alice = Input::from_value(&json!({"user": "alice"}), &h.config().eval_limits).unwrap();
    let allowed = h.decide("a", "data.app.allow", &alice).await.unwrap();
    assert_eq!(allowed.result, Some(json!(true)));

    std::fs::remove_dir_all(tmp.path().join("a")).unwrap();
    let err = h
        .write_data("a", &path("extra"), put(json!(1)))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), "load_failed", "{err}");
    let allowed = h.decide("a", "data.app.allow", &alice).await.unwrap();
    assert_eq!(
        allowed.result,
        Some(json!(true)),
        "the bundle still decides"
    );
}

/// Ownership is checked before `If-None-Match`, as OPA does; outside the
/// roots the document is created, and then left alone.
#[tokio::test(start_paused = true)]
async fn if_none_match_never_hides_a_bundle_owned_path() {
    let tmp = tempfile::tempdir().unwrap();
    write_bundle(
        &tmp.path().join("a"),
        json!({"roots": ["app"]}),
        &[("app/policy.rego", APP)],
    );
    let h = host(tmp.path(), false);
    let owned = DataWrite::Put {
        value: json!(1),
        if_none_match: true,
    };
    let err = h.write_data("a", &path("app"), owned).await.unwrap_err();
    assert_eq!(err.kind(), "owned_by_bundle", "{err}");
    let fresh = DataWrite::Put {
        value: json!(1),
        if_none_match: true,
    };
    assert_eq!(
        h.write_data("a", &path("x"), fresh.clone()).await.unwrap(),
        WriteOutcome::Written
    );
    assert_eq!(
        h.write_data("a", &path("x"), fresh).await.unwrap(),
        WriteOutcome::Exists
    );
}

/// A patch may add beside the bundle's documents (under an object that
/// exists only in the bundle's data, above its roots), as in OPA's store.
#[tokio::test(start_paused = true)]
async fn patches_add_beside_the_bundles_documents() {
    let tmp = tempfile::tempdir().unwrap();
    write_bundle(
        &tmp.path().join("a"),
        json!({"roots": ["x/y"]}),
        &[("x/y/data.json", r#"{"v": 1}"#)],
    );
    let h = host(tmp.path(), false);
    assert_eq!(get(&h, "a", "x/y/v").await, Some(json!(1)));
    let add = DataWrite::Patch(vec![PatchOp {
        kind: PatchKind::Add,
        path: path("z"),
        value: json!(2),
    }]);
    h.write_data("a", &path("x"), add).await.unwrap();
    assert_eq!(
        get(&h, "a", "x").await,
        Some(json!({"y": {"v": 1}, "z": 2}))
    );
}

/// As in OPA, the bundle wins: a new revision whose roots cover pushed
/// content activates, and the covered pushed content (a scalar above the
/// new root included) is dropped while the rest stays.
#[tokio::test(start_paused = true)]
async fn a_new_revision_whose_roots_cover_pushed_content_wins() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("a");
    write_bundle(
        &dir,
        json!({"revision": "1", "roots": ["owned"]}),
        &[("owned/data.json", r#"{"n": 1}"#)],
    );
    let h = host(tmp.path(), false);
    h.write_data("a", &path("a"), put(json!(5))).await.unwrap();
    h.write_data("a", &path("keep"), put(json!("me")))
        .await
        .unwrap();
    h.put_policy("a", "p.rego", "package pol\n\nx := 1\n".into())
        .await
        .unwrap();
    assert_eq!(get(&h, "a", "a").await, Some(json!(5)));

    write_bundle(
        &dir,
        json!({"revision": "2", "roots": ["owned", "a/b"]}),
        &[
            ("owned/data.json", r#"{"n": 2}"#),
            ("a/b/data.json", r#"{"v": "bundle"}"#),
        ],
    );
    let revision = h.reload("a").await.unwrap();
    assert_eq!(revision.as_deref(), Some("2"));
    assert_eq!(get(&h, "a", "a/b/v").await, Some(json!("bundle")));
    assert_eq!(get(&h, "a", "keep").await, Some(json!("me")));
    assert_eq!(get(&h, "a", "pol/x").await, Some(json!(1)));
    assert_eq!(get(&h, "a", "a").await, Some(json!({"b": {"v": "bundle"}})));
    assert_eq!(get(&h, "a", "owned/n").await, Some(json!(2)));
}

/// A tenant fed by pushes alone polls a source that has no bundle for it:
/// that is its normal state, not a failure that grows forever.
#[tokio::test(start_paused = true)]
async fn push_only_tenants_do_not_accumulate_failures() {
    let tmp = tempfile::tempdir().unwrap();
    let h = host(tmp.path(), true);
    h.put_policy(
        "fresh",
        "p.rego",
        "package fresh\n\nhello := \"hi\"\n".into(),
    )
    .await
    .unwrap();
    assert_eq!(get(&h, "fresh", "fresh/hello").await, Some(json!("hi")));
    tokio::time::sleep(Duration::from_secs(600)).await;
    let snap = h.tenant("fresh").unwrap();
    assert_eq!(snap.consecutive_failures, 0, "{snap:?}");
    assert!(snap.last_error.is_none(), "{snap:?}");
    assert!(snap.last_fetch.is_some(), "it kept polling: {snap:?}");
    assert_eq!(get(&h, "fresh", "fresh/hello").await, Some(json!("hi")));
}
