//! A `CheckRequest` as the JSON document opa-envoy-plugin puts in `input`
//! (its `protomap`, envoyauth/protomap.go): fields under their protobuf JSON
//! names (`contextExtensions`, `socketAddress`, `rawBody`, …), only the
//! fields that are set (proto3 scalars that are not zero, non-empty maps
//! and lists, present messages and oneof members even when zero),
//! `google.protobuf.Struct` as the plain object it holds, and every other
//! message field by field. Where that differs from protojson it follows
//! the plugin: 64-bit integers (`size`, timestamps' `seconds`) are numbers,
//! enums are their numbers, a `Timestamp` is `{seconds, nanos}` and an
//! `Any` is `{typeUrl, value}`; bytes (`rawBody`) are standard base64, as
//! OPA renders a Go byte slice.
//!
//! Rendering only: no parsing of paths or bodies (`input`), no limits.

use base64::Engine as _;
use envoy_types::pb::envoy::config::core::v3::{
    address, envoy_internal_address, socket_address, Address, HeaderMap, Metadata,
};
use envoy_types::pb::envoy::service::auth::v3::{attribute_context, AttributeContext};
use envoy_types::pb::google::protobuf::{value::Kind, Any, Struct, Timestamp, Value as PbValue};
use serde_json::{Map, Number, Value};
use std::collections::HashMap;

/// Why a request cannot be rendered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RenderError {
    /// A `Struct` in the metadata holds a number JSON cannot carry.
    #[error("metadata holds a non-finite number ({0})")]
    NonFinite(String),
    /// A `Struct` nests deeper than the input limit.
    #[error("metadata nests deeper than {0} levels")]
    TooDeep(usize),
}

/// Builds a JSON object from the fields that are set.
#[derive(Default)]
struct Fields(Map<String, Value>);

impl Fields {
    fn string(mut self, name: &str, v: &str) -> Self {
        if !v.is_empty() {
            self.0.insert(name.into(), Value::String(v.into()));
        }
        self
    }
    fn int(mut self, name: &str, v: i64) -> Self {
        if v != 0 {
            self.0.insert(name.into(), Value::from(v));
        }
        self
    }
    fn bool(mut self, name: &str, v: bool) -> Self {
        if v {
            self.0.insert(name.into(), Value::Bool(true));
        }
        self
    }
    fn bytes(mut self, name: &str, v: &[u8]) -> Self {
        if !v.is_empty() {
            let text = base64::engine::general_purpose::STANDARD.encode(v);
            self.0.insert(name.into(), Value::String(text));
        }
        self
    }
    fn strings(mut self, name: &str, v: &HashMap<String, String>) -> Self {
        if !v.is_empty() {
            self.0.insert(name.into(), string_map(v));
        }
        self
    }
    fn message(mut self, name: &str, v: Option<Value>) -> Self {
        if let Some(v) = v {
            self.0.insert(name.into(), v);
        }
        self
    }
    fn done(self) -> Value {
        Value::Object(self.0)
    }
}

/// A string map with its keys sorted (the document's key order does not
/// matter to a policy; sorting makes it reproducible).
fn string_map(v: &HashMap<String, String>) -> Value {
    let mut keys: Vec<&String> = v.keys().collect();
    keys.sort();
    Value::Object(
        keys.into_iter()
            .map(|k| {
                (
                    k.clone(),
                    Value::String(v.get(k).cloned().unwrap_or_default()),
                )
            })
            .collect(),
    )
}

/// `{"attributes": …}` when the request has attributes, else `{}`.
pub(crate) fn check_request(
    attributes: Option<&AttributeContext>,
    max_depth: usize,
) -> Result<Map<String, Value>, RenderError> {
    let mut out = Map::new();
    if let Some(a) = attributes {
        out.insert("attributes".into(), attribute_context(a, max_depth)?);
    }
    Ok(out)
}

