//! Reading the files of a bundle from a `.tar.gz` or a directory into memory,
//! under the limits, and writing files back into an OPA-style `.tar.gz`. This
//! is the only module that touches archives or the filesystem; it never
//! writes to the filesystem and never follows links.

use crate::path::normalize;
use crate::{BundleError, Limits};
use flate2::read::MultiGzDecoder;
use std::cell::Cell;
use std::io::Read;
use std::path::Path;

/// One file of a bundle: its normalised path and its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BundleFile {
    /// Path relative to the bundle root, `a/b/c` form.
    pub path: String,
    /// The file's contents.
    pub bytes: Vec<u8>,
}

/// SHA-256 over every file's path and content, in the order given (callers
/// pass files in path order): the bundle digest and the directory source's
/// version tag.
pub(crate) fn digest(files: &[BundleFile]) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for f in files {
        h.update((f.path.len() as u64).to_le_bytes());
        h.update(f.path.as_bytes());
        h.update((f.bytes.len() as u64).to_le_bytes());
        h.update(&f.bytes);
    }
    hex::encode(h.finalize())
}

/// Running totals checked against the limits as files are read.
struct Budget<'a> {
    limits: &'a Limits,
    files: usize,
    expanded: u64,
}

impl<'a> Budget<'a> {
    fn new(limits: &'a Limits) -> Self {
        Self {
            limits,
            files: 0,
            expanded: 0,
        }
    }

    /// Accounts for one more file of `size` bytes, before its bytes are read.
    fn admit(&mut self, file: &str, size: u64) -> Result<(), BundleError> {
        self.files += 1;
        if self.files > self.limits.max_files {
            return Err(BundleError::TooManyFiles {
                file: file.to_string(),
                limit: self.limits.max_files,
            });
        }
        if size > self.limits.max_file_bytes {
            return Err(BundleError::FileTooLarge {
                file: file.to_string(),
                size,
                limit: self.limits.max_file_bytes,
            });
        }
        self.expanded = self.expanded.saturating_add(size);
        if self.expanded > self.limits.max_expanded_bytes {
            return Err(BundleError::ExpandedTooLarge {
                file: file.to_string(),
                limit: self.limits.max_expanded_bytes,
            });
        }
        Ok(())
    }
}

/// Tar framing allowed per admitted file on top of its content: its header,
/// up to 511 bytes of padding, and room for a directory entry, a GNU long
/// name or a PAX record of ordinary size.
const TAR_OVERHEAD_PER_FILE: u64 = 2048;

/// A reader that fails once more than `left` bytes have come out of `inner`.
///
/// `Budget` only sees the regular files handed to us; the `tar` crate also
/// reads headers, skips the content of directories and other ignored entries,
/// and buffers GNU long names and PAX records in full before we see the entry
/// they describe. Capping the decompressed stream bounds all of that, so a
/// small archive cannot make us decompress or hold more than the limits say.
struct Capped<'a, R> {
    inner: R,
    left: u64,
    hit: &'a Cell<bool>,
}

impl<R: Read> Read for Capped<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if self.left == 0 {
            // Ending exactly at the cap is fine; one more byte is not.
            let mut probe = [0u8; 1];
            if self.inner.read(&mut probe)? == 0 {
                return Ok(0);
            }
            self.hit.set(true);
            return Err(std::io::Error::other(
                "decompressed archive exceeds the limits",
            ));
        }
        let max = usize::try_from(self.left).map_or(buf.len(), |left| left.min(buf.len()));
        let n = self.inner.read(&mut buf[..max])?;
        self.left = self.left.saturating_sub(n as u64);
        Ok(n)
    }
}

fn archive_error(e: std::io::Error) -> BundleError {
    BundleError::Archive {
        reason: e.to_string(),
    }
}

/// Reads every regular file of a gzip-compressed tar archive.
///
/// Directories and tar metadata entries (PAX, GNU long names) are skipped;
/// links, devices and FIFOs are refused. Sizes are checked against the limits
/// from the entry header before any content is decompressed, so an archive
/// that claims a huge file costs nothing.
pub fn read_tar_gz(bytes: &[u8], limits: &Limits) -> Result<Vec<BundleFile>, BundleError> {
    let size = bytes.len() as u64;
    if size > limits.max_compressed_bytes {
        return Err(BundleError::CompressedTooLarge {
            size,
            limit: limits.max_compressed_bytes,
        });
    }
    let hit = Cell::new(false);
    let stream = Capped {
        inner: MultiGzDecoder::new(bytes),
        left: limits
            .max_expanded_bytes
            .saturating_add(TAR_OVERHEAD_PER_FILE.saturating_mul(limits.max_files as u64 + 1)),
        hit: &hit,
    };
    match read_entries(tar::Archive::new(stream), limits) {
        Err(BundleError::Archive { .. }) if hit.get() => Err(BundleError::ExpandedTooLarge {
            file: "(archive stream)".to_string(),
            limit: limits.max_expanded_bytes,
        }),
        other => other,
    }
}

