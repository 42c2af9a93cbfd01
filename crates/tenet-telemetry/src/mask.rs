//! Masking a decision-log event as OPA's `system.log.mask` policy asks:
//! the policy's result is a set of JSON pointers into `/input` or
//! `/result` to erase (`"/input/password"`), or of objects
//! `{"op": "remove"|"upsert", "path": …, "value": …}`; each rule that
//! applied is listed in the event's `erased` or `masked`. A pointer that
//! names nothing is skipped, as in OPA; a pointer outside `/input` and
//! `/result` or a malformed rule fails the whole set (the caller then drops
//! the event rather than log what should have been masked).
//!
//! Keys are the pointer's segments as written (`~0`/`~1` are not
//! decoded, as OPA does not decode them either). No evaluation here: the
//! server evaluates the tenant's policy and hands over its result.

use crate::DecisionEvent;
use serde_json::{Map, Value};

/// Why a mask result cannot be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("system.log.mask: {0}")]
pub struct MaskError(String);

#[derive(Debug, Clone, PartialEq)]
enum Op {
    Remove,
    Upsert(Value),
}

#[derive(Debug, Clone, PartialEq)]
struct Rule {
    op: Op,
    /// `input` or `result`, then the keys below it.
    parts: Vec<String>,
}

impl Rule {
    fn parse(item: &Value) -> Result<Self, MaskError> {
        let (path, op) = match item {
            Value::String(path) => (path.as_str(), Op::Remove),
            Value::Object(o) => {
                let path = o.get("path").and_then(Value::as_str).unwrap_or_default();
                let op = match o.get("op").map(|v| v.as_str()) {
                    None | Some(Some("remove")) => Op::Remove,
                    Some(Some("upsert")) => {
                        Op::Upsert(o.get("value").cloned().unwrap_or(Value::Null))
                    }
                    Some(other) => {
                        return Err(MaskError(format!("op {other:?} is not remove or upsert")))
                    }
                };
                (path, op)
            }
            other => {
                return Err(MaskError(format!(
                    "rule {other} is not a string or an object"
                )))
            }
        };
        let Some(rest) = path.strip_prefix('/') else {
            return Err(MaskError(format!("path {path:?} does not start with /")));
        };
        let parts: Vec<String> = rest.split('/').map(String::from).collect();
        match parts.first().map(String::as_str) {
            Some("input" | "result") => Ok(Self { op, parts }),
            _ => Err(MaskError(format!(
                "path {path:?} is not under /input or /result"
            ))),
        }
    }

    fn pointer(&self) -> String {
        format!("/{}", self.parts.join("/"))
    }

    /// Applies the rule; true when it changed the event.
    fn apply(&self, event: &mut DecisionEvent) -> bool {
        let target = if self.parts[0] == "input" {
            &mut event.input
        } else {
            &mut event.result
        };
        let Some(root) = target else {
            return false;
        };
        let keys = &self.parts[1..];
        match &self.op {
            Op::Remove if keys.is_empty() => {
                *target = None;
                true
            }
            Op::Remove => remove(root, keys),
            Op::Upsert(value) if keys.is_empty() => {
                *target = Some(value.clone());
                true
            }
            Op::Upsert(value) => root.is_object() && upsert(root, keys, value.clone()),
        }
    }
}

fn index(key: &str, len: usize) -> Option<usize> {
    key.parse::<usize>().ok().filter(|i| *i < len)
}

fn child<'a>(node: &'a mut Value, key: &str) -> Option<&'a mut Value> {
    match node {
        Value::Object(o) => o.get_mut(key),
        Value::Array(a) => {
            let i = index(key, a.len())?;
            a.get_mut(i)
        }
        _ => None,
    }
}

/// Removes the member or element at `keys`; false when it is not there.
fn remove(root: &mut Value, keys: &[String]) -> bool {
    let Some((last, parents)) = keys.split_last() else {
        return false;
    };
    let mut node = root;
    for key in parents {
        match child(node, key) {
            Some(next) => node = next,
            None => return false,
        }
    }
    match node {
        Value::Object(o) => o.remove(last).is_some(),
        Value::Array(a) => match index(last, a.len()) {
            Some(i) => {
                a.remove(i);
                true
            }
            None => false,
        },
        _ => false,
    }
}

/// Sets `value` at `keys`, creating missing objects on the way (and
/// growing arrays with nulls, as OPA does); false when a scalar is in the
/// way.
fn upsert(root: &mut Value, keys: &[String], value: Value) -> bool {
    let Some((last, parents)) = keys.split_last() else {
        return false;
    };
    let mut node = root;
    for key in parents {
        node = match node {
            Value::Object(o) => o
                .entry(key.clone())
                .or_insert_with(|| Value::Object(Map::new())),
            Value::Array(a) => {
                let Ok(i) = key.parse::<usize>() else {
                    return false;
                };
                // Bounded by the array's own size: a pointer cannot grow it
                // by more than its index says, and indexes past the
                // event's size are refused.
                if i > a.len() + 1024 {
                    return false;
                }
                while a.len() <= i {
                    a.push(Value::Null);
                }
                &mut a[i]
            }
            _ => return false,
        };
    }
    match node {
        Value::Object(o) => {
            o.insert(last.clone(), value);
            true
        }
        Value::Array(a) => match index(last, a.len()) {
            Some(i) => {
                a[i] = value;
                true
            }
            None => false,
        },
        _ => false,
    }
}

