//! Uploading decision logs as OPA does: each tenant's buffered events are
//! sent as gzip-compressed JSON arrays of at most `upload_size_limit_bytes`
//! of events (one event past it goes alone), by `POST` to the service's
//! URL joined with the resource (`{tenant}` in it is the tenant), at a
//! random delay between `min_delay` and `max_delay`. A chunk the service
//! does not accept (no answer, or a status other than 2xx) goes back in
//! front of the tenant's buffer and the next round comes sooner, doubling
//! from one second up to `max_delay`. At most `max_concurrent` uploads run
//! at once, so ten thousand tenants do not open ten thousand connections.
//!
//! The HTTP client (credentials, TLS, headers, timeouts) is the bundle
//! sources' `HttpClient`, configured from the same OPA `services` entry.

use crate::DecisionLogs;
use flate2::write::GzEncoder;
use futures_util::stream::{self, StreamExt};
use std::io::Write;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tenet_source::{HttpClient, Url};

/// Where and how decision logs are uploaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadConfig {
    /// The decision-log service's URL (OPA's `services.<name>.url`).
    pub url: String,
    /// Path under it (OPA's `decision_logs.resource`, default `/logs`);
    /// `{tenant}` is replaced by the tenant.
    pub resource: String,
    /// Uncompressed bytes of events per upload (OPA's
    /// `reporting.upload_size_limit_bytes`, default 32,768).
    pub upload_size_limit_bytes: u64,
    /// Shortest and longest delay between rounds (OPA's
    /// `reporting.min_delay_seconds` 300 and `max_delay_seconds` 600).
    pub min_delay: Duration,
    pub max_delay: Duration,
    /// Most uploads at once. Default 4.
    pub max_concurrent: usize,
}

impl Default for UploadConfig {
    fn default() -> Self {
        Self {
            url: String::new(),
            resource: "/logs".into(),
            upload_size_limit_bytes: 32_768,
            min_delay: Duration::from_secs(300),
            max_delay: Duration::from_secs(600),
            max_concurrent: 4,
        }
    }
}

/// Why an upload failed (the events are kept for the next round).
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum UploadError {
    #[error("decision-log service URL {url:?} is invalid: {reason}")]
    InvalidUrl { url: String, reason: String },
    #[error("{0}")]
    Request(String),
    #[error("decision-log service answered {status} at {url}")]
    Status { url: String, status: u16 },
}

/// What one round of uploads did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoundReport {
    /// Events the service accepted.
    pub uploaded: u64,
    /// Uploads that failed (their events were kept).
    pub failed: u64,
}

impl UploadConfig {
    /// The URL a tenant's events go to.
    pub fn url_for(&self, tenant: &str) -> Result<Url, UploadError> {
        service_url(&self.url, &self.resource, tenant)
    }
}

/// A service's `url` joined with `resource`, `{tenant}` in it replaced (as
/// OPA joins a service's URL and a plugin's resource).
pub(crate) fn service_url(url: &str, resource: &str, tenant: &str) -> Result<Url, UploadError> {
    let resource = resource.replace("{tenant}", tenant);
    let joined = format!(
        "{}/{}",
        url.trim_end_matches('/'),
        resource.trim_start_matches('/')
    );
    Url::parse(&joined).map_err(|e| UploadError::InvalidUrl {
        url: joined,
        reason: e.to_string(),
    })
}

/// `POST`s `body` to `url`; anything but a 2xx answer is an error.
pub(crate) async fn post(
    client: &HttpClient,
    url: Url,
    gzip: bool,
    body: Vec<u8>,
) -> Result<(), UploadError> {
    let status = client
        .post(url.clone(), gzip, body)
        .await
        .map_err(|e| UploadError::Request(e.to_string()))?;
    if (200..300).contains(&status) {
        Ok(())
    } else {
        Err(UploadError::Status {
            url: url.to_string(),
            status,
        })
    }
}

