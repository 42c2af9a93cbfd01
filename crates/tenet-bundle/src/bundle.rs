//! A loaded OPA bundle: manifest, Rego modules placed by their package, and
//! the data tree assembled from `data.json`/`data.yaml` files, validated
//! against the manifest's roots. Building one is pure and synchronous; it
//! knows nothing of tenants or evaluation.

use crate::files::{read_dir, read_tar_gz, BundleFile};
use crate::manifest::{above_some_root, under_roots};
use crate::{depth, package, BundleError, Limits, Manifest, Verifier};
use serde_json::{Map, Value};
use std::path::Path;

/// One Rego module of a bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Module {
    /// Path of the file inside the bundle.
    pub path: String,
    /// Package path without the leading `data` (`package a.b` → `["a","b"]`).
    pub package: Vec<String>,
    /// The Rego text.
    pub source: String,
    /// Rego language version (0 or 1) from the manifest.
    pub rego_version: u8,
}

/// One data file and where it was mounted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataFile {
    /// Path of the file inside the bundle.
    pub path: String,
    /// Mount point under `data` (empty for the root `data.json`).
    pub mount: Vec<String>,
    /// Size of the file in bytes.
    pub bytes: u64,
}

/// A validated bundle, ready to compile.
#[derive(Debug, Clone, PartialEq)]
pub struct Bundle {
    /// The `.manifest`, or OPA's defaults when absent.
    pub manifest: Manifest,
    /// Rego modules in path order.
    pub modules: Vec<Module>,
    /// The merged data document (always an object).
    pub data: Value,
    /// The data files and their mount points, in path order.
    pub data_files: Vec<DataFile>,
    /// Every file and its size, in path order (also the ones OPA ignores).
    pub files: Vec<(String, u64)>,
    /// SHA-256 over every file's path and content: equal digests mean equal
    /// bundles, whatever the source.
    pub digest: String,
}

impl Bundle {
    /// Loads a bundle from a directory or a `.tar.gz` file, whichever `path` is.
    pub fn load(path: &Path, limits: &Limits) -> Result<Self, BundleError> {
        let meta = std::fs::metadata(path).map_err(|e| BundleError::io(path, e))?;
        if meta.is_dir() {
            Self::from_dir(path, limits)
        } else {
            if meta.len() > limits.max_compressed_bytes {
                return Err(BundleError::CompressedTooLarge {
                    size: meta.len(),
                    limit: limits.max_compressed_bytes,
                });
            }
            let bytes = crate::files::read_bounded(path, limits.max_compressed_bytes)?;
            Self::from_tar_gz(&bytes, limits)
        }
    }

    /// Loads a bundle directory (OPA's `opa run -b DIR` layout).
    pub fn from_dir(dir: &Path, limits: &Limits) -> Result<Self, BundleError> {
        Self::from_files(read_dir(dir, limits)?, limits)
    }

    /// Loads a bundle from the bytes of a `.tar.gz` archive.
    pub fn from_tar_gz(bytes: &[u8], limits: &Limits) -> Result<Self, BundleError> {
        Self::from_files(read_tar_gz(bytes, limits)?, limits)
    }

    /// Loads a `.tar.gz` bundle whose signature must verify when `verifier`
    /// is given.
    pub fn from_tar_gz_verified(
        bytes: &[u8],
        limits: &Limits,
        verifier: Option<&Verifier>,
    ) -> Result<Self, BundleError> {
        Self::from_files_verified(read_tar_gz(bytes, limits)?, limits, verifier)
    }

    /// Assembles a bundle from files already read (paths normalised). A
    /// `.signatures.json` is kept as a file but not checked; use
    /// [`Bundle::from_files_verified`] to require a valid signature.
    pub fn from_files(files: Vec<BundleFile>, limits: &Limits) -> Result<Self, BundleError> {
        Self::from_files_verified(files, limits, None)
    }

    /// Like [`Bundle::from_files`], but with a `verifier` the bundle's
    /// `.signatures.json` must verify (see [`Verifier::verify`]) before
    /// anything else in it is read; without one it is ignored.
    pub fn from_files_verified(
        mut files: Vec<BundleFile>,
        limits: &Limits,
        verifier: Option<&Verifier>,
    ) -> Result<Self, BundleError> {
        files.sort_by(|a, b| a.path.cmp(&b.path));
        if let Some(w) = files.windows(2).find(|w| w[0].path == w[1].path) {
            return Err(BundleError::DuplicateFile {
                file: w[0].path.clone(),
            });
        }
        if let Some(verifier) = verifier {
            verifier.verify(&files, limits)?;
        }
        let manifest = match files.iter().find(|f| f.path == ".manifest") {
            Some(f) => serde_json::from_slice::<Manifest>(&f.bytes).map_err(|e| {
                BundleError::BadManifest {
                    reason: e.to_string(),
                }
            })?,
            None => Manifest::default(),
        };
        if manifest
            .bundle_type
            .as_deref()
            .is_some_and(|t| t != "snapshot")
        {
            return Err(BundleError::BadManifest {
                reason: format!(
                    "bundle type {:?} is not supported: tenet serves snapshot bundles only \
                     (delta bundles are not implemented)",
                    manifest.bundle_type.as_deref().unwrap_or_default()
                ),
            });
        }
        let roots = manifest.root_components();
        let mut modules = Vec::new();
        let mut data = Value::Object(Map::new());
        let mut data_files = Vec::new();
        for f in &files {
            let (dir, name) = f.path.rsplit_once('/').unwrap_or(("", &f.path));
            if name.ends_with(".rego") {
                let module = read_module(f, &manifest)?;
                if !under_roots(&roots, &module.package) {
                    return Err(BundleError::OutsideRoots {
                        file: f.path.clone(),
                        what: "package",
                        path: module.package.join("."),
                        roots: manifest.roots.clone(),
                    });
                }
                modules.push(module);
            } else if name == "data.json" || name == "data.yaml" || name == "data.yml" {
                let value = read_data(f, name != "data.json", limits)?;
                let mount: Vec<String> = dir
                    .split('/')
                    .filter(|c| !c.is_empty())
                    .map(String::from)
                    .collect();
                check_data_roots(&roots, &manifest.roots, &f.path, &mount, &value)?;
                merge_at(&mut data, &mount, value, &f.path)?;
                data_files.push(DataFile {
                    path: f.path.clone(),
                    mount,
                    bytes: f.bytes.len() as u64,
                });
            }
        }
        Ok(Self {
            manifest,
            modules,
            data,
            data_files,
            files: files
                .iter()
                .map(|f| (f.path.clone(), f.bytes.len() as u64))
                .collect(),
            digest: crate::files::digest(&files),
        })
    }