fn attribute_context(a: &AttributeContext, max_depth: usize) -> Result<Value, RenderError> {
    let metadata = |m: &Option<Metadata>| -> Result<Option<Value>, RenderError> {
        m.as_ref().map(|m| metadata(m, max_depth)).transpose()
    };
    Ok(Fields::default()
        .message("source", a.source.as_ref().map(peer))
        .message("destination", a.destination.as_ref().map(peer))
        .message("request", a.request.as_ref().map(request))
        .strings("contextExtensions", &a.context_extensions)
        .message("metadataContext", metadata(&a.metadata_context)?)
        .message("routeMetadataContext", metadata(&a.route_metadata_context)?)
        .message(
            "tlsSession",
            a.tls_session
                .as_ref()
                .map(|t| Fields::default().string("sni", &t.sni).done()),
        )
        .done())
}

fn peer(p: &attribute_context::Peer) -> Value {
    Fields::default()
        .message("address", p.address.as_ref().map(address))
        .string("service", &p.service)
        .strings("labels", &p.labels)
        .string("principal", &p.principal)
        .string("certificate", &p.certificate)
        .done()
}

fn address(a: &Address) -> Value {
    let mut out = Fields::default();
    match &a.address {
        Some(address::Address::SocketAddress(s)) => {
            let port = match &s.port_specifier {
                Some(socket_address::PortSpecifier::PortValue(v)) => {
                    Some(("portValue", Value::from(*v)))
                }
                Some(socket_address::PortSpecifier::NamedPort(n)) => {
                    Some(("namedPort", Value::String(n.clone())))
                }
                None => None,
            };
            let mut socket = Fields::default()
                .int("protocol", i64::from(s.protocol))
                .string("address", &s.address);
            if let Some((name, value)) = port {
                socket.0.insert(name.into(), value);
            }
            let socket = socket
                .string("resolverName", &s.resolver_name)
                .bool("ipv4Compat", s.ipv4_compat)
                .string("networkNamespaceFilepath", &s.network_namespace_filepath);
            out = out.message("socketAddress", Some(socket.done()));
        }
        Some(address::Address::Pipe(p)) => {
            let pipe = Fields::default()
                .string("path", &p.path)
                .int("mode", i64::from(p.mode));
            out = out.message("pipe", Some(pipe.done()));
        }
        Some(address::Address::EnvoyInternalAddress(e)) => {
            let mut internal = Fields::default();
            if let Some(envoy_internal_address::AddressNameSpecifier::ServerListenerName(n)) =
                &e.address_name_specifier
            {
                internal
                    .0
                    .insert("serverListenerName".into(), Value::String(n.clone()));
            }
            let internal = internal.string("endpointId", &e.endpoint_id);
            out = out.message("envoyInternalAddress", Some(internal.done()));
        }
        None => {}
    }
    out.done()
}

fn request(r: &attribute_context::Request) -> Value {
    Fields::default()
        .message("time", r.time.as_ref().map(timestamp))
        .message("http", r.http.as_ref().map(http))
        .done()
}

fn timestamp(t: &Timestamp) -> Value {
    Fields::default()
        .int("seconds", t.seconds)
        .int("nanos", i64::from(t.nanos))
        .done()
}

fn http(h: &attribute_context::HttpRequest) -> Value {
    Fields::default()
        .string("id", &h.id)
        .string("method", &h.method)
        .strings("headers", &h.headers)
        .message("headerMap", h.header_map.as_ref().map(header_map))
        .string("path", &h.path)
        .string("host", &h.host)
        .string("scheme", &h.scheme)
        .string("query", &h.query)
        .string("fragment", &h.fragment)
        .int("size", h.size)
        .string("protocol", &h.protocol)
        .string("body", &h.body)
        .bytes("rawBody", &h.raw_body)
        .done()
}

fn header_map(m: &HeaderMap) -> Value {
    let mut out = Fields::default();
    if !m.headers.is_empty() {
        let headers = m
            .headers
            .iter()
            .map(|h| {
                Fields::default()
                    .string("key", &h.key)
                    .string("value", &h.value)
                    .bytes("rawValue", &h.raw_value)
                    .done()
            })
            .collect();
        out.0.insert("headers".into(), Value::Array(headers));
    }
    out.done()
}

