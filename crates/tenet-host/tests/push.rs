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
    // The directory watcher may activate the new revision before this
    // reload does (then the reload finds nothing new): either way it is
    // the active one.
    let revision = h.reload("a").await.unwrap();
    assert!(
        matches!(revision.as_deref(), Some("2") | None),
        "{revision:?}"
    );
    assert_eq!(h.tenant("a").unwrap().revision.as_deref(), Some("2"));
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

/// A host over `root` with its own limits (polling off, on-demand loading).
fn host_with(root: &Path, config: HostConfig) -> Host {
    let template = format!("{}/{{tenant}}", root.display());
    Host::new(
        HostConfig {
            eval_inline: true,
            on_demand: true,
            polling: PollingConfig {
                enabled: false,
                watch: false,
                ..PollingConfig::default()
            },
            ..config
        },
        Arc::new(SourceTemplate::new(template, Default::default()).unwrap()),
    )
}

const P1: &str = "package one\n\nx := 1\n";
const P2: &str = "package two\n\ny := 2\n";

/// #10 finding 7: a push-only tenant whose content was all deleted takes
/// pushes again (it used to answer `tenant_not_ready` forever, as if its
/// bundle had gone).
#[tokio::test(start_paused = true)]
async fn a_push_only_tenant_takes_pushes_after_its_content_was_deleted() {
    let tmp = tempfile::tempdir().unwrap();
    let h = host(tmp.path(), true);
    h.put_policy("solo", "p1", P1.into()).await.unwrap();
    h.delete_policy("solo", "p1").await.unwrap();
    h.put_policy("solo", "p2", P2.into()).await.unwrap();
    assert_eq!(get(&h, "solo", "two/y").await, Some(json!(2)));
    assert_eq!(get(&h, "solo", "one/x").await, None);
    // Data too, and after the scheduler polled the empty source meanwhile.
    h.delete_policy("solo", "p2").await.unwrap();
    tokio::time::sleep(Duration::from_secs(600)).await;
    h.write_data("solo", &path("cfg"), put(json!({"on": true})))
        .await
        .unwrap();
    assert_eq!(get(&h, "solo", "cfg/on").await, Some(json!(true)));
    let snap = h.tenant("solo").unwrap();
    assert!(snap.last_error.is_none(), "{snap:?}");
}

/// #10 finding 6: a push-only tenant emptied by deletes is unreferenced and
/// collected after the grace period like any other.
#[tokio::test(start_paused = true)]
async fn an_emptied_push_only_tenant_is_collected() {
    let tmp = tempfile::tempdir().unwrap();
    let h = host_with(
        tmp.path(),
        HostConfig {
            grace_period: Duration::from_secs(1),
            sweep_interval: Duration::from_millis(100),
            ..HostConfig::default()
        },
    );
    h.put_policy("gone", "p1", P1.into()).await.unwrap();
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert!(h.tenant("gone").is_some(), "kept while it has content");
    h.delete_policy("gone", "p1").await.unwrap();
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert!(h.tenant("gone").is_none(), "{:?}", h.tenant("gone"));
    assert_eq!(h.stats().collected, 1);
    // And the name can be pushed to again.
    h.put_policy("gone", "p2", P2.into()).await.unwrap();
    assert_eq!(get(&h, "gone", "two/y").await, Some(json!(2)));
}

/// #10 finding 6: push-only tenants are capped by `max_pushed_tenants`, not
/// counted against `max_instances`, and never evict bundle tenants.
#[tokio::test(start_paused = true)]
async fn push_only_tenants_are_capped_apart_from_bundle_tenants() {
    let tmp = tempfile::tempdir().unwrap();
    for t in ["a", "b"] {
        write_bundle(
            &tmp.path().join(t),
            json!({"roots": ["app"]}),
            &[("app/policy.rego", APP)],
        );
    }
    let h = host_with(
        tmp.path(),
        HostConfig {
            max_instances: 2,
            max_pushed_tenants: 3,
            ..HostConfig::default()
        },
    );
    let _a = h.acquire("a").unwrap();
    for t in ["p0", "p1", "p2"] {
        h.put_policy(t, "p", P1.into()).await.unwrap();
    }
    let err = h.put_policy("p3", "p", P1.into()).await.unwrap_err();
    assert_eq!(err.kind(), "push_limit_exceeded", "{err}");
    assert!(
        h.tenant("p3").is_none(),
        "a refused push leaves no instance"
    );
    // Pushes to an existing push-only tenant still work.
    h.write_data("p0", &path("d"), put(json!(1))).await.unwrap();
    // The second bundle tenant still fits under max_instances = 2.
    let alice = Input::from_value(&json!({"user": "alice"}), &h.config().eval_limits).unwrap();
    for t in ["a", "b"] {
        let d = h.decide(t, "data.app.allow", &alice).await.unwrap();
        assert_eq!(d.result, Some(json!(true)), "{t}");
    }
    assert_eq!(h.stats().evicted, 0);
    // Emptying one push-only tenant frees its place.
    h.delete_policy("p1", "p").await.unwrap();
    h.put_policy("p3", "p", P1.into()).await.unwrap();
}

