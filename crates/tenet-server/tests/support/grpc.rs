//! gRPC pieces of the end-to-end tests: a config serving the tenet-grpc
//! fixture bundles, an ext_authz `CheckRequest`, a tonic channel, and a raw
//! call for methods no generated client has.

use std::path::Path;
use std::time::Duration;
use tenet_grpc::envoy_types::pb::envoy::service::auth::v3::{
    attribute_context, AttributeContext, CheckRequest,
};
use tonic::transport::{Certificate, Channel, ClientTlsConfig};

/// A config in `dir` serving tenet-grpc's fixture bundles (`acme`,
/// `native`, …) per tenant, plus `extra` (YAML at the top level).
pub fn config(dir: &Path, extra: &str) -> String {
    let bundles = super::root().join("crates/tenet-grpc/tests/fixtures/bundles/{tenant}");
    super::write_config(
        dir,
        &format!("bundles:\n  template: {}\n{extra}", bundles.display()),
    )
}

/// A `GET path` Check for `tenant` (named by the `tenant` context
/// extension).
pub fn check(tenant: &str, path: &str) -> CheckRequest {
    let mut attributes = AttributeContext::default();
    attributes
        .context_extensions
        .insert("tenant".into(), tenant.into());
    attributes.request = Some(attribute_context::Request {
        time: None,
        http: Some(attribute_context::HttpRequest {
            method: "GET".into(),
            path: path.into(),
            ..Default::default()
        }),
    });
    CheckRequest {
        attributes: Some(attributes),
    }
}

/// A channel to `url`, over TLS trusting `ca` when given.
pub async fn channel(url: String, ca: Option<&str>) -> Result<Channel, tonic::transport::Error> {
    let mut endpoint = Channel::from_shared(url)
        .unwrap()
        .timeout(Duration::from_secs(30))
        .connect_timeout(Duration::from_secs(10));
    if let Some(ca) = ca {
        endpoint = endpoint.tls_config(
            ClientTlsConfig::new()
                .ca_certificate(Certificate::from_pem(ca))
                .domain_name("localhost"),
        )?;
    }
    endpoint.connect().await
}

/// A raw gRPC call with an empty message to `path` (`/package.Service/
/// Method`, any name) at `addr`, over HTTP/2 with prior knowledge: for
/// methods no generated client has. Returns its `grpc-status`.
pub async fn raw_call(addr: &str, path: &str) -> String {
    let h2 = reqwest::Client::builder()
        .http2_prior_knowledge()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let resp = h2
        .post(format!("http://{addr}{path}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(vec![0u8, 0, 0, 0, 0])
        .send()
        .await
        .unwrap();
    resp.headers()["grpc-status"].to_str().unwrap().to_string()
}

/// The gRPC address a server printed on its second stdout line.
pub fn address(line: &str) -> String {
    line.strip_prefix("tenet grpc listening on ")
        .unwrap_or_else(|| panic!("second line {line:?}"))
        .to_string()
}
