//! The input document of one evaluation, parsed once under the tenant's size
//! and depth limits. Parsing never recurses past the depth limit, so a
//! hostile input cannot overflow the stack, and the size limit applies to
//! what was parsed as well as to the text: a YAML alias or a batch's
//! `common_input` can make a document far larger than the bytes received.
//!
//! One measure of size for every document (inputs, batches, results): one
//! per value plus the bytes of every string and key. A JSON text never
//! measures more than its own length, so the measure is checked only where
//! a document did not come straight from a JSON text of bounded length.

use crate::{EvalLimits, PolicyError};

/// A parsed input document (or none: OPA's undefined `input`).
#[derive(Debug, Clone)]
pub struct Input(pub(crate) regorus::Value);

impl Input {
    /// No input: `input` is undefined inside the policy.
    pub fn none() -> Self {
        Self(regorus::Value::Undefined)
    }

    /// A key for decision caches: a tag byte (0 for no input, 1 for a
    /// document) and then the canonical JSON (object keys sorted), so equal
    /// documents give equal keys whatever their key order, and no input
    /// never collides with any document. `None` if the input cannot be
    /// serialised (then it must not be cached).
    pub fn cache_key(&self) -> Option<Vec<u8>> {
        if self.is_none() {
            return Some(vec![0]);
        }
        let mut key = vec![1];
        serde_json::to_writer(&mut key, &self.0).ok()?;
        Some(key)
    }

    /// The input as a JSON document (for decision logs); `None` when there
    /// is no input or it cannot be represented in JSON.
    pub fn to_json(&self) -> Option<serde_json::Value> {
        if self.is_none() {
            return None;
        }
        serde_json::to_value(&self.0).ok()
    }

    /// The input as JSON text, to hand to another process (which reads it
    /// back with [`Input::from_json`]); `None` when there is no input.
    pub fn to_json_bytes(&self) -> Option<Result<Vec<u8>, PolicyError>> {
        let mut out = Vec::new();
        self.write_json(&mut out).map(|r| r.map(|()| out))
    }

    /// [`Input::to_json_bytes`] appended to `out` instead of a new buffer
    /// (a decision-log event takes its input this way); after an error
    /// `out` may end with part of the document.
    pub fn write_json(&self, out: &mut Vec<u8>) -> Option<Result<(), PolicyError>> {
        if self.is_none() {
            return None;
        }
        Some(
            serde_json::to_writer(out, &self.0).map_err(|e| PolicyError::InvalidInput {
                reason: format!("the input cannot be written as JSON: {e}"),
            }),
        )
    }

    /// True when there is no input document.
    pub fn is_none(&self) -> bool {
        self.0 == regorus::Value::Undefined
    }

    /// Parses JSON text after checking its size and nesting depth.
    pub fn from_json(text: &str, limits: &EvalLimits) -> Result<Self, PolicyError> {
        if text.len() > limits.max_input_bytes {
            return Err(PolicyError::InputTooLarge {
                size: text.len(),
                limit: limits.max_input_bytes,
            });
        }
        if tenet_bundle::depth::json_exceeds(text.as_bytes(), limits.max_input_depth) {
            return Err(PolicyError::InputTooDeep {
                limit: limits.max_input_depth,
            });
        }
        regorus::Value::from_json_str(text)
            .map(Self)
            .map_err(|e| PolicyError::InvalidInput {
                reason: e.to_string(),
            })
    }

    /// Reads the `input` member of a request envelope (`{"input": …}`, OPA's
    /// data API body) straight into the engine's value type, in one pass
    /// and without an intermediate `serde_json::Value`. Other members are
    /// ignored. `Ok(None)` when the envelope has no `input` member (an
    /// explicit `null` is an input). The size limit applies to the whole
    /// envelope and the depth limit to the input (the envelope adds one
    /// level); both are checked before parsing.
    pub fn from_envelope_json(
        bytes: &[u8],
        limits: &EvalLimits,
    ) -> Result<Option<Self>, PolicyError> {
        if bytes.len() > limits.max_input_bytes {
            return Err(PolicyError::InputTooLarge {
                size: bytes.len(),
                limit: limits.max_input_bytes,
            });
        }
        if tenet_bundle::depth::json_exceeds(bytes, limits.max_input_depth.saturating_add(1)) {
            return Err(PolicyError::InputTooDeep {
                limit: limits.max_input_depth,
            });
        }
        // serde would also read a struct from an array (`[x]` as input x).
        if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
            return Err(PolicyError::InvalidInput {
                reason: "expected a JSON object with an \"input\" key".into(),
            });
        }
        #[derive(serde::Deserialize)]
        struct Envelope {
            #[serde(default, deserialize_with = "present")]
            input: Option<regorus::Value>,
        }
        fn present<'de, D: serde::Deserializer<'de>>(
            d: D,
        ) -> Result<Option<regorus::Value>, D::Error> {
            <regorus::Value as serde::Deserialize>::deserialize(d).map(Some)
        }
        let envelope: Envelope =
            serde_json::from_slice(bytes).map_err(|e| PolicyError::InvalidInput {
                reason: e.to_string(),
            })?;
        Ok(envelope.input.map(Self))
    }

    /// Converts an already parsed JSON value, checking its depth and its
    /// size (in one walk that stops at the first limit passed).
    pub fn from_value(value: &serde_json::Value, limits: &EvalLimits) -> Result<Self, PolicyError> {
        measure(value, limits.max_input_bytes as u64, limits.max_input_depth)?;
        serde_json::from_value::<regorus::Value>(value.clone())
            .map(Self)
            .map_err(|e| PolicyError::InvalidInput {
                reason: e.to_string(),
            })
    }
}