/// #10 finding 6: pushed content is counted: `max_pushed_bytes` bounds
/// what all tenants hold together; a write that shrinks it always passes.
#[tokio::test(start_paused = true)]
async fn pushed_bytes_are_bounded_across_tenants() {
    let tmp = tempfile::tempdir().unwrap();
    let h = host_with(
        tmp.path(),
        HostConfig {
            max_pushed_bytes: 10_000,
            ..HostConfig::default()
        },
    );
    let blob = |n: usize| put(json!("x".repeat(n)));
    h.write_data("t1", &path("blob"), blob(6_000))
        .await
        .unwrap();
    let err = h
        .write_data("t2", &path("blob"), blob(6_000))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), "push_limit_exceeded", "{err}");
    h.write_data("t2", &path("blob"), blob(3_000))
        .await
        .unwrap();
    let err = h
        .write_data("t1", &path("more"), blob(2_000))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), "push_limit_exceeded", "{err}");
    h.write_data("t1", &path("blob"), DataWrite::Delete)
        .await
        .unwrap();
    h.write_data("t1", &path("more"), blob(2_000))
        .await
        .unwrap();
}

/// A host over `root` whose pushed content is kept in `persist`.
fn persisting_host(root: &Path, persist: &Path) -> Host {
    host_with(
        root,
        HostConfig {
            persist_pushed_dir: Some(persist.to_path_buf()),
            ..HostConfig::default()
        },
    )
}

/// #10, "pushed content is lost on restart": with `persist_pushed_dir`, a
/// new host restores what the last one had pushed (policies and data, to a
/// push-only tenant and over a bundle), and a deletion is not restored.
#[tokio::test(start_paused = true)]
async fn persisted_pushed_content_survives_a_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let (root, persist) = (tmp.path().join("bundles"), tmp.path().join("persist"));
    write_bundle(
        &root.join("a"),
        json!({"roots": ["app"]}),
        &[("app/policy.rego", APP)],
    );
    let first = persisting_host(&root, &persist);
    first.put_policy("solo", "p1", P1.into()).await.unwrap();
    first
        .write_data("solo", &path("cfg"), put(json!({"on": true})))
        .await
        .unwrap();
    first
        .write_data("a", &path("extra"), put(json!([1, 2])))
        .await
        .unwrap();
    first.put_policy("gone", "p2", P2.into()).await.unwrap();
    first.delete_policy("gone", "p2").await.unwrap();
    drop(first);

    let second = persisting_host(&root, &persist);
    let restored = second.restore_pushed().await;
    let names: Vec<_> = restored
        .iter()
        .map(|(t, r)| (t.as_str(), r.is_ok()))
        .collect();
    assert_eq!(names, [("a", true), ("solo", true)], "{restored:?}");
    assert_eq!(get(&second, "solo", "one/x").await, Some(json!(1)));
    assert_eq!(get(&second, "solo", "cfg/on").await, Some(json!(true)));
    assert_eq!(get(&second, "a", "extra").await, Some(json!([1, 2])));
    let alice = Input::from_value(&json!({"user": "alice"}), &Default::default()).unwrap();
    let allowed = second.decide("a", "app/allow", &alice).await.unwrap();
    assert_eq!(allowed.result, Some(json!(true)), "the bundle still serves");
    second.delete_policy("solo", "p1").await.unwrap();
    second
        .write_data("solo", &path("cfg"), DataWrite::Delete)
        .await
        .unwrap();
    drop(second);

    let third = persisting_host(&root, &persist);
    let restored = third.restore_pushed().await;
    assert_eq!(restored.len(), 1, "{restored:?}");
    assert_eq!(get(&third, "a", "extra").await, Some(json!([1, 2])));
}

