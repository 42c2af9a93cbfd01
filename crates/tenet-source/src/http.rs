//! Bundles fetched over HTTP(S) with OPA's bundle service protocol: a GET of
//! the bundle URL, `If-None-Match` with the ETag of the bundle held (304 means
//! unchanged), optional long polling (`Prefer: modes=snapshot;wait=N`, kept on
//! only while the server answers with OPA's bundle content type), bearer
//! tokens, client certificates and a private CA.
//!
//! An [`HttpClient`] holds one connection pool and the credentials for all
//! tenants of a template; each [`HttpSource`] holds one URL, the ETag it last
//! received and its long-polling state. Downloads are bounded by
//! `Limits::max_compressed_bytes` while they stream. This module fetches
//! bytes and nothing else: it never parses or validates the bundle.

use crate::options::{BearerCredentials, HttpOptions};
use crate::SourceError;
use reqwest::header::{self, HeaderMap, HeaderName, HeaderValue};
use reqwest::{StatusCode, Url};
use sha2::{Digest, Sha256};
use std::io::ErrorKind;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tenet_bundle::{BundleError, BundleSource, Fetched, Limits, Payload, VersionTag};

/// The content type with which an OPA bundle server confirms long polling.
pub const BUNDLE_CONTENT_TYPE: &str = "application/vnd.openpolicyagent.bundles";

/// Largest buffer reserved up front from a `Content-Length`; the rest grows
/// as bytes actually arrive.
const MAX_PREALLOCATION: u64 = 8 << 20;

/// One HTTP client (connection pool, TLS settings, credentials, timeouts)
/// shared by the sources of many tenants.
#[derive(Debug, Clone)]
pub struct HttpClient {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    client: reqwest::Client,
    bearer: Option<BearerCredentials>,
    header_timeout: Duration,
    total_timeout: Duration,
    long_poll_wait: Option<u64>,
    limits: Limits,
}

impl HttpClient {
    /// Builds the client from `options`, reading the TLS files now. Downloads
    /// are refused past `limits.max_compressed_bytes`.
    pub fn new(options: &HttpOptions, limits: Limits) -> Result<Self, SourceError> {
        let mut builder = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(options.connect_timeout_seconds))
            .user_agent(concat!("tenet/", env!("CARGO_PKG_VERSION")))
            .default_headers(extra_headers(options)?);
        if let Some(ca) = &options.tls.ca_cert {
            let pem = read_tls_file(ca)?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                SourceError::InvalidTls {
                    path: ca.clone(),
                    reason: e.to_string(),
                }
            })?;
            if certs.is_empty() {
                return Err(SourceError::InvalidTls {
                    path: ca.clone(),
                    reason: "no PEM certificate found".into(),
                });
            }
            builder = if options.tls.system_ca_required {
                builder.tls_certs_merge(certs)
            } else {
                builder.tls_certs_only(certs)
            };
        }
        if let Some(client_tls) = &options.credentials.client_tls {
            let mut pem = read_tls_file(&client_tls.cert)?;
            pem.push(b'\n');
            pem.extend(read_tls_file(&client_tls.private_key)?);
            let identity =
                reqwest::Identity::from_pem(&pem).map_err(|e| SourceError::InvalidTls {
                    path: client_tls.cert.clone(),
                    reason: format!(
                        "certificate with key {:?}: {}",
                        client_tls.private_key,
                        error_chain(&e)
                    ),
                })?;
            builder = builder.identity(identity);
        }
        if let Some(bearer) = &options.credentials.bearer {
            match (&bearer.token, &bearer.token_path) {
                (Some(_), Some(_)) => {
                    return Err(SourceError::InvalidCredentials {
                        reason: "bearer credentials set both `token` and `token_path`".into(),
                    })
                }
                (None, None) => {
                    return Err(SourceError::InvalidCredentials {
                        reason: "bearer credentials need `token` or `token_path`".into(),
                    })
                }
                _ => {}
            }
        }
        let client = builder.build().map_err(|e| SourceError::HttpClient {
            reason: error_chain(&e),
        })?;
        Ok(Self {
            shared: Arc::new(Shared {
                client,
                bearer: options.credentials.bearer.clone(),
                header_timeout: Duration::from_secs(options.response_header_timeout_seconds),
                total_timeout: Duration::from_secs(options.timeout_seconds),
                long_poll_wait: options.long_polling_timeout_seconds,
                limits,
            }),
        })
    }

    /// The source of the bundle at `url`, sharing this client.
    pub fn source(&self, url: Url) -> HttpSource {
        let long_poll = if self.shared.long_poll_wait.is_some() {
            LONG_POLL_TRYING
        } else {
            LONG_POLL_OFF
        };
        HttpSource {
            shared: Arc::clone(&self.shared),
            location: redacted(&url),
            url,
            etag: Mutex::new(None),
            long_poll: AtomicU8::new(long_poll),
        }
    }
}

