//! A compiled policy: one bundle revision turned into regorus state that many
//! threads evaluate at once without a lock, and the prepared query for each
//! path evaluated so far.
//!
//! How a path is evaluated (chosen once per path, see BENCHMARKS.md):
//! - a rule path runs on the interpreter with a pooled clone of a prepared
//!   `Engine` (the default), or, with [`Evaluator::Vm`], as RVM bytecode
//!   (`Arc<Program>`) on a pooled `RegoVM` where the RVM compiles it and may
//!   run it (no `print`, no builtin tenet bounds or adds, no rule that could
//!   conflict);
//! - a package or data path (`data.a`, `data`) runs as an interpreter query.
//!
//! Both evaluators get the same limits (deadline, instruction cap) and the
//! same non-strict builtin errors as OPA's default. This module does no I/O.

use crate::guard::{self, LIMIT_MARKER};
use crate::scan::{self, NONDETERMINISTIC};
use crate::{extensions, EvalLimits, Input, PolicyError, QueryPath};
use arc_swap::ArcSwap;
use crossbeam_queue::ArrayQueue;
use regorus::languages::rego::compiler::Compiler;
use regorus::rvm::{Program, RegoVM};
use regorus::utils::limits::ExecutionTimerConfig;
use regorus::{Engine, Value};
use std::collections::{BTreeSet, HashMap};
use std::num::NonZeroU32;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use tenet_bundle::Bundle;

/// Which evaluator runs a prepared query.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Evaluator {
    /// The tree-walking interpreter on pooled clones of a prepared engine.
    /// The default: it gives OPA's answers on every case tenet checks.
    #[default]
    Interpreter,
    /// RVM bytecode on pooled VMs where the RVM compiles the entrypoint and
    /// may run it, the interpreter elsewhere. About 2x faster, but regorus
    /// 0.14.1's RVM gives wrong answers for some policies (an undefined
    /// lookup inside a comprehension yields an `"<undefined>"` element; see
    /// BENCHMARKS.md), so it is opt-in.
    Vm,
}

/// How to compile a bundle.
#[derive(Debug, Clone, Default)]
pub struct CompileOptions {
    /// Limits for every evaluation of the compiled policy.
    pub limits: EvalLimits,
    /// The evaluator to use where it applies.
    pub evaluator: Evaluator,
}

/// The result of one evaluation.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    /// The document, or `None` when it is undefined.
    pub result: Option<serde_json::Value>,
    /// Lines written by `print()`, captured instead of reaching stderr.
    pub prints: Vec<String>,
}

/// A compiled bundle revision. Cheap to clone (an `Arc`), `Send + Sync`.
#[derive(Clone)]
pub struct Policy {
    inner: Arc<Inner>,
}

struct Inner {
    revision: String,
    digest: String,
    template: Engine,
    data: Value,
    options: CompileOptions,
    calls: BTreeSet<String>,
    /// Path and text of each module, for listing (OPA's policy API).
    modules: Vec<(String, Arc<str>)>,
    /// Where rules are defined, as paths under `data`.
    rule_paths: BTreeSet<Vec<String>>,
    deterministic: bool,
    conflict_prone: BTreeSet<String>,
    approx_bytes: usize,
    queries: ArcSwap<HashMap<QueryPath, Arc<QuerySlot>>>,
    prepared_builds: AtomicU64,
}

impl std::fmt::Debug for Policy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Policy")
            .field("revision", &self.inner.revision)
            .field("digest", &self.inner.digest)
            .field("deterministic", &self.inner.deterministic)
            .finish_non_exhaustive()
    }
}

fn timer(limits: &EvalLimits) -> ExecutionTimerConfig {
    ExecutionTimerConfig {
        limit: limits.deadline,
        check_interval: NonZeroU32::new(limits.deadline_check_interval).unwrap_or(NonZeroU32::MIN),
    }
}

