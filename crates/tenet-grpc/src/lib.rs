//! tenet's gRPC front end. Today: Envoy's external authorization API
//! (`envoy.service.auth.v3.Authorization/Check`) for many tenants, with the
//! input document and the result mapping of opa-envoy-plugin, and gRPC
//! health checking (`grpc.health.v1`).
//!
//! - `config`: the `grpc:` settings and their defaults.
//! - `tenant`: which tenant a request is for.
//! - `attributes`, `urlencoded`, `input`: the request as the policy's input.
//! - `response`: a decision as a `CheckResponse`.
//! - `service`: the Check handler (token, tenant, input, decision, errors).
//! - `server`: the listener, health, shutdown and drain.
//!
//! Like tenet-server, this crate parses and maps; decisions are the
//! [`tenet::Host`]'s. It does not read files or the environment.

mod attributes;
pub mod config;
pub mod input;
pub mod response;
mod server;
mod service;
mod tenant;
mod urlencoded;

pub use attributes::RenderError;
pub use config::{ExtAuthzConfig, GrpcConfig, TenantSource};
pub use envoy_types;
pub use server::{serve, ServeError};
pub use service::{Authorize, ExtAuthz};
pub use urlencoded::UrlError;