impl Shared {
    /// The `Authorization` header for the bearer credentials, reading the
    /// token file afresh.
    async fn authorization(&self) -> Result<Option<HeaderValue>, String> {
        let Some(bearer) = &self.bearer else {
            return Ok(None);
        };
        let token = match (&bearer.token, &bearer.token_path) {
            (Some(token), _) => token.expose().trim().to_string(),
            (None, Some(path)) => tokio::fs::read_to_string(path)
                .await
                .map_err(|e| format!("cannot read bearer token file {path:?}: {e}"))?
                .trim()
                .to_string(),
            (None, None) => return Ok(None),
        };
        let mut value = HeaderValue::from_str(&format!("{} {token}", bearer.scheme))
            .map_err(|_| "bearer token is not a valid header value".to_string())?;
        value.set_sensitive(true);
        Ok(Some(value))
    }
}

impl HttpClient {
    /// POSTs `body` to `url` with this client's credentials, headers and
    /// timeouts, as OPA sends decision logs and status reports to a
    /// service (`Content-Type: application/json`, and `Content-Encoding:
    /// gzip` when `gzip`). Returns the answer's status; the answer's body is
    /// not read.
    pub async fn post(&self, url: Url, gzip: bool, body: Vec<u8>) -> Result<u16, SourceError> {
        let failed = |reason: String| SourceError::Upload {
            url: redacted(&url),
            reason,
        };
        let mut request = self
            .shared
            .client
            .post(url.clone())
            .timeout(self.shared.total_timeout)
            .header(header::CONTENT_TYPE, "application/json")
            .body(body);
        if gzip {
            request = request.header(header::CONTENT_ENCODING, "gzip");
        }
        if let Some(value) = self.shared.authorization().await.map_err(failed)? {
            request = request.header(header::AUTHORIZATION, value);
        }
        let answer = tokio::time::timeout(self.shared.header_timeout, request.send())
            .await
            .map_err(|_| failed("no answer within the response header timeout".into()))?
            .map_err(|e| failed(error_chain(&e)))?;
        Ok(answer.status().as_u16())
    }
}

fn read_tls_file(path: &PathBuf) -> Result<Vec<u8>, SourceError> {
    std::fs::read(path).map_err(|source| SourceError::TlsFile {
        path: path.clone(),
        source,
    })
}

fn extra_headers(options: &HttpOptions) -> Result<HeaderMap, SourceError> {
    let mut headers = HeaderMap::new();
    for (name, value) in &options.headers {
        let invalid = |reason: String| SourceError::InvalidHeader {
            name: name.clone(),
            reason,
        };
        let key = HeaderName::from_bytes(name.as_bytes()).map_err(|e| invalid(e.to_string()))?;
        let value = HeaderValue::from_str(value).map_err(|e| invalid(e.to_string()))?;
        headers.insert(key, value);
    }
    Ok(headers)
}

/// The URL without its password, for logs and error messages.
fn redacted(url: &Url) -> String {
    let mut shown = url.clone();
    if shown.password().is_some() {
        let _ = shown.set_password(Some("redacted"));
    }
    shown.to_string()
}

/// An error and its causes on one line (reqwest's own message alone says
/// little more than "error sending request").
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(inner) = cause {
        let next = inner.to_string();
        if !text.contains(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        cause = inner.source();
    }
    text
}

const LONG_POLL_OFF: u8 = 0;
/// Configured; the server has not (or not lately) confirmed it.
const LONG_POLL_TRYING: u8 = 1;
/// The last answer came with the bundle content type.
const LONG_POLL_ACTIVE: u8 = 2;

/// One tenant's bundle on an OPA bundle server.
#[derive(Debug)]
pub struct HttpSource {
    shared: Arc<Shared>,
    url: Url,
    location: String,
    /// The ETag of the last bundle downloaded; cleared by a failed download.
    etag: Mutex<Option<String>>,
    long_poll: AtomicU8,
}

impl HttpSource {
    /// A source with its own client; prefer [`HttpClient::source`] when many
    /// URLs share the options.
    pub fn new(url: &str, options: &HttpOptions, limits: Limits) -> Result<Self, SourceError> {
        let parsed = Url::parse(url).map_err(|e| SourceError::InvalidUrl {
            template: url.to_string(),
            reason: e.to_string(),
        })?;
        Ok(HttpClient::new(options, limits)?.source(parsed))
    }