    /// Total bytes of all files.
    pub fn total_bytes(&self) -> u64 {
        self.files.iter().map(|(_, n)| n).sum()
    }
}

fn read_module(f: &BundleFile, manifest: &Manifest) -> Result<Module, BundleError> {
    let source = String::from_utf8(f.bytes.clone()).map_err(|_| BundleError::InvalidUtf8 {
        file: f.path.clone(),
    })?;
    let package = package::package_path(&source).map_err(|reason| BundleError::BadPackage {
        file: f.path.clone(),
        reason,
    })?;
    Ok(Module {
        path: f.path.clone(),
        package,
        source,
        rego_version: manifest.rego_version_for(&f.path),
    })
}

fn read_data(f: &BundleFile, yaml: bool, limits: &Limits) -> Result<Value, BundleError> {
    let bad = |reason: String| BundleError::BadData {
        file: f.path.clone(),
        reason,
    };
    let too_deep = || BundleError::JsonTooDeep {
        file: f.path.clone(),
        limit: limits.max_json_depth,
    };
    let value: Value = if yaml {
        // Flow and block nesting are both refused by the YAML module's
        // pre-scan, before libyaml spends quadratic time on them.
        match crate::yaml::from_slice(&f.bytes, limits.max_json_depth) {
            Ok(value) => value,
            Err(crate::yaml::YamlError::TooDeep { .. }) => return Err(too_deep()),
            Err(e) => return Err(bad(e.to_string())),
        }
    } else {
        if depth::json_exceeds(&f.bytes, limits.max_json_depth) {
            return Err(too_deep());
        }
        // serde_json also stops at 128 levels whatever the limit says, so
        // parsing can never recurse deep enough to overflow the stack.
        serde_json::from_slice(&f.bytes).map_err(|e| bad(e.to_string()))?
    };
    if depth::value_exceeds(&value, limits.max_json_depth) {
        return Err(too_deep());
    }
    if !value.is_object() {
        return Err(bad("the top level must be an object".into()));
    }
    Ok(value)
}

/// Every document a data file writes must lie under a root: walk down from
/// the mount point while the path is still above some root.
fn check_data_roots(
    roots: &[Vec<&str>],
    root_names: &[String],
    file: &str,
    mount: &[String],
    value: &Value,
) -> Result<(), BundleError> {
    let mut pending = vec![(mount.to_vec(), value)];
    while let Some((path, v)) = pending.pop() {
        if under_roots(roots, &path) {
            continue;
        }
        match v {
            Value::Object(o) if above_some_root(roots, &path) => {
                for (k, child) in o {
                    let mut p = path.clone();
                    p.push(k.clone());
                    pending.push((p, child));
                }
            }
            _ => {
                return Err(BundleError::OutsideRoots {
                    file: file.to_string(),
                    what: "data",
                    path: path.join("/"),
                    roots: root_names.to_vec(),
                })
            }
        }
    }
    Ok(())
}

/// Merges `value` into `data` at `mount`; objects merge key by key, anything
/// else that meets an existing document is a conflict.
fn merge_at(
    data: &mut Value,
    mount: &[String],
    value: Value,
    file: &str,
) -> Result<(), BundleError> {
    let conflict = |path: &[String]| BundleError::DataConflict {
        file: file.to_string(),
        path: path.join("/"),
    };
    let mut node = data;
    for (i, key) in mount.iter().enumerate() {
        let Value::Object(map) = node else {
            return Err(conflict(&mount[..i]));
        };
        node = map
            .entry(key.clone())
            .or_insert_with(|| Value::Object(Map::new()));
    }
    merge_values(node, value, &mut mount.to_vec()).map_err(|p| conflict(&p))
}

fn merge_values(into: &mut Value, from: Value, path: &mut Vec<String>) -> Result<(), Vec<String>> {
    match (into, from) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                path.push(k.clone());
                match a.get_mut(&k) {
                    Some(existing) => merge_values(existing, v, path)?,
                    None => {
                        a.insert(k, v);
                    }
                }
                path.pop();
            }
            Ok(())
        }
        _ => Err(path.clone()),
    }
}
