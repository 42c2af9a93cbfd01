//! When bundles are fetched again: the polling scheduler (tokio's paused
//! clock, so delays are exact and nothing depends on the machine's speed),
//! the file watcher (real time and real OS events, every wait bounded by a
//! generous deadline, no timing assertions) and persisted bundles.
//!
//! Sources are real directories and archives on disk. Where a test must
//! count or slow fetches, `Probe` wraps a real source and records each call
//! (instrumentation: every answer still comes from the real source).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::json;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use tenet_bundle::{BundleError, BundleSource, DirectorySource, Fetched, Limits, VersionTag};
use tenet_host::{
    Host, HostConfig, InstanceState, PollingConfig, SourceFactory, SourceTemplate, TenantSnapshot,
};
use tenet_policy::Input;
use tokio::time::Instant;

fn write_bundle(dir: &Path, revision: &str, answer: &str) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(
        dir.join(".manifest"),
        json!({"revision": revision}).to_string(),
    )
    .unwrap();
    std::fs::write(
        dir.join("policy.rego"),
        format!("package app\n\nanswer := \"{answer}\"\n\nallow if input.user == \"alice\"\n"),
    )
    .unwrap();
}

/// The bytes of a `.tar.gz` bundle with `revision`.
fn archive(scratch: &Path, revision: &str) -> Vec<u8> {
    let dir = scratch.join(format!("build-{revision}"));
    write_bundle(&dir, revision, revision);
    tenet_bundle::build_archive(&dir, &Limits::default()).unwrap()
}

/// Polling on, watching off: only the scheduler can cause a fetch. Every
/// host in this file decides inline (`eval_inline`): on tokio's paused
/// clock, waiting for an evaluation thread lets the clock jump ahead.
fn polling(min: u64, max: u64) -> HostConfig {
    HostConfig {
        eval_inline: true,
        sweep_interval: Duration::from_secs(24 * 3600),
        polling: PollingConfig {
            min_delay: Duration::from_secs(min),
            max_delay: Duration::from_secs(max),
            watch: false,
            ..PollingConfig::default()
        },
        ..HostConfig::default()
    }
}

fn revision(h: &Host, tenant: &str) -> Option<String> {
    h.tenant(tenant).and_then(|s| s.revision)
}

async fn answer(h: &Host, tenant: &str) -> serde_json::Value {
    h.decide(tenant, "data.app.answer", &Input::none())
        .await
        .unwrap()
        .result
        .unwrap()
}

// ---- instrumentation -------------------------------------------------------

/// What `Probe`s saw: each fetch (tenant, paused-clock instant) and the most
/// fetches in flight at once, per group and in all.
#[derive(Debug, Default)]
struct Log {
    fetches: Mutex<Vec<(String, Instant)>>,
    in_flight: Mutex<HashMap<String, (usize, usize)>>,
}

impl Log {
    fn fetches_of(&self, tenant: &str) -> Vec<Instant> {
        let all = self.fetches.lock().unwrap();
        all.iter()
            .filter(|(t, _)| t == tenant)
            .map(|(_, at)| *at)
            .collect()
    }
    fn count(&self) -> usize {
        self.fetches.lock().unwrap().len()
    }
    fn max_in_flight(&self, group: &str) -> usize {
        self.in_flight
            .lock()
            .unwrap()
            .get(group)
            .map_or(0, |(_, max)| *max)
    }
    fn enter(&self, groups: &[&str]) {
        let mut m = self.in_flight.lock().unwrap();
        for g in groups {
            let e = m.entry(g.to_string()).or_default();
            e.0 += 1;
            e.1 = e.1.max(e.0);
        }
    }
    fn leave(&self, groups: &[&str]) {
        let mut m = self.in_flight.lock().unwrap();
        for g in groups {
            if let Some(e) = m.get_mut(*g) {
                e.0 -= 1;
            }
        }
    }
}