fn compile_error(file: &str, e: impl std::fmt::Display) -> PolicyError {
    PolicyError::Compile {
        file: file.to_string(),
        message: e.to_string(),
    }
}

impl Policy {
    /// Compiles `bundle`: parses every module, loads the data, registers
    /// tenet's extensions and bounded builtins, and type-checks the whole.
    pub fn compile(bundle: &Bundle, options: CompileOptions) -> Result<Self, PolicyError> {
        let mut engine = Engine::new();
        engine.set_strict_builtin_errors(false);
        engine.set_gather_prints(true);
        engine.set_execution_timer_config(timer(&options.limits));
        extensions::register(&mut engine, false).map_err(|e| compile_error("<extensions>", e))?;
        guard::register(&mut engine, &options.limits).map_err(|e| compile_error("<guards>", e))?;
        let mut calls = BTreeSet::new();
        let mut source_bytes = 0;
        for m in &bundle.modules {
            engine.set_rego_v0(m.rego_version == 0);
            engine
                .add_policy(m.path.clone(), m.source.clone())
                .map_err(|e| compile_error(&m.path, e))?;
            calls.extend(scan::calls(&m.source));
            source_bytes += m.source.len();
        }
        engine.set_rego_v0(false);
        let data: Value =
            serde_json::from_value(bundle.data.clone()).map_err(|e| compile_error("data", e))?;
        engine
            .add_data(data.clone())
            .map_err(|e| compile_error("data", e))?;
        // Runs regorus's analysis now, so that type errors surface at compile
        // time and engine clones are cheap (a clone of an unprepared engine
        // redoes the analysis on every use).
        engine
            .eval_query("true".to_string(), false)
            .map_err(|e| compile_error("bundle", e))?;
        let conflict_prone = conflict_prone_rules(&mut engine);
        let rule_paths = rule_paths(&mut engine);
        let deterministic = !NONDETERMINISTIC.iter().any(|b| calls.contains(*b));
        let data_json = bundle
            .data_files
            .iter()
            .map(|d| d.bytes as usize)
            .sum::<usize>();
        Ok(Self {
            inner: Arc::new(Inner {
                revision: bundle.manifest.revision.clone(),
                digest: bundle.digest.clone(),
                template: engine,
                data,
                options,
                calls,
                modules: bundle
                    .modules
                    .iter()
                    .map(|m| (m.path.clone(), Arc::from(m.source.as_str())))
                    .collect(),
                rule_paths,
                deterministic,
                conflict_prone,
                // Calibrated on the payments example (10,000 tenants, one
                // bundle each: 203 KiB RSS per tenant, BENCHMARKS.md): data
                // as regorus values ~7x its JSON, the analysed and pooled
                // engines ~24x the Rego source, plus a fixed 64 KiB.
                approx_bytes: data_json * 7 + source_bytes * 24 + 64 * 1024,
                queries: ArcSwap::from_pointee(HashMap::new()),
                prepared_builds: AtomicU64::new(0),
            }),
        })
    }

    /// A handle that does not keep the policy alive; hosts use it to share
    /// one compiled policy between tenants whose bundles are identical.
    pub fn downgrade(&self) -> WeakPolicy {
        WeakPolicy(Arc::downgrade(&self.inner))
    }

    /// The bundle's manifest revision.
    pub fn revision(&self) -> &str {
        &self.inner.revision
    }

    /// The bundle's content digest.
    pub fn digest(&self) -> &str {
        &self.inner.digest
    }

    /// True when no module calls a builtin whose answer depends on more than
    /// its arguments (time, random, uuid, http, DNS): the same input always
    /// gives the same decision, so decisions may be cached.
    pub fn is_deterministic(&self) -> bool {
        self.inner.deterministic
    }

    /// The path under `data` of every rule (`["a", "b", "allow"]`).
    pub fn rule_paths(&self) -> &BTreeSet<Vec<String>> {
        &self.inner.rule_paths
    }

