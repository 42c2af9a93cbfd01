//! Where `tenet serve` gets each tenant's bundle: a `tenet_source::Template`
//! (directory, archive, `http(s)://` or `s3://`) and, when signing is
//! configured, one signature verifier for every tenant. Glue between the
//! config and the host; it fetches nothing itself.

use std::sync::Arc;
use tenet::{BundleSource, SourceFactory, Verifier};

/// The bundle sources of every tenant.
pub struct Sources {
    template: tenet_source::Template,
    verifier: Option<Arc<Verifier>>,
}

impl Sources {
    /// Sources from `template` (with `{tenant}`), fetched with `options`
    /// and checked by `verifier`.
    pub fn new(
        template: &str,
        options: tenet_source::SourceOptions,
        verifier: Option<Verifier>,
    ) -> Result<Self, tenet_source::SourceError> {
        Ok(Self {
            template: tenet_source::Template::new(template, options)?,
            verifier: verifier.map(Arc::new),
        })
    }

    /// `directory`, `archive`, `http` or `s3`.
    pub fn kind(&self) -> &'static str {
        self.template.kind()
    }
}

impl std::fmt::Debug for Sources {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sources")
            .field("template", &self.template.template())
            .field("signed", &self.verifier.is_some())
            .finish()
    }
}

impl SourceFactory for Sources {
    fn source(&self, tenant: &str) -> Arc<dyn BundleSource> {
        self.template.source(tenant)
    }

    fn verifier(&self, _tenant: &str) -> Option<Arc<Verifier>> {
        self.verifier.clone()
    }
}