/// Restored content the tenant's bundle now owns is dropped (the bundle
/// wins, as when a new revision claims it), and the file keeps the rest.
#[tokio::test(start_paused = true)]
async fn restored_content_under_the_bundles_new_roots_is_dropped() {
    let tmp = tempfile::tempdir().unwrap();
    let (root, persist) = (tmp.path().join("bundles"), tmp.path().join("persist"));
    write_bundle(
        &root.join("a"),
        json!({"roots": ["app"]}),
        &[("app/policy.rego", APP)],
    );
    let first = persisting_host(&root, &persist);
    for key in ["mine", "keep"] {
        first
            .write_data("a", &path(key), put(json!(key)))
            .await
            .unwrap();
    }
    drop(first);
    write_bundle(
        &root.join("a"),
        json!({"roots": ["app", "mine"]}),
        &[("app/policy.rego", APP), ("mine/data.json", r#"{"v": 1}"#)],
    );
    let second = persisting_host(&root, &persist);
    let restored = second.restore_pushed().await;
    assert!(restored.iter().all(|(_, r)| r.is_ok()), "{restored:?}");
    assert_eq!(get(&second, "a", "mine").await, Some(json!({"v": 1})));
    assert_eq!(get(&second, "a", "keep").await, Some(json!("keep")));
    let file: Value =
        serde_json::from_slice(&std::fs::read(persist.join("a/pushed.json")).unwrap()).unwrap();
    assert_eq!(file["data"], json!({"keep": "keep"}));
}

/// A new revision that claims persisted pushed content rewrites the file,
/// so the next start does not bring the dropped content back.
#[tokio::test(start_paused = true)]
async fn a_revision_that_claims_pushed_content_rewrites_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let (root, persist) = (tmp.path().join("bundles"), tmp.path().join("persist"));
    write_bundle(
        &root.join("a"),
        json!({"revision": "1", "roots": ["app"]}),
        &[("app/policy.rego", APP)],
    );
    let h = persisting_host(&root, &persist);
    for key in ["mine", "keep"] {
        h.write_data("a", &path(key), put(json!(key)))
            .await
            .unwrap();
    }
    write_bundle(
        &root.join("a"),
        json!({"revision": "2", "roots": ["app", "mine"]}),
        &[("app/policy.rego", APP)],
    );
    h.reload("a").await.unwrap();
    assert_eq!(h.tenant("a").unwrap().revision.as_deref(), Some("2"));
    let file: Value =
        serde_json::from_slice(&std::fs::read(persist.join("a/pushed.json")).unwrap()).unwrap();
    assert_eq!(file["data"], json!({"keep": "keep"}));
}

/// A push whose content cannot be written to disk is refused and changes
/// nothing: the answer to a push means the content is kept.
#[tokio::test(start_paused = true)]
async fn a_push_that_cannot_be_persisted_is_not_applied() {
    let tmp = tempfile::tempdir().unwrap();
    let persist = tmp.path().join("persist");
    std::fs::create_dir_all(&persist).unwrap();
    let h = persisting_host(tmp.path(), &persist);
    h.put_policy("t", "p1", P1.into()).await.unwrap();
    // The tenant's directory becomes a file: nothing can be written there.
    std::fs::remove_dir_all(persist.join("t")).unwrap();
    std::fs::write(persist.join("t"), b"").unwrap();
    let refused = h.put_policy("t", "p2", P2.into()).await.unwrap_err();
    assert_eq!(refused.kind(), "persist_failed", "{refused}");
    assert_eq!(get(&h, "t", "two/y").await, None);
    assert_eq!(get(&h, "t", "one/x").await, Some(json!(1)));
}

/// Pushed data is bounded in depth (path and value together), so repeated
/// patches cannot deepen it until walking it overflows the stack.
#[tokio::test(start_paused = true)]
async fn pushed_data_is_bounded_in_depth() {
    let tmp = tempfile::tempdir().unwrap();
    let h = host(tmp.path(), false);
    let deep = vec!["k".to_string(); 100];
    h.write_data("d", &deep, put(json!({"a": {"b": 1}})))
        .await
        .unwrap();
    let mut nested = json!(1);
    for _ in 0..30 {
        nested = json!({ "n": nested });
    }
    let refused = h.write_data("d", &deep, put(nested)).await.unwrap_err();
    assert_eq!(refused.kind(), "invalid_write", "{refused}");
    let mut listed = json!(1);
    for _ in 0..25 {
        listed = json!([listed]);
    }
    let op = PatchOp {
        kind: PatchKind::Add,
        path: path("a/c"),
        value: listed,
    };
    let refused = h
        .write_data("d", &deep, DataWrite::Patch(vec![op]))
        .await
        .unwrap_err();
    assert_eq!(refused.kind(), "invalid_write", "{refused}");
    let kept = get(&h, "d", &format!("{}/a/b", deep.join("/"))).await;
    assert_eq!(kept, Some(json!(1)));
}
