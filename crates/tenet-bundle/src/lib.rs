//! The OPA bundle format: read a bundle directory or `.tar.gz` into a
//! validated [`Bundle`] (manifest, modules, data), enforce [`Limits`] on
//! everything a tenant controls, build OPA-compatible archives, and fetch
//! bundles through the [`BundleSource`] trait.
//!
//! This crate knows nothing of tenants or evaluation: it turns bytes into a
//! checked bundle or a [`BundleError`] that names the file and the limit.

mod bundle;
pub mod depth;
mod error;
mod files;
mod limits;
mod manifest;
mod package;
mod path;
mod signing;
mod source;
pub mod yaml;

pub use bundle::{Bundle, DataFile, Module};
pub use error::{BundleError, SignatureFailure};
pub use files::{read_dir, read_tar_gz, write_tar_gz, BundleFile};
pub use limits::Limits;
pub use manifest::{BundleLabels, Manifest, MAX_BUNDLE_LABELS, MAX_BUNDLE_LABEL_VALUE};
pub use package::package_path;
pub use signing::{
    sign_files, KeyConfig, SigningKey, VerificationConfig, Verifier, SIGNATURES_FILE,
};
pub use source::{BundleSource, DirectorySource, Fetched, FileSource, Payload, VersionTag};

/// Builds an OPA-compatible `.tar.gz` from a bundle directory, after checking
/// that the directory is a valid bundle under `limits`.
pub fn build_archive(dir: &std::path::Path, limits: &Limits) -> Result<Vec<u8>, BundleError> {
    let files = read_dir(dir, limits)?;
    Bundle::from_files(files.clone(), limits)?;
    write_tar_gz(&files)
}