    /// Path and Rego text of every module, in bundle order.
    pub fn modules(&self) -> &[(String, Arc<str>)] {
        &self.inner.modules
    }

    /// Every function or builtin name the modules call.
    pub fn calls(&self) -> &BTreeSet<String> {
        &self.inner.calls
    }

    /// Rough heap size of this policy (data dominates), for memory budgets.
    pub fn approx_bytes(&self) -> usize {
        self.inner.approx_bytes
    }

    /// The limits every evaluation runs under.
    pub fn limits(&self) -> &EvalLimits {
        &self.inner.options.limits
    }

    /// Evaluates the document at `path` (`data.a.b` or `a/b`); `None` is
    /// OPA's undefined.
    pub fn evaluate(
        &self,
        path: &str,
        input: &Input,
    ) -> Result<Option<serde_json::Value>, PolicyError> {
        Ok(self.evaluation(path, input)?.result)
    }

    /// Evaluates and returns the result with the captured `print` lines.
    pub fn evaluation(&self, path: &str, input: &Input) -> Result<Evaluation, PolicyError> {
        let path = QueryPath::parse(path)?;
        self.query(&path)?.evaluate(input)
    }

    /// The prepared query for `path`, built on first use and shared after.
    /// Lock-free on a hit. Concurrent misses on one path collapse into one
    /// build: the first caller builds under that path's slot lock while the
    /// others wait for it. A failed build is returned and not cached.
    pub fn query(&self, path: &QueryPath) -> Result<Arc<PreparedQuery>, PolicyError> {
        let slot = match self.inner.queries.load().get(path) {
            Some(slot) => {
                if let Some(q) = slot.ready.get() {
                    return Ok(q.clone());
                }
                slot.clone()
            }
            // Paths come from requests: past the cap, a new path is
            // prepared for this call only, so the map cannot grow without
            // bound (nor its copy-on-write cost).
            None if self.inner.queries.load().len() >= MAX_CACHED_QUERIES => {
                return self.prepare(path).map(Arc::new);
            }
            None => {
                let fresh = Arc::new(QuerySlot::default());
                let mut winner = fresh.clone();
                self.inner.queries.rcu(|map| {
                    let mut map = HashMap::clone(map);
                    winner = map
                        .entry(path.clone())
                        .or_insert_with(|| fresh.clone())
                        .clone();
                    map
                });
                winner
            }
        };
        let _building = slot.building.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(q) = slot.ready.get() {
            return Ok(q.clone());
        }
        let prepared = Arc::new(self.prepare(path)?);
        self.inner.prepared_builds.fetch_add(1, Ordering::Relaxed);
        Ok(slot.ready.get_or_init(|| prepared).clone())
    }

    /// How many prepared queries this policy has built (for tests and
    /// metrics: one per path, however many callers raced for it).
    pub fn prepared_builds(&self) -> u64 {
        self.inner.prepared_builds.load(Ordering::Relaxed)
    }

