//! `HttpSource` against a real OPA-style bundle server (axum on 127.0.0.1),
//! scripted per request: ETags and 304s, failures that clear the ETag,
//! timeouts, truncated and oversized bodies, 404, bearer tokens (inline and
//! rotated through a file), long polling, client TLS, and `Template`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use futures_util::StreamExt;
use std::collections::{HashMap, VecDeque};
use std::io::ErrorKind;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tenet_bundle::{
    write_tar_gz, BundleError, BundleFile, BundleSource, Fetched, Limits, VersionTag,
};
use tenet_source::{
    BearerCredentials, ClientTlsCredentials, HttpOptions, HttpSource, Secret, SourceOptions,
    Template, BUNDLE_CONTENT_TYPE,
};

// ---------------------------------------------------------------- server

/// What the server does with the next request, instead of serving the
/// stored bundle.
#[derive(Debug, Clone)]
enum Reply {
    Status(StatusCode),
    /// Never answers (within the test).
    Hang,
    /// Promises the whole bundle, sends half, then drops the connection.
    Truncated,
    /// A body of this many bytes with its `Content-Length`.
    SizedBody(usize),
    /// A chunked body (no `Content-Length`) of this many bytes.
    ChunkedBody(usize),
    /// The bundle without an ETag.
    NoEtag,
}

#[derive(Debug, Clone)]
struct Seen {
    path: String,
    if_none_match: Option<String>,
    prefer: Option<String>,
    authorization: Option<String>,
}

struct ServerState {
    bundles: Mutex<HashMap<String, (String, Vec<u8>)>>,
    script: Mutex<VecDeque<Reply>>,
    seen: Mutex<Vec<Seen>>,
    token: Mutex<Option<String>>,
    long_poll: AtomicBool,
    changed: tokio::sync::watch::Sender<u64>,
}

#[derive(Clone)]
struct Server {
    addr: SocketAddr,
    state: Arc<ServerState>,
}

impl Server {
    async fn start() -> Self {
        let state = Self::state();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = router(Arc::clone(&state));
        tokio::spawn(async move { axum::serve(listener, app).await });
        Server { addr, state }
    }

    fn state() -> Arc<ServerState> {
        Arc::new(ServerState {
            bundles: Mutex::new(HashMap::new()),
            script: Mutex::new(VecDeque::new()),
            seen: Mutex::new(Vec::new()),
            token: Mutex::new(None),
            long_poll: AtomicBool::new(false),
            changed: tokio::sync::watch::channel(0).0,
        })
    }

    fn url(&self, name: &str) -> String {
        format!("http://{}/bundles/{name}", self.addr)
    }

    fn put(&self, name: &str, etag: &str, bytes: Vec<u8>) {
        self.state
            .bundles
            .lock()
            .unwrap()
            .insert(name.to_string(), (etag.to_string(), bytes));
        self.state.changed.send_modify(|n| *n += 1);
    }

    fn then(&self, reply: Reply) {
        self.state.script.lock().unwrap().push_back(reply);
    }

    fn seen(&self) -> Vec<Seen> {
        self.state.seen.lock().unwrap().clone()
    }

    fn last(&self) -> Seen {
        self.seen().last().cloned().unwrap()
    }

    fn require_token(&self, token: &str) {
        *self.state.token.lock().unwrap() = Some(token.to_string());
    }

