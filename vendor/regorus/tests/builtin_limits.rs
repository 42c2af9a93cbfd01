// Copyright (c) Microsoft Corporation.
// Licensed under the MIT License.

//! Builtins whose output size is computed from their arguments are bounded by
//! `BuiltinLimits` on both the interpreter and the RVM.

use anyhow::Result;
use regorus::utils::limits::BuiltinLimits;
use regorus::{Engine, LimitError, Value};

const SMALL: BuiltinLimits = BuiltinLimits {
    max_elements: 1000,
    max_string_bytes: 10_000,
};

fn engine(policy: &str, limits: BuiltinLimits, strict: bool) -> Result<Engine> {
    let mut engine = Engine::new();
    engine.set_builtin_limits(limits);
    engine.set_strict_builtin_errors(strict);
    engine.add_policy("limits.rego".to_string(), policy.to_string())?;
    Ok(engine)
}

fn policy(expr: &str) -> String {
    format!("package limits\n\nx := {expr}\n")
}

fn builtin_of(err: &anyhow::Error) -> Option<&'static str> {
    match err.downcast_ref::<LimitError>() {
        Some(LimitError::BuiltinLimitExceeded { builtin, .. }) => Some(builtin),
        _ => None,
    }
}

/// Evaluates `data.limits.x` with the interpreter in both builtin-error modes.
fn interpreter_error(policy: &str, limits: BuiltinLimits) -> Result<&'static str> {
    let mut builtin = None;
    for strict in [true, false] {
        let mut engine = engine(policy, limits, strict)?;
        let err = match engine.eval_rule("data.limits.x".to_string()) {
            Ok(v) => anyhow::bail!(
                "expected a limit error (strict={strict}), got {:.200}",
                v.to_string()
            ),
            Err(err) => err,
        };
        let name = builtin_of(&err)
            .ok_or_else(|| anyhow::anyhow!("not a builtin limit error (strict={strict}): {err}"))?;
        assert!(
            err.to_string().contains("builtin limit exceeded: "),
            "unexpected message: {err}"
        );
        builtin = Some(name);
    }
    builtin.ok_or_else(|| anyhow::anyhow!("no evaluation"))
}

#[cfg(feature = "rvm")]
fn rvm_error(policy: &str, limits: BuiltinLimits) -> Result<&'static str> {
    use regorus::languages::rego::compiler::Compiler;
    use regorus::rvm::vm::{RegoVM, VmError};

    let mut builtin = None;
    for strict in [true, false] {
        let mut engine = engine(policy, BuiltinLimits::default(), strict)?;
        let compiled = engine.compile_with_entrypoint(&"data.limits.x".into())?;
        let program = Compiler::compile_from_policy(&compiled, &["data.limits.x"])?;
        let mut vm = RegoVM::new();
        vm.load_program(program);
        vm.set_builtin_limits(limits);
        vm.set_strict_builtin_errors(strict);
        match vm.execute() {
            Ok(v) => anyhow::bail!(
                "expected a limit error on the RVM (strict={strict}), got {:.200}",
                v.to_string()
            ),
            Err(VmError::BuiltinLimitExceeded { builtin: name, .. }) => builtin = Some(name),
            Err(err) => anyhow::bail!("unexpected RVM error (strict={strict}): {err}"),
        }
    }
    builtin.ok_or_else(|| anyhow::anyhow!("no evaluation"))
}

/// Asserts that `data.limits.x` fails with a limit error from `expected` on
/// both evaluators and in both builtin-error modes.
fn assert_limited(policy: &str, limits: BuiltinLimits, expected: &str) -> Result<()> {
    assert_eq!(interpreter_error(policy, limits)?, expected, "{policy}");
    #[cfg(feature = "rvm")]
    assert_eq!(rvm_error(policy, limits)?, expected, "{policy}");
    Ok(())
}

fn assert_value(policy: &str, limits: BuiltinLimits, expected: Value) -> Result<()> {
    let mut engine = engine(policy, limits, true)?;
    assert_eq!(
        engine.eval_rule("data.limits.x".to_string())?,
        expected,
        "{policy}"
    );
    Ok(())
}

