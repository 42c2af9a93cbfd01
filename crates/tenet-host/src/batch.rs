//! Many decisions of one tenant and path at once ([`Host::decide_batch`]),
//! for the batch APIs. Each input is decided, counted and cached as
//! [`Host::decide_in_session`] would decide it alone; what a batch adds is
//! that the inputs of a tenant in a worker process that the cache does not
//! answer go to the worker together, in one request, instead of one round
//! trip each. In-process tenants decide one input after the other. No
//! evaluation runs here.

use crate::decide::{cached, evaluation_failed, tally, CacheKey};
use crate::host::Decision;
use crate::instance::Instance;
use crate::{Host, HostError, IsolationLevel, Offload, OffloadBatch, OffloadError};
use std::sync::Arc;
use std::time::Instant;
use tenet_policy::{Input, QueryPath};

impl Host {
    /// Decides `path` for each of `inputs`, answering in order. One input's
    /// failure does not fail the others; a failure of the tenant itself
    /// (an invalid or unknown tenant, a revision that never activated, an
    /// invalid path) fails the whole batch.
    pub async fn decide_batch(
        &self,
        tenant: &str,
        session: Option<&str>,
        path: &str,
        inputs: &[Input],
    ) -> Result<Vec<Result<Decision, HostError>>, HostError> {
        let instance = self.inner.requested(tenant)?;
        let offload = self
            .inner
            .offload
            .get()
            .filter(|_| instance.isolation() != IsolationLevel::None);
        let Some(offload) = offload else {
            // What fails the tenant fails the batch, here as in a worker.
            self.activation_of(&instance).await?;
            QueryPath::parse(path).map_err(|e| evaluation_failed(&instance, e))?;
            let mut decisions = Vec::with_capacity(inputs.len());
            for input in inputs {
                // Decisions of an active tenant never wait: without this a
                // large batch would hold its async worker thread (and every
                // request queued on it) until its last input.
                tokio::task::yield_now().await;
                decisions.push(self.decide_in_session(tenant, session, path, input).await);
            }
            return Ok(decisions);
        };
        let started = Instant::now();
        let span = tracing::debug_span!(
            target: "tenet::decision_span",
            "decision_batch",
            tenant = %instance.tenant,
            labels = ?instance.labels.load(),
            path,
            inputs = inputs.len(),
        );
        let decisions = tracing::Instrument::instrument(
            self.offload_batch(&instance, offload.as_ref(), session, path, inputs),
            span,
        )
        .await?;
        // The worker does not time its inputs one by one: each is counted
        // at the batch's mean.
        let each = started
            .elapsed()
            .checked_div(u32::try_from(inputs.len()).unwrap_or(u32::MAX))
            .unwrap_or_default();
        for decision in &decisions {
            let outcome = decision
                .as_ref()
                .ok()
                .map(|d| crate::Outcome::of(d.result.as_ref()));
            tally(&instance, decision, outcome, each);
        }
        Ok(decisions)
    }

    async fn offload_batch(
        &self,
        instance: &Arc<Instance>,
        offload: &dyn Offload,
        session: Option<&str>,
        path: &str,
        inputs: &[Input],
    ) -> Result<Vec<Result<Decision, HostError>>, HostError> {
        let activation = self.activation_of(instance).await?;
        let query = QueryPath::parse(path).map_err(|e| evaluation_failed(instance, e))?;
        let mut decisions: Vec<Option<Result<Decision, HostError>>> =
            Vec::with_capacity(inputs.len());
        let (mut keys, mut misses): (Vec<CacheKey>, Vec<Input>) = (Vec::new(), Vec::new());
        for input in inputs {
            match cached(instance, &activation, path, input) {
                Ok(hit) => decisions.push(Some(Ok(hit))),
                Err(key) => {
                    decisions.push(None);
                    keys.push(key);
                    misses.push(input.clone());
                }
            }
        }
        if !misses.is_empty() {
            let level = instance.isolation();
            let batch = OffloadBatch {
                tenant: instance.tenant.clone(),
                level,
                session: level.session_key(session),
                policy: activation.policy.clone(),
                path: query,
                inputs: misses,
            };
            let mut answers = offload.evaluate_batch(batch).await.into_iter();
            let mut keys = keys.into_iter();
            for slot in decisions.iter_mut().filter(|d| d.is_none()) {
                let answer = answers.next().unwrap_or_else(|| {
                    Err(OffloadError::Unavailable {
                        reason: "the worker answered fewer inputs than it was sent".into(),
                    })
                });
                let key = keys.next().flatten();
                *slot = Some(crate::offloaded::decided(
                    instance,
                    &activation,
                    answer,
                    key,
                ));
            }
        }
        Ok(decisions.into_iter().flatten().collect())
    }
}
