//! What `tenet serve` starts besides the servers: the process log and the
//! span exporter, the restore of pushed content, the decision-log and
//! status upload loops, and the watchdog that ends a process whose drain
//! cannot finish. Glue over the library crates, like `cli`.

use anyhow::{Context, Result};
use std::time::Duration;
use tenet_server::config::Config;

/// The process log (stderr, `RUST_LOG`, info by default) and, with
/// `traces.otlp_endpoint`, the span exporter; what must be shut down to
/// flush the last spans.
#[cfg(feature = "otlp")]
pub(crate) fn logging(
    config: &tenet_server::config::Config,
    runtime: &tokio::runtime::Runtime,
) -> Result<Option<tenet_telemetry::traces::Traces>> {
    use tracing_subscriber::prelude::*;
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        );
    let Some(endpoint) = &config.traces.otlp_endpoint else {
        tracing_subscriber::registry().with(fmt).init();
        return Ok(None);
    };
    let otlp = tenet_telemetry::traces::OtlpConfig {
        endpoint: endpoint.clone(),
        service_name: config.traces.service_name.clone(),
        export_interval: Duration::from_millis(config.traces.export_interval_ms.max(10)),
        ..Default::default()
    };
    // The gRPC channel is created on the runtime, which drives it.
    let _runtime = runtime.enter();
    let (traces, layer) = tenet_telemetry::traces::Traces::start(&otlp)?;
    // Requests and loads at info, decisions (debug spans in tenet-host)
    // too; nothing else of the crates' debug output.
    let spans = tracing_subscriber::filter::Targets::new()
        .with_default(tracing::Level::INFO)
        .with_target("tenet::decision_span", tracing::Level::DEBUG);
    tracing_subscriber::registry()
        .with(fmt)
        .with(layer.with_filter(spans))
        .init();
    tracing::info!(%endpoint, "exporting traces over OTLP");
    Ok(Some(traces))
}

/// The process log (stderr, `RUST_LOG`, info by default); this build has
/// no span exporter.
#[cfg(not(feature = "otlp"))]
pub(crate) fn logging(_: &tenet_server::config::Config, _: &tokio::runtime::Runtime) -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    Ok(())
}

/// Pushes the content persisted by the last run again (`host.persist_pushed`)
/// before the first request is served, so a client never sees a tenant
/// without what it pushed. A tenant that fails is logged and skipped; its
/// file stays for the next start.
pub(crate) async fn restore_pushed(host: &tenet::Host) {
    let started = std::time::Instant::now();
    let restored = host.restore_pushed().await;
    if restored.is_empty() {
        return;
    }
    let mut failed = 0;
    for (tenant, result) in &restored {
        if let Err(e) = result {
            failed += 1;
            tracing::error!(tenant = %tenant, error = %e, "cannot restore pushed content");
        }
    }
    tracing::info!(
        tenants = restored.len(),
        failed,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "restored pushed content"
    );
}

/// How long the last decision-log upload may take at shutdown.
pub(crate) const DECISION_LOG_FLUSH: Duration = Duration::from_secs(3);

/// A running decision-log upload: the buffers, the client, where to, and
/// the upload loop.
pub(crate) type Uploads = (
    tenet_telemetry::DecisionLogs,
    tenet_source::HttpClient,
    tenet_telemetry::UploadConfig,
    tokio::task::JoinHandle<()>,
);

/// With `decision_logs.service` or `decision_logs.file`, the recorder in
/// `state`; with the service, the buffers and their upload loop; events carry OPA's labels (`id` of this process,
/// `version`, the configured labels, and the tenant).
pub(crate) fn start_decision_logs(
    config: &Config,
    file: &str,
    state: &mut tenet_server::AppState,
) -> Result<Option<Uploads>> {
    let mut labels = serde_json::Map::new();
    labels.insert("id".into(), uuid::Uuid::new_v4().to_string().into());
    labels.insert("version".into(), env!("CARGO_PKG_VERSION").into());
    for (k, v) in &config.host.labels {
        labels.insert(k.clone(), v.clone().into());
    }
    let service = config.decision_log_upload(file)?;
    let sink = match &config.decision_logs.file {
        Some(f) => Some(
            tenet_telemetry::FileSink::start(tenet_telemetry::FileSinkConfig {
                path: f.path.clone(),
                max_bytes: f.max_bytes.max(1),
                max_files: f.max_files.max(1),
            })
            .with_context(|| format!("decision_logs.file.path {}", f.path.display()))?,
        ),
        None => None,
    };
    if service.is_none() && sink.is_none() {
        return Ok(None);
    }
    let logs = tenet_telemetry::DecisionLogs::new(config.decision_log_buffers());
    let options = tenet_telemetry::RecorderOptions {
        upload: service.is_some(),
        file: sink,
        masks: config.decision_logs.mask.clone(),
    };
    if let Some(f) = &config.decision_logs.file {
        tracing::info!(path = %f.path.display(), "writing decision logs to a file");
    }
    state.decision_logs = Some(tenet_telemetry::Recorder::start_with(
        logs.clone(),
        labels,
        std::sync::Arc::new(tenet_server::decision_log::HostLogRules(state.host.clone())),
        options,
    ));
    let Some((http, upload)) = service else {
        return Ok(None);
    };
    let client = tenet_source::HttpClient::new(&http, tenet::Limits::default())
        .context("decision_logs.service")?;
    upload.url_for("tenant").context("decision_logs.service")?;
    let task = logs.start_upload(client.clone(), upload.clone());
    tracing::info!(url = %upload.url, resource = %upload.resource, "uploading decision logs");
    Ok(Some((logs, client, upload, task)))
}

/// With `status.service`, the loop that uploads each tenant's status
/// report when what it says changed, once per `status.interval_seconds`.
pub(crate) fn start_status(
    config: &Config,
    file: &str,
    host: &tenet::Host,
    logs: Option<tenet_telemetry::DecisionLogs>,
) -> Result<Option<tokio::task::JoinHandle<()>>> {
    let Some((http, status)) = config.status_upload(file)? else {
        return Ok(None);
    };
    let client =
        tenet_source::HttpClient::new(&http, tenet::Limits::default()).context("status.service")?;
    status.url_for("tenant").context("status.service")?;
    tracing::info!(url = %status.url, resource = %status.resource, "uploading status reports");
    let host = host.clone();
    Ok(Some(tokio::spawn(async move {
        let uploads = tenet_telemetry::StatusUploads::new();
        let mut every = tokio::time::interval(status.interval);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            let reports = tenet_server::status::reports(&host, logs.as_ref());
            uploads.round(&client, &status, reports).await;
        }
    })))
}

/// How long past the drain deadline the watchdog waits before it ends the
/// process.
pub(crate) const WATCHDOG_MARGIN: Duration = Duration::from_secs(5);

/// Ends the process with status 1 if it is still running `after` from now.
/// The drain deadline is kept by the runtime; this is the backstop for a
/// runtime that cannot make progress (every worker thread blocked in
/// synchronous code, a bug), which only a thread outside it can catch.
pub(crate) fn exit_after(after: Duration) {
    let spawned = std::thread::Builder::new()
        .name("tenet-shutdown-watchdog".into())
        .spawn(move || {
            std::thread::sleep(after);
            eprintln!(
                "error: still running {} after the shutdown signal; exiting",
                humantime::format_duration(after)
            );
            std::process::exit(1);
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "cannot start the shutdown watchdog");
    }
}