fn metadata(m: &Metadata, max_depth: usize) -> Result<Value, RenderError> {
    let mut out = Fields::default();
    if !m.filter_metadata.is_empty() {
        let mut keys: Vec<&String> = m.filter_metadata.keys().collect();
        keys.sort();
        let mut filters = Map::new();
        for key in keys {
            if let Some(s) = m.filter_metadata.get(key) {
                filters.insert(key.clone(), structure(s, max_depth)?);
            }
        }
        out.0
            .insert("filterMetadata".into(), Value::Object(filters));
    }
    if !m.typed_filter_metadata.is_empty() {
        let mut keys: Vec<&String> = m.typed_filter_metadata.keys().collect();
        keys.sort();
        let typed = keys
            .into_iter()
            .filter_map(|k| m.typed_filter_metadata.get(k).map(|a| (k.clone(), any(a))))
            .collect();
        out.0
            .insert("typedFilterMetadata".into(), Value::Object(typed));
    }
    Ok(out.done())
}

fn any(a: &Any) -> Value {
    Fields::default()
        .string("typeUrl", &a.type_url)
        .bytes("value", &a.value)
        .done()
}

/// A `Struct` as the object it holds (Go's `AsMap`). Iterative depth
/// check first: a `Struct` nested past `max_depth` is refused before the
/// recursive conversion runs. (prost decodes at most 100 levels, so the
/// recursion below is bounded anyway.)
pub(crate) fn structure(s: &Struct, max_depth: usize) -> Result<Value, RenderError> {
    if struct_depth_exceeds(s, max_depth) {
        return Err(RenderError::TooDeep(max_depth));
    }
    struct_value(s)
}

fn struct_depth_exceeds(s: &Struct, max_depth: usize) -> bool {
    let mut stack: Vec<(&PbValue, usize)> = s.fields.values().map(|v| (v, 1)).collect();
    while let Some((v, depth)) = stack.pop() {
        if depth > max_depth {
            return true;
        }
        match &v.kind {
            Some(Kind::StructValue(s)) => stack.extend(s.fields.values().map(|v| (v, depth + 1))),
            Some(Kind::ListValue(l)) => stack.extend(l.values.iter().map(|v| (v, depth + 1))),
            _ => {}
        }
    }
    false
}

fn struct_value(s: &Struct) -> Result<Value, RenderError> {
    let mut keys: Vec<&String> = s.fields.keys().collect();
    keys.sort();
    let mut out = Map::new();
    for key in keys {
        if let Some(v) = s.fields.get(key) {
            out.insert(key.clone(), pb_value(v)?);
        }
    }
    Ok(Value::Object(out))
}

fn pb_value(v: &PbValue) -> Result<Value, RenderError> {
    Ok(match &v.kind {
        None | Some(Kind::NullValue(_)) => Value::Null,
        Some(Kind::NumberValue(n)) => number(*n)?,
        Some(Kind::StringValue(s)) => Value::String(s.clone()),
        Some(Kind::BoolValue(b)) => Value::Bool(*b),
        Some(Kind::StructValue(s)) => struct_value(s)?,
        Some(Kind::ListValue(l)) => Value::Array(
            l.values
                .iter()
                .map(pb_value)
                .collect::<Result<Vec<_>, _>>()?,
        ),
    })
}

