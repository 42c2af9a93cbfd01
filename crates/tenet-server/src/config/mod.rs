//! `tenet serve`'s configuration file: YAML with keys modelled on OPA's
//! (`services`, `bundles`, `keys`, `decision_logs`, `status`) plus tenet's
//! own (`server`, `host`, `tenants`, `isolation`, `grpc`), overridden by `TENET_*`
//! environment variables and then by command-line flags.
//!
//! Environment overrides name a key path with `__` between levels:
//! `TENET_SERVER__ADDR=0.0.0.0:8181`, `TENET_HOST__GRACE_PERIOD_SECONDS=60`,
//! `TENET_DECISION_LOGS__CONSOLE=true`. Values are read as YAML scalars.
//!
//! Unknown keys are errors, and every error names the file, the key path
//! and the reason, so a typo fails at start instead of being ignored. This
//! module only reads and checks configuration; it builds nothing.

use serde::Deserialize;

mod isolation;
mod telemetry;
pub use isolation::{AdaptiveSection, IsolationSection, WorkersSection};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
pub use telemetry::{
    AuthzenSection, DecisionLogsSection, PorcSection, ReportingSection, StatusSection,
    TracesSection,
};

/// Why the configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("{file}: {source}")]
    Read {
        file: String,
        #[source]
        source: std::io::Error,
    },
    /// The file is not YAML.
    #[error("{file}: not valid YAML: {reason}")]
    Syntax { file: String, reason: String },
    /// A key has a bad value or is unknown.
    #[error("{file}: {key}: {reason}")]
    Invalid {
        file: String,
        key: String,
        reason: String,
    },
}

/// The whole configuration.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// The HTTP server.
    pub server: ServerSection,
    /// Remote bundle services, by name (OPA's `services`).
    pub services: BTreeMap<String, serde_json::Value>,
    /// Where each tenant's bundle comes from (OPA's `bundles`, as one
    /// template for every tenant).
    pub bundles: BundlesSection,
    /// Bundle signing keys, by key id (OPA's `keys`).
    pub keys: BTreeMap<String, serde_json::Value>,
    /// Decision logging (OPA's `decision_logs`).
    pub decision_logs: DecisionLogsSection,
    /// Status reporting (OPA's `status`).
    pub status: StatusSection,
    /// Tenants loaded at start and kept loaded (pinned).
    pub tenants: Vec<String>,
    /// Instance lifecycle and limits.
    pub host: HostSection,
    /// Process isolation between tenants.
    pub isolation: IsolationSection,
    /// The gRPC front end (Envoy ext_authz, `tenet.v1.Decisions`); off
    /// unless `grpc.listen` or `grpc.on_rest_port` is set.
    pub grpc: tenet_grpc::GrpcConfig,
    /// The AuthZEN evaluation endpoints (HTTP and gRPC).
    pub authzen: AuthzenSection,
    /// Traces exported over OTLP.
    pub traces: TracesSection,
    /// PORC requests (HTTP and gRPC).
    pub porc: PorcSection,
}

