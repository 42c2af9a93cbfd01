//! The native `tenet.v1.Decisions` service (proto/tenet/v1/decisions.proto):
//! `Decide`, `BatchDecide`, the bidirectional `DecideStream`, Topaz-style
//! `Is`, and the AuthZEN and PORC calls. Each call's token is checked by
//! the embedder's rule, each decision is the [`tenet::Host`]'s (on its
//! evaluation pool) and is logged as a REST decision is; failures map to
//! status codes in `status`, documents convert in `documents`, the AuthZEN
//! and PORC mappings are `authzen` and `porc`. No sockets here (`server`).

use crate::authzen::{self, AuthzenConfig};
use crate::config::DecisionsConfig;
use crate::documents;
use crate::front::{Authorize, Front};
use crate::pb::decisions_server::Decisions;
use crate::pb::{
    outcome, BatchDecideRequest, BatchDecideResponse, DecideRequest, Decision, Document, Error,
    IsDecision, IsRequest, IsResponse, JsonRequest, JsonResponse, Outcome,
};
use crate::porc::{self, PorcConfig};
use crate::status::{host_status, http_status};
use futures_util::{Stream, StreamExt};
use serde_json::{Map, Value};
use std::pin::Pin;
use std::sync::Arc;
use tenet::Input;
use tenet_telemetry::LoggedInput;
use tonic::{Request, Response, Status, Streaming};

/// The `tenet.v1.Decisions` service: cheap to clone.
#[derive(Clone, Debug)]
pub struct DecisionService {
    front: Front,
    config: Arc<Settings>,
}

#[derive(Debug, Default, Clone)]
struct Settings {
    limits: DecisionsConfig,
    authzen: AuthzenConfig,
    porc: PorcConfig,
}

impl DecisionService {
    /// The service for `host`, open to every caller until
    /// [`DecisionService::with_authorize`]; AuthZEN and PORC at their
    /// default paths until configured.
    pub fn new(host: tenet::Host, config: DecisionsConfig) -> Self {
        Self {
            front: Front::new(host),
            config: Arc::new(Settings {
                limits: config,
                ..Settings::default()
            }),
        }
    }

    /// Where AuthZEN evaluations decide (the REST endpoints' settings).
    pub fn with_authzen(mut self, authzen: AuthzenConfig) -> Self {
        Arc::make_mut(&mut self.config).authzen = authzen;
        self
    }

    /// Where PORC requests decide.
    pub fn with_porc(mut self, porc: PorcConfig) -> Self {
        Arc::make_mut(&mut self.config).porc = porc;
        self
    }

    /// Calls must pass `authorize`, else `UNAUTHENTICATED`.
    pub fn with_authorize(mut self, authorize: Authorize) -> Self {
        self.front.set_authorize(authorize);
        self
    }

    /// Hands every decision to `recorder` (the decision-log uploads).
    pub fn with_decision_logs(mut self, recorder: tenet_telemetry::Recorder) -> Self {
        self.front.set_recorder(recorder);
        self
    }

    /// Decisions of tenants at isolation level `session` run in the
    /// worker of the session key named `name` (the REST API's
    /// `isolation.session_header`): a call's metadata entry of that name.
    pub fn with_session_key(mut self, name: &str) -> Self {
        self.front.set_session_key(name);
        self
    }

    /// Logs every decision (tracing target `tenet::decision`).
    pub fn with_decision_log(mut self, on: bool) -> Self {
        self.front.console = on;
        self
    }

    fn limits(&self) -> &tenet::EvalLimits {
        &self.front.host.config().eval_limits
    }

    /// One decision: the tenant's policy at `path` with `input`.
    async fn decide_one(
        &self,
        tenant: &str,
        session: Option<&str>,
        path: &str,
        input: Option<&Document>,
    ) -> Result<Decision, Status> {
        if tenant.is_empty() {
            return Err(Status::invalid_argument("tenant is required"));
        }
        if path.is_empty() {
            return Err(Status::invalid_argument("path is required"));
        }
        let (input, json) = documents::to_input(input, self.limits())?;
        self.decide_input(tenant, session, path, input, json).await
    }

    async fn decide_input(
        &self,
        tenant: &str,
        session: Option<&str>,
        path: &str,
        input: Input,
        json: Option<Value>,
    ) -> Result<Decision, Status> {
        let decided = self
            .front
            .host
            .decide_in_session(tenant, session, path, &input)
            .await;
        let decision = decided.map_err(|e| {
            tracing::debug!(%tenant, %path, error = %e, "decision failed");
            host_status(&e)
        })?;
        let decision_id = uuid::Uuid::new_v4().to_string();
        self.front
            .record(tenant, path, &decision_id, &decision, || {
                json.map(LoggedInput::Json).or_else(|| {
                    (!input.is_none()).then(|| {
                        let input = input.clone();
                        LoggedInput::Deferred(Box::new(move || input.to_json()))
                    })
                })
            });
        if self.front.console {
            tracing::info!(
                target: "tenet::decision",
                %tenant, %path, %decision_id, revision = %decision.revision,
                result = %decision.result.as_ref().map_or_else(|| "undefined".into(), |v| v.to_string()),
                "decision"
            );
        }
        Ok(to_decision(decision, decision_id))
    }

