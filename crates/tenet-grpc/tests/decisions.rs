//! The native `tenet.v1.Decisions` service end to end over a loopback
//! socket, with the generated tonic client: decisions with JSON and
//! `Value` inputs, batches, the bidirectional stream, `Is`, AuthZEN and
//! PORC, the token rule, and bad input (unknown tenants, bad
//! JSON, a Struct past the depth limit, malformed protobuf, an oversize
//! message, an evaluation past its deadline), each with its status code and
//! the server still answering afterwards.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;
use tenet_grpc::documents::{json_document, json_to_value, value_document};
use tenet_grpc::pb::decisions_client::DecisionsClient;
use tenet_grpc::pb::{
    outcome, BatchDecideRequest, DecideRequest, Decision, IsRequest, JsonRequest, Outcome,
};
use tenet_grpc::{DecisionService, ExtAuthz, GrpcConfig, Services};
use tonic::transport::Channel;
use tonic::Code;

async fn start_with(
    config: GrpcConfig,
    decisions: impl FnOnce(DecisionService) -> DecisionService,
    host: tenet::Host,
) -> (support::Server, DecisionsClient<Channel>) {
    let services = Services {
        ext_authz: ExtAuthz::new(host.clone(), config.ext_authz.clone()),
        decisions: decisions(DecisionService::new(host, config.decisions.clone())),
    };
    let server = support::Server::start_with(config, services, None).await;
    let channel = Channel::from_shared(server.url())
        .unwrap()
        .timeout(Duration::from_secs(30))
        .connect()
        .await
        .unwrap();
    let client = DecisionsClient::new(channel).max_encoding_message_size(64 << 20);
    (server, client)
}

async fn start() -> (support::Server, DecisionsClient<Channel>) {
    start_with(GrpcConfig::default(), |d| d, support::host()).await
}

fn decide(tenant: &str, path: &str, input: Option<Value>) -> DecideRequest {
    DecideRequest {
        tenant: tenant.into(),
        path: path.into(),
        input: input.as_ref().map(json_document),
        id: String::new(),
    }
}

