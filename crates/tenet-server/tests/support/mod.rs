//! The real `tenet serve` binary on an ephemeral loopback port, shared by
//! the end-to-end test files. The first stdout line names the address; the
//! process is killed when the handle drops, so nothing outlives a test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, dead_code)]

pub mod grpc;

use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// The workspace root (where `examples/` and `fixtures/` live), canonical:
/// a bundle template may not contain `..`.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// The example tenant's decision that tests use to prove a server still
/// answers.
pub const ALLOW: &str = "/tenants/payments/v1/data/payments/authz/allow";

/// The payments example's input for alice's refund, which `ALLOW` allows.
pub fn alice() -> Value {
    let text =
        std::fs::read_to_string(root().join("examples/inputs/payments/alice-refund.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// A client whose timeout turns a hung request into a failed test.
pub fn client(timeout_secs: u64) -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(timeout_secs))
        .build()
        .unwrap()
}

/// The body of `GET url` as text (a `/metrics` scrape).
pub async fn get_text(c: &reqwest::Client, url: &str) -> String {
    c.get(url).send().await.unwrap().text().await.unwrap()
}

/// The body of `GET url` as JSON.
pub async fn get_json(c: &reqwest::Client, url: &str) -> Value {
    c.get(url).send().await.unwrap().json().await.unwrap()
}

/// The value of the sample in `scrape` whose line starts with `series`
/// (name and labels) followed by a space, if there is one.
pub fn sample<'a>(scrape: &'a str, series: &str) -> Option<&'a str> {
    scrape
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
}

/// Writes `yaml` to `dir/tenet.yaml`; its path, for `--config`.
pub fn write_config(dir: &Path, yaml: &str) -> String {
    let path = dir.join("tenet.yaml");
    std::fs::write(&path, yaml).unwrap();
    path.display().to_string()
}

/// After `after`: the process is alive, its RSS grew by less than
/// `max_growth_kib` since `rss_before` (not checked when `rss_before` is 0),
/// and `payments` still allows alice's refund.
pub async fn still_answers(
    c: &reqwest::Client,
    server: &mut Server,
    after: &str,
    rss_before: u64,
    max_growth_kib: u64,
) {
    assert!(server.alive(), "the server died after {after}");
    if rss_before > 0 {
        let grown = server.rss_kib().saturating_sub(rss_before);
        assert!(
            grown < max_growth_kib,
            "after {after}: RSS grew by {grown} KiB"
        );
    }
    let resp = c
        .post(server.url(ALLOW))
        .json(&json!({ "input": alice() }))
        .send()
        .await
        .unwrap_or_else(|e| panic!("payments after {after}: {e}"));
    assert_eq!(resp.status().as_u16(), 200, "payments after {after}");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body, json!({"result": true}), "payments after {after}");
}

/// Copies a bundle directory (regular files and directories only).
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// A running `tenet serve`.
pub struct Server {
    pub child: Child,
    /// `http://127.0.0.1:PORT` (or `https://…`).
    pub base: String,
}

impl Server {
    /// `tenet serve --addr 127.0.0.1:0 ARGS…` from the workspace root.
    pub fn start(args: &[&str]) -> Self {
        Self::start_reading(args, 0).0
    }

    /// [`Server::start`], also returning the `extra` stdout lines after the
    /// first (the gRPC address line).
    pub fn start_reading(args: &[&str], extra: usize) -> (Self, Vec<String>) {
        let mut child = Command::new(env!("CARGO_BIN_EXE_tenet"))
            .args(["serve", "--addr", "127.0.0.1:0"])
            .args(args)
            .current_dir(root())
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        let base = line
            .trim()
            .strip_prefix("tenet listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_string();
        let lines = (0..extra)
            .map(|_| {
                let mut line = String::new();
                out.read_line(&mut line).unwrap();
                line.trim().to_string()
            })
            .collect();
        (Self { child, base }, lines)
    }

    /// `base` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// `host:port`, without the scheme.
    pub fn addr(&self) -> String {
        self.base.split_once("://").unwrap().1.to_string()
    }

    /// True while the process has not exited.
    pub fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// The process's resident set size in KiB (`VmRSS` in
    /// `/proc/PID/status`), for tests that bound what one request may cost.
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("no VmRSS in {status}"))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Serves `app` (a real receiver: a decision-log or status service) on an
/// ephemeral loopback port until the test's runtime ends; its address.
pub async fn serve_on_loopback(app: axum::Router) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

/// A CA, and a certificate for 127.0.0.1 and localhost that it signed,
/// written as PEM files into `dir` (`server.crt`, `server.key`). Returns
/// the CA certificate's PEM.
pub fn make_certificates(dir: &Path) -> String {
    use rcgen::{
        BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair, KeyUsagePurpose,
    };
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
        .unwrap()
        .signed_by(&key, &ca)
        .unwrap();
    std::fs::write(dir.join("server.crt"), leaf.pem()).unwrap();
    std::fs::write(dir.join("server.key"), key.serialize_pem()).unwrap();
    ca.pem()
}
