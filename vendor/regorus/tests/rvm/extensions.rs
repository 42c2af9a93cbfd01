// Copyright (c) Microsoft Corporation.
// Licensed under the MIT License.
//! Host extensions (`Engine::add_extension`) on the RVM: the same policy gives
//! the same results (and errors) on the interpreter and on the RVM.
#![cfg(feature = "rvm")]

use anyhow::{anyhow, bail, Result};
use regorus::languages::rego::compiler::Compiler;
use regorus::rvm::program::{DeserializationResult, Program};
use regorus::rvm::vm::{RegoVM, VmError};
use regorus::{Engine, Extension, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

fn engine(policy: &str, extensions: Vec<(&str, u8, Box<dyn Extension>)>) -> Result<Engine> {
    let mut engine = Engine::new();
    engine.add_policy("test.rego".to_string(), policy.to_string())?;
    for (name, nargs, extension) in extensions {
        engine.add_extension(name.to_string(), nargs, extension)?;
    }
    Ok(engine)
}

fn compile(engine: &mut Engine, rule: &str) -> Result<Arc<Program>> {
    let compiled = engine.compile_with_entrypoint(&rule.into())?;
    Ok(Compiler::compile_from_policy(&compiled, &[rule])?)
}

fn run_rvm(program: Arc<Program>, input: &Value, strict: bool) -> Result<Value> {
    let mut vm = RegoVM::new();
    vm.load_program(program);
    vm.set_strict_builtin_errors(strict);
    vm.set_input(input.clone());
    Ok(vm.execute()?)
}

/// Evaluate `rule` on a fresh engine's interpreter and on the RVM.
fn both(
    make_engine: &dyn Fn() -> Result<Engine>,
    rule: &str,
    input: &str,
    strict: bool,
) -> Result<(Result<Value>, Result<Value>)> {
    let input = Value::from_json_str(input)?;

    let mut interpreter = make_engine()?;
    interpreter.set_strict_builtin_errors(strict);
    interpreter.set_input(input.clone());
    let interpreted = interpreter.eval_rule(rule.to_string());

    let mut engine = make_engine()?;
    let program = compile(&mut engine, rule)?;
    Ok((interpreted, run_rvm(program, &input, strict)))
}

fn assert_same(
    make_engine: &dyn Fn() -> Result<Engine>,
    rule: &str,
    input: &str,
    strict: bool,
) -> Result<Value> {
    match both(make_engine, rule, input, strict)? {
        (Ok(interpreted), Ok(rvm)) if interpreted == rvm => Ok(rvm),
        (interpreted, rvm) => bail!(
            "{rule} (input {input}, strict {strict}): interpreter {interpreted:?}, RVM {rvm:?}"
        ),
    }
}

fn double() -> Box<dyn Extension> {
    Box::new(|args: Vec<Value>| Ok(Value::from(args[0].as_i64()? * 2)))
}

const NEW_BUILTIN: &str = r#"
package test

doubled := tenet.double(input.n)
missing := tenet.double(input.missing)
xs := [tenet.double(x) | some x in input.xs]
f(v) := tenet.double(v) + 1
via_fn := f(input.n)
big if tenet.double(input.n) > 10
small if not tenet.double(input.n) > 10
"#;

#[test]
fn extension_adds_a_builtin() -> Result<()> {
    let make = || engine(NEW_BUILTIN, vec![("tenet.double", 1, double())]);
    let input = r#"{"n": 7, "xs": [1, 2, 3]}"#;
    for strict in [false, true] {
        let check = |rule: &str, want: Value| -> Result<()> {
            let got = assert_same(&make, rule, input, strict)?;
            anyhow::ensure!(got == want, "{rule}: got {got:?}, want {want:?}");
            Ok(())
        };
        check("data.test.doubled", Value::from(14))?;
        check("data.test.missing", Value::Undefined)?;
        check("data.test.xs", Value::from_json_str("[2, 4, 6]")?)?;
        check("data.test.via_fn", Value::from(15))?;
        check("data.test.big", Value::from(true))?;
        check("data.test.small", Value::Undefined)?;
    }
    Ok(())
}

#[test]
fn extension_overrides_a_builtin() -> Result<()> {
    // A bounded sprintf, as a host would register it.
    let calls = Arc::new(AtomicUsize::new(0));
    let make = || {
        let calls = calls.clone();
        let bounded = move |args: Vec<Value>| {
            calls.fetch_add(1, Ordering::SeqCst);
            let format = args[0].as_string()?;
            if format.len() > 16 {
                bail!("format too long");
            }
            Ok(Value::from(format!("bounded:{format}")))
        };
        engine(
            r#"
package test
msg := sprintf("%v-%v", [input.a, input.b])
fmsg(x) := sprintf("%v", [x])
via_fn := fmsg(input.a)
"#,
            vec![("sprintf", 2, Box::new(bounded))],
        )
    };
    let input = r#"{"a": 1, "b": 2}"#;
    let got = assert_same(&make, "data.test.msg", input, true)?;
    assert_eq!(got, Value::from("bounded:%v-%v"));
    let got = assert_same(&make, "data.test.via_fn", input, true)?;
    assert_eq!(got, Value::from("bounded:%v"));
    // Two interpreter runs and two RVM runs.
    assert_eq!(calls.load(Ordering::SeqCst), 4);

    // The compiled program calls the extension, never the builtin.
    let mut engine = make()?;
    let program = compile(&mut engine, "data.test.msg")?;
    let entry = program
        .builtin_info_table
        .iter()
        .position(|info| info.name == "sprintf")
        .ok_or_else(|| anyhow!("no sprintf entry"))?;
    assert!(program.get_extension(u16::try_from(entry)?).is_some());
    Ok(())
}

const FAILING: &str = r#"
package test

direct := tenet.fail(1)
negated if not tenet.fail(1)
collected := [x | some x in [1, 2]; tenet.fail(x)]
f(v) := tenet.fail(v)
via_fn := f(1)
default via_fn_default := "default"
via_fn_default := f(1)
not_via_fn if not f(1)
g(v) := tenet.fail(v)
g(v) := "fallback"
via_fallback := g(1)
"#;

#[test]
fn extension_error_matches_interpreter() -> Result<()> {
    let fail: Box<dyn Extension> = Box::new(|_: Vec<Value>| -> Result<Value> { bail!("boom") });
    let make = || engine(FAILING, vec![("tenet.fail", 1, fail.clone())]);
    let rules = [
        "data.test.direct",
        "data.test.negated",
        "data.test.collected",
        "data.test.via_fn",
        "data.test.via_fn_default",
        "data.test.not_via_fn",
        "data.test.via_fallback",
    ];
    for strict in [false, true] {
        for rule in rules {
            match both(&make, rule, "{}", strict)? {
                (Err(interpreted), Err(rvm)) => {
                    assert!(interpreted.to_string().contains("boom"), "{interpreted}");
                    assert!(rvm.to_string().contains("boom"), "{rvm}");
                    assert!(strict || rule != "data.test.via_fallback");
                }
                // Non-strict mode drops an error in one definition of a
                // function when another definition produces a value.
                (Ok(interpreted), Ok(rvm)) if interpreted == rvm => {
                    assert!(!strict && rule == "data.test.via_fallback", "{rule}");
                    assert_eq!(rvm, Value::from("fallback"));
                }
                (interpreted, rvm) => {
                    bail!("{rule} (strict {strict}): interpreter {interpreted:?}, RVM {rvm:?}")
                }
            }
        }
    }
    Ok(())
}

#[test]
fn extension_with_wrong_arity_is_a_compile_error() -> Result<()> {
    for call in ["tenet.double(1, 2)", "tenet.double()", "tenet.double(1, x)"] {
        let policy = format!("package test\nx := 1\np if {{ {call} }}\n");
        let mut engine = engine(&policy, vec![("tenet.double", 1, double())])?;
        // The interpreter fails when the call runs.
        let interpreted = engine.eval_rule("data.test.p".to_string());
        assert!(interpreted.is_err(), "{call}: interpreter {interpreted:?}");
        let compiled = engine.compile_with_entrypoint(&"data.test.p".into())?;
        let error = match Compiler::compile_from_policy(&compiled, &["data.test.p"]) {
            Ok(_) => bail!("{call}: compiled"),
            Err(error) => error.to_string(),
        };
        assert!(
            error.contains("extension 'tenet.double' expects 1 arguments"),
            "{call}: {error}"
        );
    }
    Ok(())
}

#[test]
fn user_function_shadows_extension() -> Result<()> {
    let make = || {
        engine(
            "package test\ndouble(x) := x * 3\nr := double(2)\n",
            vec![("double", 1, double())],
        )
    };
    assert_eq!(
        assert_same(&make, "data.test.r", "{}", true)?,
        Value::from(6)
    );
    Ok(())
}

#[test]
fn each_vm_has_its_own_extension_state() -> Result<()> {
    // A stateful extension: every copy counts its own calls.
    let mut count = 0;
    let counter = move |_: Vec<Value>| {
        count += 1;
        Ok(Value::from(count))
    };
    let mut engine = engine(
        "package test\nr := [tenet.count(1), tenet.count(2)]\n",
        vec![("tenet.count", 1, Box::new(counter))],
    )?;
    let program = compile(&mut engine, "data.test.r")?;
    let threads: Vec<_> = (0..2)
        .map(|_| {
            let program = program.clone();
            std::thread::spawn(move || run_rvm(program, &Value::new_object(), true))
        })
        .collect();
    let want = Value::from_json_str("[1, 2]")?;
    for thread in threads {
        let got = thread.join().map_err(|_| anyhow!("thread panicked"))??;
        assert_eq!(got, want);
    }
    // As on the interpreter, where each evaluation of a compiled policy
    // starts from the engine's copy.
    assert_eq!(engine.eval_rule("data.test.r".to_string())?, want);
    Ok(())
}

#[test]
fn program_with_extensions_is_shareable() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Program>();
    assert_send_sync::<RegoVM>();
}

