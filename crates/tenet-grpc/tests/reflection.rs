//! Server reflection over a loopback socket, asked the way `grpcurl` asks:
//! the service list, the file defining a service, then each of its imports
//! by file name. Envoy's ext_authz service is described too, and its
//! descriptors must match the Rust types the server decodes (envoy-types):
//! a `CheckRequest` encoded by envoy-types is walked with the field numbers
//! the served descriptors give.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use prost::Message;
use prost_types::{DescriptorProto, FileDescriptorProto};
use std::collections::{BTreeMap, VecDeque};
use tonic::transport::Channel;
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
use tonic_reflection::pb::v1::ServerReflectionRequest;

/// One question, one answer.
async fn ask(
    client: &mut ServerReflectionClient<Channel>,
    request: MessageRequest,
) -> MessageResponse {
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(request),
    };
    let mut answers = client
        .server_reflection_info(futures_util::stream::iter(vec![request]))
        .await
        .unwrap()
        .into_inner();
    answers
        .message()
        .await
        .unwrap()
        .unwrap()
        .message_response
        .unwrap()
}

fn descriptors(answer: MessageResponse) -> Vec<FileDescriptorProto> {
    let MessageResponse::FileDescriptorResponse(files) = answer else {
        panic!("not a descriptor: {answer:?}")
    };
    assert!(!files.file_descriptor_proto.is_empty());
    files
        .file_descriptor_proto
        .iter()
        .map(|raw| FileDescriptorProto::decode(raw.as_slice()).unwrap())
        .collect()
}

/// The file defining `symbol` and, by file name, everything it imports:
/// every import must resolve, or grpcurl cannot build the message types.
async fn files_for(
    client: &mut ServerReflectionClient<Channel>,
    symbol: &str,
) -> BTreeMap<String, FileDescriptorProto> {
    let mut files = BTreeMap::new();
    let mut queue: VecDeque<FileDescriptorProto> =
        descriptors(ask(client, MessageRequest::FileContainingSymbol(symbol.into())).await).into();
    while let Some(file) = queue.pop_front() {
        for import in &file.dependency {
            if !files.contains_key(import) && !queue.iter().any(|f| f.name() == import) {
                let answer = ask(client, MessageRequest::FileByFilename(import.clone())).await;
                queue.extend(descriptors(answer));
            }
        }
        files.insert(file.name().to_string(), file);
    }
    files
}

/// The message named `full` (`.package.Outer.Inner`) in `files`.
fn message<'f>(
    files: &'f BTreeMap<String, FileDescriptorProto>,
    full: &str,
) -> &'f DescriptorProto {
    fn find<'d>(
        prefix: &str,
        types: &'d [DescriptorProto],
        full: &str,
    ) -> Option<&'d DescriptorProto> {
        types.iter().find_map(|t| {
            let name = format!("{prefix}.{}", t.name());
            if name == full {
                Some(t)
            } else if full.starts_with(&format!("{name}.")) {
                find(&name, &t.nested_type, full)
            } else {
                None
            }
        })
    }
    files
        .values()
        .find_map(|f| find(&format!(".{}", f.package()), &f.message_type, full))
        .unwrap_or_else(|| panic!("no message {full}"))
}

/// The number of `field` in the message `full`.
fn number(files: &BTreeMap<String, FileDescriptorProto>, full: &str, field: &str) -> u32 {
    let n = message(files, full)
        .field
        .iter()
        .find(|f| f.name() == field)
        .unwrap_or_else(|| panic!("no field {full}.{field}"))
        .number();
    u32::try_from(n).unwrap()
}

/// The length-delimited fields of an encoded message: (number, bytes).
fn delimited(mut bytes: &[u8]) -> Vec<(u32, &[u8])> {
    fn varint(bytes: &mut &[u8]) -> u64 {
        let (mut value, mut shift) = (0u64, 0);
        loop {
            let b = bytes[0];
            *bytes = &bytes[1..];
            value |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return value;
            }
            shift += 7;
        }
    }
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let key = varint(&mut bytes);
        let number = u32::try_from(key >> 3).unwrap();
        match key & 7 {
            0 => {
                varint(&mut bytes);
            }
            2 => {
                let len = usize::try_from(varint(&mut bytes)).unwrap();
                out.push((number, &bytes[..len]));
                bytes = &bytes[len..];
            }
            other => panic!("wire type {other} not expected here"),
        }
    }
    out
}

