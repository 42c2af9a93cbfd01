//! The conformance corpus (fixtures/conformance, see CONFORMANCE.md): real
//! policies from public Rego repositories, each case a bundle, a query and an
//! input with the answer OPA v1.20.2 gives (written by
//! examples/tools/conformance_with_opa.py). Every case runs on both
//! evaluators; a difference from OPA fails unless it is pinned in
//! fixtures/conformance/pinned.json, and a pinned case that now agrees fails
//! too, so that fixed pins are removed.
//!
//! Comparison: an expected `{"error": ..}` agrees with any tenet error
//! (messages differ between the engines); `{}` is undefined; a result is
//! compared as JSON with numbers compared by value, and where the case is
//! `"unordered"` (the queried rule is a partial set, which both engines
//! return as an array) the top-level arrays are compared as multisets.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use tenet_bundle::{Bundle, BundleFile, Limits};
use tenet_policy::{CompileOptions, EvalLimits, Evaluator, Input, Policy};

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/conformance")
}

#[derive(Deserialize)]
struct Source {
    bundles: BTreeMap<String, BundleSpec>,
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct BundleSpec {
    modules: Vec<String>,
    #[serde(default)]
    data: Vec<String>,
}

#[derive(Deserialize)]
struct Case {
    id: String,
    bundle: String,
    query: String,
    input: Value,
    #[serde(default)]
    unordered: bool,
    expected: Value,
}

#[derive(Deserialize)]
struct Pins {
    classes: Vec<PinClass>,
}

#[derive(Deserialize)]
struct PinClass {
    class: String,
    reason: String,
    #[serde(default)]
    interpreter: Vec<String>,
    #[serde(default)]
    vm: Vec<String>,
}

const EVALUATORS: [(Evaluator, &str); 2] = [
    (Evaluator::Interpreter, "interpreter"),
    (Evaluator::Vm, "vm"),
];

fn load_bundle(dir: &Path, spec: &BundleSpec) -> Result<Bundle, String> {
    let files = spec
        .modules
        .iter()
        .chain(&spec.data)
        .map(|p| BundleFile {
            path: p.clone(),
            bytes: std::fs::read(dir.join("files").join(p)).unwrap_or_else(|e| panic!("{p}: {e}")),
        })
        .collect();
    Bundle::from_files(files, &Limits::default()).map_err(|e| e.to_string())
}

/// JSON equality with numbers compared by value (OPA writes `1`, regorus
/// may write `1.0`).
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            x == y || (x.as_f64().is_some() && x.as_f64() == y.as_f64())
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        _ => a == b,
    }
}

/// Whether tenet's answer agrees with OPA's.
fn agrees(case: &Case, got: &Value) -> bool {
    let expected = &case.expected;
    if expected.get("error").is_some() {
        return got.get("error").is_some();
    }
    match (expected.get("result"), got.get("result")) {
        (None, None) => got.get("error").is_none(),
        (Some(Value::Array(e)), Some(Value::Array(g))) if case.unordered => {
            let mut pending: Vec<&Value> = g.iter().collect();
            e.len() == g.len()
                && e.iter()
                    .all(|x| match pending.iter().position(|y| same(x, y)) {
                        Some(i) => {
                            pending.swap_remove(i);
                            true
                        }
                        None => false,
                    })
        }
        (Some(e), Some(g)) => same(e, g),
        _ => false,
    }
}

fn truncated(v: &Value) -> String {
    let s = v.to_string();
    if s.len() > 600 {
        let cut = (0..=600)
            .rev()
            .find(|&i| s.is_char_boundary(i))
            .unwrap_or(0);
        format!("{}… ({} bytes)", &s[..cut], s.len())
    } else {
        s
    }
}

