//! A compiled policy's sources in a form that crosses a process boundary:
//! a worker process (tenet-isolation) receives the image and the data
//! document's JSON and compiles the same policy there. Nothing here reads
//! or writes files or sockets; framing is the caller's.

use crate::policy::Sources;
use crate::{CompileOptions, EvalLimits, Evaluator, Policy, PolicyError};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Deepest data document an image may carry: a bundle's data files nest at
/// most 128 levels below a mount point at most 32 levels deep, pushed data
/// 120; this is a guard against a peer, not a limit tenants meet.
const MAX_DATA_DEPTH: usize = 512;

/// Everything [`Policy`] was compiled from but the data document, which
/// travels beside it as JSON text ([`Policy::data_json`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyImage {
    /// The bundle's manifest revision.
    pub revision: String,
    /// The bundle's content digest: equal digests, equal policies.
    pub digest: String,
    /// Every module, in bundle order.
    pub modules: Vec<ImageModule>,
    /// The limits of every evaluation.
    pub limits: EvalLimits,
    /// The evaluator to use where it applies.
    pub evaluator: Evaluator,
}

/// One Rego module of an image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageModule {
    /// Its path in the bundle.
    pub path: String,
    /// Its text.
    pub source: String,
    /// Whether it is Rego v0.
    pub rego_v0: bool,
}

impl PolicyImage {
    /// Compiles the image with `data_json` as its data document (its depth
    /// checked before it is parsed: it came from a bundle that was bounded
    /// when it was read, but the check keeps the parser off the stack's end
    /// whatever the peer sends).
    pub fn compile(self, data_json: &[u8]) -> Result<Policy, PolicyError> {
        let data_error = |reason: String| PolicyError::Compile {
            file: "data".into(),
            message: reason,
        };
        if tenet_bundle::depth::json_exceeds(data_json, MAX_DATA_DEPTH) {
            return Err(data_error("the data document nests too deep".into()));
        }
        let text = std::str::from_utf8(data_json).map_err(|e| data_error(e.to_string()))?;
        let data = regorus::Value::from_json_str(text).map_err(|e| data_error(e.to_string()))?;
        let modules_v0 = self.modules.iter().map(|m| m.rego_v0).collect();
        let modules = self
            .modules
            .into_iter()
            .map(|m| (m.path, Arc::from(m.source)))
            .collect();
        Policy::assemble(
            Sources {
                revision: self.revision,
                digest: self.digest,
                modules,
                modules_v0,
                data,
                data_json: data_json.len(),
                labels: Default::default(),
            },
            CompileOptions {
                limits: self.limits,
                evaluator: self.evaluator,
            },
        )
    }

    /// The limits the image's policy evaluates under.
    pub fn limits(&self) -> &EvalLimits {
        &self.limits
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::Input;

    fn policy() -> Policy {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("authz.rego"),
            "package authz\nimport rego.v1\ndefault allow := false\nallow if input.user in data.admins\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("data.json"), r#"{"admins": ["alice"]}"#).unwrap();
        let bundle =
            tenet_bundle::Bundle::load(dir.path(), &tenet_bundle::Limits::default()).unwrap();
        Policy::compile(&bundle, CompileOptions::default()).unwrap()
    }

    #[test]
    fn an_image_compiles_to_the_same_answers() {
        let original = policy();
        let image = original.image();
        let json = serde_json::to_vec(&image).unwrap();
        let back: PolicyImage = serde_json::from_slice(&json).unwrap();
        assert_eq!(back, image);
        let copy = back.compile(&original.data_json().unwrap()).unwrap();
        assert_eq!(copy.digest(), original.digest());
        for (user, allowed) in [("alice", true), ("bob", false)] {
            let input =
                Input::from_json(&format!(r#"{{"user": "{user}"}}"#), &EvalLimits::default())
                    .unwrap();
            let expected = original.evaluate("authz/allow", &input).unwrap();
            assert_eq!(copy.evaluate("authz/allow", &input).unwrap(), expected);
            assert_eq!(expected, Some(serde_json::Value::Bool(allowed)));
        }
    }

    #[test]
    fn deep_or_broken_data_is_a_compile_error() {
        let image = policy().image();
        let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        for data in [deep.as_bytes(), b"{not json", &[0xff, 0xfe]] {
            let e = image.clone().compile(data).unwrap_err();
            assert_eq!(e.kind(), "compile_error", "{e}");
        }
    }
}
