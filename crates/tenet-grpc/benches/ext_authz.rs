//! Load harness for Envoy ext_authz `Check` (results in BENCHMARKS.md).
//!
//! Starts tenet-grpc's routes (ext_authz, `tenet.v1.Decisions`, health) on
//! a tonic server on a loopback port, plus a no-op `Check` on the same
//! server (the ceiling: same listener, HTTP/2, decoding of the same
//! `CheckRequest`, a fixed OK answer, no tenant lookup, input rendering or
//! policy evaluation), served under its own service name. A tonic client
//! then drives each target at concurrency 1, 4, 16 and 64 for a fixed time
//! and reports calls per second, p50 and p99. Targets: one tenant, 1,000
//! tenants (round-robin through `context_extensions`, all on the fixture
//! acme bundle, so the compiled policy is shared), and the no-op. Client
//! and server share the machine's two cores, so compare ratios within one
//! run.
//!
//! Run: `cargo bench -p tenet-grpc --bench ext_authz` (`-- --secs N` per
//! level; `TENET_BENCH_INLINE=1` evaluates on the async workers instead of
//! the evaluation pool; `TENET_BENCH_POOL=1` turns inline turns off, so
//! every evaluation is handed to the pool).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tenet::{BundleSource, DirectorySource, Host, HostConfig, Limits, SourceFactory};
use tenet_grpc::envoy_types::pb::envoy::service::auth::v3::authorization_server::{
    Authorization, AuthorizationServer,
};
use tenet_grpc::envoy_types::pb::envoy::service::auth::v3::{
    attribute_context, AttributeContext, CheckRequest, CheckResponse,
};
use tenet_grpc::envoy_types::pb::google::rpc;
use tenet_grpc::{DecisionService, ExtAuthz, ExtAuthzConfig, Grpc, GrpcConfig, Services};
use tonic::codegen::http;
use tonic::transport::Channel;

#[derive(Debug)]
struct OneBundle(PathBuf);

impl SourceFactory for OneBundle {
    fn source(&self, _tenant: &str) -> Arc<dyn BundleSource> {
        Arc::new(DirectorySource::new(self.0.clone(), Limits::default()))
    }
}

/// `Check` that answers OK at once.
struct NoOp;

#[tonic::async_trait]
impl Authorization for NoOp {
    async fn check(
        &self,
        _request: tonic::Request<CheckRequest>,
    ) -> Result<tonic::Response<CheckResponse>, tonic::Status> {
        Ok(tonic::Response::new(CheckResponse {
            status: Some(rpc::Status::default()),
            ..Default::default()
        }))
    }
}

const NOOP_PATH: &str = "/bench.NoOp/Check";

/// The no-op `Authorization` server under the name `bench.NoOp`: the path
/// is rewritten to Envoy's before the generated server routes it.
#[derive(Clone)]
struct Renamed(AuthorizationServer<NoOp>);

impl tonic::server::NamedService for Renamed {
    const NAME: &'static str = "bench.NoOp";
}

impl<B: Send + 'static> tower::Service<http::Request<B>> for Renamed
where
    AuthorizationServer<NoOp>: tower::Service<
        http::Request<B>,
        Response = http::Response<tonic::body::Body>,
        Error = Infallible,
    >,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = <AuthorizationServer<NoOp> as tower::Service<http::Request<B>>>::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        tower::Service::poll_ready(&mut self.0, cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        *request.uri_mut() = http::Uri::from_static("/envoy.service.auth.v3.Authorization/Check");
        self.0.call(request)
    }
}

fn request(tenant: &str) -> CheckRequest {
    let mut attributes = AttributeContext::default();
    attributes
        .context_extensions
        .insert("tenant".into(), tenant.into());
    attributes.request = Some(attribute_context::Request {
        time: None,
        http: Some(attribute_context::HttpRequest {
            id: "1".into(),
            method: "GET".into(),
            path: "/public/orders?user=bob".into(),
            host: "example.com".into(),
            protocol: "HTTP/1.1".into(),
            headers: [
                ("user-agent".to_string(), "bench".to_string()),
                ("accept".to_string(), "*/*".to_string()),
            ]
            .into(),
            ..Default::default()
        }),
    });
    CheckRequest {
        attributes: Some(attributes),
    }
}

struct Level {
    rps: f64,
    p50: Duration,
    p99: Duration,
    errors: u64,
}

