//! The configuration sections of what tenet reports and answers besides
//! OPA's data API: decision logs and status uploads (OPA's
//! `decision_logs` and `status`, with their `services` entries) and the
//! AuthZEN endpoints, with their checks and what they build. Reading only,
//! like the rest of the configuration.

use super::{section, Config, ConfigError};
use serde::Deserialize;
use std::collections::BTreeMap;

/// `traces:`: spans (request, decision, fetch, compile, activation, with
/// the tenant) exported to an OpenTelemetry collector over OTLP/gRPC.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TracesSection {
    /// The collector's OTLP/gRPC endpoint (`http://127.0.0.1:4317`); unset:
    /// no traces.
    pub otlp_endpoint: Option<String>,
    /// `service.name` of the spans.
    pub service_name: String,
    /// How often batched spans are sent.
    pub export_interval_ms: u64,
}

impl Default for TracesSection {
    fn default() -> Self {
        Self {
            otlp_endpoint: None,
            service_name: "tenet".into(),
            export_interval_ms: 5_000,
        }
    }
}

/// `authzen:`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthzenSection {
    /// Decision path for every tenant.
    pub path: String,
    /// Decision paths of tenants that decide elsewhere.
    pub tenant_paths: BTreeMap<String, String>,
    /// Most items in one `evaluations` request.
    pub max_evaluations: usize,
}

impl Default for AuthzenSection {
    fn default() -> Self {
        let d = crate::authzen::AuthzenConfig::default();
        Self {
            path: d.path,
            tenant_paths: d.tenant_paths,
            max_evaluations: d.max_evaluations,
        }
    }
}

/// `porc:` Manetu-style PORC requests (`POST /v1/porc`, gRPC `Porc`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PorcSection {
    /// Decision path for every tenant. Default `porc/allow`.
    pub path: String,
    /// Decision paths of tenants that decide elsewhere.
    pub tenant_paths: BTreeMap<String, String>,
    /// The input's shape: `porc` (as sent, the default) or `authzen`
    /// (subject/action/resource/context, so one policy serves both).
    pub input: crate::authzen::PorcInput,
}

impl Default for PorcSection {
    fn default() -> Self {
        let d = crate::authzen::PorcConfig::default();
        Self {
            path: d.path,
            tenant_paths: d.tenant_paths,
            input: d.input,
        }
    }
}

impl PorcSection {
    /// The mapping's settings.
    pub fn config(&self) -> crate::authzen::PorcConfig {
        crate::authzen::PorcConfig {
            path: self.path.trim_matches('/').to_string(),
            tenant_paths: self.tenant_paths.clone(),
            input: self.input,
        }
    }
}

impl AuthzenSection {
    /// The mapping's settings.
    pub fn config(&self) -> crate::authzen::AuthzenConfig {
        crate::authzen::AuthzenConfig {
            path: self.path.trim_matches('/').to_string(),
            tenant_paths: self.tenant_paths.clone(),
            max_evaluations: self.max_evaluations.max(1),
        }
    }
}

/// `decision_logs:` (OPA's keys, plus tenet's bounds over all tenants).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DecisionLogsSection {
    /// Log every decision to the process log and return `decision_id`s.
    pub console: bool,
    /// Name of a `services` entry to upload decision logs to.
    pub service: Option<String>,
    /// Path under the service's URL; `{tenant}` is the tenant. Default
    /// `/logs`, as in OPA.
    pub resource: String,
    /// Buffer and upload settings (OPA's `reporting`).
    pub reporting: ReportingSection,
    /// Most bytes buffered over all tenants together.
    pub max_total_bytes: u64,
    /// Most uploads at once, over all tenants.
    pub max_concurrent_uploads: usize,
    /// Also write events as JSON lines to a rotating file.
    pub file: Option<DecisionLogFileSection>,
    /// JSON pointers (`/input/…`, `/result/…`) erased from every event, by
    /// tenant (`*`: every tenant), after the tenant's own mask rules.
    pub mask: BTreeMap<String, Vec<String>>,
}

