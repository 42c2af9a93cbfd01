//! Helpers shared by the tenet-bundle integration tests: fixture paths, a tar
//! writer that writes names byte for byte (the `tar` crate's `Builder`
//! refuses `..` and absolute names), and small result checks.

use flate2::{Compression, GzBuilder};
use std::io::Write;
use std::path::PathBuf;
use tar::{EntryType, Header};
use tenet_bundle::BundleError;

/// `fixtures/bundles` at the workspace root.
pub fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/bundles")
}

/// `examples/bundles` at the workspace root (may not exist yet).
pub fn example_bundles() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/bundles")
}

/// Every name `BundleError::kind()` can return.
pub const KINDS: &[&str] = &[
    "compressed_too_large",
    "expanded_too_large",
    "file_too_large",
    "too_many_files",
    "path_too_deep",
    "json_too_deep",
    "unsafe_path",
    "unsupported_entry",
    "corrupt_archive",
    "invalid_utf8",
    "bad_package",
    "bad_manifest",
    "bad_data",
    "outside_roots",
    "data_conflict",
    "duplicate_file",
    "io",
];

/// `"ok"` or the error's kind, for compact assertions.
pub fn kind_of<T>(r: &Result<T, BundleError>) -> &'static str {
    match r {
        Ok(_) => "ok",
        Err(e) => e.kind(),
    }
}

/// The error kind, failing the test (with the value) if it succeeded.
#[track_caller]
pub fn err_kind<T: std::fmt::Debug>(r: Result<T, BundleError>) -> &'static str {
    match r {
        Ok(v) => panic!("expected an error, got Ok({v:?})"),
        Err(e) => e.kind(),
    }
}

/// How an entry name is stored in the tar headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameForm {
    /// In the 100-byte name field of a GNU header.
    Gnu,
    /// In a preceding GNU long-name (`L`) entry.
    GnuLong,
    /// Split over the ustar prefix and name fields.
    Ustar,
}

/// Splits `name` into ustar (prefix, name) fields at a slash, both parts
/// fitting their fields; a name of at most 100 bytes may also go whole.
fn ustar_split(name: &[u8]) -> Option<(&[u8], &[u8])> {
    let at_slash = name
        .iter()
        .enumerate()
        .rev()
        .filter(|&(i, &b)| b == b'/' && i <= 155 && name.len() - i - 1 <= 100)
        .map(|(i, _)| (&name[..i], &name[i + 1..]))
        .next();
    at_slash.or_else(|| (name.len() <= 100).then_some((&name[..0], name)))
}

/// An uncompressed tar stream written header by header.
#[derive(Default)]
pub struct RawTar {
    out: Vec<u8>,
}

impl RawTar {
    pub fn new() -> Self {
        Self::default()
    }

    fn push_header(
        &mut self,
        mut h: Header,
        kind: EntryType,
        size: u64,
        name: &[u8],
        prefix: &[u8],
    ) {
        h.set_entry_type(kind);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_size(size);
        h.as_old_mut().name[..name.len()].copy_from_slice(name);
        if let Some(ustar) = h.as_ustar_mut() {
            ustar.prefix[..prefix.len()].copy_from_slice(prefix);
        }
        h.set_cksum();
        self.out.extend_from_slice(h.as_bytes());
    }

    /// Appends `data` and pads it to a 512-byte block.
    pub fn data(&mut self, data: &[u8]) {
        self.out.extend_from_slice(data);
        let pad = (512 - data.len() % 512) % 512;
        self.out.extend(std::iter::repeat_n(0u8, pad));
    }

    /// One GNU header with `name` copied verbatim (at most 100 bytes).
    pub fn header(&mut self, name: &[u8], kind: EntryType, size: u64) {
        assert!(name.len() <= 100, "name too long for the name field");
        self.push_header(Header::new_gnu(), kind, size, name, b"");
    }

    /// A regular file named `name` (stored as `form` says) holding `data`.
    /// Names that do not fit the chosen form go into a GNU long-name entry.
    pub fn file_as(&mut self, form: NameForm, name: &[u8], data: &[u8]) {
        let size = data.len() as u64;
        match (form, ustar_split(name)) {
            (NameForm::Gnu, _) if name.len() <= 100 => {
                self.header(name, EntryType::Regular, size);
            }
            (NameForm::Ustar, Some((prefix, rest))) => {
                self.push_header(Header::new_ustar(), EntryType::Regular, size, rest, prefix);
            }
            _ => {
                let mut long = name.to_vec();
                long.push(0);
                self.header(b"././@LongLink", EntryType::GNULongName, long.len() as u64);
                self.data(&long);
                self.header(&name[..name.len().min(100)], EntryType::Regular, size);
            }
        }
        self.data(data);
    }

    /// A regular file in a GNU header.
    pub fn file(&mut self, name: &str, data: &[u8]) {
        self.file_as(NameForm::Gnu, name.as_bytes(), data);
    }

    /// The tar bytes with the end-of-archive marker.
    pub fn finish(mut self) -> Vec<u8> {
        self.out.extend_from_slice(&[0u8; 1024]);
        self.out
    }
}

/// Deterministic gzip of `bytes`.
pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut gz = GzBuilder::new()
        .mtime(0)
        .write(Vec::new(), Compression::fast());
    gz.write_all(bytes).expect("gzip write");
    gz.finish().expect("gzip finish")
}

/// Decompresses a gzip stream.
pub fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::MultiGzDecoder::new(bytes), &mut out)
        .expect("gunzip");
    out
}

/// A `.tar.gz` of regular files, names written verbatim.
pub fn tar_gz(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut t = RawTar::new();
    for (name, data) in entries {
        t.file(name, data);
    }
    gzip(&t.finish())
}

/// Writes `files` (relative path, content) under `root`, creating directories.
pub fn write_tree(root: &std::path::Path, files: &[(&str, &[u8])]) {
    for (rel, bytes) in files {
        let path = root.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("create_dir_all");
        }
        std::fs::write(&path, bytes).expect("write file");
    }
}
