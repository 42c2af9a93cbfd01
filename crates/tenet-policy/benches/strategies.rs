#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Evaluation strategies per decision on the example tenants' `allow` rule.
//!
//! Run: `cargo bench -p tenet-policy --bench strategies`.
//!
//! Groups:
//! - `per_decision/<strategy>/<tenant>`: one decision per iteration, single
//!   thread, cycling over a few pre-parsed inputs per tenant:
//!   - `tenet_interpreter`: `PreparedQuery::evaluate`, `Evaluator::Interpreter`
//!     (pooled clones of a prepared `Engine`), tenet's fallback;
//!   - `tenet_vm`: the same with `Evaluator::Vm` (pooled `RegoVM`s sharing an
//!     `Arc<Program>`), tenet's default;
//!   - `engine_clone_per_request`: raw regorus, a prepared `Engine` cloned per
//!     decision, `set_input`, `eval_rule`;
//!   - `engine_reused`: one raw `Engine` reused (`set_input`, `eval_rule`);
//!   - `compiled_policy`: `CompiledPolicy::eval_with_input`;
//!   - `rvm_new_vm_per_request`: a new `RegoVM` per decision (`load_program`,
//!     `set_data`, `set_input`, `execute`).
//! - `two_threads/<variant>/<tenant>`: throughput of the two tenet evaluators
//!   with 1 and 2 threads sharing one `PreparedQuery` (see [`threaded`]).
//! - `parse_input`: `Input::from_json` of a 318-byte compact JSON input.
//!
//! Every strategy's result for every input is checked against
//! `tenet_interpreter` (and the expected answer from `examples/cases`) before
//! timing, and must match (the patched regorus's RVM agrees with OPA on
//! these cases; unpatched 0.14.1 answered `allow` = true for payments'
//! dave-refund-over-limit).

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use regorus::languages::rego::compiler::Compiler;
use regorus::rvm::{Program, RegoVM};
use regorus::{CompiledPolicy, Engine, Value};
use std::hint::black_box;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tenet_bundle::{Bundle, Limits};
use tenet_policy::{
    CompileOptions, EvalLimits, Evaluator, Input, Policy, PreparedQuery, QueryPath,
};

/// (input file, expected `allow`).
type Case = (&'static str, bool);

/// (tenant, entrypoint, cases).
const TENANTS: &[(&str, &str, &[Case])] = &[
    (
        "payments",
        "data.payments.authz.allow",
        &[
            ("alice-refund.json", true),
            ("dave-refund-small.json", true),
            ("dave-refund-over-limit.json", false),
            ("frank-foreign-payout.json", false),
        ],
    ),
    (
        "storefront",
        "data.storefront.ingress.allow",
        &[
            ("get-product.json", true),
            ("cart-with-bearer.json", true),
            ("admin-without-role.json", false),
            ("unknown-host.json", false),
        ],
    ),
    (
        "analytics",
        "data.analytics.access.allow",
        &[
            ("marketing-query-confidential.json", true),
            ("public-dataset-from-home.json", true),
            ("confidential-after-hours.json", false),
            ("export-pii.json", false),
        ],
    ),
];

/// Same as tenet's default `max_instructions`; regorus's own 25,000 is too low
/// for ordinary policies over data.
const MAX_INSTRUCTIONS: usize = 10_000_000;

fn examples() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples")
}

/// Everything one tenant's benchmarks need, built outside the timed loops.
struct Tenant {
    name: &'static str,
    rule: &'static str,
    tenet_inputs: Vec<Input>,
    values: Vec<Value>,
    interpreter: Arc<PreparedQuery>,
    vm: Arc<PreparedQuery>,
    /// A raw regorus engine with the bundle's modules and data, prepared.
    engine: Engine,
    compiled: CompiledPolicy,
    program: Arc<Program>,
    data: Value,
}

fn tenet_query(bundle: &Bundle, rule: &str, evaluator: Evaluator) -> Arc<PreparedQuery> {
    let policy = Policy::compile(
        bundle,
        CompileOptions {
            limits: EvalLimits::default(),
            evaluator,
        },
    )
    .expect("compile");
    policy
        .query(&QueryPath::parse(rule).expect("path"))
        .expect("query")
}

fn new_vm(program: &Arc<Program>, data: &Value) -> RegoVM {
    let mut vm = RegoVM::new();
    vm.load_program(program.clone());
    vm.set_data(data.clone()).expect("set_data");
    vm.set_max_instructions(MAX_INSTRUCTIONS);
    vm.set_strict_builtin_errors(false);
    vm
}