/// `server:`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerSection {
    /// Listen address.
    pub addr: String,
    /// Header naming the tenant on paths without `/tenants/{tenant}`.
    pub tenant_header: String,
    /// Largest request body in bytes (after gzip decoding); also the
    /// largest input, as text and as parsed (`max_input_bytes`).
    pub max_body_bytes: usize,
    /// Most inputs in one batch request; 413 past it.
    pub max_batch_inputs: usize,
    /// Most work in one batch request: its inputs, each merged with
    /// `common_input`, measured as inputs are and added up; 413 past it.
    pub max_batch_bytes: u64,
    /// Largest result one evaluation may return (measured as inputs are, a
    /// shared value counted each time it appears); 500 past it.
    pub max_result_bytes: u64,
    /// Most distinct `tenant` label values in `/metrics` (the busiest
    /// tenants); the others' samples are added up under
    /// `tenant="__other__"`.
    pub max_tenant_labels: usize,
    /// Most bytes of `print` output kept from one evaluation; the rest is
    /// cut with a marker.
    pub max_print_bytes: usize,
    /// Path of the default decision served at `POST /`.
    pub default_decision: String,
    /// Seconds to drain in-flight requests after SIGTERM/SIGINT.
    pub drain_seconds: u64,
    /// Seconds a client has to send a request's headers; 0 disables.
    pub read_header_timeout_seconds: u64,
    /// Seconds a client has to send a request's body; 0 disables.
    pub read_body_timeout_seconds: u64,
    /// Seconds between PINGs on an HTTP/2 connection; 0 disables them.
    pub http2_keep_alive_interval_seconds: u64,
    /// Seconds a PING may go unanswered before the connection is closed.
    pub http2_keep_alive_timeout_seconds: u64,
    /// Seconds an HTTP/2 connection may have no open request before it is
    /// shut down (GOAWAY); 0 disables.
    pub http2_idle_timeout_seconds: u64,
    /// Bearer token for the admin API and for policy and data writes.
    pub admin_token: Option<String>,
    /// Bearer token for the decision API.
    pub decision_token: Option<String>,
    /// Tokens with scopes (`decide`, `write`, `admin`), besides the two
    /// above: e.g. one token for clients that send the same token on
    /// reads and writes (opa-python-client, OPAL).
    pub tokens: Vec<TokenSection>,
    /// Accept policy and data writes without a token when no token grants
    /// writes. `null` (the default): only when listening on a loopback
    /// address.
    pub allow_unauthenticated_writes: Option<bool>,
    /// HTTPS.
    pub tls: Option<TlsSection>,
}

impl Default for ServerSection {
    fn default() -> Self {
        Self {
            addr: "127.0.0.1:8181".into(),
            tenant_header: "X-Tenant-ID".into(),
            max_body_bytes: 10 << 20,
            max_batch_inputs: crate::batch::MAX_BATCH_INPUTS,
            max_batch_bytes: crate::batch::MAX_BATCH_BYTES,
            max_result_bytes: tenet::EvalLimits::default().max_result_bytes,
            max_tenant_labels: 1_000,
            max_print_bytes: tenet::EvalLimits::default().max_print_bytes,
            default_decision: "system/main".into(),
            drain_seconds: 10,
            read_header_timeout_seconds: 10,
            read_body_timeout_seconds: 30,
            http2_keep_alive_interval_seconds: 10,
            http2_keep_alive_timeout_seconds: 10,
            http2_idle_timeout_seconds: 60,
            admin_token: None,
            decision_token: None,
            tokens: Vec::new(),
            allow_unauthenticated_writes: None,
            tls: None,
        }
    }
}

/// One entry of `server.tokens:`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenSection {
    /// The bearer token.
    pub token: String,
    /// What it grants.
    pub scopes: Vec<crate::auth::Scope>,
}

/// `server.tls:`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSection {
    /// PEM certificate chain.
    pub cert_file: PathBuf,
    /// PEM private key.
    pub private_key_file: PathBuf,
}

/// `bundles:`: one template for every tenant.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BundlesSection {
    /// Location with `{tenant}`: a path, `file://`, `http(s)://` or `s3://`
    /// URL. Used when `service` is not set.
    pub template: String,
    /// Name of a `services` entry; the bundle is then at its URL joined
    /// with `resource`.
    pub service: Option<String>,
    /// Resource path under the service, with `{tenant}`.
    pub resource: Option<String>,
    /// Polling delays (OPA's `polling`).
    pub polling: PollingSection,
    /// Keep the last activated bundle of each tenant on disk.
    pub persist: bool,
    /// Signature verification (OPA's `signing`: `keyid`, `scope`,
    /// `exclude_files`); keys come from the top-level `keys`.
    pub signing: Option<serde_json::Value>,
    /// S3 client settings for `s3://` templates (endpoint, region,
    /// credentials, `allow_http`); the `AWS_*` environment is read too.
    pub s3: Option<serde_json::Value>,
}

impl Default for BundlesSection {
    fn default() -> Self {
        Self {
            template: "examples/bundles/{tenant}".into(),
            service: None,
            resource: None,
            polling: PollingSection::default(),
            persist: false,
            signing: None,
            s3: None,
        }
    }
}

