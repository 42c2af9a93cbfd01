#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Integration tests of tenet-bundle against the committed fixtures
//! (`fixtures/bundles/`), hand-built archives and temporary directories.
//!
//! * the hostile corpus, case by case, against `expected.json`;
//! * the valid fixtures (OPA-style archive, nested directory bundle);
//! * `build_archive` round trips and determinism;
//! * every `Limits` field, just under and just over;
//! * `DirectorySource` / `FileSource` versioning;
//! * property tests (in `props/`).

mod props;
mod support;

use serde_json::json;
use std::collections::BTreeMap;
use std::path::Path;
use support::{err_kind, example_bundles, fixtures, kind_of, tar_gz, write_tree};
use tenet_bundle::{
    build_archive, read_tar_gz, write_tar_gz, Bundle, BundleError, BundleSource, DirectorySource,
    Fetched, FileSource, Limits, Payload, VersionTag,
};

// ---------------------------------------------------------------------------
// Hostile corpus
// ---------------------------------------------------------------------------

fn expected_hostile() -> BTreeMap<String, String> {
    let path = fixtures().join("hostile/expected.json");
    let text = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_slice(&text).expect("expected.json maps file names to error kinds")
}

#[test]
fn hostile_corpus_is_rejected_case_by_case() {
    let dir = fixtures().join("hostile");
    let expected = expected_hostile();
    assert!(!expected.is_empty());

    // No untested fixture: every archive in the directory has an expectation.
    let mut untested = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if name != "expected.json" && name != "README.md" && !expected.contains_key(&name) {
            untested.push(name);
        }
    }
    assert!(
        untested.is_empty(),
        "fixtures without an entry in expected.json: {untested:?}"
    );

    let mut failures = Vec::new();
    for (name, want) in &expected {
        assert!(
            support::KINDS.contains(&want.as_str()),
            "{name}: unknown kind {want:?}"
        );
        let path = dir.join(name);
        assert!(
            path.is_file(),
            "{name} is listed in expected.json but missing"
        );
        match Bundle::load(&path, &Limits::default()) {
            Err(e) if e.kind() == want => {}
            Err(e) => failures.push(format!("{name}: want {want}, got {}: {e}", e.kind())),
            Ok(b) => failures.push(format!(
                "{name}: want {want}, but it loaded ({} files, {} bytes)",
                b.files.len(),
                b.total_bytes()
            )),
        }
    }
    assert!(
        failures.is_empty(),
        "hostile fixtures not rejected as expected:\n{}",
        failures.join("\n")
    );
}

#[test]
fn hostile_limits_fire_at_the_right_entry() {
    let dir = fixtures().join("hostile");
    let limits = Limits::default();

    // The 100 GiB claim is refused from the header; nothing is allocated.
    match Bundle::load(&dir.join("huge-file-header.tar.gz"), &limits) {
        Err(BundleError::FileTooLarge { size, limit, .. }) => {
            assert_eq!(size, 100 << 30);
            assert_eq!(limit, limits.max_file_bytes);
        }
        other => panic!("{other:?}"),
    }
    // Four 60 MiB files fit in 256 MiB; the fifth is refused from its header.
    match Bundle::load(&dir.join("zip-bomb.tar.gz"), &limits) {
        Err(BundleError::ExpandedTooLarge { file, limit }) => {
            assert_eq!(file, "bomb/4/data.json");
            assert_eq!(limit, 256 << 20);
        }
        other => panic!("{other:?}"),
    }
    match Bundle::load(&dir.join("million-files.tar.gz"), &limits) {
        Err(BundleError::TooManyFiles { limit, .. }) => assert_eq!(limit, 10_000),
        other => panic!("{other:?}"),
    }
    // The FileSource path reaches the same verdict as Bundle::load.
    let bytes = std::fs::read(dir.join("traversal.tar.gz")).unwrap();
    assert_eq!(
        err_kind(Payload::Archive(bytes).into_bundle(&limits)),
        "unsafe_path"
    );
}

// ---------------------------------------------------------------------------
// Valid fixtures
// ---------------------------------------------------------------------------