/// Parses a YAML request body (an envelope `{input: …}` when `envelope`,
/// else the input itself) under the input limits: nesting refused before
/// the parser runs, and the document, aliases expanded, bounded by
/// `max_input_bytes` and by 4 × its text (only aliases can pass that).
pub fn parse_yaml_input(
    bytes: &[u8],
    limits: &EvalLimits,
    envelope: bool,
) -> Result<serde_json::Value, PolicyError> {
    use tenet_bundle::yaml::{parse, YamlError, YamlLimits};
    let text = YamlLimits::for_text(bytes.len(), 0);
    let yaml_limits = YamlLimits {
        max_size: text.max_size.min(limits.max_input_bytes as u64),
        max_depth: limits.max_input_depth + usize::from(envelope),
    };
    parse(bytes, yaml_limits).map_err(|e| match e {
        YamlError::TooLarge { limit } => PolicyError::InputDocumentTooLarge {
            limit: usize::try_from(limit).unwrap_or(usize::MAX),
        },
        YamlError::TooDeep { .. } => PolicyError::InputTooDeep {
            limit: limits.max_input_depth,
        },
        other => PolicyError::InvalidInput {
            reason: other.to_string(),
        },
    })
}

/// The size of a parsed document (one per value plus the bytes of every
/// string and key), or `None` once it passes `limit`. Iterative, with an
/// early exit: the work is bounded by `limit`, not by the document.
pub fn document_size(value: &serde_json::Value, limit: u64) -> Option<u64> {
    measure(value, limit, usize::MAX).ok()
}

