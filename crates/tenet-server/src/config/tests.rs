//! The configuration's defaults, overrides and errors.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
use super::*;

fn write(text: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    std::io::Write::write_all(&mut f, text.as_bytes()).unwrap();
    f
}

#[test]
fn defaults_serve_the_examples() {
    let c = Config::load(None, []).unwrap();
    assert_eq!(c.server.addr, "127.0.0.1:8181");
    assert_eq!(c.bundle_template(), "examples/bundles/{tenant}");
    assert!(c.host.on_demand);
    // docs/config.md states these; the serve stack's own defaults agree.
    let serve = crate::ServeOptions::default();
    assert_eq!(c.server.http2_keep_alive_interval_seconds, 10);
    assert_eq!(c.server.http2_keep_alive_timeout_seconds, 10);
    assert_eq!(c.server.http2_idle_timeout_seconds, 60);
    assert_eq!(
        serve.http2_idle_timeout.as_secs(),
        c.server.http2_idle_timeout_seconds
    );
    assert_eq!(
        serve.http2_keep_alive_interval.as_secs(),
        c.server.http2_keep_alive_interval_seconds
    );
    assert_eq!(
        serve.http2_keep_alive_timeout.as_secs(),
        c.server.http2_keep_alive_timeout_seconds
    );
    let env = [(
        "TENET_SERVER__HTTP2_IDLE_TIMEOUT_SECONDS".to_string(),
        "0".to_string(),
    )];
    assert_eq!(
        Config::load(None, env)
            .unwrap()
            .server
            .http2_idle_timeout_seconds,
        0
    );
}

/// The size limits of #10 findings 2–5, with the defaults docs/config.md
/// states, set by file and by environment.
#[test]
fn size_limits_have_their_documented_defaults() {
    let c = Config::load(None, []).unwrap();
    assert_eq!(c.server.max_body_bytes, 10 << 20);
    assert_eq!(c.server.max_batch_inputs, 10_000);
    assert_eq!(c.server.max_batch_bytes, 64 << 20);
    assert_eq!(c.server.max_result_bytes, 64 << 20);
    assert_eq!(c.server.max_print_bytes, 1 << 20);
    let f = write("server:\n  max_batch_inputs: 5\n  max_result_bytes: 1000\n");
    let env = [(
        "TENET_SERVER__MAX_BATCH_BYTES".to_string(),
        "4096".to_string(),
    )];
    let c = Config::load(Some(f.path()), env).unwrap();
    assert_eq!(
        (
            c.server.max_batch_inputs,
            c.server.max_batch_bytes,
            c.server.max_result_bytes
        ),
        (5, 4096, 1000)
    );
}

/// The gRPC front end is off by default; `grpc:` and `TENET_GRPC__*`
/// set it, and its errors name their key.
#[test]
fn grpc_is_off_by_default_and_configured_by_file_and_environment() {
    let c = Config::load(None, []).unwrap();
    assert_eq!(c.grpc, tenet_grpc::GrpcConfig::default());
    assert_eq!(c.grpc.listen, None);
    // Slow and dead peers are bounded by default.
    assert_eq!(
        (
            c.grpc.call_timeout_seconds,
            c.grpc.keep_alive_interval_seconds,
            c.grpc.keep_alive_timeout_seconds
        ),
        (30, 60, 20)
    );
    let f = write(
        "grpc:\n  listen: 127.0.0.1:9191\n  ext_authz:\n    tenant_from:\n      - header: x-tenant-id\n    dry_run: true\n",
    );
    let env = [
        (
            "TENET_GRPC__EXT_AUTHZ__DEFAULT_TENANT".to_string(),
            "1234".to_string(),
        ),
        (
            "TENET_GRPC__EXT_AUTHZ__PATH".to_string(),
            "acme/authz/allow".to_string(),
        ),
    ];
    let c = Config::load(Some(f.path()), env).unwrap();
    assert_eq!(c.grpc.listen.as_deref(), Some("127.0.0.1:9191"));
    assert!(c.grpc.ext_authz.dry_run);
    assert_eq!(
        c.grpc.ext_authz.tenant_from,
        vec![tenet_grpc::TenantSource::Header("x-tenant-id".into())]
    );
    assert_eq!(c.grpc.ext_authz.default_tenant.as_deref(), Some("1234"));
    assert_eq!(c.grpc.ext_authz.path, "acme/authz/allow");
    let f = write("grpc:\n  ext_authz:\n    default_tenant: ../x\n");
    let e = Config::load(Some(f.path()), []).unwrap_err().to_string();
    assert!(e.contains("grpc.ext_authz.default_tenant"), "{e}");
    let f = write("grpc:\n  ext_authz:\n    dryrun: true\n");
    let e = Config::load(Some(f.path()), []).unwrap_err().to_string();
    assert!(e.contains("unknown field `dryrun`"), "{e}");
}