#[test]
fn defaults() {
    let limits = BuiltinLimits::default();
    assert_eq!(limits.max_elements, 1_000_000);
    assert_eq!(limits.max_string_bytes, 16 * 1024 * 1024);
    assert_eq!(Engine::new().get_builtin_limits(), limits);
}

#[test]
fn huge_range_is_refused_by_default() -> Result<()> {
    // Used to abort the process in Vec::with_capacity.
    assert_limited(
        &policy("count(numbers.range(1, 1e13))"),
        BuiltinLimits::default(),
        "numbers.range",
    )?;
    assert_limited(
        &policy("count(numbers.range_step(1, 1e13, 1))"),
        BuiltinLimits::default(),
        "numbers.range_step",
    )
}

#[test]
fn collections() -> Result<()> {
    let cases = [
        ("count(numbers.range(1, 1001))", "numbers.range"),
        ("count(numbers.range(1001, 1))", "numbers.range"),
        ("count(numbers.range_step(1, 3000, 2))", "numbers.range_step"),
        ("count(net.cidr_expand(\"10.0.0.0/8\"))", "net.cidr_expand"),
        ("count(net.cidr_expand(\"::/0\"))", "net.cidr_expand"),
        ("count(split(concat(\"\", [\"ab\" | numbers.range(1, 600)[_]]), \"\"))", "split"),
        ("count(array.concat(numbers.range(1, 600), numbers.range(1, 600)))", "array.concat"),
        ("count(union({{n | n := numbers.range(1, 600)[_]}, {n | n := numbers.range(601, 1200)[_]}}))", "union"),
        ("count(walk([numbers.range(1, 100) | numbers.range(1, 10)[_]]))", "walk"),
    ];
    for (expr, builtin) in cases {
        assert_limited(&policy(expr), SMALL, builtin)?;
    }
    Ok(())
}

#[test]
fn strings() -> Result<()> {
    let cases = [
        ("sprintf(\"%020000d\", [1])", "sprintf"),
        ("sprintf(\"%20000s\", [\"a\"])", "sprintf"),
        ("sprintf(\"%.20000f\", [1.5])", "sprintf"),
        ("sprintf(\"%099999999999999999999d\", [1])", "sprintf"),
        ("sprintf(\"%s%s\", [strings.any, strings.any])", "sprintf"),
        (
            "sprintf(\"%v\", [[strings.any | numbers.range(1, 5)[_]]])",
            "sprintf",
        ),
        ("replace(strings.any, \"a\", \"bb\")", "replace"),
        ("replace(\"abc\", \"\", strings.any)", "replace"),
        (
            "strings.replace_n({\"a\": \"bb\"}, strings.any)",
            "strings.replace_n",
        ),
        ("regex.replace(strings.any, \"a\", \"bb\")", "regex.replace"),
        (
            "regex.replace(strings.any, \"a+\", \"$0$0\")",
            "regex.replace",
        ),
        ("concat(strings.any, [\"a\", \"b\", \"c\"])", "concat"),
        (
            "concat(\"\", [strings.any | numbers.range(1, 3)[_]])",
            "concat",
        ),
        ("bits.lsh(1, 100000)", "bits.lsh"),
        ("format_int(bits.lsh(1, 70000), 2)", "format_int"),
        (
            "json.marshal([strings.any | numbers.range(1, 3)[_]])",
            "json.marshal",
        ),
        (
            "json.marshal_with_options({\"a\": {\"b\": [1, 2]}}, {\"indent\": strings.any})",
            "json.marshal_with_options",
        ),
        (
            "json.marshal_with_options([1], {\"prefix\": strings.any, \"pretty\": true})",
            "json.marshal_with_options",
        ),
        (
            "yaml.marshal([strings.any | numbers.range(1, 3)[_]])",
            "yaml.marshal",
        ),
    ];
    for (expr, builtin) in cases {
        // `any` is a 6000-byte string.
        let policy = format!(
            "package limits\n\nany := concat(\"\", [\"aaaaaaaaaa\" | numbers.range(1, 600)[_]])\n\nx := {}\n",
            expr.replace("strings.any", "any")
        );
        assert_limited(&policy, SMALL, builtin)?;
    }
    Ok(())
}

