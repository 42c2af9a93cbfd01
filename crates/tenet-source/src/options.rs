//! Options for remote bundle sources, as a config file holds them. Field
//! names follow OPA's service configuration where OPA has one
//! (`credentials.bearer.token`, `tls.ca_cert`, `headers`,
//! `response_header_timeout_seconds`, …). This module holds settings only:
//! it reads no file and builds no client.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use tenet_bundle::Limits;

/// A string that never shows up in `Debug` output or logs (tokens, keys).
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("\"<redacted>\"")
    }
}

/// Everything a [`crate::Template`] needs to build its tenants' sources.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SourceOptions {
    /// Bundle limits; `max_compressed_bytes` bounds every download.
    pub limits: Limits,
    /// Options of `http://` and `https://` sources.
    pub http: HttpOptions,
    /// Options of `s3://` sources.
    pub s3: S3Options,
}

/// How `http://` and `https://` bundle locations are fetched (OPA's bundle
/// service protocol).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpOptions {
    /// Credentials sent with every request. Default: none.
    pub credentials: Credentials,
    /// Server certificate verification. Default: the system's roots.
    pub tls: TlsOptions,
    /// Extra headers sent with every request. Default: none.
    pub headers: BTreeMap<String, String>,
    /// How long to wait for the response headers once the request is sent
    /// (a long poll adds its wait to this). Default 10, as in OPA.
    pub response_header_timeout_seconds: u64,
    /// How long to wait for the TCP (and TLS) connection. Default 10.
    pub connect_timeout_seconds: u64,
    /// Bound on one whole fetch, body included (a long poll adds its wait to
    /// this). Default 120.
    pub timeout_seconds: u64,
    /// Ask the server to hold the request until the bundle changes, for up
    /// to this many seconds (`Prefer: modes=snapshot;wait=N`). Long polling
    /// stays on only while the server answers with OPA's bundle content type
    /// `application/vnd.openpolicyagent.bundles`. Default: off.
    pub long_polling_timeout_seconds: Option<u64>,
}

impl Default for HttpOptions {
    fn default() -> Self {
        Self {
            credentials: Credentials::default(),
            tls: TlsOptions::default(),
            headers: BTreeMap::new(),
            response_header_timeout_seconds: 10,
            connect_timeout_seconds: 10,
            timeout_seconds: 120,
            long_polling_timeout_seconds: None,
        }
    }
}

/// OPA's `credentials` block (the methods tenet supports).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Credentials {
    /// `Authorization: <scheme> <token>` on every request.
    pub bearer: Option<BearerCredentials>,
    /// A client certificate presented during the TLS handshake.
    pub client_tls: Option<ClientTlsCredentials>,
}

/// OPA's `credentials.bearer`: an inline token or a file holding one.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BearerCredentials {
    /// The token itself.
    pub token: Option<Secret>,
    /// A file holding the token, read again at every fetch so a rotated
    /// token is picked up; surrounding whitespace is ignored.
    pub token_path: Option<PathBuf>,
    /// The authorization scheme. Default `Bearer`.
    pub scheme: String,
}

impl Default for BearerCredentials {
    fn default() -> Self {
        Self {
            token: None,
            token_path: None,
            scheme: "Bearer".to_string(),
        }
    }
}

/// OPA's `credentials.client_tls`: PEM files of the client certificate and
/// its private key (unencrypted).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientTlsCredentials {
    /// The certificate chain, PEM.
    pub cert: PathBuf,
    /// The private key (PKCS#8, PKCS#1 or SEC1), PEM.
    pub private_key: PathBuf,
}

/// OPA's `tls` block: which server certificates to trust.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsOptions {
    /// A PEM bundle of CA certificates. When set, only these are trusted
    /// (as in OPA) unless `system_ca_required` is also set.
    pub ca_cert: Option<PathBuf>,
    /// Trust the system's roots in addition to `ca_cert`. Default false.
    pub system_ca_required: bool,
}

/// How `s3://bucket/key` locations are fetched. Unset fields come from the
/// standard AWS environment variables (`AWS_ACCESS_KEY_ID`,
/// `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_REGION`,
/// `AWS_ENDPOINT_URL`, `AWS_ALLOW_HTTP`, `AWS_WEB_IDENTITY_TOKEN_FILE`, …)
/// when `from_env` is true; set fields override them.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct S3Options {
    /// Read the `AWS_*` environment variables first. Default true.
    pub from_env: bool,
    /// Endpoint URL of an S3-compatible service (MinIO, R2, …).
    pub endpoint: Option<String>,
    /// The bucket's region.
    pub region: Option<String>,
    /// Allow `http://` endpoints. Default false (from the environment).
    pub allow_http: Option<bool>,
    /// Address buckets as `bucket.endpoint` instead of `endpoint/bucket`.
    pub virtual_hosted_style_request: Option<bool>,
    /// Static access key id.
    pub access_key_id: Option<String>,
    /// Static secret access key.
    pub secret_access_key: Option<Secret>,
    /// Session token that goes with temporary keys.
    pub session_token: Option<Secret>,
    /// Retries of a failed request inside one fetch. Default 2.
    pub max_retries: usize,
    /// Bound on one request, body included. Default 120.
    pub timeout_seconds: u64,
    /// How long to wait for the connection. Default 10.
    pub connect_timeout_seconds: u64,
}

impl Default for S3Options {
    fn default() -> Self {
        Self {
            from_env: true,
            endpoint: None,
            region: None,
            allow_http: None,
            virtual_hosted_style_request: None,
            access_key_id: None,
            secret_access_key: None,
            session_token: None,
            max_retries: 2,
            timeout_seconds: 120,
            connect_timeout_seconds: 10,
        }
    }
}
