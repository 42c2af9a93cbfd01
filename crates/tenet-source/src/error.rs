//! Why a location template or its options cannot be turned into sources.
//! These errors happen once, at configuration time; a failed fetch is a
//! `tenet_bundle::BundleError` instead, since the host handles those. This
//! module only describes failures; it must not decide what to do about them.

use std::path::PathBuf;

/// A location template or its options that cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SourceError {
    /// The template has no `{tenant}` placeholder.
    #[error("bundle location {template:?} has no {{tenant}} placeholder")]
    MissingTenant { template: String },
    /// A URL scheme other than `http`, `https`, `s3` or `file`.
    #[error("bundle location {template:?} has unsupported scheme {scheme:?} (use http, https, s3, file or a path)")]
    UnsupportedScheme { template: String, scheme: String },
    /// The template is not a valid URL.
    #[error("bundle location {template:?} is not a valid URL: {reason}")]
    InvalidUrl { template: String, reason: String },
    /// `{tenant}` appears where it could change the server or bucket.
    #[error("bundle location {template:?} puts {{tenant}} in the {part}; it may only appear in the path or query")]
    TenantOutsidePath {
        template: String,
        part: &'static str,
    },
    /// An HTTP header name or value from the options is not valid.
    #[error("invalid HTTP header {name:?}: {reason}")]
    InvalidHeader { name: String, reason: String },
    /// A TLS file (CA bundle, client certificate or key) cannot be read.
    #[error("cannot read TLS file {path:?}: {source}")]
    TlsFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A TLS file was read but does not hold what it should.
    #[error("invalid TLS file {path:?}: {reason}")]
    InvalidTls { path: PathBuf, reason: String },
    /// Credentials that contradict each other (`token` and `token_path`).
    #[error("invalid credentials: {reason}")]
    InvalidCredentials { reason: String },
    /// The HTTP client could not be built from the options.
    #[error("upload to {url} failed: {reason}")]
    Upload { url: String, reason: String },
    #[error("cannot build the HTTP client: {reason}")]
    HttpClient { reason: String },
    /// The S3 client for a bucket could not be built from the options.
    #[error("cannot build the S3 client for bucket {bucket:?}: {reason}")]
    S3Client { bucket: String, reason: String },
}