#[test]
fn yaml_alias_bomb() -> Result<()> {
    let doc = "a: &a [1,2,3,4,5,6,7,8,9,10]\\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]\\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]\\n";
    assert_limited(
        &policy(&format!("yaml.unmarshal(\"{doc}\")")),
        SMALL,
        "yaml.unmarshal",
    )
}

#[test]
fn reachable_paths_of_a_deep_dag_is_bounded_by_default() -> Result<()> {
    // 40 layers of two nodes, each linked to both nodes of the next layer:
    // 2^40 paths.
    let policy = r#"package limits

graph[node] := next if {
    some layer in numbers.range(0, 39)
    some side in [0, 1]
    node := sprintf("n%d_%d", [layer, side])
    next := [sprintf("n%d_%d", [layer + 1, s]) | some s in [0, 1]]
}

x := count(graph.reachable_paths(graph, ["n0_0"]))
"#;
    assert_limited(policy, BuiltinLimits::default(), "graph.reachable_paths")
}

#[test]
fn limit_errors_are_not_swallowed_by_functions_or_negation() -> Result<()> {
    let policies = [
        "package limits\n\nf(n) := numbers.range(1, n)\n\nx := count(f(2000))\n",
        "package limits\n\nx := true if { not numbers.range(1, 2000) }\n",
        "package limits\n\nf(n) := true if { not numbers.range(1, n) }\n\nx := f(2000)\n",
    ];
    for policy in policies {
        assert_limited(policy, SMALL, "numbers.range")?;
    }
    Ok(())
}

#[test]
fn values_within_limits_are_unchanged() -> Result<()> {
    let cases = [
        ("count(numbers.range(1, 1000))", Value::from(1000)),
        ("numbers.range(3, 1)", Value::from_json_str("[3, 2, 1]")?),
        (
            "numbers.range_step(1, 10, 4)",
            Value::from_json_str("[1, 5, 9]")?,
        ),
        (
            "numbers.range_step(10, 1, 4)",
            Value::from_json_str("[10, 6, 2]")?,
        ),
        ("count(net.cidr_expand(\"10.0.0.0/23\"))", Value::from(512)),
        (
            "sprintf(\"%05d|%3d|%.2f\", [42, 7, 1.234])",
            Value::from("00042|  7|1.23"),
        ),
        ("replace(\"abc\", \"\", \"-\")", Value::from("-a-b-c-")),
        (
            "strings.replace_n({\"a\": \"bb\", \"b\": \"c\"}, \"ab\")",
            Value::from("ccc"),
        ),
        (
            "regex.replace(\"abcabc\", \"(b)\", \"[$1]\")",
            Value::from("a[b]ca[b]c"),
        ),
        (
            "regex.replace(\"abcabc\", \"b\", \"x\")",
            Value::from("axcaxc"),
        ),
        (
            "regex.replace(\"aaa\", \"\", \"-\")",
            Value::from("-a-a-a-"),
        ),
        (
            "regex.replace(\"ab\", \"(?P<n>b)\", \"${n}$$\")",
            Value::from("ab$"),
        ),
        ("concat(\", \", [\"a\", \"b\"])", Value::from("a, b")),
        ("trim(\"xyaxy\", \"yx\")", Value::from("a")),
        ("trim_left(\"abcba\", \"ab\")", Value::from("cba")),
        ("trim_right(\"abcba\", \"ab\")", Value::from("abc")),
        (
            "strings.any_prefix_match([\"ab\", \"cd\"], [\"x\", \"c\"])",
            Value::from(true),
        ),
        (
            "strings.any_suffix_match([\"ab\", \"cd\"], [\"x\", \"c\"])",
            Value::from(false),
        ),
        (
            "indexof_n(\"aaa\", \"aa\")",
            Value::from_json_str("[0, 1]")?,
        ),
        (
            "split(\"a,b\", \",\")",
            Value::from_json_str("[\"a\", \"b\"]")?,
        ),
        (
            "format_int(bits.lsh(1, 64), 16)",
            Value::from("10000000000000000"),
        ),
        (
            "json.marshal_with_options({\"a\": [1]}, {\"indent\": \"  \"})",
            Value::from("{\n  \"a\": [\n    1\n  ]\n}"),
        ),
        (
            "count(array.concat(numbers.range(1, 500), numbers.range(1, 500)))",
            Value::from(1000),
        ),
    ];
    for (expr, expected) in cases {
        assert_value(&policy(expr), SMALL, expected)?;
    }
    Ok(())
}

