//! An event's JSON written straight from the decision, for the common case
//! of a tenant with no `system.log` rules and no configured masks: nothing
//! then needs the event as a JSON value, so building one (the input
//! converted into a `serde_json::Value` tree, the labels copied into a new
//! map for every event) and serializing it again is skipped. The bytes are
//! exactly those `DecisionEvent::to_json` gives for the same decision
//! (tested). Only encoding; the recorder decides which path an event takes.

use crate::recorder::{Decided, LoggedInput};
use serde::Serialize;
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::io::Write;

/// Tenants whose labels are kept encoded, at most (the cache is emptied
/// when full; it refills as events arrive).
const MAX_CACHED_TENANTS: usize = 10_000;

/// Each tenant's `labels` object, encoded once per revision: the process's
/// labels, the tenant's own, then `tenant`, as `DecisionEvent` holds them.
#[derive(Default)]
pub(crate) struct LabelCache {
    by_tenant: HashMap<String, (String, Vec<u8>)>,
}

impl LabelCache {
    /// The encoded labels of `tenant` at `revision`, built with `own`
    /// (the tenant's labels) when not cached for that revision.
    pub(crate) fn get(
        &mut self,
        process: &Map<String, Value>,
        tenant: &str,
        revision: &str,
        own: impl FnOnce() -> Map<String, Value>,
    ) -> &[u8] {
        let fresh = self
            .by_tenant
            .get(tenant)
            .is_some_and(|(cached, _)| cached == revision);
        if !fresh {
            if self.by_tenant.len() >= MAX_CACHED_TENANTS {
                self.by_tenant.clear();
            }
            let mut labels = process.clone();
            labels.extend(own());
            labels.insert("tenant".into(), Value::String(tenant.to_string()));
            let encoded = serde_json::to_vec(&labels).unwrap_or_default();
            self.by_tenant
                .insert(tenant.to_string(), (revision.to_string(), encoded));
        }
        self.by_tenant
            .get(tenant)
            .map_or(&[][..], |(_, encoded)| encoded.as_slice())
    }
}

/// Appends `value`'s JSON (strings escaped as serde_json escapes them).
fn put<T: Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) {
    // Strings, numbers and JSON values only: serializing cannot fail.
    let _ = serde_json::to_writer(&mut *out, value);
}

