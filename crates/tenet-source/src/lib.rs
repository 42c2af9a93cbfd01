//! Remote bundle sources: where a tenant's bundle comes from when it is not
//! on local disk. [`HttpSource`] speaks OPA's bundle service protocol (ETag
//! and `If-None-Match`, long polling, bearer tokens, client TLS);
//! [`S3Source`] reads objects from S3 or an S3-compatible store;
//! [`Template`] turns a location with `{tenant}` into each tenant's source,
//! sharing one client per template.
//!
//! Sources fetch bytes and nothing else: validation and compilation happen in
//! the caller. A fetch fails with a `tenet_bundle::BundleError`; a missing
//! bundle (HTTP 404, S3 `NoSuchKey`) is `BundleError::Io` with an
//! `std::io::ErrorKind::NotFound` source, which the host reads as "this
//! tenant has no bundle".

mod error;
mod http;
mod options;
mod s3;
mod template;

pub use error::SourceError;
pub use http::{HttpClient, HttpSource, BUNDLE_CONTENT_TYPE};
pub use options::{
    BearerCredentials, ClientTlsCredentials, Credentials, HttpOptions, S3Options, Secret,
    SourceOptions, TlsOptions,
};
pub use reqwest::Url;
pub use s3::{S3Client, S3Source};
pub use template::Template;
