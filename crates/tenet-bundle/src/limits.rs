//! Size and shape limits applied while a bundle is read. A bundle comes from a
//! tenant, so every dimension that costs memory or time is bounded. This module
//! holds numbers only; the checks live where the bytes are read.

use serde::{Deserialize, Serialize};

/// Limits a bundle must stay within; every field is configurable.
///
/// The defaults fit large real-world bundles (policies plus tens of MiB of
/// data) while refusing archives built to exhaust memory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Largest `.tar.gz` accepted, in bytes. Default 64 MiB.
    pub max_compressed_bytes: u64,
    /// Largest total of all file contents after decompression. Default 256 MiB.
    pub max_expanded_bytes: u64,
    /// Largest single file. Default 64 MiB.
    pub max_file_bytes: u64,
    /// Most files in one bundle (directories not counted). Default 10,000.
    pub max_files: usize,
    /// Most path components of one file (`a/b/c.rego` is 3). Default 32.
    pub max_path_depth: usize,
    /// Deepest nesting of arrays and objects in a data file. Default 128.
    pub max_json_depth: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_compressed_bytes: 64 << 20,
            max_expanded_bytes: 256 << 20,
            max_file_bytes: 64 << 20,
            max_files: 10_000,
            max_path_depth: 32,
            max_json_depth: 128,
        }
    }
}
