//! Property tests: whatever bytes arrive, loading returns a bundle or a typed
//! error (never a panic), paths come out normalised or are refused, data
//! round-trips exactly, and the JSON depth limit is exact.

use crate::support::{gunzip, gzip, kind_of, tar_gz, NameForm, RawTar, KINDS};
use proptest::collection::{btree_map, vec};
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::string::string_regex;
use proptest::test_runner::FileFailurePersistence;
use serde_json::Value;
use std::sync::OnceLock;
use tenet_bundle::{read_tar_gz, Bundle, BundleError, Limits};

/// Fails the case unless `r` is Ok or an error with a known kind (and a
/// message that formats).
fn assert_typed<T>(r: &Result<T, BundleError>) -> Result<(), TestCaseError> {
    if let Err(e) = r {
        prop_assert!(KINDS.contains(&e.kind()), "unknown kind {}", e.kind());
        prop_assert!(!e.to_string().is_empty());
    }
    Ok(())
}

/// A path as the bundle reports it: relative, normalised, no escapes.
fn assert_clean_path(p: &str, limits: &Limits) -> Result<(), TestCaseError> {
    prop_assert!(!p.is_empty(), "empty path");
    prop_assert!(!p.starts_with('/'), "leading slash in {p:?}");
    prop_assert!(!p.contains('\\'), "backslash in {p:?}");
    prop_assert!(!p.contains('\0'), "NUL in {p:?}");
    prop_assert!(
        p.split('/').all(|c| !c.is_empty() && c != "." && c != ".."),
        "not normalised: {p:?}"
    );
    prop_assert!(p.split('/').count() <= limits.max_path_depth);
    Ok(())
}

fn assert_bundle_invariants(b: &Bundle, limits: &Limits) -> Result<(), TestCaseError> {
    prop_assert!(b.data.is_object());
    for (p, _) in &b.files {
        assert_clean_path(p, limits)?;
    }
    prop_assert!(b.files.len() <= limits.max_files);
    prop_assert!(b.total_bytes() <= limits.max_expanded_bytes);
    Ok(())
}

/// An uncompressed valid bundle with every kind of file.
fn valid_tar() -> &'static [u8] {
    static TAR: OnceLock<Vec<u8>> = OnceLock::new();
    TAR.get_or_init(|| {
        let mut t = RawTar::new();
        t.file(".manifest", br#"{"revision": "p1", "roots": ["app"]}"#);
        t.file(
            "app/authz/policy.rego",
            b"package app.authz\n\ndefault allow := false\n",
        );
        t.file(
            "app/data.json",
            br#"{"users": {"alice": {"roles": ["admin"]}}}"#,
        );
        t.file("app/settings/data.yaml", b"region: eu\nretries: 3\n");
        t.file_as(
            NameForm::GnuLong,
            format!("app/{}/data.json", "long".repeat(30)).as_bytes(),
            br#"{"deep": true}"#,
        );
        t.file_as(NameForm::Ustar, b"app/docs/README.md", b"# docs\n");
        t.finish()
    })
}

fn valid_gz() -> &'static [u8] {
    static GZ: OnceLock<Vec<u8>> = OnceLock::new();
    GZ.get_or_init(|| gzip(valid_tar()))
}

#[test]
fn the_uncorrupted_archive_is_valid() {
    let b = Bundle::from_tar_gz(valid_gz(), &Limits::default()).unwrap();
    assert_eq!(b.files.len(), 6);
    assert_eq!(b.data["app"]["settings"]["retries"], 3);
    assert_eq!(b.data["app"]["long".repeat(30)]["deep"], true);
    assert_eq!(gunzip(valid_gz()), valid_tar());
}

