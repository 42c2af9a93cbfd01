//! Manetu-style PORC requests (`principal`, `operation`, `resource`,
//! `context`), shared by the HTTP endpoint (`POST [/tenants/{t}]/v1/porc`)
//! and the gRPC `Porc` call: the request is checked, made the input
//! document (as it arrives, or in AuthZEN's shape, per configuration) and
//! decided at the tenant's PORC path; the answer is AuthZEN's
//! (`{"decision": bool, "context"?: {…}}`, undefined a denial). Pure
//! mapping: no decisions, no transport.

use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

/// How a PORC request becomes the input document.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PorcInput {
    /// `{principal, operation, resource, context}` as sent (the default).
    #[default]
    Porc,
    /// AuthZEN's shape, so one policy serves both: `subject` is the
    /// principal (with `type: "principal"` and `id` its `sub` when it has
    /// none), `action` is `{"name": operation}`, `resource` is the
    /// resource (a string MRN becomes `{"type": "mrn", "id": …}`),
    /// `context` the context.
    Authzen,
}

/// Where tenants' PORC decisions are, and the input's shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PorcConfig {
    /// Decision path for every tenant. Default `porc/allow`.
    pub path: String,
    /// Paths of tenants that decide elsewhere.
    pub tenant_paths: BTreeMap<String, String>,
    /// The input's shape. Default `porc`.
    pub input: PorcInput,
}

impl Default for PorcConfig {
    fn default() -> Self {
        Self {
            path: "porc/allow".into(),
            tenant_paths: BTreeMap::new(),
            input: PorcInput::Porc,
        }
    }
}

impl PorcConfig {
    /// The decision path of `tenant`.
    pub fn path(&self, tenant: &str) -> &str {
        self.tenant_paths.get(tenant).unwrap_or(&self.path)
    }
}

/// The input document of a PORC request, or why the request is not one
/// (the caller's error). `principal` must be an object, `operation` a
/// non-empty string, `resource` an object or a non-empty string,
/// `context` an object if given; other fields are refused.
pub fn input(request: &Map<String, Value>, shape: PorcInput) -> Result<Value, String> {
    if let Some(unknown) = request
        .keys()
        .find(|k| !["principal", "operation", "resource", "context"].contains(&k.as_str()))
    {
        return Err(format!(
            "unknown field {unknown:?}: a PORC request has principal, operation, resource and context"
        ));
    }
    let Some(Value::Object(principal)) = request.get("principal") else {
        return Err("principal is required and must be an object".into());
    };
    let operation = match request.get("operation") {
        Some(Value::String(s)) if !s.is_empty() => s,
        _ => return Err("operation is required and must be a non-empty string".into()),
    };
    let resource = match request.get("resource") {
        Some(r @ Value::Object(_)) => r,
        Some(r @ Value::String(s)) if !s.is_empty() => r,
        _ => return Err("resource is required and must be an object or an MRN string".into()),
    };
    let context = match request.get("context") {
        None => None,
        Some(c @ Value::Object(_)) => Some(c),
        Some(_) => return Err("context must be an object".into()),
    };
    Ok(match shape {
        PorcInput::Porc => Value::Object(request.clone()),
        PorcInput::Authzen => {
            let mut subject = principal.clone();
            subject
                .entry("type")
                .or_insert_with(|| Value::String("principal".into()));
            if !subject.contains_key("id") {
                if let Some(sub) = principal.get("sub") {
                    subject.insert("id".into(), sub.clone());
                }
            }
            let resource = match resource {
                Value::String(mrn) => json!({"type": "mrn", "id": mrn}),
                other => other.clone(),
            };
            let mut doc = json!({
                "subject": subject,
                "action": {"name": operation},
                "resource": resource,
            });
            if let Some(c) = context {
                doc["context"] = c.clone();
            }
            doc
        }
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn obj(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(o) => o,
            _ => Map::new(),
        }
    }

    #[test]
    fn requests_become_inputs_as_configured() {
        let r = obj(json!({
            "principal": {"sub": "alice", "mroles": ["mrn:iam:role:admin"]},
            "operation": "vault:admin:create",
            "resource": "mrn:vault:acme:v1",
            "context": {"ip": "10.0.0.1"},
        }));
        assert_eq!(
            input(&r, PorcInput::Porc).unwrap(),
            Value::Object(r.clone())
        );
        assert_eq!(
            input(&r, PorcInput::Authzen).unwrap(),
            json!({
                "subject": {"type": "principal", "id": "alice", "sub": "alice", "mroles": ["mrn:iam:role:admin"]},
                "action": {"name": "vault:admin:create"},
                "resource": {"type": "mrn", "id": "mrn:vault:acme:v1"},
                "context": {"ip": "10.0.0.1"},
            })
        );
    }

    #[test]
    fn malformed_requests_are_named() {
        for (bad, says) in [
            (
                json!({"operation": "x", "resource": "r"}),
                "principal is required",
            ),
            (
                json!({"principal": {}, "resource": "r"}),
                "operation is required",
            ),
            (
                json!({"principal": {}, "operation": "x", "resource": 3}),
                "resource is required",
            ),
            (
                json!({"principal": {}, "operation": "x", "resource": "r", "context": []}),
                "context must be an object",
            ),
            (
                json!({"principal": {}, "operation": "x", "resource": "r", "subject": {}}),
                "unknown field \"subject\"",
            ),
        ] {
            let e = input(&obj(bad.clone()), PorcInput::Porc).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }
}