/// `bundles.polling:` (OPA's names).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PollingSection {
    /// Shortest delay between polls of one tenant, in seconds.
    pub min_delay_seconds: u64,
    /// Longest delay between polls of one tenant, in seconds.
    pub max_delay_seconds: u64,
    /// Long-polling wait asked of HTTP bundle servers, in seconds.
    pub long_polling_timeout_seconds: Option<u64>,
}

impl Default for PollingSection {
    fn default() -> Self {
        Self {
            min_delay_seconds: 60,
            max_delay_seconds: 120,
            long_polling_timeout_seconds: None,
        }
    }
}

/// `host:`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HostSection {
    /// Create an instance on a tenant's first request.
    pub on_demand: bool,
    /// Seconds an on-demand tenant stays referenced after its last request.
    pub idle_timeout_seconds: u64,
    /// Seconds an unreferenced tenant stays warm before it is collected.
    pub grace_period_seconds: u64,
    /// Seconds a decision waits for a tenant's first activation.
    pub startup_timeout_seconds: u64,
    /// Longest a bundle fetch may take, in seconds.
    pub fetch_timeout_seconds: u64,
    /// Seconds an unknown tenant (no bundle at the source) is answered 404
    /// without asking the source again; 0 disables.
    pub unknown_ttl_seconds: u64,
    /// Most instances at once.
    pub max_instances: usize,
    /// Approximate memory budget for all activations, in bytes.
    pub memory_budget_bytes: Option<u64>,
    /// Most tenants fed by pushes alone (no bundle); not counted against
    /// `max_instances`.
    pub max_pushed_tenants: usize,
    /// Most bytes of pushed policies and data over all tenants.
    pub max_pushed_bytes: u64,
    /// Most bundle loads at once.
    pub load_concurrency: usize,
    /// Evaluation deadline in milliseconds.
    pub deadline_ms: u64,
    /// Most instructions one RVM evaluation may run (regorus's own bound;
    /// OPA has none, only the deadline).
    pub max_instructions: usize,
    /// Most memory one evaluation may hold, in bytes (0: no budget).
    pub eval_memory_bytes: u64,
    /// `vm` (default: the RVM wherever it compiles the entrypoint, the
    /// interpreter elsewhere) or `interpreter` (the interpreter for every
    /// path).
    pub evaluator: String,
    /// Threads that run evaluations; 0 means one per core.
    pub eval_threads: usize,
    /// Seconds without a decision after which a tenant drops its pooled
    /// evaluators.
    pub trim_after_seconds: u64,
    /// Directory for persisted bundles (with `bundles.persist`) and pushed
    /// content (with `host.persist_pushed`).
    pub persist_dir: Option<PathBuf>,
    /// Keep pushed policies and data in `persist_dir` and push them again
    /// on start (OPA keeps them in memory only).
    pub persist_pushed: bool,
    /// Leave transparent huge pages on for the process and its workers.
    /// Default false: `tenet serve` turns them off (Linux), which made
    /// worker and tenant starts faster and small tenants smaller
    /// (BENCHMARKS.md).
    pub transparent_huge_pages: bool,
    /// Per-instance decision cache.
    pub decision_cache: tenet::DecisionCacheConfig,
    /// How tenants share the evaluation threads.
    pub fair_share: FairShareSection,
    /// Labels added to every instance.
    pub labels: BTreeMap<String, String>,
    /// Labels of particular tenants, by tenant.
    pub tenant_labels: BTreeMap<String, BTreeMap<String, String>>,
}

impl Default for HostSection {
    fn default() -> Self {
        Self {
            on_demand: true,
            idle_timeout_seconds: 300,
            grace_period_seconds: 30,
            startup_timeout_seconds: 5,
            fetch_timeout_seconds: 60,
            unknown_ttl_seconds: 10,
            max_instances: 100_000,
            memory_budget_bytes: None,
            max_pushed_tenants: 1_000,
            max_pushed_bytes: 64 << 20,
            load_concurrency: 8,
            deadline_ms: 1000,
            max_instructions: tenet::EvalLimits::default().max_instructions,
            eval_memory_bytes: tenet::EvalLimits::default().max_memory_bytes,
            evaluator: "vm".into(),
            eval_threads: 0,
            trim_after_seconds: 10,
            persist_dir: None,
            persist_pushed: false,
            transparent_huge_pages: false,
            decision_cache: tenet::DecisionCacheConfig::default(),
            fair_share: FairShareSection::default(),
            labels: BTreeMap::new(),
            tenant_labels: BTreeMap::new(),
        }
    }
}