/// A real source, recorded; optionally slow (the fetch holds for `hold` on
/// the paused clock, as a remote server would), named by a URL, and
/// declaring long polling.
#[derive(Debug)]
struct Probe {
    inner: Arc<dyn BundleSource>,
    tenant: String,
    location: Option<String>,
    hold: Duration,
    long_polls: bool,
    log: Arc<Log>,
}

#[async_trait::async_trait]
impl BundleSource for Probe {
    async fn fetch(&self, known: Option<&VersionTag>) -> Result<Fetched, BundleError> {
        self.log
            .fetches
            .lock()
            .unwrap()
            .push((self.tenant.clone(), Instant::now()));
        let location = self.location();
        let group = location.split('/').nth(2).unwrap_or("local").to_string();
        self.log.enter(&["all", &group]);
        tokio::time::sleep(self.hold).await;
        let fetched = self.inner.fetch(known).await;
        self.log.leave(&["all", &group]);
        fetched
    }
    fn location(&self) -> String {
        self.location
            .clone()
            .unwrap_or_else(|| self.inner.location())
    }
    fn long_polls(&self) -> bool {
        self.long_polls
    }
}

/// Tenant `t` reads the directory `root/t`, through a `Probe`.
struct Probes {
    root: PathBuf,
    log: Arc<Log>,
    hold: Duration,
    long_polls: bool,
    /// Remote hosts to name sources after, round robin by tenant number.
    hosts: Vec<&'static str>,
}

impl std::fmt::Debug for Probes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Probes").field("root", &self.root).finish()
    }
}

impl SourceFactory for Probes {
    fn source(&self, tenant: &str) -> Arc<dyn BundleSource> {
        let n: usize = tenant
            .trim_start_matches(|c: char| !c.is_ascii_digit())
            .parse()
            .unwrap_or(0);
        let location = (!self.hosts.is_empty()).then(|| {
            format!(
                "http://{}/bundles/{tenant}",
                self.hosts[n % self.hosts.len()]
            )
        });
        Arc::new(Probe {
            inner: Arc::new(DirectorySource::new(
                self.root.join(tenant),
                Limits::default(),
            )),
            tenant: tenant.to_string(),
            location,
            hold: self.hold,
            long_polls: self.long_polls,
            log: self.log.clone(),
        })
    }
}

struct Fixture {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    log: Arc<Log>,
}

fn fixture(tenants: &[String]) -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().to_path_buf();
    for t in tenants {
        write_bundle(&root.join(t), &format!("{t}-1"), "one");
    }
    Fixture {
        _tmp: tmp,
        root,
        log: Arc::new(Log::default()),
    }
}

fn probes(f: &Fixture) -> Probes {
    Probes {
        root: f.root.clone(),
        log: f.log.clone(),
        hold: Duration::ZERO,
        long_polls: false,
        hosts: Vec::new(),
    }
}

fn names(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}{i}")).collect()
}

// ---- the scheduler (paused clock) -------------------------------------------

#[tokio::test(start_paused = true)]
async fn a_changed_bundle_directory_is_picked_up_by_polling_without_a_reload() {
    let f = fixture(&names("a", 1));
    let h = Host::new(polling(10, 20), Arc::new(probes(&f)));
    let _lease = h.acquire("a0").unwrap();
    assert_eq!(answer(&h, "a0").await, json!("one"));
    let started = Instant::now();
    let snap = h.tenant("a0").unwrap();
    let next = snap.next_fetch.expect("a poll is scheduled");
    let ahead = next.duration_since(SystemTime::now()).unwrap_or_default();
    assert!(
        ahead > Duration::from_secs(9) && ahead <= Duration::from_secs(20),
        "{ahead:?}"
    );

    write_bundle(&f.root.join("a0"), "a0-2", "two");
    // Before min_delay nothing fetches; by max_delay the change is active.
    tokio::time::sleep_until(started + Duration::from_secs(10) - Duration::from_millis(1)).await;
    assert_eq!(revision(&h, "a0").as_deref(), Some("a0-1"));
    assert_eq!(f.log.count(), 1);
    tokio::time::sleep_until(started + Duration::from_secs(20)).await;
    tokio::time::sleep(Duration::from_millis(1)).await;
    assert_eq!(revision(&h, "a0").as_deref(), Some("a0-2"));
    assert_eq!(answer(&h, "a0").await, json!("two"));
    let snap = h.tenant("a0").unwrap();
    assert!(snap.last_error.is_none());
    assert!(snap.next_fetch.is_some());

    // Unchanged afterwards: polls answer not modified, nothing recompiles.
    let compiles = h.stats().compiles;
    tokio::time::sleep(Duration::from_secs(200)).await;
    let polls = f.log.count();
    assert!(
        (11..=23).contains(&polls),
        "{polls} fetches in 220 s at 10-20 s"
    );
    assert_eq!(h.stats().compiles, compiles);
}

