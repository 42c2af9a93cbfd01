//! Integration tests of compiled policies: evaluation paths agree, limits
//! hold, and the hostile-policy corpus fails per evaluation, never the process.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tenet_bundle::{Bundle, BundleFile, Limits};
use tenet_policy::{CompileOptions, EvalLimits, Evaluator, Input, Policy, PolicyError};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn bundle(files: &[(&str, &str)]) -> Bundle {
    let files = files
        .iter()
        .map(|(p, s)| BundleFile {
            path: p.to_string(),
            bytes: s.as_bytes().to_vec(),
        })
        .collect();
    Bundle::from_files(files, &Limits::default()).unwrap()
}

fn compile(b: &Bundle, evaluator: Evaluator, limits: EvalLimits) -> Policy {
    Policy::compile(b, CompileOptions { limits, evaluator }).unwrap()
}

fn input(v: Value) -> Input {
    Input::from_value(&v, &EvalLimits::default()).unwrap()
}

const RBAC: &str = r#"package app.rbac

default allow := false

allow if {
    some role in data.app.bindings[input.user]
    some grant in data.app.grants[role]
    grant.action == input.action
}

reasons contains msg if {
    not allow
    msg := sprintf("%s may not %s", [input.user, input.action])
}

roles := data.app.bindings[input.user]
"#;

const RBAC_DATA: &str = r#"{"app": {"bindings": {"alice": ["admin"], "bob": ["viewer"]},
  "grants": {"admin": [{"action": "write"}, {"action": "read"}], "viewer": [{"action": "read"}]}}}"#;

#[test]
fn rule_paths_run_on_the_vm_and_agree_with_the_interpreter() {
    let b = bundle(&[("app/rbac.rego", RBAC), ("data.json", RBAC_DATA)]);
    let auto = compile(&b, Evaluator::Vm, EvalLimits::default());
    let interp = compile(&b, Evaluator::Interpreter, EvalLimits::default());
    let allow = tenet_policy::QueryPath::parse("data.app.rbac.allow").unwrap();
    assert_eq!(auto.query(&allow).unwrap().evaluator(), Evaluator::Vm);
    assert_eq!(
        interp.query(&allow).unwrap().evaluator(),
        Evaluator::Interpreter
    );
    for (user, action, expected) in [
        ("alice", "write", true),
        ("bob", "read", true),
        ("bob", "write", false),
        ("carol", "read", false),
    ] {
        let i = input(json!({"user": user, "action": action}));
        for p in [&auto, &interp] {
            assert_eq!(
                p.evaluate("data.app.rbac.allow", &i).unwrap(),
                Some(json!(expected))
            );
            assert_eq!(
                p.evaluate("app/rbac/allow", &i).unwrap(),
                Some(json!(expected))
            );
        }
        assert_eq!(
            auto.evaluate("data.app.rbac.reasons", &i).unwrap(),
            interp.evaluate("data.app.rbac.reasons", &i).unwrap()
        );
    }
    // Undefined: a complete rule whose body fails, and a missing document.
    let carol = input(json!({"user": "carol", "action": "read"}));
    assert_eq!(auto.evaluate("data.app.rbac.roles", &carol).unwrap(), None);
    assert_eq!(
        auto.evaluate("data.app.rbac.nothing", &carol).unwrap(),
        None
    );
    // A package path returns the package document; data paths return data.
    let pkg = auto.evaluate("data.app.rbac", &carol).unwrap().unwrap();
    assert_eq!(pkg["allow"], json!(false));
    assert_eq!(pkg["reasons"], json!(["carol may not read"]));
    assert!(pkg.get("roles").is_none());
    assert_eq!(
        auto.evaluate("data.app.bindings.bob", &carol).unwrap(),
        Some(json!(["viewer"]))
    );
}