    async fn outcome(
        &self,
        defaults: (&str, &str),
        session: Option<&str>,
        item: DecideRequest,
    ) -> Outcome {
        let tenant = if item.tenant.is_empty() {
            defaults.0
        } else {
            &item.tenant
        };
        let path = if item.path.is_empty() {
            defaults.1
        } else {
            &item.path
        };
        let result = self
            .decide_one(tenant, session, path, item.input.as_ref())
            .await;
        Outcome {
            id: item.id,
            outcome: Some(match result {
                Ok(d) => outcome::Outcome::Decision(d),
                Err(s) => outcome::Outcome::Error(Error {
                    code: s.code() as i32,
                    message: s.message().to_string(),
                }),
            }),
        }
    }

    /// The JSON object of an AuthZEN or PORC call's body.
    fn body(&self, request: &JsonRequest) -> Result<Map<String, Value>, Status> {
        if request.tenant.is_empty() {
            return Err(Status::invalid_argument("tenant is required"));
        }
        match documents::to_json(request.body.as_ref(), self.limits())? {
            Some(Value::Object(o)) => Ok(o),
            _ => Err(Status::invalid_argument(
                "the request body must be a JSON object",
            )),
        }
    }

    /// One AuthZEN-shaped decision of `document` at `path`.
    async fn authzen_decide(
        &self,
        tenant: &str,
        session: Option<&str>,
        path: &str,
        document: Value,
    ) -> Result<Value, Status> {
        let input = Input::from_value(&document, self.limits())
            .map_err(|e| crate::status::policy_status(&e))?;
        let decision = self
            .decide_input(tenant, session, path, input, Some(document))
            .await?;
        authzen::answer(decision_json(&decision), path).map_err(|e| Status::internal(e.to_string()))
    }
}

fn to_decision(d: tenet::Decision, decision_id: String) -> Decision {
    match d.result {
        None => Decision {
            decision_id,
            undefined: true,
            revision: d.revision.to_string(),
            ..Decision::default()
        },
        Some(v) => Decision {
            decision_id,
            undefined: false,
            result_json: v.to_string().into_bytes(),
            result: Some(documents::json_to_value(&v)),
            revision: d.revision.to_string(),
        },
    }
}

/// A decision's result as JSON (`None`: undefined).
fn decision_json(d: &Decision) -> Option<Value> {
    if d.undefined {
        return None;
    }
    serde_json::from_slice(&d.result_json).ok()
}

fn json_response(v: &Value) -> JsonResponse {
    JsonResponse {
        json: v.to_string().into_bytes(),
        value: Some(documents::json_to_value(v)),
    }
}

type OutcomeStream = Pin<Box<dyn Stream<Item = Result<Outcome, Status>> + Send>>;

#[tonic::async_trait]
impl Decisions for DecisionService {
    async fn decide(&self, request: Request<DecideRequest>) -> Result<Response<Decision>, Status> {
        self.front.check_token(request.metadata())?;
        let session = self.front.session(request.metadata())?;
        let r = request.get_ref();
        self.decide_one(&r.tenant, session, &r.path, r.input.as_ref())
            .await
            .map(Response::new)
    }

    async fn batch_decide(
        &self,
        request: Request<BatchDecideRequest>,
    ) -> Result<Response<BatchDecideResponse>, Status> {
        self.front.check_token(request.metadata())?;
        let session = self.front.session(request.metadata())?.map(str::to_owned);
        let session = session.as_deref();
        let r = request.into_inner();
        let max = self.config.limits.max_batch;
        if r.items.len() > max {
            return Err(Status::invalid_argument(format!(
                "{} items in one batch; the limit is {max} (grpc.decisions.max_batch)",
                r.items.len()
            )));
        }
        let defaults = (r.tenant.as_str(), r.path.as_str());
        let outcomes = futures_util::stream::iter(r.items)
            .map(|item| self.outcome(defaults, session, item))
            .buffered(self.config.limits.max_in_flight.max(1))
            .collect()
            .await;
        Ok(Response::new(BatchDecideResponse { outcomes }))
    }

    type DecideStreamStream = OutcomeStream;