    /// Waits (up to a generous deadline) until `n` requests have arrived.
    async fn wait_for_requests(&self, n: usize) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while self.seen().len() < n {
            assert!(tokio::time::Instant::now() < deadline, "request never came");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

fn router(state: Arc<ServerState>) -> Router {
    Router::new()
        .route("/bundles/{name}", get(serve_bundle))
        .with_state(state)
}

fn text(headers: &HeaderMap, name: header::HeaderName) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// The wait a client asked for in `Prefer: modes=snapshot;wait=N`.
fn requested_wait(prefer: Option<&str>) -> Option<u64> {
    prefer?
        .split(';')
        .find_map(|part| part.trim().strip_prefix("wait="))
        .and_then(|n| n.parse().ok())
}

async fn serve_bundle(
    State(state): State<Arc<ServerState>>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Response {
    let seen = Seen {
        path: name.clone(),
        if_none_match: text(&headers, header::IF_NONE_MATCH),
        prefer: text(&headers, header::HeaderName::from_static("prefer")),
        authorization: text(&headers, header::AUTHORIZATION),
    };
    state.seen.lock().unwrap().push(seen.clone());

    let required = state.token.lock().unwrap().clone();
    if let Some(token) = required {
        if seen.authorization.as_deref() != Some(&format!("Bearer {token}")) {
            return StatusCode::UNAUTHORIZED.into_response();
        }
    }
    let scripted = state.script.lock().unwrap().pop_front();
    if let Some(reply) = scripted {
        return scripted_reply(&state, &name, reply).await;
    }

    let wait = requested_wait(seen.prefer.as_deref())
        .filter(|_| state.long_poll.load(Ordering::SeqCst))
        .map(Duration::from_secs);
    let content_type = if wait.is_some() {
        BUNDLE_CONTENT_TYPE
    } else {
        "application/gzip"
    };
    let deadline = tokio::time::Instant::now() + wait.unwrap_or_default();
    let mut changes = state.changed.subscribe();
    loop {
        let current = state.bundles.lock().unwrap().get(&name).cloned();
        let Some((etag, bytes)) = current else {
            return (StatusCode::NOT_FOUND, "no such bundle").into_response();
        };
        if seen.if_none_match.as_deref() == Some(etag.as_str()) {
            // Long poll: hold the request until the bundle changes or the
            // wait runs out.
            if wait.is_some()
                && tokio::time::timeout_at(deadline, changes.changed())
                    .await
                    .is_ok()
            {
                continue;
            }
            return (
                StatusCode::NOT_MODIFIED,
                [
                    (header::ETAG, etag),
                    (header::CONTENT_TYPE, content_type.into()),
                ],
            )
                .into_response();
        }
        return (
            [
                (header::ETAG, etag),
                (header::CONTENT_TYPE, content_type.into()),
            ],
            bytes,
        )
            .into_response();
    }
}

async fn scripted_reply(state: &ServerState, name: &str, reply: Reply) -> Response {
    let bundle = state.bundles.lock().unwrap().get(name).cloned();
    match reply {
        Reply::Status(status) => (status, "scripted failure").into_response(),
        Reply::Hang => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            StatusCode::OK.into_response()
        }
        Reply::Truncated => {
            let (etag, bytes) = bundle.unwrap();
            let half = Bytes::copy_from_slice(&bytes[..bytes.len() / 2]);
            // The first half goes out with the headers; the cut comes after.
            let first = futures_util::stream::once(async move { Ok::<_, std::io::Error>(half) });
            let cut = futures_util::stream::once(async {
                tokio::time::sleep(Duration::from_millis(200)).await;
                Err(std::io::Error::new(ErrorKind::ConnectionReset, "cut"))
            });
            let mut response = Body::from_stream(first.chain(cut)).into_response();
            let headers = response.headers_mut();
            headers.insert(header::CONTENT_LENGTH, bytes.len().into());
            headers.insert(header::ETAG, HeaderValue::from_str(&etag).unwrap());
            response
        }
        Reply::SizedBody(n) => ([(header::ETAG, "\"big\"")], vec![7u8; n]).into_response(),
        Reply::ChunkedBody(n) => {
            let chunks: Vec<Result<Bytes, std::io::Error>> = (0..n.div_ceil(1024))
                .map(|_| Ok(Bytes::from(vec![7u8; 1024])))
                .collect();
            let response = Body::from_stream(futures_util::stream::iter(chunks)).into_response();
            assert!(response.headers().get(header::CONTENT_LENGTH).is_none());
            response
        }
        Reply::NoEtag => {
            let (_, bytes) = bundle.unwrap();
            bytes.into_response()
        }
    }
}

// ---------------------------------------------------------------- helpers

/// A real bundle archive whose data says which revision it is.
fn archive(revision: u32) -> Vec<u8> {
    write_tar_gz(&[
        BundleFile {
            path: "authz/policy.rego".into(),
            bytes: b"package authz\n\nallow if input.user == \"alice\"\n".to_vec(),
        },
        BundleFile {
            path: "data.json".into(),
            bytes: format!("{{\"revision\": {revision}}}").into_bytes(),
        },
    ])
    .unwrap()
}

fn options() -> HttpOptions {
    HttpOptions {
        response_header_timeout_seconds: 20,
        connect_timeout_seconds: 10,
        timeout_seconds: 30,
        ..HttpOptions::default()
    }
}

fn source(url: &str, options: &HttpOptions) -> HttpSource {
    HttpSource::new(url, options, Limits::default()).unwrap()
}

/// Unwraps a fetched bundle: its version and the revision in its data.
fn bundle(fetched: Fetched) -> (VersionTag, u64) {
    match fetched {
        Fetched::Bundle { payload, version } => {
            let bundle = payload.into_bundle(&Limits::default()).unwrap();
            assert_eq!(bundle.modules.len(), 1);
            (version, bundle.data["revision"].as_u64().unwrap())
        }
        Fetched::NotModified => panic!("expected a bundle, got NotModified"),
    }
}

fn io_error(result: Result<Fetched, BundleError>) -> (ErrorKind, String) {
    match result {
        Err(e @ BundleError::Io { .. }) => {
            let message = e.to_string();
            let BundleError::Io { source, .. } = e else {
                unreachable!()
            };
            (source.kind(), message)
        }
        Err(other) => panic!("expected an I/O error, got {other:?}"),
        Ok(fetched) => panic!("expected an error, got {fetched:?}"),
    }
}

fn tag(s: &str) -> VersionTag {
    VersionTag(s.to_string())
}

// ---------------------------------------------------------------- tests

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etag_and_if_none_match() {
    let server = Server::start().await;
    server.put("acme", "\"v1\"", archive(1));
    let src = source(&server.url("acme"), &options());

    let (v1, revision) = bundle(src.fetch(None).await.unwrap());
    assert_eq!((v1.clone(), revision), (tag("\"v1\""), 1));
    assert_eq!(server.last().if_none_match, None);

    assert!(matches!(
        src.fetch(Some(&v1)).await.unwrap(),
        Fetched::NotModified
    ));
    assert_eq!(server.last().if_none_match.as_deref(), Some("\"v1\""));

    server.put("acme", "\"v2\"", archive(2));
    let (v2, revision) = bundle(src.fetch(Some(&v1)).await.unwrap());
    assert_eq!((v2, revision), (tag("\"v2\""), 2));
    assert_eq!(server.last().if_none_match.as_deref(), Some("\"v1\""));

    // The caller still holds v1 (say v2 failed to compile): the source must
    // not claim v2 is held, so the request is unconditional.
    let (v2, _) = bundle(src.fetch(Some(&v1)).await.unwrap());
    assert_eq!(v2, tag("\"v2\""));
    assert_eq!(server.last().if_none_match, None);
    assert_eq!(server.seen().len(), 4);
    assert!(server
        .seen()
        .iter()
        .all(|s| s.path == "acme" && s.prefer.is_none()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_an_etag_the_version_is_the_body_digest() {
    let server = Server::start().await;
    let bytes = archive(1);
    server.put("acme", "\"unused\"", bytes.clone());
    let src = source(&server.url("acme"), &options());

    server.then(Reply::NoEtag);
    let (version, _) = bundle(src.fetch(None).await.unwrap());
    use sha2::{Digest, Sha256};
    assert_eq!(version.0, hex::encode(Sha256::digest(&bytes)));

    server.then(Reply::NoEtag);
    assert!(matches!(
        src.fetch(Some(&version)).await.unwrap(),
        Fetched::NotModified
    ));
    assert_eq!(server.last().if_none_match, None, "no ETag to send");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_download_clears_the_etag() {
    let server = Server::start().await;
    server.put("acme", "\"v1\"", archive(1));
    let src = source(&server.url("acme"), &options());
    let (v1, _) = bundle(src.fetch(None).await.unwrap());

    server.then(Reply::Status(StatusCode::INTERNAL_SERVER_ERROR));
    let (kind, message) = io_error(src.fetch(Some(&v1)).await);
    assert_eq!(kind, ErrorKind::Other);
    assert!(message.contains(&server.url("acme")), "{message}");
    assert!(message.contains("500"), "{message}");
    assert_eq!(server.last().if_none_match.as_deref(), Some("\"v1\""));

    // Next request is unconditional; the unchanged bundle is still
    // recognised as the one held.
    assert!(matches!(
        src.fetch(Some(&v1)).await.unwrap(),
        Fetched::NotModified
    ));
    assert_eq!(server.last().if_none_match, None);
    // And the ETag is held again afterwards.
    assert!(matches!(
        src.fetch(Some(&v1)).await.unwrap(),
        Fetched::NotModified
    ));
    assert_eq!(server.last().if_none_match.as_deref(), Some("\"v1\""));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_server_times_out() {
    let server = Server::start().await;
    server.put("acme", "\"v1\"", archive(1));
    let opts = HttpOptions {
        response_header_timeout_seconds: 1,
        ..options()
    };
    let src = source(&server.url("acme"), &opts);
    let (v1, _) = bundle(src.fetch(None).await.unwrap());

    server.then(Reply::Hang);
    let (kind, message) = io_error(src.fetch(Some(&v1)).await);
    assert_eq!(kind, ErrorKind::TimedOut, "{message}");
    assert!(message.contains(&server.url("acme")), "{message}");

    // The timeout cleared the ETag too.
    assert!(matches!(
        src.fetch(Some(&v1)).await.unwrap(),
        Fetched::NotModified
    ));
    assert_eq!(server.last().if_none_match, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncated_body_is_an_error() {
    let server = Server::start().await;
    server.put("acme", "\"v1\"", archive(1));
    let src = source(&server.url("acme"), &options());
    let (v1, _) = bundle(src.fetch(None).await.unwrap());

    server.then(Reply::Truncated);
    let (kind, message) = io_error(src.fetch(None).await);
    assert_eq!(kind, ErrorKind::UnexpectedEof, "{message}");
    assert!(src.fetch(Some(&v1)).await.is_ok());
    assert_eq!(server.last().if_none_match, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_bodies_are_refused() {
    let server = Server::start().await;
    server.put("acme", "\"v1\"", archive(1));
    let limits = Limits {
        max_compressed_bytes: 4096,
        ..Limits::default()
    };
    let src = HttpSource::new(&server.url("acme"), &options(), limits).unwrap();
    let (v1, _) = bundle(src.fetch(None).await.unwrap());

    // Declared up front.
    server.then(Reply::SizedBody(10_000));
    match src.fetch(Some(&v1)).await {
        Err(BundleError::CompressedTooLarge { size, limit }) => {
            assert_eq!((size, limit), (10_000, 4096))
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(server.last().if_none_match.as_deref(), Some("\"v1\""));

    // Discovered while streaming.
    server.then(Reply::ChunkedBody(1 << 20));
    match src.fetch(Some(&v1)).await {
        Err(BundleError::CompressedTooLarge { size, limit }) => {
            assert!(size > 4096 && size <= 4096 + 1024, "{size}");
            assert_eq!(limit, 4096);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        server.last().if_none_match,
        None,
        "cleared by the first failure"
    );

    // Exactly at the limit is fine.
    server.then(Reply::SizedBody(4096));
    match src.fetch(None).await.unwrap() {
        Fetched::Bundle { payload, .. } => {
            assert!(matches!(payload, tenet_bundle::Payload::Archive(b) if b.len() == 4096))
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_bundle_is_not_found() {
    let server = Server::start().await;
    let src = source(&server.url("nobody"), &options());
    let (kind, message) = io_error(src.fetch(None).await);
    assert_eq!(kind, ErrorKind::NotFound);
    assert!(message.contains("404"), "{message}");
    assert!(message.contains(&server.url("nobody")), "{message}");

    // 403 and 401 are not "not found".
    server.put("nobody", "\"v1\"", archive(1));
    server.then(Reply::Status(StatusCode::FORBIDDEN));
    assert_eq!(
        io_error(src.fetch(None).await).0,
        ErrorKind::PermissionDenied
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bearer_tokens_inline_and_rotated_from_a_file() {
    let server = Server::start().await;
    server.put("acme", "\"v1\"", archive(1));
    server.require_token("first");

    let anonymous = source(&server.url("acme"), &options());
    let (kind, message) = io_error(anonymous.fetch(None).await);
    assert_eq!(kind, ErrorKind::PermissionDenied);
    assert!(message.contains("401"), "{message}");

    let mut inline = options();
    inline.credentials.bearer = Some(BearerCredentials {
        token: Some(Secret::new("first")),
        ..BearerCredentials::default()
    });
    bundle(
        source(&server.url("acme"), &inline)
            .fetch(None)
            .await
            .unwrap(),
    );
    assert_eq!(server.last().authorization.as_deref(), Some("Bearer first"));

    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "first\n").unwrap();
    let mut from_file = options();
    from_file.credentials.bearer = Some(BearerCredentials {
        token_path: Some(token_file.clone()),
        ..BearerCredentials::default()
    });
    let src = source(&server.url("acme"), &from_file);
    bundle(src.fetch(None).await.unwrap());

    // The server rotates; until the file is rewritten the old token fails.
    server.require_token("second");
    assert_eq!(
        io_error(src.fetch(None).await).0,
        ErrorKind::PermissionDenied
    );
    std::fs::write(&token_file, "second").unwrap();
    bundle(src.fetch(None).await.unwrap());
    assert_eq!(
        server.last().authorization.as_deref(),
        Some("Bearer second")
    );

    // A missing token file is a load failure, not "no bundle".
    std::fs::remove_file(&token_file).unwrap();
    let (kind, message) = io_error(src.fetch(None).await);
    assert_ne!(kind, ErrorKind::NotFound, "{message}");
    assert!(message.contains("token"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_polling_waits_for_a_change() {
    let server = Server::start().await;
    server.state.long_poll.store(true, Ordering::SeqCst);
    server.put("acme", "\"v1\"", archive(1));
    let opts = HttpOptions {
        long_polling_timeout_seconds: Some(60),
        ..options()
    };
    let src = Arc::new(source(&server.url("acme"), &opts));
    assert!(!src.long_polls(), "not before the server confirmed it");

    let (v1, _) = bundle(src.fetch(None).await.unwrap());
    assert_eq!(
        server.last().prefer.as_deref(),
        Some("modes=snapshot;wait=60")
    );
    assert!(src.long_polls());

    // The server holds the next request; the change answers it.
    let pending = {
        let src = Arc::clone(&src);
        let v1 = v1.clone();
        tokio::spawn(async move { src.fetch(Some(&v1)).await })
    };
    server.wait_for_requests(2).await;
    server.put("acme", "\"v2\"", archive(2));
    let (v2, revision) = bundle(pending.await.unwrap().unwrap());
    assert_eq!((v2, revision), (tag("\"v2\""), 2));
    assert_eq!(server.seen()[1].if_none_match.as_deref(), Some("\"v1\""));
    assert!(src.long_polls());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_polling_ends_with_not_modified_when_the_wait_expires() {
    let server = Server::start().await;
    server.state.long_poll.store(true, Ordering::SeqCst);
    server.put("acme", "\"v1\"", archive(1));
    let opts = HttpOptions {
        long_polling_timeout_seconds: Some(1),
        response_header_timeout_seconds: 10,
        ..options()
    };
    let src = source(&server.url("acme"), &opts);
    let (v1, _) = bundle(src.fetch(None).await.unwrap());
    assert!(matches!(
        src.fetch(Some(&v1)).await.unwrap(),
        Fetched::NotModified
    ));
    assert!(src.long_polls());

    // An error: no longer confirmed, but still asked for.
    server.then(Reply::Status(StatusCode::BAD_GATEWAY));
    assert!(src.fetch(Some(&v1)).await.is_err());
    assert!(!src.long_polls());
    bundle(src.fetch(None).await.unwrap());
    assert_eq!(
        server.last().prefer.as_deref(),
        Some("modes=snapshot;wait=1")
    );
    assert!(src.long_polls());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_polling_turns_off_when_the_server_does_not_confirm_it() {
    let server = Server::start().await;
    server.put("acme", "\"v1\"", archive(1));
    let opts = HttpOptions {
        long_polling_timeout_seconds: Some(30),
        ..options()
    };
    let src = source(&server.url("acme"), &opts);
    let (v1, _) = bundle(src.fetch(None).await.unwrap());
    assert!(server.last().prefer.is_some());
    assert!(!src.long_polls());
    assert!(matches!(
        src.fetch(Some(&v1)).await.unwrap(),
        Fetched::NotModified
    ));
    assert_eq!(server.last().prefer, None, "off for good, as in OPA");

    // Without the option, a long-polling server is never asked to wait.
    server.state.long_poll.store(true, Ordering::SeqCst);
    let plain = source(&server.url("acme"), &options());
    bundle(plain.fetch(None).await.unwrap());
    assert_eq!(server.last().prefer, None);
    assert!(!plain.long_polls());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_template_gives_each_tenant_its_url() {
    let server = Server::start().await;
    server.put("acme.tar.gz", "\"a1\"", archive(1));
    server.put("globex.tar.gz", "\"g7\"", archive(7));
    let template = Template::new(
        &format!("http://{}/bundles/{{tenant}}.tar.gz", server.addr),
        SourceOptions {
            http: options(),
            ..SourceOptions::default()
        },
    )
    .unwrap();
    assert_eq!(template.kind(), "http");

    let (va, ra) = bundle(template.source("acme").fetch(None).await.unwrap());
    let (vg, rg) = bundle(template.source("globex").fetch(None).await.unwrap());
    assert_eq!((va, ra, vg, rg), (tag("\"a1\""), 1, tag("\"g7\""), 7));
    let missing = template.source("initech");
    assert_eq!(missing.location(), server.url("initech.tar.gz"));
    assert_eq!(io_error(missing.fetch(None).await).0, ErrorKind::NotFound);
    let paths: Vec<String> = server.seen().into_iter().map(|s| s.path).collect();
    assert_eq!(paths, ["acme.tar.gz", "globex.tar.gz", "initech.tar.gz"]);
}

// ---------------------------------------------------------------- TLS

struct Pki {
    dir: tempfile::TempDir,
    ca: PathBuf,
    client_cert: PathBuf,
    client_key: PathBuf,
    server: tokio_rustls::rustls::ServerConfig,
}

/// A CA, a server certificate for 127.0.0.1 and a client certificate, all
/// made in the test; the server requires a client certificate from the CA.
fn pki() -> Pki {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    use tokio_rustls::rustls;
    use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_key = KeyPair::generate().unwrap();
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);

    let server_key = KeyPair::generate().unwrap();
    let server_cert = CertificateParams::new(vec!["127.0.0.1".to_string()])
        .unwrap()
        .signed_by(&server_key, &issuer)
        .unwrap();
    let client_key = KeyPair::generate().unwrap();
    let client_cert = CertificateParams::new(vec!["tenet-client".to_string()])
        .unwrap()
        .signed_by(&client_key, &issuer)
        .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, pem: String| {
        let path = dir.path().join(name);
        std::fs::write(&path, pem).unwrap();
        path
    };
    let ca = write("ca.pem", ca_cert.pem());
    let client_cert_path = write("client.pem", client_cert.pem());
    let client_key_path = write("client-key.pem", client_key.serialize_pem());

    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca_cert.der().clone()).unwrap();
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        Arc::clone(&provider),
    )
    .build()
    .unwrap();
    let server = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            vec![CertificateDer::from(server_cert.der().to_vec())],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(server_key.serialize_der())),
        )
        .unwrap();
    Pki {
        dir,
        ca,
        client_cert: client_cert_path,
        client_key: client_key_path,
        server,
    }
}

async fn start_tls(config: tokio_rustls::rustls::ServerConfig) -> Server {
    let state = Server::state();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let app = router(Arc::clone(&state));
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let (acceptor, app) = (acceptor.clone(), app.clone());
            tokio::spawn(async move {
                // A refused handshake just ends this connection.
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let service = hyper_util::service::TowerToHyperService::new(app);
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    Server { addr, state }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_tls_with_a_private_ca() {
    let pki = pki();
    let server = start_tls(pki.server.clone()).await;
    server.put("acme", "\"v1\"", archive(1));
    let url = format!("https://{}/bundles/acme", server.addr);

    let mut opts = options();
    opts.tls.ca_cert = Some(pki.ca.clone());
    opts.credentials.client_tls = Some(ClientTlsCredentials {
        cert: pki.client_cert.clone(),
        private_key: pki.client_key.clone(),
    });
    let (version, _) = bundle(source(&url, &opts).fetch(None).await.unwrap());
    assert_eq!(version, tag("\"v1\""));

    // Without the client certificate the server refuses the handshake.
    let mut no_client_cert = opts.clone();
    no_client_cert.credentials.client_tls = None;
    let (kind, message) = io_error(source(&url, &no_client_cert).fetch(None).await);
    assert_ne!(kind, ErrorKind::NotFound, "{message}");

    // Without the private CA the server certificate is not trusted.
    let mut no_ca = opts.clone();
    no_ca.tls.ca_cert = None;
    let (kind, message) = io_error(source(&url, &no_ca).fetch(None).await);
    assert_ne!(kind, ErrorKind::NotFound, "{message}");
    assert!(message.contains(&url), "{message}");
    assert_eq!(
        server.seen().len(),
        1,
        "only the trusted, authenticated request got through"
    );

    // A missing key file is a configuration error.
    let mut missing = opts.clone();
    missing.credentials.client_tls = Some(ClientTlsCredentials {
        cert: pki.client_cert.clone(),
        private_key: pki.dir.path().join("nope.pem"),
    });
    assert!(matches!(
        HttpSource::new(&url, &missing, Limits::default()),
        Err(tenet_source::SourceError::TlsFile { .. })
    ));
}
