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
//! Blocking file I/O: call from a blocking thread. This module never
//! validates a bundle (the host does, as for any fetch) and never deletes
//! anything but its own temporary files.

use serde::{Deserialize, Serialize};
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

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use tenet_bundle::BundleFile;

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
