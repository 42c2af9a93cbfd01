//! The server stack of `tenet serve` end to end, on the real binary and
//! real loopback sockets: TLS with a certificate made here (and plain HTTP
//! refused on that port), HTTP/2 with prior knowledge on the plain port,
//! slow clients cut off by the header and body read timeouts, `/metrics`,
//! and a bad certificate file failing the start. Waits are bounded by
//! generous deadlines; nothing asserts how fast anything is.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use support::{alice, root, Server, ALLOW};

use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[tokio::test]
async fn https_with_a_generated_certificate_and_plain_http_refused() {
    let dir = tempfile::tempdir().unwrap();
    let ca = support::make_certificates(dir.path());
    let cert = dir.path().join("server.crt");
    let key = dir.path().join("server.key");
    let server = Server::start(&[
        "--tls-cert-file",
        cert.to_str().unwrap(),
        "--tls-private-key-file",
        key.to_str().unwrap(),
    ]);
    assert!(server.base.starts_with("https://"), "{}", server.base);

    let client = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(ca.as_bytes()).unwrap()])
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let resp = client
        .post(server.url(ALLOW))
        .json(&json!({ "input": alice() }))
        .send()
        .await
        .unwrap();
    // reqwest offers h2 by ALPN and the server accepts it.
    assert_eq!(resp.version(), reqwest::Version::HTTP_2);
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.json::<Value>().await.unwrap(), json!({"result": true}));

    // An HTTP/1.1-only client gets HTTP/1.1 over TLS.
    let h1 = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(ca.as_bytes()).unwrap()])
        .http1_only()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let resp = h1.get(server.url("/health")).send().await.unwrap();
    assert_eq!(resp.version(), reqwest::Version::HTTP_11);
    assert_eq!(resp.status(), 200);

    // A client that does not trust the CA is refused.
    let untrusting = reqwest::Client::builder()
        .tls_certs_only([])
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    assert!(untrusting.get(server.url("/health")).send().await.is_err());

    // Plain HTTP to the TLS port gets no HTTP answer.
    let plain = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let attempt = plain
        .get(format!("http://{}/health", server.addr()))
        .send()
        .await;
    assert!(attempt.is_err(), "{attempt:?}");
}

#[tokio::test]
async fn http2_with_prior_knowledge_and_http1_share_the_plain_port() {
    let server = Server::start(&[]);
    let h2c = reqwest::Client::builder()
        .http2_prior_knowledge()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let resp = h2c
        .post(server.url(ALLOW))
        .json(&json!({ "input": alice() }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.version(), reqwest::Version::HTTP_2);
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.json::<Value>().await.unwrap(), json!({"result": true}));

    let h1 = reqwest::Client::builder()
        .http1_only()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let resp = h1
        .post(server.url(ALLOW))
        .json(&json!({ "input": alice() }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.version(), reqwest::Version::HTTP_11);
    assert_eq!(resp.json::<Value>().await.unwrap(), json!({"result": true}));
}

/// Reads until the peer closes (or resets) the connection; panics if it is
/// still open at `deadline`. Returns what was read.
fn read_until_closed(stream: &mut TcpStream, deadline: Duration) -> Vec<u8> {
    let until = Instant::now() + deadline;
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let left = until.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "connection still open after {deadline:?}; read so far: {:?}",
            String::from_utf8_lossy(&out)
        );
        stream.set_read_timeout(Some(left)).unwrap();
        match stream.read(&mut buf) {
            Ok(0) => return out,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            // Reset by the server: closed too.
            Err(_) => return out,
        }
    }
}

// The configured timeouts are 1 s; the deadlines below are 8 s, under the
// 10 s default, so a flag that was ignored makes these tests fail.
const DEADLINE: Duration = Duration::from_secs(8);

#[test]
fn a_client_that_stalls_in_its_headers_is_disconnected() {
    let server = Server::start(&["--read-header-timeout-secs", "1"]);

    // A well-behaved client on the same server is answered.
    let mut ok = TcpStream::connect(server.addr()).unwrap();
    ok.write_all(b"GET /health HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .unwrap();
    let answer = read_until_closed(&mut ok, DEADLINE);
    assert!(
        answer.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&answer)
    );

    // Half a request head, then silence.
    let mut slow = TcpStream::connect(server.addr()).unwrap();
    slow.write_all(b"GET /health HTTP/1.1\r\nHost: t\r\nX-Slow: ")
        .unwrap();
    let answer = read_until_closed(&mut slow, DEADLINE);
    assert!(
        !answer.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&answer)
    );

    // Nothing at all.
    let mut silent = TcpStream::connect(server.addr()).unwrap();
    read_until_closed(&mut silent, DEADLINE);

    // Part of the HTTP/2 preface, then silence.
    let mut partial_h2 = TcpStream::connect(server.addr()).unwrap();
    partial_h2.write_all(b"PRI * HTTP/2").unwrap();
    read_until_closed(&mut partial_h2, DEADLINE);

    // A whole HTTP/2 preface and SETTINGS, then silence: no PING answered.
    let mut mute_h2 = TcpStream::connect(server.addr()).unwrap();
    mute_h2
        .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        .unwrap();
    read_until_closed(&mut mute_h2, DEADLINE);
}

