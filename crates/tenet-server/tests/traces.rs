//! Traces on the real binary, exported over OTLP/gRPC to a real receiver
//! on 127.0.0.1 (a tonic server implementing OpenTelemetry's
//! TraceService): a decision sent with a W3C `traceparent` yields a
//! `request` span that is the caller's child and a `decision` span below
//! it carrying the tenant, its labels and the outcome; loads show as
//! `fetch`, `compile` and `activation` spans with the tenant. An ext_authz
//! `Check` sent with the trace context in its metadata yields a span named
//! by its gRPC method, the caller's child, with its status code and the
//! decision below it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
use opentelemetry_proto::tonic::trace::v1::Span;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::{alice, client, write_config, Server, ALLOW};

#[derive(Clone, Default)]
struct Receiver {
    spans: Arc<Mutex<Vec<Span>>>,
}

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut spans = self.spans.lock().unwrap();
        for resource in request.into_inner().resource_spans {
            for scope in resource.scope_spans {
                spans.extend(scope.spans);
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

fn attribute(span: &Span, key: &str) -> Option<String> {
    span.attributes.iter().find(|a| a.key == key).and_then(|a| {
        match a.value.as_ref()?.value.as_ref()? {
            Any::StringValue(s) => Some(s.clone()),
            Any::IntValue(n) => Some(n.to_string()),
            Any::BoolValue(b) => Some(b.to_string()),
            other => Some(format!("{other:?}")),
        }
    })
}

const TRACE_ID: &str = "0af7651916cd43dd8448eb211c80319c";
const CALLER_SPAN: &str = "b7ad6b7169203331";

/// A real OTLP trace receiver on a loopback port: its spans and address.
async fn receiver() -> (Receiver, std::net::SocketAddr) {
    let receiver = Receiver::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    {
        let receiver = receiver.clone();
        tokio::spawn(async move {
            tonic::transport::Server::builder()
                .add_service(TraceServiceServer::new(receiver))
                .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener))
                .await
                .unwrap();
        });
    }
    (receiver, addr)
}

/// The first spans (waiting up to 20 s) for which `pick` finds something.
async fn spans_until<T>(receiver: &Receiver, pick: impl Fn(&[Span]) -> Option<T>) -> T {
    tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            if let Some(found) = pick(&receiver.spans.lock().unwrap()) {
                return found;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the spans did not arrive")
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_decision_joins_the_callers_trace_with_its_tenant() {
    let (receiver, addr) = receiver().await;
    let tmp = tempfile::tempdir().unwrap();
    let config = write_config(
        tmp.path(),
        &format!(
            "traces:\n  otlp_endpoint: http://{addr}\n  export_interval_ms: 100\nhost:\n  tenant_labels:\n    payments:\n      team: billing\n"
        ),
    );
    let server = Server::start(&["--config", &config]);
    let c = client(60);
    let resp = c
        .post(server.url(ALLOW))
        .header("traceparent", format!("00-{TRACE_ID}-{CALLER_SPAN}-01"))
        .json(&json!({ "input": alice() }))
        .send()
        .await
        .unwrap();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body, json!({"result": true}));

    let (decision, request, spans) = spans_until(&receiver, |spans| {
        let decision = spans.iter().find(|s| s.name == "decision")?;
        let request = spans.iter().find(|s| s.name.starts_with("POST "))?;
        Some((decision.clone(), request.clone(), spans.to_vec()))
    })
    .await;
    assert_eq!(
        hex(&request.trace_id),
        TRACE_ID,
        "the request joins the caller's trace"
    );
    assert_eq!(hex(&request.parent_span_id), CALLER_SPAN);
    assert_eq!(
        attribute(&request, "http.route").as_deref(),
        Some("/tenants/{tenant}/v1/data/{*path}")
    );
    assert_eq!(hex(&decision.trace_id), TRACE_ID);
    assert_eq!(
        decision.parent_span_id, request.span_id,
        "the decision is the request's child"
    );
    assert_eq!(attribute(&decision, "tenant").as_deref(), Some("payments"));
    assert_eq!(attribute(&decision, "outcome").as_deref(), Some("allow"));
    assert!(
        attribute(&decision, "labels").unwrap().contains("billing"),
        "{decision:?}"
    );
    for name in ["fetch", "compile", "activation"] {
        let span = spans
            .iter()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("no {name} span in {spans:?}"));
        assert_eq!(
            attribute(span, "tenant").as_deref(),
            Some("payments"),
            "{name}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grpc_check_joins_the_callers_trace_with_its_method_and_status() {
    use tenet_grpc::envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient;
    const CHECK: &str = "envoy.service.auth.v3.Authorization/Check";
    let (receiver, addr) = receiver().await;
    let tmp = tempfile::tempdir().unwrap();
    let config = support::grpc::config(
        tmp.path(),
        &format!(
            "traces:\n  otlp_endpoint: http://{addr}\n  export_interval_ms: 100\ngrpc:\n  listen: 127.0.0.1:0\n"
        ),
    );
    let (_server, lines) = Server::start_reading(&["--config", &config], 1);
    let grpc = support::grpc::address(&lines[0]);
    let mut client = AuthorizationClient::new(
        support::grpc::channel(format!("http://{grpc}"), None)
            .await
            .unwrap(),
    );
    let mut request = tonic::Request::new(support::grpc::check("acme", "/public"));
    request.metadata_mut().insert(
        "traceparent",
        format!("00-{TRACE_ID}-{CALLER_SPAN}-01").parse().unwrap(),
    );
    client.check(request).await.unwrap();
    // A call to a method tenet does not serve still gets its span, with
    // the status it was answered.
    assert_eq!(
        support::grpc::raw_call(&grpc, "/no.Such/Method").await,
        "12"
    );

    let (call, decision, unknown) = spans_until(&receiver, |spans| {
        let call = spans.iter().find(|s| s.name == CHECK)?;
        let decision = spans
            .iter()
            .find(|s| s.name == "decision" && s.parent_span_id == call.span_id)?;
        let unknown = spans.iter().find(|s| s.name == "no.Such/Method")?;
        Some((call.clone(), decision.clone(), unknown.clone()))
    })
    .await;
    assert_eq!(
        hex(&call.trace_id),
        TRACE_ID,
        "the call joins the caller's trace"
    );
    assert_eq!(hex(&call.parent_span_id), CALLER_SPAN);
    for (key, value) in [
        ("rpc.system", "grpc"),
        ("rpc.service", "envoy.service.auth.v3.Authorization"),
        ("rpc.method", "Check"),
        ("rpc.grpc.status_code", "0"),
    ] {
        assert_eq!(attribute(&call, key).as_deref(), Some(value), "{key}");
    }
    assert_eq!(attribute(&decision, "tenant").as_deref(), Some("acme"));
    assert_eq!(
        attribute(&unknown, "rpc.grpc.status_code").as_deref(),
        Some("12")
    );
}
