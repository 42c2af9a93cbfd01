//! One decision: the tenant's instance, its active revision, the decision
//! cache, then the evaluation, on the evaluation pool (fair shares) or,
//! for an isolated tenant, in its worker process (the host's `Offload`);
//! counted in the instance's tally and traced as a `decision` span. The
//! registry and the instances' lifecycle are host.rs.

use crate::host::Decision;
use crate::instance::{Activation, Instance};
use crate::pool::RunError;
use crate::{Host, HostError, IsolationLevel};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tenet_policy::{Input, PolicyError, QueryPath};

impl Host {
    /// Decides `path` (`data.a.b` or `a/b`) for `tenant` with `input`.
    ///
    /// Takes no lock. An unknown tenant is created and loaded when
    /// `on_demand` is set, else refused; an instance that has never
    /// activated is waited for up to `startup_timeout`.
    pub async fn decide(
        &self,
        tenant: &str,
        path: &str,
        input: &Input,
    ) -> Result<Decision, HostError> {
        self.decide_in_session(tenant, None, path, input).await
    }

    /// [`Host::decide`] for a request that carries a session key: at
    /// isolation level `session` the evaluation runs in that session's
    /// worker; at other levels the key changes nothing.
    pub async fn decide_in_session(
        &self,
        tenant: &str,
        session: Option<&str>,
        path: &str,
        input: &Input,
    ) -> Result<Decision, HostError> {
        let instance = self.inner.requested(tenant)?;
        let started = std::time::Instant::now();
        // Debug level: off (and costing only a level check) unless a
        // layer asks for it, as the trace exporter does.
        let span = tracing::debug_span!(
            target: "tenet::decision_span",
            "decision",
            tenant = %instance.tenant,
            labels = ?instance.labels.load(),
            path,
            revision = tracing::field::Empty,
            outcome = tracing::field::Empty,
        );
        let decision = tracing::Instrument::instrument(
            self.decide_on(&instance, session, path, input),
            span.clone(),
        )
        .await;
        let outcome = decision
            .as_ref()
            .ok()
            .map(|d| crate::Outcome::of(d.result.as_ref()));
        if !span.is_disabled() {
            span.record(
                "outcome",
                match &decision {
                    Ok(_) => outcome.map_or("", crate::Outcome::as_str),
                    Err(e) => e.kind(),
                },
            );
            if let Ok(d) = &decision {
                span.record("revision", &*d.revision);
            }
        }
        tally(&instance, &decision, outcome, started.elapsed());
        decision
    }

    /// `instance`'s active revision, marking the instance used; waits for
    /// its first activation.
    pub(crate) async fn activation_of(
        &self,
        instance: &Instance,
    ) -> Result<Arc<Activation>, HostError> {
        let inner = &self.inner;
        instance.last_used.store(inner.now(), Ordering::Relaxed);
        // With on-demand loading, traffic itself keeps an instance alive,
        // whoever created it.
        if inner.config.on_demand && !instance.on_demand.load(Ordering::Relaxed) {
            instance.on_demand.store(true, Ordering::Relaxed);
        }
        let current = instance.current();
        match current.as_ref() {
            Some(activation) => Ok(activation.clone()),
            None => {
                drop(current);
                inner.wait_ready(instance).await
            }
        }
    }

    async fn decide_on(
        &self,
        instance: &Arc<Instance>,
        session: Option<&str>,
        path: &str,
        input: &Input,
    ) -> Result<Decision, HostError> {
        let inner = &self.inner;
        let instance = instance.clone();
        let activation = self.activation_of(&instance).await?;
        let query = QueryPath::parse(path).map_err(|e| evaluation_failed(&instance, e))?;
        let cache_key = match cached(&instance, &activation, path, input) {
            Ok(hit) => return Ok(hit),
            Err(key) => key,
        };
        let offload = inner.offload.get();
        if let Some(offload) = offload {
            let level = instance.isolation();
            if level != IsolationLevel::None {
                let request = crate::OffloadRequest {
                    tenant: instance.tenant.clone(),
                    level,
                    session: level.session_key(session),
                    policy: activation.policy.clone(),
                    path: query,
                    input: input.clone(),
                };
                let evaluation = offload.evaluate(request).await;
                return crate::offloaded::decided(&instance, &activation, evaluation, cache_key);
            }
        }
        // Timed only for adaptive isolation (the tally times the whole decision).
        let timed = offload.is_some_and(|o| o.wants_strikes());
        let report = |(decision, took): (Result<Decision, HostError>, Option<Duration>)| {
            if let (Some(offload), Some(took)) = (offload, took) {
                crate::offloaded::strike(offload.as_ref(), &instance.tenant, &decision, took);
            }
            decision
        };
        if inner.config.eval_inline {
            let start = timed.then(std::time::Instant::now);
            let decision = evaluate(&instance, &activation, &query, input, cache_key);
            return report((decision, start.map(|s| s.elapsed())));
        }
        let mut cache_key = cache_key;
        // A cheap tenant evaluates right here, within the inline budget
        // (see pool/mod.rs); cut off by it, it evaluates again on the pool.
        if let Some(turn) = inner.pool.inline_turn(&instance.lane) {
            let start = timed.then(std::time::Instant::now);
            let budget = inner.pool.inline_budget();
            match evaluate_within(&instance, &activation, &query, input, cache_key, budget) {
                Evaluated::Decided(decision) => {
                    drop(turn);
                    return report((decision, start.map(|s| s.elapsed())));
                }
                Evaluated::CutOff(key) => {
                    cache_key = key;
                    turn.overran();
                }
            }
        }
        let input = input.clone();
        let job = {
            let (instance, activation) = (instance.clone(), activation.clone());
            move || {
                let start = timed.then(std::time::Instant::now);
                let decision = evaluate(&instance, &activation, &query, &input, cache_key);
                (decision, start.map(|s| s.elapsed()))
            }
        };
        match inner.pool.run(&instance.lane, job).await {
            Ok(decision) => report(decision),
            Err(RunError::Busy { pending }) => {
                instance.decision_errors.fetch_add(1, Ordering::Relaxed);
                Err(HostError::TooManyRequests {
                    tenant: instance.tenant.to_string(),
                    pending,
                })
            }
            Err(RunError::Closed) => Err(evaluation_failed(
                &instance,
                PolicyError::Internal {
                    message: "the evaluation pool has shut down".into(),
                },
            )),
        }
    }
}

