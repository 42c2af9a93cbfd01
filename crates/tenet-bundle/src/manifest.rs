//! The `.manifest` file of an OPA bundle and the roots it claims. Parsing and
//! root arithmetic only; the bundle decides what to do with them.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A bundle's `.manifest`, as OPA defines it. Unknown keys are ignored, as OPA
/// ignores them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Opaque revision string; empty when the manifest has none.
    #[serde(default)]
    pub revision: String,
    /// Path prefixes (slash-separated) this bundle owns. `[""]` owns everything.
    #[serde(default = "default_roots")]
    pub roots: Vec<String>,
    /// Rego language version for every module: 0 or 1 (OPA 1.x default: 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rego_version: Option<u8>,
    /// Per-file Rego versions: keys are bundle paths, or prefixes ending in `*`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub file_rego_versions: BTreeMap<String, u8>,
    /// Free-form metadata, passed through.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<serde_json::Map<String, serde_json::Value>>,
    /// OPA's bundle type: `snapshot` (the default) or `delta`. tenet serves
    /// snapshots only and refuses delta bundles rather than misread them.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub bundle_type: Option<String>,
}

fn default_roots() -> Vec<String> {
    vec![String::new()]
}

impl Default for Manifest {
    fn default() -> Self {
        Self {
            revision: String::new(),
            roots: default_roots(),
            rego_version: None,
            file_rego_versions: BTreeMap::new(),
            metadata: None,
            bundle_type: None,
        }
    }
}

/// Most labels a bundle may give its tenant (`metadata.labels`).
pub const MAX_BUNDLE_LABELS: usize = 16;

/// Longest value of a bundle's label, in bytes.
pub const MAX_BUNDLE_LABEL_VALUE: usize = 256;

/// Label names a bundle may not set: the tenant's id and the ones OPA's
/// `labels` object reserves.
const RESERVED_LABELS: [&str; 3] = ["tenant", "id", "version"];

/// The labels a bundle's manifest gives its tenant, and how many it
/// offered that were refused.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BundleLabels {
    /// The accepted labels.
    pub labels: BTreeMap<String, String>,
    /// Entries refused: a name that is not `[A-Za-z_][A-Za-z0-9_]*` of at
    /// most 64 bytes, a reserved name, a value that is not a string of at
    /// most [`MAX_BUNDLE_LABEL_VALUE`] bytes, or past [`MAX_BUNDLE_LABELS`].
    pub refused: usize,
}

impl Manifest {
    /// The labels in `metadata.labels` (an object of strings), for the
    /// tenant's metrics, spans, decision logs and status. Anything else is
    /// counted as refused, never an error: labels do not decide anything.
    pub fn labels(&self) -> BundleLabels {
        let mut out = BundleLabels::default();
        let Some(offered) = self.metadata.as_ref().and_then(|m| m.get("labels")) else {
            return out;
        };
        let Some(offered) = offered.as_object() else {
            out.refused = 1;
            return out;
        };
        for (name, value) in offered {
            match value.as_str() {
                Some(value)
                    if label_name_ok(name)
                        && value.len() <= MAX_BUNDLE_LABEL_VALUE
                        && out.labels.len() < MAX_BUNDLE_LABELS =>
                {
                    out.labels.insert(name.clone(), value.to_string());
                }
                _ => out.refused += 1,
            }
        }
        out
    }

    /// Root prefixes as path components; the empty root is the empty slice.
    pub(crate) fn root_components(&self) -> Vec<Vec<&str>> {
        self.roots
            .iter()
            .map(|r| r.split('/').filter(|c| !c.is_empty()).collect())
            .collect()
    }

    /// True when writing `path` (components under `data`) would touch what
    /// the bundle owns: the path lies at or under a root, or above one.
    /// The default root `""` claims everything, as in OPA.
    pub fn claims(&self, path: &[String]) -> bool {
        self.owns(path) || above_some_root(&self.root_components(), path)
    }

    /// True when a root is `""`: the bundle owns the whole data tree (OPA's
    /// default when a bundle has no manifest).
    pub fn owns_everything(&self) -> bool {
        self.owns(&[])
    }

    /// True when `path` lies at or under one of the roots: the bundle's
    /// own document, which nothing else may write.
    pub fn owns(&self, path: &[String]) -> bool {
        under_roots(&self.root_components(), path)
    }

