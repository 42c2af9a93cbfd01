#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Regenerates the binary bundle fixtures:
//!
//! * every file under `fixtures/bundles/hostile/` (the archives and
//!   `expected.json`, which maps each archive to the `BundleError::kind()` it
//!   must produce under the default `Limits`);
//! * `fixtures/bundles/valid/opa-style.tar.gz`.
//!
//! Run with `cargo run -p tenet-bundle --example make_hostile_fixtures`
//! (optionally followed by another `fixtures/bundles` directory to write to).
//!
//! Tar headers are written by hand: the `tar` crate's `Builder` refuses `..`
//! and absolute names, which are exactly what the hostile cases need. Every
//! header has mtime 0, uid/gid 0 and fixed modes, and the gzip header has
//! mtime 0, so the output is byte-for-byte deterministic. Large expansions are
//! built from repeated bytes, which gzip shrinks about 1000:1, so every file
//! stays small on disk.

use flate2::write::GzEncoder;
use flate2::{Compression, GzBuilder};
use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use tar::{EntryType, Header};

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

/// A tar stream written header by header, with no path validation.
struct RawTar<W: Write> {
    out: W,
}

impl<W: Write> RawTar<W> {
    fn new(out: W) -> Self {
        Self { out }
    }

    /// Writes one header with `name` (and `link`) copied byte for byte.
    fn header(&mut self, name: &[u8], kind: EntryType, size: u64, link: &[u8]) {
        let mut h = Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(if kind == EntryType::Directory {
            0o755
        } else {
            0o644
        });
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_size(size);
        if kind == EntryType::Char {
            h.set_device_major(1).unwrap();
            h.set_device_minor(3).unwrap();
        }
        let old = h.as_old_mut();
        assert!(name.len() <= old.name.len(), "name too long: {name:?}");
        assert!(link.len() <= old.linkname.len(), "link too long: {link:?}");
        old.name[..name.len()].copy_from_slice(name);
        old.linkname[..link.len()].copy_from_slice(link);
        h.set_cksum();
        self.out.write_all(h.as_bytes()).unwrap();
    }

    /// Writes `size` bytes of content from `data`, padded to a 512-byte block.
    fn content(&mut self, data: impl Read, size: u64) {
        let copied = io::copy(&mut data.take(size), &mut self.out).unwrap();
        assert_eq!(copied, size, "content shorter than its header claims");
        let pad = (512 - size % 512) % 512;
        self.out.write_all(&vec![0u8; pad as usize]).unwrap();
    }

    /// A regular file with the given content.
    fn file(&mut self, name: &str, bytes: &[u8]) {
        self.file_raw(name.as_bytes(), bytes);
    }

    fn file_raw(&mut self, name: &[u8], bytes: &[u8]) {
        self.header(name, EntryType::Regular, bytes.len() as u64, b"");
        self.content(bytes, bytes.len() as u64);
    }

    /// A regular file of `size` copies of `byte`, streamed (never in memory).
    fn repeated(&mut self, name: &str, byte: u8, size: u64) {
        self.header(name.as_bytes(), EntryType::Regular, size, b"");
        self.content(io::repeat(byte), size);
    }

    /// The end-of-archive marker (two zero blocks); returns the writer.
    fn finish(mut self) -> W {
        self.out.write_all(&[0u8; 1024]).unwrap();
        self.out
    }
}

fn gzip_writer() -> GzEncoder<Vec<u8>> {
    GzBuilder::new()
        .mtime(0)
        .write(Vec::new(), Compression::best())
}

/// A complete `.tar.gz` built by `build`.
fn tar_gz(build: impl FnOnce(&mut RawTar<GzEncoder<Vec<u8>>>)) -> Vec<u8> {
    let mut tar = RawTar::new(gzip_writer());
    build(&mut tar);
    tar.finish().finish().unwrap()
}

/// A `.tar.gz` of regular files.
fn files(entries: &[(&str, &[u8])]) -> Vec<u8> {
    tar_gz(|t| {
        for (name, bytes) in entries {
            t.file(name, bytes);
        }
    })
}