fn module_summary(b: &Bundle) -> Vec<(String, String, u8)> {
    b.modules
        .iter()
        .map(|m| (m.path.clone(), m.package.join("."), m.rego_version))
        .collect()
}

fn mounts(b: &Bundle) -> Vec<(String, String)> {
    b.data_files
        .iter()
        .map(|d| (d.path.clone(), d.mount.join(".")))
        .collect()
}

fn owned(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

#[test]
fn opa_style_archive_with_leading_slashes_loads() {
    let path = fixtures().join("valid/opa-style.tar.gz");
    let bytes = std::fs::read(&path).unwrap();

    // The fixture really is in `opa build` form.
    let mut names = Vec::new();
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(bytes.as_slice()));
    for e in archive.entries().unwrap() {
        names.push(String::from_utf8(e.unwrap().path_bytes().into_owned()).unwrap());
    }
    assert_eq!(
        names,
        [
            "/.manifest",
            "/data.json",
            "/authz/policy.rego",
            "/authz/roles/data.json"
        ]
    );

    let b = Bundle::load(&path, &Limits::default()).unwrap();
    assert_eq!(b.manifest.revision, "opa-style-1");
    assert_eq!(b.manifest.roots, ["authz"]);
    assert_eq!(
        b.manifest.metadata.as_ref().and_then(|m| m.get("built_by")),
        Some(&json!("opa build"))
    );
    assert_eq!(
        module_summary(&b),
        [("authz/policy.rego".to_string(), "authz".to_string(), 1)]
    );
    assert!(b.modules[0].source.starts_with("package authz\n"));
    // The root data.json is merged at the top, next to the mounted file.
    assert_eq!(
        b.data,
        json!({"authz": {
            "default_role": "viewer",
            "enabled": true,
            "roles": {"admin": {"write": true}, "viewer": {"write": false}}
        }})
    );
    assert_eq!(
        mounts(&b),
        owned(&[("authz/roles/data.json", "authz.roles"), ("data.json", "")])
    );
    let paths: Vec<&str> = b.files.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(
        paths,
        [
            ".manifest",
            "authz/policy.rego",
            "authz/roles/data.json",
            "data.json"
        ]
    );

    // Same bundle from the archive re-written with relative names.
    let rewritten = write_tar_gz(&read_tar_gz(&bytes, &Limits::default()).unwrap()).unwrap();
    let again = Bundle::from_tar_gz(&rewritten, &Limits::default()).unwrap();
    assert_eq!(again, b);
}

#[test]
fn nested_directory_fixture_loads() {
    let dir = fixtures().join("valid/nested-data");
    let b = Bundle::load(&dir, &Limits::default()).unwrap();
    assert_eq!(b, Bundle::from_dir(&dir, &Limits::default()).unwrap());

    assert_eq!(b.manifest.revision, "nested-data-3");
    assert_eq!(b.manifest.roots, ["app"]);
    assert_eq!(
        b.manifest.metadata.as_ref().and_then(|m| m.get("owner")),
        Some(&json!("tenet fixtures"))
    );
    assert_eq!(
        module_summary(&b),
        [
            (
                "app/authz/policy.rego".to_string(),
                "app.authz".to_string(),
                1
            ),
            (
                "app/lib/helpers.rego".to_string(),
                "app.lib.helpers".to_string(),
                1
            ),
        ]
    );
    assert_eq!(
        b.data,
        json!({"app": {
            "name": "nested",
            "limits": {"max_sessions": 3},
            "roles": {"bindings": {"alice": ["admin"], "bob": ["viewer", "auditor"]}},
            "settings": {
                "region": "eu-west-1",
                "features": {"audit": true, "retries": 3},
                "owners": ["team-a", "team-b"]
            }
        }})
    );
    assert_eq!(
        mounts(&b),
        owned(&[
            ("app/data.json", "app"),
            ("app/roles/bindings/data.json", "app.roles.bindings"),
            ("app/settings/data.yaml", "app.settings"),
        ])
    );
    // x.yaml is not a data file: listed among the files, absent from data.
    assert!(b.files.iter().any(|(p, _)| p == "app/x.yaml"));
    assert!(!serde_json::to_string(&b.data).unwrap().contains("ignored"));
    assert_eq!(b.files.len(), 7);
    assert_eq!(b.total_bytes(), b.files.iter().map(|(_, n)| n).sum::<u64>());
}