/// Calls `Check` (or the no-op when `noop`) with `requests` round-robin.
async fn drive(
    channels: &[Channel],
    requests: Arc<Vec<CheckRequest>>,
    noop: bool,
    concurrency: usize,
    secs: f64,
) -> Level {
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let started = Instant::now();
    let tasks: Vec<_> = (0..concurrency)
        .map(|worker| {
            let channel = channels[worker % channels.len()].clone();
            let requests = requests.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut errors = 0u64;
                let mut i = worker;
                let mut grpc = tonic::client::Grpc::new(channel);
                while Instant::now() < deadline {
                    let r = requests[i % requests.len()].clone();
                    i += concurrency;
                    let t = Instant::now();
                    let path = if noop {
                        NOOP_PATH
                    } else {
                        "/envoy.service.auth.v3.Authorization/Check"
                    };
                    grpc.ready().await.unwrap();
                    let answer = grpc
                        .unary::<_, CheckResponse, _>(
                            tonic::Request::new(r),
                            http::uri::PathAndQuery::from_static(path),
                            tonic_prost::ProstCodec::default(),
                        )
                        .await;
                    match answer {
                        Ok(a) if a.get_ref().status.as_ref().is_some_and(|s| s.code == 0) => {
                            latencies.push(t.elapsed());
                        }
                        _ => errors += 1,
                    }
                }
                (latencies, errors)
            })
        })
        .collect();
    let mut all = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (l, e) = t.await.unwrap();
        all.extend(l);
        errors += e;
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.sort();
    let pct = |p: f64| {
        all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    Level {
        rps: all.len() as f64 / elapsed,
        p50: pct(0.50),
        p99: pct(0.99),
        errors,
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let secs: f64 = args
        .iter()
        .position(|a| a == "--secs")
        .and_then(|i| args.get(i + 1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(3.0);
    // `cargo test --benches` runs this with `--test`; do nothing then.
    if args.iter().any(|a| a == "--test") {
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let bundle = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/bundles/acme");
        let host = Host::new(
            HostConfig {
                on_demand: true,
                // TENET_BENCH_INLINE=1 decides on the tokio worker instead
                // of the evaluation pool, to measure what the pool costs.
                eval_inline: std::env::var_os("TENET_BENCH_INLINE").is_some(),
                // TENET_BENCH_POOL=1 hands every evaluation to the pool
                // (no inline turns for cheap tenants), for comparison.
                fair_share: tenet::FairShareConfig {
                    inline: std::env::var_os("TENET_BENCH_POOL").is_none(),
                    ..Default::default()
                },
                ..HostConfig::default()
            },
            Arc::new(OneBundle(bundle)),
        );
        let config = GrpcConfig::default();
        let services = Services {
            ext_authz: ExtAuthz::new(host.clone(), ExtAuthzConfig::default()),
            decisions: DecisionService::new(host, config.decisions.clone()),
        };
        let grpc = Grpc::new(&config, services).await.unwrap();
        let routes = grpc
            .routes()
            .add_service(Renamed(AuthorizationServer::new(NoOp)));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let incoming =
            tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_routes(routes)
                .serve_with_incoming(incoming),
        );
        // Envoy keeps a few HTTP/2 connections to its ext_authz cluster;
        // four here, shared by the workers.
        let mut channels = Vec::new();
        for _ in 0..4 {
            channels.push(
                Channel::from_shared(url.clone())
                    .unwrap()
                    .connect()
                    .await
                    .unwrap(),
            );
        }
        let one = Arc::new(vec![request("acme")]);
        let many = Arc::new(
            (0..1000)
                .map(|i| request(&format!("t{i}")))
                .collect::<Vec<_>>(),
        );
        // Warm up: load every tenant once.
        let mut client = tonic::client::Grpc::new(channels[0].clone());
        for r in many.iter().chain(one.iter()) {
            client.ready().await.unwrap();
            let a = client
                .unary::<_, CheckResponse, _>(
                    tonic::Request::new(r.clone()),
                    http::uri::PathAndQuery::from_static(
                        "/envoy.service.auth.v3.Authorization/Check",
                    ),
                    tonic_prost::ProstCodec::default(),
                )
                .await
                .unwrap();
            assert_eq!(a.get_ref().status.as_ref().unwrap().code, 0);
        }
        println!("| target | concurrency | calls/s | p50 | p99 | errors | calls/s vs no-op |");
        println!("|---|---|---|---|---|---|---|");
        for concurrency in [1, 4, 16, 64] {
            let ceiling = drive(&channels, one.clone(), true, concurrency, secs).await;
            for (name, requests) in [
                ("no-op Check", None),
                ("1 tenant", Some(&one)),
                ("1,000 tenants", Some(&many)),
            ] {
                let level = match requests {
                    None => Level { ..ceiling },
                    Some(r) => drive(&channels, r.clone(), false, concurrency, secs).await,
                };
                println!(
                    "| {name} | {concurrency} | {:.0} | {:.0} µs | {:.0} µs | {} | {:.0} % |",
                    level.rps,
                    level.p50.as_secs_f64() * 1e6,
                    level.p99.as_secs_f64() * 1e6,
                    level.errors,
                    100.0 * level.rps / ceiling.rps,
                );
            }
        }
    });
}
