//! The `grpc:` section of tenet's configuration: where the gRPC server
//! listens (its own port, the REST port, or both; TLS), its bounds, how
//! `Authorization/Check` finds a tenant, a decision path and its limits,
//! and the native service's batch and stream bounds. Deserializable (every field may
//! be left out; unknown keys are errors) and checked by [`GrpcConfig::check`].
//! This module only describes and checks settings; it builds nothing.

use serde::Deserialize;
use std::collections::BTreeMap;

/// `grpc:`: off unless `listen` is set.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GrpcConfig {
    /// Address of the gRPC listener (`127.0.0.1:9191`; port 9191 is
    /// opa-envoy-plugin's). `None` (the default) serves no gRPC.
    pub listen: Option<String>,
    /// Largest gRPC message accepted, in bytes; a larger one is refused
    /// before it is decoded (tonic answers `OUT_OF_RANGE`, where grpc-go
    /// says `RESOURCE_EXHAUSTED`). Default 4 MiB
    /// (grpc-go's default, which opa-envoy-plugin keeps).
    pub max_message_bytes: usize,
    /// Largest header list (HTTP/2 `SETTINGS_MAX_HEADER_LIST_SIZE`) of a
    /// gRPC call. Default 16 KiB.
    pub max_header_list_bytes: u32,
    /// Most concurrent calls on one HTTP/2 connection. Default 1024.
    pub max_concurrent_streams: u32,
    /// A call that has not been answered this many seconds after it began
    /// (a client that sends its message slowly, say) ends with
    /// `CANCELLED`. Default 30.
    pub call_timeout_seconds: u64,
    /// Seconds between HTTP/2 PINGs on an idle connection; one not
    /// answered within `keep_alive_timeout_seconds` closes it, so dead
    /// peers do not hold connections. Default 60 and 20; 0 turns them off.
    pub keep_alive_interval_seconds: u64,
    pub keep_alive_timeout_seconds: u64,
    /// Also serve the gRPC services on the REST port (`server.addr`),
    /// told apart by `content-type: application/grpc*` on HTTP/2, with the
    /// REST port's TLS. With `listen` also set, both ports serve gRPC.
    /// Default false.
    pub on_rest_port: bool,
    /// Serve TLS on `listen` with this certificate and key (PEM files, as
    /// `server.tls`); plain HTTP/2 when absent (the default).
    pub tls: Option<TlsFiles>,
    /// Serve gRPC server reflection (`grpc.reflection.v1` and `v1alpha`)
    /// for `tenet.v1.Decisions` and `grpc.health.v1`. Default true.
    pub reflection: bool,
    /// Envoy's external authorization service.
    pub ext_authz: ExtAuthzConfig,
    /// The native `tenet.v1.Decisions` service.
    pub decisions: DecisionsConfig,
}

/// `grpc.tls:` the certificate chain and private key (PEM) of the gRPC
/// port. tenet-server reads the files; this crate takes their bytes.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFiles {
    /// PEM certificate chain.
    pub cert_file: std::path::PathBuf,
    /// PEM private key.
    pub private_key_file: std::path::PathBuf,
}

/// `grpc.decisions:` bounds of the native service.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DecisionsConfig {
    /// Most items of one `BatchDecide` and decisions of one `Is` call
    /// (`INVALID_ARGUMENT` past it). Default 1,000.
    pub max_batch: usize,
    /// Most decisions of one batch or one `DecideStream` in progress at
    /// once; a stream's sender waits past it. Default 64.
    pub max_in_flight: usize,
}

impl Default for DecisionsConfig {
    fn default() -> Self {
        Self {
            max_batch: 1_000,
            max_in_flight: 64,
        }
    }
}

impl Default for GrpcConfig {
    fn default() -> Self {
        Self {
            listen: None,
            max_message_bytes: 4 << 20,
            max_header_list_bytes: 16 << 10,
            max_concurrent_streams: 1024,
            call_timeout_seconds: 30,
            keep_alive_interval_seconds: 60,
            keep_alive_timeout_seconds: 20,
            on_rest_port: false,
            tls: None,
            reflection: true,
            ext_authz: ExtAuthzConfig::default(),
            decisions: DecisionsConfig::default(),
        }
    }
}

/// Where a Check request's tenant may come from.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum TenantSource {
    /// A key of the request's `context_extensions` (set per route or
    /// virtual host in Envoy's filter config).
    ContextExtension(String),
    /// A header of the HTTP request being authorized (Envoy sends header
    /// names in lower case; the name is compared in lower case).
    Header(String),
}

/// `grpc.ext_authz:`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ExtAuthzConfig {
    /// Where the tenant comes from, in order; the first that names one
    /// wins. Default: the `tenant` context extension.
    pub tenant_from: Vec<TenantSource>,
    /// The tenant of a request none of `tenant_from` names. Without it
    /// (the default) such a request is denied with 403.
    pub default_tenant: Option<String>,
    /// The decision path (`envoy/authz/allow`, the plugin's default).
    pub path: String,
    /// Per-tenant decision paths, overriding `path`.
    pub tenant_paths: BTreeMap<String, String>,
    /// Allow every request whatever the policy decided (the decision is
    /// still made and logged); errors stay errors. Default false.
    pub dry_run: bool,
    /// Leave `parsed_body` and `truncated_body` out of the input. Default
    /// false.
    pub skip_request_body_parse: bool,
    /// Largest request body (`body` or `raw_body`) accepted, in bytes; a
    /// larger one is denied with 413. Default 1 MiB.
    pub max_body_bytes: usize,
    /// Most headers (`headers` plus `header_map`) of the HTTP request
    /// accepted; more are denied with 431. Default 256.
    pub max_headers: usize,
    /// Most query parameters parsed from the path or a form body; more are
    /// denied with 400. Default 1000.
    pub max_query_params: usize,
}

