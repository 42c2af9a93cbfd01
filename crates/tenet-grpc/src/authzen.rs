//! The OpenID AuthZEN Authorization API's evaluation mapping, shared by
//! the HTTP endpoints (tenet-server's `authzen`) and the gRPC
//! `AuthzenEvaluation(s)` calls: a request's `subject`, `action`,
//! `resource` and `context` are the input document, as they arrive; the
//! tenant's policy at `path` (or its entry in `tenant_paths`) decides. A
//! boolean result is the decision; an object `{"decision": bool,
//! "context": {…}}` is returned as it is (reasons for the PEP); an
//! undefined result is a denial, as a PEP expects one.
//!
//! `evaluations` takes the request's top-level fields as defaults that an
//! item's own fields replace, runs the items in order, and stops early as
//! `options.evaluations_semantic` says (`execute_all`, the default;
//! `deny_on_first_deny`; `permit_on_first_permit`). An item that cannot be
//! decided is a denial carrying `context.error` (`status`, `message`; the
//! HTTP status the item alone would have had); a request without items is
//! a single evaluation. Pure mapping: the caller decides (a closure) and
//! owns transport, tenants and errors.

use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::future::Future;

/// Where tenants' AuthZEN decisions are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthzenConfig {
    /// Decision path for every tenant. Default `authzen/allow`.
    pub path: String,
    /// Paths of tenants that decide elsewhere.
    pub tenant_paths: BTreeMap<String, String>,
    /// Most items in one `evaluations` request (refused past it). Default
    /// 1,000.
    pub max_evaluations: usize,
}

impl Default for AuthzenConfig {
    fn default() -> Self {
        Self {
            path: "authzen/allow".into(),
            tenant_paths: BTreeMap::new(),
            max_evaluations: 1_000,
        }
    }
}

impl AuthzenConfig {
    /// The decision path of `tenant`.
    pub fn path(&self, tenant: &str) -> &str {
        self.tenant_paths.get(tenant).unwrap_or(&self.path)
    }
}

const FIELDS: [&str; 4] = ["subject", "action", "resource", "context"];

/// A result that is neither a boolean nor `{"decision": bool, …}`: the
/// policy's fault (HTTP 500, gRPC `INTERNAL`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the decision at {path} is {found}, not a boolean or {{\"decision\": bool, \"context\": {{…}}}}")]
pub struct ShapeError {
    /// The decision path.
    pub path: String,
    /// The result, shortened.
    pub found: String,
}

/// One evaluation of a request: the item's fields where it has them, else
/// the request's; AuthZEN's required fields checked (the error is the
/// caller's: HTTP 400, gRPC `INVALID_ARGUMENT`).
pub fn evaluation(
    request: &Map<String, Value>,
    item: &Map<String, Value>,
) -> Result<Map<String, Value>, String> {
    let evaluation: Map<String, Value> = FIELDS
        .iter()
        .filter_map(|f| {
            item.get(*f)
                .or_else(|| request.get(*f))
                .map(|v| (f.to_string(), v.clone()))
        })
        .collect();
    check(&evaluation)?;
    Ok(evaluation)
}

/// AuthZEN's required fields: `subject` and `resource` with string `type`
/// and `id`, `action` with a string `name`, `context` an object if given.
fn check(evaluation: &Map<String, Value>) -> Result<(), String> {
    let has = |field: &str, keys: &[&str]| -> Result<(), String> {
        let Some(Value::Object(o)) = evaluation.get(field) else {
            return Err(format!("{field} is required and must be an object"));
        };
        for key in keys {
            if !o.get(*key).is_some_and(Value::is_string) {
                return Err(format!("{field}.{key} is required and must be a string"));
            }
        }
        Ok(())
    };
    has("subject", &["type", "id"])?;
    has("action", &["name"])?;
    has("resource", &["type", "id"])?;
    match evaluation.get("context") {
        None | Some(Value::Object(_)) => Ok(()),
        Some(_) => Err("context must be an object".into()),
    }
}

/// A decision as AuthZEN answers it.
pub fn answer(result: Option<Value>, path: &str) -> Result<Value, ShapeError> {
    match result {
        None => Ok(json!({ "decision": false })),
        Some(Value::Bool(b)) => Ok(json!({ "decision": b })),
        Some(Value::Object(o)) if o.get("decision").is_some_and(Value::is_boolean) => {
            let mut answer = Map::new();
            answer.insert("decision".into(), o["decision"].clone());
            if let Some(context) = o.get("context").filter(|c| c.is_object()) {
                answer.insert("context".into(), context.clone());
            }
            Ok(Value::Object(answer))
        }
        Some(other) => Err(ShapeError {
            path: path.to_string(),
            found: short(&other),
        }),
    }
}

fn short(value: &Value) -> String {
    let text = value.to_string();
    match text.char_indices().nth(100) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text,
    }
}