    /// Builds a prepared query for `path` without caching it.
    pub fn prepare(&self, path: &QueryPath) -> Result<PreparedQuery, PolicyError> {
        let inner = &self.inner;
        // OPA's REST paths reach into arrays (`/v1/data/servers/0/id`) but a
        // Rego reference `data.servers["0"]` is undefined on an array: the
        // query stops before the first all-digit component and the rest is
        // walked in the result, by index in arrays and by key in objects.
        let split = path
            .components()
            .iter()
            .position(|c| !c.is_empty() && c.bytes().all(|b| b.is_ascii_digit()))
            .unwrap_or(path.components().len());
        let tail = path.components()[split..].to_vec();
        let path = &QueryPath::from_components(path.components()[..split].to_vec());
        let rego = path.to_rego();
        let mut engine = inner.template.clone();
        let pool_size = std::thread::available_parallelism()
            .map_or(4, |n| n.get() * 2)
            .max(4);
        let kind = match engine.compile_with_entrypoint(&rego.as_str().into()) {
            Ok(compiled) => {
                let program = match inner.options.evaluator {
                    Evaluator::Interpreter => None,
                    Evaluator::Vm => {
                        match Compiler::compile_from_policy(&compiled, &[rego.as_str()]) {
                            Ok(p) => vm_can_run(&p, &inner.conflict_prone).then_some(p),
                            Err(e) => {
                                tracing::debug!(path = %rego, error = %e, "RVM cannot compile entrypoint; using the interpreter");
                                None
                            }
                        }
                    }
                };
                match program {
                    Some(program) => Kind::Vm {
                        program,
                        data: inner.data.clone(),
                        pool: ArrayQueue::new(pool_size),
                    },
                    None => Kind::Rule {
                        template: inner.template.clone(),
                        pool: ArrayQueue::new(pool_size),
                    },
                }
            }
            // Not a rule: a package or data path, evaluated as a query.
            Err(_) => Kind::Query {
                template: inner.template.clone(),
                pool: ArrayQueue::new(pool_size),
            },
        };
        Ok(PreparedQuery {
            rego,
            tail,
            kind,
            limits: inner.options.limits.clone(),
        })
    }
}

/// The RVM runs a program only if it calls no builtin that tenet replaces
/// (guards and extensions run on the interpreter only), no `print` (the RVM
/// fails on it at run time), and no rule that could have conflicting values:
/// the RVM returns undefined where OPA reports a conflict error.
fn vm_can_run(program: &Program, conflict_prone: &BTreeSet<String>) -> bool {
    program.builtin_info_table.iter().all(|b| {
        b.name != "print"
            && !guard::GUARDED.iter().any(|(g, _)| *g == b.name)
            && !extensions::NAMES.contains(&b.name.as_str())
    }) && !program
        .rule_infos
        .iter()
        .any(|r| conflict_prone.contains(&r.name))
}

/// Complete rules and functions with several definitions that may yield
/// different values (`x = 1 if a` and `x = 2 if b`). Several definitions of
/// the same constant (`allow if a` / `allow if b`) cannot conflict and are
/// not listed.
/// The path under `data` of every rule (`data.a.b.p` → `["a","b","p"]`),
/// the prefix of a ref head up to its first non-constant key.
fn rule_paths(engine: &mut Engine) -> BTreeSet<Vec<String>> {
    use regorus::unstable::{Rule, RuleHead};
    use regorus::utils::get_path_string;
    let mut paths = BTreeSet::new();
    for module in engine.get_modules().iter() {
        let Ok(package) = get_path_string(&module.package.refr, Some("data")) else {
            continue;
        };
        for rule in &module.policy {
            let refr = match rule.as_ref() {
                Rule::Spec { head, .. } => match head {
                    RuleHead::Compr { refr, .. }
                    | RuleHead::Set { refr, .. }
                    | RuleHead::Func { refr, .. } => refr,
                },
                Rule::Default { refr, .. } => refr,
            };
            if let Ok(path) = get_path_string(refr, Some(&package)) {
                paths.insert(path.split('.').skip(1).map(String::from).collect());
            }
        }
    }
    paths
}

