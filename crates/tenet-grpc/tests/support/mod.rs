//! Test helpers: a `CheckRequest` from its protojson form (the subset the
//! fixtures use, field names in camelCase or snake_case, as protojson
//! accepts both), a `CheckResponse` as JSON for comparison, a host over
//! the fixture bundles, and an in-process gRPC server on an ephemeral
//! loopback port that stops when its handle drops.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, dead_code)]

use base64::Engine as _;
use serde_json::{json, Map, Value};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tenet_grpc::envoy_types::pb::envoy::config::core::v3::{
    address, socket_address, Address, Metadata, SocketAddress,
};
use tenet_grpc::envoy_types::pb::envoy::service::auth::v3::{
    attribute_context, check_response::HttpResponse, AttributeContext, CheckRequest, CheckResponse,
};
use tenet_grpc::envoy_types::pb::google::protobuf::{
    value::Kind, ListValue, Struct, Value as PbValue,
};

/// The fixture directory.
pub fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// Reads a JSON fixture.
pub fn fixture(name: &str) -> Value {
    let text = std::fs::read_to_string(fixtures().join(name)).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn field<'a>(v: &'a Value, camel: &str, snake: &str) -> Option<&'a Value> {
    v.get(camel).or_else(|| v.get(snake))
}

fn text(v: &Value, camel: &str, snake: &str) -> String {
    field(v, camel, snake)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

fn strings(v: Option<&Value>) -> std::collections::HashMap<String, String> {
    v.and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
                .collect()
        })
        .unwrap_or_default()
}

fn pb_value(v: &Value) -> PbValue {
    let kind = match v {
        Value::Null => Kind::NullValue(0),
        Value::Bool(b) => Kind::BoolValue(*b),
        Value::Number(n) => Kind::NumberValue(n.as_f64().unwrap()),
        Value::String(s) => Kind::StringValue(s.clone()),
        Value::Array(a) => Kind::ListValue(ListValue {
            values: a.iter().map(pb_value).collect(),
        }),
        Value::Object(m) => Kind::StructValue(pb_struct(m)),
    };
    PbValue { kind: Some(kind) }
}

fn pb_struct(m: &Map<String, Value>) -> Struct {
    Struct {
        fields: m.iter().map(|(k, v)| (k.clone(), pb_value(v))).collect(),
    }
}

fn peer(v: &Value) -> attribute_context::Peer {
    let address = field(v, "address", "address").map(|a| {
        let s = field(a, "socketAddress", "socket_address").unwrap();
        let port = field(s, "portValue", "port_value")
            .map(|p| socket_address::PortSpecifier::PortValue(p.as_u64().unwrap() as u32));
        Address {
            address: Some(address::Address::SocketAddress(SocketAddress {
                address: text(s, "address", "address"),
                port_specifier: port,
                ..Default::default()
            })),
        }
    });
    attribute_context::Peer {
        address,
        service: text(v, "service", "service"),
        labels: strings(v.get("labels")),
        principal: text(v, "principal", "principal"),
        certificate: text(v, "certificate", "certificate"),
    }
}

/// A `CheckRequest` from protojson.
pub fn check_request(v: &Value) -> CheckRequest {
    let Some(a) = v.get("attributes") else {
        return CheckRequest::default();
    };
    let http =
        a.get("request")
            .and_then(|r| r.get("http"))
            .map(|h| attribute_context::HttpRequest {
                id: text(h, "id", "id"),
                method: text(h, "method", "method"),
                headers: strings(h.get("headers")),
                path: text(h, "path", "path"),
                host: text(h, "host", "host"),
                scheme: text(h, "scheme", "scheme"),
                query: text(h, "query", "query"),
                fragment: text(h, "fragment", "fragment"),
                size: field(h, "size", "size")
                    .map(|s| {
                        s.as_str()
                            .map_or_else(|| s.as_i64().unwrap(), |s| s.parse().unwrap())
                    })
                    .unwrap_or_default(),
                protocol: text(h, "protocol", "protocol"),
                body: text(h, "body", "body"),
                raw_body: field(h, "rawBody", "raw_body")
                    .map(|b| {
                        base64::engine::general_purpose::STANDARD
                            .decode(b.as_str().unwrap())
                            .unwrap()
                    })
                    .unwrap_or_default(),
                header_map: None,
            });
    let metadata = field(a, "metadataContext", "metadata_context").map(|m| Metadata {
        filter_metadata: field(m, "filterMetadata", "filter_metadata")
            .and_then(Value::as_object)
            .map(|f| {
                f.iter()
                    .map(|(k, v)| (k.clone(), pb_struct(v.as_object().unwrap())))
                    .collect()
            })
            .unwrap_or_default(),
        typed_filter_metadata: Default::default(),
    });
    CheckRequest {
        attributes: Some(AttributeContext {
            source: a.get("source").map(peer),
            destination: a.get("destination").map(peer),
            request: a
                .get("request")
                .map(|_| attribute_context::Request { time: None, http }),
            context_extensions: strings(field(a, "contextExtensions", "context_extensions")),
            metadata_context: metadata,
            route_metadata_context: None,
            tls_session: None,
        }),
    }
}

fn struct_json(s: &Struct) -> Value {
    Value::Object(
        s.fields
            .iter()
            .map(|(k, v)| (k.clone(), value_json(v)))
            .collect(),
    )
}

