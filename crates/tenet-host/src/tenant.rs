//! Tenant ids and where their bundles come from. A tenant id ends up in a
//! path or URL, so it is validated here once; a [`SourceTemplate`] turns an
//! id into the tenant's [`BundleSource`]. Nothing here fetches.

use crate::HostError;
use std::sync::Arc;
use tenet_bundle::{BundleSource, DirectorySource, FileSource, Limits};

/// Longest tenant id accepted.
pub const MAX_TENANT_LEN: usize = 128;

/// Checks that `tenant` can safely name a bundle: 1–128 characters of
/// `[A-Za-z0-9._-]`, not `.` or `..`.
pub fn validate_tenant(tenant: &str) -> Result<(), HostError> {
    let invalid = |reason| HostError::InvalidTenant {
        tenant: tenant.chars().take(MAX_TENANT_LEN).collect(),
        reason,
    };
    if tenant.is_empty() {
        return Err(invalid("empty"));
    }
    if tenant.len() > MAX_TENANT_LEN {
        return Err(invalid("longer than 128 characters"));
    }
    if tenant == "." || tenant == ".." {
        return Err(invalid("`.` and `..` are not tenant ids"));
    }
    if !tenant
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return Err(invalid(
            "only letters, digits, `.`, `_` and `-` are allowed",
        ));
    }
    Ok(())
}

/// Gives each tenant its bundle source.
pub trait SourceFactory: Send + Sync + std::fmt::Debug {
    /// The source of `tenant`'s bundle (the id is already validated).
    fn source(&self, tenant: &str) -> Arc<dyn BundleSource>;

    /// The signature verifier for `tenant`'s bundles; `None` (the default)
    /// accepts unsigned bundles.
    fn verifier(&self, _tenant: &str) -> Option<Arc<tenet_bundle::Verifier>> {
        None
    }
}

/// A path template with `{tenant}`: `examples/bundles/{tenant}` (a bundle
/// directory) or `bundles/{tenant}.tar.gz` (an archive; `.tar.gz` or `.tgz`).
#[derive(Debug, Clone)]
pub struct SourceTemplate {
    template: String,
    limits: Limits,
}

impl SourceTemplate {
    /// A template; it must contain `{tenant}`.
    pub fn new(template: impl Into<String>, limits: Limits) -> Result<Self, String> {
        let template = template.into();
        if !template.contains("{tenant}") {
            return Err(format!("bundle template {template:?} has no {{tenant}}"));
        }
        Ok(Self { template, limits })
    }
}

impl SourceFactory for SourceTemplate {
    fn source(&self, tenant: &str) -> Arc<dyn BundleSource> {
        let template = self
            .template
            .strip_prefix("file://")
            .unwrap_or(&self.template);
        let path = template.replace("{tenant}", tenant);
        // The template decides the kind, not the tenant id (`x.tar.gz` as a
        // tenant of `dir/{tenant}` is still a directory).
        if template.ends_with(".tar.gz") || template.ends_with(".tgz") {
            Arc::new(FileSource::new(path, self.limits.clone()))
        } else {
            Arc::new(DirectorySource::new(path, self.limits.clone()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_ids_are_path_safe() {
        for ok in ["payments", "a", "team-1.prod", "A_b"] {
            assert!(validate_tenant(ok).is_ok(), "{ok}");
        }
        for bad in ["", ".", "..", "a/b", "../x", "a b", "é", &"x".repeat(129)] {
            assert!(validate_tenant(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn templates_pick_the_source_kind() {
        let t = SourceTemplate::new("b/{tenant}.tar.gz", Limits::default()).ok();
        assert_eq!(
            t.map(|t| t.source("x").location()).as_deref(),
            Some("b/x.tar.gz")
        );
        assert!(SourceTemplate::new("b/x", Limits::default()).is_err());
        let dirs = SourceTemplate::new("b/{tenant}", Limits::default()).ok();
        assert_eq!(
            dirs.map(|t| format!("{:?}", t.source("x.tar.gz")))
                .map(|d| d.starts_with("DirectorySource")),
            Some(true)
        );
    }
}