fn to_json(v: Value) -> Option<serde_json::Value> {
    (v != Value::Undefined).then(|| serde_json::to_value(&v).expect("result is JSON"))
}

impl Tenant {
    fn load(name: &'static str, rule: &'static str, cases: &[(&str, bool)]) -> Self {
        let bundle = Bundle::load(&examples().join("bundles").join(name), &Limits::default())
            .expect("bundle");
        let texts: Vec<String> = cases
            .iter()
            .map(|(file, _)| {
                std::fs::read_to_string(examples().join("inputs").join(name).join(file))
                    .expect("input file")
            })
            .collect();
        let limits = EvalLimits::default();
        let tenet_inputs: Vec<Input> = texts
            .iter()
            .map(|t| Input::from_json(t, &limits).expect("input"))
            .collect();
        let values: Vec<Value> = texts
            .iter()
            .map(|t| Value::from_json_str(t).expect("input"))
            .collect();

        let mut engine = Engine::new();
        engine.set_strict_builtin_errors(false);
        for m in &bundle.modules {
            engine.set_rego_v0(m.rego_version == 0);
            engine
                .add_policy(m.path.clone(), m.source.clone())
                .expect("add_policy");
        }
        engine.set_rego_v0(false);
        let data: Value = serde_json::from_value(bundle.data.clone()).expect("data");
        engine.add_data(data.clone()).expect("add_data");
        // One evaluation, so that the engine (and its clones) are prepared.
        engine.set_input(values[0].clone());
        engine.eval_rule(rule.to_string()).expect("eval_rule");
        let compiled = engine
            .clone()
            .compile_with_entrypoint(&rule.into())
            .expect("compile_with_entrypoint");
        let program = Compiler::compile_from_policy(&compiled, &[rule]).expect("RVM compile");

        let vm = tenet_query(&bundle, rule, Evaluator::Vm);
        assert_eq!(
            vm.evaluator(),
            Evaluator::Vm,
            "{name}: tenet's Evaluator::Vm falls back to the interpreter for {rule}: {:?}",
            vm.fallback_reason()
        );
        Self {
            name,
            rule,
            tenet_inputs,
            values,
            interpreter: tenet_query(&bundle, rule, Evaluator::Interpreter),
            vm,
            engine,
            compiled,
            program,
            data,
        }
    }

    /// Checks every strategy against `tenet_interpreter` and the expected
    /// answers, once, before anything is timed.
    fn verify(&mut self, expected: &[(&str, bool)]) {
        let rule = self.rule;
        let mut reused = self.engine.clone();
        for (i, (file, want)) in expected.iter().enumerate() {
            let reference = self
                .interpreter
                .evaluate(&self.tenet_inputs[i])
                .expect("eval");
            let reference = reference.result;
            assert_eq!(
                reference,
                Some(serde_json::Value::Bool(*want)),
                "{}: tenet_interpreter on {file}",
                self.name
            );
            let mut clone = self.engine.clone();
            clone.set_input(self.values[i].clone());
            let exact = [
                (
                    "engine_clone_per_request",
                    clone.eval_rule(rule.to_string()),
                ),
                ("engine_reused", {
                    reused.set_input(self.values[i].clone());
                    reused.eval_rule(rule.to_string())
                }),
                (
                    "compiled_policy",
                    self.compiled.eval_with_input(self.values[i].clone()),
                ),
            ];
            for (strategy, got) in exact {
                let got = to_json(got.expect(strategy));
                assert_eq!(got, reference, "{}: {strategy} on {file}", self.name);
            }
            let mut vm = new_vm(&self.program, &self.data);
            vm.set_input(self.values[i].clone());
            let rvm = [
                (
                    "tenet_vm",
                    self.vm
                        .evaluate(&self.tenet_inputs[i])
                        .map(|e| e.result)
                        .map_err(|e| e.to_string()),
                ),
                (
                    "rvm_new_vm_per_request",
                    vm.execute().map(to_json).map_err(|e| e.to_string()),
                ),
            ];
            for (strategy, got) in rvm {
                match got {
                    Ok(got) if got == reference => {}
                    Ok(got) => panic!(
                        "MISMATCH {}: {strategy} on {file}: {got:?}, tenet_interpreter {reference:?}",
                        self.name
                    ),
                    Err(e) => panic!("ERROR {}: {strategy} on {file}: {e}", self.name),
                }
            }
        }
    }
}

fn tenants() -> Vec<Tenant> {
    TENANTS
        .iter()
        .map(|(name, rule, cases)| {
            let mut t = Tenant::load(name, rule, cases);
            t.verify(cases);
            t
        })
        .collect()
}