/// One walk for both input limits: the size, and the depth.
fn measure(value: &serde_json::Value, max_size: u64, max_depth: usize) -> Result<u64, PolicyError> {
    use serde_json::Value;
    let mut size = 0u64;
    let mut stack = vec![(value, 0usize)];
    while let Some((v, depth)) = stack.pop() {
        size += match v {
            Value::String(s) => 1 + s.len() as u64,
            Value::Array(_) | Value::Object(_) if depth >= max_depth => {
                return Err(PolicyError::InputTooDeep { limit: max_depth });
            }
            Value::Array(items) => {
                stack.extend(items.iter().map(|c| (c, depth + 1)));
                1
            }
            Value::Object(fields) => {
                for (k, c) in fields {
                    size += k.len() as u64;
                    stack.push((c, depth + 1));
                }
                1
            }
            _ => 1,
        };
        if size > max_size {
            return Err(PolicyError::InputDocumentTooLarge {
                limit: usize::try_from(max_size).unwrap_or(usize::MAX),
            });
        }
    }
    Ok(size)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn write_json_appends_what_to_json_bytes_gives() {
        let limits = EvalLimits::default();
        let input =
            Input::from_json(r#"{"user": "alice", "n": [1, 2.5], "s": "a\"b"}"#, &limits).unwrap();
        let mut out = b"{\"input\":".to_vec();
        input.write_json(&mut out).unwrap().unwrap();
        let alone = input.to_json_bytes().unwrap().unwrap();
        assert_eq!(out[9..], alone[..]);
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&alone).unwrap(),
            serde_json::json!({"user": "alice", "n": [1, 2.5], "s": "a\"b"})
        );
        let mut untouched = b"x".to_vec();
        assert!(Input::none().write_json(&mut untouched).is_none());
        assert_eq!(untouched, b"x");
    }

    #[test]
    fn envelopes_give_their_input_and_tell_missing_from_null() {
        let limits = EvalLimits::default();
        let read = |text: &str| Input::from_envelope_json(text.as_bytes(), &limits);
        let got = read(r#"{"input": {"user": "alice", "n": [1, 2.5]}, "other": 1}"#)
            .unwrap()
            .unwrap();
        let want = Input::from_json(r#"{"user": "alice", "n": [1, 2.5]}"#, &limits).unwrap();
        assert_eq!(got.0, want.0);
        assert!(read(r#"{"other": 1}"#).unwrap().is_none());
        assert_eq!(
            read(r#"{"input": null}"#).unwrap().unwrap().0,
            regorus::Value::Null
        );
        assert!(read("[1]").is_err());
        assert!(read(r#"{"input": "#).is_err());
        let tight = EvalLimits {
            max_input_depth: 2,
            max_input_bytes: 40,
            ..EvalLimits::default()
        };
        // The input may nest as deep as the limit; the envelope adds one.
        assert!(Input::from_envelope_json(br#"{"input": [[1]]}"#, &tight).is_ok());
        assert_eq!(
            Input::from_envelope_json(br#"{"input": [[[1]]]}"#, &tight)
                .unwrap_err()
                .kind(),
            "input_too_deep"
        );
        assert_eq!(
            Input::from_envelope_json(&[b' '; 41], &tight)
                .unwrap_err()
                .kind(),
            "input_too_large"
        );
    }

    #[test]
    fn limits_size_and_depth() {
        let limits = EvalLimits {
            max_input_bytes: 20,
            max_input_depth: 2,
            ..EvalLimits::default()
        };
        assert!(Input::from_json(r#"{"a": [1]}"#, &limits).is_ok());
        assert!(matches!(
            Input::from_json(r#"{"a": [[1]]}"#, &limits),
            Err(PolicyError::InputTooDeep { limit: 2 })
        ));
        assert!(matches!(
            Input::from_json(r#"{"a": "01234567890123456789"}"#, &limits),
            Err(PolicyError::InputTooLarge { .. })
        ));
        assert!(matches!(
            Input::from_json("{", &limits),
            Err(PolicyError::InvalidInput { .. })
        ));
        let deep = serde_json::json!({"a": {"b": {"c": 1}}});
        assert!(Input::from_value(&deep, &limits).is_err());
    }

    #[test]
    fn cache_keys_ignore_key_order_and_tell_none_from_documents() {
        let l = EvalLimits::default();
        let a = Input::from_json(r#"{"b": 1, "a": {"y": 2, "x": 1}}"#, &l).ok();
        let b = Input::from_json(r#"{"a": {"x": 1, "y": 2}, "b": 1}"#, &l).ok();
        assert_eq!(a.map(|i| i.cache_key()), b.map(|i| i.cache_key()));
        let undefined_string = Input::from_json(r#""<undefined>""#, &l).ok();
        assert_ne!(
            undefined_string.and_then(|i| i.cache_key()),
            Input::none().cache_key()
        );
    }

    /// #10 finding 2: the input limits apply to what was parsed, not only
    /// to the bytes received.
    #[test]
    fn parsed_documents_are_held_to_the_input_size() {
        let limits = EvalLimits {
            max_input_bytes: 1000,
            ..EvalLimits::default()
        };
        let many = serde_json::Value::Array(vec![serde_json::json!(1); 2000]);
        assert!(matches!(
            Input::from_value(&many, &limits),
            Err(PolicyError::InputDocumentTooLarge { limit: 1000 })
        ));
        assert_eq!(document_size(&many, 10_000), Some(2001));
        assert_eq!(document_size(&many, 100), None);
        let mut bomb = format!("input:\n  a: &a [{}]\n  b: [", "xxxxxxxx,".repeat(50));
        bomb.push_str(&"*a,".repeat(200));
        bomb.push(']');
        assert!(matches!(
            parse_yaml_input(bomb.as_bytes(), &limits, true),
            Err(PolicyError::InputDocumentTooLarge { limit: 1000 })
        ));
        let deep = "input: ".to_string() + &"[".repeat(65) + &"]".repeat(65);
        assert!(matches!(
            parse_yaml_input(deep.as_bytes(), &EvalLimits::default(), true),
            Err(PolicyError::InputTooDeep { limit: 64 })
        ));
        let ok = "input: ".to_string() + &"[".repeat(64) + &"]".repeat(64);
        assert!(parse_yaml_input(ok.as_bytes(), &EvalLimits::default(), true).is_ok());
    }

    fn json() -> impl proptest::strategy::Strategy<Value = serde_json::Value> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::from),
            any::<i64>().prop_map(serde_json::Value::from),
            ".{0,8}".prop_map(serde_json::Value::from),
        ];
        leaf.prop_recursive(6, 64, 8, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..8).prop_map(serde_json::Value::from),
                proptest::collection::btree_map(".{0,6}", inner, 0..8)
                    .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest::proptest! {
        /// Why JSON texts need no second check: no text measures more than
        /// its own length, so `max_input_bytes` on the text bounds the
        /// document too.
        #[test]
        fn a_json_text_never_measures_more_than_its_length(value in json()) {
            let text = serde_json::to_string(&value).unwrap();
            let size = document_size(&value, u64::MAX).unwrap();
            proptest::prop_assert!(size <= text.len() as u64, "{text}: {size}");
        }
    }

    #[test]
    fn a_million_brackets_are_refused_without_parsing() {
        let text = "[".repeat(1_000_000);
        assert!(matches!(
            Input::from_json(&text, &EvalLimits::default()),
            Err(PolicyError::InputTooLarge { .. }) | Err(PolicyError::InputTooDeep { .. })
        ));
        assert!(tenet_bundle::depth::json_exceeds(text.as_bytes(), 64));
    }
}
