//! The cardinality cap on `/metrics` (telemetry issue): 5,000 tenants
//! decide against the real binary with `server.max_tenant_labels: 100`;
//! the scrape names at most 100 tenants plus `__other__`, the busiest
//! tenants keep their own series, nothing is lost in the sums, and the
//! scrape stays small.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use support::{client, write_config, Server};

const TENANTS: usize = 5_000;
const BUSY: usize = 10;

/// Every `tenet_decisions` sample: tenant label to value.
fn decisions(scrape: &str) -> BTreeMap<String, u64> {
    scrape
        .lines()
        .filter(|l| l.starts_with("tenet_decisions_total{"))
        .map(|l| {
            let tenant = l
                .split("tenant=\"")
                .nth(1)
                .unwrap()
                .split('"')
                .next()
                .unwrap();
            let value = l.rsplit(' ').next().unwrap().parse().unwrap();
            (tenant.to_string(), value)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_name_at_most_the_cap_of_tenants_and_the_busiest_keep_theirs() {
    let tmp = tempfile::tempdir().unwrap();
    let bundle = tmp.path().join("bundle");
    std::fs::create_dir_all(&bundle).unwrap();
    std::fs::write(bundle.join("p.rego"), "package p\n\nok := true\n").unwrap();
    let archive = tmp.path().join("one.tar.gz");
    let status = Command::new("tar")
        .args([
            "czf",
            archive.to_str().unwrap(),
            "-C",
            bundle.to_str().unwrap(),
            "p.rego",
        ])
        .status()
        .unwrap();
    assert!(status.success());
    let bundles = tmp.path().join("bundles");
    std::fs::create_dir_all(&bundles).unwrap();
    for i in 0..TENANTS {
        std::fs::copy(&archive, bundles.join(format!("t{i}.tar.gz"))).unwrap();
    }
    let config = write_config(
        tmp.path(),
        &format!(
            "bundles:\n  template: \"{}/{{tenant}}.tar.gz\"\nserver:\n  max_tenant_labels: 100\n",
            bundles.display()
        ),
    );
    let server = Server::start(&["--config", &config]);
    let c = client(120);
    let url = |i: usize| server.url(&format!("/tenants/t{i}/v1/data/p/ok"));
    // Every tenant once, the busy ones 20 times more, 16 at a time.
    let work: Vec<usize> = (0..TENANTS).chain((0..20).flat_map(|_| 0..BUSY)).collect();
    for chunk in work.chunks(16) {
        let calls: Vec<_> = chunk
            .iter()
            .map(|&i| {
                let (c, url) = (c.clone(), url(i));
                tokio::spawn(async move { c.get(url).send().await.unwrap().status().as_u16() })
            })
            .collect();
        for call in calls {
            assert_eq!(call.await.unwrap(), 200);
        }
    }
    let scrape = support::get_text(&c, &server.url("/metrics")).await;
    let samples = decisions(&scrape);
    assert!(samples.len() <= 101, "{} tenant labels", samples.len());
    assert!(samples.contains_key("__other__"));
    let total: u64 = samples.values().sum();
    assert_eq!(total, (TENANTS + 20 * BUSY) as u64);
    for i in 0..BUSY {
        assert_eq!(
            samples.get(&format!("t{i}")),
            Some(&21),
            "busy t{i} keeps its series"
        );
    }
    let labels: BTreeSet<&str> = scrape
        .lines()
        .filter_map(|l| l.split("tenant=\"").nth(1))
        .map(|rest| rest.split('"').next().unwrap())
        .collect();
    assert!(
        labels.len() <= 101,
        "{} tenant label values in all",
        labels.len()
    );
    // Each label value costs a fixed set of series (about 2.4 KB with the
    // latency histogram); 5,000 tenants must cost no more than 101.
    assert!(
        scrape.len() < 101 * 3_000 + 20_000,
        "a scrape of {} bytes",
        scrape.len()
    );
}