#[tokio::test(start_paused = true)]
async fn polls_of_a_hundred_tenants_spread_over_min_to_max_delay() {
    let tenants = names("t", 100);
    let f = fixture(&tenants);
    let h = Host::new(polling(60, 120), Arc::new(probes(&f)));
    let _leases: Vec<_> = tenants.iter().map(|t| h.acquire(t).unwrap()).collect();
    for t in &tenants {
        assert_eq!(answer(&h, t).await, json!("one"));
    }
    tokio::time::sleep(Duration::from_secs(125)).await;
    // Every tenant polled once more, between 60 and 120 s after its first
    // fetch, and the polls spread over that window (six 10 s buckets, none
    // empty: an empty one has odds of about 1e-7 with uniform delays).
    let mut buckets = [0usize; 6];
    for t in &tenants {
        let at = f.log.fetches_of(t);
        // (A third poll is possible for the tenants loaded first.)
        assert!(at.len() >= 2, "{t}: {at:?}");
        let gap = at[1] - at[0];
        assert!(
            gap >= Duration::from_secs(60) && gap <= Duration::from_secs(120),
            "{t}: {gap:?}"
        );
        buckets[((gap.as_secs_f64() - 60.0) / 10.0).min(5.0) as usize] += 1;
    }
    assert!(buckets.iter().all(|&n| n > 0), "{buckets:?}");
    assert!(buckets.iter().all(|&n| n < 40), "{buckets:?}");
}

#[tokio::test(start_paused = true)]
async fn failures_back_off_exponentially_and_recover() {
    let f = fixture(&[]);
    write_bundle(&f.root.join("bad"), "bad-1", "one");
    std::fs::write(
        f.root.join("bad/policy.rego"),
        "package app\n\nallow if {\n",
    )
    .unwrap();
    let config = HostConfig {
        eval_inline: true,
        retry_initial: Duration::from_secs(1),
        retry_max: Duration::from_secs(60),
        // Polling every second would fetch 600 times in the window below.
        ..polling(1, 1)
    };
    let h = Host::new(config, Arc::new(probes(&f)));
    let _lease = h.acquire("bad").unwrap();
    tokio::time::sleep(Duration::from_secs(600)).await;
    let at = f.log.fetches_of("bad");
    // Gap k is retry_initial * 2^(k-1), capped at retry_max, times [0.5, 1.5).
    for (k, pair) in at.windows(2).enumerate() {
        let gap = (pair[1] - pair[0]).as_secs_f64();
        let base = (2f64.powi(k as i32)).min(60.0);
        assert!(
            gap >= base * 0.5 - 1e-6 && gap < base * 1.5 + 1e-6,
            "gap {k}: {gap} s, base {base} s"
        );
    }
    assert!((8..=30).contains(&at.len()), "{} fetches", at.len());
    let snap = h.tenant("bad").unwrap();
    assert_eq!(snap.state, InstanceState::Failed);
    assert_eq!(snap.consecutive_failures as usize, at.len());

    // Fixed: the next retry activates it, and polling goes back to its
    // normal delay (every second here).
    write_bundle(&f.root.join("bad"), "bad-2", "two");
    tokio::time::sleep(Duration::from_secs(91)).await;
    assert_eq!(revision(&h, "bad").as_deref(), Some("bad-2"));
    let before = f.log.count();
    tokio::time::sleep(Duration::from_secs(10)).await;
    let polls = f.log.count() - before;
    assert!((9..=11).contains(&polls), "{polls} polls in 10 s at 1 s");
}

