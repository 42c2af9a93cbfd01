//! Persisted bundles (OPA's `persist`): after a fetched bundle activates,
//! its raw archive is written to `{dir}/{tenant}/bundle.tar.gz` with a small
//! `meta.json` (version tag, revision, source, size), each written to a
//! temporary file, synced and renamed into place, so a crash leaves the
//! previous copy or the new one, never a mix. When a new instance's first
//! fetch fails, the host validates and activates the persisted copy.
//!
//! Every source is persisted the same way, local ones included: a local
//! file or directory can disappear or be half-rewritten too, and one rule
//! is simpler to reason about than two.
//!
//! Pushed content (opt-in, `HostConfig::persist_pushed`) lives beside it in
//! `{dir}/{tenant}/pushed.json`: the tenant's pushed policies and data as
//! one JSON document, rewritten the same atomic way on every push that
//! changes them and removed when all of it is deleted. On start, the host
//! pushes each file's content again (overlay.rs), through the same checks
//! as any push.
//!
//! Blocking file I/O: call from a blocking thread. This module never
//! validates a bundle or pushed content (the host does, as for any fetch or
//! push) and never deletes anything but its own files.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use tenet_bundle::{Payload, VersionTag};

/// Why a bundle could not be persisted or read back.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum PersistError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("archiving the bundle: {0}")]
    Archive(#[from] tenet_bundle::BundleError),
    #[error("{path}: {source}")]
    Meta {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("{path}: {size} bytes is over the limit of {limit}")]
    TooLarge {
        path: PathBuf,
        size: u64,
        limit: u64,
    },
}

/// What is recorded beside a persisted archive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Meta {
    /// The source's version tag of this bundle.
    pub(crate) version: String,
    /// The bundle's revision (manifest).
    pub(crate) revision: String,
    /// Where it was fetched from.
    pub(crate) source: String,
    /// Size of `bundle.tar.gz`: a meta file that does not match its archive
    /// (a crash between the two renames) gives no version tag.
    pub(crate) archive_bytes: u64,
}

/// A persisted bundle, read back.
pub(crate) struct Persisted {
    pub(crate) archive: Vec<u8>,
    /// The version tag to send with the next fetch, when the meta file
    /// matches the archive.
    pub(crate) version: Option<VersionTag>,
}

fn tenant_dir(dir: &Path, tenant: &str) -> PathBuf {
    // Tenant ids are validated (`[A-Za-z0-9._-]`, not `.`/`..`): one safe
    // path component.
    dir.join(tenant)
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> PersistError + '_ {
    move |source| PersistError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Writes `bytes` to `path` through a synced temporary file and a rename.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), PersistError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(io(dir))?;
    tmp.write_all(bytes).map_err(io(tmp.path()))?;
    tmp.as_file().sync_all().map_err(io(path))?;
    tmp.persist(path).map_err(|e| PersistError::Io {
        path: path.to_path_buf(),
        source: e.error,
    })?;
    Ok(())
}