fn read_entries<R: Read>(
    mut archive: tar::Archive<R>,
    limits: &Limits,
) -> Result<Vec<BundleFile>, BundleError> {
    let mut budget = Budget::new(limits);
    let mut out = Vec::new();
    for entry in archive.entries().map_err(archive_error)? {
        let mut entry = entry.map_err(archive_error)?;
        let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        if std::str::from_utf8(&entry.path_bytes()).is_err() {
            return Err(BundleError::InvalidUtf8 { file: raw });
        }
        use tar::EntryType as T;
        let kind = match entry.header().entry_type() {
            T::Regular | T::Continuous => None,
            T::Directory | T::XGlobalHeader | T::XHeader | T::GNULongName | T::GNULongLink => {
                continue
            }
            T::Symlink => Some("symbolic link"),
            T::Link => Some("hard link"),
            T::Char => Some("character device"),
            T::Block => Some("block device"),
            T::Fifo => Some("FIFO"),
            _ => Some("special entry"),
        };
        if let Some(kind) = kind {
            return Err(BundleError::UnsupportedEntry { file: raw, kind });
        }
        let path = normalize(&raw, limits)?;
        // The entry's size, which a PAX `size` record overrides: the header
        // field alone would disagree with what the tar reader (and OPA) read.
        let size = entry.size();
        budget.admit(&path, size)?;
        let mut content = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
        entry
            .by_ref()
            .take(size)
            .read_to_end(&mut content)
            .map_err(archive_error)?;
        if content.len() as u64 != size {
            return Err(BundleError::Archive {
                reason: format!("file {path:?} is truncated"),
            });
        }
        out.push(BundleFile {
            path,
            bytes: content,
        });
    }
    Ok(out)
}

/// Reads every file under a bundle directory, in path order.
///
/// Symbolic links, hard links and special files are refused (a link could
/// pull a host file into a tenant's bundle): the directory itself must not
/// be a symbolic link, and a regular file with more than one link is
/// refused, since its other name may lie anywhere on the file system. Sizes
/// are checked before reading.
pub fn read_dir(root: &Path, limits: &Limits) -> Result<Vec<BundleFile>, BundleError> {
    // `symlink_metadata`, not `metadata`: a tenant directory that is a link
    // would serve whatever directory it points to.
    let meta = std::fs::symlink_metadata(root).map_err(|e| BundleError::io(root, e))?;
    if meta.file_type().is_symlink() {
        return Err(BundleError::UnsupportedEntry {
            file: root.display().to_string(),
            kind: "symbolic link",
        });
    }
    if !meta.is_dir() {
        return Err(BundleError::io(
            root,
            std::io::Error::new(std::io::ErrorKind::NotADirectory, "not a directory"),
        ));
    }
    let mut budget = Budget::new(limits);
    let mut out = Vec::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let entries = std::fs::read_dir(&dir).map_err(|e| BundleError::io(&dir, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| BundleError::io(&dir, e))?;
            let full = entry.path();
            let rel = full.strip_prefix(root).unwrap_or(&full);
            let Some(rel_str) = rel.to_str() else {
                return Err(BundleError::InvalidUtf8 {
                    file: rel.to_string_lossy().into_owned(),
                });
            };
            let kind = entry.file_type().map_err(|e| BundleError::io(&full, e))?;
            if kind.is_symlink() {
                return Err(BundleError::UnsupportedEntry {
                    file: rel_str.to_string(),
                    kind: "symbolic link",
                });
            }
            if kind.is_dir() {
                normalize(rel_str, limits)?;
                pending.push(full);
                continue;
            }
            if !kind.is_file() {
                return Err(BundleError::UnsupportedEntry {
                    file: rel_str.to_string(),
                    kind: "special file",
                });
            }
            let path = normalize(rel_str, limits)?;
            // `DirEntry::metadata` does not follow links (lstat).
            let meta = entry.metadata().map_err(|e| BundleError::io(&full, e))?;
            if hard_linked(&meta) {
                return Err(BundleError::UnsupportedEntry {
                    file: rel_str.to_string(),
                    kind: "hard link",
                });
            }
            budget.admit(&path, meta.len())?;
            let bytes = read_bounded(&full, limits.max_file_bytes)?;
            out.push(BundleFile { path, bytes });
        }
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

/// True for a regular file with more than one name: a hard link, whose
/// other name may be a host file outside the bundle directory.
#[cfg(unix)]
pub(crate) fn hard_linked(meta: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::MetadataExt;
    meta.is_file() && meta.nlink() > 1
}

/// Link counts are not checked where the platform does not report them.
#[cfg(not(unix))]
pub(crate) fn hard_linked(_meta: &std::fs::Metadata) -> bool {
    false
}

/// Reads a file, refusing to read more than `limit` bytes even if the file
/// grows between the size check and the read.
pub(crate) fn read_bounded(path: &Path, limit: u64) -> Result<Vec<u8>, BundleError> {
    let file = std::fs::File::open(path).map_err(|e| BundleError::io(path, e))?;
    let mut bytes = Vec::new();
    file.take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| BundleError::io(path, e))?;
    if bytes.len() as u64 > limit {
        return Err(BundleError::FileTooLarge {
            file: path.display().to_string(),
            size: bytes.len() as u64,
            limit,
        });
    }
    Ok(bytes)
}

/// Writes files into a gzip-compressed tar archive that OPA reads as a bundle:
/// entries in path order with fixed ownership, mode and mtime, so the same
/// files always give the same bytes. Names are written relative (`a/b.rego`);
/// OPA accepts both that and its own `/a/b.rego` form.
pub fn write_tar_gz(files: &[BundleFile]) -> Result<Vec<u8>, BundleError> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let mut builder = tar::Builder::new(gz);
    let mut sorted: Vec<&BundleFile> = files.iter().collect();
    sorted.sort_by(|a, b| a.path.cmp(&b.path));
    for f in sorted {
        let mut header = tar::Header::new_gnu();
        header.set_size(f.bytes.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(0);
        header.set_uid(0);
        header.set_gid(0);
        header.set_entry_type(tar::EntryType::Regular);
        builder
            .append_data(&mut header, &f.path, f.bytes.as_slice())
            .map_err(archive_error)?;
    }
    let gz = builder.into_inner().map_err(archive_error)?;
    gz.finish().map_err(archive_error)
}