/// `decision_logs.file:`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecisionLogFileSection {
    /// The file events are appended to.
    pub path: std::path::PathBuf,
    /// Size at which it is rotated.
    #[serde(default = "default_file_bytes")]
    pub max_bytes: u64,
    /// Files kept, the current one included.
    #[serde(default = "default_file_count")]
    pub max_files: usize,
}

fn default_file_bytes() -> u64 {
    tenet_telemetry::FileSinkConfig::default().max_bytes
}

fn default_file_count() -> usize {
    tenet_telemetry::FileSinkConfig::default().max_files
}

impl Default for DecisionLogsSection {
    fn default() -> Self {
        Self {
            console: false,
            service: None,
            resource: "/logs".into(),
            reporting: ReportingSection::default(),
            max_total_bytes: tenet_telemetry::DecisionLogConfig::default().max_total_bytes,
            max_concurrent_uploads: tenet_telemetry::UploadConfig::default().max_concurrent,
            file: None,
            mask: BTreeMap::new(),
        }
    }
}

/// `decision_logs.reporting:` (OPA's, applied per tenant).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReportingSection {
    /// Most events buffered per tenant.
    pub buffer_size_limit_events: usize,
    /// Most bytes buffered per tenant.
    pub buffer_size_limit_bytes: u64,
    /// Uncompressed bytes of events per upload.
    pub upload_size_limit_bytes: u64,
    /// Shortest delay between upload rounds.
    pub min_delay_seconds: u64,
    /// Longest delay between upload rounds (and longest retry delay).
    pub max_delay_seconds: u64,
}

impl Default for ReportingSection {
    fn default() -> Self {
        let buffer = tenet_telemetry::DecisionLogConfig::default();
        let upload = tenet_telemetry::UploadConfig::default();
        Self {
            buffer_size_limit_events: buffer.max_events,
            buffer_size_limit_bytes: buffer.max_bytes,
            upload_size_limit_bytes: upload.upload_size_limit_bytes,
            min_delay_seconds: upload.min_delay.as_secs(),
            max_delay_seconds: upload.max_delay.as_secs(),
        }
    }
}

/// `status:`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StatusSection {
    /// Accepted so OPA configs load; activations and failures are always
    /// logged, and each tenant's status is served by `/v1/tenants`.
    pub console: bool,
    /// Name of a `services` entry to upload each tenant's status report to.
    pub service: Option<String>,
    /// Path under the service's URL; `{tenant}` is the tenant. Default
    /// `/status`, as in OPA.
    pub resource: String,
    /// Seconds between upload rounds: a tenant's report goes at most once
    /// per round, when what it says changed.
    pub interval_seconds: u64,
}

impl Default for StatusSection {
    fn default() -> Self {
        let d = tenet_telemetry::StatusConfig::default();
        Self {
            console: false,
            service: None,
            resource: d.resource,
            interval_seconds: d.interval.as_secs(),
        }
    }
}