#[tokio::test(start_paused = true)]
async fn a_collected_instance_is_no_longer_polled() {
    let f = fixture(&names("c", 2));
    let h = Host::new(
        HostConfig {
            eval_inline: true,
            grace_period: Duration::from_secs(30),
            ..polling(5, 5)
        },
        Arc::new(probes(&f)),
    );
    let gone = h.acquire("c0").unwrap();
    let _kept = h.acquire("c1").unwrap();
    assert_eq!(answer(&h, "c0").await, json!("one"));
    assert_eq!(answer(&h, "c1").await, json!("one"));
    drop(gone);
    tokio::time::sleep(Duration::from_secs(31)).await;
    h.sweep();
    assert!(h.tenant("c0").is_none());
    let before = f.log.fetches_of("c0").len();
    tokio::time::sleep(Duration::from_secs(300)).await;
    assert_eq!(
        f.log.fetches_of("c0").len(),
        before,
        "collected c0 was polled"
    );
    // The other tenant kept being polled every 5 s...
    let polled = f.log.fetches_of("c1").len();
    assert!(polled >= 60, "{polled}");
    // ...until the host is dropped: the scheduler holds it only weakly and
    // stops with it.
    drop(_kept);
    drop(h);
    tokio::time::sleep(Duration::from_secs(300)).await;
    assert_eq!(f.log.fetches_of("c1").len(), polled);
}

#[tokio::test(start_paused = true)]
async fn loads_are_bounded_per_remote_host_and_in_all() {
    let tenants = names("r", 40);
    let f = fixture(&tenants);
    let sources = Probes {
        hold: Duration::from_secs(2),
        hosts: vec!["bundles-a:8181", "bundles-b:8181"],
        ..probes(&f)
    };
    let config = HostConfig {
        eval_inline: true,
        load_concurrency: 100,
        polling: PollingConfig {
            load_concurrency_per_host: 3,
            ..polling(60, 60).polling
        },
        ..polling(60, 60)
    };
    let h = Host::new(config, Arc::new(sources));
    let _leases: Vec<_> = tenants.iter().map(|t| h.acquire(t).unwrap()).collect();
    tokio::time::sleep(Duration::from_secs(200)).await;
    for t in &tenants {
        assert_eq!(revision(&h, t).as_deref(), Some(format!("{t}-1").as_str()));
    }
    assert_eq!(f.log.max_in_flight("bundles-a:8181"), 3);
    assert_eq!(f.log.max_in_flight("bundles-b:8181"), 3);
    assert_eq!(f.log.max_in_flight("all"), 6);

    // The host-wide bound applies on top.
    let f = fixture(&tenants);
    let sources = Probes {
        hold: Duration::from_secs(2),
        hosts: vec!["bundles-a:8181", "bundles-b:8181"],
        ..probes(&f)
    };
    let config = HostConfig {
        eval_inline: true,
        load_concurrency: 4,
        polling: PollingConfig {
            load_concurrency_per_host: 100,
            ..polling(60, 60).polling
        },
        ..polling(60, 60)
    };
    let h = Host::new(config, Arc::new(sources));
    let _leases: Vec<_> = tenants.iter().map(|t| h.acquire(t).unwrap()).collect();
    tokio::time::sleep(Duration::from_secs(200)).await;
    assert_eq!(
        h.tenants().iter().filter(|s| s.revision.is_some()).count(),
        40
    );
    assert_eq!(f.log.max_in_flight("all"), 4);
}