/// The one field numbered `n` of an encoded message.
fn field(bytes: &[u8], n: u32) -> &[u8] {
    let found: Vec<_> = delimited(bytes)
        .into_iter()
        .filter(|(k, _)| *k == n)
        .collect();
    assert_eq!(found.len(), 1, "field {n}: {found:?}");
    found[0].1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reflection_lists_the_services_and_serves_their_descriptors() {
    let config = tenet_grpc::GrpcConfig::default();
    let ext_authz = tenet_grpc::ExtAuthz::new(support::host(), config.ext_authz.clone());
    let server = support::Server::start(config, ext_authz).await;
    let channel = Channel::from_shared(server.url())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = ServerReflectionClient::new(channel);

    let MessageResponse::ListServicesResponse(list) =
        ask(&mut client, MessageRequest::ListServices(String::new())).await
    else {
        panic!("no service list")
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for want in [
        "envoy.service.auth.v3.Authorization",
        "tenet.v1.Decisions",
        "grpc.health.v1.Health",
    ] {
        assert!(names.iter().any(|n| n == want), "{want}: {names:?}");
    }

    // tenet's own service, with every import resolving.
    let files = files_for(&mut client, "tenet.v1.Decisions").await;
    assert!(
        files.contains_key("tenet/v1/decisions.proto"),
        "{:?}",
        files.keys()
    );

    // Envoy's: the service and its method's types, every import resolving.
    let files = files_for(&mut client, "envoy.service.auth.v3.Authorization").await;
    for want in [
        "envoy/service/auth/v3/external_auth.proto",
        "envoy/service/auth/v3/attribute_context.proto",
        "envoy/config/core/v3/base.proto",
        "google/rpc/status.proto",
        "validate/validate.proto",
    ] {
        assert!(files.contains_key(want), "{want}: {:?}", files.keys());
    }
    let service = files["envoy/service/auth/v3/external_auth.proto"]
        .service
        .iter()
        .find(|s| s.name() == "Authorization")
        .unwrap();
    let check = service.method.iter().find(|m| m.name() == "Check").unwrap();
    assert_eq!(check.input_type(), ".envoy.service.auth.v3.CheckRequest");
    assert_eq!(check.output_type(), ".envoy.service.auth.v3.CheckResponse");

    // The descriptors describe the messages the server decodes: walk a
    // request encoded by envoy-types with the served field numbers.
    use envoy_types::pb::envoy::service::auth::v3::attribute_context::{HttpRequest, Request};
    use envoy_types::pb::envoy::service::auth::v3::{AttributeContext, CheckRequest};
    let request = CheckRequest {
        attributes: Some(AttributeContext {
            request: Some(Request {
                http: Some(HttpRequest {
                    path: "/probe?x=1".into(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            context_extensions: [("tenant".to_string(), "acme".to_string())].into(),
            ..Default::default()
        }),
    };
    let bytes = request.encode_to_vec();
    let context = ".envoy.service.auth.v3.AttributeContext";
    let attributes = field(
        &bytes,
        number(&files, ".envoy.service.auth.v3.CheckRequest", "attributes"),
    );
    let http = field(
        field(attributes, number(&files, context, "request")),
        number(&files, &format!("{context}.Request"), "http"),
    );
    let path = field(
        http,
        number(&files, &format!("{context}.HttpRequest"), "path"),
    );
    assert_eq!(path, b"/probe?x=1");
    let entry = field(attributes, number(&files, context, "context_extensions"));
    assert_eq!(field(entry, 1), b"tenant", "a map entry: key 1, value 2");
    assert_eq!(field(entry, 2), b"acme");
    server.stop().await;
}
