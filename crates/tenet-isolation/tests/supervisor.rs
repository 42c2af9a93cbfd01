//! The supervisor with real worker processes (this crate's `tenet-worker`
//! binary) behind a real host on bundle directories: decisions agree with
//! the host process, tenants and sessions get processes of their own, a
//! killed worker fails only its tenant's decisions (as unavailable) and is
//! restarted, an overrunning decision kills its worker, a worker past its
//! memory limit dies alone, and a mismatched peer is refused. Time bounds
//! here are generous upper limits, never performance assertions.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tenet_host::{Host, HostConfig, HostError, IsolationLevel, IsolationRules, SourceTemplate};
use tenet_isolation::{Supervisor, SupervisorConfig, WorkerCommand, WorkerState};
use tenet_policy::{EvalLimits, Input};

const ALLOW: &str =
    "package app\nimport rego.v1\ndefault allow := false\nallow if input.user == \"alice\"\n";
// Billions of iterations: only a deadline stops it.
const SPIN: &str = "package app\nimport rego.v1\nallow if count([1 | some a in numbers.range(1, 1000000); some b in numbers.range(1, 1000000); a == b + 7]) > 0\n";
// 1,000 strings of 15 MB: each under the builtin limits, 15 GB together.
const HUNGRY: &str = "package app\nimport rego.v1\nsmall := concat(\"\", [\"x\" | some _ in numbers.range(1, 15000)])\nbig := concat(\"\", [small | some _ in numbers.range(1, 1000)])\nallow if count([concat(\"\", [big, format_int(i, 10)]) | some i in numbers.range(1, 1000)]) > 0\n";

fn write_bundle(root: &Path, tenant: &str, rego: &str) {
    let dir = root.join(tenant);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("policy.rego"), rego).unwrap();
}

fn command() -> WorkerCommand {
    WorkerCommand {
        program: PathBuf::from(env!("CARGO_BIN_EXE_tenet-worker")),
        args: Vec::new(),
        threads: 2,
        stack_bytes: 8 << 20,
        max_memory_bytes: 0,
        max_cpu_seconds: 0,
    }
}

struct Setup {
    _tmp: tempfile::TempDir,
    host: Host,
    supervisor: Supervisor,
}

fn setup(
    bundles: &[(&str, &str)],
    levels: &[(&str, IsolationLevel)],
    configure: impl FnOnce(&mut SupervisorConfig, &mut HostConfig),
) -> Setup {
    let tmp = tempfile::tempdir().unwrap();
    for (tenant, rego) in bundles {
        write_bundle(tmp.path(), tenant, rego);
    }
    let mut host_config = HostConfig {
        on_demand: true,
        isolation: IsolationRules {
            default: IsolationLevel::None,
            tenants: levels
                .iter()
                .map(|(t, l)| (t.to_string(), *l))
                .collect::<BTreeMap<_, _>>(),
        },
        ..HostConfig::default()
    };
    let mut config = SupervisorConfig {
        command: command(),
        backoff_initial: Duration::from_millis(20),
        backoff_max: Duration::from_millis(200),
        ..SupervisorConfig::default()
    };
    configure(&mut config, &mut host_config);
    let template = format!("{}/{{tenant}}", tmp.path().display());
    let sources = SourceTemplate::new(template, Default::default()).unwrap();
    let host = Host::new(host_config, Arc::new(sources));
    let supervisor = Supervisor::new(config, None);
    assert!(supervisor.attach(&host));
    Setup {
        _tmp: tmp,
        host,
        supervisor,
    }
}

