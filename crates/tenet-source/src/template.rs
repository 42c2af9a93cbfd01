//! A bundle location template with a `{tenant}` placeholder, checked once,
//! that gives each tenant its source by scheme: `http://`/`https://` (OPA's
//! bundle service protocol), `s3://bucket/key`, or `file://`/a plain path
//! (an archive when the template ends in `.tar.gz`/`.tgz`, else a bundle
//! directory). Clients are built here, once per template, and shared by all
//! tenants. This module must not fetch anything.

use crate::http::HttpClient;
use crate::options::SourceOptions;
use crate::s3::S3Client;
use crate::SourceError;
use reqwest::Url;
use std::sync::Arc;
use tenet_bundle::{
    BundleError, BundleSource, DirectorySource, Fetched, FileSource, Limits, VersionTag,
};

const PLACEHOLDER: &str = "{tenant}";
/// Stands in for the tenant while a template is validated; lower case so URL
/// host normalisation leaves it recognisable.
const SENTINEL: &str = "tenet-tenant-placeholder";

/// A parsed location template; [`Template::source`] gives a tenant's source.
#[derive(Debug, Clone)]
pub struct Template {
    template: String,
    kind: Kind,
}

#[derive(Debug, Clone)]
enum Kind {
    Http(HttpClient),
    S3 { client: S3Client, key: String },
    Archive { path: String, limits: Limits },
    Directory { path: String, limits: Limits },
}

impl Template {
    /// Parses and checks `template`, building the HTTP or S3 client it needs.
    ///
    /// ```
    /// use tenet_source::{SourceOptions, Template};
    /// let t = Template::new("https://bundles.example.com/v1/{tenant}.tar.gz",
    ///                       SourceOptions::default()).unwrap();
    /// assert_eq!(t.source("acme").location(),
    ///            "https://bundles.example.com/v1/acme.tar.gz");
    /// assert!(Template::new("https://{tenant}.example.com/b.tar.gz",
    ///                       SourceOptions::default()).is_err());
    /// ```
    pub fn new(template: &str, options: SourceOptions) -> Result<Self, SourceError> {
        if !template.contains(PLACEHOLDER) {
            return Err(SourceError::MissingTenant {
                template: template.to_string(),
            });
        }
        let outside = |part| SourceError::TenantOutsidePath {
            template: template.to_string(),
            part,
        };
        let kind = match template.split_once("://") {
            Some((scheme, _)) if is_scheme(scheme, "http") || is_scheme(scheme, "https") => {
                let url = Url::parse(&template.replace(PLACEHOLDER, SENTINEL)).map_err(|e| {
                    SourceError::InvalidUrl {
                        template: template.to_string(),
                        reason: e.to_string(),
                    }
                })?;
                if url.host_str().unwrap_or_default().contains(SENTINEL) {
                    return Err(outside("host"));
                }
                if url.username().contains(SENTINEL)
                    || url.password().unwrap_or_default().contains(SENTINEL)
                {
                    return Err(outside("user information"));
                }
                if url.fragment().unwrap_or_default().contains(SENTINEL) {
                    return Err(outside("fragment"));
                }
                Kind::Http(HttpClient::new(&options.http, options.limits)?)
            }
            Some((scheme, rest)) if is_scheme(scheme, "s3") => {
                let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
                if bucket.contains(PLACEHOLDER) {
                    return Err(outside("bucket"));
                }
                let invalid = |reason: &str| SourceError::InvalidUrl {
                    template: template.to_string(),
                    reason: reason.to_string(),
                };
                if !valid_bucket(bucket) {
                    return Err(invalid(
                        "the bucket name must be 3-63 characters of a-z, 0-9, `.` and `-`",
                    ));
                }
                object_store::path::Path::parse(key.replace(PLACEHOLDER, SENTINEL))
                    .map_err(|e| invalid(&format!("invalid object key: {e}")))?;
                Kind::S3 {
                    client: S3Client::new(bucket, &options.s3, options.limits)?,
                    key: key.to_string(),
                }
            }
            Some((scheme, rest)) if is_scheme(scheme, "file") => local(rest, options.limits),
            Some((scheme, _)) if is_url_scheme(scheme) => {
                return Err(SourceError::UnsupportedScheme {
                    template: template.to_string(),
                    scheme: scheme.to_string(),
                })
            }
            _ => local(template, options.limits),
        };
        Ok(Self {
            template: template.to_string(),
            kind,
        })
    }