/// `host.fair_share:` (see `tenet::FairShareConfig`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FairShareSection {
    /// Weighted round robin across tenants (false: arrival order).
    pub enabled: bool,
    /// Most evaluations one tenant may have waiting or running; 429 past it.
    pub max_pending: usize,
    /// Most evaluations one tenant runs at once; 0: only heavy tenants are
    /// bounded (all threads but a quarter).
    pub max_running: usize,
    /// Average evaluation time, in milliseconds, from which a tenant is
    /// heavy.
    pub heavy_after_ms: u64,
    /// Round-robin weight by tenant (default 1).
    pub weights: BTreeMap<String, u32>,
    /// Cheap tenants evaluate on the async worker that received the
    /// request, cut off at `heavy_after_ms` (see `tenet::FairShareConfig`).
    pub inline: bool,
}

impl Default for FairShareSection {
    fn default() -> Self {
        let d = tenet::FairShareConfig::default();
        Self {
            enabled: d.enabled,
            max_pending: d.max_pending,
            max_running: d.max_running,
            heavy_after_ms: u64::try_from(d.heavy_after.as_millis()).unwrap_or(u64::MAX),
            weights: d.weights,
            inline: d.inline,
        }
    }
}

/// Prefix of environment overrides.
pub const ENV_PREFIX: &str = "TENET_";