// ---------------------------------------------------------------------------
// build_archive round trips
// ---------------------------------------------------------------------------

fn assert_round_trip(dir: &Path) {
    let limits = Limits::default();
    let what = dir.display();
    let first = build_archive(dir, &limits).unwrap_or_else(|e| panic!("{what}: {e}"));
    let second = build_archive(dir, &limits).unwrap();
    assert!(
        first == second,
        "{what}: building twice gave different bytes"
    );

    let from_archive = Bundle::from_tar_gz(&first, &limits).unwrap();
    let from_dir = Bundle::from_dir(dir, &limits).unwrap();
    assert_eq!(from_archive.modules, from_dir.modules, "{what}: modules");
    assert_eq!(from_archive.data, from_dir.data, "{what}: data");
    assert_eq!(from_archive.manifest, from_dir.manifest, "{what}: manifest");
    assert_eq!(
        from_archive.data_files, from_dir.data_files,
        "{what}: data files"
    );
    assert_eq!(from_archive.files, from_dir.files, "{what}: files");
    assert_eq!(from_archive.digest, from_dir.digest, "{what}: digest");

    // The archive's own entries are relative, regular files in path order.
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(first.as_slice()));
    let mut names = Vec::new();
    for e in archive.entries().unwrap() {
        let e = e.unwrap();
        assert_eq!(e.header().entry_type(), tar::EntryType::Regular);
        assert_eq!(e.header().mtime().unwrap(), 0);
        names.push(String::from_utf8(e.path_bytes().into_owned()).unwrap());
    }
    let paths: Vec<String> = from_dir.files.iter().map(|(p, _)| p.clone()).collect();
    assert_eq!(names, paths, "{what}: archive entry names");
}

#[test]
fn build_archive_round_trips_the_nested_fixture() {
    assert_round_trip(&fixtures().join("valid/nested-data"));
}

#[test]
fn build_archive_round_trips_example_bundles() {
    let Ok(entries) = std::fs::read_dir(example_bundles()) else {
        return; // examples/bundles is written elsewhere; nothing to check yet
    };
    let mut dirs: Vec<_> = entries
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    for dir in dirs {
        assert_round_trip(&dir);
    }
}

#[test]
fn build_archive_refuses_an_invalid_directory() {
    let tmp = tempfile::tempdir().unwrap();
    write_tree(tmp.path(), &[("p.rego", b"allow := true\n")]);
    assert_eq!(
        err_kind(build_archive(tmp.path(), &Limits::default())),
        "bad_package"
    );
}

// ---------------------------------------------------------------------------
// Configurable limits
// ---------------------------------------------------------------------------

fn small_limits() -> Limits {
    Limits {
        max_compressed_bytes: 1 << 20,
        max_expanded_bytes: 1000,
        max_file_bytes: 400,
        max_files: 4,
        max_path_depth: 3,
        max_json_depth: 4,
    }
}

/// The kind (or "ok") of loading `files` both as an archive and as a
/// directory; the two must agree.
fn load_both(files: &[(&str, &[u8])], limits: &Limits) -> &'static str {
    let from_archive = kind_of(&Bundle::from_tar_gz(&tar_gz(files), limits));
    let tmp = tempfile::tempdir().unwrap();
    write_tree(tmp.path(), files);
    let from_dir = kind_of(&Bundle::from_dir(tmp.path(), limits));
    assert_eq!(
        from_archive, from_dir,
        "archive and directory disagree on {files:?}"
    );
    from_archive
}

#[test]
fn limit_max_files() {
    let l = small_limits();
    let f: Vec<String> = (0..5).map(|i| format!("f{i}.txt")).collect();
    let files: Vec<(&str, &[u8])> = f.iter().map(|n| (n.as_str(), b"x".as_slice())).collect();
    assert_eq!(load_both(&files[..4], &l), "ok");
    assert_eq!(load_both(&files, &l), "too_many_files");
}