#[test]
fn the_message_names_the_builtin_and_the_limit() -> Result<()> {
    let mut engine = engine(&policy("numbers.range(1, 2000)"), SMALL, true)?;
    let err = engine
        .eval_rule("data.limits.x".to_string())
        .err()
        .ok_or_else(|| anyhow::anyhow!("expected an error"))?;
    assert_eq!(
        err.downcast_ref::<LimitError>().map(ToString::to_string),
        Some(
            "builtin limit exceeded: numbers.range would produce 2000 elements, over max_elements = 1000"
                .to_string()
        )
    );
    Ok(())
}

/// Long loops inside builtins check the execution deadline. The evaluator's
/// own check interval is set so high that it never checks during these
/// policies: only the builtins can notice the deadline.
#[test]
fn long_builtin_loops_stop_at_the_deadline() -> Result<()> {
    use regorus::utils::limits::ExecutionTimerConfig;
    use std::num::NonZeroU32;
    use std::time::Duration;

    let timer = ExecutionTimerConfig {
        limit: Duration::from_millis(5),
        check_interval: NonZeroU32::MAX,
    };
    let limits = BuiltinLimits {
        max_elements: 100_000_000,
        ..BuiltinLimits::default()
    };
    let strings = |prefix: &str| {
        Value::from(
            (0..3000)
                .map(|i| Value::from(format!("{prefix}{i}")))
                .collect::<Vec<_>>(),
        )
    };
    let mut input = Value::new_object();
    input
        .as_object_mut()?
        .insert(Value::from("a"), strings("a"));
    input
        .as_object_mut()?
        .insert(Value::from("b"), strings("b"));

    let policies = [
        policy("count(numbers.range(1, 2e7))"),
        policy("count(numbers.range_step(1, 4e7, 2))"),
        policy("count(net.cidr_expand(\"10.0.0.0/12\"))"),
        policy("strings.any_prefix_match(input.a, input.b)"),
        r#"package limits

graph[node] := next if {
    some layer in numbers.range(0, 19)
    some side in [0, 1]
    node := sprintf("n%d_%d", [layer, side])
    next := [sprintf("n%d_%d", [layer + 1, s]) | some s in [0, 1]]
}

x := count(graph.reachable_paths(graph, ["n0_0"]))
"#
        .to_string(),
    ];
    for policy in &policies {
        for strict in [true, false] {
            let mut engine = engine(policy, limits, strict)?;
            engine.set_input(input.clone());
            engine.set_execution_timer_config(timer);
            match engine.eval_rule("data.limits.x".to_string()) {
                Ok(v) => anyhow::bail!("expected a time limit error, got {v} for {policy}"),
                Err(err) => assert!(
                    matches!(
                        err.downcast_ref::<LimitError>(),
                        Some(LimitError::TimeLimitExceeded { .. })
                    ),
                    "unexpected error {err} for {policy}"
                ),
            }

            #[cfg(feature = "rvm")]
            {
                use regorus::languages::rego::compiler::Compiler;
                use regorus::rvm::vm::{RegoVM, VmError};

                let compiled = engine.compile_with_entrypoint(&"data.limits.x".into())?;
                let program = Compiler::compile_from_policy(&compiled, &["data.limits.x"])?;
                let mut vm = RegoVM::new();
                vm.load_program(program);
                vm.set_input(input.clone());
                vm.set_builtin_limits(limits);
                vm.set_strict_builtin_errors(strict);
                vm.set_execution_timer_config(Some(timer));
                match vm.execute() {
                    Err(VmError::TimeLimitExceeded { .. }) => {}
                    Ok(v) => anyhow::bail!("expected a time limit error, got {v} for {policy}"),
                    Err(err) => anyhow::bail!("unexpected RVM error {err} for {policy}"),
                }
            }
        }
    }
    Ok(())
}