impl Default for ExtAuthzConfig {
    fn default() -> Self {
        Self {
            tenant_from: vec![TenantSource::ContextExtension("tenant".into())],
            default_tenant: None,
            path: "envoy/authz/allow".into(),
            tenant_paths: BTreeMap::new(),
            dry_run: false,
            skip_request_body_parse: false,
            max_body_bytes: 1 << 20,
            max_headers: 256,
            max_query_params: 1000,
        }
    }
}

/// A setting that cannot be used: the key below `grpc` and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {reason}")]
pub struct ConfigError {
    /// The key path, e.g. `grpc.ext_authz.default_tenant`.
    pub key: String,
    /// Why.
    pub reason: String,
}

impl GrpcConfig {
    /// Checks what serde cannot: tenant names, paths, non-zero limits.
    pub fn check(&self) -> Result<(), ConfigError> {
        let invalid = |key: &str, reason: String| ConfigError {
            key: format!("grpc.{key}"),
            reason,
        };
        if self.max_message_bytes == 0 {
            return Err(invalid("max_message_bytes", "must be above 0".into()));
        }
        if self.decisions.max_batch == 0 {
            return Err(invalid("decisions.max_batch", "must be above 0".into()));
        }
        if self.decisions.max_in_flight == 0 {
            return Err(invalid("decisions.max_in_flight", "must be above 0".into()));
        }
        if self.tls.is_some() && self.listen.is_none() {
            return Err(invalid(
                "tls",
                "needs grpc.listen (on the REST port, server.tls applies)".into(),
            ));
        }
        let e = &self.ext_authz;
        if let Some(tenant) = &e.default_tenant {
            tenet::validate_tenant(tenant)
                .map_err(|err| invalid("ext_authz.default_tenant", err.to_string()))?;
        }
        for (i, source) in e.tenant_from.iter().enumerate() {
            let (TenantSource::ContextExtension(name) | TenantSource::Header(name)) = source;
            if name.trim().is_empty() {
                return Err(invalid(
                    &format!("ext_authz.tenant_from[{i}]"),
                    "the key or header name is empty".into(),
                ));
            }
        }
        check_path(&e.path).map_err(|r| invalid("ext_authz.path", r))?;
        for (tenant, path) in &e.tenant_paths {
            let key = format!("ext_authz.tenant_paths.{tenant}");
            tenet::validate_tenant(tenant).map_err(|err| invalid(&key, err.to_string()))?;
            check_path(path).map_err(|r| invalid(&key, r))?;
        }
        Ok(())
    }
}

fn check_path(path: &str) -> Result<(), String> {
    tenet::QueryPath::parse(path)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn defaults_are_the_documented_ones() {
        let c: GrpcConfig = serde_json::from_value(json!({})).unwrap();
        assert_eq!(c, GrpcConfig::default());
        assert_eq!(c.listen, None);
        assert_eq!(c.max_message_bytes, 4 << 20);
        assert_eq!(c.ext_authz.path, "envoy/authz/allow");
        assert_eq!(
            c.ext_authz.tenant_from,
            vec![TenantSource::ContextExtension("tenant".into())]
        );
        assert!(!c.ext_authz.dry_run && !c.ext_authz.skip_request_body_parse);
        assert!(c.check().is_ok());
    }

    #[test]
    fn sources_read_in_order_and_bad_settings_name_their_key() {
        let c: GrpcConfig = serde_json::from_value(json!({
            "listen": "127.0.0.1:0",
            "ext_authz": {
                "tenant_from": [{"header": "x-tenant-id"}, {"context_extension": "t"}],
                "default_tenant": "acme",
                "tenant_paths": {"acme": "acme/authz"},
            }
        }))
        .unwrap();
        assert_eq!(
            c.ext_authz.tenant_from,
            vec![
                TenantSource::Header("x-tenant-id".into()),
                TenantSource::ContextExtension("t".into())
            ]
        );
        assert!(c.check().is_ok());
        for (bad, key) in [
            (
                json!({"ext_authz": {"default_tenant": "../x"}}),
                "grpc.ext_authz.default_tenant",
            ),
            (
                json!({"ext_authz": {"path": "a.b c"}}),
                "grpc.ext_authz.path",
            ),
            (
                json!({"ext_authz": {"tenant_from": [{"header": " "}]}}),
                "grpc.ext_authz.tenant_from[0]",
            ),
            (
                json!({"ext_authz": {"tenant_paths": {"a/b": "x"}}}),
                "grpc.ext_authz.tenant_paths.a/b",
            ),
            (json!({"max_message_bytes": 0}), "grpc.max_message_bytes"),
            (
                json!({"decisions": {"max_batch": 0}}),
                "grpc.decisions.max_batch",
            ),
            (
                json!({"tls": {"cert_file": "c", "private_key_file": "k"}}),
                "grpc.tls",
            ),
        ] {
            let c: GrpcConfig = serde_json::from_value(bad.clone()).unwrap();
            assert_eq!(c.check().unwrap_err().key, key, "{bad}");
        }
        for unknown in [
            json!({"lissen": "x"}),
            json!({"ext_authz": {"tenant_from": [{"metadata": "x"}]}}),
        ] {
            assert!(serde_json::from_value::<GrpcConfig>(unknown).is_err());
        }
    }
}