#[test]
fn corpus_matches_opa_except_pinned() {
    let pins: Pins = serde_json::from_str(
        &std::fs::read_to_string(corpus().join("pinned.json")).expect("pinned.json"),
    )
    .expect("pinned.json parses");
    let mut pinned: BTreeMap<(String, &str), &str> = BTreeMap::new();
    for class in &pins.classes {
        assert!(
            !class.reason.is_empty(),
            "pin class {} has no reason",
            class.class
        );
        for (ids, evaluator) in [(&class.interpreter, "interpreter"), (&class.vm, "vm")] {
            for id in ids {
                let old = pinned.insert((id.clone(), evaluator), &class.class);
                assert!(old.is_none(), "{id} ({evaluator}) is pinned twice");
            }
        }
    }

    let mut sources: Vec<PathBuf> = std::fs::read_dir(corpus())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("cases.json").is_file())
        .collect();
    sources.sort();

    let mut unpinned = Vec::new();
    let mut stale = Vec::new();
    let mut seen: BTreeSet<(String, &str)> = BTreeSet::new();
    let mut table = Vec::new();
    let mut report = Vec::new();
    for dir in &sources {
        let name = dir.file_name().unwrap().to_string_lossy().to_string();
        let source: Source =
            serde_json::from_str(&std::fs::read_to_string(dir.join("cases.json")).unwrap())
                .unwrap_or_else(|e| panic!("{name}/cases.json: {e}"));
        for (force, evaluator) in EVALUATORS {
            let mut policies: BTreeMap<&str, Result<Policy, String>> = BTreeMap::new();
            let (mut agree, mut pinned_here) = (0, 0);
            for case in &source.cases {
                let policy = policies.entry(case.bundle.as_str()).or_insert_with(|| {
                    let spec = source
                        .bundles
                        .get(&case.bundle)
                        .unwrap_or_else(|| panic!("{}: no bundle {}", case.id, case.bundle));
                    load_bundle(dir, spec).and_then(|bundle| {
                        Policy::compile(
                            &bundle,
                            CompileOptions {
                                limits: EvalLimits::default(),
                                evaluator: force,
                            },
                        )
                        .map_err(|e| e.to_string())
                    })
                });
                let got = match policy {
                    Err(e) => json!({ "error": format!("compile: {e}") }),
                    Ok(policy) => {
                        let input =
                            Input::from_json(&case.input.to_string(), policy.limits()).unwrap();
                        match policy.evaluate(&case.query, &input) {
                            Ok(Some(v)) => json!({ "result": v }),
                            Ok(None) => json!({}),
                            Err(e) => json!({ "error": e.to_string() }),
                        }
                    }
                };
                let key = (case.id.clone(), evaluator);
                assert!(seen.insert(key.clone()), "duplicate case id {}", case.id);
                let ok = agrees(case, &got);
                match (ok, pinned.get(&key)) {
                    (true, None) => agree += 1,
                    (false, Some(_)) => pinned_here += 1,
                    (true, Some(class)) => stale.push(format!(
                        "{} ({evaluator}) is pinned as {class} but now agrees with OPA: remove the pin",
                        case.id
                    )),
                    (false, None) => unpinned.push(format!(
                        "{} ({evaluator})\n  query    {}\n  expected {}\n  actual   {}",
                        case.id,
                        case.query,
                        truncated(&case.expected),
                        truncated(&got)
                    )),
                }
                if !ok {
                    report.push(json!({"id": case.id, "evaluator": evaluator, "query": case.query, "expected": case.expected, "actual": got}));
                }
            }
            table.push(format!(
                "{name:<24} {evaluator:<12} {:>5} cases {agree:>5} agree {pinned_here:>4} pinned",
                source.cases.len()
            ));
        }
    }
    println!("{}", table.join("\n"));
    if let Ok(path) = std::env::var("CONFORMANCE_REPORT") {
        std::fs::write(&path, serde_json::to_string_pretty(&report).unwrap()).unwrap();
    }
    let missing: Vec<String> = pinned
        .keys()
        .filter(|k| !seen.contains(*k))
        .map(|(id, ev)| format!("{id} ({ev}) is pinned but not in the corpus"))
        .collect();
    let mut problems = Vec::new();
    if !unpinned.is_empty() {
        problems.push(format!(
            "{} differences from OPA are not pinned in fixtures/conformance/pinned.json:\n{}",
            unpinned.len(),
            unpinned.join("\n")
        ));
    }
    if !stale.is_empty() || !missing.is_empty() {
        problems.push(format!(
            "{} stale pins:\n{}",
            stale.len() + missing.len(),
            stale
                .iter()
                .chain(&missing)
                .cloned()
                .collect::<Vec<_>>()
                .join("\n")
        ));
    }
    assert!(problems.is_empty(), "{}", problems.join("\n\n"));
    assert!(seen.len() >= 1000, "only {} case runs", seen.len());
}