/// A small but valid bundle whose compressed form is a few KiB, so that half
/// of it ends inside the deflate stream.
fn valid_bundle() -> Vec<u8> {
    let mut policy = String::from("package app.authz\n\ndefault allow := false\n\n");
    for i in 0..200 {
        policy.push_str(&format!(
            "allow if {{ input.user == \"user-{i}\"; input.action == \"action-{}\" }}\n",
            (i * 7919) % 1000
        ));
    }
    let mut data = String::from("{\"app\": {\"users\": {");
    for i in 0..200 {
        if i > 0 {
            data.push(',');
        }
        data.push_str(&format!(
            "\"user-{i}\": {{\"team\": \"t{}\"}}",
            (i * 31) % 97
        ));
    }
    data.push_str("}}}");
    files(&[
        (".manifest", br#"{"revision": "r1", "roots": ["app"]}"#),
        ("app/authz/policy.rego", policy.as_bytes()),
        ("data.json", data.as_bytes()),
    ])
}

/// Every hostile case: file name, the error kind it must produce under the
/// default limits, and its bytes.
fn hostile() -> Vec<(&'static str, &'static str, Vec<u8>)> {
    let mut cases = Vec::new();
    let mut case = |name, kind, bytes| cases.push((name, kind, bytes));

    // Five files of 60 MiB: each under the 64 MiB per-file limit, 300 MiB in
    // total, over the 256 MiB expanded limit.
    case(
        "zip-bomb.tar.gz",
        "expanded_too_large",
        tar_gz(|t| {
            for i in 0..5 {
                t.repeated(&format!("bomb/{i}/data.json"), b' ', 60 * MIB);
            }
        }),
    );

    // A header claiming 100 GiB (GNU base-256 size field) with no content:
    // refused from the header alone.
    case(
        "huge-file-header.tar.gz",
        "file_too_large",
        tar_gz(|t| t.header(b"data.json", EntryType::Regular, 100 * GIB, b"")),
    );

    case(
        "traversal.tar.gz",
        "unsafe_path",
        files(&[("../../etc/evil.rego", b"package evil\n")]),
    );
    case(
        "absolute-path.tar.gz",
        "unsafe_path",
        files(&[("//etc/passwd", b"root:x:0:0::/root:/bin/sh\n")]),
    );
    case(
        "drive-letter.tar.gz",
        "unsafe_path",
        files(&[("C:/x.rego", b"package x\n")]),
    );

    case(
        "symlink.tar.gz",
        "unsupported_entry",
        tar_gz(|t| t.header(b"policy.rego", EntryType::Symlink, 0, b"/etc/passwd")),
    );
    case(
        "hardlink.tar.gz",
        "unsupported_entry",
        tar_gz(|t| {
            t.file("data.json", b"{}");
            t.header(b"policy.rego", EntryType::Link, 0, b"/etc/passwd");
        }),
    );
    case(
        "device.tar.gz",
        "unsupported_entry",
        tar_gz(|t| t.header(b"null", EntryType::Char, 0, b"")),
    );

    // A million identical empty-file headers: 512 MB of tar, ~1 MB of gzip.
    case(
        "million-files.tar.gz",
        "too_many_files",
        tar_gz(|t| {
            for _ in 0..1_000_000 {
                t.header(b"f", EntryType::Regular, 0, b"");
            }
        }),
    );

    case(
        "invalid-utf8.tar.gz",
        "invalid_utf8",
        files(&[("policy.rego", b"package x\n\xff\xfe")]),
    );

    case(
        "outside-roots.tar.gz",
        "outside_roots",
        files(&[
            (".manifest", br#"{"roots": ["a"]}"#),
            ("b/policy.rego", b"package b\n\nallow := true\n"),
        ]),
    );
    case(
        "data-outside-roots.tar.gz",
        "outside_roots",
        files(&[
            (".manifest", br#"{"roots": ["a"]}"#),
            ("data.json", br#"{"b": 1}"#),
        ]),
    );

    case(
        "bad-manifest.tar.gz",
        "bad_manifest",
        files(&[(".manifest", br#"{"revision": "#)]),
    );
    case(
        "bad-manifest-type.tar.gz",
        "bad_manifest",
        files(&[(".manifest", br#"{"roots": "a"}"#)]),
    );

    // 10 MB of brackets: 5,000,000 levels deep. The depth scan stops at 129
    // levels; a recursive parser would overflow its stack.
    case(
        "deep-json.tar.gz",
        "json_too_deep",
        tar_gz(|t| {
            let depth = 5_000_000u64;
            t.header(b"data.json", EntryType::Regular, 2 * depth, b"");
            let brackets = io::repeat(b'[')
                .take(depth)
                .chain(io::repeat(b']').take(depth));
            t.content(brackets, 2 * depth);
        }),
    );

    let valid = valid_bundle();
    case(
        "truncated.tar.gz",
        "corrupt_archive",
        valid[..valid.len() / 2].to_vec(),
    );
    case(
        "not-gzip.tar.gz",
        "corrupt_archive",
        b"this is a plain text file, not a gzip-compressed tar archive\n".to_vec(),
    );

    let deep = format!("{}policy.rego", "d/".repeat(40));
    case(
        "deep-path.tar.gz",
        "path_too_deep",
        files(&[(deep.as_str(), b"package d\n")]),
    );

    case(
        "data-conflict.tar.gz",
        "data_conflict",
        files(&[
            ("data.json", br#"{"a": {"b": 1}}"#),
            ("a/b/data.json", br#"{"c": 2}"#),
        ]),
    );

    case(
        "no-package.tar.gz",
        "bad_package",
        files(&[("policy.rego", b"# no package here\n\nallow := true\n")]),
    );

    cases
}

/// A bundle exactly as `opa build` writes it: every entry name starts with `/`.
fn opa_style() -> Vec<u8> {
    files(&[
        (
            "/.manifest",
            br#"{"revision":"opa-style-1","roots":["authz"],"metadata":{"built_by":"opa build"}}"#,
        ),
        (
            "/data.json",
            br#"{"authz":{"default_role":"viewer","enabled":true}}"#,
        ),
        (
            "/authz/policy.rego",
            b"package authz\n\ndefault allow := false\n\nallow if data.authz.roles[input.role].write\n",
        ),
        (
            "/authz/roles/data.json",
            br#"{"admin":{"write":true},"viewer":{"write":false}}"#,
        ),
    ])
}

fn write(path: &Path, bytes: &[u8]) {
    std::fs::write(path, bytes).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    println!("{:>10} bytes  {}", bytes.len(), path.display());
}

fn main() {
    let root: PathBuf = std::env::args_os().nth(1).map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/bundles"),
        PathBuf::from,
    );
    let hostile_dir = root.join("hostile");
    let valid_dir = root.join("valid");
    std::fs::create_dir_all(&hostile_dir).unwrap();
    std::fs::create_dir_all(&valid_dir).unwrap();

    let mut expected = BTreeMap::new();
    for (name, kind, bytes) in hostile() {
        write(&hostile_dir.join(name), &bytes);
        expected.insert(name, kind);
    }
    let mut json = serde_json::to_string_pretty(&expected).unwrap();
    json.push('\n');
    write(&hostile_dir.join("expected.json"), json.as_bytes());

    write(&valid_dir.join("opa-style.tar.gz"), &opa_style());
}