    fn stored_etag(&self) -> Option<String> {
        self.etag.lock().map(|g| g.clone()).unwrap_or(None)
    }

    fn store_etag(&self, etag: Option<String>) {
        if let Ok(mut guard) = self.etag.lock() {
            *guard = etag;
        }
    }

    fn failure(&self, kind: ErrorKind, message: String) -> BundleError {
        BundleError::Io {
            path: PathBuf::from(&self.location),
            source: std::io::Error::new(kind, message),
        }
    }

    fn request_failure(&self, error: &reqwest::Error) -> BundleError {
        let kind = if error.is_timeout() {
            ErrorKind::TimedOut
        } else if error.is_body() || error.is_decode() {
            ErrorKind::UnexpectedEof
        } else {
            ErrorKind::Other
        };
        self.failure(kind, format!("request failed: {}", error_chain(error)))
    }

    /// The `Authorization` header, reading the token file afresh.
    async fn authorization(&self) -> Result<Option<HeaderValue>, BundleError> {
        // Not the NotFound kind: that would read as "no bundle".
        self.shared
            .authorization()
            .await
            .map_err(|reason| self.failure(ErrorKind::Other, reason))
    }

    async fn download(&self, known: Option<&VersionTag>) -> Result<Fetched, BundleError> {
        // If-None-Match only for the ETag of the very bundle the caller holds.
        let conditional = self
            .stored_etag()
            .filter(|etag| known.is_some_and(|k| k.0 == *etag));
        let wait = match self.long_poll.load(Ordering::Acquire) {
            LONG_POLL_OFF => None,
            _ => self.shared.long_poll_wait,
        };
        let extra = Duration::from_secs(wait.unwrap_or(0));

        let mut request = self
            .shared
            .client
            .get(self.url.clone())
            .timeout(self.shared.total_timeout + extra);
        if let Some(etag) = &conditional {
            request = request.header(header::IF_NONE_MATCH, etag);
        }
        if let Some(wait) = wait {
            request = request.header("prefer", format!("modes=snapshot;wait={wait}"));
        }
        if let Some(auth) = self.authorization().await? {
            request = request.header(header::AUTHORIZATION, auth);
        }

        let header_timeout = self.shared.header_timeout + extra;
        let response = match tokio::time::timeout(header_timeout, request.send()).await {
            Err(_) => {
                return Err(self.failure(
                    ErrorKind::TimedOut,
                    format!("no response within {}s", header_timeout.as_secs()),
                ))
            }
            Ok(Err(e)) => return Err(self.request_failure(&e)),
            Ok(Ok(response)) => response,
        };

        let status = response.status();
        match status {
            StatusCode::OK => {
                let long_polls = is_bundle_content_type(response.headers());
                let etag = response
                    .headers()
                    .get(header::ETAG)
                    .and_then(|v| v.to_str().ok())
                    .filter(|v| !v.is_empty())
                    .map(str::to_string);
                let body = self.read_body(response).await?;
                self.note_long_poll(wait.is_some(), long_polls);
                let version = match &etag {
                    Some(etag) => VersionTag(etag.clone()),
                    None => VersionTag(hex::encode(Sha256::digest(&body))),
                };
                self.store_etag(etag);
                if known == Some(&version) {
                    Ok(Fetched::NotModified)
                } else {
                    Ok(Fetched::Bundle {
                        payload: Payload::Archive(body),
                        version,
                    })
                }
            }
            StatusCode::NOT_MODIFIED if conditional.is_some() => {
                self.note_long_poll(wait.is_some(), is_bundle_content_type(response.headers()));
                Ok(Fetched::NotModified)
            }
            StatusCode::NOT_MODIFIED => Err(self.failure(
                ErrorKind::InvalidData,
                "server replied with HTTP 304 Not Modified to a request without If-None-Match"
                    .into(),
            )),
            _ => {
                let kind = match status {
                    StatusCode::NOT_FOUND => ErrorKind::NotFound,
                    StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => ErrorKind::PermissionDenied,
                    _ => ErrorKind::Other,
                };
                Err(self.failure(kind, format!("server replied with HTTP {status}")))
            }
        }
    }