impl Config {
    /// Checks the telemetry sections; `invalid` builds the error for a key.
    pub(super) fn check_telemetry(
        &self,
        invalid: &dyn Fn(&str, String) -> ConfigError,
    ) -> Result<(), ConfigError> {
        if let Some(endpoint) = &self.traces.otlp_endpoint {
            if !cfg!(feature = "otlp") {
                return Err(invalid(
                    "traces.otlp_endpoint",
                    "this tenet was built without the otlp feature".into(),
                ));
            }
            if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
                return Err(invalid(
                    "traces.otlp_endpoint",
                    format!("{endpoint:?}: expected an http:// or https:// URL"),
                ));
            }
        }
        for (tenant, pointers) in &self.decision_logs.mask {
            for pointer in pointers {
                tenet_telemetry::check_mask_pointer(pointer)
                    .map_err(|e| invalid(&format!("decision_logs.mask.{tenant}"), e.to_string()))?;
            }
        }
        let uploads = [
            (
                "decision_logs.service",
                &self.decision_logs.service,
                "decision-log",
            ),
            ("status.service", &self.status.service, "status"),
        ];
        for (key, service, what) in uploads {
            let Some(service) = service else {
                continue;
            };
            match self.services.get(service) {
                None => {
                    return Err(invalid(
                        key,
                        format!("no service named {service:?} under services"),
                    ))
                }
                Some(s) if s.get("url").and_then(|u| u.as_str()).is_none() => {
                    return Err(invalid(
                        &format!("services.{service}.url"),
                        format!("the {what} service needs a url"),
                    ))
                }
                Some(_) => {}
            }
        }
        if self.decision_logs.reporting.min_delay_seconds
            > self.decision_logs.reporting.max_delay_seconds
        {
            return Err(invalid(
                "decision_logs.reporting.min_delay_seconds",
                "is larger than max_delay_seconds".into(),
            ));
        }
        Ok(())
    }

    /// The decision-log upload, when `decision_logs.service` is set: the
    /// service's HTTP settings (as for bundles) and where and how often to
    /// upload.
    pub fn decision_log_upload(
        &self,
        file: &str,
    ) -> Result<Option<(tenet_source::HttpOptions, tenet_telemetry::UploadConfig)>, ConfigError>
    {
        let Some(name) = &self.decision_logs.service else {
            return Ok(None);
        };
        let (http, url) = self.service_http(file, name)?;
        let d = &self.decision_logs;
        let upload = tenet_telemetry::UploadConfig {
            url,
            resource: d.resource.clone(),
            upload_size_limit_bytes: d.reporting.upload_size_limit_bytes.max(1),
            min_delay: std::time::Duration::from_secs(d.reporting.min_delay_seconds),
            max_delay: std::time::Duration::from_secs(d.reporting.max_delay_seconds.max(1)),
            max_concurrent: d.max_concurrent_uploads.max(1),
        };
        Ok(Some((http, upload)))
    }

    /// The status upload, when `status.service` is set: the service's HTTP
    /// settings and where and how often to upload.
    pub fn status_upload(
        &self,
        file: &str,
    ) -> Result<Option<(tenet_source::HttpOptions, tenet_telemetry::StatusConfig)>, ConfigError>
    {
        let Some(name) = &self.status.service else {
            return Ok(None);
        };
        let (http, url) = self.service_http(file, name)?;
        let status = tenet_telemetry::StatusConfig {
            url,
            resource: self.status.resource.clone(),
            interval: std::time::Duration::from_secs(self.status.interval_seconds.max(1)),
            max_concurrent: self.decision_logs.max_concurrent_uploads.max(1),
        };
        Ok(Some((http, status)))
    }

    /// A `services` entry's HTTP settings and URL.
    fn service_http(
        &self,
        file: &str,
        name: &str,
    ) -> Result<(tenet_source::HttpOptions, String), ConfigError> {
        let mut service = self.services.get(name).cloned().unwrap_or_default();
        let url = service
            .get("url")
            .and_then(|u| u.as_str())
            .unwrap_or_default()
            .to_string();
        if let Some(map) = service.as_object_mut() {
            for key in ["url", "name", "type"] {
                map.remove(key);
            }
        }
        Ok((section(file, &format!("services.{name}"), service)?, url))
    }

    /// The decision-log buffers' bounds.
    pub fn decision_log_buffers(&self) -> tenet_telemetry::DecisionLogConfig {
        let d = &self.decision_logs;
        tenet_telemetry::DecisionLogConfig {
            max_events: d.reporting.buffer_size_limit_events,
            max_bytes: d.reporting.buffer_size_limit_bytes,
            max_total_bytes: d.max_total_bytes,
        }
    }
}
