// Copyright (c) Microsoft Corporation.
// Licensed under the MIT License.
//! `print` on the RVM: the same policy gives the same results and the same
//! captured lines on the interpreter and on the RVM.
#![cfg(feature = "rvm")]

use anyhow::{bail, Result};
use regorus::languages::rego::compiler::Compiler;
use regorus::rvm::program::Program;
use regorus::rvm::vm::RegoVM;
use regorus::{Engine, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

const MAIN: &str = r#"package test

values if {
	print("hello")
	print("a", 1, 2.5, true, null)
	print([1, "x", {"k": "v"}], {"b", "a"}, {"z": [1], "a": "s"})
}

undefined_args if {
	print(input.missing)
	print("x", input.missing, input.n)
}

comprehension := [x | some x in input.xs; print("item", x)]

fn(v) := r if {
	print("fn", v)
	r := v * 2
}

via_fn := fn(input.n)

failing if {
	print("before")
	input.n > 100
	print("after")
}

negated if not print("n")

seven if print(1, 2, 3, 4, 5, 6, 7)
"#;

const OTHER: &str = r#"package test

other if {
	print("from other", data.test.via_fn)
}
"#;

fn engine(modules: &[(&str, &str)]) -> Result<Engine> {
    let mut engine = Engine::new();
    for (file, policy) in modules {
        engine.add_policy(file.to_string(), policy.to_string())?;
    }
    Ok(engine)
}

fn compile(engine: &mut Engine, rule: &str) -> Result<Arc<Program>> {
    let compiled = engine.compile_with_entrypoint(&rule.into())?;
    Ok(Compiler::compile_from_policy(&compiled, &[rule])?)
}

/// Result and captured prints of `rule` on the interpreter and on the RVM.
fn assert_same_prints(
    modules: &[(&str, &str)],
    rule: &str,
    input: &str,
) -> Result<(Value, Vec<String>)> {
    let input = Value::from_json_str(input)?;

    let mut interpreter = engine(modules)?;
    interpreter.set_gather_prints(true);
    interpreter.set_input(input.clone());
    let interpreted = interpreter.eval_rule(rule.to_string())?;
    let interpreted_prints = interpreter.take_prints()?;

    let mut engine = engine(modules)?;
    let mut vm = RegoVM::new();
    vm.load_program(compile(&mut engine, rule)?);
    vm.set_gather_prints(true);
    vm.set_input(input);
    let rvm = vm.execute()?;
    let rvm_prints = vm.take_prints();

    if interpreted != rvm || interpreted_prints != rvm_prints {
        bail!(
            "{rule}: interpreter {interpreted:?} {interpreted_prints:?}, RVM {rvm:?} {rvm_prints:?}"
        );
    }
    Ok((rvm, rvm_prints))
}

#[test]
fn prints_match_interpreter() -> Result<()> {
    let modules = [("main.rego", MAIN), ("other.rego", OTHER)];
    let input = r#"{"n": 3, "xs": [1, 2]}"#;
    let check = |rule: &str, want: Value, want_prints: &[&str]| -> Result<()> {
        let (got, prints) = assert_same_prints(&modules, rule, input)?;
        assert_eq!(got, want, "{rule}");
        assert_eq!(prints, want_prints, "{rule}");
        Ok(())
    };
    check(
        "data.test.values",
        Value::from(true),
        &[
            "main.rego:4: hello",
            "main.rego:5: a 1 2.5 true null",
            r#"main.rego:6: [1, "x", {"k": "v"}] {"a", "b"} {"a": "s", "z": [1]}"#,
        ],
    )?;
    check(
        "data.test.undefined_args",
        Value::from(true),
        &["main.rego:10: <undefined>", "main.rego:11: x <undefined> 3"],
    )?;
    check(
        "data.test.comprehension",
        Value::from_json_str("[1, 2]")?,
        &["main.rego:14: item 1", "main.rego:14: item 2"],
    )?;
    check("data.test.via_fn", Value::from(6), &["main.rego:17: fn 3"])?;
    check(
        "data.test.failing",
        Value::Undefined,
        &["main.rego:24: before"],
    )?;
    check("data.test.negated", Value::Undefined, &["main.rego:29: n"])?;
    check(
        "data.test.seven",
        Value::from(true),
        &["main.rego:31: 1 2 3 4 5 6 7"],
    )?;
    // Each line names the file of its own module.
    check(
        "data.test.other",
        Value::from(true),
        &["main.rego:17: fn 3", "other.rego:4: from other 6"],
    )?;
    Ok(())
}

#[test]
fn prints_are_captured_only_when_gathering() -> Result<()> {
    let mut engine = engine(&[("main.rego", MAIN)])?;
    let program = compile(&mut engine, "data.test.values")?;
    let mut vm = RegoVM::new();
    vm.load_program(program);

    // Not gathering: print still succeeds, nothing is captured.
    assert_eq!(vm.execute()?, Value::from(true));
    assert!(vm.take_prints().is_empty());

    // Lines accumulate across executions until taken.
    vm.set_gather_prints(true);
    vm.execute()?;
    vm.execute()?;
    assert_eq!(vm.take_prints().len(), 6);
    assert!(vm.take_prints().is_empty());

    // Switching gathering off discards what was captured.
    vm.execute()?;
    vm.set_gather_prints(false);
    vm.set_gather_prints(true);
    assert!(vm.take_prints().is_empty());
    Ok(())
}

#[test]
fn print_with_more_than_seven_arguments_is_a_compile_error() -> Result<()> {
    let mut engine = engine(&[(
        "main.rego",
        "package test\np if print(1, 2, 3, 4, 5, 6, 7, 8)\n",
    )])?;
    let compiled = engine.compile_with_entrypoint(&"data.test.p".into())?;
    match Compiler::compile_from_policy(&compiled, &["data.test.p"]) {
        Ok(_) => bail!("compiled"),
        Err(error) => assert!(
            error
                .to_string()
                .contains("print supports at most 7 arguments"),
            "{error}"
        ),
    }
    Ok(())
}

#[test]
fn extension_named_print_overrides_print() -> Result<()> {
    let calls = Arc::new(AtomicUsize::new(0));
    let modules = [("main.rego", "package test\np if print(\"x\")\n")];
    let mut engines = Vec::new();
    for _ in 0..2 {
        let calls = calls.clone();
        let mut engine = engine(&modules)?;
        engine.add_extension(
            "print".to_string(),
            1,
            Box::new(move |_: Vec<Value>| {
                calls.fetch_add(1, Ordering::SeqCst);
                Ok(Value::from(true))
            }),
        )?;
        engine.set_gather_prints(true);
        engines.push(engine);
    }
    let mut interpreter = engines.remove(0);
    assert_eq!(
        interpreter.eval_rule("data.test.p".to_string())?,
        Value::from(true)
    );
    assert!(interpreter.take_prints()?.is_empty());

    let mut vm = RegoVM::new();
    vm.load_program(compile(&mut engines[0], "data.test.p")?);
    vm.set_gather_prints(true);
    assert_eq!(vm.execute()?, Value::from(true));
    assert!(vm.take_prints().is_empty());
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    Ok(())
}

#[test]
fn prints_in_loops_match_interpreter() -> Result<()> {
    let policy = r#"package test

partial contains y if {
	some y in input.xs
	print("partial", y)
}

all_positive if {
	every x in input.xs {
		print("every", x)
		x > 0
	}
}
"#;
    let modules = [("loops.rego", policy)];
    let input = r#"{"xs": [1, 2, 3]}"#;
    for rule in ["data.test.partial", "data.test.all_positive"] {
        let (_, prints) = assert_same_prints(&modules, rule, input)?;
        assert!(!prints.is_empty(), "{rule}");
    }
    Ok(())
}