#[test]
fn limit_max_file_bytes() {
    let l = small_limits();
    assert_eq!(load_both(&[("a.txt", &[b'a'; 400])], &l), "ok");
    assert_eq!(load_both(&[("a.txt", &[b'a'; 401])], &l), "file_too_large");
}

#[test]
fn limit_max_expanded_bytes() {
    let l = small_limits();
    let just = [
        ("a.txt", &[b'a'; 400][..]),
        ("b.txt", &[b'b'; 400]),
        ("c.txt", &[b'c'; 200]),
    ];
    assert_eq!(load_both(&just, &l), "ok");
    let over = [
        ("a.txt", &[b'a'; 400][..]),
        ("b.txt", &[b'b'; 400]),
        ("c.txt", &[b'c'; 201]),
    ];
    assert_eq!(load_both(&over, &l), "expanded_too_large");
}

#[test]
fn limit_max_path_depth() {
    let l = small_limits();
    assert_eq!(load_both(&[("a/b/c.txt", b"x")], &l), "ok");
    assert_eq!(load_both(&[("a/b/c/d.txt", b"x")], &l), "path_too_deep");
    // `.` components do not count.
    assert_eq!(
        kind_of(&Bundle::from_tar_gz(
            &tar_gz(&[("./a/./b/c.txt", b"x")]),
            &l
        )),
        "ok"
    );
}

#[test]
fn limit_max_json_depth() {
    let l = small_limits();
    let ok: &[u8] = br#"{"a": {"b": {"c": [1, "[[[[[["]}}}"#;
    let deep: &[u8] = br#"{"a": {"b": {"c": [[1]]}}}"#;
    assert_eq!(load_both(&[("data.json", ok)], &l), "ok");
    assert_eq!(load_both(&[("data.json", deep)], &l), "json_too_deep");
    // YAML: flow collections are scanned, block nesting checked when parsed.
    let yaml_ok: &[u8] = b"a:\n  b:\n    c:\n      - 1\n";
    let yaml_deep: &[u8] = b"a:\n  b:\n    c:\n      - - 1\n";
    assert_eq!(load_both(&[("x/data.yaml", yaml_ok)], &l), "ok");
    assert_eq!(
        load_both(&[("x/data.yaml", yaml_deep)], &l),
        "json_too_deep"
    );
    assert_eq!(
        load_both(&[("x/data.yml", b"a: [[[[1]]]]\n")], &l),
        "json_too_deep"
    );
}