/// Persists a fetched payload for `tenant` (archive first, then meta).
pub(crate) fn write(
    dir: &Path,
    tenant: &str,
    payload: Payload,
    version: &VersionTag,
    revision: &str,
    source: &str,
) -> Result<(), PersistError> {
    let archive = match payload {
        Payload::Archive(bytes) => bytes,
        Payload::Files(files) => tenet_bundle::write_tar_gz(&files)?,
    };
    let dir = tenant_dir(dir, tenant);
    std::fs::create_dir_all(&dir).map_err(io(&dir))?;
    let meta = Meta {
        version: version.0.clone(),
        revision: revision.to_string(),
        source: source.to_string(),
        archive_bytes: archive.len() as u64,
    };
    write_atomic(&dir.join("bundle.tar.gz"), &archive)?;
    let meta_path = dir.join("meta.json");
    let json = serde_json::to_vec_pretty(&meta).map_err(|source| PersistError::Meta {
        path: meta_path.clone(),
        source,
    })?;
    write_atomic(&meta_path, &json)?;
    // The directory entry itself: best effort (not every platform can).
    if let Ok(d) = std::fs::File::open(&dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Reads `tenant`'s persisted bundle, if there is one that came from
/// `source`. The archive is read up to `max_bytes`; it is not validated.
pub(crate) fn read(
    dir: &Path,
    tenant: &str,
    source: &str,
    max_bytes: u64,
) -> Result<Option<Persisted>, PersistError> {
    let dir = tenant_dir(dir, tenant);
    let archive_path = dir.join("bundle.tar.gz");
    let meta_path = dir.join("meta.json");
    let meta: Option<Meta> = match std::fs::read(&meta_path) {
        Ok(bytes) => Some(
            serde_json::from_slice(&bytes).map_err(|source| PersistError::Meta {
                path: meta_path.clone(),
                source,
            })?,
        ),
        // No record of where the archive came from (a crash between the
        // two writes, a copied directory): it cannot be trusted as this
        // source's bundle.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(&meta_path)(e)),
    };
    // A bundle persisted from another source (the configuration changed)
    // is not this tenant's bundle any more.
    if meta.as_ref().is_some_and(|m| m.source != source) {
        return Ok(None);
    }
    let size = match std::fs::metadata(&archive_path) {
        Ok(m) => m.len(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(&archive_path)(e)),
    };
    if size > max_bytes {
        return Err(PersistError::TooLarge {
            path: archive_path,
            size,
            limit: max_bytes,
        });
    }
    let archive = std::fs::read(&archive_path).map_err(io(&archive_path))?;
    let version = meta
        .filter(|m| m.archive_bytes == archive.len() as u64)
        .map(|m| VersionTag(m.version));
    Ok(Some(Persisted { archive, version }))
}

/// A tenant's pushed content as it is kept on disk.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PushedFile {
    /// Pushed policies: id to Rego text.
    pub(crate) policies: BTreeMap<String, String>,
    /// The pushed data tree (members of `data`).
    pub(crate) data: Map<String, Value>,
}

const PUSHED_FILE: &str = "pushed.json";

/// `policies` and `data` as `pushed.json` holds them.
pub(crate) fn pushed_json(
    policies: &BTreeMap<String, String>,
    data: &Map<String, Value>,
) -> Vec<u8> {
    #[derive(Serialize)]
    struct Borrowed<'a> {
        policies: &'a BTreeMap<String, String>,
        data: &'a Map<String, Value>,
    }
    // String keys and JSON values only: serializing cannot fail.
    serde_json::to_vec(&Borrowed { policies, data }).unwrap_or_default()
}

/// Writes `tenant`'s pushed content (`pushed_json`), replacing what was
/// there.
pub(crate) fn write_pushed(dir: &Path, tenant: &str, json: &[u8]) -> Result<(), PersistError> {
    let dir = tenant_dir(dir, tenant);
    std::fs::create_dir_all(&dir).map_err(io(&dir))?;
    write_atomic(&dir.join(PUSHED_FILE), json)?;
    if let Ok(d) = std::fs::File::open(&dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Removes `tenant`'s pushed content; nothing there is not an error.
pub(crate) fn remove_pushed(dir: &Path, tenant: &str) -> Result<(), PersistError> {
    let path = tenant_dir(dir, tenant).join(PUSHED_FILE);
    match std::fs::remove_file(&path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io(&path)(e)),
        _ => Ok(()),
    }
}

/// Reads `tenant`'s pushed content, if any, refusing a file larger than
/// `max_bytes` or one that is not a regular file (a link is not followed).
pub(crate) fn read_pushed(
    dir: &Path,
    tenant: &str,
    max_bytes: u64,
) -> Result<Option<PushedFile>, PersistError> {
    let path = tenant_dir(dir, tenant).join(PUSHED_FILE);
    let meta = match std::fs::symlink_metadata(&path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(&path)(e)),
    };
    if !meta.file_type().is_file() {
        return Err(io(&path)(std::io::Error::other("not a regular file")));
    }
    if meta.len() > max_bytes {
        return Err(PersistError::TooLarge {
            path,
            size: meta.len(),
            limit: max_bytes,
        });
    }
    let bytes = std::fs::read(&path).map_err(io(&path))?;
    // serde_json's nesting bound (128) holds: pushed data is kept shallower
    // (document::MAX_PUSHED_DEPTH).
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|source| PersistError::Meta { path, source })
}

