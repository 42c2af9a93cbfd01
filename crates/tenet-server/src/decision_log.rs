//! Decision logging for the REST and gRPC front ends: a fresh decision id
//! per decision, the console log (`decision_logs.console`), and the hand
//! over to the decision-log recorder (`decision_logs.service`), whose
//! worker applies the tenant's own `system.log.drop` and `system.log.mask`
//! rules through [`HostLogRules`]. Nothing here waits: the request path
//! only clones what the event needs.

use crate::api::AppState;
use axum::extract::ConnectInfo;
use serde_json::Value;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Instant, SystemTime};
use tenet::{Host, Input};
use tenet_telemetry::{Decided, LogRules, LoggedInput, RuleEvaluator, RuleFuture};

/// What a decision-log event says of the request it answered.
#[derive(Debug, Clone)]
pub(crate) struct RequestInfo {
    remote: Option<SocketAddr>,
    req_id: u64,
    started: Instant,
}

tokio::task_local! {
    /// The request the current task answers (set by [`RequestInfoLayer`]).
    static REQUEST: RequestInfo;
}

/// Sequence numbers of requests (OPA's `req_id`).
static NEXT_REQ_ID: AtomicU64 = AtomicU64::new(1);

/// Middleware (with decision logs on): numbers each request and keeps its
/// client address and start for the events its decisions log. A tower
/// layer rather than `axum::middleware::from_fn`, which clones the route
/// and boxes two futures for every request.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RequestInfoLayer;

impl<S> tower::Layer<S> for RequestInfoLayer {
    type Service = RequestInfoService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequestInfoService(inner)
    }
}

/// The service [`RequestInfoLayer`] wraps a route in.
#[derive(Debug, Clone)]
pub(crate) struct RequestInfoService<S>(S);

impl<S, B> tower::Service<axum::http::Request<B>> for RequestInfoService<S>
where
    S: tower::Service<axum::http::Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = tokio::task::futures::TaskLocalFuture<RequestInfo, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, request: axum::http::Request<B>) -> Self::Future {
        let info = RequestInfo {
            remote: request
                .extensions()
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0),
            req_id: NEXT_REQ_ID.fetch_add(1, Ordering::Relaxed),
            started: Instant::now(),
        };
        REQUEST.scope(info, self.0.call(request))
    }
}

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
    let (slash, at) = (slash_path(path), SystemTime::now());
    state
        .recent
        .add(tenant, &id, &slash, decision.result.as_ref(), at);
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
        let request = REQUEST.try_with(RequestInfo::clone).ok();
        recorder.record(Decided {
            requested_by: request
                .as_ref()
                .and_then(|r| r.remote)
                .map(|a| a.to_string()),
            req_id: request.as_ref().map(|r| r.req_id),
            metrics: request
                .map(|r| {
                    let ns = u64::try_from(r.started.elapsed().as_nanos()).unwrap_or(u64::MAX);
                    vec![("timer_server_handler_ns", ns)]
                })
                .unwrap_or_default(),
            tenant: tenant.to_string(),
            decision_id: id.clone(),
            path: slash,
            revision: decision.revision.to_string(),
            input: input(),
            result: decision.result.clone(),
            at,
        });
    }
    Some(id)
}

/// An engine input, encoded on the recorder's worker (straight to JSON
/// text when the tenant has no log rules or masks).
pub(crate) fn deferred(input: &Input) -> Option<LoggedInput> {
    Some(LoggedInput::Document(Box::new(LoggedEngineInput(
        input.clone(),
    ))))
}

/// An engine input as the decision log takes it.
pub(crate) struct LoggedEngineInput(pub(crate) Input);

impl tenet_telemetry::InputDocument for LoggedEngineInput {
    fn to_value(&self) -> Option<Value> {
        self.0.to_json()
    }

    fn write_json(&self, out: &mut Vec<u8>) -> bool {
        let mark = out.len();
        match self.0.write_json(out) {
            Some(Ok(())) => true,
            // An engine value that JSON cannot carry is logged without it,
            // as `to_value` leaves it out.
            _ => {
                out.truncate(mark);
                false
            }
        }
    }
}

/// OPA's form of a decision path: slash-separated, without `data`.
pub fn slash_path(path: &str) -> String {
    // The common form, `data.a.b_c`, without parsing it (this runs for
    // every logged decision); anything else (brackets, quotes, spaces)
    // through the parser.
    if let Some(rest) = path.strip_prefix("data.") {
        let plain = rest
            .split('.')
            .all(|c| !c.is_empty() && c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'));
        if plain {
            return rest.replace('.', "/");
        }
    }
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
        static PATHS: std::sync::LazyLock<[Vec<String>; 2]> = std::sync::LazyLock::new(|| {
            ["drop", "mask"].map(|rule| vec!["system".into(), "log".into(), rule.into()])
        });
        let [drop, mask] = self.0.defines_rules(tenant, [&PATHS[0], &PATHS[1]]);
        LogRules { drop, mask }
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

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn slash_paths_are_those_the_parser_gives() {
        for (path, want) in [
            ("data.payments.authz.allow", "payments/authz/allow"),
            ("data.a_1.B2", "a_1/B2"),
            ("data", ""),
            ("data.a[\"b-c\"].d", "a/b-c/d"),
            ("data.a..b", "data.a..b"),
            ("data.a.", "data.a."),
            ("data.é", "data.é"),
            ("payments/authz", "payments/authz"),
        ] {
            assert_eq!(slash_path(path), want, "{path}");
            let parsed = tenet::QueryPath::parse(path)
                .map_or_else(|_| path.to_string(), |p| p.components().join("/"));
            assert_eq!(slash_path(path), parsed, "{path}");
        }
    }
}