#[test]
fn limit_max_compressed_bytes() {
    let archive = tar_gz(&[("a.txt", b"hello")]);
    let size = archive.len() as u64;
    let exact = Limits {
        max_compressed_bytes: size,
        ..small_limits()
    };
    let under = Limits {
        max_compressed_bytes: size - 1,
        ..small_limits()
    };
    assert_eq!(kind_of(&Bundle::from_tar_gz(&archive, &exact)), "ok");
    assert_eq!(
        kind_of(&read_tar_gz(&archive, &under)),
        "compressed_too_large"
    );

    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("b.tar.gz");
    std::fs::write(&file, &archive).unwrap();
    assert_eq!(kind_of(&Bundle::load(&file, &exact)), "ok");
    match Bundle::load(&file, &under) {
        Err(BundleError::CompressedTooLarge { size: s, limit }) => {
            assert_eq!((s, limit), (size, size - 1));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn defaults_are_documented_values() {
    let l = Limits::default();
    assert_eq!(l.max_compressed_bytes, 64 << 20);
    assert_eq!(l.max_expanded_bytes, 256 << 20);
    assert_eq!(l.max_file_bytes, 64 << 20);
    assert_eq!(l.max_files, 10_000);
    assert_eq!(l.max_path_depth, 32);
    assert_eq!(l.max_json_depth, 128);
    // Partial configuration keeps the other defaults; unknown keys are refused.
    let partial: Limits = serde_json::from_value(json!({"max_files": 3})).unwrap();
    assert_eq!(
        partial,
        Limits {
            max_files: 3,
            ..Limits::default()
        }
    );
    assert!(serde_json::from_value::<Limits>(json!({"max_filez": 3})).is_err());
}

// ---------------------------------------------------------------------------
// Directory edge cases (Unix: links and special files)
// ---------------------------------------------------------------------------

#[cfg(unix)]
#[test]
fn directory_refuses_links_and_special_files() {
    let tmp = tempfile::tempdir().unwrap();
    write_tree(tmp.path(), &[("policy.rego", b"package x\n")]);
    std::os::unix::fs::symlink("/etc/passwd", tmp.path().join("data.json")).unwrap();
    assert_eq!(
        err_kind(Bundle::from_dir(tmp.path(), &Limits::default())),
        "unsupported_entry"
    );

    let tmp = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink("/etc", tmp.path().join("etc")).unwrap();
    assert_eq!(
        err_kind(Bundle::from_dir(tmp.path(), &Limits::default())),
        "unsupported_entry"
    );

    let tmp = tempfile::tempdir().unwrap();
    let _socket = std::os::unix::net::UnixListener::bind(tmp.path().join("sock")).unwrap();
    assert_eq!(
        err_kind(Bundle::from_dir(tmp.path(), &Limits::default())),
        "unsupported_entry"
    );
}

/// #10 finding 11: a bundle directory that is itself a symbolic link (a
/// tenant directory pointing outside the bundles directory) and a
/// hard-linked file inside one are refused, naming what was refused.
#[cfg(unix)]
#[test]
fn directory_refuses_a_linked_root_and_hard_links() {
    let tmp = tempfile::tempdir().unwrap();
    let outside = tmp.path().join("outside");
    write_tree(&outside, &[("data.json", b"{\"secret\": 1}")]);
    let link = tmp.path().join("tenant");
    std::os::unix::fs::symlink(&outside, &link).unwrap();
    let err = Bundle::from_dir(&link, &Limits::default()).unwrap_err();
    assert_eq!(err.kind(), "unsupported_entry");
    assert!(err.to_string().contains("symbolic link"), "{err}");
    // The target itself, read directly, is a fine bundle.
    assert!(Bundle::from_dir(&outside, &Limits::default()).is_ok());

    let dir = tmp.path().join("hard");
    write_tree(&dir, &[("policy.rego", b"package x\n")]);
    std::fs::hard_link(outside.join("data.json"), dir.join("data.json")).unwrap();
    let err = Bundle::from_dir(&dir, &Limits::default()).unwrap_err();
    assert_eq!(err.kind(), "unsupported_entry");
    assert!(err.to_string().contains("hard link"), "{err}");
}

#[test]
fn load_of_a_missing_path_is_io() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("nope");
    assert_eq!(err_kind(Bundle::load(&missing, &Limits::default())), "io");
    assert_eq!(
        err_kind(Bundle::from_dir(&missing, &Limits::default())),
        "io"
    );
    // A file where a directory is expected.
    std::fs::write(&missing, b"x").unwrap();
    assert_eq!(
        err_kind(Bundle::from_dir(&missing, &Limits::default())),
        "io"
    );
}

// ---------------------------------------------------------------------------
// Sources
// ---------------------------------------------------------------------------

async fn fetch_bundle(src: &dyn BundleSource, known: Option<&VersionTag>) -> (Bundle, VersionTag) {
    match src.fetch(known).await.unwrap() {
        Fetched::Bundle { payload, version } => {
            (payload.into_bundle(&Limits::default()).unwrap(), version)
        }
        Fetched::NotModified => panic!("{}: unexpected NotModified", src.location()),
    }
}

async fn assert_not_modified(src: &dyn BundleSource, known: &VersionTag) {
    match src.fetch(Some(known)).await.unwrap() {
        Fetched::NotModified => {}
        Fetched::Bundle { version, .. } => {
            panic!(
                "{}: expected NotModified, got version {version:?}",
                src.location()
            )
        }
    }
}

#[tokio::test]
async fn directory_source_versions_follow_content() {
    let tmp = tempfile::tempdir().unwrap();
    write_tree(
        tmp.path(),
        &[
            ("app/policy.rego", b"package app\n"),
            ("app/data.json", br#"{"v": 1}"#),
        ],
    );
    let src = DirectorySource::new(tmp.path(), Limits::default());
    assert_eq!(src.location(), tmp.path().display().to_string());

    let (b1, v1) = fetch_bundle(&src, None).await;
    assert_eq!(b1.data, json!({"app": {"v": 1}}));
    assert!(!v1.0.is_empty());
    assert_not_modified(&src, &v1).await;
    // A different known version gets the bundle again.
    let (_, same) = fetch_bundle(&src, Some(&VersionTag("other".into()))).await;
    assert_eq!(same, v1);

    // Rewriting identical content keeps the version (content digest, not mtime).
    write_tree(tmp.path(), &[("app/data.json", br#"{"v": 1}"#)]);
    assert_not_modified(&src, &v1).await;

    write_tree(tmp.path(), &[("app/data.json", br#"{"v": 2}"#)]);
    let (b2, v2) = fetch_bundle(&src, Some(&v1)).await;
    assert_ne!(v1, v2);
    assert_eq!(b2.data, json!({"app": {"v": 2}}));
    assert_not_modified(&src, &v2).await;

    // A new file is a new version too.
    write_tree(tmp.path(), &[("app/other.rego", b"package app.other\n")]);
    let (b3, v3) = fetch_bundle(&src, Some(&v2)).await;
    assert_ne!(v3, v2);
    assert_eq!(b3.modules.len(), 2);
}

#[tokio::test]
async fn file_source_versions_follow_content() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("bundle.tar.gz");
    std::fs::write(&file, tar_gz(&[("app/data.json", br#"{"v": 1}"#)])).unwrap();
    let src = FileSource::new(&file, Limits::default());
    assert_eq!(src.location(), file.display().to_string());

    let (b1, v1) = fetch_bundle(&src, None).await;
    assert_eq!(b1.data, json!({"app": {"v": 1}}));
    assert_not_modified(&src, &v1).await;

    std::fs::write(&file, tar_gz(&[("app/data.json", br#"{"v": 2}"#)])).unwrap();
    let (b2, v2) = fetch_bundle(&src, Some(&v1)).await;
    assert_ne!(v1, v2);
    assert_eq!(b2.data, json!({"app": {"v": 2}}));
    assert_not_modified(&src, &v2).await;

    // The source fetches; validation happens in the caller.
    std::fs::write(&file, b"not an archive").unwrap();
    match src.fetch(Some(&v2)).await.unwrap() {
        Fetched::Bundle { payload, .. } => {
            assert_eq!(
                err_kind(payload.into_bundle(&Limits::default())),
                "corrupt_archive"
            );
        }
        Fetched::NotModified => panic!("changed file reported as not modified"),
    }

    // Over the compressed limit.
    let tiny = FileSource::new(
        &file,
        Limits {
            max_compressed_bytes: 4,
            ..Limits::default()
        },
    );
    assert_eq!(err_kind(tiny.fetch(None).await), "compressed_too_large");
}

#[tokio::test]
async fn sources_report_missing_paths_as_io() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("missing");
    let dir = DirectorySource::new(&missing, Limits::default());
    assert_eq!(err_kind(dir.fetch(None).await), "io");
    let file = FileSource::new(&missing, Limits::default());
    assert_eq!(err_kind(file.fetch(None).await), "io");
}

#[test]
fn kinds_are_stable_snake_case() {
    for k in support::KINDS {
        assert!(
            k.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
            "{k}"
        );
    }
    let e: Result<(), BundleError> = Bundle::from_tar_gz(b"", &Limits::default()).map(|_| ());
    // An empty input is an empty archive or a typed error, never a panic.
    assert!(matches!(kind_of(&e), "ok" | "corrupt_archive"));
}

// ---------------------------------------------------------------------------
// Gaps in src/ found by these tests (see the report that came with them).
// Each is ignored until the proposed patch lands; all are cheap to run.
// ---------------------------------------------------------------------------

/// Small limits under which a few KiB of tar framing must not pass unnoticed.
fn framing_limits() -> Limits {
    Limits {
        max_expanded_bytes: 1024,
        max_files: 4,
        ..Limits::default()
    }
}

/// A GNU long-name record is buffered whole by the `tar` crate before the
/// entry it names reaches `read_tar_gz`, and is never counted against any
/// limit: with the default limits a 300 KiB archive holding a 300 MiB name
/// loads (using ~1 GB of memory), and a 64 MiB one could hold ~64 GiB.
#[test]
fn long_name_records_count_against_limits() {
    let mut t = support::RawTar::new();
    t.file_as(support::NameForm::GnuLong, &[b'a'; 64 << 10], b"x");
    let r = Bundle::from_tar_gz(&support::gzip(&t.finish()), &framing_limits());
    assert!(
        matches!(kind_of(&r), "expanded_too_large" | "unsafe_path"),
        "a 64 KiB file name passed limits of 1 KiB: {}",
        kind_of(&r)
    );
}

/// Directory (and other skipped) entries may carry content; the `tar` crate
/// decompresses it to skip it, and nothing counts it: 2 MB of gzip makes
/// the loader inflate 2 GiB and report success.
#[test]
fn skipped_entry_content_counts_against_limits() {
    let mut t = support::RawTar::new();
    t.header(b"dir/", tar::EntryType::Directory, 1 << 20);
    t.data(&vec![0u8; 1 << 20]);
    let r = Bundle::from_tar_gz(&support::gzip(&t.finish()), &framing_limits());
    assert_eq!(kind_of(&r), "expanded_too_large");
}

/// A PAX `size` record overrides the header's size field (POSIX; Go's
/// archive/tar and the `tar` crate honour it). `read_tar_gz` reads the header
/// field, so it sees an empty policy.rego where OPA sees the module.
#[test]
fn pax_size_record_is_honoured() {
    let policy = b"package p\n\nallow := true\n";
    // A PAX record starts with its own length in bytes.
    let record = format!("11 size={}\n", policy.len());
    assert_eq!(record.len(), 11);
    let mut t = support::RawTar::new();
    t.header(b"PaxHeader", tar::EntryType::XHeader, record.len() as u64);
    t.data(record.as_bytes());
    t.header(b"policy.rego", tar::EntryType::Regular, 0);
    t.data(policy);
    let b = Bundle::from_tar_gz(&support::gzip(&t.finish()), &Limits::default()).unwrap();
    assert_eq!(b.modules[0].source.as_bytes(), policy);
}

/// YAML aliases expand without bound: `a: &a [1, …n]` and a list of n `*a`
/// is n² values from ~5n bytes. serde_yaml_ng's repetition limit (100 alias
/// jumps per event) does not catch it: a 50 KB data.yaml (a 376-byte
/// archive) exhausted 4 GB of memory in 19 s.
#[test]
fn yaml_alias_expansion_is_bounded() {
    let n = 300;
    let ones = vec!["1"; n].join(",");
    let aliases = vec!["*a"; n].join(",");
    let yaml = format!("a: &a [{ones}]\nb: [{aliases}]\n");
    let r = Bundle::from_tar_gz(
        &tar_gz(&[("data.yaml", yaml.as_bytes())]),
        &Limits::default(),
    );
    assert_eq!(
        kind_of(&r),
        "bad_data",
        "{} bytes of YAML expanded to {n}² values",
        yaml.len()
    );
}

/// A delta bundle (`"type": "delta"` with a `patch.json`) is refused with a
/// reason instead of being read as an empty snapshot; `"snapshot"` loads.
#[test]
fn delta_bundles_are_refused_snapshots_load() {
    let limits = Limits::default();
    let delta = tar_gz(&[
        (
            ".manifest",
            br#"{"revision": "d1", "roots": ["a"], "type": "delta"}"#,
        ),
        (
            "patch.json",
            br#"{"data": [{"op": "upsert", "path": "/a/x", "value": 1}]}"#,
        ),
    ]);
    let err = Bundle::from_tar_gz(&delta, &limits).unwrap_err();
    assert_eq!(err.kind(), "bad_manifest");
    assert!(err.to_string().contains("delta"), "{err}");
    let snapshot = tar_gz(&[
        (
            ".manifest",
            br#"{"revision": "s1", "roots": ["a"], "type": "snapshot"}"#,
        ),
        ("a/data.json", br#"{"x": 1}"#),
    ]);
    let bundle = Bundle::from_tar_gz(&snapshot, &limits).unwrap();
    assert_eq!(bundle.data, json!({"a": {"x": 1}}));
}