/// Tenants with pushed content under `dir`, in name order: entries that are
/// real directories named as valid tenant ids and hold a `pushed.json`.
pub(crate) fn pushed_tenants(dir: &Path) -> Result<Vec<String>, PersistError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io(dir)(e)),
    };
    let mut tenants = Vec::new();
    for entry in entries {
        let entry = entry.map_err(io(dir))?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
        if is_dir
            && crate::validate_tenant(&name).is_ok()
            && entry.path().join(PUSHED_FILE).exists()
        {
            tenants.push(name);
        }
    }
    tenants.sort();
    Ok(tenants)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use tenet_bundle::BundleFile;

    #[test]
    fn pushed_content_round_trips_and_is_listed_only_for_real_tenant_dirs() {
        let tmp = tempfile::tempdir().unwrap();
        let mut content = PushedFile {
            policies: BTreeMap::new(),
            data: Map::new(),
        };
        content
            .policies
            .insert("p".into(), "package p\n\nx := 1\n".into());
        content
            .data
            .insert("cfg".into(), serde_json::json!({"on": true}));
        let json = pushed_json(&content.policies, &content.data);
        write_pushed(tmp.path(), "t1", &json).unwrap();
        write_pushed(tmp.path(), "t0", &json).unwrap();
        assert_eq!(
            read_pushed(tmp.path(), "t1", 1 << 20).unwrap(),
            Some(content.clone())
        );
        assert_eq!(read_pushed(tmp.path(), "none", 1 << 20).unwrap(), None);
        assert!(matches!(
            read_pushed(tmp.path(), "t1", 10),
            Err(PersistError::TooLarge { .. })
        ));
        // Not tenants: a bad name, a plain file, a directory without pushed
        // content, a link to a tenant's directory.
        std::fs::create_dir(tmp.path().join("bad name")).unwrap();
        std::fs::write(tmp.path().join("bad name").join(PUSHED_FILE), b"{}").unwrap();
        std::fs::write(tmp.path().join("file"), b"").unwrap();
        std::fs::create_dir(tmp.path().join("empty")).unwrap();
        #[cfg(unix)]
        std::os::unix::fs::symlink(tmp.path().join("t1"), tmp.path().join("link")).unwrap();
        assert_eq!(pushed_tenants(tmp.path()).unwrap(), ["t0", "t1"]);
        remove_pushed(tmp.path(), "t1").unwrap();
        remove_pushed(tmp.path(), "t1").unwrap();
        assert_eq!(pushed_tenants(tmp.path()).unwrap(), ["t0"]);
        // A pushed.json that is a link is refused, not followed.
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink(
                tmp.path().join("t0").join(PUSHED_FILE),
                tmp.path().join("empty").join(PUSHED_FILE),
            )
            .unwrap();
            assert!(read_pushed(tmp.path(), "empty", 1 << 20).is_err());
        }
        assert_eq!(
            pushed_tenants(&tmp.path().join("missing")).unwrap(),
            Vec::<String>::new()
        );
    }

    #[test]
    fn an_archive_without_its_meta_file_is_never_restored() {
        let tmp = tempfile::tempdir().unwrap();
        let files = vec![BundleFile {
            path: "p.rego".into(),
            bytes: b"package p\n\nx := 1\n".to_vec(),
        }];
        let tag = VersionTag("v1".into());
        write(tmp.path(), "t", Payload::Files(files), &tag, "r1", "src/t").unwrap();
        std::fs::remove_file(tenant_dir(tmp.path(), "t").join("meta.json")).unwrap();
        assert!(read(tmp.path(), "t", "src/t", 1 << 20).unwrap().is_none());
    }

    #[test]
    fn written_bundles_read_back_with_their_version_only_from_the_same_source() {
        let tmp = tempfile::tempdir().unwrap();
        let files = vec![BundleFile {
            path: "p.rego".into(),
            bytes: b"package p\n\nx := 1\n".to_vec(),
        }];
        let tag = VersionTag("v1".into());
        write(tmp.path(), "t", Payload::Files(files), &tag, "r1", "src/t").unwrap();
        let back = read(tmp.path(), "t", "src/t", 1 << 20).unwrap().unwrap();
        assert_eq!(back.version, Some(tag.clone()));
        let bundle = Payload::Archive(back.archive)
            .into_bundle(&tenet_bundle::Limits::default())
            .unwrap();
        assert_eq!(bundle.modules.len(), 1);
        assert!(read(tmp.path(), "t", "elsewhere/t", 1 << 20)
            .unwrap()
            .is_none());
        assert!(read(tmp.path(), "nobody", "src/nobody", 1 << 20)
            .unwrap()
            .is_none());
        assert!(matches!(
            read(tmp.path(), "t", "src/t", 10),
            Err(PersistError::TooLarge { .. })
        ));
        // A meta file that does not describe the archive gives no version.
        std::fs::write(tmp.path().join("t/bundle.tar.gz"), b"other bytes").unwrap();
        let back = read(tmp.path(), "t", "src/t", 1 << 20).unwrap().unwrap();
        assert_eq!(back.version, None);
        // No temporary files are left behind.
        let names: Vec<_> = std::fs::read_dir(tmp.path().join("t"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
    }
}
