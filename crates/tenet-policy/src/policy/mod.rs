//! A compiled policy: one bundle revision turned into regorus state that many
//! threads evaluate at once without a lock, and the prepared query for each
//! path evaluated so far.
//!
//! How a path is evaluated (chosen once per path, see BENCHMARKS.md):
//! - a rule path runs as RVM bytecode (`Arc<Program>`) on a pooled `RegoVM`
//!   (the default, [`Evaluator::Vm`]) wherever the RVM compiler accepts the
//!   entrypoint, and on the interpreter (a pooled clone of a prepared
//!   `Engine`) where it does not (`with`, `walk`, …) or when
//!   [`Evaluator::Interpreter`] is asked for;
//! - a package or data path (`data.a`, `data`) runs as an interpreter query.
//!
//! Both evaluators get the same limits (deadline, instruction cap, builtin
//! size bounds, evaluation depth), the same extensions, captured `print`,
//! and the same non-strict builtin errors as OPA's default; results and
//! prints are bounded by `output`. This module does no I/O.

use crate::output::{cap_prints, result_size};
use crate::pool::Pool;
use crate::scan::{self, NONDETERMINISTIC};
use crate::{extensions, EvalLimits, Input, PolicyError, QueryPath};
use arc_swap::{ArcSwap, ArcSwapOption};
use regorus::languages::rego::compiler::Compiler;
use regorus::rvm::{Program, RegoVM};
use regorus::utils::limits::{BuiltinLimits, ExecutionTimerConfig};
use regorus::{Engine, MemoryBudgetConfig, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::num::{NonZeroU32, NonZeroU64};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tenet_bundle::Bundle;

mod prepared;

use prepared::Kind;
pub use prepared::PreparedQuery;

/// Which evaluator runs a prepared query.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Evaluator {
    /// The tree-walking interpreter on pooled clones of a prepared engine,
    /// for every path.
    Interpreter,
    /// RVM bytecode on pooled VMs wherever the RVM compiler accepts the
    /// entrypoint, the interpreter elsewhere. The default: 4–7x faster than
    /// the interpreter, with the same answers since tenet's patches to
    /// regorus (vendor/regorus/PATCHES.md; CONFORMANCE.md).
    #[default]
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
    /// Lines written by `print()`, captured instead of reaching stderr, at
    /// most `max_print_bytes` of them (the last kept line then ends with a
    /// truncation marker).
    pub prints: Vec<String>,
    /// The evaluator that produced it.
    pub evaluator: Evaluator,
}

/// What a policy is compiled from, whether it came from a bundle or an
/// image.
pub(crate) struct Sources {
    pub(crate) revision: String,
    pub(crate) digest: String,
    pub(crate) modules: Vec<(String, Arc<str>)>,
    pub(crate) modules_v0: Vec<bool>,
    pub(crate) data: Value,
    /// Size of the data as JSON text, for the memory estimate.
    pub(crate) data_json: usize,
    /// The labels the bundle's manifest gives its tenant.
    pub(crate) labels: tenet_bundle::BundleLabels,
}

/// A compiled bundle revision. Cheap to clone (an `Arc`), `Send + Sync`.
#[derive(Clone)]
pub struct Policy {
    inner: Arc<Inner>,
}

