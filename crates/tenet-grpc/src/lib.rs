//! tenet's gRPC front end: Envoy's external authorization API
//! (`envoy.service.auth.v3.Authorization/Check`) for many tenants, with the
//! input document and the result mapping of opa-envoy-plugin; tenet's
//! native `tenet.v1.Decisions` service (decide, batch, stream, Topaz-style
//! `Is`, AuthZEN and PORC); gRPC health checking (`grpc.health.v1`) and
//! server reflection.
//!
//! - `config`: the `grpc:` settings and their defaults.
//! - `tenant`: which tenant a Check request is for.
//! - `attributes`, `urlencoded`, `input`: the Check request as the
//!   policy's input.
//! - `response`: a decision as a `CheckResponse`.
//! - `service`: the Check handler (token, tenant, input, decision, errors).
//! - `decisions`, `documents`, `codec`: the native service, its JSON and
//!   `Value` documents, and its decoding errors.
//! - `authzen`, `porc`: the AuthZEN and PORC request mappings, shared
//!   with tenet-server's HTTP endpoints.
//! - `front`, `status`: the token rule and decision logs every service
//!   shares; the one mapping from host errors to gRPC status codes.
//! - `server`: the routes, the listener, TLS, health, shutdown and drain.
//!
//! Like tenet-server, this crate parses and maps; decisions are the
//! [`tenet::Host`]'s. It does not read files or the environment.

mod attributes;
pub mod authzen;
mod codec;
pub mod config;
mod decisions;
pub mod documents;
mod front;
pub mod input;
pub mod porc;
pub mod response;
mod server;
mod service;
pub mod status;
mod tenant;
mod urlencoded;

/// The `tenet.v1` messages, client and server (generated from
/// `proto/tenet/v1/decisions.proto`), and its descriptor set.
#[allow(
    missing_docs,
    clippy::all,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]
pub mod pb {
    tonic::include_proto!("tenet.v1");

    /// The encoded `FileDescriptorSet` of `tenet.v1` (for reflection).
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        include_bytes!(concat!(env!("OUT_DIR"), "/tenet_v1_descriptor.bin"));

    /// The encoded `FileDescriptorSet` of Envoy's
    /// `envoy.service.auth.v3.Authorization` and its imports (for
    /// reflection; the types themselves come from `envoy-types`).
    pub const ENVOY_AUTHZ_DESCRIPTOR_SET: &[u8] =
        include_bytes!(concat!(env!("OUT_DIR"), "/envoy_authz_descriptor.bin"));
}

pub use attributes::RenderError;
pub use codec::Codec;
pub use config::{DecisionsConfig, ExtAuthzConfig, GrpcConfig, TenantSource, TlsFiles};
pub use decisions::DecisionService;
pub use envoy_types;
pub use front::Authorize;
pub use server::{check_tls, serve, Grpc, ServeError, Services};
pub use service::ExtAuthz;
pub use tonic::service::Routes as GrpcRoutes;
pub use tonic::transport::Identity;
pub use urlencoded::UrlError;