/// Entry names built to probe normalisation: `..`, `.`, empty components,
/// backslashes, NUL, drive letters, unicode, and raw (possibly non-UTF-8)
/// bytes.
fn entry_name() -> impl Strategy<Value = Vec<u8>> {
    let segment = prop_oneof![
        10 => string_regex("[a-z]{1,6}").unwrap(),
        1 => string_regex("[a-z]{1,4}\\.(rego|json)").unwrap(),
        3 => Just("..".to_string()),
        1 => Just(".".to_string()),
        1 => Just(String::new()),
        1 => Just("\\".to_string()),
        1 => Just("..\\..".to_string()),
        1 => Just("\0".to_string()),
        1 => Just("C:".to_string()),
        1 => Just("...".to_string()),
        2 => string_regex("\\PC{1,3}").unwrap(),
        1 => any::<char>().prop_map(String::from),
    ];
    let sep = prop_oneof![4 => Just("/"), 1 => Just("\\"), 1 => Just("//")];
    let lead = prop_oneof![3 => Just(""), 2 => Just("/"), 1 => Just("//"), 1 => Just("./")];
    let text =
        (lead, vec((sep, segment), 1..12), any::<bool>()).prop_map(|(lead, parts, trailing)| {
            let mut s = lead.to_string();
            for (i, (sep, seg)) in parts.into_iter().enumerate() {
                if i > 0 {
                    s.push_str(sep);
                }
                s.push_str(&seg);
            }
            if trailing {
                s.push('/');
            }
            s.into_bytes()
        });
    let deep = (1usize..45).prop_map(|d| vec!["d"; d].join("/").into_bytes());
    prop_oneof![6 => text, 1 => deep, 1 => vec(any::<u8>(), 1..120)]
}

fn name_form() -> impl Strategy<Value = NameForm> {
    prop::sample::select(vec![NameForm::Gnu, NameForm::GnuLong, NameForm::Ustar])
}

/// A JSON leaf. Floats are multiples of 1/1024 with at most 15 significant
/// digits: exact in binary and in decimal. (Longer decimals do not always
/// parse back to the same bit pattern: see
/// `float_with_17_significant_digits_round_trips`.)
fn json_leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<i16>().prop_map(|i| Value::from(f64::from(i) / 1024.0)),
        any::<i32>().prop_map(|i| Value::from(f64::from(i) * 4.0)),
        string_regex("(?s).{0,12}").unwrap().prop_map(Value::String),
    ]
}

fn json_key() -> impl Strategy<Value = String> {
    string_regex("(?s).{0,8}").unwrap()
}

/// A data document: an object whose values nest at most 5 more levels
/// (6 in all).
fn json_doc() -> impl Strategy<Value = Value> {
    let value = json_leaf().prop_recursive(5, 48, 5, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..5).prop_map(Value::Array),
            btree_map(json_key(), inner, 0..5).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    });
    btree_map(json_key(), value, 0..6).prop_map(|m| Value::Object(m.into_iter().collect()))
}

/// Wraps `doc` under `mount` (`["a","b"]` → `{"a": {"b": doc}}`).
fn mounted(doc: &Value, mount: &[String]) -> Value {
    mount.iter().rev().fold(doc.clone(), |v, k| {
        let mut m = serde_json::Map::new();
        m.insert(k.clone(), v);
        Value::Object(m)
    })
}

fn data_path(mount: &[String], name: &str) -> String {
    mount.iter().map(|m| format!("{m}/")).collect::<String>() + name
}

/// Proptest settings: `cases` cases; failures are saved (relative to the
/// package root, where cargo runs tests) for replay.
fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            "tests/proptest-regressions.txt",
        ))),
        ..ProptestConfig::default()
    }
}

/// serde_json is built without its `float_roundtrip` feature, so a decimal
/// with more than 15 significant digits may parse to a neighbouring f64:
/// data would differ (by one ulp) from what OPA reads. Enable once the
/// workspace turns `float_roundtrip` on.
#[test]
fn float_with_17_significant_digits_round_trips() {
    let text = br#"{"x": 973594.8974609375}"#;
    let b = Bundle::from_tar_gz(&tar_gz(&[("data.json", text)]), &Limits::default()).unwrap();
    assert_eq!(b.data["x"].as_f64(), Some(973_594.897_460_937_5));
}