#[test]
fn deserialized_program_needs_its_extensions_attached() -> Result<()> {
    let mut engine = engine(NEW_BUILTIN, vec![("tenet.double", 1, double())])?;
    let program = compile(&mut engine, "data.test.doubled")?;
    let input = Value::from_json_str(r#"{"n": 4}"#)?;
    assert_eq!(run_rvm(program.clone(), &input, true)?, Value::from(8));

    let bytes = program.serialize_binary().map_err(|e| anyhow!(e))?;
    assert_eq!(bytes[4..8], 7u32.to_le_bytes());
    let DeserializationResult::Complete(mut restored) =
        Program::deserialize_binary(&bytes).map_err(|e| anyhow!(e))?
    else {
        bail!("partial program");
    };
    assert_eq!(restored.missing_extensions(), vec!["tenet.double"]);
    assert_eq!(restored.serialize_binary().map_err(|e| anyhow!(e))?, bytes);

    // Without the implementation the call fails clearly, in either mode.
    let restored_arc = Arc::new(restored.clone());
    for strict in [false, true] {
        let mut vm = RegoVM::new();
        vm.load_program(restored_arc.clone());
        vm.set_strict_builtin_errors(strict);
        vm.set_input(input.clone());
        match vm.execute() {
            Err(VmError::ExtensionNotAttached { name, .. }) => assert_eq!(name, "tenet.double"),
            other => bail!("expected ExtensionNotAttached, got {other:?}"),
        }
    }

    assert!(restored
        .attach_extension("tenet.double", 2, double())
        .is_err());
    assert!(restored
        .attach_extension("tenet.other", 1, double())
        .is_err());
    restored.attach_extension("tenet.double", 1, double())?;
    assert!(restored.missing_extensions().is_empty());
    assert_eq!(run_rvm(Arc::new(restored), &input, true)?, Value::from(8));

    // The JSON form keeps the extension marks too.
    let json = program.serialize_json().map_err(|e| anyhow!(e))?;
    let from_json = Program::deserialize_json(&json).map_err(|e| anyhow!(e))?;
    assert_eq!(from_json.missing_extensions(), vec!["tenet.double"]);
    Ok(())
}

#[test]
fn program_without_extensions_keeps_format_version_6() -> Result<()> {
    let mut engine = engine("package test\nr := sprintf(\"%v\", [1])\n", vec![])?;
    let program = compile(&mut engine, "data.test.r")?;
    assert!(program.extensions.is_empty());
    let bytes = program.serialize_binary().map_err(|e| anyhow!(e))?;
    assert_eq!(bytes[4..8], 6u32.to_le_bytes());
    assert!(matches!(
        Program::deserialize_binary(&bytes).map_err(|e| anyhow!(e))?,
        DeserializationResult::Complete(_)
    ));
    Ok(())
}

#[test]
fn extension_runs_in_suspendable_mode() -> Result<()> {
    use regorus::rvm::vm::{ExecutionMode, ExecutionState};
    let fail: Box<dyn Extension> = Box::new(|_: Vec<Value>| -> Result<Value> { bail!("boom") });
    let mut engine = engine(
        &format!("{NEW_BUILTIN}\nfailed := tenet.fail(1)\n"),
        vec![("tenet.double", 1, double()), ("tenet.fail", 1, fail)],
    )?;
    let input = Value::from_json_str(r#"{"n": 7, "xs": [1, 2, 3]}"#)?;
    for (rule, want) in [
        ("data.test.doubled", Some(Value::from(14))),
        ("data.test.via_fn", Some(Value::from(15))),
        ("data.test.failed", None),
    ] {
        let program = compile(&mut engine, rule)?;
        let mut vm = RegoVM::new();
        vm.load_program(program);
        vm.set_execution_mode(ExecutionMode::Suspendable);
        vm.set_input(input.clone());
        let got = match vm.execute() {
            Ok(_) => match vm.execution_state() {
                ExecutionState::Completed { result } => Some(result.clone()),
                ExecutionState::Error { error } => {
                    assert!(error.to_string().contains("boom"), "{error}");
                    None
                }
                other => bail!("{rule}: unexpected state {other:?}"),
            },
            Err(error) => {
                assert!(error.to_string().contains("boom"), "{error}");
                None
            }
        };
        assert_eq!(got, want, "{rule}");
    }
    Ok(())
}