#[test]
fn grpc_ports_tls_and_porc_are_read_and_checked() {
    let c = Config::load(None, []).unwrap();
    assert!(!c.grpc.on_rest_port && c.grpc.tls.is_none() && c.grpc.reflection);
    assert_eq!(c.porc.config(), crate::authzen::PorcConfig::default());
    let f = write(
        "grpc:\n  on_rest_port: true\n  listen: 127.0.0.1:0\n  tls:\n    cert_file: c.pem\n    private_key_file: k.pem\n  decisions:\n    max_in_flight: 8\nporc:\n  path: /acme/porc/\n  input: authzen\n",
    );
    let c = Config::load(Some(f.path()), []).unwrap();
    assert!(c.grpc.on_rest_port);
    assert_eq!(c.grpc.decisions.max_in_flight, 8);
    assert_eq!(
        c.grpc.tls.as_ref().map(|t| t.private_key_file.clone()),
        Some("k.pem".into())
    );
    let porc = c.porc.config();
    assert_eq!(porc.path, "acme/porc");
    assert_eq!(porc.input, crate::authzen::PorcInput::Authzen);
    for (bad, key) in [
        ("porc:\n  path: a b.c\n", "porc.path"),
        (
            "authzen:\n  tenant_paths:\n    x: a b.c\n",
            "authzen.tenant_paths.x",
        ),
        (
            "grpc:\n  tls:\n    cert_file: c\n    private_key_file: k\n",
            "grpc.tls",
        ),
    ] {
        let f = write(bad);
        let e = Config::load(Some(f.path()), []).unwrap_err().to_string();
        assert!(e.contains(key), "{bad}: {e}");
    }
    let f = write("porc:\n  input: yaml\n");
    assert!(Config::load(Some(f.path()), []).is_err());
}

#[test]
fn file_and_environment_combine() {
    let f = write(
        "server:\n  addr: 0.0.0.0:9000\nhost:\n  grace_period_seconds: 5\nservices:\n  acme:\n    url: http://b.example/\nbundles:\n  service: acme\n  resource: bundles/{tenant}.tar.gz\n",
    );
    let env = [
        (
            "TENET_HOST__GRACE_PERIOD_SECONDS".to_string(),
            "7".to_string(),
        ),
        (
            "TENET_DECISION_LOGS__CONSOLE".to_string(),
            "true".to_string(),
        ),
        ("TENET_ADDR".to_string(), "ignored".to_string()),
        ("HOME".to_string(), "/root".to_string()),
    ];
    let c = Config::load(Some(f.path()), env).unwrap();
    assert_eq!(c.server.addr, "0.0.0.0:9000");
    // Tokens stay strings whatever YAML would make of them.
    for token in ["~", "12345", "null", "true"] {
        let env = [("TENET_SERVER__ADMIN_TOKEN".to_string(), token.to_string())];
        let c = Config::load(None, env).unwrap();
        assert_eq!(c.server.admin_token.as_deref(), Some(token));
    }
    assert_eq!(c.host.grace_period_seconds, 7);
    assert!(c.decision_logs.console);
    assert_eq!(
        c.bundle_template(),
        "http://b.example/bundles/{tenant}.tar.gz"
    );
}

