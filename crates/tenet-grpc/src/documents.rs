//! JSON documents in `tenet.v1` messages: a `Document` (JSON text or a
//! `google.protobuf.Value`) as an engine input under the host's input
//! limits, and a result as both JSON text and a `Value`. The depth of a
//! `Value` is checked while it is converted (an explicit stack, no
//! recursion), so a deep one is refused before anything is built from it.
//! Conversions only; no decisions.

use crate::pb::{document, Document};
use prost_types::value::Kind;
use prost_types::{ListValue, Struct, Value as PbValue};
use serde_json::{Map, Number, Value};
use tenet::{EvalLimits, Input};
use tonic::Status;

/// Why a document cannot be used (all `INVALID_ARGUMENT`).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DocumentError {
    /// JSON text that is not UTF-8 or not JSON, or past the input limits.
    #[error("invalid input: {0}")]
    Input(#[from] tenet::PolicyError),
    /// A `Value` nested deeper than the input depth limit.
    #[error("the document is nested deeper than {limit} levels (the input depth limit)")]
    TooDeep { limit: usize },
    /// A number JSON cannot hold (NaN, ±infinity).
    #[error("the number {0} has no JSON form")]
    NotANumber(f64),
    /// JSON text that does not parse.
    #[error("invalid JSON: {0}")]
    Json(String),
    /// JSON text that is not UTF-8.
    #[error("the JSON text is not UTF-8")]
    NotUtf8,
}

impl From<DocumentError> for Status {
    fn from(e: DocumentError) -> Self {
        Status::invalid_argument(e.to_string())
    }
}

/// The document as JSON (`None`: absent), its depth checked against the
/// limit. JSON text is depth-checked by the input parser, so it is only
/// parsed here.
pub fn to_json(
    doc: Option<&Document>,
    limits: &EvalLimits,
) -> Result<Option<Value>, DocumentError> {
    match doc.and_then(|d| d.kind.as_ref()) {
        None => Ok(None),
        Some(document::Kind::Json(bytes)) => {
            // The size and depth checks of the REST API, before parsing.
            if bytes.len() > limits.max_input_bytes {
                return Err(tenet::PolicyError::InputTooLarge {
                    size: bytes.len(),
                    limit: limits.max_input_bytes,
                }
                .into());
            }
            if tenet_bundle::depth::json_exceeds(bytes, limits.max_input_depth) {
                return Err(DocumentError::TooDeep {
                    limit: limits.max_input_depth,
                });
            }
            serde_json::from_slice(bytes)
                .map(Some)
                .map_err(|e| DocumentError::Json(e.to_string()))
        }
        Some(document::Kind::Value(v)) => value_to_json(v, limits.max_input_depth).map(Some),
    }
}

/// The document as an engine input (absent: no input) with its JSON form
/// for the decision log.
pub fn to_input(
    doc: Option<&Document>,
    limits: &EvalLimits,
) -> Result<(Input, Option<Value>), DocumentError> {
    match doc.and_then(|d| d.kind.as_ref()) {
        None => Ok((Input::none(), None)),
        Some(document::Kind::Json(bytes)) => {
            let text = std::str::from_utf8(bytes).map_err(|_| DocumentError::NotUtf8)?;
            let input = Input::from_json(text, limits)?;
            Ok((input, None))
        }
        Some(document::Kind::Value(v)) => {
            let json = value_to_json(v, limits.max_input_depth)?;
            let input = Input::from_value(&json, limits)?;
            Ok((input, Some(json)))
        }
    }
}

/// A frame of the conversion: a list or an object being filled.
enum Frame<'a> {
    List(std::slice::Iter<'a, PbValue>, Vec<Value>),
    Object(
        std::collections::btree_map::Iter<'a, String, PbValue>,
        Map<String, Value>,
        Option<String>,
    ),
}

/// A `Value` as JSON; deeper than `limit` levels is an error. Whole numbers
/// that a double holds exactly become JSON integers (`1`, not `1.0`).
pub fn value_to_json(root: &PbValue, limit: usize) -> Result<Value, DocumentError> {
    let mut stack: Vec<Frame<'_>> = Vec::new();
    let mut next: Option<&PbValue> = Some(root);
    loop {
        // Descend into `next`, or take a finished scalar.
        let mut done = match next.take() {
            Some(v) => match &v.kind {
                Some(Kind::ListValue(l)) => {
                    if stack.len() >= limit {
                        return Err(DocumentError::TooDeep { limit });
                    }
                    stack.push(Frame::List(
                        l.values.iter(),
                        Vec::with_capacity(l.values.len()),
                    ));
                    None
                }
                Some(Kind::StructValue(s)) => {
                    if stack.len() >= limit {
                        return Err(DocumentError::TooDeep { limit });
                    }
                    stack.push(Frame::Object(s.fields.iter(), Map::new(), None));
                    None
                }
                other => Some(scalar(other.as_ref())?),
            },
            None => None,
        };
        // Hand finished values up; find the next child.
        loop {
            let Some(top) = stack.last_mut() else {
                return Ok(done.unwrap_or(Value::Null));
            };
            match top {
                Frame::List(iter, out) => {
                    if let Some(v) = done.take() {
                        out.push(v);
                    }
                    if let Some(child) = iter.next() {
                        next = Some(child);
                        break;
                    }
                }
                Frame::Object(iter, out, key) => {
                    if let (Some(v), Some(k)) = (done.take(), key.take()) {
                        out.insert(k, v);
                    }
                    if let Some((k, child)) = iter.next() {
                        *key = Some(k.clone());
                        next = Some(child);
                        break;
                    }
                }
            }
            done = Some(match stack.pop() {
                Some(Frame::List(_, out)) => Value::Array(out),
                Some(Frame::Object(_, out, _)) => Value::Object(out),
                None => Value::Null,
            });
        }
    }
}

