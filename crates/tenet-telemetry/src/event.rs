//! One decision-log event, in the shape of OPA's decision-log API (the
//! elements of the JSON array a decision-log service receives). Only
//! building and serializing; buffering is buffer.rs.

use serde::Serialize;
use serde_json::{Map, Value};

/// A decision as OPA's decision logs describe it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DecisionEvent {
    /// OPA's `labels`: `id` (this process), `version` and the tenant's
    /// labels (`tenant` among them).
    pub labels: Map<String, Value>,
    /// The id returned to the client with the decision.
    pub decision_id: String,
    /// OPA's `bundles`: the tenant's bundle (named after the tenant) and
    /// its active revision.
    pub bundles: Map<String, Value>,
    /// The decision's path, slash-separated without `data` (OPA's form).
    pub path: String,
    /// The input document; absent when the request had none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input: Option<Value>,
    /// The result; absent when the decision was undefined.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    /// The client's address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requested_by: Option<String>,
    /// The request's sequence number in this process (OPA's `req_id`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub req_id: Option<u64>,
    /// RFC 3339 time of the decision, with nanoseconds, in UTC.
    pub timestamp: String,
    /// Timers and counters of the decision (OPA's `metrics`).
    #[serde(skip_serializing_if = "Map::is_empty")]
    pub metrics: Map<String, Value>,
    /// Pointers erased by the tenant's `system.log.mask` policy.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub erased: Vec<String>,
    /// Pointers replaced by it (`upsert`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub masked: Vec<String>,
}

impl DecisionEvent {
    /// An event for `tenant` at `revision`, timestamped now.
    pub fn new(
        labels: Map<String, Value>,
        decision_id: String,
        tenant: &str,
        revision: &str,
        path: String,
    ) -> Self {
        let mut bundles = Map::new();
        bundles.insert(
            tenant.to_string(),
            serde_json::json!({ "revision": revision }),
        );
        Self {
            labels,
            decision_id,
            bundles,
            path,
            input: None,
            result: None,
            requested_by: None,
            req_id: None,
            timestamp: humantime::format_rfc3339_nanos(std::time::SystemTime::now()).to_string(),
            metrics: Map::new(),
            erased: Vec::new(),
            masked: Vec::new(),
        }
    }

    /// The event as JSON text (what is buffered and uploaded).
    pub fn to_json(&self) -> Vec<u8> {
        // Strings, maps and JSON values only: serializing cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn events_have_opas_fields_and_omit_what_is_absent() {
        let mut labels = Map::new();
        labels.insert("id".into(), json!("p1"));
        labels.insert("tenant".into(), json!("payments"));
        let mut event = DecisionEvent::new(
            labels,
            "d1".into(),
            "payments",
            "r7",
            "payments/authz/allow".into(),
        );
        event.result = Some(json!(true));
        let v: Value = serde_json::from_slice(&event.to_json()).unwrap();
        assert_eq!(v["decision_id"], "d1");
        assert_eq!(v["bundles"], json!({"payments": {"revision": "r7"}}));
        assert_eq!(v["path"], "payments/authz/allow");
        assert_eq!(v["result"], true);
        assert_eq!(v["labels"]["tenant"], "payments");
        assert!(v.get("input").is_none() && v.get("metrics").is_none());
        assert!(humantime::parse_rfc3339(v["timestamp"].as_str().unwrap()).is_ok());
    }
}