impl DecisionLogs {
    /// Uploads in rounds on the current tokio runtime until the returned
    /// task is aborted (or the runtime ends).
    pub fn start_upload(
        &self,
        client: HttpClient,
        config: UploadConfig,
    ) -> tokio::task::JoinHandle<()> {
        let logs = self.clone();
        tokio::spawn(async move {
            let mut retry: Option<Duration> = None;
            loop {
                let delay =
                    retry.unwrap_or_else(|| random_between(config.min_delay, config.max_delay));
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    () = logs.inner.flush.notified() => {}
                }
                let report = logs.upload_round(&client, &config).await;
                retry = (report.failed > 0).then(|| {
                    retry
                        .map_or(Duration::from_secs(1), |d| d.saturating_mul(2))
                        .min(config.max_delay)
                });
            }
        })
    }

    /// One round: every tenant's buffered events, chunked, at most
    /// `max_concurrent` uploads at once.
    pub async fn upload_round(&self, client: &HttpClient, config: &UploadConfig) -> RoundReport {
        let tenants = self.waiting();
        let reports: Vec<RoundReport> = stream::iter(tenants)
            .map(|tenant| async move { self.upload_tenant(client, config, &tenant).await })
            .buffer_unordered(config.max_concurrent.max(1))
            .collect()
            .await;
        reports
            .into_iter()
            .fold(RoundReport::default(), |a, b| RoundReport {
                uploaded: a.uploaded + b.uploaded,
                failed: a.failed + b.failed,
            })
    }

    async fn upload_tenant(
        &self,
        client: &HttpClient,
        config: &UploadConfig,
        tenant: &str,
    ) -> RoundReport {
        let mut report = RoundReport::default();
        let Some(log) = self.log(tenant) else {
            return report;
        };
        loop {
            let chunk = self.take(&log, config.upload_size_limit_bytes);
            if chunk.is_empty() {
                return report;
            }
            match send(client, config, tenant, &chunk).await {
                Ok(()) => {
                    report.uploaded += chunk.len() as u64;
                    log.uploaded
                        .fetch_add(chunk.len() as u64, Ordering::Relaxed);
                }
                Err(e) => {
                    tracing::warn!(tenant, error = %e, events = chunk.len(), "decision-log upload failed; kept for the next round");
                    self.requeue(&log, chunk);
                    report.failed += 1;
                    return report;
                }
            }
        }
    }
}

/// One chunk as a gzip-compressed JSON array.
async fn send(
    client: &HttpClient,
    config: &UploadConfig,
    tenant: &str,
    chunk: &[Vec<u8>],
) -> Result<(), UploadError> {
    post(client, config.url_for(tenant)?, true, gzip_array(chunk)).await
}

/// `[e1,e2,…]`, gzip-compressed.
fn gzip_array(events: &[Vec<u8>]) -> Vec<u8> {
    let mut gz = GzEncoder::new(Vec::new(), flate2::Compression::fast());
    // Writing to a Vec cannot fail.
    let _ = gz.write_all(b"[");
    for (i, event) in events.iter().enumerate() {
        if i > 0 {
            let _ = gz.write_all(b",");
        }
        let _ = gz.write_all(event);
    }
    let _ = gz.write_all(b"]");
    gz.finish().unwrap_or_default()
}

fn random_between(min: Duration, max: Duration) -> Duration {
    if max <= min {
        return min;
    }
    let span = u64::try_from((max - min).as_millis()).unwrap_or(u64::MAX);
    min + Duration::from_millis(fastrand::u64(0..=span))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn chunks_are_gzip_json_arrays_and_urls_take_the_tenant() {
        let body = gzip_array(&[b"{\"a\":1}".to_vec(), b"{\"b\":2}".to_vec()]);
        let mut text = String::new();
        flate2::read::GzDecoder::new(&body[..])
            .read_to_string(&mut text)
            .unwrap();
        assert_eq!(text, r#"[{"a":1},{"b":2}]"#);
        let config = UploadConfig {
            url: "http://127.0.0.1:1/v1/".into(),
            resource: "/logs/{tenant}".into(),
            ..UploadConfig::default()
        };
        assert_eq!(
            config.url_for("payments").unwrap().as_str(),
            "http://127.0.0.1:1/v1/logs/payments"
        );
        for _ in 0..100 {
            let d = random_between(Duration::from_secs(1), Duration::from_secs(2));
            assert!(d >= Duration::from_secs(1) && d <= Duration::from_secs(2));
        }
    }
}
