//! Every way a bundle can be refused. Each variant names the file and, for
//! limits, the limit that was crossed, so an operator can act on the message.
//! This module only describes failures; it must not decide policy.

use std::path::PathBuf;

/// Why a bundle was rejected or could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BundleError {
    /// The compressed archive is larger than `Limits::max_compressed_bytes`.
    #[error("bundle archive is {size} bytes, over the compressed size limit of {limit} bytes")]
    CompressedTooLarge { size: u64, limit: u64 },
    /// The archive expands past `Limits::max_expanded_bytes` (zip-bomb guard).
    #[error("bundle expands past the expanded size limit of {limit} bytes at file {file:?}")]
    ExpandedTooLarge { file: String, limit: u64 },
    /// One file is larger than `Limits::max_file_bytes`.
    #[error("file {file:?} is {size} bytes, over the per-file limit of {limit} bytes")]
    FileTooLarge { file: String, size: u64, limit: u64 },
    /// More files than `Limits::max_files`.
    #[error("bundle has more than {limit} files (limit reached at {file:?})")]
    TooManyFiles { file: String, limit: usize },
    /// A path with more components than `Limits::max_path_depth`.
    #[error("file {file:?} is {depth} directories deep, over the path depth limit of {limit}")]
    PathTooDeep {
        file: String,
        depth: usize,
        limit: usize,
    },
    /// A JSON or YAML document nested deeper than `Limits::max_json_depth`.
    #[error("file {file:?} nests deeper than the JSON depth limit of {limit}")]
    JsonTooDeep { file: String, limit: usize },
    /// A path that could escape the bundle or is not a plain relative path.
    #[error("unsafe path {file:?}: {reason}")]
    UnsafePath { file: String, reason: &'static str },
    /// An archive entry that is not a regular file or directory.
    #[error("archive entry {file:?} is a {kind}; only regular files and directories are allowed")]
    UnsupportedEntry { file: String, kind: &'static str },
    /// The gzip or tar framing is corrupt or truncated.
    #[error("corrupt bundle archive: {reason}")]
    Archive { reason: String },
    /// A `.rego` file (or a path) that is not UTF-8.
    #[error("file {file:?} is not valid UTF-8")]
    InvalidUtf8 { file: String },
    /// A `.rego` file without a `package` declaration.
    #[error("file {file:?} has no valid package declaration: {reason}")]
    BadPackage { file: String, reason: String },
    /// `.manifest` is not valid JSON or has fields of the wrong type.
    #[error("invalid .manifest: {reason}")]
    BadManifest { reason: String },
    /// A data file that does not parse, or whose top level is not an object.
    #[error("invalid data file {file:?}: {reason}")]
    BadData { file: String, reason: String },
    /// A package or a data document that lies outside the manifest's roots.
    #[error("manifest roots {roots:?} do not permit {what} at path {path:?} (from {file:?})")]
    OutsideRoots {
        file: String,
        what: &'static str,
        path: String,
        roots: Vec<String>,
    },
    /// Two data files write the same document.
    #[error("data file {file:?} conflicts with existing data at path {path:?}")]
    DataConflict { file: String, path: String },
    /// Two `.rego` files with the same path (possible only in archives).
    #[error("duplicate file {file:?} in archive")]
    DuplicateFile { file: String },
    /// The bundle's signature does not verify (only with a `Verifier`).
    #[error("bundle signature rejected: {reason}")]
    Signature { reason: SignatureFailure },
    /// Signing or verification settings that cannot be used: an unknown
    /// algorithm, a key that does not parse, a bad exclude pattern.
    #[error("invalid signing configuration{}: {reason}", for_key(.key_id))]
    SigningConfig {
        key_id: Option<String>,
        reason: String,
    },
    /// Reading a file or directory failed.
    #[error("cannot read {path:?}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn for_key(key_id: &Option<String>) -> String {
    key_id
        .as_ref()
        .map(|k| format!(" for key {k:?}"))
        .unwrap_or_default()
}

impl BundleError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }
}