#[tokio::test(start_paused = true)]
async fn long_polling_sources_are_fetched_again_at_once_but_never_in_a_hot_loop() {
    // A server that holds each request for 30 s: fetched back to back.
    let f = fixture(&names("l", 1));
    let sources = Probes {
        hold: Duration::from_secs(30),
        long_polls: true,
        ..probes(&f)
    };
    let h = Host::new(polling(60, 120), Arc::new(sources));
    let _lease = h.acquire("l0").unwrap();
    tokio::time::sleep(Duration::from_secs(300)).await;
    let n = f.log.count();
    assert!(
        (9..=11).contains(&n),
        "{n} long polls in 300 s of 30 s each"
    );

    // One that claims long polling but answers at once: once a second.
    let f = fixture(&names("l", 1));
    let sources = Probes {
        long_polls: true,
        ..probes(&f)
    };
    let h = Host::new(polling(60, 120), Arc::new(sources));
    let _lease = h.acquire("l0").unwrap();
    tokio::time::sleep(Duration::from_secs(30)).await;
    let n = f.log.count();
    assert!((29..=32).contains(&n), "{n} fetches in 30 s");
}

#[tokio::test(start_paused = true)]
async fn with_polling_off_a_tenant_is_fetched_until_it_activates_and_then_only_on_request() {
    let f = fixture(&[]);
    let config = HostConfig {
        eval_inline: true,
        polling: PollingConfig {
            enabled: false,
            ..polling(1, 1).polling
        },
        ..polling(1, 1)
    };
    let h = Host::new(config, Arc::new(probes(&f)));
    let _lease = h.acquire("p0").unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    write_bundle(&f.root.join("p0"), "p0-1", "one");
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(revision(&h, "p0").as_deref(), Some("p0-1"));
    let n = f.log.count();
    tokio::time::sleep(Duration::from_secs(600)).await;
    assert_eq!(f.log.count(), n);
    assert!(h.tenant("p0").unwrap().next_fetch.is_none());
    write_bundle(&f.root.join("p0"), "p0-2", "two");
    assert_eq!(h.reload("p0").await.unwrap().as_deref(), Some("p0-2"));
}

// ---- file watching (real time) ----------------------------------------------

/// Polling every hour and first-load retries every hour: within a test's
/// minute, only the watcher can explain a fetch.
fn watching() -> HostConfig {
    HostConfig {
        eval_inline: true,
        sweep_interval: Duration::from_secs(24 * 3600),
        retry_initial: Duration::from_secs(3600),
        retry_max: Duration::from_secs(3600),
        polling: PollingConfig {
            min_delay: Duration::from_secs(3600),
            max_delay: Duration::from_secs(7200),
            watch: true,
            watch_debounce: Duration::from_millis(50),
            ..PollingConfig::default()
        },
        ..HostConfig::default()
    }
}