    async fn decide_stream(
        &self,
        request: Request<Streaming<DecideRequest>>,
    ) -> Result<Response<OutcomeStream>, Status> {
        self.front.check_token(request.metadata())?;
        let session: Option<Arc<str>> = self.front.session(request.metadata())?.map(Arc::from);
        let mut incoming = request.into_inner();
        let in_flight = self.config.limits.max_in_flight.max(1);
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Outcome, Status>>(in_flight);
        let permits = Arc::new(tokio::sync::Semaphore::new(in_flight));
        let service = self.clone();
        tokio::spawn(async move {
            loop {
                // At most `in_flight` decisions of this stream at once:
                // a fast sender waits here, and so does its stream.
                let Ok(permit) = permits.clone().acquire_owned().await else {
                    return;
                };
                let message = tokio::select! {
                    m = incoming.message() => m,
                    () = tx.closed() => return,
                };
                match message {
                    Ok(Some(item)) => {
                        let (service, tx) = (service.clone(), tx.clone());
                        let session = session.clone();
                        tokio::spawn(async move {
                            let outcome = service.outcome(("", ""), session.as_deref(), item).await;
                            let _ = tx.send(Ok(outcome)).await;
                            drop(permit);
                        });
                    }
                    Ok(None) => return,
                    Err(status) => {
                        let _ = tx.send(Err(status)).await;
                        return;
                    }
                }
            }
        });
        let outgoing = futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        });
        Ok(Response::new(Box::pin(outgoing)))
    }

    async fn is(&self, request: Request<IsRequest>) -> Result<Response<IsResponse>, Status> {
        self.front.check_token(request.metadata())?;
        let session = self.front.session(request.metadata())?;
        let r = request.get_ref();
        if r.tenant.is_empty() {
            return Err(Status::invalid_argument("tenant is required"));
        }
        let max = self.config.limits.max_batch;
        if r.decisions.is_empty() || r.decisions.len() > max {
            return Err(Status::invalid_argument(format!(
                "an Is call names 1 to {max} decisions (grpc.decisions.max_batch)"
            )));
        }
        let package = tenet::QueryPath::parse(&r.path)
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        let (input, json) = documents::to_input(r.input.as_ref(), self.limits())?;
        let mut decisions = Vec::with_capacity(r.decisions.len());
        for name in &r.decisions {
            if name.is_empty() || name.contains(['.', '/']) {
                return Err(Status::invalid_argument(format!(
                    "decision {name:?} is not a rule name"
                )));
            }
            let mut path = package.components().to_vec();
            path.push(name.clone());
            let path = path.join("/");
            let detail = self
                .decide_input(&r.tenant, session, &path, input.clone(), json.clone())
                .await?;
            decisions.push(IsDecision {
                decision: name.clone(),
                is: !detail.undefined && detail.result_json == b"true",
                detail: Some(detail),
            });
        }
        Ok(Response::new(IsResponse { decisions }))
    }

    async fn authzen_evaluation(
        &self,
        request: Request<JsonRequest>,
    ) -> Result<Response<JsonResponse>, Status> {
        self.front.check_token(request.metadata())?;
        let session = self.front.session(request.metadata())?;
        let r = request.get_ref();
        let body = self.body(r)?;
        let evaluation =
            authzen::evaluation(&body, &Map::new()).map_err(Status::invalid_argument)?;
        let path = self.config.authzen.path(&r.tenant).to_string();
        let answer = self
            .authzen_decide(&r.tenant, session, &path, Value::Object(evaluation))
            .await?;
        Ok(Response::new(json_response(&answer)))
    }

    async fn authzen_evaluations(
        &self,
        request: Request<JsonRequest>,
    ) -> Result<Response<JsonResponse>, Status> {
        self.front.check_token(request.metadata())?;
        let session = self.front.session(request.metadata())?;
        let r = request.get_ref();
        let body = self.body(r)?;
        let path = self.config.authzen.path(&r.tenant).to_string();
        let batch = authzen::batch(&body, self.config.authzen.max_evaluations)
            .map_err(Status::invalid_argument)?;
        let Some(batch) = batch else {
            let evaluation =
                authzen::evaluation(&body, &Map::new()).map_err(Status::invalid_argument)?;
            let answer = self
                .authzen_decide(&r.tenant, session, &path, Value::Object(evaluation))
                .await?;
            return Ok(Response::new(json_response(&answer)));
        };
        // A tenant that cannot decide fails the call, not each item.
        self.front
            .host
            .ready(&r.tenant)
            .await
            .map_err(|e| host_status(&e))?;
        let (tenant, path) = (r.tenant.as_str(), path.as_str());
        let answer = batch
            .run(&body, |evaluation| async move {
                self.authzen_decide(tenant, session, path, Value::Object(evaluation))
                    .await
                    .map_err(|s| (http_status(s.code()), s.message().to_string()))
            })
            .await;
        Ok(Response::new(json_response(&answer)))
    }

    async fn porc(&self, request: Request<JsonRequest>) -> Result<Response<JsonResponse>, Status> {
        self.front.check_token(request.metadata())?;
        let session = self.front.session(request.metadata())?;
        let r = request.get_ref();
        let body = self.body(r)?;
        let document =
            porc::input(&body, self.config.porc.input).map_err(Status::invalid_argument)?;
        let path = self.config.porc.path(&r.tenant).to_string();
        let answer = self
            .authzen_decide(&r.tenant, session, &path, document)
            .await?;
        Ok(Response::new(json_response(&answer)))
    }
}
