// Copyright (c) Microsoft Corporation.
// Licensed under the MIT License.

//! Allocations on the RVM's hot paths, counted by a global allocator of
//! this test binary: reading a rule's cached value and calling a builtin
//! must not allocate an error value, or a copy of the rule's metadata, that
//! nothing uses (`ok_or` builds its error eagerly; `RuleInfo::clone` copies
//! names and tables).

use crate::counting::counted;
use regorus::languages::rego::compiler::Compiler;
use regorus::rvm::vm::RegoVM;
use regorus::{Engine, Rc, Value};

/// Allocations made by one execution of `data.test.p` in `module`, with
/// `n` as `input.n`.
fn allocations(module: &str, n: i64) -> usize {
    let mut engine = Engine::new();
    engine
        .add_policy("test.rego".to_string(), module.to_string())
        .expect("policy");
    let compiled = engine
        .compile_with_entrypoint(&Rc::from("data.test.p"))
        .expect("compile");
    let program = Compiler::compile_from_policy(&compiled, &["data.test.p"]).expect("rvm");
    let mut vm = RegoVM::new();
    vm.load_program(program);
    let input = Value::from_json_str(&format!("{{\"n\": {n}}}")).expect("input");
    vm.set_input(input.clone());
    // One run first, so lazily built state is not counted.
    assert_eq!(vm.execute().expect("run"), Value::from(true));
    vm.set_input(input);
    let (value, allocations) = counted(|| vm.execute());
    assert_eq!(value.expect("run"), Value::from(true));
    allocations
}

/// Extra allocations per loop iteration of `body` over the same loop with
/// `1 == 1`, measured over 1,000 and 2,000 iterations.
fn per_iteration(definitions: &str, body: &str) -> f64 {
    let module = |body: &str| {
        format!(
            "package test\n{definitions}\np if {{\n  every i in numbers.range(1, input.n) {{\n    {body}\n  }}\n}}\n"
        )
    };
    let with = module(body);
    let without = module("1 == 1");
    let grown = |m: &str| allocations(m, 2000) as f64 - allocations(m, 1000) as f64;
    let extra = (grown(&with) - grown(&without)) / 1000.0;
    println!("{body}: {extra} allocations per iteration");
    extra
}

#[test]
fn reading_a_cached_rule_does_not_allocate() {
    // `r` is evaluated on the first iteration and read from the rule cache
    // on every other one.
    let extra = per_iteration("r := 1\n", "r == 1");
    assert!(
        extra < 0.5,
        "a cached rule read allocates {extra} times per iteration"
    );
}

#[test]
fn calling_a_builtin_does_not_allocate_an_unused_error() {
    // `abs` on a small integer allocates nothing of its own (its arguments
    // go in a reused buffer, small numbers are inline); it allocated an
    // error message per call that was dropped unused.
    let extra = per_iteration("", "abs(i) > 0");
    assert!(
        extra < 0.5,
        "a builtin call allocates {extra} times per iteration"
    );
}

/// Bytes allocated to compile the RVM program of `data.test.r0` (which
/// reads no other rule) from a module of `n` rules.
fn program_bytes(n: usize) -> usize {
    let mut module = String::from("package test\n");
    for i in 0..n {
        module.push_str(&format!("r{i} if {{ input.x == {i} }}\n"));
    }
    let mut engine = Engine::new();
    engine
        .add_policy("test.rego".to_string(), module)
        .expect("policy");
    let compiled = engine
        .compile_with_entrypoint(&Rc::from("data.test.r0"))
        .expect("compile");
    let (program, _, bytes) = crate::counting::counted_bytes(|| {
        Compiler::compile_from_policy(&compiled, &["data.test.r0"])
    });
    program.expect("rvm");
    bytes
}

#[test]
fn a_policy_the_engine_checked_for_recursion_is_not_checked_again() {
    // The engine checked the whole policy's rule graph for recursion when
    // it prepared its modules; the RVM compiler built that graph again
    // (measured: 1,413 bytes per rule), although it compiles only the
    // rules the entrypoint reaches.
    let per_rule = (program_bytes(800) as f64 - program_bytes(400) as f64) / 400.0;
    println!("{per_rule} bytes allocated per rule");
    assert!(per_rule < 500.0, "{per_rule} bytes per rule");
}