    /// The source of `tenant`'s bundle. The id must already be validated
    /// (`[A-Za-z0-9._-]{1,128}`, not `.` or `..`): it is put into a path or
    /// URL as it is.
    pub fn source(&self, tenant: &str) -> Arc<dyn BundleSource> {
        match &self.kind {
            Kind::Http(client) => {
                let url = self.template.replace(PLACEHOLDER, tenant);
                match Url::parse(&url) {
                    Ok(parsed) => Arc::new(client.source(parsed)),
                    // Unreachable for valid ids: the template parsed with a
                    // sentinel in the same places.
                    Err(e) => Arc::new(Unusable {
                        location: url,
                        reason: e.to_string(),
                    }),
                }
            }
            Kind::S3 { client, key } => Arc::new(client.source(&key.replace(PLACEHOLDER, tenant))),
            Kind::Archive { path, limits } => Arc::new(FileSource::new(
                path.replace(PLACEHOLDER, tenant),
                limits.clone(),
            )),
            Kind::Directory { path, limits } => Arc::new(DirectorySource::new(
                path.replace(PLACEHOLDER, tenant),
                limits.clone(),
            )),
        }
    }

    /// The template as given.
    pub fn template(&self) -> &str {
        &self.template
    }

    /// What the template's sources are: `"http"`, `"s3"`, `"archive"` or
    /// `"directory"`.
    pub fn kind(&self) -> &'static str {
        match self.kind {
            Kind::Http(_) => "http",
            Kind::S3 { .. } => "s3",
            Kind::Archive { .. } => "archive",
            Kind::Directory { .. } => "directory",
        }
    }
}

fn is_scheme(scheme: &str, expected: &str) -> bool {
    scheme.eq_ignore_ascii_case(expected)
}

/// `scheme://` in the RFC 3986 sense (so `C:\x` or `./a://b` stay paths).
fn is_url_scheme(scheme: &str) -> bool {
    let mut chars = scheme.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
}

fn valid_bucket(bucket: &str) -> bool {
    (3..=63).contains(&bucket.len())
        && bucket
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
}

/// The template decides the kind, not the tenant id (`x.tar.gz` as a tenant
/// of `dir/{tenant}` is still a directory).
fn local(path: &str, limits: Limits) -> Kind {
    let path = path.to_string();
    if path.ends_with(".tar.gz") || path.ends_with(".tgz") {
        Kind::Archive { path, limits }
    } else {
        Kind::Directory { path, limits }
    }
}

/// A source whose location could not be built; every fetch says why.
#[derive(Debug)]
struct Unusable {
    location: String,
    reason: String,
}

