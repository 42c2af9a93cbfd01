//! OPA's `GET /v1/status` and `GET /v1/config`, per tenant: what an OPA
//! client or a control plane asks an OPA for to learn which bundle revision
//! is active and how the instance is configured.
//!
//! `status` has the shape of OPA's status plugin report (`labels`,
//! `bundles.{name}` with `active_revision` and the `last_*` times, and the
//! bundle plugin's state); `config` has the shape of OPA's redacted
//! configuration (`labels`, `bundles`, `default_decision`), with no
//! credentials and no query string in a bundle's location. The same status
//! reports are what `status.service` uploads ([`reports`]). This module only
//! reads the host's snapshots: it must not change any state.

use crate::api::{tenant_of, AppResult, AppState};
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::IntoResponse;
use axum::Json;
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::SystemTime;
use tenet::{InstanceState, TenantSnapshot};

/// `GET [/tenants/{tenant}]/v1/status`.
pub(crate) async fn status(
    State(state): State<Arc<AppState>>,
    Path(params): Path<HashMap<String, String>>,
    headers: HeaderMap,
) -> AppResult {
    let snapshot = snapshot(&state, &params, &headers).await?;
    Ok(Json(json!({ "result": status_report(&snapshot) })).into_response())
}

/// `GET [/tenants/{tenant}]/v1/config`.
pub(crate) async fn config(
    State(state): State<Arc<AppState>>,
    Path(params): Path<HashMap<String, String>>,
    headers: HeaderMap,
) -> AppResult {
    let snapshot = snapshot(&state, &params, &headers).await?;
    Ok(
        Json(json!({ "result": config_report(&snapshot, &state.default_decision) }))
            .into_response(),
    )
}

/// The tenant's snapshot, loading it first when it is on demand.
async fn snapshot(
    state: &AppState,
    params: &HashMap<String, String>,
    headers: &HeaderMap,
) -> Result<TenantSnapshot, crate::ApiError> {
    let tenant = tenant_of(state, params, headers)?;
    if let Some(snapshot) = state.host.tenant(&tenant) {
        return Ok(snapshot);
    }
    state.host.ready(&tenant).await?;
    state.host.tenant(&tenant).ok_or_else(|| {
        crate::ApiError::from(tenet::HostError::TenantNotFound {
            tenant: tenant.clone(),
        })
    })
}

/// OPA's `labels`: `id` (here the tenant) and `version`, then the tenant's
/// own labels.
fn labels(snapshot: &TenantSnapshot) -> Map<String, Value> {
    let mut labels = Map::new();
    labels.insert("id".into(), json!(snapshot.tenant));
    labels.insert("version".into(), json!(env!("CARGO_PKG_VERSION")));
    for (k, v) in &snapshot.labels {
        labels.entry(k.clone()).or_insert_with(|| json!(v));
    }
    labels
}

fn rfc3339(t: Option<SystemTime>) -> Value {
    t.map_or(Value::Null, |t| {
        json!(humantime::format_rfc3339_nanos(t).to_string())
    })
}

fn status_report(s: &TenantSnapshot) -> Value {
    let mut bundle = Map::new();
    bundle.insert("name".into(), json!(s.tenant));
    if let Some(revision) = &s.revision {
        bundle.insert("active_revision".into(), json!(revision));
    }
    for (key, at) in [
        ("last_request", s.last_fetch),
        ("last_successful_download", s.last_download),
        ("last_successful_activation", s.last_activation),
    ] {
        if at.is_some() {
            bundle.insert(key.into(), rfc3339(at));
        }
    }
    if let Some(error) = &s.last_error {
        bundle.insert("code".into(), json!("bundle_error"));
        bundle.insert("message".into(), json!(error));
    }
    // As OPA's bundle plugin: OK once a revision is active, even while a
    // later download fails (that error is reported on the bundle).
    let plugin_state = match s.state {
        InstanceState::Active => "OK",
        _ => "NOT_READY",
    };
    json!({
        "labels": labels(s),
        "bundles": { s.tenant.clone(): bundle },
        "plugins": { "bundle": { "state": plugin_state } },
    })
}

/// Every tenant's status report for an upload round, with what makes a
/// report worth sending again (active revision, state, last error), and
/// its decision-log counters (OPA's `decision_logs` section of a report)
/// when decision logs are uploaded.
pub fn reports(
    host: &tenet::Host,
    logs: Option<&tenet_telemetry::DecisionLogs>,
) -> Vec<tenet_telemetry::StatusReport> {
    let dropped: HashMap<String, u64> = logs
        .map(|l| {
            l.stats()
                .into_iter()
                .map(|s| (s.tenant, s.dropped))
                .collect()
        })
        .unwrap_or_default();
    host.tenants()
        .iter()
        .map(|s| {
            let mut report = status_report(s);
            if logs.is_some() {
                let n = dropped.get(&s.tenant).copied().unwrap_or(0);
                report["decision_logs"] = json!({ "dropped": n });
            }
            tenet_telemetry::StatusReport {
                tenant: s.tenant.clone(),
                fingerprint: json!([s.revision, format!("{:?}", s.state), s.last_error]),
                report,
            }
        })
        .collect()
}

/// A bundle location without its query string, which may carry a signed
/// URL's token.
fn redacted(location: &str) -> &str {
    location.split('?').next().unwrap_or_default()
}

fn config_report(s: &TenantSnapshot, default_decision: &str) -> Value {
    json!({
        "labels": labels(s),
        "bundles": { s.tenant.clone(): { "resource": redacted(&s.source) } },
        "default_decision": format!("/{}", default_decision.trim_start_matches('/')),
    })
}

#[cfg(test)]
mod tests {
    use super::redacted;

    #[test]
    fn a_signed_location_loses_its_query_string() {
        assert_eq!(
            redacted("https://bundles.example.com/acme.tar.gz?X-Amz-Signature=secret"),
            "https://bundles.example.com/acme.tar.gz"
        );
        assert_eq!(redacted("examples/bundles/acme"), "examples/bundles/acme");
    }
}
