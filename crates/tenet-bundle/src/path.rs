//! Paths of files inside a bundle: turning an archive entry name or a file
//! relative to the bundle directory into a clean `a/b/c` path, or refusing it.
//! Nothing here touches the filesystem.

use crate::{BundleError, Limits};

/// Longest path accepted, in bytes (Linux's PATH_MAX). Longer names can only
/// come from GNU long-name or PAX records, never from a real bundle.
const MAX_PATH_BYTES: usize = 4096;

/// Normalises a path inside a bundle to `a/b/c` form.
///
/// One leading `/` is accepted and removed: OPA's own `opa build` writes
/// archive entries as `/data.json`, `/.manifest`, meaning "relative to the
/// bundle root". Everything that could point elsewhere is refused: `..`,
/// a second leading slash (`//host/x`), backslashes and drive letters
/// (Windows-absolute), NUL bytes, and empty paths. `.` components are dropped.
pub(crate) fn normalize(raw: &str, limits: &Limits) -> Result<String, BundleError> {
    let unsafe_path = |reason| BundleError::UnsafePath {
        file: raw.to_string(),
        reason,
    };
    if raw.len() > MAX_PATH_BYTES {
        let cut = raw.char_indices().nth(200).map_or(raw.len(), |(i, _)| i);
        return Err(BundleError::UnsafePath {
            file: format!("{}…", &raw[..cut]),
            reason: "longer than 4096 bytes",
        });
    }
    if raw.contains('\0') {
        return Err(unsafe_path("contains a NUL byte"));
    }
    if raw.contains('\\') {
        return Err(unsafe_path("contains a backslash"));
    }
    let rest = raw.strip_prefix('/').unwrap_or(raw);
    if rest.starts_with('/') {
        return Err(unsafe_path("absolute path"));
    }
    let bytes = rest.as_bytes();
    if bytes.len() >= 2 && bytes[0].is_ascii_alphabetic() && bytes[1] == b':' {
        return Err(unsafe_path("absolute path (drive letter)"));
    }
    let mut parts = Vec::new();
    for part in rest.split('/') {
        match part {
            "" | "." => continue,
            ".." => return Err(unsafe_path("contains a `..` component")),
            p => parts.push(p),
        }
    }
    if parts.is_empty() {
        return Err(unsafe_path("empty path"));
    }
    if parts.len() > limits.max_path_depth {
        return Err(BundleError::PathTooDeep {
            file: raw.to_string(),
            depth: parts.len(),
            limit: limits.max_path_depth,
        });
    }
    Ok(parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(p: &str) -> Result<String, BundleError> {
        normalize(p, &Limits::default())
    }

    #[test]
    fn accepts_relative_and_opa_style_paths() {
        assert_eq!(n("a/b.rego").ok().as_deref(), Some("a/b.rego"));
        assert_eq!(n("/data.json").ok().as_deref(), Some("data.json"));
        assert_eq!(n("./x/./y.json").ok().as_deref(), Some("x/y.json"));
        assert_eq!(n("dir/").ok().as_deref(), Some("dir"));
    }

    #[test]
    fn refuses_escapes() {
        for bad in [
            "../x",
            "a/../../x",
            "//etc/passwd",
            "C:/x",
            "a\\b",
            "",
            "/",
            "a\0b",
        ] {
            assert!(
                matches!(n(bad), Err(BundleError::UnsafePath { .. })),
                "{bad:?} accepted"
            );
        }
    }

    #[test]
    fn refuses_deep_paths() {
        let deep = vec!["d"; 40].join("/");
        assert!(matches!(
            n(&deep),
            Err(BundleError::PathTooDeep {
                depth: 40,
                limit: 32,
                ..
            })
        ));
    }
}