/// A `Struct` number as OPA reads a Go float64: integral values as
/// integers (`1`, not `1.0`).
fn number(n: f64) -> Result<Value, RenderError> {
    if !n.is_finite() {
        return Err(RenderError::NonFinite(n.to_string()));
    }
    // 2^53: every integral f64 below it is an exact integer.
    const EXACT: f64 = 9_007_199_254_740_992.0;
    if n.fract() == 0.0 && n.abs() <= EXACT {
        #[allow(clippy::cast_possible_truncation)]
        return Ok(Value::from(n as i64));
    }
    Ok(Number::from_f64(n).map_or(Value::Null, Value::Number))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use envoy_types::pb::envoy::config::core::v3::{HeaderValue, Pipe, SocketAddress};
    use envoy_types::pb::google::protobuf::ListValue;
    use serde_json::json;

    fn nested(depth: usize) -> Struct {
        let mut s = Struct::default();
        for _ in 0..depth {
            let mut outer = Struct::default();
            outer.fields.insert(
                "a".into(),
                PbValue {
                    kind: Some(Kind::StructValue(s)),
                },
            );
            s = outer;
        }
        s
    }

    #[test]
    fn set_fields_only_under_their_json_names() {
        let a = AttributeContext {
            source: Some(attribute_context::Peer {
                address: Some(Address {
                    address: Some(address::Address::SocketAddress(SocketAddress {
                        address: "10.0.0.1".into(),
                        port_specifier: Some(socket_address::PortSpecifier::PortValue(0)),
                        protocol: 1,
                        ..Default::default()
                    })),
                }),
                ..Default::default()
            }),
            destination: Some(attribute_context::Peer {
                address: Some(Address {
                    address: Some(address::Address::Pipe(Pipe {
                        path: "/tmp/s".into(),
                        mode: 0,
                    })),
                }),
                ..Default::default()
            }),
            request: Some(attribute_context::Request {
                time: Some(Timestamp {
                    seconds: 1_700_000_000,
                    nanos: 0,
                }),
                http: Some(attribute_context::HttpRequest {
                    size: -1,
                    raw_body: vec![0xff, 0, 1],
                    header_map: Some(HeaderMap {
                        headers: vec![HeaderValue {
                            key: "k".into(),
                            raw_value: b"v".to_vec(),
                            ..Default::default()
                        }],
                    }),
                    ..Default::default()
                }),
            }),
            tls_session: Some(Default::default()),
            ..Default::default()
        };
        let got = check_request(Some(&a), 64).unwrap();
        assert_eq!(
            Value::Object(got),
            json!({"attributes": {
                "source": {"address": {"socketAddress": {"protocol": 1, "address": "10.0.0.1", "portValue": 0}}},
                "destination": {"address": {"pipe": {"path": "/tmp/s"}}},
                "request": {
                    "time": {"seconds": 1_700_000_000},
                    "http": {"size": -1, "rawBody": "/wAB", "headerMap": {"headers": [{"key": "k", "rawValue": "dg=="}]}},
                },
                "tlsSession": {},
            }})
        );
        assert_eq!(Value::Object(check_request(None, 64).unwrap()), json!({}));
    }

    #[test]
    fn structs_are_plain_objects_with_go_numbers_and_bounded_depth() {
        let mut s = Struct::default();
        for (k, kind) in [
            ("int", Kind::NumberValue(1.0)),
            ("float", Kind::NumberValue(1.5)),
            ("null", Kind::NullValue(0)),
            (
                "list",
                Kind::ListValue(ListValue {
                    values: vec![PbValue {
                        kind: Some(Kind::BoolValue(true)),
                    }],
                }),
            ),
        ] {
            s.fields.insert(k.into(), PbValue { kind: Some(kind) });
        }
        assert_eq!(
            structure(&s, 64).unwrap(),
            json!({"int": 1, "float": 1.5, "null": null, "list": [true]})
        );
        assert!(structure(&nested(10), 10).is_ok());
        assert_eq!(
            structure(&nested(11), 10).unwrap_err(),
            RenderError::TooDeep(10)
        );
        let mut inf = Struct::default();
        inf.fields.insert(
            "x".into(),
            PbValue {
                kind: Some(Kind::NumberValue(f64::INFINITY)),
            },
        );
        assert!(matches!(
            structure(&inf, 64),
            Err(RenderError::NonFinite(_))
        ));
    }
}
