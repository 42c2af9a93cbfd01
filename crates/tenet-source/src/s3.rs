//! Bundles stored as objects in S3 (or an S3-compatible store), fetched with
//! `object_store`. A conditional GET by ETag answers "not modified" without a
//! transfer; the version of a bundle is its object's ETag.
//!
//! An [`S3Client`] is one client for one bucket, shared by every tenant's
//! [`S3Source`] (ten thousand tenants are ten thousand keys, not ten thousand
//! clients). Configuration comes from the standard `AWS_*` environment
//! variables, then explicit [`S3Options`]. This module fetches bytes and
//! nothing else: it never parses or validates the bundle.

use crate::options::S3Options;
use crate::SourceError;
use futures_util::StreamExt;
use object_store::aws::{AmazonS3, AmazonS3Builder, AmazonS3ConfigKey};
use object_store::path::Path;
use object_store::{ClientConfigKey, GetOptions, ObjectStore, RetryConfig};
use sha2::{Digest, Sha256};
use std::io::ErrorKind;
use std::sync::Arc;
use std::time::Duration;
use tenet_bundle::{BundleError, BundleSource, Fetched, Limits, Payload, VersionTag};

/// One S3 client for one bucket, shared by the sources of many tenants.
#[derive(Debug, Clone)]
pub struct S3Client {
    store: Arc<AmazonS3>,
    bucket: String,
    limits: Limits,
}

impl S3Client {
    /// A client for `bucket` configured from the environment (when
    /// `options.from_env`) and then `options`. Downloads are refused past
    /// `limits.max_compressed_bytes`.
    pub fn new(bucket: &str, options: &S3Options, limits: Limits) -> Result<Self, SourceError> {
        let vars: Vec<(String, String)> = if options.from_env {
            std::env::vars().collect()
        } else {
            Vec::new()
        };
        let store = builder(vars, bucket, options)
            .build()
            .map_err(|e| SourceError::S3Client {
                bucket: bucket.to_string(),
                reason: e.to_string(),
            })?;
        Ok(Self {
            store: Arc::new(store),
            bucket: bucket.to_string(),
            limits,
        })
    }

    /// The source of the object `key` in this client's bucket.
    pub fn source(&self, key: &str) -> S3Source {
        S3Source {
            store: Arc::clone(&self.store),
            location: format!("s3://{}/{key}", self.bucket),
            key: Path::from(key),
            limits: self.limits.clone(),
        }
    }

    /// The underlying store, for tools and tests that upload bundles.
    pub fn store(&self) -> Arc<dyn ObjectStore> {
        Arc::clone(&self.store) as Arc<dyn ObjectStore>
    }
}

/// The builder `AmazonS3Builder::from_env` would make from `vars` (only the
/// `AWS_*` ones count), then the bucket and the explicit options on top.
/// Pure, so it can be tested without touching the process environment.
fn builder(
    vars: impl IntoIterator<Item = (String, String)>,
    bucket: &str,
    options: &S3Options,
) -> AmazonS3Builder {
    let mut b = AmazonS3Builder::new();
    for (key, value) in vars {
        if key.starts_with("AWS_") {
            if let Ok(config_key) = key.to_ascii_lowercase().parse() {
                b = b.with_config(config_key, value);
            }
        }
    }
    b = b.with_bucket_name(bucket);
    if let Some(endpoint) = &options.endpoint {
        b = b.with_endpoint(endpoint);
    }
    if let Some(region) = &options.region {
        b = b.with_region(region);
    }
    if let Some(allow_http) = options.allow_http {
        b = b.with_allow_http(allow_http);
    }
    if let Some(virtual_hosted) = options.virtual_hosted_style_request {
        b = b.with_virtual_hosted_style_request(virtual_hosted);
    }
    if let Some(key_id) = &options.access_key_id {
        b = b.with_access_key_id(key_id);
    }
    if let Some(secret) = &options.secret_access_key {
        b = b.with_secret_access_key(secret.expose());
    }
    if let Some(token) = &options.session_token {
        b = b.with_token(token.expose());
    }
    // Through `with_config`, so client settings from the environment
    // (`AWS_ALLOW_HTTP`, proxies, …) are kept rather than replaced.
    let timeout = |seconds: u64| format!("{seconds}s");
    b = b
        .with_config(
            AmazonS3ConfigKey::Client(ClientConfigKey::Timeout),
            timeout(options.timeout_seconds),
        )
        .with_config(
            AmazonS3ConfigKey::Client(ClientConfigKey::ConnectTimeout),
            timeout(options.connect_timeout_seconds),
        );
    b.with_retry(RetryConfig {
        max_retries: options.max_retries,
        retry_timeout: Duration::from_secs(options.timeout_seconds),
        ..RetryConfig::default()
    })
}

/// One tenant's bundle object in S3.
#[derive(Debug)]
pub struct S3Source {
    store: Arc<AmazonS3>,
    location: String,
    key: Path,
    limits: Limits,
}

impl S3Source {
    /// A source with its own client; prefer [`S3Client::source`] when many
    /// keys share a bucket.
    pub fn new(
        bucket: &str,
        key: &str,
        options: &S3Options,
        limits: Limits,
    ) -> Result<Self, SourceError> {
        Ok(S3Client::new(bucket, options, limits)?.source(key))
    }