fn input(user: &str) -> Input {
    Input::from_json(&format!(r#"{{"user": "{user}"}}"#), &EvalLimits::default()).unwrap()
}

async fn allow(
    host: &Host,
    tenant: &str,
    session: Option<&str>,
    user: &str,
) -> Result<bool, HostError> {
    let decision = host
        .decide_in_session(tenant, session, "app/allow", &input(user))
        .await?;
    Ok(decision.result == Some(serde_json::Value::Bool(true)))
}

fn pid_of(supervisor: &Supervisor, tenant: &str, session: Option<&str>) -> Option<u32> {
    supervisor
        .report()
        .workers
        .into_iter()
        .find(|w| w.tenant == tenant && w.session.as_deref() == session)
        .and_then(|w| w.pid)
}

fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .unwrap_or_default()
            .contains(") Z ")
}

fn kill(pid: u32) {
    let status = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn isolated_tenants_decide_in_their_own_process_with_the_same_answers() {
    let s = setup(
        &[("iso", ALLOW), ("shared", ALLOW)],
        &[("iso", IsolationLevel::Tenant)],
        |_, _| {},
    );
    for (tenant, user, expected) in [
        ("iso", "alice", true),
        ("iso", "bob", false),
        ("shared", "alice", true),
        ("shared", "bob", false),
    ] {
        assert_eq!(
            allow(&s.host, tenant, None, user).await.unwrap(),
            expected,
            "{tenant} {user}"
        );
    }
    let pid = pid_of(&s.supervisor, "iso", None).expect("iso has a worker");
    assert_ne!(pid, std::process::id());
    assert!(alive(pid));
    assert!(
        pid_of(&s.supervisor, "shared", None).is_none(),
        "shared stays in process"
    );
    assert_eq!(s.host.isolation("iso"), IsolationLevel::Tenant);
    s.supervisor.shutdown().await;
    tokio::time::timeout(Duration::from_secs(5), async {
        while alive(pid) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the worker exits at shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_goes_to_the_worker_in_one_request_with_each_answer_in_order() {
    // `r` conflicts (an evaluation error) when both a and b are set.
    const CONFLICT: &str =
        "package app\nimport rego.v1\nr := 1 if input.a\nr := 2 if input.b\nr := 3 if input.c\n";
    let s = setup(
        &[("iso", CONFLICT), ("shared", CONFLICT)],
        &[("iso", IsolationLevel::Tenant)],
        |_, _| {},
    );
    let inputs: Vec<Input> = (0..40)
        .map(|n| {
            let text = match n % 4 {
                0 => r#"{"a": true}"#,
                1 => r#"{"a": true, "b": true}"#,
                2 => r#"{}"#,
                _ => r#"{"c": true}"#,
            };
            Input::from_json(text, &EvalLimits::default()).unwrap()
        })
        .collect();
    let answers = |decisions: Vec<Result<tenet_host::Decision, HostError>>| -> Vec<String> {
        decisions
            .into_iter()
            .map(|d| match d {
                Ok(d) => format!("{:?}", d.result),
                Err(e) => e.kind().to_string(),
            })
            .collect()
    };
    let isolated = answers(
        s.host
            .decide_batch("iso", None, "app/r", &inputs)
            .await
            .unwrap(),
    );
    let shared = answers(
        s.host
            .decide_batch("shared", None, "app/r", &inputs)
            .await
            .unwrap(),
    );
    assert_eq!(isolated, shared, "the worker answers as the host does");
    assert_eq!(
        isolated[..4],
        [
            "Some(Number(1))",
            "evaluation_error",
            "None",
            "Some(Number(3))"
        ]
    );
    assert!(pid_of(&s.supervisor, "iso", None).is_some());
    assert_eq!(s.supervisor.report().batches, 1, "40 inputs, one request");
    // The tenant's tally counts each input.
    let counters = s.host.tenant_counters();
    let iso = counters.iter().find(|c| &*c.tenant == "iso").unwrap();
    assert_eq!(
        (iso.tally.defined, iso.tally.undefined, iso.decision_errors),
        (20, 10, 10)
    );
    // A tenant that is not there fails the batch as a whole.
    assert!(s
        .host
        .decide_batch("absent", None, "app/r", &inputs)
        .await
        .is_err());
    s.supervisor.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_get_processes_of_their_own_up_to_the_limit() {
    let s = setup(
        &[("chat", ALLOW)],
        &[("chat", IsolationLevel::Session)],
        |c, _| {
            c.max_sessions_per_tenant = 2;
        },
    );
    assert!(allow(&s.host, "chat", Some("s1"), "alice").await.unwrap());
    assert!(allow(&s.host, "chat", Some("s2"), "alice").await.unwrap());
    let (a, b) = (
        pid_of(&s.supervisor, "chat", Some("s1")).unwrap(),
        pid_of(&s.supervisor, "chat", Some("s2")).unwrap(),
    );
    assert_ne!(a, b);
    let e = allow(&s.host, "chat", Some("s3"), "alice")
        .await
        .unwrap_err();
    assert_eq!(e.kind(), "too_many_sessions", "{e}");
    s.supervisor.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_worker_fails_only_its_tenant_and_comes_back() {
    let s = setup(
        &[("iso", ALLOW), ("shared", ALLOW)],
        &[("iso", IsolationLevel::Tenant)],
        |_, _| {},
    );
    assert!(allow(&s.host, "iso", None, "alice").await.unwrap());
    for round in 0..10 {
        let pid = pid_of(&s.supervisor, "iso", None).unwrap();
        kill(pid);
        // Until it is back, iso's decisions fail as unavailable only;
        // shared's never fail.
        let back = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                assert!(allow(&s.host, "shared", None, "alice").await.unwrap());
                match allow(&s.host, "iso", None, "alice").await {
                    Ok(true) if pid_of(&s.supervisor, "iso", None) != Some(pid) => return,
                    Ok(true) => {}
                    Ok(false) => panic!("wrong answer"),
                    Err(e) => assert_eq!(e.kind(), "tenant_unavailable", "{e}"),
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await;
        assert!(back.is_ok(), "round {round}: iso did not come back");
    }
    let report = s.supervisor.report();
    let iso = report.workers.iter().find(|w| w.tenant == "iso").unwrap();
    assert_eq!(iso.state, WorkerState::Ready);
    assert!(iso.restarts >= 10, "{iso:?}");
    assert!(
        report.errors.get("crash").copied().unwrap_or(0) >= 10,
        "{report:?}"
    );
    s.supervisor.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_decision_past_its_kill_time_kills_the_worker_only() {
    let s = setup(
        &[("spin", SPIN), ("shared", ALLOW)],
        &[("spin", IsolationLevel::Tenant)],
        |c, h| {
            // The engine's own deadline and instruction cap are far away
            // (a faster VM ran into the default cap before 300 ms): the
            // kill must come from the supervisor.
            h.eval_limits.deadline = Duration::from_secs(60);
            h.eval_limits.max_instructions = usize::MAX;
            c.kill_after = Some(Duration::from_millis(300));
        },
    );
    let e = allow(&s.host, "spin", None, "alice").await.unwrap_err();
    assert_eq!(e.kind(), "timeout", "{e}");
    assert!(allow(&s.host, "shared", None, "alice").await.unwrap());
    let report = s.supervisor.report();
    assert_eq!(report.errors.get("killed_deadline"), Some(&1), "{report:?}");
    s.supervisor.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_past_its_memory_limit_dies_alone() {
    let s = setup(
        &[("hungry", HUNGRY), ("shared", ALLOW)],
        &[("hungry", IsolationLevel::Tenant)],
        |c, h| {
            // No per-evaluation budget: only the worker's limit stops it.
            h.eval_limits.max_memory_bytes = 0;
            h.eval_limits.deadline = Duration::from_secs(60);
            c.command.max_memory_bytes = 768 << 20;
        },
    );
    // The worker started (its limit leaves room for itself) and answers
    // a health check before the hungry decision.
    let e = allow(&s.host, "hungry", None, "alice").await.unwrap_err();
    assert_eq!(e.kind(), "tenant_unavailable", "{e}");
    assert!(
        e.to_string().contains("killed") || e.to_string().contains("exited"),
        "the worker died in the evaluation, not at its start: {e}"
    );
    assert!(allow(&s.host, "shared", None, "alice").await.unwrap());
    // The supervisor records the crash once it has reaped the process.
    let recorded = tokio::time::timeout(Duration::from_secs(10), async {
        while !s.supervisor.report().errors.contains_key("crash") {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert!(recorded.is_ok(), "{:?}", s.supervisor.report());
    s.supervisor.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moving_a_tenant_changes_where_its_next_decision_runs() {
    let s = setup(&[("app", ALLOW)], &[], |_, _| {});
    assert!(allow(&s.host, "app", None, "alice").await.unwrap());
    assert!(pid_of(&s.supervisor, "app", None).is_none());
    assert_eq!(
        s.host.set_isolation("app", IsolationLevel::Tenant).unwrap(),
        IsolationLevel::None
    );
    assert!(allow(&s.host, "app", None, "alice").await.unwrap());
    assert!(pid_of(&s.supervisor, "app", None).is_some());
    s.host.set_isolation("app", IsolationLevel::None).unwrap();
    assert!(!allow(&s.host, "app", None, "bob").await.unwrap());
    s.supervisor.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_is_not_a_worker_is_refused() {
    let s = setup(
        &[("iso", ALLOW)],
        &[("iso", IsolationLevel::Tenant)],
        |c, _| {
            // `sh -c 'printf …'` writes a frame-sized prefix of garbage: not
            // a hello.
            c.command.program = PathBuf::from("/bin/sh");
            c.command.args = vec![
                "-c".into(),
                "printf 'HTTP/1.1 200 OK\\r\\n\\r\\n'; sleep 5".into(),
                "sh".into(),
            ];
        },
    );
    let e = allow(&s.host, "iso", None, "alice").await.unwrap_err();
    assert_eq!(e.kind(), "tenant_unavailable", "{e}");
    assert!(e.to_string().contains("refused"), "{e}");
    s.supervisor.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_past_its_pending_bound_refuses_at_once() {
    let s = setup(
        &[("spin", SPIN)],
        &[("spin", IsolationLevel::Tenant)],
        |c, h| {
            h.eval_limits.deadline = Duration::from_millis(500);
            c.max_pending = 2;
        },
    );
    let calls: Vec<_> = (0..8)
        .map(|_| {
            let host = s.host.clone();
            tokio::spawn(async move { allow(&host, "spin", None, "alice").await })
        })
        .collect();
    let mut kinds = Vec::new();
    for call in calls {
        kinds.push(call.await.unwrap().unwrap_err().kind());
    }
    let refused = kinds.iter().filter(|k| **k == "too_many_requests").count();
    assert!(refused >= 1, "{kinds:?}");
    // The two admitted end at the deadline or the instruction cap,
    // whichever the machine reaches first.
    assert!(
        kinds.iter().all(|k| matches!(
            *k,
            "too_many_requests" | "timeout" | "instruction_limit" | "tenant_unavailable"
        )),
        "{kinds:?}"
    );
    s.supervisor.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_past_its_cpu_time_limit_is_stopped_by_the_kernel() {
    let s = setup(
        &[("spin", SPIN)],
        &[("spin", IsolationLevel::Tenant)],
        |c, h| {
            h.eval_limits.deadline = Duration::from_secs(60);
            h.eval_limits.max_instructions = usize::MAX;
            c.command.max_cpu_seconds = 1;
        },
    );
    let e = allow(&s.host, "spin", None, "alice").await.unwrap_err();
    assert_eq!(e.kind(), "tenant_unavailable", "{e}");
    // SIGXCPU (24) at the soft limit.
    assert!(e.to_string().contains("signal 24"), "{e}");
    s.supervisor.shutdown().await;
}