/// Waits until `check` holds, up to a generous deadline.
async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !check() {
        assert!(
            std::time::Instant::now() < deadline,
            "{what}: not within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn snapshot(h: &Host, tenant: &str) -> TenantSnapshot {
    h.tenant(tenant).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn editing_a_watched_directory_activates_the_new_revision_without_polling() {
    let tmp = tempfile::tempdir().unwrap();
    // Each tenant's bundle is the directory `bundles/<tenant>/current`.
    let root = tmp.path().join("bundles");
    write_bundle(&root.join("w/current"), "w-1", "one");
    let template = SourceTemplate::new(
        format!("{}/{{tenant}}/current", root.display()),
        Limits::default(),
    )
    .unwrap();
    let h = Host::new(watching(), Arc::new(template));
    let _lease = h.acquire("w").unwrap();
    assert_eq!(answer(&h, "w").await, json!("one"));

    // An edit in place.
    write_bundle(&root.join("w/current"), "w-2", "two");
    eventually("edited directory activates", || {
        revision(&h, "w").as_deref() == Some("w-2")
    })
    .await;
    assert_eq!(answer(&h, "w").await, json!("two"));

    // A bundle directory that does not exist yet, in a parent that does
    // not exist yet either (its first fetch fails; the retry is an hour
    // away): both appear by a rename.
    let _late = h.acquire("late").unwrap();
    eventually("the first fetch of the missing bundle fails", || {
        snapshot(&h, "late").state == InstanceState::Failed
    })
    .await;
    let deep = tmp.path().join("elsewhere");
    write_bundle(&deep.join("late/current"), "late-1", "one");
    std::fs::rename(deep.join("late"), root.join("late")).unwrap();
    eventually("directory created later activates", || {
        revision(&h, "late").as_deref() == Some("late-1")
    })
    .await;

    // The directory replaced whole by a rename (the old one moved away).
    write_bundle(&deep.join("w-next"), "w-3", "three");
    std::fs::rename(root.join("w/current"), deep.join("w-old")).unwrap();
    std::fs::rename(deep.join("w-next"), root.join("w/current")).unwrap();
    eventually("replaced directory activates", || {
        revision(&h, "w").as_deref() == Some("w-3")
    })
    .await;
    // ...and the new directory is watched in turn.
    write_bundle(&root.join("w/current"), "w-4", "four");
    eventually("edit in the replaced directory activates", || {
        revision(&h, "w").as_deref() == Some("w-4")
    })
    .await;
    assert_eq!(answer(&h, "w").await, json!("four"));
}

/// A watched directory edited by its first fetch, right after that fetch
/// read it: the edit lands while the watcher may still be arming the
/// watches (they are armed beside the first load, not before it).
#[derive(Debug)]
struct EditedAfterFirstRead {
    dir: PathBuf,
    edited: std::sync::atomic::AtomicBool,
}

#[async_trait::async_trait]
impl BundleSource for EditedAfterFirstRead {
    async fn fetch(&self, known: Option<&VersionTag>) -> Result<Fetched, BundleError> {
        let fetched = DirectorySource::new(&self.dir, Limits::default())
            .fetch(known)
            .await;
        if !self.edited.swap(true, std::sync::atomic::Ordering::SeqCst) {
            write_bundle(&self.dir, "e-2", "two");
        }
        fetched
    }
    fn location(&self) -> String {
        self.dir.display().to_string()
    }
    fn watch_path(&self) -> Option<PathBuf> {
        Some(self.dir.clone())
    }
}

#[derive(Debug)]
struct EditedSources(PathBuf);

impl SourceFactory for EditedSources {
    fn source(&self, tenant: &str) -> Arc<dyn BundleSource> {
        Arc::new(EditedAfterFirstRead {
            dir: self.0.join(tenant),
            edited: Default::default(),
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_right_after_the_first_read_of_a_watched_directory_is_seen() {
    let tmp = tempfile::tempdir().unwrap();
    for tenant in ["e0", "e1", "e2", "e3"] {
        write_bundle(&tmp.path().join(tenant), "e-1", "one");
    }
    let h = Host::new(
        watching(),
        Arc::new(EditedSources(tmp.path().to_path_buf())),
    );
    let _leases: Vec<_> = ["e0", "e1", "e2", "e3"]
        .iter()
        .map(|t| h.acquire(t).unwrap())
        .collect();
    // Polling is an hour away: the watcher (an event, or the poll it asks
    // for when the first fetch began before its watches were armed) is the
    // only way to the edited revision.
    for tenant in ["e0", "e1", "e2", "e3"] {
        eventually("the edit after the first read activates", || {
            revision(&h, tenant).as_deref() == Some("e-2")
        })
        .await;
        assert_eq!(answer(&h, tenant).await, json!("two"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_half_written_archive_is_rejected_and_the_complete_one_activates() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("archives");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("arc.tar.gz");
    std::fs::write(&file, archive(tmp.path(), "arc-1")).unwrap();
    let template = SourceTemplate::new(
        format!("{}/{{tenant}}.tar.gz", dir.display()),
        Limits::default(),
    )
    .unwrap();
    let h = Host::new(watching(), Arc::new(template));
    let _lease = h.acquire("arc").unwrap();
    assert_eq!(answer(&h, "arc").await, json!("arc-1"));

    // Half the bytes of the next revision: rejected, the old one serves.
    let next = archive(tmp.path(), "arc-2");
    std::fs::write(&file, &next[..next.len() / 2]).unwrap();
    eventually("the truncated archive is fetched and rejected", || {
        snapshot(&h, "arc").last_error.is_some()
    })
    .await;
    assert_eq!(revision(&h, "arc").as_deref(), Some("arc-1"));
    assert_eq!(answer(&h, "arc").await, json!("arc-1"));

    // The rest arrives: the complete archive activates.
    std::fs::write(&file, &next).unwrap();
    eventually("the complete archive activates", || {
        revision(&h, "arc").as_deref() == Some("arc-2")
    })
    .await;
    assert!(snapshot(&h, "arc").last_error.is_none());

    // An editor's save: a temporary file renamed over the archive.
    let tmp_file = dir.join(".arc.tar.gz.swp");
    std::fs::write(&tmp_file, archive(tmp.path(), "arc-3")).unwrap();
    std::fs::rename(&tmp_file, &file).unwrap();
    eventually("the renamed-over archive activates", || {
        revision(&h, "arc").as_deref() == Some("arc-3")
    })
    .await;
    assert_eq!(answer(&h, "arc").await, json!("arc-3"));
}

// ---- persistence --------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_persisted_bundle_serves_after_a_restart_while_the_source_is_gone() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, persist) = (tmp.path().join("archives"), tmp.path().join("persist"));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("keep.tar.gz");
    std::fs::write(&file, archive(tmp.path(), "keep-1")).unwrap();
    let template = Arc::new(
        SourceTemplate::new(
            format!("{}/{{tenant}}.tar.gz", dir.display()),
            Limits::default(),
        )
        .unwrap(),
    );
    let config = HostConfig {
        eval_inline: true,
        persist_dir: Some(persist.clone()),
        retry_initial: Duration::from_millis(100),
        retry_max: Duration::from_millis(200),
        ..watching()
    };

    let first = Host::new(config.clone(), template.clone());
    let lease = first.acquire("keep").unwrap();
    assert_eq!(answer(&first, "keep").await, json!("keep-1"));
    eventually("the bundle is persisted", || {
        persist.join("keep/meta.json").exists()
    })
    .await;
    assert!(persist.join("keep/bundle.tar.gz").exists());
    drop(lease);
    drop(first);

    // Restart with the source gone: the persisted revision serves and the
    // status reports the failed fetch.
    std::fs::remove_file(&file).unwrap();
    let second = Host::new(config.clone(), template.clone());
    let _lease = second.acquire("keep").unwrap();
    assert_eq!(answer(&second, "keep").await, json!("keep-1"));
    // (The error is recorded right after the activation that woke us.)
    eventually("the failed fetch is reported", || {
        snapshot(&second, "keep").last_error.is_some()
    })
    .await;
    let snap = snapshot(&second, "keep");
    assert_eq!(snap.state, InstanceState::Active);
    assert_eq!(snap.revision.as_deref(), Some("keep-1"));
    let error = snap.last_error.expect("the fetch error is reported");
    assert!(error.contains("keep.tar.gz"), "{error}");
    assert!(snap.consecutive_failures >= 1);

    // The source comes back with a new revision: fetching continues (the
    // failure is retried) and it replaces the persisted one.
    std::fs::write(&file, archive(tmp.path(), "keep-2")).unwrap();
    eventually(
        "the source's new revision replaces the persisted one",
        || revision(&second, "keep").as_deref() == Some("keep-2"),
    )
    .await;
    assert!(snapshot(&second, "keep").last_error.is_none());
    eventually("the new revision is persisted", || {
        std::fs::read_to_string(persist.join("keep/meta.json")).is_ok_and(|m| m.contains("keep-2"))
    })
    .await;

    // Without a persisted copy a failing tenant does not activate.
    let third = Host::new(
        HostConfig {
            eval_inline: true,
            persist_dir: Some(tmp.path().join("empty")),
            ..config
        },
        template,
    );
    let _other = third.acquire("other").unwrap();
    let err = third
        .decide("other", "data.app.answer", &Input::none())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), "tenant_not_found", "{err}");
}