impl BundleError {
    /// A stable snake_case name of the failure, for status reports, metrics
    /// labels and test fixtures (`"expanded_too_large"`, `"unsafe_path"`, …).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::CompressedTooLarge { .. } => "compressed_too_large",
            Self::ExpandedTooLarge { .. } => "expanded_too_large",
            Self::FileTooLarge { .. } => "file_too_large",
            Self::TooManyFiles { .. } => "too_many_files",
            Self::PathTooDeep { .. } => "path_too_deep",
            Self::JsonTooDeep { .. } => "json_too_deep",
            Self::UnsafePath { .. } => "unsafe_path",
            Self::UnsupportedEntry { .. } => "unsupported_entry",
            Self::Archive { .. } => "corrupt_archive",
            Self::InvalidUtf8 { .. } => "invalid_utf8",
            Self::BadPackage { .. } => "bad_package",
            Self::BadManifest { .. } => "bad_manifest",
            Self::BadData { .. } => "bad_data",
            Self::OutsideRoots { .. } => "outside_roots",
            Self::DataConflict { .. } => "data_conflict",
            Self::DuplicateFile { .. } => "duplicate_file",
            Self::Signature { .. } => "signature_invalid",
            Self::SigningConfig { .. } => "signing_config",
            Self::Io { .. } => "io",
        }
    }
}

/// Why a bundle's signature was rejected. Each case names the file or key
/// involved; [`SignatureFailure::name`] gives a stable snake_case name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignatureFailure {
    /// Verification is required but the bundle has no `.signatures.json`.
    #[error("the bundle has no .signatures.json")]
    MissingSignature,
    /// `.signatures.json` holds more than one JWT (OPA supports one).
    #[error(".signatures.json holds {count} JWTs; exactly one is supported")]
    MultipleSignatures { count: usize },
    /// `.signatures.json` or its JWT cannot be read.
    #[error("malformed signature: {detail}")]
    Malformed { detail: String },
    /// Neither the configuration nor the JWT names a key.
    #[error("no key id: none configured, and the JWT has no kid header or keyid claim")]
    MissingKeyId,
    /// The key id names no configured verification key.
    #[error("no verification key with id {key_id:?}")]
    UnknownKey { key_id: String },
    /// The JWT's `alg` header differs from the configured key's algorithm.
    #[error("key {key_id:?} verifies {expected} but the JWT says {found:?}")]
    AlgorithmMismatch {
        key_id: String,
        expected: String,
        found: String,
    },
    /// The JWT's signature does not verify with the key.
    #[error("the JWT signature does not verify with key {key_id:?}")]
    BadSignature { key_id: String },
    /// The JWT's `scope` claim differs from the configured scope.
    #[error("scope mismatch: expected {expected:?}, the signature carries {found:?}")]
    ScopeMismatch { expected: String, found: String },
    /// A file's content does not match its signed hash.
    #[error("file {file:?} does not match its signed hash")]
    FileHashMismatch { file: String },
    /// A file of the bundle is not listed in the signature.
    #[error("file {file:?} is not covered by the signature")]
    FileNotSigned { file: String },
    /// A file listed in the signature is not in the bundle.
    #[error("signed file {file:?} is missing from the bundle")]
    SignedFileMissing { file: String },
    /// A file's hash algorithm is not one OPA supports.
    #[error("file {file:?} is signed with unsupported hash algorithm {algorithm:?}")]
    UnsupportedHashAlgorithm { file: String, algorithm: String },
}

impl SignatureFailure {
    /// A stable snake_case name of the case (`"file_hash_mismatch"`, …).
    pub fn name(&self) -> &'static str {
        match self {
            Self::MissingSignature => "missing_signature",
            Self::MultipleSignatures { .. } => "multiple_signatures",
            Self::Malformed { .. } => "malformed",
            Self::MissingKeyId => "missing_key_id",
            Self::UnknownKey { .. } => "unknown_key",
            Self::AlgorithmMismatch { .. } => "algorithm_mismatch",
            Self::BadSignature { .. } => "bad_signature",
            Self::ScopeMismatch { .. } => "scope_mismatch",
            Self::FileHashMismatch { .. } => "file_hash_mismatch",
            Self::FileNotSigned { .. } => "file_not_signed",
            Self::SignedFileMissing { .. } => "signed_file_missing",
            Self::UnsupportedHashAlgorithm { .. } => "unsupported_hash_algorithm",
        }
    }

    /// The bundle file the failure is about, when there is one.
    pub fn file(&self) -> Option<&str> {
        match self {
            Self::FileHashMismatch { file }
            | Self::FileNotSigned { file }
            | Self::SignedFileMissing { file }
            | Self::UnsupportedHashAlgorithm { file, .. } => Some(file),
            _ => None,
        }
    }
}