    /// Reads the body, refusing it once it passes the compressed size limit
    /// and when it ends before its `Content-Length`.
    async fn read_body(&self, mut response: reqwest::Response) -> Result<Vec<u8>, BundleError> {
        let limit = self.shared.limits.max_compressed_bytes;
        let declared = response.content_length();
        if let Some(size) = declared.filter(|&size| size > limit) {
            return Err(BundleError::CompressedTooLarge { size, limit });
        }
        let capacity = declared.unwrap_or(0).min(MAX_PREALLOCATION);
        let mut body = Vec::with_capacity(usize::try_from(capacity).unwrap_or(0));
        loop {
            let chunk = match response.chunk().await {
                Ok(Some(chunk)) => chunk,
                Ok(None) => break,
                Err(e) => {
                    let mut failure = self.request_failure(&e);
                    if let BundleError::Io { source, .. } = &mut failure {
                        if source.kind() != ErrorKind::TimedOut {
                            *source = std::io::Error::new(
                                ErrorKind::UnexpectedEof,
                                format!(
                                    "body ended after {} bytes: {}",
                                    body.len(),
                                    error_chain(&e)
                                ),
                            );
                        }
                    }
                    return Err(failure);
                }
            };
            let size = body.len() as u64 + chunk.len() as u64;
            if size > limit {
                return Err(BundleError::CompressedTooLarge { size, limit });
            }
            body.extend_from_slice(&chunk);
        }
        if let Some(expected) = declared.filter(|&n| n != body.len() as u64) {
            return Err(self.failure(
                ErrorKind::UnexpectedEof,
                format!("body ended after {} of {expected} bytes", body.len()),
            ));
        }
        Ok(body)
    }

    /// After an answer: long polling stays on only if the server confirmed
    /// it with the bundle content type (as OPA decides).
    fn note_long_poll(&self, asked: bool, confirmed: bool) {
        if !asked {
            return;
        }
        if confirmed {
            self.long_poll.store(LONG_POLL_ACTIVE, Ordering::Release);
        } else if self.long_poll.swap(LONG_POLL_OFF, Ordering::AcqRel) != LONG_POLL_OFF {
            tracing::info!(
                url = %self.location,
                "bundle server does not support long polling; polling instead"
            );
        }
    }
}

fn is_bundle_content_type(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case(BUNDLE_CONTENT_TYPE))
}

#[async_trait::async_trait]
impl BundleSource for HttpSource {
    async fn fetch(&self, known: Option<&VersionTag>) -> Result<Fetched, BundleError> {
        let outcome = self.download(known).await;
        if outcome.is_err() {
            // As OPA: after a failure the next request is unconditional, and
            // a long poll is no longer confirmed until the server answers.
            self.store_etag(None);
            let _ = self.long_poll.compare_exchange(
                LONG_POLL_ACTIVE,
                LONG_POLL_TRYING,
                Ordering::AcqRel,
                Ordering::Acquire,
            );
        }
        outcome
    }

    fn location(&self) -> String {
        self.location.clone()
    }

    fn long_polls(&self) -> bool {
        self.long_poll.load(Ordering::Acquire) == LONG_POLL_ACTIVE
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn content_type_check_ignores_parameters_and_case() {
        let mut headers = HeaderMap::new();
        assert!(!is_bundle_content_type(&headers));
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("Application/vnd.openpolicyagent.bundles; charset=x"),
        );
        assert!(is_bundle_content_type(&headers));
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/gzip"),
        );
        assert!(!is_bundle_content_type(&headers));
    }

    #[test]
    fn locations_hide_passwords() {
        let url = Url::parse("https://user:secret@example.com/b/x.tar.gz").unwrap();
        let shown = redacted(&url);
        assert!(!shown.contains("secret"), "{shown}");
        assert!(shown.contains("example.com/b/x.tar.gz"), "{shown}");
    }

    #[test]
    fn bearer_needs_exactly_one_token() {
        let mut options = HttpOptions::default();
        options.credentials.bearer = Some(BearerCredentials::default());
        assert!(matches!(
            HttpClient::new(&options, Limits::default()),
            Err(SourceError::InvalidCredentials { .. })
        ));
        options.credentials.bearer = Some(BearerCredentials {
            token: Some(crate::Secret::new("t")),
            token_path: Some("/t".into()),
            ..BearerCredentials::default()
        });
        assert!(matches!(
            HttpClient::new(&options, Limits::default()),
            Err(SourceError::InvalidCredentials { .. })
        ));
    }

    #[test]
    fn bad_headers_are_refused() {
        let mut options = HttpOptions::default();
        options.headers.insert("bad header".into(), "x".into());
        assert!(matches!(
            HttpClient::new(&options, Limits::default()),
            Err(SourceError::InvalidHeader { .. })
        ));
    }
}