/// An item's failure as its answer: a denial with `context.error`.
pub fn item_error(status: u16, message: String) -> Value {
    json!({ "decision": false, "context": { "error": { "status": status, "message": message } } })
}

/// An `evaluations` request with items, checked before anything decides.
#[derive(Debug)]
pub struct Batch {
    items: Vec<Value>,
    /// The answer that stops the run (`None`: run every item).
    stop_on: Option<bool>,
}

/// The items of an `evaluations` request: `None` when it has none (a
/// single evaluation); an error (the caller's) for a wrong shape, too many
/// items or an unknown semantic.
pub fn batch(request: &Map<String, Value>, max: usize) -> Result<Option<Batch>, String> {
    let items = match request.get("evaluations") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Array(items)) if items.is_empty() => return Ok(None),
        Some(Value::Array(items)) => items.clone(),
        Some(_) => return Err("evaluations must be an array".into()),
    };
    if items.len() > max {
        return Err(format!(
            "{} evaluations in one request; the limit is {max} (authzen.max_evaluations)",
            items.len()
        ));
    }
    let semantic = request
        .get("options")
        .and_then(|o| o.get("evaluations_semantic"))
        .map_or(Ok("execute_all"), |s| s.as_str().ok_or(()))
        .map_err(|()| "options.evaluations_semantic must be a string".to_string())?;
    let stop_on = match semantic {
        "execute_all" => None,
        "deny_on_first_deny" => Some(false),
        "permit_on_first_permit" => Some(true),
        other => {
            return Err(format!(
                "options.evaluations_semantic {other:?} is not execute_all, deny_on_first_deny or permit_on_first_permit"
            ))
        }
    };
    Ok(Some(Batch { items, stop_on }))
}

impl Batch {
    /// Runs the items in order through `decide` (an evaluation → its
    /// answer, or the HTTP status and message of its failure), stopping
    /// as the semantic says: `{"evaluations": [answers…]}`.
    pub async fn run<F, Fut>(self, request: &Map<String, Value>, mut decide: F) -> Value
    where
        F: FnMut(Map<String, Value>) -> Fut,
        Fut: Future<Output = Result<Value, (u16, String)>>,
    {
        let mut answers = Vec::with_capacity(self.items.len());
        for item in &self.items {
            // Items of an active tenant decide without waiting: yield, so a
            // large request does not hold its worker thread.
            tokio::task::yield_now().await;
            let Value::Object(item) = item else {
                answers.push(item_error(400, "an evaluation must be an object".into()));
                continue;
            };
            let answer = match evaluation(request, item) {
                Err(message) => item_error(400, message),
                Ok(evaluation) => match decide(evaluation).await {
                    Ok(answer) => answer,
                    Err((status, message)) => item_error(status, message),
                },
            };
            let decision = answer["decision"].as_bool();
            answers.push(answer);
            if self.stop_on.is_some() && decision == self.stop_on {
                break;
            }
        }
        json!({ "evaluations": answers })
    }
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

    #[tokio::test]
    async fn items_inherit_the_request_fields_and_stop_as_the_semantic_says() {
        let request = obj(json!({
            "subject": {"type": "user", "id": "alice"},
            "action": {"name": "read"},
            "options": {"evaluations_semantic": "deny_on_first_deny"},
            "evaluations": [
                {"resource": {"type": "doc", "id": "1"}},
                {"resource": {"type": "doc", "id": "2"}},
                {"resource": {"type": "doc", "id": "3"}},
            ],
        }));
        let out = batch(&request, 10)
            .unwrap()
            .unwrap()
            .run(&request, |e| async move {
                assert_eq!(e["subject"]["id"], "alice");
                Ok(json!({"decision": e["resource"]["id"] != "2"}))
            })
            .await;
        assert_eq!(
            out,
            json!({"evaluations": [{"decision": true}, {"decision": false}]})
        );
    }

    #[test]
    fn bad_requests_and_results_are_named() {
        let r = obj(json!({"evaluations": [{}, {}], "options": {"evaluations_semantic": "x"}}));
        assert!(batch(&r, 10).unwrap_err().contains("is not execute_all"));
        assert!(batch(&r, 1).unwrap_err().contains("the limit is 1"));
        assert!(batch(&obj(json!({"evaluations": []})), 1)
            .unwrap()
            .is_none());
        let e = evaluation(&obj(json!({"subject": {"type": "u"}})), &Map::new()).unwrap_err();
        assert_eq!(e, "subject.id is required and must be a string");
        assert_eq!(answer(None, "p").unwrap(), json!({"decision": false}));
        assert_eq!(
            answer(
                Some(json!({"decision": true, "context": {"r": 1}, "x": 2})),
                "p"
            )
            .unwrap(),
            json!({"decision": true, "context": {"r": 1}})
        );
        assert!(answer(Some(json!(3)), "a/b")
            .unwrap_err()
            .to_string()
            .contains("at a/b is 3"));
    }
}