proptest! {
    #![proptest_config(config(256))]

    /// (a) Arbitrary bytes, as an archive and as a gzip-wrapped tar stream.
    #[test]
    fn random_bytes_never_panic(bytes in vec(any::<u8>(), 0..2048)) {
        let l = Limits::default();
        assert_typed(&read_tar_gz(&bytes, &l))?;
        assert_typed(&Bundle::from_tar_gz(&bytes, &l))?;
        let r = Bundle::from_tar_gz(&gzip(&bytes), &l);
        assert_typed(&r)?;
        if let Ok(b) = &r {
            assert_bundle_invariants(b, &l)?;
        }
    }

    /// (a) Random header blocks with a correct checksum, so the tar parser
    /// gets past the checksum and meets random types, sizes and names.
    #[test]
    fn random_tar_headers_never_panic(
        block in vec(any::<u8>(), 512),
        kind in prop::sample::select(b"0\x0012345677gxLKSVM?".to_vec()),
        magic in 0u8..3,
        size in prop::option::of(0u64..1500),
        content in vec(any::<u8>(), 0..1500),
        then_valid in any::<bool>(),
    ) {
        let mut h = tar::Header::from_byte_slice(&block).clone();
        match magic {
            0 => {}
            1 => h.as_mut_bytes()[257..265].copy_from_slice(b"ustar  \0"),
            _ => h.as_mut_bytes()[257..265].copy_from_slice(b"ustar\x0000"),
        }
        h.as_old_mut().linkflag[0] = kind;
        if let Some(size) = size {
            h.set_size(size);
        }
        h.set_cksum();
        let mut tar = h.as_bytes().to_vec();
        tar.extend_from_slice(&content);
        tar.resize(tar.len().div_ceil(512) * 512, 0);
        if then_valid {
            tar.extend_from_slice(valid_tar());
        } else {
            tar.extend_from_slice(&[0; 1024]);
        }
        let l = Limits { max_file_bytes: 1 << 20, max_expanded_bytes: 4 << 20, ..Limits::default() };
        let r = Bundle::from_tar_gz(&gzip(&tar), &l);
        assert_typed(&r)?;
        if let Ok(b) = &r {
            assert_bundle_invariants(b, &l)?;
        }
    }

    /// (b) A valid archive with bytes flipped and/or cut, either in the
    /// compressed stream or in the tar stream inside it.
    #[test]
    fn corrupted_archives_never_panic(
        flips in vec((any::<Index>(), 1u8..=255), 0..6),
        cut in prop::option::of(any::<Index>()),
        in_tar in any::<bool>(),
    ) {
        let mut bytes = if in_tar { valid_tar().to_vec() } else { valid_gz().to_vec() };
        for (at, x) in &flips {
            let i = at.index(bytes.len());
            bytes[i] ^= x;
        }
        if let Some(at) = cut {
            bytes.truncate(at.index(bytes.len()));
        }
        let archive = if in_tar { gzip(&bytes) } else { bytes };
        let l = Limits::default();
        let r = Bundle::from_tar_gz(&archive, &l);
        assert_typed(&r)?;
        match &r {
            Ok(b) => assert_bundle_invariants(b, &l)?,
            Err(e) => prop_assert!(
                !flips.is_empty() || cut.is_some(),
                "the intact archive was refused: {e}"
            ),
        }
    }

    /// (c) Entry names: refused with a path-related kind, or accepted as a
    /// clean relative path equal to the raw name minus one leading `/`,
    /// `.` and empty components.
    #[test]
    fn entry_names_are_normalised_or_refused(name in entry_name(), form in name_form()) {
        let mut t = RawTar::new();
        t.file_as(form, &name, b"x");
        let tar = t.finish();
        // The name as the tar layer reports it: the input to normalisation.
        let raw = tar::Archive::new(tar.as_slice())
            .entries()
            .ok()
            .and_then(|mut e| e.next())
            .and_then(Result::ok)
            .map(|e| e.path_bytes().into_owned());

        let l = Limits::default();
        let r = read_tar_gz(&gzip(&tar), &l);
        match &r {
            Err(e) => prop_assert!(
                ["unsafe_path", "path_too_deep", "invalid_utf8", "corrupt_archive"]
                    .contains(&e.kind()),
                "{name:?} refused as {}: {e}", e.kind()
            ),
            Ok(files) => {
                prop_assert_eq!(files.len(), 1);
                let p = &files[0].path;
                assert_clean_path(p, &l)?;
                let raw = String::from_utf8(raw.clone().unwrap_or_default()).unwrap_or_default();
                prop_assert!(!raw.starts_with("//"), "{raw:?} accepted");
                prop_assert!(!raw.contains('\\'), "{raw:?} accepted");
                let want: Vec<&str> =
                    raw.split('/').filter(|c| !c.is_empty() && *c != ".").collect();
                prop_assert_eq!(p, &want.join("/"));
            }
        }
        if let Some(raw) = raw {
            if raw.split(|&b| b == b'/').any(|c| c == b"..") {
                prop_assert_eq!(kind_of(&r), "unsafe_path", "{:?}", String::from_utf8_lossy(&raw));
            }
        }
    }

    /// (d) Any JSON document written as a data file is the data, exactly.
    #[test]
    fn json_data_round_trips(doc in json_doc(), mount in vec("[a-z]{1,4}", 0..3)) {
        let text = serde_json::to_vec(&doc).unwrap();
        let path = data_path(&mount, "data.json");
        let l = Limits::default();
        let b = Bundle::from_tar_gz(&tar_gz(&[(path.as_str(), text.as_slice())]), &l)
            .map_err(|e| TestCaseError::fail(format!("{}: {e}", e.kind())))?;
        prop_assert_eq!(&b.data, &mounted(&doc, &mount));
        prop_assert_eq!(b.data_files.len(), 1);
        prop_assert_eq!(&b.data_files[0].mount, &mount);
    }

    /// (e) Depth `d` of arrays inside the top-level object: accepted iff
    /// d + 1 <= max_json_depth, for JSON and for YAML flow style.
    #[test]
    fn json_depth_limit_is_exact(
        (limit, d) in (1usize..=100).prop_flat_map(|limit| {
            (Just(limit), prop_oneof![1usize..300, limit.saturating_sub(2).max(1)..limit + 3])
        }),
        yaml in any::<bool>(),
    ) {
        let text = format!("{{\"x\": {}{}}}", "[".repeat(d), "]".repeat(d));
        let l = Limits { max_json_depth: limit, ..Limits::default() };
        let name = if yaml { "data.yaml" } else { "data.json" };
        let r = Bundle::from_tar_gz(&tar_gz(&[(name, text.as_bytes())]), &l);
        if d < limit {
            prop_assert_eq!(kind_of(&r), "ok", "{} levels under limit {}", d + 1, limit);
        } else {
            prop_assert_eq!(kind_of(&r), "json_too_deep", "{} levels under limit {}", d + 1, limit);
        }
    }
}

proptest! {
    #![proptest_config(config(64))]

    /// (d, YAML) The same documents written as YAML load to the same data.
    #[test]
    fn yaml_data_round_trips(doc in json_doc(), mount in vec("[a-z]{1,4}", 0..3)) {
        let text = serde_yaml_ng::to_string(&doc).unwrap();
        let path = data_path(&mount, "data.yaml");
        let b = Bundle::from_tar_gz(&tar_gz(&[(path.as_str(), text.as_bytes())]), &Limits::default())
            .map_err(|e| TestCaseError::fail(format!("{}: {e}\n{text}", e.kind())))?;
        prop_assert_eq!(&b.data, &mounted(&doc, &mount));
    }
}
