//! The status page in a real headless browser (Debian's Chromium, as
//! .ci/run installs it): against a running server with an admin token,
//! decision logging and an isolated tenant, the page shows each tenant's
//! state, revision, isolation level and rates, a tenant's status document
//! and its recent decision ids, filters tenants, and without the token
//! shows why it has no data. What a person would see is read from the DOM
//! after the page's scripts ran (`--dump-dom` with a virtual time budget).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::{alice, client, write_config, Server, ALLOW};

fn chromium() -> PathBuf {
    let path = std::env::var_os("TENET_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    assert!(
        path.exists(),
        "{} is missing: install Debian's chromium (apt-get install chromium), as .ci/run does",
        path.display()
    );
    path
}

/// Runs headless Chromium with `args` then `url`, within 60 s; its stdout.
fn browse(args: &[&str], url: &str) -> String {
    let profile = tempfile::tempdir().unwrap();
    let mut child = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--virtual-time-budget=4000",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .arg(url)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if started.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            panic!("chromium did not finish within 60 s on {url}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut out = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take().unwrap(), &mut out).unwrap();
    out
}

/// The rows of the tenants table: (tenant, cells).
fn rows(dom: &str) -> Vec<(String, Vec<String>)> {
    dom.split("<tr class=\"tenant")
        .skip(1)
        .map(|row| {
            let row = row.split("</tr>").next().unwrap();
            let tenant = row
                .split("data-tenant=\"")
                .nth(1)
                .unwrap()
                .split('"')
                .next()
                .unwrap();
            let cells = row
                .split("<td")
                .skip(1)
                .map(|c| {
                    c.split('>')
                        .nth(1)
                        .unwrap()
                        .split("</td")
                        .next()
                        .unwrap()
                        .to_string()
                })
                .collect();
            (tenant.to_string(), cells)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_page_shows_tenants_details_and_filters_in_a_browser() {
    let tmp = tempfile::tempdir().unwrap();
    let config = write_config(
        tmp.path(),
        "server:\n  admin_token: s3cret\n  decision_token: d3cide\ndecision_logs:\n  console: true\nisolation:\n  tenants:\n    storefront: tenant\n",
    );
    let server = Server::start(&["--config", &config]);
    let c = client(60);
    let mut ids = Vec::new();
    for _ in 0..3 {
        let body: Value = c
            .post(server.url(ALLOW))
            .bearer_auth("d3cide")
            .json(&json!({ "input": alice() }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        ids.push(body["decision_id"].as_str().unwrap().to_string());
    }
    let resp = c
        .post(server.url("/tenants/storefront/v1/data/storefront/ingress/allow"))
        .bearer_auth("d3cide")
        .json(
            &json!({"input": {"request": {"method": "GET", "path": "/products/1", "headers": {}}}}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);

    let url = server.url("/ui#token=s3cret&tenant=payments");
    let dom = tokio::task::spawn_blocking(move || browse(&["--dump-dom"], &url))
        .await
        .unwrap();
    let table = rows(&dom);
    let names: Vec<&str> = table.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(names, ["payments", "storefront"], "{dom}");
    let (_, payments) = &table[0];
    assert_eq!(payments[1], "active");
    assert_eq!(payments[2], "payments-2026.11.1");
    assert_eq!(payments[5], "0.0 %", "no errors");
    assert_eq!(payments[7], "none");
    let (_, storefront) = &table[1];
    assert_eq!(storefront[7], "tenant", "storefront's isolation level");
    assert!(dom.contains("2 tenants · 1 worker processes"), "{dom}");
    // The detail: the status document and the three decision ids.
    let detail = dom.split("<section id=\"detail\">").nth(1).unwrap();
    assert!(detail.contains("<h2>payments</h2>"), "{detail}");
    assert!(
        detail.contains("\"active_revision\": \"payments-2026.11.1\""),
        "{detail}"
    );
    for id in &ids {
        assert!(
            detail.contains(id.as_str()),
            "decision {id} missing from {detail}"
        );
    }

    // The filter hides what does not match.
    let url = server.url("/ui#token=s3cret&filter=store");
    let dom = tokio::task::spawn_blocking(move || browse(&["--dump-dom"], &url))
        .await
        .unwrap();
    let names: Vec<String> = rows(&dom).into_iter().map(|(t, _)| t).collect();
    assert_eq!(names, ["storefront"], "{dom}");

    // Without the token: no data, and why.
    let url = server.url("/ui");
    let dom = tokio::task::spawn_blocking(move || browse(&["--dump-dom"], &url))
        .await
        .unwrap();
    assert!(rows(&dom).is_empty(), "{dom}");
    assert!(dom.contains("the admin token is missing or wrong"), "{dom}");

    // And a screenshot renders.
    let shot = tmp.path().join("page.png");
    let arg = format!("--screenshot={}", shot.display());
    let url = server.url("/ui#token=s3cret&tenant=payments");
    tokio::task::spawn_blocking(move || browse(&[&arg, "--window-size=1280,900"], &url))
        .await
        .unwrap();
    let png = std::fs::read(&shot).unwrap();
    assert!(png.starts_with(b"\x89PNG"), "not a PNG");
}
