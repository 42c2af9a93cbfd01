//! A prepared query: one path of a policy compiled for its evaluator (RVM
//! bytecode on pooled VMs, or a pooled interpreter engine), evaluated
//! under the policy's limits with results and prints bounded; a failed RVM
//! evaluation is reported with the interpreter's located message. What
//! path gets which evaluator is decided in the parent module
//! (`Policy::prepare`); this module does no I/O.

use super::*;

/// The compiled entrypoint for one path, shared by every caller.
pub struct PreparedQuery {
    pub(super) rego: String,
    /// Components walked in the result (from the first all-digit one).
    pub(super) tail: Vec<String>,
    pub(super) kind: Kind,
    /// Why this path runs on the interpreter although the RVM was asked for.
    pub(super) fallback: Option<String>,
    pub(super) limits: EvalLimits,
    /// The policy's compiled regex and glob patterns, shared by its VMs.
    pub(super) pattern_cache: Arc<regorus::cache::PatternCache>,
}

pub(super) enum Kind {
    Vm {
        program: Arc<Program>,
        data: Value,
        pool: Pool<RegoVM>,
        /// For error reports only (see `evaluate`): the policy, whose
        /// analysed engine re-runs a failed evaluation.
        policy: std::sync::Weak<Inner>,
    },
    Rule {
        template: Arc<Engine>,
        pool: Pool<Engine>,
    },
    Query {
        template: Arc<Engine>,
        pool: Pool<Engine>,
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
    /// Why this query runs on the interpreter when the RVM was asked for
    /// (`None` when it runs on the evaluator that was asked for).
    pub fn fallback_reason(&self) -> Option<&str> {
        self.fallback.as_deref()
    }

    /// Drops the idle evaluators of this query, and the policy's compiled
    /// regex and glob patterns (compiled again when next used): a compiled
    /// glob holds a few KiB of automata, a third of a small idle tenant
    /// (BENCHMARKS.md).
    pub fn trim(&self) {
        match &self.kind {
            Kind::Vm { pool, .. } => pool.clear(),
            Kind::Rule { pool, .. } | Kind::Query { pool, .. } => pool.clear(),
        }
        self.pattern_cache.clear();
    }

    /// Evaluators pooled for this query's next evaluations.
    pub fn idle_evaluators(&self) -> usize {
        match &self.kind {
            Kind::Vm { pool, .. } => pool.len(),
            Kind::Rule { pool, .. } | Kind::Query { pool, .. } => pool.len(),
        }
    }

    /// The evaluator this query runs on.
    pub fn evaluator(&self) -> Evaluator {
        match self.kind {
            Kind::Vm { .. } => Evaluator::Vm,
            _ => Evaluator::Interpreter,
        }
    }

    /// Evaluates with `input`. The evaluator is taken from the query's pool
    /// and returned after success; after an error it is dropped, so no state
    /// of a failed evaluation can leak into the next.
    pub fn evaluate(&self, input: &Input) -> Result<Evaluation, PolicyError> {
        self.evaluate_within(input, self.limits.deadline)
    }

    /// The deadline of one evaluation (the policy's `EvalLimits::deadline`).
    pub fn deadline(&self) -> Duration {
        self.limits.deadline
    }

    /// [`PreparedQuery::evaluate`] with a wall-clock limit of `limit`, or
    /// the policy's deadline if that is shorter. An evaluation cut off by
    /// it fails with `PolicyError::Timeout` naming the limit that applied,
    /// so a caller that gave it a shorter turn (a host evaluating on a
    /// thread it must not hold long) can tell that from the deadline and
    /// evaluate again elsewhere.
    pub fn evaluate_within(
        &self,
        input: &Input,
        limit: Duration,
    ) -> Result<Evaluation, PolicyError> {
        let limits = EvalLimits {
            deadline: limit.min(self.limits.deadline),
            ..self.limits.clone()
        };
        match &self.kind {
            Kind::Vm {
                program,
                data,
                pool,
                policy,
            } => {
                let mut vm = match pool.pop() {
                    Some(vm) => vm,
                    None => self.new_vm(program, data)?,
                };
                vm.set_input(input.0.clone());
                // Per evaluation: pooled VMs may have run with another limit.
                vm.set_execution_timer_config(Some(timer(&limits)));
                let value = guarded(|| vm.execute().map_err(anyhow::Error::from));
                let prints = cap_prints(vm.take_prints(), self.limits.max_print_bytes);
                log_prints(&self.rego, &prints);
                let value = match value.map_err(|e| self.map_error(e, &limits)) {
                    Ok(value) => value,
                    // The RVM's evaluation errors (conflicts, strict type
                    // errors) carry a program counter, not a source
                    // location. They are rare, so the interpreter runs the
                    // same evaluation once more for OPA's located error;
                    // limits (deadline, depth, builtin sizes) are reported
                    // as they are.
                    Err(e @ PolicyError::Evaluation { .. }) => {
                        let Some(template) = policy.upgrade().and_then(|p| p.template().ok())
                        else {
                            return Err(e);
                        };
                        let mut engine = Engine::clone(&template);
                        engine.set_input(input.0.clone());
                        engine.set_execution_timer_config(timer(&limits));
                        return Err(match guarded(|| engine.eval_rule(self.rego.clone())) {
                            Err(located) => self.map_error(located, &limits),
                            Ok(_) => e,
                        });
                    }
                    Err(e) => return Err(e),
                };
                let result = self.result(value)?;
                pool.push(vm);
                Ok(Evaluation {
                    result,
                    prints,
                    evaluator: Evaluator::Vm,
                })
            }
            Kind::Rule { template, pool } | Kind::Query { template, pool } => {
                let mut engine = pool.pop().unwrap_or_else(|| Engine::clone(template));
                engine.set_input(input.0.clone());
                engine.set_execution_timer_config(timer(&limits));
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
                let prints = cap_prints(
                    engine.take_prints().unwrap_or_default(),
                    self.limits.max_print_bytes,
                );
                log_prints(&self.rego, &prints);
                let value = value.map_err(|e| self.map_error(e, &limits))?;
                let result = self.result(value)?;
                pool.push(engine);
                Ok(Evaluation {
                    result,
                    prints,
                    evaluator: Evaluator::Interpreter,
                })
            }
        }
    }
}

fn log_prints(path: &str, prints: &[String]) {
    for line in prints {
        tracing::debug!(target: "tenet::print", path = %path, "{line}");
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
    /// The evaluation's value as JSON, at the path's tail; refused before
    /// any conversion when it measures past `max_result_bytes`.
    fn result(&self, value: Value) -> Result<Option<serde_json::Value>, PolicyError> {
        let limit = self.limits.max_result_bytes;
        if result_size(&value, limit).is_none() {
            return Err(PolicyError::ResultTooLarge { limit });
        }
        Ok(walk(to_json(value)?, &self.tail))
    }

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
        vm.set_gather_prints(true);
        vm.set_builtin_limits(builtin_limits(&self.limits));
        vm.set_memory_budget_config(memory_budget(&self.limits));
        // The loop's own check reads thread-local allocator counters; every
        // 16th instruction is enough, as builtins and rule calls check
        // before and after they run and refuse sizes past the budget.
        vm.set_memory_check_interval(MEMORY_CHECK_INTERVAL);
        // One pattern cache per policy, shared by its engines and VMs.
        vm.set_pattern_cache(self.pattern_cache.clone());
        Ok(vm)
    }

    /// The error of an evaluation that ran with `limits` (its own
    /// deadline, see `evaluate_within`).
    fn map_error(&self, e: anyhow::Error, limits: &EvalLimits) -> PolicyError {
        use regorus::rvm::vm::VmError;
        use regorus::utils::limits::LimitError;
        for cause in e.chain() {
            match cause.downcast_ref::<LimitError>() {
                Some(LimitError::TimeLimitExceeded { .. }) => {
                    return PolicyError::Timeout {
                        limit: limits.deadline,
                    }
                }
                Some(LimitError::MemoryBudgetExceeded { budget, .. }) => {
                    return PolicyError::MemoryLimit { limit: *budget }
                }
                Some(LimitError::BuiltinLimitExceeded { builtin, .. }) => {
                    return PolicyError::BuiltinLimit {
                        builtin: (*builtin).to_string(),
                        reason: cause.to_string(),
                    }
                }
                _ => {}
            }
            match cause.downcast_ref::<VmError>() {
                Some(VmError::InstructionLimitExceeded { .. }) => {
                    return PolicyError::InstructionLimit {
                        limit: self.limits.max_instructions,
                    }
                }
                Some(VmError::CallDepthLimitExceeded { limit, .. }) => {
                    return PolicyError::DepthLimit { limit: *limit }
                }
                Some(VmError::MemoryBudgetExceeded { budget, .. }) => {
                    return PolicyError::MemoryLimit { limit: *budget }
                }
                _ => {}
            }
        }
        // Both evaluators also report limits inside formatted messages.
        let message = format!("{e:#}");
        const BUILTIN_LIMIT: &str = "builtin limit exceeded: ";
        if let Some(at) = message.find(BUILTIN_LIMIT) {
            let reason = message[at..].lines().next().unwrap_or_default();
            let builtin = reason[BUILTIN_LIMIT.len()..]
                .split_once(' ')
                .map_or("builtin", |(name, _)| name);
            return PolicyError::BuiltinLimit {
                builtin: builtin.to_string(),
                reason: reason.to_string(),
            };
        }
        if let Some(at) = message.find("evaluation depth limit exceeded") {
            let limit = message[at..]
                .split(|c: char| !c.is_ascii_digit())
                .find_map(|n| n.parse().ok())
                .unwrap_or(0);
            return PolicyError::DepthLimit { limit };
        }
        if message.contains("time limit") || message.contains("TimeLimitExceeded") {
            return PolicyError::Timeout {
                limit: limits.deadline,
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