struct Inner {
    revision: String,
    digest: String,
    /// The analysed engine every prepared query clones from; shared, since
    /// a clone of a regorus engine costs kilobytes. Dropped by `trim` (it is
    /// the largest part of a small policy, and the RVM does not need it to
    /// decide) and rebuilt from `modules` on the next need.
    template: ArcSwapOption<Engine>,
    /// How many times `template` was asked for (`engine_uses`).
    template_uses: AtomicU64,
    /// Whether each of `modules` is Rego v0, to rebuild `template`.
    modules_v0: Vec<bool>,
    data: Value,
    options: CompileOptions,
    calls: BTreeSet<String>,
    /// Path and text of each module, for listing (OPA's policy API).
    modules: Vec<(String, Arc<str>)>,
    /// Where rules are defined, as paths under `data`.
    rule_paths: BTreeSet<Vec<String>>,
    deterministic: bool,
    approx_bytes: usize,
    /// `approx_bytes` once `trim` has dropped the engine and evaluators.
    approx_trimmed_bytes: usize,
    queries: ArcSwap<HashMap<QueryPath, Arc<QuerySlot>>>,
    prepared_builds: AtomicU64,
    labels: tenet_bundle::BundleLabels,
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

/// How many RVM instructions run between the dispatch loop's memory checks.
const MEMORY_CHECK_INTERVAL: NonZeroU32 = NonZeroU32::new(16).expect("16 is not zero");

fn timer(limits: &EvalLimits) -> ExecutionTimerConfig {
    ExecutionTimerConfig {
        limit: limits.deadline,
        check_interval: NonZeroU32::new(limits.deadline_check_interval).unwrap_or(NonZeroU32::MIN),
    }
}

fn builtin_limits(limits: &EvalLimits) -> BuiltinLimits {
    let size = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
    BuiltinLimits {
        max_elements: size(limits.max_builtin_elements),
        max_string_bytes: size(limits.max_builtin_string_bytes),
    }
}

fn memory_budget(limits: &EvalLimits) -> Option<MemoryBudgetConfig> {
    NonZeroU64::new(limits.max_memory_bytes).map(|limit| MemoryBudgetConfig { limit })
}

fn compile_error(file: &str, e: impl std::fmt::Display) -> PolicyError {
    PolicyError::Compile {
        file: file.to_string(),
        message: e.to_string(),
    }
}

/// An analysed engine for `modules` and `data`: tenet's extensions, the
/// limits of `options`, and regorus's analysis run (so type errors surface
/// here, and clones of the engine are cheap).
fn build_engine(
    modules: &[(String, Arc<str>)],
    v0: &[bool],
    data: &Value,
    options: &CompileOptions,
) -> Result<Engine, PolicyError> {
    let mut engine = Engine::new();
    engine.set_strict_builtin_errors(false);
    engine.set_gather_prints(true);
    engine.set_execution_timer_config(timer(&options.limits));
    extensions::register(&mut engine, false).map_err(|e| compile_error("<extensions>", e))?;
    engine.set_builtin_limits(builtin_limits(&options.limits));
    engine.set_memory_budget_config(memory_budget(&options.limits));
    for ((path, source), v0) in modules.iter().zip(v0) {
        engine.set_rego_v0(*v0);
        engine
            .add_policy(path.clone(), source.to_string())
            .map_err(|e| compile_error(path, e))?;
    }
    engine.set_rego_v0(false);
    engine
        .add_data(data.clone())
        .map_err(|e| compile_error("data", e))?;
    engine
        .eval_query("true".to_string(), false)
        .map_err(|e| compile_error("bundle", e))?;
    Ok(engine)
}

impl Inner {
    /// The analysed engine, rebuilt if `trim` dropped it.
    fn template(&self) -> Result<Arc<Engine>, PolicyError> {
        self.template_uses.fetch_add(1, Ordering::Relaxed);
        if let Some(engine) = self.template.load_full() {
            return Ok(engine);
        }
        // Two callers may rebuild at once; the last one stored wins and both
        // are equivalent.
        let engine = Arc::new(
            build_engine(&self.modules, &self.modules_v0, &self.data, &self.options).map_err(
                |e| PolicyError::Internal {
                    message: format!("rebuilding the analysed engine: {e}"),
                },
            )?,
        );
        self.template.store(Some(engine.clone()));
        Ok(engine)
    }
}

impl Policy {
    /// Compiles `bundle`: parses every module, loads the data, registers
    /// tenet's extensions and bounded builtins, and type-checks the whole.
    pub fn compile(bundle: &Bundle, options: CompileOptions) -> Result<Self, PolicyError> {
        let modules: Vec<(String, Arc<str>)> = bundle
            .modules
            .iter()
            .map(|m| (m.path.clone(), Arc::from(m.source.as_str())))
            .collect();
        let modules_v0: Vec<bool> = bundle.modules.iter().map(|m| m.rego_version == 0).collect();
        let data: Value =
            serde_json::from_value(bundle.data.clone()).map_err(|e| compile_error("data", e))?;
        let data_json = bundle
            .data_files
            .iter()
            .map(|d| d.bytes as usize)
            .sum::<usize>();
        Self::assemble(
            Sources {
                revision: bundle.manifest.revision.clone(),
                digest: bundle.digest.clone(),
                modules,
                modules_v0,
                data,
                data_json,
                labels: bundle.manifest.labels(),
            },
            options,
        )
    }