    /// The Rego version of the module at `path`: a `file_rego_versions` entry
    /// (exact, or the longest matching `prefix*`), else `rego_version`, else 1.
    pub fn rego_version_for(&self, path: &str) -> u8 {
        if let Some(v) = self.file_rego_versions.get(path) {
            return *v;
        }
        self.file_rego_versions
            .iter()
            .filter_map(|(k, v)| {
                let prefix = k.strip_suffix('*')?;
                path.starts_with(prefix).then_some((prefix.len(), *v))
            })
            .max_by_key(|(len, _)| *len)
            .map(|(_, v)| v)
            .or(self.rego_version)
            .unwrap_or(1)
    }
}

/// True when `path` lies at or under one of `roots`.
pub(crate) fn under_roots(roots: &[Vec<&str>], path: &[String]) -> bool {
    roots
        .iter()
        .any(|r| r.len() <= path.len() && r.iter().zip(path).all(|(a, b)| a == b))
}

/// True when `path` is a strict prefix of some root (data may pass through it).
pub(crate) fn above_some_root(roots: &[Vec<&str>], path: &[String]) -> bool {
    roots
        .iter()
        .any(|r| r.len() > path.len() && r.iter().zip(path).all(|(a, b)| a == b))
}

/// A label name a metrics system takes as it is, and not a reserved one.
fn label_name_ok(name: &str) -> bool {
    let mut chars = name.chars();
    name.len() <= 64
        && chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !RESERVED_LABELS.contains(&name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_opa() {
        let m: Manifest = serde_json::from_str("{}").unwrap_or_default();
        assert_eq!(m.roots, vec![String::new()]);
        assert_eq!(m.rego_version_for("x.rego"), 1);
    }

    #[test]
    fn file_rego_versions_pick_longest_prefix() {
        let m: Manifest = serde_json::from_str(
            r#"{"rego_version": 1, "file_rego_versions": {"legacy/*": 0, "legacy/new/*": 1, "one.rego": 0}}"#,
        )
        .unwrap_or_default();
        assert_eq!(m.rego_version_for("legacy/a.rego"), 0);
        assert_eq!(m.rego_version_for("legacy/new/a.rego"), 1);
        assert_eq!(m.rego_version_for("one.rego"), 0);
        assert_eq!(m.rego_version_for("other.rego"), 1);
    }

    #[test]
    fn roots_contain_paths() {
        let m = Manifest {
            roots: vec!["a/b".into(), "c".into()],
            ..Manifest::default()
        };
        let roots = m.root_components();
        let p = |s: &str| s.split('.').map(String::from).collect::<Vec<_>>();
        assert!(under_roots(&roots, &p("a.b.x")));
        assert!(under_roots(&roots, &p("c")));
        assert!(!under_roots(&roots, &p("a")));
        assert!(above_some_root(&roots, &p("a")));
        assert!(!under_roots(&roots, &p("d")));
    }

    #[test]
    fn labels_come_from_metadata_and_only_well_formed_ones() {
        let manifest = |metadata: serde_json::Value| Manifest {
            metadata: metadata.as_object().cloned(),
            ..Manifest::default()
        };
        let long = "v".repeat(MAX_BUNDLE_LABEL_VALUE + 1);
        let cases = [
            (serde_json::json!({}), vec![], 0),
            (serde_json::json!({"labels": "team=a"}), vec![], 1),
            (
                serde_json::json!({"labels": {"team": "billing", "_env": "prod"}}),
                vec![("_env", "prod"), ("team", "billing")],
                0,
            ),
            (
                serde_json::json!({"labels": {
                    "tenant": "other", "id": "x", "version": "1",
                    "9lives": "a", "app-name": "a", "": "a", "ok": 7, "long": long,
                    "fine": "yes",
                }}),
                vec![("fine", "yes")],
                8,
            ),
        ];
        for (metadata, expected, refused) in cases {
            let labels = manifest(metadata.clone()).labels();
            let expected: BTreeMap<String, String> = expected
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            assert_eq!(labels.labels, expected, "{metadata}");
            assert_eq!(labels.refused, refused, "{metadata}");
        }
        // At most MAX_BUNDLE_LABELS, the rest refused.
        let many: serde_json::Map<String, serde_json::Value> = (0..40)
            .map(|n| (format!("l{n}"), serde_json::json!("v")))
            .collect();
        let labels = manifest(serde_json::json!({ "labels": many })).labels();
        assert_eq!(labels.labels.len(), MAX_BUNDLE_LABELS);
        assert_eq!(labels.refused, 40 - MAX_BUNDLE_LABELS);
    }
}