fn conflict_prone_rules(engine: &mut Engine) -> BTreeSet<String> {
    use regorus::unstable::{Expr, Rule, RuleHead};
    use regorus::utils::get_path_string;
    let literal = |e: &Expr| match e {
        Expr::Bool { value, .. }
        | Expr::Number { value, .. }
        | Expr::String { value, .. }
        | Expr::RawString { value, .. }
        | Expr::Null { value, .. } => Some(value.clone()),
        _ => None,
    };
    let mut definitions: HashMap<String, Vec<Option<Value>>> = HashMap::new();
    for module in engine.get_modules().iter() {
        let Ok(package) = get_path_string(&module.package.refr, Some("data")) else {
            continue;
        };
        for rule in &module.policy {
            let Rule::Spec { head, .. } = rule.as_ref() else {
                continue;
            };
            let (refr, assign) = match head {
                RuleHead::Compr { refr, assign, .. } | RuleHead::Func { refr, assign, .. } => {
                    (refr, assign)
                }
                RuleHead::Set { .. } => continue,
            };
            let value = match assign {
                None => Some(Value::Bool(true)),
                Some(a) => literal(&a.value),
            };
            if let Ok(path) = get_path_string(refr, Some(&package)) {
                definitions.entry(path).or_default().push(value);
            }
        }
    }
    definitions
        .into_iter()
        .filter(|(_, values)| {
            values.len() > 1
                && (values.iter().any(Option::is_none) || values.windows(2).any(|w| w[0] != w[1]))
        })
        .map(|(path, _)| path)
        .collect()
}

/// Most paths whose prepared queries a policy keeps.
pub const MAX_CACHED_QUERIES: usize = 1024;

/// One path's prepared query: `ready` is read without a lock; `building`
/// makes concurrent misses wait for one build.
#[derive(Default)]
struct QuerySlot {
    ready: OnceLock<Arc<PreparedQuery>>,
    building: Mutex<()>,
}

/// A weak reference to a [`Policy`].
#[derive(Clone, Default)]
pub struct WeakPolicy(std::sync::Weak<Inner>);

impl WeakPolicy {
    /// The policy, if something still holds it.
    pub fn upgrade(&self) -> Option<Policy> {
        self.0.upgrade().map(|inner| Policy { inner })
    }
}

impl std::fmt::Debug for WeakPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WeakPolicy")
    }
}

/// The compiled entrypoint for one path, shared by every caller.
pub struct PreparedQuery {
    rego: String,
    /// Components walked in the result (from the first all-digit one).
    tail: Vec<String>,
    kind: Kind,
    limits: EvalLimits,
}

enum Kind {
    Vm {
        program: Arc<Program>,
        data: Value,
        pool: ArrayQueue<RegoVM>,
    },
    Rule {
        template: Engine,
        pool: ArrayQueue<Engine>,
    },
    Query {
        template: Engine,
        pool: ArrayQueue<Engine>,
    },
}

impl std::fmt::Debug for PreparedQuery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PreparedQuery")
            .field("path", &self.rego)
            .field("evaluator", &self.evaluator())
            .finish()
    }
}

impl PreparedQuery {
    /// The evaluator this query runs on.
    pub fn evaluator(&self) -> Evaluator {
        match self.kind {
            Kind::Vm { .. } => Evaluator::Vm,
            _ => Evaluator::Interpreter,
        }
    }

    /// Evaluates with `input`. The evaluator is taken from a lock-free pool
    /// and returned after success; after an error it is dropped, so no state
    /// of a failed evaluation can leak into the next.
    pub fn evaluate(&self, input: &Input) -> Result<Evaluation, PolicyError> {
        match &self.kind {
            Kind::Vm {
                program,
                data,
                pool,
            } => {
                let mut vm = match pool.pop() {
                    Some(vm) => vm,
                    None => self.new_vm(program, data)?,
                };
                vm.set_input(input.0.clone());
                let value = guarded(|| vm.execute().map_err(anyhow::Error::from))
                    .map_err(|e| self.map_error(e))?;
                let _ = pool.push(vm);
                Ok(Evaluation {
                    result: walk(to_json(value)?, &self.tail),
                    prints: Vec::new(),
                })
            }
            Kind::Rule { template, pool } | Kind::Query { template, pool } => {
                let mut engine = pool.pop().unwrap_or_else(|| template.clone());
                engine.set_input(input.0.clone());
                let is_rule = matches!(self.kind, Kind::Rule { .. });
                let value = guarded(|| {
                    if is_rule {
                        engine.eval_rule(self.rego.clone())
                    } else {
                        let results = engine.eval_query(self.rego.clone(), false)?;
                        Ok(results
                            .result
                            .into_iter()
                            .next()
                            .and_then(|r| r.expressions.into_iter().next())
                            .map_or(Value::Undefined, |e| e.value))
                    }
                });
                let prints = engine.take_prints().unwrap_or_default();
                for line in &prints {
                    tracing::debug!(target: "tenet::print", path = %self.rego, "{line}");
                }
                let value = value.map_err(|e| self.map_error(e))?;
                let _ = pool.push(engine);
                Ok(Evaluation {
                    result: walk(to_json(value)?, &self.tail),
                    prints,
                })
            }
        }
    }
}