fn per_decision(c: &mut Criterion) {
    let tenants = tenants();
    let mut g = c.benchmark_group("per_decision");
    for t in &tenants {
        let n = t.values.len();
        let rule = t.rule;

        for (strategy, query) in [("tenet_interpreter", &t.interpreter), ("tenet_vm", &t.vm)] {
            g.bench_function(BenchmarkId::new(strategy, t.name), |b| {
                let mut i = 0;
                b.iter(|| {
                    i = (i + 1) % n;
                    black_box(query.evaluate(&t.tenet_inputs[i]).unwrap())
                })
            });
        }

        g.bench_function(BenchmarkId::new("engine_clone_per_request", t.name), |b| {
            let mut i = 0;
            b.iter(|| {
                i = (i + 1) % n;
                let mut engine = t.engine.clone();
                engine.set_input(t.values[i].clone());
                black_box(engine.eval_rule(rule.to_string()).unwrap())
            })
        });

        g.bench_function(BenchmarkId::new("engine_reused", t.name), |b| {
            let mut engine = t.engine.clone();
            let mut i = 0;
            b.iter(|| {
                i = (i + 1) % n;
                engine.set_input(t.values[i].clone());
                black_box(engine.eval_rule(rule.to_string()).unwrap())
            })
        });

        g.bench_function(BenchmarkId::new("compiled_policy", t.name), |b| {
            let mut i = 0;
            b.iter(|| {
                i = (i + 1) % n;
                black_box(t.compiled.eval_with_input(t.values[i].clone()).unwrap())
            })
        });

        g.bench_function(BenchmarkId::new("rvm_new_vm_per_request", t.name), |b| {
            let mut i = 0;
            b.iter(|| {
                i = (i + 1) % n;
                let mut vm = new_vm(&t.program, &t.data);
                vm.set_input(t.values[i].clone());
                black_box(vm.execute().unwrap())
            })
        });
    }
    g.finish();
}

/// Wall time for `threads` scoped threads, each evaluating `iters` decisions
/// on the shared `query`, divided by `threads`.
///
/// Criterion divides the returned duration by `iters`, so the reported time
/// is wall time / (threads × iters): nanoseconds per decision of aggregate
/// throughput. With perfect scaling the 2-thread figure is half the 1-thread
/// one; the ratio 1t / 2t is the speed-up. The 1-thread variant runs on a
/// spawned thread too, so both pay the same (amortised) spawn cost. Each
/// thread starts at a different input so they do not run in lockstep.
fn threaded(query: &PreparedQuery, inputs: &[Input], threads: usize, iters: u64) -> Duration {
    let n = inputs.len();
    let start = Instant::now();
    std::thread::scope(|s| {
        for t in 0..threads {
            s.spawn(move || {
                let mut i = t % n;
                for _ in 0..iters {
                    i = (i + 1) % n;
                    black_box(query.evaluate(&inputs[i]).unwrap());
                }
            });
        }
    });
    start.elapsed() / u32::try_from(threads).unwrap()
}

fn two_threads(c: &mut Criterion) {
    let tenants = tenants();
    let mut g = c.benchmark_group("two_threads");
    for t in &tenants {
        for (strategy, query) in [("tenet_interpreter", &t.interpreter), ("tenet_vm", &t.vm)] {
            for threads in [1, 2] {
                let id = BenchmarkId::new(format!("{strategy}_{threads}t"), t.name);
                g.bench_function(id, |b| {
                    b.iter_custom(|iters| threaded(query, &t.tenet_inputs, threads, iters))
                });
            }
        }
    }
    g.finish();
}

/// An analytics input (export-pii.json without `name` and `columns`), compact:
/// 318 bytes, a typical decision body.
const PARSE_INPUT: &str = r#"{"subject":{"id":"u-1500","email":"ana.costa@corp.example.com","department":"sales","clearance":2,"employment_start":"2022-09-01T09:00:00+01:00"},"resource":{"id":"ds.sales.orders","classification":"internal","owner_department":"sales"},"action":"export","request_time":"2026-11-20T16:45:00Z","source_ip":"100.80.3.3"}"#;

fn parse_input(c: &mut Criterion) {
    let text = PARSE_INPUT;
    let limits = EvalLimits::default();
    c.bench_function("parse_input", |b| {
        b.iter(|| black_box(Input::from_json(black_box(text), &limits).unwrap()))
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(30)
        .measurement_time(Duration::from_secs(2))
        .warm_up_time(Duration::from_millis(500));
    targets = per_decision, two_threads, parse_input
}
criterion_main!(benches);
