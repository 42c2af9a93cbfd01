//! `envoy.service.auth.v3.Authorization/Check` for many tenants: checks the
//! caller's bearer token (when the embedder gave a checker), finds the
//! tenant, builds the input, asks the [`Host`] for the decision (which
//! evaluates on the host's evaluation pool, never on an async worker) and
//! maps it to a `CheckResponse`.
//!
//! What becomes what:
//! - a request without a tenant, with an invalid or unknown tenant id, or
//!   that cannot be read (bad path escape, malformed or too deep JSON body, body or
//!   header count over the limits): a denial (`PERMISSION_DENIED` with a
//!   `DeniedHttpResponse`: 403, or 400/413/431 with the reason as body) —
//!   never a gRPC error, so Envoy's `failure_mode_allow` cannot let it in;
//! - a missing or wrong token: gRPC `UNAUTHENTICATED`;
//! - an undefined decision, an evaluation error or a decision of the wrong
//!   shape: gRPC `UNKNOWN` (as opa-envoy-plugin, whose Go errors grpc-go
//!   sends as `UNKNOWN`), so `failure_mode_allow` decides;
//! - a tenant not loaded yet, failing to load, or refused for capacity:
//!   `UNAVAILABLE`.
//!
//! Every answered decision carries a decision id in its dynamic metadata.
//! This module knows no sockets (`server`) and no configuration files.

use crate::config::ExtAuthzConfig;
use crate::front::{Authorize, Front};
use crate::input::{self, InputLimits};
use crate::response;
use crate::status::ext_authz_status;
use crate::tenant;
use envoy_types::pb::envoy::service::auth::v3::authorization_server::Authorization;
use envoy_types::pb::envoy::service::auth::v3::{CheckRequest, CheckResponse};
use std::sync::Arc;
use tenet::{Host, HostError, Input};
use tonic::{Request, Response, Status};

/// The ext_authz service: cheap to clone (shared state behind `Arc`s).
#[derive(Clone)]
pub struct ExtAuthz {
    /// The host, the token rule and the decision logs.
    front: Front,
    config: Arc<ExtAuthzConfig>,
    limits: InputLimits,
}

impl std::fmt::Debug for ExtAuthz {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExtAuthz")
            .field("config", &self.config)
            .field("limits", &self.limits)
            .field("front", &self.front)
            .finish()
    }
}

impl ExtAuthz {
    /// The service for `host` with `config`; open to every caller until
    /// [`ExtAuthz::with_authorize`].
    pub fn new(host: Host, config: ExtAuthzConfig) -> Self {
        let depth = host.config().eval_limits.max_input_depth;
        Self {
            limits: InputLimits::new(&config, depth),
            front: Front::new(host),
            config: Arc::new(config),
        }
    }

    /// Hands every answered decision to `recorder` (as the REST API does;
    /// its worker applies the tenant's drop and mask rules, so credentials
    /// in ext_authz inputs can be erased).
    pub fn with_decision_logs(mut self, recorder: tenet_telemetry::Recorder) -> Self {
        self.front.set_recorder(recorder);
        self
    }

    /// Calls must pass `authorize`, else `UNAUTHENTICATED`.
    pub fn with_authorize(mut self, authorize: Authorize) -> Self {
        self.front.set_authorize(authorize);
        self
    }

    /// Decisions of tenants at isolation level `session` run in the
    /// worker of the session key named `name` (the REST API's
    /// `isolation.session_header`): a call's metadata entry of that name, or, first, the checked HTTP request's header of that name.
    pub fn with_session_key(mut self, name: &str) -> Self {
        self.front.set_session_key(name);
        self
    }

    /// Logs every decision (tracing target `tenet::decision`); dry-run
    /// decisions are logged either way.
    pub fn with_decision_log(mut self, on: bool) -> Self {
        self.front.console = on;
        self
    }

    /// The decision path for `tenant`.
    fn path(&self, tenant: &str) -> &str {
        self.config
            .tenant_paths
            .get(tenant)
            .unwrap_or(&self.config.path)
    }

    /// One Check, after authentication.
    pub async fn check_request(&self, request: &CheckRequest) -> Result<CheckResponse, Status> {
        self.check_in_session(request, None).await
    }