/// The event of `d`, with `labels` already encoded, as `DecisionEvent`
/// serializes it (same fields, same order, same omissions).
pub(crate) fn event_json(labels: &[u8], d: Decided) -> Vec<u8> {
    let mut out = Vec::with_capacity(512);
    out.extend_from_slice(b"{\"labels\":");
    out.extend_from_slice(labels);
    out.extend_from_slice(b",\"decision_id\":");
    put(&mut out, &d.decision_id);
    out.extend_from_slice(b",\"bundles\":{");
    put(&mut out, &d.tenant);
    out.extend_from_slice(b":{\"revision\":");
    put(&mut out, &d.revision);
    out.extend_from_slice(b"}},\"path\":");
    put(&mut out, &d.path);
    match d.input {
        Some(LoggedInput::Json(v)) => {
            out.extend_from_slice(b",\"input\":");
            put(&mut out, &v);
        }
        Some(LoggedInput::Deferred(f)) => {
            if let Some(v) = f() {
                out.extend_from_slice(b",\"input\":");
                put(&mut out, &v);
            }
        }
        Some(LoggedInput::Document(doc)) => {
            let mark = out.len();
            out.extend_from_slice(b",\"input\":");
            if !doc.write_json(&mut out) {
                out.truncate(mark);
            }
        }
        None => {}
    }
    if let Some(result) = &d.result {
        out.extend_from_slice(b",\"result\":");
        put(&mut out, result);
    }
    if let Some(by) = &d.requested_by {
        out.extend_from_slice(b",\"requested_by\":");
        put(&mut out, by);
    }
    if let Some(id) = d.req_id {
        out.extend_from_slice(b",\"req_id\":");
        put(&mut out, &id);
    }
    // RFC 3339 text has nothing JSON escapes: written as it is formatted.
    let _ = write!(
        out,
        ",\"timestamp\":\"{}\"",
        humantime::format_rfc3339_nanos(d.at)
    );
    if !d.metrics.is_empty() {
        out.extend_from_slice(b",\"metrics\":{");
        for (i, (name, value)) in d.metrics.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            put(&mut out, name);
            out.push(b':');
            put(&mut out, value);
        }
        out.push(b'}');
    }
    out.push(b'}');
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::recorder::{event, InputDocument};
    use serde_json::json;
    use std::time::{Duration, SystemTime};

    /// An input held as JSON text, as an engine value would write itself.
    struct Text(Option<String>);

    impl InputDocument for Text {
        fn to_value(&self) -> Option<Value> {
            self.0.as_ref().map(|t| serde_json::from_str(t).unwrap())
        }
        fn write_json(&self, out: &mut Vec<u8>) -> bool {
            self.0
                .as_ref()
                .map(|t| out.extend_from_slice(t.as_bytes()))
                .is_some()
        }
    }

    fn input(kind: usize, doc: &Value) -> Option<LoggedInput> {
        let text = doc.to_string();
        match kind {
            0 => Some(LoggedInput::Json(doc.clone())),
            1 => {
                let doc = doc.clone();
                Some(LoggedInput::Deferred(Box::new(move || Some(doc))))
            }
            2 => Some(LoggedInput::Document(Box::new(Text(Some(text))))),
            3 => Some(LoggedInput::Document(Box::new(Text(None)))),
            4 => Some(LoggedInput::Deferred(Box::new(|| None))),
            _ => None,
        }
    }

    fn decided(kind: usize, full: bool) -> Decided {
        let doc =
            json!({"user": "al\"ice\n", "amount": 12.5, "tags": ["a", {"b": null}], "ü": "é"});
        Decided {
            tenant: "pay\"ments".into(),
            decision_id: "d-1".into(),
            path: "payments/authz/allow".into(),
            revision: "r\\7".into(),
            input: input(kind, &doc),
            result: full.then(|| json!({"allowed": true, "reasons": ["x", 1, 2.5]})),
            at: SystemTime::UNIX_EPOCH + Duration::new(1_790_000_000, 123_456_789),
            requested_by: full.then(|| "127.0.0.1:4242".to_string()),
            req_id: full.then_some(42),
            metrics: if full {
                vec![("timer_server_handler_ns", 1234), ("counter_x", u64::MAX)]
            } else {
                vec![]
            },
        }
    }

    #[test]
    fn the_direct_encoding_is_byte_for_byte_the_events() {
        let mut process = Map::new();
        process.insert("id".into(), json!("p1"));
        process.insert("version".into(), json!("0.1.0"));
        // The tenant's labels may repeat the process's and name `tenant`.
        let mut own = Map::new();
        own.insert("app".into(), json!("pay"));
        own.insert("id".into(), json!("overridden"));
        own.insert("tenant".into(), json!("stale"));
        let mut cache = LabelCache::default();
        for kind in 0..6 {
            for full in [false, true] {
                let labels = cache.get(&process, "pay\"ments", "r\\7", || own.clone());
                let direct = event_json(labels, decided(kind, full));
                let mut merged = process.clone();
                merged.extend(own.clone());
                let expected = event(&merged, decided(kind, full)).to_json();
                assert_eq!(
                    String::from_utf8(direct).unwrap(),
                    String::from_utf8(expected).unwrap(),
                    "input kind {kind}, full {full}"
                );
            }
        }
    }

    #[test]
    fn labels_are_encoded_again_for_a_new_revision() {
        let process = Map::new();
        let mut cache = LabelCache::default();
        let first = cache
            .get(&process, "t", "r1", || {
                Map::from_iter([("team".to_string(), json!("a"))])
            })
            .to_vec();
        // Same revision: the cached encoding, whatever the tenant says now.
        let same = cache
            .get(&process, "t", "r1", || {
                Map::from_iter([("team".to_string(), json!("b"))])
            })
            .to_vec();
        let next = cache
            .get(&process, "t", "r2", || {
                Map::from_iter([("team".to_string(), json!("b"))])
            })
            .to_vec();
        assert_eq!(first, same);
        assert_eq!(next, br#"{"team":"b","tenant":"t"}"#.to_vec());
    }
}