impl Config {
    /// Reads `file` (if any), applies the `TENET_*` overrides among `env`
    /// and checks the result.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let name = file.map_or_else(|| "<defaults>".to_string(), |f| f.display().to_string());
        let mut tree = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    file: name.clone(),
                    source,
                })?;
                let value: serde_json::Value =
                    serde_yaml_ng::from_str(&text).map_err(|e| ConfigError::Syntax {
                        file: name.clone(),
                        reason: e.to_string(),
                    })?;
                match value {
                    serde_json::Value::Null => serde_json::Value::Object(Default::default()),
                    v @ serde_json::Value::Object(_) => v,
                    _ => {
                        return Err(ConfigError::Invalid {
                            file: name,
                            key: "<root>".into(),
                            reason: "the configuration must be a mapping".into(),
                        })
                    }
                }
            }
            None => serde_json::Value::Object(Default::default()),
        };
        let mut overridden = Vec::new();
        for (key, value) in env {
            let Some(path) = key.strip_prefix(ENV_PREFIX) else {
                continue;
            };
            // Only `SECTION__KEY` names are overrides; flat names such as
            // `TENET_ADDR` belong to the command-line flags.
            if !path.contains("__") {
                continue;
            }
            let keys: Vec<String> = path.split("__").map(|k| k.to_ascii_lowercase()).collect();
            // Secrets and names stay strings whatever they look like
            // (`TENET_SERVER__ADMIN_TOKEN=~` is the token "~", not null).
            let textual = [
                "token",
                "addr",
                "header",
                "decision",
                "template",
                "resource",
                "url",
                "listen",
                "default_tenant",
            ]
            .iter()
            .any(|t| keys.last().is_some_and(|k| k.contains(t)))
                || keys.last().is_some_and(|k| k == "path");
            let parsed: serde_json::Value = if textual {
                serde_json::Value::String(value.clone())
            } else {
                serde_yaml_ng::from_str(&value)
                    .unwrap_or_else(|_| serde_json::Value::String(value.clone()))
            };
            set(&mut tree, &keys, parsed);
            overridden.push(key);
        }
        let config: Config = serde_path_to_error::deserialize(tree).map_err(|e| {
            let key = e.path().to_string();
            let env_note = overridden
                .iter()
                .find(|k| {
                    k[ENV_PREFIX.len()..]
                        .to_ascii_lowercase()
                        .replace("__", ".")
                        .starts_with(&key)
                })
                .map(|k| format!(" (from {k})"))
                .unwrap_or_default();
            ConfigError::Invalid {
                file: name.clone(),
                key: format!("{key}{env_note}"),
                reason: e.into_inner().to_string(),
            }
        })?;
        config.check(&name)?;
        Ok(config)
    }

    fn check(&self, file: &str) -> Result<(), ConfigError> {
        let invalid = |key: &str, reason: String| ConfigError::Invalid {
            file: file.to_string(),
            key: key.to_string(),
            reason,
        };
        for (key, token) in [
            ("server.admin_token", &self.server.admin_token),
            ("server.decision_token", &self.server.decision_token),
        ] {
            if token.as_deref().is_some_and(|t| t.trim().is_empty()) {
                return Err(invalid(
                    key,
                    "an empty token would let every request through; remove the key to disable auth"
                        .into(),
                ));
            }
        }
        for (i, entry) in self.server.tokens.iter().enumerate() {
            if entry.token.trim().is_empty() {
                return Err(invalid(
                    &format!("server.tokens[{i}].token"),
                    "an empty token would let every request through".into(),
                ));
            }
            if entry.scopes.is_empty() {
                return Err(invalid(
                    &format!("server.tokens[{i}].scopes"),
                    "a token needs at least one of decide, write, admin".into(),
                ));
            }
        }
        let write_token = self
            .server
            .tokens
            .iter()
            .any(|t| t.scopes.contains(&crate::auth::Scope::Write))
            || self.server.admin_token.is_some()
            || self.server.decision_token.is_some();
        if self.server.allow_unauthenticated_writes == Some(true) && write_token {
            return Err(invalid(
                "server.allow_unauthenticated_writes",
                "a token grants writes; writes without one would bypass it".into(),
            ));
        }
        if let Some((name, service)) = self
            .bundles
            .service
            .as_ref()
            .and_then(|n| self.services.get(n).map(|s| (n, s)))
        {
            let url = service.get("url");
            if url.is_none_or(|u| u.as_str().is_none_or(str::is_empty)) {
                return Err(invalid(
                    &format!("services.{name}.url"),
                    "the service has no url".into(),
                ));
            }
        }
        self.grpc.check().map_err(|e| invalid(&e.key, e.reason))?;
        let paths = [
            ("authzen.path".to_string(), &self.authzen.path),
            ("porc.path".to_string(), &self.porc.path),
        ];
        let tenant_paths = self
            .authzen
            .tenant_paths
            .iter()
            .map(|(t, p)| (format!("authzen.tenant_paths.{t}"), p))
            .chain(
                self.porc
                    .tenant_paths
                    .iter()
                    .map(|(t, p)| (format!("porc.tenant_paths.{t}"), p)),
            );
        for (key, path) in paths.into_iter().chain(tenant_paths) {
            tenet::QueryPath::parse(path.trim_matches('/'))
                .map_err(|e| invalid(&key, e.to_string()))?;
        }
        self.check_isolation(&invalid)?;
        if !matches!(self.host.evaluator.as_str(), "interpreter" | "vm") {
            return Err(invalid(
                "host.evaluator",
                format!("{:?}: expected interpreter or vm", self.host.evaluator),
            ));
        }
        let polling = &self.bundles.polling;
        if polling.min_delay_seconds > polling.max_delay_seconds {
            return Err(invalid(
                "bundles.polling",
                "min_delay_seconds is larger than max_delay_seconds".into(),
            ));
        }
        match (&self.bundles.service, &self.bundles.resource) {
            (Some(service), Some(_)) if !self.services.contains_key(service) => {
                return Err(invalid(
                    "bundles.service",
                    format!("no service named {service:?} under services"),
                ))
            }
            (Some(_), None) => {
                return Err(invalid(
                    "bundles.resource",
                    "bundles.service needs a resource with {tenant}".into(),
                ))
            }
            _ => {}
        }
        let template = self.bundle_template();
        if !template.contains("{tenant}") {
            return Err(invalid(
                if self.bundles.service.is_some() {
                    "bundles.resource"
                } else {
                    "bundles.template"
                },
                format!("{template:?} has no {{tenant}} placeholder"),
            ));
        }
        if self.bundles.persist && self.host.persist_dir.is_none() {
            return Err(invalid(
                "bundles.persist",
                "persisting bundles needs host.persist_dir".into(),
            ));
        }
        self.check_telemetry(&invalid)?;
        if self.host.persist_pushed && self.host.persist_dir.is_none() {
            return Err(invalid(
                "host.persist_pushed",
                "persisting pushed content needs host.persist_dir".into(),
            ));
        }
        for (i, tenant) in self.tenants.iter().enumerate() {
            tenet::validate_tenant(tenant)
                .map_err(|e| invalid(&format!("tenants[{i}]"), e.to_string()))?;
        }
        Ok(())
    }

    /// The bundle location template: `bundles.template`, or the service's
    /// URL joined with `bundles.resource`.
    pub fn bundle_template(&self) -> String {
        match (&self.bundles.service, &self.bundles.resource) {
            (Some(service), Some(resource)) => {
                let url = self
                    .services
                    .get(service)
                    .and_then(|s| s.get("url"))
                    .and_then(|u| u.as_str())
                    .unwrap_or_default();
                format!(
                    "{}/{}",
                    url.trim_end_matches('/'),
                    resource.trim_start_matches('/')
                )
            }
            _ => self.bundles.template.clone(),
        }
    }
}

