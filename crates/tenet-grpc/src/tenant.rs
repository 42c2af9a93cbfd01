//! Which tenant a Check request is for: the configured sources in order
//! (a `context_extensions` key, a request header), the first that names one
//! winning, else the default tenant. Reads the request only; it does not
//! check that the tenant exists (the host does) nor decide anything.

use crate::config::{ExtAuthzConfig, TenantSource};
use envoy_types::pb::envoy::service::auth::v3::CheckRequest;

/// The tenant `request` names, or `None`. An empty value names none.
pub(crate) fn resolve<'a>(
    config: &'a ExtAuthzConfig,
    request: &'a CheckRequest,
) -> Option<&'a str> {
    let attributes = request.attributes.as_ref();
    let headers = attributes
        .and_then(|a| a.request.as_ref())
        .and_then(|r| r.http.as_ref())
        .map(|h| &h.headers);
    config
        .tenant_from
        .iter()
        .find_map(|source| {
            let value = match source {
                TenantSource::ContextExtension(key) => {
                    attributes.and_then(|a| a.context_extensions.get(key))
                }
                TenantSource::Header(name) => {
                    headers.and_then(|h| h.get(name.to_ascii_lowercase().as_str()))
                }
            };
            value.map(String::as_str).filter(|v| !v.is_empty())
        })
        .or(config.default_tenant.as_deref())
}

/// Where a request may name its tenant, for the message of a denial.
pub(crate) fn describe_sources(config: &ExtAuthzConfig) -> String {
    let sources: Vec<String> = config
        .tenant_from
        .iter()
        .map(|s| match s {
            TenantSource::ContextExtension(k) => format!("context extension {k:?}"),
            TenantSource::Header(h) => format!("header {h:?}"),
        })
        .collect();
    if sources.is_empty() {
        "no tenant source is configured".into()
    } else {
        sources.join(" or ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use envoy_types::pb::envoy::service::auth::v3::{attribute_context, AttributeContext};

    fn request(extension: Option<&str>, header: Option<&str>) -> CheckRequest {
        let mut a = AttributeContext::default();
        if let Some(t) = extension {
            a.context_extensions.insert("tenant".into(), t.into());
        }
        let mut http = attribute_context::HttpRequest::default();
        if let Some(t) = header {
            http.headers.insert("x-tenant-id".into(), t.into());
        }
        a.request = Some(attribute_context::Request {
            time: None,
            http: Some(http),
        });
        CheckRequest {
            attributes: Some(a),
        }
    }

    #[test]
    fn first_source_that_names_a_tenant_wins_then_the_default() {
        let both = ExtAuthzConfig {
            tenant_from: vec![
                TenantSource::ContextExtension("tenant".into()),
                TenantSource::Header("X-Tenant-ID".into()),
            ],
            ..Default::default()
        };
        let with_default = ExtAuthzConfig {
            default_tenant: Some("fallback".into()),
            ..both.clone()
        };
        for (config, extension, header, expected) in [
            (&both, Some("ext"), Some("hdr"), Some("ext")),
            (&both, None, Some("hdr"), Some("hdr")),
            (&both, Some(""), Some("hdr"), Some("hdr")),
            (&both, None, None, None),
            (&with_default, None, None, Some("fallback")),
            (&with_default, Some("ext"), None, Some("ext")),
        ] {
            let r = request(extension, header);
            assert_eq!(resolve(config, &r), expected, "{extension:?} {header:?}");
        }
        assert_eq!(resolve(&both, &CheckRequest::default()), None);
        assert_eq!(
            describe_sources(&both),
            "context extension \"tenant\" or header \"X-Tenant-ID\""
        );
    }
}