#[test]
fn errors_name_the_file_the_key_and_the_reason() {
    let f = write("host:\n  grace_period_seconds: soon\n");
    let e = Config::load(Some(f.path()), []).unwrap_err().to_string();
    assert!(e.contains(&f.path().display().to_string()), "{e}");
    assert!(e.contains("host.grace_period_seconds"), "{e}");
    assert!(e.contains("invalid type"), "{e}");

    let f = write("host:\n  decision_cache:\n    enable: true\n");
    let e = Config::load(Some(f.path()), []).unwrap_err().to_string();
    assert!(e.contains("unknown field `enable`"), "{e}");

    let f = write("sever:\n  addr: x\n");
    let e = Config::load(Some(f.path()), []).unwrap_err().to_string();
    assert!(e.contains("unknown field `sever`"), "{e}");

    let e = Config::load(
        None,
        [("TENET_HOST__MAX_INSTANCES".to_string(), "many".to_string())],
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("host.max_instances (from TENET_HOST__MAX_INSTANCES)"),
        "{e}"
    );

    let f = write("isolation:\n  level: tenant\n  tenants:\n    untrusted-*: session\n");
    let config = Config::load(Some(f.path()), []).unwrap();
    let rules = config.isolation.rules();
    assert_eq!(rules.level_of("payments"), tenet::IsolationLevel::Tenant);
    assert_eq!(
        rules.level_of("untrusted-a"),
        tenet::IsolationLevel::Session
    );
    for (yaml, key) in [
        ("isolation:\n  level: process\n", "isolation.level"),
        (
            "isolation:\n  tenants:\n    a: sandbox\n",
            "isolation.tenants.a",
        ),
        (
            "isolation:\n  tenants:\n    ../x: tenant\n",
            "isolation.tenants.../x",
        ),
        (
            "isolation:\n  level: tenant\n  workers:\n    enabled: false\n",
            "isolation.workers.enabled",
        ),
        (
            "isolation:\n  session_header: \"a b\"\n",
            "isolation.session_header",
        ),
        (
            "isolation:\n  adaptive:\n    cpu_share: 2\n",
            "isolation.adaptive.cpu_share",
        ),
    ] {
        let f = write(yaml);
        let e = Config::load(Some(f.path()), []).unwrap_err().to_string();
        assert!(e.contains(key), "{yaml}: {e}");
    }

    let f = write("bundles:\n  template: bundles/x\n");
    let e = Config::load(Some(f.path()), []).unwrap_err().to_string();
    assert!(
        e.contains("bundles.template") && e.contains("{tenant}"),
        "{e}"
    );

    let f = write("tenants: [ok, \"../etc\"]\n");
    let e = Config::load(Some(f.path()), []).unwrap_err().to_string();
    assert!(e.contains("tenants[1]"), "{e}");

    let f = write("server:\n  admin_token: \"\"\n");
    let e = Config::load(Some(f.path()), []).unwrap_err().to_string();
    assert!(e.contains("server.admin_token"), "{e}");

    let f = write("bundles:\n  service: acme\n  resource: b/{tenant}\nservices:\n  acme: {}\n");
    let e = Config::load(Some(f.path()), []).unwrap_err().to_string();
    assert!(e.contains("services.acme.url"), "{e}");

    for (yaml, key) in [
        ("decision_logs:\n  service: nope\n", "decision_logs.service"),
        (
            "decision_logs:\n  service: c\nservices:\n  c: {}\n",
            "services.c.url",
        ),
        (
            "decision_logs:\n  reporting:\n    min_delay_seconds: 9\n    max_delay_seconds: 1\n",
            "min_delay_seconds",
        ),
    ] {
        let f = write(yaml);
        let e = Config::load(Some(f.path()), []).unwrap_err().to_string();
        assert!(e.contains(key), "{e}");
    }

    let f = write("- a\n- b\n");
    assert!(Config::load(Some(f.path()), []).is_err());
    let f = write("server: [\n");
    let e = Config::load(Some(f.path()), []).unwrap_err().to_string();
    assert!(e.contains("not valid YAML"), "{e}");
}