#[test]
fn a_trickled_body_gets_408_and_the_connection_closes() {
    let server = Server::start(&["--read-body-timeout-secs", "1"]);
    let mut stream = TcpStream::connect(server.addr()).unwrap();
    let head = format!(
        "POST {ALLOW} HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n{{\"input\": "
    );
    stream.write_all(head.as_bytes()).unwrap();
    // Keep sending a byte now and then, so the body is never idle for long
    // but never complete: only a deadline on the whole body stops it.
    let stop = Arc::new(AtomicBool::new(false));
    let trickle = {
        let mut writer = stream.try_clone().unwrap();
        let stop = stop.clone();
        std::thread::spawn(move || {
            for _ in 0..150 {
                if stop.load(Ordering::Relaxed) || writer.write_all(b" ").is_err() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };
    let answer = read_until_closed(&mut stream, DEADLINE);
    stop.store(true, Ordering::Relaxed);
    trickle.join().unwrap();
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    let body = text.split_once("\r\n\r\n").unwrap().1;
    let body: Value = serde_json::from_str(body).unwrap();
    assert_eq!(body["code"], "request_timeout", "{body}");
}

#[tokio::test]
async fn metrics_count_requests_and_decisions_per_tenant() {
    let server = Server::start(&["--admin-token", "s3cret"]);
    let c = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    for _ in 0..2 {
        let resp = c
            .post(server.url(ALLOW))
            .json(&json!({ "input": alice() }))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
    }
    let resp = c
        .get(server.url("/v1/data"))
        .header("X-Tenant-ID", "storefront")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let resp = c.get(server.url("/no/such/page")).send().await.unwrap();
    assert_eq!(resp.status(), 404);

    // The admin token guards the scrape when one is set.
    let resp = c.get(server.url("/metrics")).send().await.unwrap();
    assert_eq!(resp.status(), 401);
    let resp = c
        .get(server.url("/metrics"))
        .bearer_auth("s3cret")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let content_type = resp.headers()["content-type"].to_str().unwrap().to_string();
    assert!(
        content_type.starts_with("application/openmetrics-text"),
        "{content_type}"
    );
    let text = resp.text().await.unwrap();
    let has = |line: &str| text.lines().any(|l| l == line);
    for line in [
        r#"tenet_http_requests_total{handler="/tenants/{tenant}/v1/data/{*path}",code="200"} 2"#,
        r#"tenet_http_requests_total{handler="/v1/data",code="200"} 1"#,
        r#"tenet_http_requests_total{handler="unmatched",code="404"} 1"#,
        r#"tenet_http_requests_total{handler="/metrics",code="401"} 1"#,
        r#"tenet_http_request_duration_seconds_count{handler="/tenants/{tenant}/v1/data/{*path}"} 2"#,
        r#"tenet_decisions_total{tenant="payments"} 2"#,
        r#"tenet_decisions_total{tenant="storefront"} 1"#,
        r#"tenet_decision_errors_total{tenant="payments"} 0"#,
        r#"tenet_instances 2"#,
        r#"tenet_instances_by_state{state="active"} 2"#,
        r#"tenet_activations_total 2"#,
        // Per tenant: outcomes (a GET of /v1/data is a non-boolean
        // result), evaluations, loads, the revision, latencies.
        r#"tenet_tenant_decisions_total{tenant="payments",outcome="allow"} 2"#,
        r#"tenet_tenant_decisions_total{tenant="payments",outcome="deny"} 0"#,
        r#"tenet_tenant_decisions_total{tenant="payments",outcome="error"} 0"#,
        r#"tenet_tenant_decisions_total{tenant="storefront",outcome="defined"} 1"#,
        r#"tenet_tenant_evaluations_total{tenant="payments"} 2"#,
        r#"tenet_tenant_deadline_hits_total{tenant="payments"} 0"#,
        r#"tenet_tenant_activations_total{tenant="payments"} 1"#,
        r#"tenet_tenant_activation_failures_total{tenant="payments"} 0"#,
        r#"tenet_tenant_decision_duration_seconds_count{tenant="payments"} 2"#,
        r#"tenet_tenant_decision_duration_seconds_bucket{le="+Inf",tenant="payments"} 2"#,
        "# EOF",
    ] {
        assert!(has(line), "missing {line:?} in:\n{text}");
    }
    assert!(
        text.lines()
            .any(|l| l.starts_with(r#"tenet_tenant_revision_info{tenant="payments",revision=""#)),
        "no revision info in:\n{text}"
    );
    // The first load's fetch, and a second one (not modified) when the
    // file watcher armed its watches after that fetch had begun.
    assert!(
        has(r#"tenet_tenant_bundle_fetches_total{tenant="payments"} 1"#)
            || has(r#"tenet_tenant_bundle_fetches_total{tenant="payments"} 2"#),
        "fetches of payments in:\n{text}"
    );
    // The raw path never becomes a label.
    assert!(!text.contains("payments/authz/allow"), "{text}");
    assert!(!text.contains("/no/such/page"), "{text}");
    let memory = text
        .lines()
        .find_map(|l| l.strip_prefix("tenet_approx_memory_bytes "))
        .unwrap_or_else(|| panic!("no memory gauge in:\n{text}"));
    assert!(memory.parse::<u64>().unwrap() > 0, "{memory}");
}

#[test]
fn a_bad_certificate_file_stops_the_start_and_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    support::make_certificates(dir.path());
    let garbage = dir.path().join("garbage.crt");
    std::fs::write(&garbage, "this is not a certificate").unwrap();
    let key = dir.path().join("server.key");
    let missing_key = dir.path().join("absent.key");
    let cert = dir.path().join("server.crt");
    for (cert, key, named) in [
        (&garbage, &key, "garbage.crt"),
        (&cert, &missing_key, "absent.key"),
        // A certificate where the key should be.
        (&cert, &cert, "server.crt"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_tenet"))
            .args(["serve", "--addr", "127.0.0.1:0", "--tls-cert-file"])
            .arg(cert)
            .arg("--tls-private-key-file")
            .arg(key)
            .current_dir(root())
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{named}: {stderr}");
        assert!(stderr.contains(named), "{named}: {stderr}");
        assert!(
            !String::from_utf8_lossy(&out.stdout).contains("listening"),
            "{named}"
        );
    }
}

#[tokio::test]
async fn sigterm_closes_idle_keep_alive_connections_without_waiting_for_the_drain_deadline() {
    // A drain deadline far past the wait below: the server must exit
    // because its connections finished, not because the deadline passed.
    let mut server = Server::start(&["--drain-secs", "120"]);
    let mut idle = TcpStream::connect(server.addr()).unwrap();
    idle.write_all(b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    idle.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut buf = [0u8; 1024];
    let n = idle.read(&mut buf).unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
    // An HTTP/2 client whose connection stays in its pool. (HTTP/2's
    // graceful close needs the client to answer a PING, so it takes a real
    // client; one that never answers is cut at the drain deadline.)
    let h2c = reqwest::Client::builder()
        .http2_prior_knowledge()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let resp = h2c.get(server.url("/health")).send().await.unwrap();
    assert_eq!(resp.version(), reqwest::Version::HTTP_2);

    let pid = server.child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(exit) = server.child.try_wait().unwrap() {
            assert!(exit.success(), "{exit:?}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "server still running 30 s after SIGTERM with idle connections"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    read_until_closed(&mut idle, DEADLINE);
    drop(h2c);
}

#[test]
fn the_drain_deadline_cuts_connections_that_do_not_finish() {
    let mut server = Server::start(&["--drain-secs", "1"]);
    // HTTP/2 preface and empty SETTINGS, then nothing: this client never
    // answers the server's PING, so its connection cannot close gracefully.
    let mut stuck = TcpStream::connect(server.addr()).unwrap();
    stuck
        .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        .unwrap();
    // Wait until the server has answered with its own SETTINGS, so the
    // connection is being served when the signal comes.
    stuck
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut buf = [0u8; 9];
    stuck.read_exact(&mut buf).unwrap();
    assert_eq!(buf[3], 0x4, "expected a SETTINGS frame, got {buf:?}");

    let pid = server.child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(exit) = server.child.try_wait().unwrap() {
            assert!(exit.success(), "{exit:?}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "server still running 30 s after SIGTERM with a 1 s drain"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    read_until_closed(&mut stuck, DEADLINE);
}

#[tokio::test]
async fn the_library_serve_gives_handlers_the_peer_address_and_stops_on_its_signal() {
    use axum::extract::ConnectInfo;
    use std::net::SocketAddr;
    let app = axum::Router::new().route(
        "/peer",
        axum::routing::get(
            |ConnectInfo(peer): ConnectInfo<SocketAddr>| async move { peer.to_string() },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(tenet_server::serve(
        listener,
        app,
        tenet_server::ServeOptions::default(),
        async move {
            let _ = stopped.await;
        },
    ));
    let c = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let peer = c
        .get(format!("http://{addr}/peer"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let peer: SocketAddr = peer.parse().unwrap();
    assert!(peer.ip().is_loopback(), "{peer}");
    assert_ne!(peer.port(), addr.port());

    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(30), server)
        .await
        .expect("serve did not return after its shutdown signal")
        .unwrap()
        .unwrap();
}
