//! Status uploads in the shape of OPA's status API: each tenant's status
//! report (built by the server) is `POST`ed as JSON to the status service
//! when what it says changed (active revision, plugin state, the last
//! error: what a control plane acts on), at most once per round, rounds
//! being `interval` apart, so ten thousand tenants reloading at once cost
//! one upload each per round, with at most `max_concurrent` at once, and
//! not a burst per event. A report the service does not accept is sent
//! again next round.

use crate::upload::{post, service_url, RoundReport, UploadError};
use futures_util::stream::{self, StreamExt};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;
use tenet_source::{HttpClient, Url};

/// Where and how often status reports go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusConfig {
    /// The status service's URL (OPA's `services.<name>.url`).
    pub url: String,
    /// Path under it; `{tenant}` is the tenant. Default `/status`, as OPA.
    pub resource: String,
    /// Time between rounds. Default 5 s.
    pub interval: Duration,
    /// Most uploads at once. Default 4.
    pub max_concurrent: usize,
}

impl Default for StatusConfig {
    fn default() -> Self {
        Self {
            url: String::new(),
            resource: "/status".into(),
            interval: Duration::from_secs(5),
            max_concurrent: 4,
        }
    }
}

impl StatusConfig {
    /// The URL `tenant`'s reports go to.
    pub fn url_for(&self, tenant: &str) -> Result<Url, UploadError> {
        service_url(&self.url, &self.resource, tenant)
    }
}

/// One tenant's report for a round: the document, and the parts of it
/// whose change makes it worth sending.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusReport {
    pub tenant: String,
    pub report: Value,
    /// Compared with the last accepted upload's; equal means not sent.
    pub fingerprint: Value,
}

/// What was last accepted per tenant.
#[derive(Debug, Default)]
pub struct StatusUploads {
    sent: Mutex<HashMap<String, Value>>,
}

impl StatusUploads {
    pub fn new() -> Self {
        Self::default()
    }

    /// Sends the reports that changed since their tenant's last accepted
    /// upload; forgets tenants that are no longer reported.
    pub async fn round(
        &self,
        client: &HttpClient,
        config: &StatusConfig,
        reports: Vec<StatusReport>,
    ) -> RoundReport {
        let changed: Vec<StatusReport> = {
            let mut sent = self.sent.lock().unwrap_or_else(|p| p.into_inner());
            let present: std::collections::HashSet<&str> =
                reports.iter().map(|r| r.tenant.as_str()).collect();
            sent.retain(|t, _| present.contains(t.as_str()));
            reports
                .into_iter()
                .filter(|r| sent.get(&r.tenant) != Some(&r.fingerprint))
                .collect()
        };
        let outcomes: Vec<(StatusReport, Result<(), UploadError>)> = stream::iter(changed)
            .map(|r| async move {
                let result = send(client, config, &r).await;
                (r, result)
            })
            .buffer_unordered(config.max_concurrent.max(1))
            .collect()
            .await;
        let mut round = RoundReport::default();
        let mut sent = self.sent.lock().unwrap_or_else(|p| p.into_inner());
        for (r, result) in outcomes {
            match result {
                Ok(()) => {
                    round.uploaded += 1;
                    sent.insert(r.tenant, r.fingerprint);
                }
                Err(e) => {
                    round.failed += 1;
                    tracing::warn!(tenant = %r.tenant, error = %e, "status upload failed; sent again next round");
                }
            }
        }
        round
    }
}

async fn send(
    client: &HttpClient,
    config: &StatusConfig,
    r: &StatusReport,
) -> Result<(), UploadError> {
    let body = serde_json::to_vec(&r.report).unwrap_or_default();
    post(client, config.url_for(&r.tenant)?, false, body).await
}