/// Each engine and VM owns its regex and glob caches: a policy that compiles
/// thousands of distinct patterns fills only its own, bounded, cache.
#[cfg(feature = "cache")]
#[test]
fn pattern_caches_are_per_engine_and_bounded() -> Result<()> {
    use regorus::cache::{self, Config, PatternCache};
    use std::sync::Arc;

    let victim_policy = "package limits\n\nx := [regex.match(\"^a+$\", \"aaa\"), glob.match(\"a.*\", [\".\"], \"a.b\")]\n";
    let flood_policy = "package limits\n\nx := count([i | some i in numbers.range(1, 1000); regex.match(sprintf(\"^x%d$\", [i]), \"y\")]) + count([i | some i in numbers.range(1, 1000); glob.match(sprintf(\"x%d*\", [i]), [], \"y\")])\n";

    let mut victim = engine(victim_policy, BuiltinLimits::default(), true)?;
    assert_eq!(
        victim.eval_rule("data.limits.x".to_string())?,
        Value::from_json_str("[true, true]")?
    );
    let victim_cache = victim.get_pattern_cache();
    assert_eq!((victim_cache.regex_len(), victim_cache.glob_len()), (1, 1));

    // Interpreter.
    let mut flood = engine(flood_policy, BuiltinLimits::default(), true)?;
    flood.eval_rule("data.limits.x".to_string())?;
    let flood_cache = flood.get_pattern_cache();
    assert!(flood_cache.regex_len() > 1 && flood_cache.regex_len() <= Config::default().regex);
    assert!(flood_cache.glob_len() > 1 && flood_cache.glob_len() <= Config::default().glob);

    // RVM.
    #[cfg(feature = "rvm")]
    {
        use regorus::languages::rego::compiler::Compiler;
        use regorus::rvm::vm::RegoVM;

        let compiled = flood.compile_with_entrypoint(&"data.limits.x".into())?;
        let program = Compiler::compile_from_policy(&compiled, &["data.limits.x"])?;
        let mut vm = RegoVM::new();
        vm.load_program(program);
        vm.execute()?;
        let vm_cache = vm.pattern_cache();
        assert!(vm_cache.regex_len() > 1 && vm_cache.regex_len() <= Config::default().regex);
        assert!(vm_cache.glob_len() > 1 && vm_cache.glob_len() <= Config::default().glob);
    }

    // The victim's patterns were not evicted.
    assert_eq!((victim_cache.regex_len(), victim_cache.glob_len()), (1, 1));

    // A cache can be shared, and sized.
    let shared = Arc::new(PatternCache::new(Config { regex: 10, glob: 5 }));
    let mut flood = engine(flood_policy, BuiltinLimits::default(), true)?;
    flood.set_pattern_cache(shared.clone());
    flood.eval_rule("data.limits.x".to_string())?;
    assert_eq!((shared.regex_len(), shared.glob_len()), (10, 5));
    shared.clear();
    assert_eq!((shared.regex_len(), shared.glob_len()), (0, 0));

    // The global configuration applies to the caches created afterwards.
    cache::configure(Config { regex: 7, glob: 3 });
    let mut flood = engine(flood_policy, BuiltinLimits::default(), true)?;
    cache::configure(Config::default());
    flood.eval_rule("data.limits.x".to_string())?;
    let cache = flood.get_pattern_cache();
    assert_eq!((cache.regex_len(), cache.glob_len()), (7, 3));
    Ok(())
}