/// The document at `tail` inside `value`: array elements by index, object
/// members by key; undefined when any step is missing.
fn walk(value: Option<serde_json::Value>, tail: &[String]) -> Option<serde_json::Value> {
    let mut value = value?;
    for key in tail {
        value = match value {
            serde_json::Value::Array(mut items) => {
                let i: usize = key.parse().ok()?;
                (i < items.len()).then(|| items.swap_remove(i))?
            }
            serde_json::Value::Object(mut map) => map.remove(key)?,
            _ => return None,
        };
    }
    Some(value)
}

impl PreparedQuery {
    fn new_vm(&self, program: &Arc<Program>, data: &Value) -> Result<RegoVM, PolicyError> {
        let mut vm = RegoVM::new();
        vm.load_program(program.clone());
        vm.set_data(data.clone())
            .map_err(|e| PolicyError::Internal {
                message: e.to_string(),
            })?;
        vm.set_max_instructions(self.limits.max_instructions);
        vm.set_execution_timer_config(Some(timer(&self.limits)));
        vm.set_strict_builtin_errors(false);
        Ok(vm)
    }

    fn map_error(&self, e: anyhow::Error) -> PolicyError {
        use regorus::utils::limits::LimitError;
        for cause in e.chain() {
            if let Some(LimitError::TimeLimitExceeded { .. }) = cause.downcast_ref::<LimitError>() {
                return PolicyError::Timeout {
                    limit: self.limits.deadline,
                };
            }
            if let Some(regorus::rvm::vm::VmError::InstructionLimitExceeded { .. }) =
                cause.downcast_ref::<regorus::rvm::vm::VmError>()
            {
                return PolicyError::InstructionLimit {
                    limit: self.limits.max_instructions,
                };
            }
        }
        let message = format!("{e:#}");
        if let Some(at) = message.find(LIMIT_MARKER) {
            let rest = &message[at + LIMIT_MARKER.len()..];
            let (builtin, reason) = rest.split_once(": ").unwrap_or(("builtin", rest));
            return PolicyError::BuiltinLimit {
                builtin: builtin.to_string(),
                reason: reason.lines().next().unwrap_or(reason).to_string(),
            };
        }
        if message.contains("time limit") || message.contains("TimeLimitExceeded") {
            return PolicyError::Timeout {
                limit: self.limits.deadline,
            };
        }
        if message.contains("maximum instruction limit") {
            return PolicyError::InstructionLimit {
                limit: self.limits.max_instructions,
            };
        }
        PolicyError::Evaluation { message }
    }
}

/// Runs an evaluation, turning a panic inside regorus into an error so that a
/// regorus bug fails one decision, not the process.
fn guarded(f: impl FnOnce() -> anyhow::Result<Value>) -> anyhow::Result<Value> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            Err(anyhow::anyhow!("evaluator panicked: {what}"))
        }
    }
}

fn to_json(value: Value) -> Result<Option<serde_json::Value>, PolicyError> {
    if value == Value::Undefined {
        return Ok(None);
    }
    serde_json::to_value(&value)
        .map(Some)
        .map_err(|e| PolicyError::Internal {
            message: format!("result is not JSON: {e}"),
        })
}