    /// Compiles a policy from the parts an [`crate::PolicyImage`] carries
    /// (or a bundle provides).
    pub(crate) fn assemble(parts: Sources, options: CompileOptions) -> Result<Self, PolicyError> {
        let Sources {
            revision,
            digest,
            modules,
            modules_v0,
            data,
            data_json,
            labels,
        } = parts;
        let calls: BTreeSet<String> = modules
            .iter()
            .flat_map(|(_, source)| scan::calls(source))
            .collect();
        let source_bytes: usize = modules.iter().map(|(_, source)| source.len()).sum();
        let mut engine = build_engine(&modules, &modules_v0, &data, &options)?;
        let rule_paths = rule_paths(&mut engine);
        let deterministic = !NONDETERMINISTIC.iter().any(|b| calls.contains(*b));
        Ok(Self {
            inner: Arc::new(Inner {
                revision,
                digest,
                template: ArcSwapOption::from_pointee(engine),
                template_uses: AtomicU64::new(0),
                modules_v0,
                data,
                options,
                calls,
                modules,
                rule_paths,
                deterministic,
                // Calibrated on the payments example (10,000 tenants, one
                // bundle each: 203 KiB RSS per tenant, BENCHMARKS.md): data
                // as regorus values ~7x its JSON, the analysed and pooled
                // engines ~24x the Rego source, plus a fixed 64 KiB.
                approx_bytes: data_json * 7 + source_bytes * 24 + 64 * 1024,
                // Calibrated on trimmed tenants, compiled patterns dropped
                // (BENCHMARKS.md: 17.2 KiB for a ~650-byte RBAC bundle,
                // 54.7 KiB for payments): the compiled RVM queries ~7x the
                // Rego source, plus a fixed 12 KiB.
                approx_trimmed_bytes: data_json * 7 + source_bytes * 7 + 12 * 1024,
                queries: ArcSwap::from_pointee(HashMap::new()),
                prepared_builds: AtomicU64::new(0),
                labels,
            }),
        })
    }

    /// The labels the bundle's manifest gives its tenant
    /// (`metadata.labels`; none for a policy compiled from an image).
    pub fn bundle_labels(&self) -> &BTreeMap<String, String> {
        &self.inner.labels.labels
    }

    /// How many labels the manifest offered that were refused.
    pub fn refused_labels(&self) -> usize {
        self.inner.labels.refused
    }

    /// What compiled this policy, to compile it again elsewhere (a worker
    /// process): module texts, data, limits and evaluator.
    pub fn image(&self) -> crate::PolicyImage {
        let inner = &self.inner;
        crate::PolicyImage {
            revision: inner.revision.clone(),
            digest: inner.digest.clone(),
            modules: inner
                .modules
                .iter()
                .zip(&inner.modules_v0)
                .map(|((path, source), v0)| crate::image::ImageModule {
                    path: path.clone(),
                    source: source.to_string(),
                    rego_v0: *v0,
                })
                .collect(),
            limits: inner.options.limits.clone(),
            evaluator: inner.options.evaluator,
        }
    }