    fn failure(&self, kind: ErrorKind, message: String) -> BundleError {
        BundleError::Io {
            path: self.location.clone().into(),
            source: std::io::Error::new(kind, message),
        }
    }
}

#[async_trait::async_trait]
impl BundleSource for S3Source {
    async fn fetch(&self, known: Option<&VersionTag>) -> Result<Fetched, BundleError> {
        let options = GetOptions {
            if_none_match: known.map(|v| v.0.clone()),
            ..GetOptions::default()
        };
        let result = match self.store.get_opts(&self.key, options).await {
            Ok(result) => result,
            Err(object_store::Error::NotModified { .. }) if known.is_some() => {
                return Ok(Fetched::NotModified)
            }
            Err(object_store::Error::NotFound { source, .. }) => {
                return Err(self.failure(ErrorKind::NotFound, format!("no such object: {source}")))
            }
            Err(e) => return Err(self.failure(ErrorKind::Other, e.to_string())),
        };
        let limit = self.limits.max_compressed_bytes;
        if result.meta.size > limit {
            return Err(BundleError::CompressedTooLarge {
                size: result.meta.size,
                limit,
            });
        }
        let etag = result.meta.e_tag.clone().filter(|e| !e.is_empty());
        let expected = result.meta.size;
        let mut body = Vec::with_capacity(usize::try_from(expected).unwrap_or(0));
        let mut stream = result.into_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| {
                self.failure(
                    ErrorKind::UnexpectedEof,
                    format!("download failed after {} bytes: {e}", body.len()),
                )
            })?;
            let size = body.len() as u64 + chunk.len() as u64;
            if size > limit {
                return Err(BundleError::CompressedTooLarge { size, limit });
            }
            body.extend_from_slice(&chunk);
        }
        if body.len() as u64 != expected {
            return Err(self.failure(
                ErrorKind::UnexpectedEof,
                format!("object ended after {} of {expected} bytes", body.len()),
            ));
        }
        let version = VersionTag(etag.unwrap_or_else(|| hex::encode(Sha256::digest(&body))));
        if known == Some(&version) {
            return Ok(Fetched::NotModified);
        }
        Ok(Fetched::Bundle {
            payload: Payload::Archive(body),
            version,
        })
    }

    fn location(&self) -> String {
        self.location.clone()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn environment_variables_configure_the_client() {
        let env = vars(&[
            ("AWS_ACCESS_KEY_ID", "AKID"),
            ("AWS_SECRET_ACCESS_KEY", "SECRET"),
            ("AWS_SESSION_TOKEN", "TOKEN"),
            ("AWS_REGION", "eu-west-3"),
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:9000"),
            ("AWS_ALLOW_HTTP", "true"),
            ("AWS_WEB_IDENTITY_TOKEN_FILE", "/var/run/token"),
            ("AWS_ROLE_ARN", "arn:aws:iam::1:role/r"),
            ("HOME", "/root"),
        ]);
        let b = builder(env, "bundles", &S3Options::default());
        let get = |key: AmazonS3ConfigKey| b.get_config_value(&key);
        assert_eq!(get(AmazonS3ConfigKey::AccessKeyId).as_deref(), Some("AKID"));
        assert_eq!(
            get(AmazonS3ConfigKey::SecretAccessKey).as_deref(),
            Some("SECRET")
        );
        assert_eq!(get(AmazonS3ConfigKey::Token).as_deref(), Some("TOKEN"));
        assert_eq!(get(AmazonS3ConfigKey::Region).as_deref(), Some("eu-west-3"));
        assert_eq!(
            get(AmazonS3ConfigKey::Endpoint).as_deref(),
            Some("http://127.0.0.1:9000")
        );
        assert_eq!(
            get(AmazonS3ConfigKey::Client(ClientConfigKey::AllowHttp)).as_deref(),
            Some("true")
        );
        assert_eq!(
            get(AmazonS3ConfigKey::WebIdentityTokenFile).as_deref(),
            Some("/var/run/token")
        );
        assert_eq!(get(AmazonS3ConfigKey::Bucket).as_deref(), Some("bundles"));
        assert_eq!(
            get(AmazonS3ConfigKey::Client(ClientConfigKey::Timeout)).as_deref(),
            Some("120s")
        );
    }

    #[test]
    fn explicit_options_override_the_environment() {
        let env = vars(&[
            ("AWS_REGION", "eu-west-3"),
            ("AWS_ENDPOINT_URL", "http://env:9000"),
        ]);
        let options = S3Options {
            endpoint: Some("http://127.0.0.1:1".into()),
            region: Some("us-east-1".into()),
            allow_http: Some(true),
            access_key_id: Some("K".into()),
            secret_access_key: Some(crate::Secret::new("S")),
            ..S3Options::default()
        };
        let b = builder(env, "b", &options);
        assert_eq!(
            b.get_config_value(&AmazonS3ConfigKey::Endpoint).as_deref(),
            Some("http://127.0.0.1:1")
        );
        assert_eq!(
            b.get_config_value(&AmazonS3ConfigKey::Region).as_deref(),
            Some("us-east-1")
        );
        assert_eq!(
            b.get_config_value(&AmazonS3ConfigKey::AccessKeyId)
                .as_deref(),
            Some("K")
        );
    }
}