fn result(d: &Decision) -> Option<Value> {
    (!d.undefined).then(|| serde_json::from_slice(&d.result_json).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decide_takes_json_or_value_inputs_and_answers_both_forms() {
    let (server, mut client) = start().await;
    let alice = json!({"user": "alice", "items": [1, 2, 3]});
    for (input, path) in [
        (json_document(&alice), "data.native.allow"),
        (value_document(&alice), "native/allow"),
    ] {
        let d = client
            .decide(DecideRequest {
                tenant: "native".into(),
                path: path.into(),
                input: Some(input),
                id: String::new(),
            })
            .await
            .unwrap()
            .into_inner();
        assert!(!d.undefined);
        assert_eq!(d.result_json, b"true");
        assert_eq!(d.result, Some(json_to_value(&json!(true))));
        assert!(!d.decision_id.is_empty());
    }
    // Numbers keep their JSON form through a Value input and back.
    let echo = client
        .decide(DecideRequest {
            input: Some(value_document(&alice)),
            ..decide("native", "native/echo", None)
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(result(&echo), Some(alice.clone()));
    let bob = client
        .decide(decide(
            "native",
            "native/allow",
            Some(json!({"user": "bob"})),
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(result(&bob), Some(json!(false)));
    let undefined = client
        .decide(decide("native", "native/nothing", None))
        .await
        .unwrap()
        .into_inner();
    assert!(undefined.undefined && undefined.result.is_none() && undefined.result_json.is_empty());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_answer_each_item_in_order_with_its_own_error() {
    let (server, mut client) = start().await;
    let item = |id: &str, tenant: &str, path: &str, input: Value| DecideRequest {
        id: id.into(),
        ..decide(tenant, path, Some(input))
    };
    let response = client
        .batch_decide(BatchDecideRequest {
            tenant: "native".into(),
            path: "native/allow".into(),
            items: vec![
                item("a", "", "", json!({"user": "alice"})),
                item("b", "", "", json!({"user": "bob"})),
                item("c", "nosuch", "", json!({})),
                item("d", "", "native/size", json!({"items": [1, 2]})),
            ],
        })
        .await
        .unwrap()
        .into_inner();
    let got: Vec<(String, Result<Option<Value>, i32>)> = response
        .outcomes
        .iter()
        .map(|o| {
            let r = match o.outcome.as_ref().unwrap() {
                outcome::Outcome::Decision(d) => Ok(result(d)),
                outcome::Outcome::Error(e) => Err(e.code),
            };
            (o.id.clone(), r)
        })
        .collect();
    assert_eq!(
        got,
        vec![
            ("a".into(), Ok(Some(json!(true)))),
            ("b".into(), Ok(Some(json!(false)))),
            ("c".into(), Err(Code::NotFound as i32)),
            ("d".into(), Ok(Some(json!(2)))),
        ]
    );
    // Past grpc.decisions.max_batch: refused whole.
    let (server2, mut small) = start_with(
        GrpcConfig {
            decisions: tenet_grpc::DecisionsConfig {
                max_batch: 2,
                ..Default::default()
            },
            ..GrpcConfig::default()
        },
        |d| d,
        support::host(),
    )
    .await;
    let e = small
        .batch_decide(BatchDecideRequest {
            tenant: "native".into(),
            path: "native/allow".into(),
            items: vec![decide("", "", None); 3],
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    server.stop().await;
    server2.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_answers_every_message_by_its_id_and_survives_bad_ones() {
    let (server, mut client) = start().await;
    let (tx, rx) = tokio::sync::mpsc::channel::<DecideRequest>(16);
    let requests =
        futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|r| (r, rx)) });
    let sender = tokio::spawn(async move {
        for i in 0..200 {
            let user = if i % 2 == 0 { "alice" } else { "bob" };
            let tenant = if i == 77 { "nosuch" } else { "native" };
            let r = DecideRequest {
                id: i.to_string(),
                ..decide(tenant, "native/allow", Some(json!({ "user": user })))
            };
            tx.send(r).await.unwrap();
        }
    });
    let mut outcomes = client.decide_stream(requests).await.unwrap().into_inner();
    let mut seen = std::collections::BTreeMap::new();
    let by = tokio::time::Instant::now() + Duration::from_secs(30);
    while seen.len() < 200 {
        let next = tokio::time::timeout_at(by, outcomes.message())
            .await
            .unwrap();
        let Outcome { id, outcome } = next.unwrap().unwrap();
        seen.insert(id.parse::<u32>().unwrap(), outcome.unwrap());
    }
    sender.await.unwrap();
    for (i, o) in &seen {
        match o {
            outcome::Outcome::Error(e) => {
                assert_eq!(*i, 77);
                assert_eq!(e.code, Code::NotFound as i32);
            }
            outcome::Outcome::Decision(d) => {
                assert_eq!(result(d), Some(json!(i % 2 == 0)), "{i}");
            }
        }
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn is_answers_several_rules_of_one_package() {
    let (server, mut client) = start().await;
    let response = client
        .is(IsRequest {
            tenant: "native".into(),
            path: "data.native".into(),
            decisions: vec![
                "allow".into(),
                "visible".into(),
                "size".into(),
                "missing".into(),
            ],
            input: Some(value_document(&json!({"user": "alice", "items": [1]}))),
        })
        .await
        .unwrap()
        .into_inner();
    let got: Vec<(String, bool)> = response
        .decisions
        .iter()
        .map(|d| (d.decision.clone(), d.is))
        .collect();
    assert_eq!(
        got,
        vec![
            ("allow".into(), true),
            ("visible".into(), true),
            // 1 is not `true`; its detail says what it is.
            ("size".into(), false),
            ("missing".into(), false),
        ]
    );
    assert_eq!(
        result(response.decisions[2].detail.as_ref().unwrap()),
        Some(json!(1))
    );
    let e = client
        .is(IsRequest {
            tenant: "native".into(),
            path: "native".into(),
            decisions: vec!["a.b".into()],
            input: None,
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    server.stop().await;
}

fn json_request(tenant: &str, body: Value) -> JsonRequest {
    JsonRequest {
        tenant: tenant.into(),
        body: Some(value_document(&body)),
    }
}

fn answer(r: tonic::Response<tenet_grpc::pb::JsonResponse>) -> Value {
    let r = r.into_inner();
    let v: Value = serde_json::from_slice(&r.json).unwrap();
    assert_eq!(r.value, Some(json_to_value(&v)));
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authzen_and_porc_map_as_over_http() {
    let (server, mut client) = start().await;
    let alice = json!({
        "subject": {"type": "user", "id": "alice"},
        "action": {"name": "read"},
        "resource": {"type": "doc", "id": "1"},
    });
    let r = client
        .authzen_evaluation(json_request("native", alice.clone()))
        .await
        .unwrap();
    assert_eq!(answer(r), json!({"decision": true}));
    let batch = json!({
        "subject": {"type": "user", "id": "alice"},
        "resource": {"type": "doc", "id": "1"},
        "options": {"evaluations_semantic": "deny_on_first_deny"},
        "evaluations": [
            {"action": {"name": "read"}},
            {"subject": {"type": "user", "id": "bob"}, "action": {"name": "read"}},
            {"action": {"name": "read"}},
        ],
    });
    let r = client
        .authzen_evaluations(json_request("native", batch))
        .await
        .unwrap();
    assert_eq!(
        answer(r),
        json!({"evaluations": [
            {"decision": true},
            {"decision": false, "context": {"reason": "bob is blocked"}},
        ]})
    );
    let e = client
        .authzen_evaluation(json_request("native", json!({"subject": {}})))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().contains("subject.type is required"), "{e:?}");
    let e = client
        .authzen_evaluations(json_request("nosuch", json!({"evaluations": [alice]})))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);

    let porc = json!({
        "principal": {"sub": "alice", "mroles": ["mrn:iam:role:reader"]},
        "operation": "vault:read",
        "resource": "mrn:vault:acme:v1",
        "context": {},
    });
    let r = client.porc(json_request("native", porc)).await.unwrap();
    assert_eq!(answer(r), json!({"decision": true}));
    let e = client
        .porc(json_request(
            "native",
            json!({"principal": {}, "operation": "x"}),
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_rule_applies_to_every_call() {
    let authorize: tenet_grpc::Authorize = Arc::new(|headers| {
        headers.get("authorization").and_then(|v| v.to_str().ok()) == Some("Bearer tok")
    });
    let (server, mut client) = start_with(
        GrpcConfig::default(),
        move |d| d.with_authorize(authorize),
        support::host(),
    )
    .await;
    let r = || decide("native", "native/visible", None);
    let e = client.decide(r()).await.unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated);
    let e = client
        .porc(json_request("native", json!({})))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated);
    let mut ok = tonic::Request::new(r());
    ok.metadata_mut()
        .insert("authorization", "Bearer tok".parse().unwrap());
    assert_eq!(
        result(&client.decide(ok).await.unwrap().into_inner()),
        Some(json!(true))
    );
    server.stop().await;
}

/// A Struct `levels` deep: `{"x": {"x": … 1}}`.
fn nested(levels: usize) -> prost_types::Value {
    use prost_types::value::Kind;
    let mut v = prost_types::Value {
        kind: Some(Kind::NumberValue(1.0)),
    };
    for _ in 0..levels {
        v = prost_types::Value {
            kind: Some(Kind::StructValue(prost_types::Struct {
                fields: [("x".to_string(), v)].into(),
            })),
        };
    }
    v
}

/// Sends `bytes` as the body of a unary call to `method`.
async fn raw_call(channel: Channel, method: &'static str, bytes: Vec<u8>) -> tonic::Status {
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.unwrap();
    let path = tonic::codegen::http::uri::PathAndQuery::from_static(method);
    grpc.unary::<_, tenet_grpc::pb::Decision, _>(tonic::Request::new(bytes), path, RawCodec)
        .await
        .unwrap_err()
}

/// Encodes raw bytes, decodes a `Decision`.
#[derive(Default)]
struct RawCodec;

struct RawEncoder;

impl tonic::codec::Encoder for RawEncoder {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn encode(
        &mut self,
        item: Vec<u8>,
        dst: &mut tonic::codec::EncodeBuf<'_>,
    ) -> Result<(), tonic::Status> {
        prost::bytes::BufMut::put_slice(dst, &item);
        Ok(())
    }
}

impl tonic::codec::Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = tenet_grpc::pb::Decision;
    type Encoder = RawEncoder;
    type Decoder = <tenet_grpc::Codec<Decision, Decision> as tonic::codec::Codec>::Decoder;
    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }
    fn decoder(&mut self) -> Self::Decoder {
        tonic::codec::Codec::decoder(&mut tenet_grpc::Codec::<Decision, Decision>::default())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_clear_codes_and_the_server_keeps_answering() {
    let host = support::host_with(|c| {
        c.eval_limits.deadline = Duration::from_millis(200);
    });
    let config = GrpcConfig {
        max_message_bytes: 64 << 10,
        ..GrpcConfig::default()
    };
    let (server, mut client) = start_with(config, |d| d, host).await;
    let cases: Vec<(&str, DecideRequest, Code)> = vec![
        (
            "unknown tenant",
            decide("nosuch", "native/allow", None),
            Code::NotFound,
        ),
        (
            "missing tenant",
            decide("", "native/allow", None),
            Code::InvalidArgument,
        ),
        (
            "invalid tenant",
            decide("../x", "native/allow", None),
            Code::InvalidArgument,
        ),
        (
            "missing path",
            decide("native", "", None),
            Code::InvalidArgument,
        ),
        (
            "bad path",
            decide("native", "a b.c", None),
            Code::InvalidArgument,
        ),
        (
            "bad JSON",
            DecideRequest {
                input: Some(tenet_grpc::pb::Document {
                    kind: Some(tenet_grpc::pb::document::Kind::Json(b"{\"a\":".to_vec())),
                }),
                ..decide("native", "native/allow", None)
            },
            Code::InvalidArgument,
        ),
        (
            "JSON past the depth limit",
            DecideRequest {
                input: Some(tenet_grpc::pb::Document {
                    kind: Some(tenet_grpc::pb::document::Kind::Json(
                        format!("{}{}", "[".repeat(100), "]".repeat(100)).into_bytes(),
                    )),
                }),
                ..decide("native", "native/allow", None)
            },
            Code::InvalidArgument,
        ),
        (
            // Past prost's recursion limit: refused while decoding.
            "a Struct nested 80 deep",
            DecideRequest {
                input: Some(tenet_grpc::pb::Document {
                    kind: Some(tenet_grpc::pb::document::Kind::Value(nested(80))),
                }),
                ..decide("native", "native/allow", None)
            },
            Code::InvalidArgument,
        ),
        (
            // tonic's answer (grpc-go would say RESOURCE_EXHAUSTED).
            "an oversize message",
            decide(
                "native",
                "native/allow",
                Some(json!({"pad": "x".repeat(100 << 10)})),
            ),
            Code::OutOfRange,
        ),
        (
            "an evaluation past its deadline",
            decide("native", "native/busy", None),
            Code::DeadlineExceeded,
        ),
    ];
    for (name, request, code) in cases {
        let e = client.decide(request).await.unwrap_err();
        assert_eq!(e.code(), code, "{name}: {e:?}");
        // Nothing else is affected: the next call is answered.
        let ok = client
            .decide(decide("native", "native/visible", None))
            .await
            .unwrap_or_else(|e| panic!("after {name}: {e:?}"));
        assert_eq!(result(ok.get_ref()), Some(json!(true)));
    }
    // A Struct deeper than the input depth limit but within prost's
    // recursion limit: refused by tenet's own depth check.
    let (server2, mut shallow) = start_with(
        GrpcConfig::default(),
        |d| d,
        support::host_with(|c| c.eval_limits.max_input_depth = 8),
    )
    .await;
    let e = shallow
        .decide(DecideRequest {
            input: Some(tenet_grpc::pb::Document {
                kind: Some(tenet_grpc::pb::document::Kind::Value(nested(12))),
            }),
            ..decide("native", "native/allow", None)
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().contains("deeper than 8"), "{e:?}");
    // Malformed protobuf: a field tag with no value, and a truncated
    // length-delimited field.
    let channel = Channel::from_shared(server.url())
        .unwrap()
        .connect()
        .await
        .unwrap();
    for bytes in [vec![0x0a], vec![0x0a, 0x10, b'a'], vec![0xff, 0xff, 0xff]] {
        let e = raw_call(channel.clone(), "/tenet.v1.Decisions/Decide", bytes).await;
        assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    }
    let ok = client
        .decide(decide("native", "native/visible", None))
        .await
        .unwrap();
    assert_eq!(result(ok.get_ref()), Some(json!(true)));
    server.stop().await;
    server2.stop().await;
}

/// No decision-log rules.
struct NoRules;

impl tenet_telemetry::RuleEvaluator for NoRules {
    fn rules(&self, _tenant: &str) -> tenet_telemetry::LogRules {
        tenet_telemetry::LogRules {
            drop: false,
            mask: false,
        }
    }

    fn evaluate(&self, _: &str, _: &'static str, _: Value) -> tenet_telemetry::RuleFuture {
        Box::pin(async { Ok(None) })
    }
}

/// Every decision of the native service is handed to the decision-log
/// recorder, as ext_authz's and REST's are; failed calls are not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decisions_are_recorded_in_the_tenants_decision_log() {
    let logs = tenet_telemetry::DecisionLogs::new(Default::default());
    let recorder =
        tenet_telemetry::Recorder::start(logs.clone(), Default::default(), Arc::new(NoRules));
    let (server, mut client) = start_with(
        GrpcConfig::default(),
        move |d| d.with_decision_logs(recorder),
        support::host(),
    )
    .await;
    client
        .decide(decide(
            "native",
            "native/allow",
            Some(json!({"user": "alice"})),
        ))
        .await
        .unwrap();
    client
        .is(IsRequest {
            tenant: "native".into(),
            path: "native".into(),
            decisions: vec!["allow".into(), "visible".into()],
            input: None,
        })
        .await
        .unwrap();
    client
        .decide(decide("nosuch", "native/allow", None))
        .await
        .unwrap_err();
    let by = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let stats = logs.stats();
        let native = stats
            .iter()
            .find(|s| s.tenant == "native")
            .map(|s| s.buffered_events);
        if native == Some(3) {
            assert_eq!(stats.len(), 1, "{stats:?}");
            break;
        }
        assert!(std::time::Instant::now() < by, "{stats:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.stop().await;
}
