//! The status page (`GET /`, `GET /ui`): one HTML document with its
//! script and style inline (no build step, no external assets) that reads
//! the admin API from the browser: tenants with state, revision, last
//! activation, decisions per second, error and cache-hit rates, isolation
//! level and last error; a filter; refreshed every two seconds; one
//! tenant's status document and recent decision ids. The page itself holds
//! no data, so it is served without a token; every call it makes is an
//! admin call, with the token typed into it (kept in the tab's session
//! storage) when one is set. Also `GET /v1/tenants/{id}/decisions`: the
//! recent decisions the page lists.

use crate::api::{AppResult, AppState};
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::IntoResponse;
use axum::Json;
use serde::Serialize;
use serde_json::json;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

/// The page.
const PAGE: &str = include_str!("page.html");

/// Recent decisions kept per tenant.
const PER_TENANT: usize = 20;

/// Most tenants whose recent decisions are kept (a tenant past it is not
/// tracked until another leaves).
const MAX_TENANTS: usize = 1_000;

/// `GET /` and `GET /ui`.
pub(crate) async fn page() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
            // Inline script and style only; data from this origin only.
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'",
            ),
        ],
        PAGE,
    )
}

/// One recent decision (its time formatted when it is read, not on the
/// decision path).
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Recent {
    decision_id: String,
    path: String,
    outcome: &'static str,
    #[serde(rename = "timestamp", serialize_with = "rfc3339")]
    at: SystemTime,
}

fn rfc3339<S: serde::Serializer>(at: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&humantime::format_rfc3339_millis(*at))
}

/// The last decisions of each tenant (only while decision logging gives
/// decisions ids), bounded in tenants and per tenant.
#[derive(Debug, Default)]
pub(crate) struct RecentDecisions {
    by_tenant: Mutex<HashMap<String, VecDeque<Recent>>>,
}

impl RecentDecisions {
    pub(crate) fn add(
        &self,
        tenant: &str,
        decision_id: &str,
        path: &str,
        result: Option<&serde_json::Value>,
        at: SystemTime,
    ) {
        let recent = Recent {
            decision_id: decision_id.to_string(),
            path: path.to_string(),
            outcome: tenet::Outcome::of(result).as_str(),
            at,
        };
        let mut by_tenant = self.by_tenant.lock().unwrap_or_else(|p| p.into_inner());
        // The tenant's name is copied only the first time.
        if !by_tenant.contains_key(tenant) {
            if by_tenant.len() >= MAX_TENANTS {
                return;
            }
            by_tenant.insert(tenant.to_string(), VecDeque::new());
        }
        let Some(list) = by_tenant.get_mut(tenant) else {
            return;
        };
        if list.len() == PER_TENANT {
            list.pop_back();
        }
        list.push_front(recent);
    }

    fn of(&self, tenant: &str) -> Vec<Recent> {
        self.by_tenant
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(tenant)
            .map(|l| l.iter().cloned().collect())
            .unwrap_or_default()
    }
}

/// `GET /v1/tenants/{id}/decisions`: its recent decisions, newest first.
pub(crate) async fn decisions(
    State(state): State<Arc<AppState>>,
    Path(tenant): Path<String>,
) -> AppResult {
    tenet::validate_tenant(&tenant)?;
    Ok(Json(json!({ "result": state.recent.of(&tenant) })).into_response())
}