impl Config {
    /// How bundles are fetched: the service's HTTP settings (OPA's service
    /// config without `url`), the S3 settings and the polling wait.
    pub fn source_options(&self, file: &str) -> Result<tenet_source::SourceOptions, ConfigError> {
        let mut options = tenet_source::SourceOptions::default();
        if let Some(name) = &self.bundles.service {
            let mut service = self.services.get(name).cloned().unwrap_or_default();
            if let Some(map) = service.as_object_mut() {
                // Keys OPA's service config has that are not HTTP settings.
                for key in ["url", "name", "type"] {
                    map.remove(key);
                }
            }
            options.http = section(file, &format!("services.{name}"), service)?;
        }
        options.http.long_polling_timeout_seconds =
            self.bundles.polling.long_polling_timeout_seconds;
        if let Some(s3) = &self.bundles.s3 {
            options.s3 = section(file, "bundles.s3", s3.clone())?;
        }
        Ok(options)
    }

    /// The signature verifier, when `bundles.signing` is set: its `keyid`,
    /// `scope` and `exclude_files` with the top-level `keys`.
    pub fn verifier(&self, file: &str) -> Result<Option<tenet::Verifier>, ConfigError> {
        let Some(signing) = &self.bundles.signing else {
            return Ok(None);
        };
        let mut tree = signing.clone();
        if !tree.is_object() {
            tree = serde_json::Value::Object(Default::default());
        }
        tree["keys"] = serde_json::to_value(&self.keys).unwrap_or_default();
        let config: tenet::VerificationConfig = section(file, "bundles.signing", tree)?;
        tenet::Verifier::new(&config)
            .map(Some)
            .map_err(|e| ConfigError::Invalid {
                file: file.to_string(),
                key: "keys".into(),
                reason: e.to_string(),
            })
    }
}

/// Reads the sub-tree at `prefix` into `T`; an error names the full key
/// path (`prefix.key`).
fn section<T: serde::de::DeserializeOwned>(
    file: &str,
    prefix: &str,
    tree: serde_json::Value,
) -> Result<T, ConfigError> {
    serde_path_to_error::deserialize(tree).map_err(|e| ConfigError::Invalid {
        file: file.to_string(),
        key: format!("{prefix}.{}", e.path()),
        reason: e.into_inner().to_string(),
    })
}

/// Sets `keys` in `tree` to `value`, creating objects on the way.
fn set(tree: &mut serde_json::Value, keys: &[String], value: serde_json::Value) {
    let Some((last, parents)) = keys.split_last() else {
        return;
    };
    let mut at = tree;
    for key in parents {
        if !at.get(key).is_some_and(serde_json::Value::is_object) {
            at[key.as_str()] = serde_json::Value::Object(Default::default());
        }
        at = &mut at[key.as_str()];
    }
    at[last.as_str()] = value;
}

#[cfg(test)]
mod tests;
