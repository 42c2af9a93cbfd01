//! What every gRPC service of tenet shares around a decision: the bearer
//! token rule (REST's `decide` rule, handed in by the embedder), the console
//! decision log and the hand-over to the decision-log recorder. It makes no
//! decisions and knows no message types.

use std::sync::Arc;
use tenet::Host;
use tenet_telemetry::{Decided, LoggedInput, Recorder};
use tonic::codegen::http::{HeaderMap, HeaderValue};
use tonic::metadata::MetadataMap;
use tonic::Status;

/// Decides whether a call's metadata (as HTTP headers: `authorization`
/// only) may ask for decisions. tenet-server passes its REST `decide`
/// rule, so every front end shares one token rule.
pub type Authorize = Arc<dyn Fn(&HeaderMap) -> bool + Send + Sync>;

/// The host and the rules around its decisions; cheap to clone.
#[derive(Clone)]
pub(crate) struct Front {
    pub(crate) host: Host,
    authorize: Option<Authorize>,
    /// Log every decision (tracing target `tenet::decision`).
    pub(crate) console: bool,
    recorder: Option<Recorder>,
    /// The metadata key (lowercase) that carries a call's session key, for
    /// tenants at isolation level `session` (the REST API's
    /// `isolation.session_header`).
    session_key: Option<String>,
}

/// Longest session key (as the REST API's).
pub(crate) const MAX_SESSION_BYTES: usize = 256;

impl std::fmt::Debug for Front {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Front")
            .field("authorize", &self.authorize.is_some())
            .field("console", &self.console)
            .field("recorder", &self.recorder.is_some())
            .field("session_key", &self.session_key)
            .finish()
    }
}

impl Front {
    pub(crate) fn new(host: Host) -> Self {
        Self {
            host,
            authorize: None,
            console: false,
            recorder: None,
            session_key: None,
        }
    }

    pub(crate) fn set_session_key(&mut self, name: &str) {
        self.session_key = Some(name.to_ascii_lowercase());
    }

    /// The session key a call carries in its metadata, if any.
    pub(crate) fn session<'m>(&self, metadata: &'m MetadataMap) -> Result<Option<&'m str>, Status> {
        let Some(name) = &self.session_key else {
            return Ok(None);
        };
        metadata
            .get(name.as_str())
            .map(|v| self.session_value(v.to_str().ok()))
            .transpose()
    }

    /// A session key as given (`None`: not text): printable ASCII, 1 to
    /// [`MAX_SESSION_BYTES`] bytes, else `INVALID_ARGUMENT`.
    pub(crate) fn session_value<'v>(&self, value: Option<&'v str>) -> Result<&'v str, Status> {
        match value {
            Some(key)
                if !key.is_empty()
                    && key.len() <= MAX_SESSION_BYTES
                    && key.bytes().all(|b| b.is_ascii_graphic() || b == b' ') =>
            {
                Ok(key)
            }
            _ => Err(Status::invalid_argument(format!(
                "{}: a session key is 1 to {MAX_SESSION_BYTES} printable ASCII characters",
                self.session_key.as_deref().unwrap_or("session key")
            ))),
        }
    }

    /// The session key `name`d in `session_key`, if set.
    pub(crate) fn session_key(&self) -> Option<&str> {
        self.session_key.as_deref()
    }

    pub(crate) fn set_authorize(&mut self, authorize: Authorize) {
        self.authorize = Some(authorize);
    }

    pub(crate) fn set_recorder(&mut self, recorder: Recorder) {
        self.recorder = Some(recorder);
    }

    /// `UNAUTHENTICATED` unless the call's token passes the rule.
    pub(crate) fn check_token(&self, metadata: &MetadataMap) -> Result<(), Status> {
        let Some(authorize) = &self.authorize else {
            return Ok(());
        };
        let mut headers = HeaderMap::new();
        if let Some(v) = metadata.get("authorization") {
            if let Ok(v) = HeaderValue::from_bytes(v.as_bytes()) {
                headers.insert("authorization", v);
            }
        }
        if authorize(&headers) {
            Ok(())
        } else {
            Err(Status::unauthenticated("missing or invalid bearer token"))
        }
    }

    /// Hands a decision to the recorder (when decision logs are uploaded);
    /// `input` is called only then.
    pub(crate) fn record(
        &self,
        tenant: &str,
        path: &str,
        decision_id: &str,
        decision: &tenet::Decision,
        input: impl FnOnce() -> Option<LoggedInput>,
    ) {
        let Some(recorder) = &self.recorder else {
            return;
        };
        recorder.record(Decided {
            tenant: tenant.to_string(),
            decision_id: decision_id.to_string(),
            // OPA's form: slash-separated, without `data`.
            path: tenet::QueryPath::parse(path)
                .map_or_else(|_| path.to_string(), |p| p.components().join("/")),
            revision: decision.revision.to_string(),
            input: input(),
            result: decision.result.clone(),
            at: std::time::SystemTime::now(),
            requested_by: None,
            req_id: None,
            metrics: Vec::new(),
        });
    }
}