    /// The data document as JSON text (for [`Policy::image`]).
    pub fn data_json(&self) -> Result<Vec<u8>, PolicyError> {
        serde_json::to_vec(&self.inner.data).map_err(|e| PolicyError::Internal {
            message: format!("serializing the data document: {e}"),
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

    /// Rough heap size of this policy, for memory budgets: smaller while
    /// it is trimmed (see [`Policy::trim`]).
    pub fn approx_bytes(&self) -> usize {
        if self.inner.template.load().is_some() {
            self.inner.approx_bytes
        } else {
            self.inner.approx_trimmed_bytes
        }
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

    /// Drops the idle evaluators pooled by every prepared query, and the
    /// analysed engine: a policy that is not deciding keeps only its
    /// compiled queries. The next decision on a path builds an evaluator
    /// again (the RVM's costs microseconds); the next new path, fallback or
    /// located error report rebuilds the engine (a compile).
    pub fn trim(&self) {
        self.inner.template.store(None);
        for slot in self.inner.queries.load().values() {
            if let Some(query) = slot.ready.get() {
                query.trim();
            }
        }
    }

    /// How many times the analysed engine has been asked for (a new path
    /// prepared, an interpreter fallback built, a located error report):
    /// a caller that sees this number unchanged for a while may
    /// [`Policy::drop_engine`].
    pub fn engine_uses(&self) -> u64 {
        self.inner.template_uses.load(Ordering::Relaxed)
    }

    /// Drops the analysed engine (not the evaluators). A policy that keeps
    /// deciding on paths it has prepared for the RVM does not need it, and
    /// it is most of a small policy's memory; prepared queries on the
    /// interpreter keep their own reference, so this never slows them. The
    /// next need rebuilds it (a compile). Returns whether it was there.
    pub fn drop_engine(&self) -> bool {
        self.inner.template.swap(None).is_some()
    }

    /// Evaluators pooled by this policy's prepared queries, ready for the
    /// next decisions.
    pub fn idle_evaluators(&self) -> usize {
        self.inner
            .queries
            .load()
            .values()
            .filter_map(|slot| slot.ready.get())
            .map(|query| query.idle_evaluators())
            .sum()
    }

    /// Compiled regex and glob patterns this policy holds (its pattern
    /// cache; `trim` empties it).
    pub fn cached_patterns(&self) -> usize {
        let queries = self.inner.queries.load();
        let Some(query) = queries.values().find_map(|slot| slot.ready.get()) else {
            return 0;
        };
        query.pattern_cache.regex_len() + query.pattern_cache.glob_len()
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
        let template = inner.template()?;
        let mut engine = Engine::clone(&template);
        let pool_size = crate::pool::default_capacity();
        let mut fallback = None;
        let kind = match engine.compile_with_entrypoint(&rego.as_str().into()) {
            Ok(compiled) => {
                let program = match inner.options.evaluator {
                    Evaluator::Interpreter => None,
                    Evaluator::Vm => {
                        match Compiler::compile_from_policy(&compiled, &[rego.as_str()]) {
                            Ok(p) => Some(p),
                            Err(e) => {
                                tracing::debug!(path = %rego, error = %e, "RVM cannot compile entrypoint; using the interpreter");
                                fallback = Some(format!("the RVM compiler refuses it: {e}"));
                                None
                            }
                        }
                    }
                };
                match program {
                    Some(program) => Kind::Vm {
                        program,
                        data: inner.data.clone(),
                        pool: Pool::new(pool_size),
                        policy: Arc::downgrade(&self.inner),
                    },
                    None => Kind::Rule {
                        template: template.clone(),
                        pool: Pool::new(pool_size),
                    },
                }
            }
            // Not a rule: a package or data path, evaluated as a query.
            Err(_) => {
                if inner.options.evaluator == Evaluator::Vm {
                    fallback = Some("not a rule: package and data paths run as queries".into());
                }
                Kind::Query {
                    template: template.clone(),
                    pool: Pool::new(pool_size),
                }
            }
        };
        Ok(PreparedQuery {
            rego,
            tail,
            kind,
            fallback,
            limits: inner.options.limits.clone(),
            pattern_cache: template.get_pattern_cache(),
        })
    }
}

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
