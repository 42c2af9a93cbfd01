// Copyright (c) Microsoft Corporation.
// Licensed under the MIT License.

//! The loop hoister's lookup tables have a slot for every statement,
//! expression and query of a module. They are sized once per module (the
//! parser counted its nodes), not grown node by node, and an expression
//! without a binding plan (most of them) costs a pointer, not a whole
//! plan. Measured as bytes allocated per rule while compiling an
//! entrypoint.

use crate::counting::counted_bytes;
use regorus::Engine;

/// Bytes allocated to compile an entrypoint of a module of `n` rules like
/// `r_i contains y if { some x in input.items; y := x.a; y == i }`.
fn bytes(n: usize) -> usize {
    let mut module = String::from("package test\n");
    for i in 0..n {
        module.push_str(&format!(
            "r{i} contains y if {{ some x in input.items; y := x.a; y == {i} }}\n"
        ));
    }
    let mut engine = Engine::new();
    engine
        .add_policy("test.rego".into(), module)
        .expect("policy");
    let entrypoint = "data.test.r0".into();
    let (compiled, _, bytes) = counted_bytes(|| engine.compile_with_entrypoint(&entrypoint));
    compiled.expect("compiled");
    bytes
}

#[test]
fn the_hoisters_tables_are_sized_once_with_a_pointer_per_empty_plan() {
    let per_rule = (bytes(800) as f64 - bytes(400) as f64) / 400.0;
    println!("{per_rule} bytes allocated per rule");
    // Measured: 28,240 bytes per rule growing tables of 104-byte
    // `Option<BindingPlan>` slots; 20,790 with boxed plans; 18,190 with
    // boxed plans in tables sized once; 14,260 hoisting once (when the
    // engine prepares its modules), not again for the entrypoint.
    assert!(per_rule < 23_000.0, "{per_rule} bytes per rule");
}

/// Bytes allocated to compile a second entrypoint of an engine that has
/// already prepared (analysed and hoisted) a module of `n` such rules.
fn second_entrypoint_bytes(n: usize) -> usize {
    let mut module = String::from("package test\n");
    for i in 0..n {
        module.push_str(&format!(
            "r{i} contains y if {{ some x in input.items; y := x.a; y == {i} }}\n"
        ));
    }
    let mut engine = Engine::new();
    engine
        .add_policy("test.rego".into(), module)
        .expect("policy");
    engine
        .compile_with_entrypoint(&"data.test.r0".into())
        .expect("first entrypoint");
    let entrypoint = "data.test.r1".into();
    let (compiled, _, bytes) = counted_bytes(|| engine.compile_with_entrypoint(&entrypoint));
    compiled.expect("compiled");
    bytes
}

#[test]
fn a_prepared_engine_compiles_an_entrypoint_without_hoisting_again() {
    let per_rule =
        (second_entrypoint_bytes(800) as f64 - second_entrypoint_bytes(400) as f64) / 400.0;
    println!("{per_rule} bytes allocated per rule");
    // Measured: 3,934 bytes per rule when every compiled entrypoint
    // hoisted the whole policy's loops again; none without.
    assert!(per_rule < 1_000.0, "{per_rule} bytes per rule");
}