fn value_json(v: &PbValue) -> Value {
    match &v.kind {
        None | Some(Kind::NullValue(_)) => Value::Null,
        Some(Kind::NumberValue(n)) => json!(n),
        Some(Kind::StringValue(s)) => json!(s),
        Some(Kind::BoolValue(b)) => json!(b),
        Some(Kind::StructValue(s)) => struct_json(s),
        Some(Kind::ListValue(l)) => Value::Array(l.values.iter().map(value_json).collect()),
    }
}

fn headers_json(
    h: &[tenet_grpc::envoy_types::pb::envoy::config::core::v3::HeaderValueOption],
) -> Value {
    Value::Array(
        h.iter()
            .map(|o| {
                let hv = o.header.as_ref().unwrap();
                json!({"key": hv.key, "value": hv.value})
            })
            .collect(),
    )
}

/// A `CheckResponse` as protojson-like JSON, empty fields left out; the
/// decision id is taken out of the dynamic metadata and returned apart.
pub fn response_json(r: &CheckResponse) -> (Value, Option<String>) {
    let mut out = Map::new();
    let status = r.status.as_ref().unwrap();
    let mut s = json!({"code": status.code});
    if !status.message.is_empty() {
        s["message"] = json!(status.message);
    }
    out.insert("status".into(), s);
    let mut decision_id = None;
    if let Some(m) = &r.dynamic_metadata {
        let mut m = m.clone();
        decision_id = m.fields.remove("decision_id").map(|v| match v.kind {
            Some(Kind::StringValue(s)) => s,
            other => panic!("decision_id is {other:?}"),
        });
        if !m.fields.is_empty() {
            out.insert("dynamicMetadata".into(), struct_json(&m));
        }
    }
    match &r.http_response {
        None => {}
        Some(HttpResponse::OkResponse(ok)) => {
            let mut o = Map::new();
            for (name, list) in [
                ("headers", &ok.headers),
                ("responseHeadersToAdd", &ok.response_headers_to_add),
            ] {
                if !list.is_empty() {
                    o.insert(name.into(), headers_json(list));
                }
            }
            for (name, list) in [
                ("headersToRemove", &ok.headers_to_remove),
                ("queryParametersToRemove", &ok.query_parameters_to_remove),
            ] {
                if !list.is_empty() {
                    o.insert(name.into(), json!(list));
                }
            }
            if !ok.query_parameters_to_set.is_empty() {
                let set: Vec<Value> = ok
                    .query_parameters_to_set
                    .iter()
                    .map(|q| json!({"key": q.key, "value": q.value}))
                    .collect();
                o.insert("queryParametersToSet".into(), Value::Array(set));
            }
            out.insert("okResponse".into(), Value::Object(o));
        }
        Some(HttpResponse::DeniedResponse(d)) => {
            let mut o = Map::new();
            if let Some(s) = &d.status {
                o.insert("status".into(), json!({"code": s.code}));
            }
            if !d.headers.is_empty() {
                o.insert("headers".into(), headers_json(&d.headers));
            }
            if !d.body.is_empty() {
                o.insert("body".into(), json!(d.body));
            }
            out.insert("deniedResponse".into(), Value::Object(o));
        }
        Some(other) => panic!("unexpected HTTP response {other:?}"),
    }
    (Value::Object(out), decision_id)
}

/// A host serving `tests/fixtures/bundles/{tenant}`.
pub fn host() -> tenet::Host {
    host_with(|_| {})
}

/// [`host`] with its config changed by `change`.
pub fn host_with(change: impl FnOnce(&mut tenet::HostConfig)) -> tenet::Host {
    let template = format!("{}/bundles/{{tenant}}", fixtures().display());
    let sources = tenet::SourceTemplate::new(template, tenet::Limits::default()).unwrap();
    let mut config = tenet::HostConfig {
        on_demand: true,
        startup_timeout: Duration::from_secs(20),
        eval_threads: 2,
        ..tenet::HostConfig::default()
    };
    change(&mut config);
    tenet::Host::new(config, Arc::new(sources))
}

/// An in-process gRPC server on 127.0.0.1; stops (and drains for at most
/// a second) when dropped.
pub struct Server {
    pub addr: std::net::SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    /// ext_authz as given, the native service on a host of its own.
    pub async fn start(config: tenet_grpc::GrpcConfig, service: tenet_grpc::ExtAuthz) -> Self {
        let decisions = tenet_grpc::DecisionService::new(host(), config.decisions.clone());
        let services = tenet_grpc::Services {
            ext_authz: service,
            decisions,
        };
        Self::start_with(config, services, None).await
    }

    /// `services`, with TLS when `tls` is given.
    pub async fn start_with(
        config: tenet_grpc::GrpcConfig,
        services: tenet_grpc::Services,
        tls: Option<tenet_grpc::Identity>,
    ) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let grpc = tenet_grpc::Grpc::new(&config, services).await.unwrap();
        let task = tokio::spawn(async move {
            let shutdown = async move {
                let _ = stopped.await;
            };
            tenet_grpc::serve(
                listener,
                &config,
                grpc,
                tls,
                shutdown,
                Duration::from_secs(1),
            )
            .await
            .unwrap();
        });
        Self {
            addr,
            stop: Some(stop),
            task,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops the server and waits (bounded) for it to finish.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let task = std::mem::replace(&mut self.task, tokio::spawn(async {}));
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("the server stops within 5 s")
            .unwrap();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.task.abort();
    }
}
