//! `tenet serve` end to end with its bundle sources: the real binary on an
//! ephemeral loopback port, fed by real servers started in this process on
//! 127.0.0.1 — an OPA-style HTTP bundle server (axum over hyper, with ETags,
//! 304s and long polling) and an S3 server (s3s over s3s-fs) — or by files
//! in a temporary directory. Covers polling, long polling, outages, bad
//! revisions, signatures, persistence, file watching and configuration
//! errors.
//!
//! Waits are "until X, up to a generous deadline"; nothing asserts how long
//! anything took. Every tenet process is killed when its handle drops.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use axum::extract::{Path as UrlPath, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};
use tenet::{sign_files, write_tar_gz, BundleFile, Limits, SigningKey};

/// Polls `$probe` (an expression giving `Result<T, String>`) every 100 ms
/// until it is `Ok`, and panics with the last observation after `$secs`.
macro_rules! eventually {
    ($what:expr, $secs:expr, $probe:expr) => {{
        let deadline = Instant::now() + Duration::from_secs($secs);
        loop {
            match $probe {
                Ok(value) => break value,
                Err(last) => {
                    if Instant::now() > deadline {
                        panic!("gave up waiting for {}; last saw: {}", $what, last);
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }};
}

// ------------------------------------------------------------------ bundles

/// A bundle whose `data.app.verdict` is `verdict`, with `.manifest`
/// revision `revision`.
fn files(revision: &str, verdict: &str) -> Vec<BundleFile> {
    vec![
        BundleFile {
            path: ".manifest".into(),
            bytes: json!({ "revision": revision }).to_string().into_bytes(),
        },
        BundleFile {
            path: "app/policy.rego".into(),
            bytes: format!("package app\n\nverdict := {verdict:?}\n").into_bytes(),
        },
    ]
}

fn archive(revision: &str, verdict: &str) -> Vec<u8> {
    write_tar_gz(&files(revision, verdict)).unwrap()
}

/// The files plus a `.signatures.json` made with `key` under key id `k1`.
fn signed(files: Vec<BundleFile>, algorithm: &str, key: &str) -> Vec<BundleFile> {
    signed_as(files, algorithm, key, "k1")
}

/// The files plus a `.signatures.json` made with `key` under `keyid`.
fn signed_as(
    mut files: Vec<BundleFile>,
    algorithm: &str,
    key: &str,
    keyid: &str,
) -> Vec<BundleFile> {
    let key = SigningKey::new(algorithm, key).unwrap();
    let signature = sign_files(&files, &key, Some(keyid), None).unwrap();
    files.push(signature);
    files
}

/// A fresh 2048-bit RSA key pair: (PKCS#8 private PEM, SPKI public PEM).
fn rsa_pair() -> (String, String) {
    let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).unwrap();
    (pair.serialize_pem(), pair.public_key_pem())
}

// ------------------------------------------------------------------- tenet

/// A running `tenet serve`.
struct Tenet {
    child: Child,
    base: String,
    logs: Arc<Mutex<String>>,
    client: reqwest::Client,
}

/// A `tenet` command with no `TENET_*` or `AWS_*` variable inherited from
/// the test's environment.
fn tenet_command(dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tenet"));
    for (key, _) in std::env::vars() {
        if key.starts_with("TENET_") || key.starts_with("AWS_") {
            cmd.env_remove(key);
        }
    }
    cmd.current_dir(dir).env("RUST_LOG", "info");
    cmd
}

impl Tenet {
    /// Starts `tenet serve --addr 127.0.0.1:0 <args>` in `dir` with `env`
    /// and waits for its "listening" line.
    async fn start(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Self {
        let mut child = tenet_command(dir)
            .args(["serve", "--addr", "127.0.0.1:0"])
            .args(args)
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let logs = Arc::new(Mutex::new(String::new()));
        let mut stderr = BufReader::new(child.stderr.take().unwrap());
        let sink = Arc::clone(&logs);
        std::thread::spawn(move || {
            let mut line = String::new();
            while matches!(stderr.read_line(&mut line), Ok(n) if n > 0) {
                sink.lock().unwrap().push_str(&line);
                line.clear();
            }
        });
        let (tx, rx) = mpsc::channel();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = stdout.read_line(&mut line);
            let _ = tx.send(line);
            // Keep draining so the child never blocks on a full pipe.
            let _ = std::io::copy(&mut stdout, &mut std::io::sink());
        });
        let mut tenet = Self {
            child,
            base: String::new(),
            logs,
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(15))
                .build()
                .unwrap(),
        };
        let line = tokio::task::spawn_blocking(move || rx.recv_timeout(Duration::from_secs(30)))
            .await
            .unwrap()
            .unwrap_or_default();
        tenet.base = match line.trim().strip_prefix("tenet listening on ") {
            Some(base) => base.to_string(),
            None => panic!(
                "unexpected first line {line:?}; stderr:\n{}",
                tenet.logs.lock().unwrap()
            ),
        };
        tenet
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// `data.app.verdict` for `tenant`: the status and the response body.
    async fn decide(&self, tenant: &str) -> (u16, Value) {
        let resp = self
            .client
            .post(self.url(&format!("/tenants/{tenant}/v1/data/app/verdict")))
            .json(&json!({ "input": {} }))
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap())
    }

    /// `Ok` when `tenant` decides `verdict`.
    async fn decides(&self, tenant: &str, verdict: &str) -> Result<(), String> {
        match self.decide(tenant).await {
            (200, body) if body == json!({ "result": verdict }) => Ok(()),
            other => Err(format!("{tenant}: {other:?}")),
        }
    }

    /// The tenant's admin snapshot (`GET /v1/tenants/{tenant}`).
    async fn status(&self, tenant: &str) -> Value {
        let resp = self
            .client
            .get(self.url(&format!("/v1/tenants/{tenant}")))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 200, "status of {tenant}");
        let body: Value = resp.json().await.unwrap();
        body["result"].clone()
    }

    /// Kills the process and waits for it.
    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Tenet {
    fn drop(&mut self) {
        self.stop();
        if std::thread::panicking() {
            eprintln!("--- tenet stderr ---\n{}", self.logs.lock().unwrap());
        }
    }
}

/// `Ok` with the tenant's `last_error` once it has one and at least one
/// consecutive failure.
fn failing(status: &Value) -> Result<String, String> {
    match (
        status["last_error"].as_str(),
        status["consecutive_failures"].as_u64(),
    ) {
        (Some(error), Some(n)) if !error.is_empty() && n >= 1 => Ok(error.to_string()),
        _ => Err(status.to_string()),
    }
}

fn write_config(dir: &Path, config: &Value) -> PathBuf {
    // JSON is YAML: no quoting trouble with paths and URLs.
    let path = dir.join("tenet.yaml");
    std::fs::write(&path, serde_json::to_string_pretty(config).unwrap()).unwrap();
    path
}

// ------------------------------------------------------ HTTP bundle server

/// The content type with which an OPA bundle server confirms long polling.
const BUNDLE_CONTENT_TYPE: &str = "application/vnd.openpolicyagent.bundles";

/// One request the bundle server answered.
#[derive(Debug, Clone)]
struct Seen {
    path: String,
    if_none_match: Option<String>,
    /// The request's `Prefer` header (long polling asks for `wait=N`).
    prefer: Option<String>,
    /// The request was held as a long poll before it was answered.
    held: bool,
    status: u16,
    /// The response's `Content-Type`, if it had one.
    content_type: Option<String>,
}

#[derive(Default)]
struct Bundles {
    /// Bundle name → (ETag, bytes).
    stored: Mutex<HashMap<String, (String, Vec<u8>)>>,
    seen: Mutex<Vec<Seen>>,
    /// Woken by every `put`, for the long polls being held.
    changed: tokio::sync::Notify,
    /// How many long polls are being held right now.
    holding: AtomicUsize,
}

impl Bundles {
    /// Stores `bytes` as `bundles/{name}` with ETag `"{etag}"`.
    fn put(&self, name: &str, etag: &str, bytes: Vec<u8>) {
        self.stored
            .lock()
            .unwrap()
            .insert(name.to_string(), (format!("\"{etag}\""), bytes));
        self.changed.notify_waiters();
    }

    fn seen(&self, path: &str) -> Vec<Seen> {
        let seen = self.seen.lock().unwrap();
        seen.iter().filter(|s| s.path == path).cloned().collect()
    }

    fn etag(&self, name: &str) -> Option<String> {
        let stored = self.stored.lock().unwrap();
        stored.get(name).map(|(etag, _)| etag.clone())
    }

    /// Holds a long poll on `name` until its ETag is no longer
    /// `if_none_match` or `wait` has passed.
    async fn hold(&self, name: &str, if_none_match: &str, wait: Duration) {
        let deadline = tokio::time::Instant::now() + wait;
        self.holding.fetch_add(1, Ordering::SeqCst);
        loop {
            // Registered before the check, so a `put` in between wakes it.
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.etag(name).as_deref() != Some(if_none_match) {
                break;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                break;
            }
        }
        self.holding.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The `wait=N` of a `Prefer: modes=snapshot;wait=N` header (OPA's long
/// polling request).
fn long_poll_wait(prefer: &str) -> Option<Duration> {
    let mut snapshot = false;
    let mut wait = None;
    for part in prefer.split([';', ',']) {
        match part.trim().split_once('=') {
            Some(("modes", "snapshot")) => snapshot = true,
            Some(("wait", n)) => wait = n.trim().parse().ok().map(Duration::from_secs),
            _ => {}
        }
    }
    wait.filter(|_| snapshot)
}

async fn serve_bundle(
    State(bundles): State<Arc<Bundles>>,
    UrlPath(name): UrlPath<String>,
    headers: HeaderMap,
) -> Response {
    let text = |name: header::HeaderName| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(String::from)
    };
    let if_none_match = text(header::IF_NONE_MATCH);
    let prefer = text(HeaderName::from_static("prefer"));
    let wait = prefer.as_deref().and_then(long_poll_wait);
    // A long poll for the bundle the client already holds waits for a
    // change (or the wait to pass) before it is answered.
    let mut held = false;
    if let (Some(wait), Some(tag)) = (wait, if_none_match.as_deref()) {
        if bundles.etag(&name).as_deref() == Some(tag) {
            held = true;
            bundles.hold(&name, tag, wait).await;
        }
    }
    // Long-poll answers carry OPA's bundle content type, which is how the
    // client learns the server supports it.
    let content_type = if wait.is_some() {
        BUNDLE_CONTENT_TYPE
    } else {
        "application/gzip"
    };
    let stored = bundles.stored.lock().unwrap().get(&name).cloned();
    let response = match stored {
        None => StatusCode::NOT_FOUND.into_response(),
        Some((etag, _)) if if_none_match.as_deref() == Some(etag.as_str()) => {
            let mut response = (StatusCode::NOT_MODIFIED, [(header::ETAG, etag)]).into_response();
            if wait.is_some() {
                response.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static(BUNDLE_CONTENT_TYPE),
                );
            }
            response
        }
        Some((etag, bytes)) => (
            [
                (header::ETAG, etag),
                (header::CONTENT_TYPE, content_type.to_string()),
            ],
            bytes,
        )
            .into_response(),
    };
    bundles.seen.lock().unwrap().push(Seen {
        path: format!("/bundles/{name}"),
        if_none_match,
        prefer,
        held,
        status: response.status().as_u16(),
        content_type: response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(String::from),
    });
    response
}

/// An OPA-style bundle server at `/bundles/{name}`. Stopping it aborts the
/// accept loop and every open connection, so the port refuses connections.
struct BundleServer {
    addr: SocketAddr,
    bundles: Arc<Bundles>,
    task: tokio::task::JoinHandle<()>,
}

impl BundleServer {
    async fn start(bundles: Arc<Bundles>) -> Self {
        Self::start_on("127.0.0.1:0".parse().unwrap(), bundles).await
    }

    /// Listens on `addr` (retrying while the port is still being released).
    async fn start_on(addr: SocketAddr, bundles: Arc<Bundles>) -> Self {
        let deadline = Instant::now() + Duration::from_secs(10);
        let listener = loop {
            match tokio::net::TcpListener::bind(addr).await {
                Ok(listener) => break listener,
                Err(_) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("cannot bind {addr}: {e}"),
            }
        };
        let addr = listener.local_addr().unwrap();
        let app = axum::Router::new()
            .route("/bundles/{name}", get(serve_bundle))
            .with_state(Arc::clone(&bundles));
        let task = tokio::spawn(async move {
            // Connections live in this set: aborting the task drops it and
            // with it every connection.
            let mut connections = tokio::task::JoinSet::new();
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let service = hyper_util::service::TowerToHyperService::new(app.clone());
                connections.spawn(async move {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(tcp), service)
                        .await;
                });
                while connections.try_join_next().is_some() {}
            }
        });
        Self {
            addr,
            bundles,
            task,
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    async fn stop(self) -> (SocketAddr, Arc<Bundles>) {
        self.task.abort();
        let _ = self.task.await;
        (self.addr, self.bundles)
    }
}

/// A config that fetches `bundles/{tenant}.tar.gz` from `server` every
/// second, with `tenants` pinned.
fn http_config(server: &str, tenants: &[&str]) -> Value {
    json!({
        "services": { "acme": { "url": server } },
        "bundles": {
            "service": "acme",
            "resource": "bundles/{tenant}.tar.gz",
            "polling": { "min_delay_seconds": 1, "max_delay_seconds": 1 },
        },
        "tenants": tenants,
    })
}

// ------------------------------------------------------------------- tests

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_service_polls_each_tenant_and_gets_304s() {
    let bundles = Arc::new(Bundles::default());
    bundles.put("acme.tar.gz", "a1", archive("a1", "acme-1"));
    bundles.put("globex.tar.gz", "g1", archive("g1", "globex-1"));
    let server = BundleServer::start(Arc::clone(&bundles)).await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &http_config(&server.url(), &["acme", "globex"]));
    let tenet = Tenet::start(dir.path(), &["--config", config.to_str().unwrap()], &[]).await;

    eventually!(
        "acme's first revision",
        15,
        tenet.decides("acme", "acme-1").await
    );
    eventually!(
        "globex's first revision",
        15,
        tenet.decides("globex", "globex-1").await
    );

    // Unchanged bundles: conditional polls answered 304 by the server.
    eventually!("two 304s to acme's polls", 15, {
        let seen = bundles.seen("/bundles/acme.tar.gz");
        let not_modified = seen
            .iter()
            .filter(|s| s.status == 304 && s.if_none_match.as_deref() == Some("\"a1\""))
            .count();
        if not_modified >= 2 {
            Ok(())
        } else {
            Err(format!("{seen:?}"))
        }
    });

    // A new revision on the server activates by polling alone.
    bundles.put("acme.tar.gz", "a2", archive("a2", "acme-2"));
    eventually!(
        "acme's second revision",
        15,
        tenet.decides("acme", "acme-2").await
    );
    assert_eq!(tenet.status("acme").await["revision"], json!("a2"));

    // The other tenant is untouched: same revision, downloaded once, every
    // later poll a 304.
    tenet.decides("globex", "globex-1").await.unwrap();
    let globex = tenet.status("globex").await;
    assert_eq!(globex["revision"], json!("g1"), "{globex}");
    assert!(globex["last_error"].is_null(), "{globex}");
    let seen = bundles.seen("/bundles/globex.tar.gz");
    assert_eq!(
        seen.iter().filter(|s| s.status == 200).count(),
        1,
        "{seen:?}"
    );
    assert!(
        seen.iter().any(|s| s.status == 304),
        "globex was never polled: {seen:?}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_and_a_bad_revision_keep_the_last_good_one() {
    let bundles = Arc::new(Bundles::default());
    bundles.put("acme.tar.gz", "a1", archive("a1", "acme-1"));
    bundles.put("globex.tar.gz", "g1", archive("g1", "globex-1"));
    let server = BundleServer::start(Arc::clone(&bundles)).await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &http_config(&server.url(), &["acme", "globex"]));
    let tenet = Tenet::start(dir.path(), &["--config", config.to_str().unwrap()], &[]).await;
    eventually!(
        "acme's first revision",
        15,
        tenet.decides("acme", "acme-1").await
    );
    eventually!(
        "globex's first revision",
        15,
        tenet.decides("globex", "globex-1").await
    );

    // Outage: the port refuses connections.
    let (addr, bundles) = server.stop().await;
    for tenant in ["acme", "globex"] {
        let error = eventually!(
            format!("{tenant} to record the outage"),
            15,
            failing(&tenet.status(tenant).await)
        );
        assert!(!error.is_empty());
        assert_eq!(
            tenet.status(tenant).await["revision"],
            json!(tenant[..1].to_string() + "1")
        );
    }
    tenet.decides("acme", "acme-1").await.unwrap();
    tenet.decides("globex", "globex-1").await.unwrap();

    // Back on the same port with a new revision: it activates.
    bundles.put("acme.tar.gz", "a2", archive("a2", "acme-2"));
    let server = BundleServer::start_on(addr, bundles).await;
    eventually!(
        "acme's revision after the outage",
        20,
        tenet.decides("acme", "acme-2").await
    );
    eventually!("globex to recover", 15, {
        let status = tenet.status("globex").await;
        if status["consecutive_failures"] == json!(0) && status["last_error"].is_null() {
            Ok(())
        } else {
            Err(status.to_string())
        }
    });
    tenet.decides("globex", "globex-1").await.unwrap();

    // A corrupt archive is refused; the last good revision keeps serving
    // and the status says why.
    server.bundles.put(
        "acme.tar.gz",
        "bad",
        b"\x1f\x8b this is no archive".to_vec(),
    );
    let error = eventually!(
        "acme to refuse the corrupt revision",
        15,
        failing(&tenet.status("acme").await)
    );
    assert!(error.contains("corrupt"), "{error}");
    assert_eq!(tenet.status("acme").await["revision"], json!("a2"));
    tenet.decides("acme", "acme-2").await.unwrap();

    // So is a bundle whose policy does not compile.
    let mut broken = files("a3", "acme-3");
    broken[1].bytes = b"package app\n\nverdict := \n".to_vec();
    server
        .bundles
        .put("acme.tar.gz", "broken", write_tar_gz(&broken).unwrap());
    eventually!("acme to refuse the broken policy", 15, {
        let status = tenet.status("acme").await;
        match status["last_error"].as_str() {
            Some(e) if e.contains("app/policy.rego") => Ok(()),
            _ => Err(status.to_string()),
        }
    });
    assert_eq!(tenet.status("acme").await["revision"], json!("a2"));
    tenet.decides("acme", "acme-2").await.unwrap();
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_polling_delivers_a_new_revision_without_waiting_for_the_poll_delay() {
    let bundles = Arc::new(Bundles::default());
    bundles.put("acme.tar.gz", "a1", archive("a1", "acme-1"));
    let server = BundleServer::start(Arc::clone(&bundles)).await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = http_config(&server.url(), &["acme"]);
    // Plain polling would not fetch again for an hour.
    config["bundles"]["polling"] = json!({
        "min_delay_seconds": 3600,
        "max_delay_seconds": 3600,
        "long_polling_timeout_seconds": 10,
    });
    let config = write_config(dir.path(), &config);
    let tenet = Tenet::start(dir.path(), &["--config", config.to_str().unwrap()], &[]).await;
    eventually!(
        "acme's first revision",
        15,
        tenet.decides("acme", "acme-1").await
    );

    // tenet asked for long polling, and came back for the bundle it holds:
    // the server is holding that request now.
    let path = "/bundles/acme.tar.gz";
    let first = bundles.seen(path);
    assert!(
        first
            .iter()
            .any(|s| s.prefer.as_deref() == Some("modes=snapshot;wait=10")),
        "no long-poll request: {first:?}"
    );
    eventually!("a held long poll", 15, {
        if bundles.holding.load(Ordering::SeqCst) > 0 {
            Ok(())
        } else {
            Err(format!("{:?}", bundles.seen(path)))
        }
    });

    // The new revision answers the held request; tenet activates it.
    bundles.put("acme.tar.gz", "a2", archive("a2", "acme-2"));
    eventually!(
        "acme's second revision",
        15,
        tenet.decides("acme", "acme-2").await
    );
    assert_eq!(tenet.status("acme").await["revision"], json!("a2"));

    let seen = bundles.seen(path);
    assert!(
        seen.iter()
            .any(|s| s.held && s.status == 200 && s.if_none_match.as_deref() == Some("\"a1\"")),
        "the new revision did not answer a held request: {seen:?}"
    );
    for s in seen.iter().filter(|s| s.held) {
        assert_eq!(
            s.content_type.as_deref(),
            Some(BUNDLE_CONTENT_TYPE),
            "{seen:?}"
        );
    }
    // Every request was a long poll: none came from the hour-long delay.
    assert!(
        seen.iter().all(|s| s.prefer.is_some()),
        "a request without Prefer: {seen:?}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rs256_signed_bundles_from_the_http_service() {
    let (private, public) = rsa_pair();
    let (other_private, _) = rsa_pair();
    let bundles = Arc::new(Bundles::default());
    bundles.put(
        "acme.tar.gz",
        "r1",
        write_tar_gz(&signed_as(files("r1", "rsa-1"), "RS256", &private, "rsa1")).unwrap(),
    );
    let server = BundleServer::start(Arc::clone(&bundles)).await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = http_config(&server.url(), &["acme"]);
    config["keys"] = json!({ "rsa1": { "algorithm": "RS256", "key": public } });
    config["bundles"]["signing"] = json!({ "keyid": "rsa1" });
    let config = write_config(dir.path(), &config);
    let tenet = Tenet::start(dir.path(), &["--config", config.to_str().unwrap()], &[]).await;
    eventually!(
        "the RS256-signed revision",
        15,
        tenet.decides("acme", "rsa-1").await
    );
    let status = tenet.status("acme").await;
    assert_eq!(status["revision"], json!("r1"), "{status}");

    // A revision signed with another RSA key under the same key id.
    bundles.put(
        "acme.tar.gz",
        "r2",
        write_tar_gz(&signed_as(
            files("r2", "forged"),
            "RS256",
            &other_private,
            "rsa1",
        ))
        .unwrap(),
    );
    let error = eventually!(
        "acme to refuse the revision signed with another key",
        15,
        failing(&tenet.status("acme").await)
    );
    assert!(error.contains("signature"), "{error}");
    assert!(error.contains("does not verify"), "{error}");
    assert!(
        bundles
            .seen("/bundles/acme.tar.gz")
            .iter()
            .any(|s| s.if_none_match.as_deref() == Some("\"r1\"") && s.status == 200),
        "the forged revision was never downloaded"
    );
    let status = tenet.status("acme").await;
    assert_eq!(status["revision"], json!("r1"), "{status}");
    tenet.decides("acme", "rsa-1").await.unwrap();
    server.stop().await;
}

// ------------------------------------------------------------- S3 server

const ACCESS_KEY: &str = "AKIDTENETBUNDLES";
const SECRET_KEY: &str = "tenet-bundles-secret";
const BUCKET: &str = "tenet-bundles";

/// s3s over s3s-fs on 127.0.0.1, with SigV4 and static keys.
struct S3Server {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
    _root: tempfile::TempDir,
}

impl S3Server {
    async fn start() -> Self {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join(BUCKET)).unwrap();
        let mut builder =
            s3s::service::S3ServiceBuilder::new(s3s_fs::FileSystem::new(root.path()).unwrap());
        builder.set_auth(s3s::auth::SimpleAuth::from_single(ACCESS_KEY, SECRET_KEY));
        let service = builder.build();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let service = service.clone();
                connections.spawn(async move {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(tcp), service)
                        .await;
                });
                while connections.try_join_next().is_some() {}
            }
        });
        Self {
            addr,
            task,
            _root: root,
        }
    }

    /// The operator's handle on the bucket, through the S3 protocol.
    fn admin(&self) -> Arc<dyn ObjectStore> {
        let options = tenet_source::S3Options {
            from_env: false,
            endpoint: Some(format!("http://{}", self.addr)),
            region: Some("us-east-1".into()),
            allow_http: Some(true),
            access_key_id: Some(ACCESS_KEY.into()),
            secret_access_key: Some(tenet_source::Secret::new(SECRET_KEY)),
            max_retries: 0,
            ..tenet_source::S3Options::default()
        };
        tenet_source::S3Client::new(BUCKET, &options, Limits::default())
            .unwrap()
            .store()
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_bundles_from_the_aws_environment_without_a_config_file() {
    let s3 = S3Server::start().await;
    let admin = s3.admin();
    let key = ObjectPath::from("acme.tar.gz");
    admin
        .put(&key, PutPayload::from(archive("s1", "s3-1")))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let endpoint = format!("http://{}", s3.addr);
    let template = format!("s3://{BUCKET}/{{tenant}}.tar.gz");
    let tenet = Tenet::start(
        dir.path(),
        &["--bundles", &template],
        &[
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY),
            ("AWS_REGION", "us-east-1"),
            ("AWS_ENDPOINT_URL", &endpoint),
            ("AWS_ALLOW_HTTP", "true"),
            ("TENET_BUNDLES__POLLING__MIN_DELAY_SECONDS", "1"),
            ("TENET_BUNDLES__POLLING__MAX_DELAY_SECONDS", "1"),
        ],
    )
    .await;

    // On demand: the first decision loads the tenant.
    eventually!(
        "acme's first revision",
        15,
        tenet.decides("acme", "s3-1").await
    );
    let status = tenet.status("acme").await;
    assert_eq!(status["revision"], json!("s1"), "{status}");
    assert_eq!(
        status["source"],
        json!(format!("s3://{BUCKET}/acme.tar.gz")),
        "{status}"
    );

    // Replacing the object activates the new revision by polling.
    admin
        .put(&key, PutPayload::from(archive("s2", "s3-2")))
        .await
        .unwrap();
    eventually!(
        "acme's second revision",
        15,
        tenet.decides("acme", "s3-2").await
    );
    assert_eq!(tenet.status("acme").await["revision"], json!("s2"));

    // Deleting it leaves the last good revision serving.
    admin.delete(&key).await.unwrap();
    let error = eventually!(
        "acme to notice the deletion",
        15,
        failing(&tenet.status("acme").await)
    );
    assert!(error.contains("acme.tar.gz"), "{error}");
    tenet.decides("acme", "s3-2").await.unwrap();
    assert_eq!(tenet.status("acme").await["revision"], json!("s2"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_bundles_signed_with_the_configured_key_serve() {
    let dir = tempfile::tempdir().unwrap();
    let bundles = dir.path().join("bundles");
    std::fs::create_dir(&bundles).unwrap();
    let put = |tenant: &str, files: &[BundleFile]| {
        std::fs::write(
            bundles.join(format!("{tenant}.tar.gz")),
            write_tar_gz(files).unwrap(),
        )
        .unwrap();
    };
    put("good", &signed(files("g1", "good"), "HS256", "secret"));
    let mut tampered = signed(files("t1", "tampered"), "HS256", "secret");
    tampered[1].bytes = b"package app\n\nverdict := \"forged\"\n".to_vec();
    put("tampered", &tampered);
    put("unsigned", &files("u1", "unsigned"));
    put(
        "otherkey",
        &signed(files("o1", "otherkey"), "HS256", "not-the-secret"),
    );

    let config = write_config(
        dir.path(),
        &json!({
            "keys": { "k1": { "algorithm": "HS256", "key": "secret" } },
            "bundles": {
                "template": format!("{}/{{tenant}}.tar.gz", bundles.display()),
                "signing": { "keyid": "k1" },
            },
            "tenants": ["good", "tampered", "unsigned", "otherkey"],
        }),
    );
    let tenet = Tenet::start(dir.path(), &["--config", config.to_str().unwrap()], &[]).await;
    eventually!("the signed bundle", 15, tenet.decides("good", "good").await);

    for (tenant, reason) in [
        ("tampered", "does not match its signed hash"),
        ("unsigned", "no .signatures.json"),
        ("otherkey", "does not verify"),
    ] {
        // Refused with the reason (once the first load has failed: until
        // then the decision may only say "not ready yet").
        eventually!(format!("{tenant} to be refused"), 15, {
            match tenet.decide(tenant).await {
                (503, body)
                    if body["code"] == json!("tenant_not_ready")
                        && body["message"].as_str().is_some_and(|m| m.contains(reason)) =>
                {
                    Ok(())
                }
                other => Err(format!("{other:?}")),
            }
        });
        let status = tenet.status(tenant).await;
        let error = failing(&status).unwrap();
        assert!(error.contains("signature"), "{tenant}: {error}");
        assert!(error.contains(reason), "{tenant}: {error}");
        assert!(status["revision"].is_null(), "{tenant}: {status}");
    }

    // Signing the unsigned tenant's bundle is all it takes.
    put(
        "unsigned",
        &signed(files("u2", "now-signed"), "HS256", "secret"),
    );
    eventually!(
        "the newly signed bundle",
        15,
        tenet.decides("unsigned", "now-signed").await
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_persisted_bundle_serves_while_the_service_is_down() {
    let bundles = Arc::new(Bundles::default());
    bundles.put("acme.tar.gz", "a1", archive("a1", "acme-1"));
    let server = BundleServer::start(Arc::clone(&bundles)).await;
    let dir = tempfile::tempdir().unwrap();
    let persist = dir.path().join("persist");
    let mut config = http_config(&server.url(), &["acme"]);
    config["bundles"]["persist"] = json!(true);
    config["host"] = json!({ "persist_dir": persist });
    let config = write_config(dir.path(), &config);
    let args = ["--config", config.to_str().unwrap()];

    let mut first = Tenet::start(dir.path(), &args, &[]).await;
    eventually!(
        "acme's first revision",
        15,
        first.decides("acme", "acme-1").await
    );
    eventually!("the bundle on disk", 15, {
        let held: Vec<String> = std::fs::read_dir(persist.join("acme"))
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        if held.iter().any(|f| f.ends_with(".tar.gz")) && held.iter().any(|f| f.ends_with(".json"))
        {
            Ok(())
        } else {
            Err(format!("{held:?}"))
        }
    });
    first.stop();
    server.stop().await;

    // Same config, service down: the persisted revision serves.
    let second = Tenet::start(dir.path(), &args, &[]).await;
    eventually!(
        "acme from the persisted bundle",
        15,
        second.decides("acme", "acme-1").await
    );
    let status = second.status("acme").await;
    assert_eq!(status["revision"], json!("a1"), "{status}");
    let error = status["last_error"].as_str().unwrap_or_default();
    assert!(!error.is_empty(), "{status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn editing_a_policy_file_reloads_the_tenant_without_polling() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("bundles/acme");
    std::fs::create_dir_all(bundle.join("app")).unwrap();
    let rego = bundle.join("app/policy.rego");
    std::fs::write(&rego, "package app\n\nverdict := \"before\"\n").unwrap();
    let template = format!("{}/bundles/{{tenant}}", dir.path().display());
    let tenet = Tenet::start(
        dir.path(),
        &["--bundles", &template],
        &[
            ("TENET_BUNDLES__POLLING__MIN_DELAY_SECONDS", "3600"),
            ("TENET_BUNDLES__POLLING__MAX_DELAY_SECONDS", "3600"),
        ],
    )
    .await;
    eventually!(
        "the first decision",
        15,
        tenet.decides("acme", "before").await
    );

    // The next poll is an hour away.
    let status = tenet.status("acme").await;
    if let Some(next) = status["next_fetch"].as_str() {
        let next = humantime::parse_rfc3339(next).unwrap();
        let ahead = next.duration_since(SystemTime::now()).unwrap_or_default();
        assert!(ahead > Duration::from_secs(600), "{status}");
    }

    std::fs::write(&rego, "package app\n\nverdict := \"after\"\n").unwrap();
    eventually!(
        "the edited policy",
        15,
        tenet.decides("acme", "after").await
    );
}

// ------------------------------------------------------------ config errors

/// Runs `tenet` with `args` and `env`, killing it if it has not exited
/// after 20 s; gives the exit status and stderr.
fn run_bounded(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> (ExitStatus, String, String) {
    let mut child = tenet_command(dir)
        .args(args)
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("tenet {args:?} did not exit");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    (status, out.join().unwrap(), err.join().unwrap())
}

#[test]
fn invalid_configurations_fail_at_start_naming_file_key_and_reason() {
    let dir = tempfile::tempdir().unwrap();
    // (file name, contents, environment, what stderr must say)
    type Case<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)], &'a [&'a str]);
    let cases: &[Case] = &[
        (
            "bad-type.yaml",
            "host:\n  grace_period_seconds: soon\n",
            &[],
            &["host.grace_period_seconds", "invalid type"],
        ),
        (
            "unknown-key.yaml",
            "bundles:\n  polling:\n    min_delay_secs: 1\n",
            &[],
            &["bundles.polling", "unknown field `min_delay_secs`"],
        ),
        (
            "bad-env.yaml",
            "bundles:\n  template: bundles/{tenant}\n",
            &[("TENET_BUNDLES__POLLING__MAX_DELAY_SECONDS", "often")],
            &[
                "bundles.polling.max_delay_seconds",
                "TENET_BUNDLES__POLLING__MAX_DELAY_SECONDS",
                "invalid type",
            ],
        ),
        (
            "isolation.yaml",
            "isolation:\n  level: process\n",
            &[],
            &["isolation.level", "expected none, tenant or session"],
        ),
        (
            "polling.yaml",
            "bundles:\n  polling:\n    min_delay_seconds: 10\n    max_delay_seconds: 5\n",
            &[],
            &["bundles.polling", "min_delay_seconds"],
        ),
        (
            "service.yaml",
            "bundles:\n  service: nowhere\n  resource: b/{tenant}.tar.gz\n",
            &[],
            &["bundles.service", "nowhere"],
        ),
    ];
    for (name, text, env, wanted) in cases {
        let file = dir.path().join(name);
        std::fs::write(&file, text).unwrap();
        let (status, stdout, stderr) = run_bounded(
            dir.path(),
            &[
                "serve",
                "--addr",
                "127.0.0.1:0",
                "--config",
                file.to_str().unwrap(),
            ],
            env,
        );
        assert!(!status.success(), "{name}: {status}; {stderr}");
        assert!(
            !stdout.contains("listening"),
            "{name} started a server: {stdout}"
        );
        assert!(stderr.contains(name), "{name}: {stderr}");
        for w in *wanted {
            assert!(stderr.contains(w), "{name}: wanted {w:?} in {stderr}");
        }
    }

    // A config file that does not exist.
    let (status, _, stderr) =
        run_bounded(dir.path(), &["serve", "--config", "no-such-file.yaml"], &[]);
    assert!(!status.success());
    assert!(stderr.contains("no-such-file.yaml"), "{stderr}");

    let (status, help, _) = run_bounded(dir.path(), &["serve", "--help"], &[]);
    assert!(status.success());
    assert!(help.contains("--config"), "{help}");
    assert!(help.contains("--bundles"), "{help}");
}