#[test]
fn builtin_errors_are_undefined_on_both_evaluators_as_in_opa() {
    let b = bundle(&[(
        "p.rego",
        "package p\n\nn := to_number(input.s)\n\nok := true if { to_number(input.s) }\n",
    )]);
    for force in [Evaluator::Vm, Evaluator::Interpreter] {
        let p = compile(&b, force, EvalLimits::default());
        assert_eq!(
            p.evaluate("data.p.n", &input(json!({"s": "abc"}))).unwrap(),
            None
        );
        assert_eq!(
            p.evaluate("data.p.n", &input(json!({"s": "12"}))).unwrap(),
            Some(json!(12))
        );
    }
}

#[test]
fn determinism_is_reported() {
    let pure = bundle(&[(
        "p.rego",
        "package p\n\nx := time.parse_rfc3339_ns(input.t)\n",
    )]);
    let clock = bundle(&[("p.rego", "package p\n\nx := time.now_ns()\n")]);
    assert!(compile(&pure, Evaluator::default(), EvalLimits::default()).is_deterministic());
    assert!(!compile(&clock, Evaluator::default(), EvalLimits::default()).is_deterministic());
}

#[test]
fn compile_errors_name_the_file() {
    let b = bundle(&[("bad/x.rego", "package bad\n\nallow if {\n")]);
    let err = Policy::compile(&b, CompileOptions::default()).unwrap_err();
    match err {
        PolicyError::Compile { file, .. } => assert_eq!(file, "bad/x.rego"),
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn rego_v0_modules_compile_when_the_manifest_says_so() {
    let b = bundle(&[
        (".manifest", r#"{"rego_version": 0}"#),
        ("p.rego", "package p\n\nallow { input.x == 1 }\n"),
    ]);
    let p = compile(&b, Evaluator::Vm, EvalLimits::default());
    assert_eq!(
        p.evaluate("data.p.allow", &input(json!({"x": 1}))).unwrap(),
        Some(json!(true))
    );
}

#[test]
fn input_limits_are_part_of_the_api() {
    let limits = EvalLimits {
        max_input_depth: 3,
        ..EvalLimits::default()
    };
    assert!(matches!(
        Input::from_json(r#"{"a": {"b": {"c": {}}}}"#, &limits),
        Err(PolicyError::InputTooDeep { limit: 3 })
    ));
}

#[test]
fn policies_are_shared_across_threads_without_a_lock() {
    let b = bundle(&[("app/rbac.rego", RBAC), ("data.json", RBAC_DATA)]);
    let p = compile(&b, Evaluator::Vm, EvalLimits::default());
    std::thread::scope(|s| {
        for t in 0..4 {
            let p = p.clone();
            s.spawn(move || {
                for i in 0..200 {
                    let user = if (i + t) % 2 == 0 { "alice" } else { "bob" };
                    let got = p
                        .evaluate(
                            "data.app.rbac.allow",
                            &input(json!({"user": user, "action": "write"})),
                        )
                        .unwrap();
                    assert_eq!(got, Some(json!(user == "alice")));
                }
            });
        }
    });
}

/// The hostile-policy corpus: every policy fails (or succeeds) exactly as
/// `expected.json` says, on every evaluator that accepts it, and the process
/// survives all of them (an abort would kill this test binary).
#[test]
fn hostile_policies_fail_per_evaluation_and_the_process_survives() {
    let dir = root().join("fixtures/policies/hostile");
    let expected: serde_json::Map<String, Value> =
        serde_json::from_str(&std::fs::read_to_string(dir.join("expected.json")).unwrap()).unwrap();
    // A memory budget small enough that the memory attacks reach it well
    // before the deadline in a debug build.
    let limits = EvalLimits {
        deadline: Duration::from_millis(300),
        max_instructions: 1_000_000,
        max_memory_bytes: 128 << 20,
        ..EvalLimits::default()
    };
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("rego") {
            continue;
        }
        let name = path.file_stem().unwrap().to_str().unwrap().to_string();
        let case = expected
            .get(&name)
            .unwrap_or_else(|| panic!("{name}.rego has no entry in expected.json"));
        let source = std::fs::read_to_string(&path).unwrap();
        let b = bundle(&[(&format!("{name}.rego"), &source)]);
        let input = match case.get("input") {
            Some(f) => Input::from_json(
                &std::fs::read_to_string(dir.join(f.as_str().unwrap())).unwrap(),
                &limits,
            )
            .unwrap(),
            None => Input::none(),
        };
        // Attacks that must reach another limit first may run longer.
        let limits = match case.get("deadline_ms").and_then(Value::as_u64) {
            Some(ms) => EvalLimits {
                deadline: Duration::from_millis(ms),
                ..limits.clone()
            },
            None => limits.clone(),
        };
        for force in [Evaluator::Vm, Evaluator::Interpreter] {
            let compiled = Policy::compile(
                &b,
                CompileOptions {
                    limits: limits.clone(),
                    evaluator: force,
                },
            );
            if let Some(want) = case.get("compile_error").and_then(Value::as_str) {
                match compiled {
                    Err(e) => {
                        assert_eq!(e.kind(), "compile_error", "{name} ({force:?}): {e}");
                        assert!(e.to_string().contains(want), "{name} ({force:?}): {e}");
                    }
                    Ok(_) => panic!("{name} ({force:?}): compiled, expected {want:?}"),
                }
                continue;
            }
            let p = compiled.unwrap_or_else(|e| panic!("{name} ({force:?}): {e}"));
            let got = p.evaluation(case["query"].as_str().unwrap(), &input);
            let answered = got.as_ref().map(|e| e.result.clone()).map_err(|e| e.kind());
            // The interpreter has no instruction counter; its deadline stops
            // what the VM's instruction cap stops.
            let want = match force {
                Evaluator::Interpreter => case.get("interpreter_error").or(case.get("error")),
                _ => case.get("error"),
            };
            match (want, got) {
                (Some(kind), Err(e)) => assert_eq!(e.kind(), kind, "{name} ({force:?}): {e}"),
                (Some(kind), Ok(v)) => panic!("{name} ({force:?}): expected {kind}, got {v:?}"),
                (None, Ok(v)) => {
                    assert_eq!(v.result.as_ref(), case.get("result"), "{name}");
                    if let Some(prints) = case.get("prints") {
                        let prints: Vec<String> = serde_json::from_value(prints.clone()).unwrap();
                        assert!(
                            prints
                                .iter()
                                .all(|want| v.prints.iter().any(|got| got.contains(want))),
                            "{name}: prints {:?}",
                            v.prints
                        );
                    }
                }
                (None, Err(e)) => panic!("{name} ({force:?}): unexpected error {e}"),
            }
            // The same compiled policy answers the same again: nothing of
            // the first evaluation (failed or not) leaks into the next.
            let again = p.evaluation(case["query"].as_str().unwrap(), &input);
            assert_eq!(
                again
                    .as_ref()
                    .map(|e| e.result.clone())
                    .map_err(|e| e.kind()),
                answered,
                "{name} ({force:?}), evaluated again"
            );
        }
        seen += 1;
    }
    assert_eq!(
        seen,
        expected.len(),
        "expected.json lists policies that do not exist"
    );
}

#[test]
fn rules_with_several_definitions_run_on_the_vm_and_conflicts_are_errors() {
    let b = bundle(&[(
        "p.rego",
        "package p\n\nallow if input.a == 1\n\nallow if input.b == 1\n\nx = 1 if input.a == 1\n\nx = 2 if input.b == 1\n",
    )]);
    let p = compile(&b, Evaluator::Vm, EvalLimits::default());
    let allow = tenet_policy::QueryPath::parse("data.p.allow").unwrap();
    let x = tenet_policy::QueryPath::parse("data.p.x").unwrap();
    assert_eq!(p.query(&allow).unwrap().evaluator(), Evaluator::Vm);
    assert_eq!(p.query(&x).unwrap().evaluator(), Evaluator::Vm);
    assert_eq!(
        p.evaluate("data.p.x", &input(json!({"a": 1}))).unwrap(),
        Some(json!(1))
    );
    let both = input(json!({"a": 1, "b": 1}));
    assert_eq!(
        p.evaluate("data.p.allow", &both).unwrap(),
        Some(json!(true))
    );
    assert_eq!(
        p.evaluate("data.p.x", &both).unwrap_err().kind(),
        "evaluation_error"
    );
}

/// #9, memory per busy tenant: `engine_uses` counts what needs the
/// analysed engine (a new path, an error report), not decisions on
/// prepared RVM paths; `drop_engine` drops it and keeps the evaluators, and
/// the next new path rebuilds it.
#[test]
fn a_policy_deciding_on_prepared_paths_needs_no_engine() {
    let b = bundle(&[("app/rbac.rego", RBAC), ("data.json", RBAC_DATA)]);
    let p = compile(&b, Evaluator::Vm, EvalLimits::default());
    let alice = input(json!({"user": "alice", "action": "write"}));
    assert_eq!(
        p.evaluate("data.app.rbac.allow", &alice).unwrap(),
        Some(json!(true))
    );
    let uses = p.engine_uses();
    assert!(uses >= 1, "preparing a path uses the engine");
    let busy = p.approx_bytes();
    assert!(p.drop_engine());
    assert!(!p.drop_engine(), "already dropped");
    assert!(p.approx_bytes() < busy, "{} of {busy}", p.approx_bytes());
    for _ in 0..3 {
        assert_eq!(
            p.evaluate("data.app.rbac.allow", &alice).unwrap(),
            Some(json!(true))
        );
    }
    assert_eq!(p.engine_uses(), uses, "decisions need no engine");
    assert_eq!(p.idle_evaluators(), 1, "the evaluator stays");
    // A new path rebuilds it.
    assert_eq!(
        p.evaluate("data.app.rbac.roles", &alice).unwrap(),
        Some(json!(["admin"]))
    );
    assert!(p.engine_uses() > uses);
    assert_eq!(p.approx_bytes(), busy);
}

/// #9, memory per tenant: a trimmed policy drops its pooled evaluators and
/// its analysed engine, and rebuilds what it needs: it still decides,
/// prepares new paths (on both evaluators) and reports an RVM conflict with
/// the interpreter's located message.
#[test]
fn a_trimmed_policy_rebuilds_what_it_needs() {
    let b = bundle(&[(
        "p.rego",
        "package p\n\nallow if input.a == 1\n\nx = 1 if input.a == 1\n\nx = 2 if input.b == 1\n",
    )]);
    let p = compile(&b, Evaluator::Vm, EvalLimits::default());
    let a = input(json!({"a": 1}));
    assert_eq!(p.evaluate("data.p.allow", &a).unwrap(), Some(json!(true)));
    let conflict = p
        .evaluate("data.p.x", &input(json!({"a": 1, "b": 1})))
        .unwrap_err()
        .to_string();
    assert_eq!(p.idle_evaluators(), 1);
    let busy = p.approx_bytes();

    p.trim();
    assert_eq!(p.idle_evaluators(), 0);
    assert!(
        p.approx_bytes() < busy / 2,
        "{} of {busy}",
        p.approx_bytes()
    );
    assert_eq!(p.evaluate("data.p.allow", &a).unwrap(), Some(json!(true)));
    p.trim();
    // A new path: compiled from a rebuilt engine; a package path runs on
    // the interpreter.
    assert_eq!(p.evaluate("data.p.x", &a).unwrap(), Some(json!(1)));
    p.trim();
    assert_eq!(
        p.evaluate("data.p", &a).unwrap(),
        Some(json!({"allow": true, "x": 1}))
    );
    p.trim();
    assert_eq!(
        p.evaluate("data.p.x", &input(json!({"a": 1, "b": 1})))
            .unwrap_err()
            .to_string(),
        conflict
    );
}

/// #9, memory per tenant: compiled glob and regex patterns (a few KiB of
/// automata each) go with `trim`, and are compiled again when next used.
#[test]
fn a_trimmed_policy_drops_its_compiled_patterns() {
    let b = bundle(&[(
        "p.rego",
        "package p\n\nallow if {\n\tglob.match(\"/t1/**\", [\"/\"], input.path)\n\tregex.match(\"^[a-z]+$\", input.user)\n}\n",
    )]);
    for evaluator in [Evaluator::Vm, Evaluator::Interpreter] {
        let p = compile(&b, evaluator, EvalLimits::default());
        let yes = input(json!({"path": "/t1/a/b", "user": "bob"}));
        let no = input(json!({"path": "/t2/a", "user": "bob"}));
        assert_eq!(p.evaluate("data.p.allow", &yes).unwrap(), Some(json!(true)));
        assert_eq!(p.cached_patterns(), 2, "{evaluator:?}");
        p.trim();
        assert_eq!(p.cached_patterns(), 0, "{evaluator:?}");
        assert_eq!(p.evaluate("data.p.allow", &no).unwrap(), None);
        assert_eq!(p.evaluate("data.p.allow", &yes).unwrap(), Some(json!(true)));
        assert_eq!(p.cached_patterns(), 2, "{evaluator:?}");
    }
}

/// regorus 0.14.1's RVM puts `"<undefined>"` into a comprehension when a
/// lookup inside it is undefined; OPA skips the element. The default
/// evaluator must give OPA's answer.
#[test]
fn default_evaluator_skips_undefined_elements_like_opa() {
    let b = bundle(&[
        (
            "p.rego",
            "package p\n\nroles := [\"a\", \"b\"]\n\nlimits := [l | some r in roles; l := data.lim[r].x]\n",
        ),
        ("data.json", r#"{"lim": {"a": {}, "b": {"x": 5}}}"#),
    ]);
    let p = Policy::compile(&b, CompileOptions::default()).unwrap();
    assert_eq!(
        p.evaluate("data.p.limits", &Input::none()).unwrap(),
        Some(json!([5]))
    );
}

#[test]
fn extension_errors_are_undefined_as_in_opa() {
    let b = bundle(&[(
        "p.rego",
        "package p\n\nclaims := io.jwt.decode(input.token)[1]\n\nsum := crypto.sha256(\"\")\n",
    )]);
    let p = compile(&b, Evaluator::default(), EvalLimits::default());
    assert_eq!(
        p.evaluate("data.p.claims", &input(json!({"token": "abc"})))
            .unwrap(),
        None
    );
    assert_eq!(
        p.evaluate("data.p.sum", &Input::none()).unwrap(),
        Some(json!(
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        ))
    );
}

#[test]
fn concurrent_misses_on_one_path_build_one_prepared_query() {
    let b = bundle(&[("app/rbac.rego", RBAC), ("data.json", RBAC_DATA)]);
    let p = compile(&b, Evaluator::default(), EvalLimits::default());
    let path = tenet_policy::QueryPath::parse("data.app.rbac.allow").unwrap();
    let barrier = std::sync::Barrier::new(8);
    std::thread::scope(|s| {
        for _ in 0..8 {
            s.spawn(|| {
                barrier.wait();
                p.query(&path).unwrap();
            });
        }
    });
    assert_eq!(p.prepared_builds(), 1);
    p.query(&tenet_policy::QueryPath::parse("data.app.rbac.reasons").unwrap())
        .unwrap();
    assert_eq!(p.prepared_builds(), 2);
}

#[test]
fn prepared_queries_are_capped_and_odd_paths_are_undefined() {
    let b = bundle(&[("app/rbac.rego", RBAC), ("data.json", RBAC_DATA)]);
    let p = compile(&b, Evaluator::default(), EvalLimits::default());
    for i in 0..(tenet_policy::MAX_CACHED_QUERIES + 100) {
        assert_eq!(
            p.evaluate(&format!("app/missing{i}"), &Input::none())
                .unwrap(),
            None
        );
    }
    assert_eq!(p.prepared_builds(), tenet_policy::MAX_CACHED_QUERIES as u64);
    assert_eq!(p.evaluate("app/a\nb", &Input::none()).unwrap(), None);
}

/// Policies generated too large to keep as files: deep nesting of every
/// syntactic form and very long chains. Each either compiles and answers or
/// is refused with a compile error; none may overflow the stack (this test
/// runs on a 2 MiB thread in a debug build, so an overflow aborts it).
#[test]
fn deeply_nested_and_very_long_policies_are_refused_or_answered() {
    fn nest(open: &str, inner: &str, close: &str, depth: usize) -> String {
        format!("{}{inner}{}", open.repeat(depth), close.repeat(depth))
    }
    let cases: Vec<(&str, String)> = vec![
        (
            "parentheses",
            format!("x := {}", nest("(", "1", ")", 100_000)),
        ),
        ("arrays", format!("x := {}", nest("[", "1", "]", 100_000))),
        (
            "objects",
            format!("x := {}", nest("{\"a\": ", "1", "}", 50_000)),
        ),
        ("sets", format!("x := {}", nest("{", "1", "}", 100_000))),
        (
            "array comprehensions",
            format!("x := {}", nest("[a | a := ", "1", "]", 20_000)),
        ),
        (
            "negations",
            format!("x := {}", nest("-(", "1", ")", 50_000)),
        ),
        ("a long sum", format!("x := 0{}", " + 1".repeat(100_000))),
        (
            "a long with chain",
            format!(
                "x := input.k{}",
                (0..10_000)
                    .map(|i| format!(" with input.k{i} as {i}"))
                    .collect::<String>()
            ),
        ),
        (
            "a long else chain",
            format!(
                "x := 0 if false{} else := 1",
                " else := 0 if false".repeat(10_000)
            ),
        ),
        (
            "nested every",
            format!(
                "x if {{ {} }}",
                nest("every a in [1] { ", "true", " }", 20_000)
            ),
        ),
    ];
    for (name, body) in cases {
        let source = format!("package deep\n\n{body}\n");
        let b = bundle(&[("deep.rego", &source)]);
        for evaluator in [Evaluator::Vm, Evaluator::Interpreter] {
            let limits = EvalLimits {
                deadline: Duration::from_secs(2),
                ..EvalLimits::default()
            };
            match Policy::compile(&b, CompileOptions { limits, evaluator }) {
                Err(e) => assert_eq!(e.kind(), "compile_error", "{name} ({evaluator:?}): {e}"),
                Ok(p) => {
                    // Whatever it answers, it answers per evaluation.
                    let _ = p.evaluation("data.deep.x", &Input::none());
                }
            }
        }
    }
}

/// #10 finding 5: a result of 1,000 references to one string is measured
/// as it would be written, and refused past `max_result_bytes` on both
/// evaluators; `print` output is capped per evaluation.
#[test]
fn results_and_prints_are_bounded_on_both_evaluators() {
    const BIG: &str = r#"package big

many := [s | some i in numbers.range(1, 1000); s := input.big]

one := input.big

noisy if {
    every i in numbers.range(1, 100) {
        print(input.big)
    }
}
"#;
    let b = bundle(&[("big.rego", BIG)]);
    let limits = EvalLimits {
        max_result_bytes: 1 << 20,
        max_print_bytes: 10_000,
        ..EvalLimits::default()
    };
    let big = input(json!({"big": "x".repeat(10_000)}));
    for evaluator in [Evaluator::Vm, Evaluator::Interpreter] {
        let policy = compile(&b, evaluator, limits.clone());
        assert!(
            matches!(
                policy.evaluate("data.big.many", &big),
                Err(PolicyError::ResultTooLarge { limit }) if limit == 1 << 20
            ),
            "{evaluator:?}"
        );
        assert_eq!(
            policy.evaluate("data.big.one", &big).unwrap(),
            Some(json!("x".repeat(10_000)))
        );
        let noisy = policy.evaluation("data.big.noisy", &big).unwrap();
        assert_eq!(noisy.result, Some(json!(true)), "{evaluator:?}");
        let kept: usize = noisy.prints.iter().map(String::len).sum();
        assert!(kept <= 10_000 + 64, "{evaluator:?}: {kept} bytes kept");
        assert!(
            noisy
                .prints
                .last()
                .is_some_and(|l| l.ends_with("[print output truncated]")),
            "{evaluator:?}"
        );
    }
}