pub(crate) fn evaluation_failed(instance: &Instance, source: PolicyError) -> HostError {
    instance.decision_errors.fetch_add(1, Ordering::Relaxed);
    HostError::Policy {
        tenant: instance.tenant.to_string(),
        source,
    }
}

/// A decision cache key: the path and the input's key.
pub(crate) type CacheKey = Option<(Arc<str>, Vec<u8>)>;

/// The cached decision for `path` and `input`, or the key to cache the
/// evaluated one under (`None` when the activation does not cache).
pub(crate) fn cached(
    instance: &Instance,
    activation: &Activation,
    path: &str,
    input: &Input,
) -> Result<Decision, CacheKey> {
    let Some(cache) = &activation.cache else {
        return Err(None);
    };
    let Some(key) = input.cache_key() else {
        return Err(None);
    };
    let path = Arc::<str>::from(path);
    match cache.get(&path, &key) {
        Some(hit) => {
            instance.decisions.fetch_add(1, Ordering::Relaxed);
            instance.cache_hits.fetch_add(1, Ordering::Relaxed);
            Ok(Decision {
                result: hit.as_ref().clone(),
                revision: activation.revision.clone(),
                cached: true,
                evaluator: None,
            })
        }
        None => Err(Some((path, key))),
    }
}

/// Counts a finished decision of `instance` in its tally.
pub(crate) fn tally(
    instance: &Instance,
    decision: &Result<Decision, HostError>,
    outcome: Option<crate::Outcome>,
    took: Duration,
) {
    let deadline = matches!(
        decision,
        Err(HostError::Policy {
            source: PolicyError::Timeout { .. } | PolicyError::InstructionLimit { .. },
            ..
        })
    );
    instance.tally.decided(outcome, deadline, took);
}

enum Evaluated {
    Decided(Result<Decision, HostError>),
    /// Cut off by the inline budget, not by the policy's deadline: to be
    /// evaluated again, on the pool.
    CutOff(CacheKey),
}

/// Evaluates (a cache miss) and fills the cache.
fn evaluate(
    instance: &Instance,
    activation: &Activation,
    query: &QueryPath,
    input: &Input,
    cache_key: CacheKey,
) -> Result<Decision, HostError> {
    let evaluation = activation
        .policy
        .query(query)
        .and_then(|prepared| prepared.evaluate(input));
    finish(instance, activation, evaluation, cache_key)
}

/// [`evaluate`] within `budget` or the policy's deadline, whichever is
/// shorter; cut off by the budget, it is handed back to run elsewhere.
fn evaluate_within(
    instance: &Instance,
    activation: &Activation,
    query: &QueryPath,
    input: &Input,
    cache_key: CacheKey,
    budget: Duration,
) -> Evaluated {
    let prepared = match activation.policy.query(query) {
        Ok(prepared) => prepared,
        Err(e) => return Evaluated::Decided(finish(instance, activation, Err(e), cache_key)),
    };
    if budget >= prepared.deadline() {
        let evaluation = prepared.evaluate(input);
        return Evaluated::Decided(finish(instance, activation, evaluation, cache_key));
    }
    match prepared.evaluate_within(input, budget) {
        Err(PolicyError::Timeout { limit }) if limit == budget => Evaluated::CutOff(cache_key),
        evaluation => Evaluated::Decided(finish(instance, activation, evaluation, cache_key)),
    }
}

fn finish(
    instance: &Instance,
    activation: &Activation,
    evaluation: Result<tenet_policy::Evaluation, PolicyError>,
    cache_key: CacheKey,
) -> Result<Decision, HostError> {
    instance.tally.evaluations.fetch_add(1, Ordering::Relaxed);
    evaluation
        .map(|evaluation| answered(instance, activation, evaluation, cache_key))
        .map_err(|e| evaluation_failed(instance, e))
}

/// An evaluation's decision (here or in a worker): counted, and cached
/// when the activation caches.
pub(crate) fn answered(
    instance: &Instance,
    activation: &Activation,
    evaluation: tenet_policy::Evaluation,
    cache_key: Option<(Arc<str>, Vec<u8>)>,
) -> Decision {
    instance.decisions.fetch_add(1, Ordering::Relaxed);
    if let (Some(cache), Some((p, i))) = (&activation.cache, cache_key) {
        cache.insert(p, i, Arc::new(evaluation.result.clone()));
    }
    Decision {
        result: evaluation.result,
        revision: activation.revision.clone(),
        cached: false,
        evaluator: Some(evaluation.evaluator),
    }
}
