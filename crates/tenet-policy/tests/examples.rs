//! The example tenants' decisions, checked against the results OPA v1.20.2
//! gives (written in examples/cases/*.json), on both evaluators.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use tenet_bundle::{Bundle, Limits};
use tenet_policy::{CompileOptions, EvalLimits, Evaluator, Input, Policy};

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples")
}

/// Cases where the vendored regorus's RVM differs from OPA. None since
/// vendor/regorus/PATCHES.md's RVM fixes (undefined assignments, head and
/// comprehension terms): upstream regorus 0.14.1's RVM put an `"<undefined>"`
/// element into a comprehension, so `refund_limit` was undefined and `allow`
/// wrongly true on `payments/dave-refund-over-limit-denied` and
/// `payments/dave-refund-limit` (see BENCHMARKS.md).
const KNOWN_RVM_DIVERGENCES: &[&str] = &[];

#[test]
fn example_decisions_match_opa_on_every_evaluator() {
    let mut checked = 0;
    let mut failures = Vec::new();
    for tenant in ["payments", "storefront", "analytics"] {
        let bundle = Bundle::load(&examples().join("bundles").join(tenant), &Limits::default())
            .unwrap_or_else(|e| panic!("{tenant}: {e}"));
        let cases: Vec<Value> = serde_json::from_str(
            &std::fs::read_to_string(examples().join("cases").join(format!("{tenant}.json")))
                .unwrap(),
        )
        .unwrap();
        for force in [Evaluator::Interpreter, Evaluator::Vm] {
            let policy = Policy::compile(
                &bundle,
                CompileOptions {
                    limits: EvalLimits::default(),
                    evaluator: force,
                },
            )
            .unwrap();
            assert!(
                policy.is_deterministic(),
                "{tenant} examples are deterministic"
            );
            for case in &cases {
                let name = case["name"].as_str().unwrap();
                let text = std::fs::read_to_string(
                    examples()
                        .join("inputs")
                        .join(case["input"].as_str().unwrap()),
                )
                .unwrap();
                let input = Input::from_json(&text, policy.limits()).unwrap();
                let got = policy
                    .evaluate(case["query"].as_str().unwrap(), &input)
                    .unwrap_or_else(|e| panic!("{tenant}/{name} ({force:?}): {e}"));
                let got = match got {
                    Some(v) => json!({ "result": v }),
                    None => json!({}),
                };
                if got != case["expected"] {
                    failures.push(format!(
                        "{tenant}/{name} ({force:?}): got {got}, OPA gives {}",
                        case["expected"]
                    ));
                }
                checked += 1;
            }
        }
    }
    // The interpreter (the default) must match OPA everywhere. The RVM's
    // known divergences are pinned so that a new one, or a fix in regorus,
    // shows up here.
    let (vm, interpreter): (Vec<_>, Vec<_>) = failures.iter().partition(|f| f.contains("(Vm)"));
    assert!(
        interpreter.is_empty(),
        "interpreter differs from OPA:\n{}",
        interpreter
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    );
    let vm_cases: Vec<&str> = vm
        .iter()
        .map(|f| f.split(' ').next().unwrap_or(""))
        .collect();
    assert_eq!(
        vm_cases,
        KNOWN_RVM_DIVERGENCES,
        "RVM divergences changed:\n{}",
        vm.iter().map(|s| s.as_str()).collect::<Vec<_>>().join("\n")
    );
    assert!(checked > 100, "only {checked} cases checked");
}