    /// The session key of a Check: the checked HTTP request's header named
    /// by the session key (an end user's session), else the call's own
    /// metadata entry (`call`). The caller turns a malformed key into a
    /// denial (400), not a gRPC error, which `failure_mode_allow` would
    /// turn into an allow.
    fn session<'r>(
        &self,
        request: &'r CheckRequest,
        call: Option<&'r str>,
    ) -> Result<Option<&'r str>, Status> {
        let Some(name) = self.front.session_key() else {
            return Ok(None);
        };
        let header = request
            .attributes
            .as_ref()
            .and_then(|a| a.request.as_ref())
            .and_then(|r| r.http.as_ref())
            .and_then(|h| h.headers.get(name));
        match header {
            Some(value) => self.front.session_value(Some(value)).map(Some),
            None => Ok(call),
        }
    }

    async fn check_in_session(
        &self,
        request: &CheckRequest,
        call_session: Option<&str>,
    ) -> Result<CheckResponse, Status> {
        let session = match self.session(request, call_session) {
            Ok(session) => session,
            Err(s) => return Ok(response::denied(400, s.message().to_string())),
        };
        let Some(tenant) = tenant::resolve(&self.config, request) else {
            return Ok(response::denied(
                403,
                format!(
                    "no tenant: the request names none ({}) and no default tenant is configured",
                    tenant::describe_sources(&self.config)
                ),
            ));
        };
        if let Err(e) = tenet::validate_tenant(tenant) {
            return Ok(response::denied(403, e.to_string()));
        }
        let document =
            match input::build(request, self.config.skip_request_body_parse, &self.limits) {
                Ok(d) => d,
                Err(e) => return Ok(response::denied(e.http_status(), e.to_string())),
            };
        let input = match Input::from_value(&document, &self.front.host.config().eval_limits) {
            Ok(i) => i,
            Err(e) => {
                let status = if e.kind() == "input_too_large" {
                    413
                } else {
                    400
                };
                return Ok(response::denied(
                    status,
                    format!("request_parse_error: {e}"),
                ));
            }
        };
        let path = self.path(tenant);
        let decision_id = uuid::Uuid::new_v4().to_string();
        let decided = self
            .front
            .host
            .decide_in_session(tenant, session, path, &input)
            .await;
        let result = match decided {
            Ok(d) => {
                self.front.record(tenant, path, &decision_id, &d, || {
                    Some(tenet_telemetry::LoggedInput::Json(document))
                });
                d.result
            }
            // A tenant name may come from a header the client sets: naming
            // one that does not exist must not reach failure_mode_allow.
            Err(e @ HostError::TenantNotFound { .. }) => {
                return Ok(response::denied(403, e.to_string()));
            }
            Err(e) => {
                tracing::debug!(%tenant, %path, %decision_id, error = %e, "ext_authz evaluation failed");
                return Err(ext_authz_status(e));
            }
        };
        let Some(result) = result else {
            tracing::debug!(%tenant, %path, %decision_id, "ext_authz decision undefined");
            return Err(Status::unknown("undefined decision"));
        };
        let mut answer = response::to_response(&result).map_err(|e| {
            tracing::debug!(%tenant, %path, %decision_id, error = %e, "ext_authz result unusable");
            Status::unknown(e.to_string())
        })?;
        let allowed = answer
            .status
            .as_ref()
            .is_some_and(|s| s.code == response::OK);
        if self.config.dry_run || self.front.console {
            tracing::info!(
                target: "tenet::decision",
                %tenant, %path, %decision_id, allowed,
                dry_run = self.config.dry_run,
                result = %result,
                "ext_authz decision"
            );
        }
        if self.config.dry_run {
            response::dry_run(&mut answer);
        }
        response::with_decision_id(&mut answer, &decision_id);
        Ok(answer)
    }
}

#[tonic::async_trait]
impl Authorization for ExtAuthz {
    async fn check(
        &self,
        request: Request<CheckRequest>,
    ) -> Result<Response<CheckResponse>, Status> {
        self.front.check_token(request.metadata())?;
        // A malformed key is a denial here too, never a gRPC error.
        let call_session = match self.front.session(request.metadata()) {
            Ok(session) => session,
            Err(s) => {
                return Ok(Response::new(response::denied(
                    400,
                    s.message().to_string(),
                )))
            }
        };
        self.check_in_session(request.get_ref(), call_session)
            .await
            .map(Response::new)
    }
}