/// Which of the tenant's decision-log rules exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LogRules {
    /// `data.system.log.drop` is defined.
    pub drop: bool,
    /// `data.system.log.mask` is defined.
    pub mask: bool,
}

/// The event as the tenant's rules leave it: `evaluate(path, event)`
/// evaluates `system/log/drop` or `system/log/mask` with the event as
/// input (the caller's host does it). `None` when the event is dropped, or
/// when a rule fails or masking does not apply (an event is never logged
/// unmasked); failures are logged.
pub async fn apply_log_rules<F, Fut>(
    tenant: &str,
    rules: LogRules,
    mut event: DecisionEvent,
    evaluate: F,
) -> Option<DecisionEvent>
where
    F: Fn(&'static str, Value) -> Fut,
    Fut: std::future::Future<Output = Result<Option<Value>, String>>,
{
    if !rules.drop && !rules.mask {
        return Some(event);
    }
    let document = serde_json::to_value(&event).ok()?;
    if rules.drop {
        match evaluate("system/log/drop", document.clone()).await {
            Ok(Some(Value::Bool(true))) => return None,
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(tenant, error = %e, "system.log.drop failed; the decision is not logged");
                return None;
            }
        }
    }
    if rules.mask {
        let result = match evaluate("system/log/mask", document).await {
            Ok(result) => result.unwrap_or(Value::Array(Vec::new())),
            Err(e) => {
                tracing::warn!(tenant, error = %e, "system.log.mask failed; the decision is not logged");
                return None;
            }
        };
        if let Err(e) = event.mask(&result) {
            tracing::warn!(tenant, error = %e, "the decision is not logged");
            return None;
        }
    }
    Some(event)
}

/// Checks a configured mask pointer (`/input/…` or `/result/…`).
pub fn check_mask_pointer(pointer: &str) -> Result<(), MaskError> {
    Rule::parse(&Value::String(pointer.to_string())).map(|_| ())
}

impl DecisionEvent {
    /// Applies the result of the tenant's `system.log.mask` policy (a set,
    /// serialized as an array): erased and masked pointers are listed in
    /// `erased` and `masked`. On an error nothing is applied.
    pub fn mask(&mut self, rules: &Value) -> Result<(), MaskError> {
        let Value::Array(items) = rules else {
            return Err(MaskError(format!("the result {rules} is not a set")));
        };
        let rules = items
            .iter()
            .map(Rule::parse)
            .collect::<Result<Vec<_>, _>>()?;
        for rule in rules {
            if rule.apply(self) {
                let list = match rule.op {
                    Op::Remove => &mut self.erased,
                    Op::Upsert(_) => &mut self.masked,
                };
                list.push(rule.pointer());
            }
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event() -> DecisionEvent {
        let mut e = DecisionEvent::new(Map::new(), "d".into(), "t", "r", "p".into());
        e.input = Some(
            json!({"user": "alice", "password": "s3cret", "card": {"number": "4111"}, "list": [1, 2, 3]}),
        );
        e.result = Some(json!({"allow": true, "token": "abc"}));
        e
    }

    #[test]
    fn rules_erase_and_upsert_as_opa_does() {
        let cases = [
            (
                json!(["/input/password", "/result/token"]),
                json!({"user": "alice", "card": {"number": "4111"}, "list": [1, 2, 3]}),
                json!({"allow": true}),
                vec!["/input/password", "/result/token"],
                Vec::<&str>::new(),
            ),
            (
                json!([{"op": "upsert", "path": "/input/card/number", "value": "****"},
                       {"op": "upsert", "path": "/input/new/deep", "value": 1},
                       "/input/list/1", "/input/missing/x"]),
                json!({"user": "alice", "password": "s3cret", "card": {"number": "****"},
                       "new": {"deep": 1}, "list": [1, 3]}),
                json!({"allow": true, "token": "abc"}),
                vec!["/input/list/1"],
                vec!["/input/card/number", "/input/new/deep"],
            ),
            (
                json!(["/input", {"op": "upsert", "path": "/result", "value": "hidden"}]),
                Value::Null,
                json!("hidden"),
                vec!["/input"],
                vec!["/result"],
            ),
        ];
        for (rules, input, result, erased, masked) in cases {
            let mut e = event();
            e.mask(&rules).unwrap();
            assert_eq!(e.input.clone().unwrap_or(Value::Null), input, "{rules}");
            assert_eq!(e.result.clone().unwrap(), result, "{rules}");
            assert_eq!(e.erased, erased, "{rules}");
            assert_eq!(e.masked, masked, "{rules}");
        }
    }

    #[test]
    fn malformed_rules_fail_the_whole_set_and_change_nothing() {
        for rules in [
            json!(["/labels/id"]),
            json!(["input/password"]),
            json!([{"op": "replace", "path": "/input/user"}]),
            json!([7]),
            json!({"not": "a set"}),
        ] {
            let mut e = event();
            assert!(e.mask(&json!(["/input/password"])).is_ok());
            let before = e.clone();
            assert!(e.mask(&rules).is_err(), "{rules}");
            assert_eq!(e, before);
        }
    }
}