#[async_trait::async_trait]
impl BundleSource for Unusable {
    async fn fetch(&self, _known: Option<&VersionTag>) -> Result<Fetched, BundleError> {
        Err(BundleError::Io {
            path: self.location.clone().into(),
            source: std::io::Error::other(format!("invalid bundle URL: {}", self.reason)),
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
    use crate::S3Options;

    fn options() -> SourceOptions {
        SourceOptions {
            s3: S3Options {
                from_env: false,
                region: Some("us-east-1".into()),
                ..S3Options::default()
            },
            ..SourceOptions::default()
        }
    }

    fn err(template: &str) -> SourceError {
        match Template::new(template, options()) {
            Err(e) => e,
            Ok(t) => panic!("{template} accepted as {}", t.kind()),
        }
    }

    #[test]
    fn schemes_pick_the_source_kind() {
        let cases = [
            (
                "http://127.0.0.1:8181/bundles/{tenant}",
                "http",
                "http://127.0.0.1:8181/bundles/acme",
            ),
            (
                "HTTPS://example.com/b/{tenant}.tar.gz?v=1",
                "http",
                "https://example.com/b/acme.tar.gz?v=1",
            ),
            (
                "https://example.com/b?tenant={tenant}",
                "http",
                "https://example.com/b?tenant=acme",
            ),
            (
                "s3://bundles/prod/{tenant}.tar.gz",
                "s3",
                "s3://bundles/prod/acme.tar.gz",
            ),
            (
                "file:///srv/b/{tenant}.tar.gz",
                "archive",
                "/srv/b/acme.tar.gz",
            ),
            ("file:///srv/b/{tenant}", "directory", "/srv/b/acme"),
            ("b/{tenant}.tgz", "archive", "b/acme.tgz"),
            ("b/{tenant}", "directory", "b/acme"),
        ];
        for (template, kind, location) in cases {
            let t = Template::new(template, options()).unwrap();
            assert_eq!(t.kind(), kind, "{template}");
            assert_eq!(t.source("acme").location(), location, "{template}");
        }
    }

    #[test]
    fn the_tenant_stays_in_the_path() {
        assert!(matches!(
            err("b/x.tar.gz"),
            SourceError::MissingTenant { .. }
        ));
        for (template, part) in [
            ("https://{tenant}.example.com/b.tar.gz", "host"),
            (
                "https://{tenant}:pw@example.com/b.tar.gz",
                "user information",
            ),
            ("https://example.com/b.tar.gz#{tenant}", "fragment"),
            ("s3://{tenant}/b.tar.gz", "bucket"),
            ("s3://bundles-{tenant}/b.tar.gz", "bucket"),
        ] {
            match err(template) {
                SourceError::TenantOutsidePath { part: p, .. } => assert_eq!(p, part, "{template}"),
                other => panic!("{template}: {other}"),
            }
        }
        assert!(matches!(
            err("https://example.com:{tenant}/b"),
            SourceError::InvalidUrl { .. }
        ));
    }

    #[test]
    fn bad_templates_are_refused() {
        assert!(matches!(
            err("ftp://example.com/{tenant}.tar.gz"),
            SourceError::UnsupportedScheme { .. }
        ));
        assert!(matches!(
            err("gs://b/{tenant}"),
            SourceError::UnsupportedScheme { .. }
        ));
        assert!(matches!(
            err("s3://B_ad/{tenant}"),
            SourceError::InvalidUrl { .. }
        ));
        assert!(matches!(
            err("s3://ab/{tenant}"),
            SourceError::InvalidUrl { .. }
        ));
        assert!(matches!(
            err("s3://bucket/a//{tenant}"),
            SourceError::InvalidUrl { .. }
        ));
        assert!(matches!(
            err("http://exa mple.com/{tenant}"),
            SourceError::InvalidUrl { .. }
        ));
    }

    #[test]
    fn options_deserialize_with_opa_names() {
        let json = serde_json::json!({
            "limits": {"max_compressed_bytes": 1024},
            "http": {
                "credentials": {
                    "bearer": {"token_path": "/run/token", "scheme": "Token"},
                    "client_tls": {"cert": "/c.pem", "private_key": "/k.pem"}
                },
                "tls": {"ca_cert": "/ca.pem"},
                "headers": {"X-Env": "prod"},
                "response_header_timeout_seconds": 5,
                "long_polling_timeout_seconds": 30
            },
            "s3": {"endpoint": "http://127.0.0.1:9000", "allow_http": true,
                   "secret_access_key": "hidden"}
        });
        let o: SourceOptions = serde_json::from_value(json).unwrap();
        assert_eq!(o.limits.max_compressed_bytes, 1024);
        let bearer = o.http.credentials.bearer.as_ref().unwrap();
        assert_eq!(bearer.scheme, "Token");
        assert_eq!(
            bearer.token_path.as_deref(),
            Some(std::path::Path::new("/run/token"))
        );
        assert_eq!(o.http.response_header_timeout_seconds, 5);
        assert_eq!(o.http.long_polling_timeout_seconds, Some(30));
        assert_eq!(o.http.timeout_seconds, 120);
        assert_eq!(o.s3.allow_http, Some(true));
        assert!(!format!("{o:?}").contains("hidden"));
        let unknown = serde_json::json!({"http": {"credentials": {"oauth2": {}}}});
        assert!(serde_json::from_value::<SourceOptions>(unknown).is_err());
    }
}
