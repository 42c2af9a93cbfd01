//! The `tenet` binary, run as a user runs it: every example case through
//! `tenet eval`, bundle inspect and build, and the error paths.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn tenet(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tenet"))
        .args(args)
        .current_dir(root())
        .output()
        .unwrap()
}

fn stdout_json(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "exit {:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn cases(tenant: &str) -> Vec<Value> {
    let text =
        std::fs::read_to_string(root().join(format!("examples/cases/{tenant}.json"))).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// `tenet eval --bundle examples/bundles/<tenant> QUERY --input FILE` prints
/// what OPA gives, for every example case (from the directory and from a
/// built archive).
#[test]
fn eval_gives_opas_decisions_for_every_example_case() {
    let dir = tempfile::tempdir().unwrap();
    for tenant in ["payments", "storefront", "analytics"] {
        let bundle_dir = format!("examples/bundles/{tenant}");
        let archive = dir.path().join(format!("{tenant}.tar.gz"));
        let built = tenet(&[
            "bundle",
            "build",
            &bundle_dir,
            "-o",
            archive.to_str().unwrap(),
        ]);
        assert!(
            built.status.success(),
            "{}",
            String::from_utf8_lossy(&built.stderr)
        );
        // One process per case is slow; check every case from the
        // directory, and every fourth from the archive.
        for (i, case) in cases(tenant).iter().enumerate() {
            let input = format!("examples/inputs/{}", case["input"].as_str().unwrap());
            let query = case["query"].as_str().unwrap();
            let mut sources = vec![bundle_dir.clone()];
            if i % 4 == 0 {
                sources.push(archive.to_str().unwrap().to_string());
            }
            for source in sources {
                let out = tenet(&["eval", "--bundle", &source, "--input", &input, query]);
                assert_eq!(
                    stdout_json(&out),
                    case["expected"],
                    "{tenant}/{}",
                    case["name"]
                );
            }
        }
    }
}

#[test]
fn eval_reads_input_from_stdin_and_prints_empty_object_for_undefined() {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_tenet"))
        .args([
            "eval",
            "--bundle",
            "examples/bundles/payments",
            "--input",
            "-",
            "data.payments.authz.nothing_here",
        ])
        .current_dir(root())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"{\"user\": \"alice\"}")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(stdout_json(&out), serde_json::json!({}));
}

/// `--explain` says which evaluator decided: the RVM by default, the
/// interpreter when asked for, and for a package path (a query, which only
/// the interpreter runs) why it fell back.
#[test]
fn eval_explain_names_the_evaluator_and_why_it_fell_back() {
    let run = |extra: &[&str], query: &str| {
        let mut args = vec![
            "eval",
            "--bundle",
            "examples/bundles/payments",
            "--input",
            "examples/inputs/payments/alice-refund.json",
            "--explain",
        ];
        args.extend_from_slice(extra);
        args.push(query);
        stdout_json(&tenet(&args))
    };
    let vm = run(&[], "data.payments.authz.allow");
    assert_eq!(vm["result"], true);
    assert_eq!(vm["explain"]["evaluator"], "vm", "{vm}");
    assert_eq!(vm["explain"]["fallback_reason"], Value::Null, "{vm}");
    let forced = run(&["--evaluator", "interpreter"], "data.payments.authz.allow");
    assert_eq!(forced["result"], true);
    assert_eq!(forced["explain"]["evaluator"], "interpreter", "{forced}");
    let package = run(&[], "data.payments.authz");
    assert_eq!(package["explain"]["evaluator"], "interpreter", "{package}");
    assert!(
        package["explain"]["fallback_reason"]
            .as_str()
            .is_some_and(|r| r.contains("not a rule")),
        "{package}"
    );
}

#[test]
fn errors_go_to_stderr_with_a_nonzero_exit() {
    let missing = tenet(&["eval", "--bundle", "no/such/bundle", "data.x"]);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no/such/bundle"));

    let bad_path = tenet(&[
        "eval",
        "--bundle",
        "examples/bundles/payments",
        "not a path",
    ]);
    assert!(!bad_path.status.success());
    assert!(String::from_utf8_lossy(&bad_path.stderr).contains("invalid query path"));

    let hostile = tenet(&[
        "bundle",
        "inspect",
        "fixtures/bundles/hostile/traversal.tar.gz",
    ]);
    assert!(!hostile.status.success());
    assert!(String::from_utf8_lossy(&hostile.stderr).contains("unsafe path"));

    let serve = tenet(&["serve", "--bundles", "no-template-here"]);
    assert!(!serve.status.success());
    assert!(String::from_utf8_lossy(&serve.stderr).contains("{tenant}"));
}

#[test]
fn bundle_inspect_reports_manifest_modules_and_data() {
    let out = stdout_json(&tenet(&["bundle", "inspect", "examples/bundles/payments"]));
    assert_eq!(out["revision"], "payments-2026.11.1");
    assert_eq!(out["roots"], serde_json::json!(["payments"]));
    let modules = out["modules"].as_array().unwrap();
    assert!(modules
        .iter()
        .any(|m| m["package"] == "data.payments.authz"));
    let mounts: Vec<&str> = out["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["mount"].as_str().unwrap())
        .collect();
    assert!(mounts.contains(&"data.payments.roles"), "{mounts:?}");
    assert!(out["total_bytes"].as_u64().unwrap() > 0);
}
