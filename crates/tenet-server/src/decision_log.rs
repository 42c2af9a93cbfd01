//! Decision logging for the REST and gRPC front ends: a fresh decision id
//! per decision, the console log (`decision_logs.console`), and the hand
//! over to the decision-log recorder (`decision_logs.service`), whose
//! worker applies the tenant's own `system.log.drop` and `system.log.mask`
//! rules through [`HostLogRules`]. Nothing here waits: the request path
//! only clones what the event needs.

use crate::api::AppState;
use serde_json::Value;
use std::time::SystemTime;
use tenet::{Host, Input};
use tenet_telemetry::{Decided, LogRules, LoggedInput, RuleEvaluator, RuleFuture};

/// With decision logging on, logs `decision` under a fresh decision id and
/// returns the id: to the console, and to the recorder with its input
/// (`input` is called only then).
pub(crate) fn decision_log(
    state: &AppState,
    tenant: &str,
    path: &str,
    decision: &tenet::Decision,
    input: impl FnOnce() -> Option<LoggedInput>,
) -> Option<String> {
    if !state.decision_log && state.decision_logs.is_none() {
        return None;
    }
    let id = uuid::Uuid::new_v4().to_string();
    state
        .recent
        .add(tenant, &id, &slash_path(path), decision.result.as_ref());
    if state.decision_log {
        tracing::info!(
            target: "tenet::decision_log",
            decision_id = %id,
            tenant,
            path,
            revision = %decision.revision,
            result = %decision.result.as_ref().map_or_else(|| "undefined".to_string(), |v| v.to_string()),
            "decision"
        );
    }
    if let Some(recorder) = &state.decision_logs {
        recorder.record(Decided {
            tenant: tenant.to_string(),
            decision_id: id.clone(),
            path: slash_path(path),
            revision: decision.revision.to_string(),
            input: input(),
            result: decision.result.clone(),
            at: SystemTime::now(),
        });
    }
    Some(id)
}

/// An engine input, converted to JSON on the recorder's worker.
pub(crate) fn deferred(input: &Input) -> Option<LoggedInput> {
    let input = input.clone();
    Some(LoggedInput::Deferred(Box::new(move || input.to_json())))
}

/// OPA's form of a decision path: slash-separated, without `data`.
pub fn slash_path(path: &str) -> String {
    tenet::QueryPath::parse(path).map_or_else(|_| path.to_string(), |p| p.components().join("/"))
}

/// A tenant's decision-log rules, evaluated by the host like any decision
/// (with the event as input).
#[derive(Debug, Clone)]
pub struct HostLogRules(pub Host);

impl RuleEvaluator for HostLogRules {
    fn labels(&self, tenant: &str) -> serde_json::Map<String, Value> {
        self.0
            .labels(tenant)
            .map(|l| {
                l.iter()
                    .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                    .collect()
            })
            .unwrap_or_default()
    }

    fn rules(&self, tenant: &str) -> LogRules {
        LogRules {
            drop: self.0.defines_rule(tenant, &["system", "log", "drop"]),
            mask: self.0.defines_rule(tenant, &["system", "log", "mask"]),
        }
    }

    fn evaluate(&self, tenant: &str, path: &'static str, document: Value) -> RuleFuture {
        let host = self.0.clone();
        let tenant = tenant.to_string();
        Box::pin(async move {
            let input = Input::from_value(&document, &host.config().eval_limits)
                .map_err(|e| e.to_string())?;
            host.decide(&tenant, path, &input)
                .await
                .map(|d| d.result)
                .map_err(|e| e.to_string())
        })
    }
}
