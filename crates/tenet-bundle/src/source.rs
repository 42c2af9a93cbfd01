//! Where a tenant's bundle comes from. A [`BundleSource`] fetches the raw
//! bundle and an opaque version tag (an ETag, a content digest); given the tag
//! of the revision already held, it may answer [`Fetched::NotModified`].
//! Sources fetch and nothing else: validation and compilation happen in the
//! caller, so a source never decides whether a bundle is good.

use crate::files::{read_bounded, read_dir, BundleFile};
use crate::{Bundle, BundleError, Limits, Verifier};
use sha2::{Digest, Sha256};
use std::path::PathBuf;

/// Opaque version of a fetched bundle: equal tags mean the same bundle.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct VersionTag(pub String);

/// The raw bundle a source returns.
#[derive(Debug, Clone)]
pub enum Payload {
    /// A `.tar.gz` archive.
    Archive(Vec<u8>),
    /// Files of a bundle directory.
    Files(Vec<BundleFile>),
}

impl Payload {
    /// Validates the payload into a bundle (a `.signatures.json` is ignored).
    pub fn into_bundle(self, limits: &Limits) -> Result<Bundle, BundleError> {
        self.into_bundle_verified(limits, None)
    }

    /// Validates the payload into a bundle whose signature must verify when
    /// `verifier` is given.
    pub fn into_bundle_verified(
        self,
        limits: &Limits,
        verifier: Option<&Verifier>,
    ) -> Result<Bundle, BundleError> {
        match self {
            Payload::Archive(bytes) => Bundle::from_tar_gz_verified(&bytes, limits, verifier),
            Payload::Files(files) => Bundle::from_files_verified(files, limits, verifier),
        }
    }
}

/// The answer of a fetch.
#[derive(Debug, Clone)]
pub enum Fetched {
    /// The bundle is the one with the tag passed in.
    NotModified,
    /// A bundle with its version tag.
    Bundle {
        /// The raw bundle.
        payload: Payload,
        /// Its version; pass it to the next fetch.
        version: VersionTag,
    },
}

/// A place a bundle can be fetched from.
#[async_trait::async_trait]
pub trait BundleSource: Send + Sync + std::fmt::Debug {
    /// Fetches the bundle; `known` is the tag of the bundle the caller holds.
    async fn fetch(&self, known: Option<&VersionTag>) -> Result<Fetched, BundleError>;

    /// A human-readable location (path or URL) for logs and status.
    fn location(&self) -> String;

    /// A local path whose changes should trigger a fetch right away (a
    /// watched directory or file). `None` for remote sources.
    fn watch_path(&self) -> Option<PathBuf> {
        None
    }

    /// True while the remote end honours long polling: a fetch then waits
    /// server-side for a change, so the caller fetches again right after it
    /// returns instead of sleeping a polling delay.
    fn long_polls(&self) -> bool {
        false
    }
}

fn answer(payload: Payload, version: VersionTag, known: Option<&VersionTag>) -> Fetched {
    if known == Some(&version) {
        Fetched::NotModified
    } else {
        Fetched::Bundle { payload, version }
    }
}

async fn blocking<T: Send + 'static>(
    path: &std::path::Path,
    f: impl FnOnce() -> Result<T, BundleError> + Send + 'static,
) -> Result<T, BundleError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| {
        BundleError::io(
            path,
            std::io::Error::other(format!("read task failed: {e}")),
        )
    })?
}

/// A bundle directory; its version is the digest of its files.
#[derive(Debug, Clone)]
pub struct DirectorySource {
    dir: PathBuf,
    limits: Limits,
}

impl DirectorySource {
    /// A source reading `dir`, refusing files past `limits`.
    pub fn new(dir: impl Into<PathBuf>, limits: Limits) -> Self {
        Self {
            dir: dir.into(),
            limits,
        }
    }
}

#[async_trait::async_trait]
impl BundleSource for DirectorySource {
    async fn fetch(&self, known: Option<&VersionTag>) -> Result<Fetched, BundleError> {
        let (dir, limits) = (self.dir.clone(), self.limits.clone());
        let files = blocking(&self.dir, move || read_dir(&dir, &limits)).await?;
        let version = VersionTag(crate::files::digest(&files));
        Ok(answer(Payload::Files(files), version, known))
    }

    fn location(&self) -> String {
        self.dir.display().to_string()
    }

    fn watch_path(&self) -> Option<PathBuf> {
        Some(self.dir.clone())
    }
}

/// A `.tar.gz` bundle file; its version is the digest of its bytes.
#[derive(Debug, Clone)]
pub struct FileSource {
    file: PathBuf,
    limits: Limits,
}

impl FileSource {
    /// A source reading the archive at `file`.
    pub fn new(file: impl Into<PathBuf>, limits: Limits) -> Self {
        Self {
            file: file.into(),
            limits,
        }
    }
}

#[async_trait::async_trait]
impl BundleSource for FileSource {
    async fn fetch(&self, known: Option<&VersionTag>) -> Result<Fetched, BundleError> {
        let (file, limit) = (self.file.clone(), self.limits.max_compressed_bytes);
        let bytes = blocking(&self.file, move || {
            read_bounded(&file, limit).map_err(|e| match e {
                BundleError::FileTooLarge { size, limit, .. } => {
                    BundleError::CompressedTooLarge { size, limit }
                }
                other => other,
            })
        })
        .await?;
        let version = VersionTag(hex::encode(Sha256::digest(&bytes)));
        Ok(answer(Payload::Archive(bytes), version, known))
    }

    fn location(&self) -> String {
        self.file.display().to_string()
    }

    fn watch_path(&self) -> Option<PathBuf> {
        Some(self.file.clone())
    }
}