fn scalar(kind: Option<&Kind>) -> Result<Value, DocumentError> {
    Ok(match kind {
        None | Some(Kind::NullValue(_)) => Value::Null,
        Some(Kind::BoolValue(b)) => Value::Bool(*b),
        Some(Kind::StringValue(s)) => Value::String(s.clone()),
        Some(Kind::NumberValue(n)) => number(*n)?,
        // Lists and structs are frames, never scalars.
        Some(Kind::ListValue(_) | Kind::StructValue(_)) => Value::Null,
    })
}

fn number(n: f64) -> Result<Value, DocumentError> {
    // 2^53: every integer up to it is exact in a double.
    const EXACT: f64 = 9_007_199_254_740_992.0;
    if n.fract() == 0.0 && n.abs() <= EXACT {
        return Ok(Value::Number(Number::from(n as i64)));
    }
    Number::from_f64(n)
        .map(Value::Number)
        .ok_or(DocumentError::NotANumber(n))
}

/// A JSON document as a `Value` (numbers as doubles, as protobuf has no
/// other). Results are bounded in depth by the engine's serialization
/// bound, so this recursion is too.
pub fn json_to_value(v: &Value) -> PbValue {
    let kind = match v {
        Value::Null => Kind::NullValue(0),
        Value::Bool(b) => Kind::BoolValue(*b),
        Value::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or(f64::NAN)),
        Value::String(s) => Kind::StringValue(s.clone()),
        Value::Array(a) => Kind::ListValue(ListValue {
            values: a.iter().map(json_to_value).collect(),
        }),
        Value::Object(o) => Kind::StructValue(Struct {
            fields: o
                .iter()
                .map(|(k, v)| (k.clone(), json_to_value(v)))
                .collect(),
        }),
    };
    PbValue { kind: Some(kind) }
}

/// A JSON body as a `Document` (for clients and tests).
pub fn json_document(v: &Value) -> Document {
    Document {
        kind: Some(document::Kind::Json(v.to_string().into_bytes())),
    }
}

/// A JSON value as a `Document` holding a `Value`.
pub fn value_document(v: &Value) -> Document {
    Document {
        kind: Some(document::Kind::Value(json_to_value(v))),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn values_round_trip_with_integers_kept_whole() {
        let doc = json!({"a": [1, 2.5, "x", null, true, {"b": []}], "c": {}, "n": -3});
        let back = value_to_json(&json_to_value(&doc), 64).unwrap();
        assert_eq!(back, doc);
        assert_eq!(back["a"][0].to_string(), "1");
    }

    #[test]
    fn depth_is_checked_without_recursion() {
        let mut deep = json!(1);
        for _ in 0..10 {
            deep = json!({ "x": [deep] });
        }
        // 20 levels of containers.
        assert!(value_to_json(&json_to_value(&deep), 20).is_ok());
        assert!(matches!(
            value_to_json(&json_to_value(&deep), 19),
            Err(DocumentError::TooDeep { limit: 19 })
        ));
        // A Value built far past any stack: refused, not overflowed.
        let mut v = PbValue {
            kind: Some(Kind::NumberValue(1.0)),
        };
        for _ in 0..100_000 {
            v = PbValue {
                kind: Some(Kind::ListValue(ListValue { values: vec![v] })),
            };
        }
        assert!(matches!(
            value_to_json(&v, 64),
            Err(DocumentError::TooDeep { .. })
        ));
        // Dropping a 100,000-deep Value recurses in prost's drop glue: leak
        // it rather than test the test's own stack.
        std::mem::forget(v);
    }

    #[test]
    fn nan_is_refused() {
        let v = PbValue {
            kind: Some(Kind::NumberValue(f64::NAN)),
        };
        assert!(matches!(
            value_to_json(&v, 4),
            Err(DocumentError::NotANumber(_))
        ));
    }
}
