//! Subcommands, named after OPA's where OPA has the same verb: `eval`,
//! `bundle inspect`, `bundle build`; `serve` is reserved for the server.
//! Results go to stdout as JSON; errors go to stderr with a non-zero exit.

use crate::start::{
    exit_after, logging, restore_pushed, start_decision_logs, start_status, DECISION_LOG_FLUSH,
    WATCHDOG_MARGIN,
};
use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use serde_json::json;
use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use tenet::{Bundle, CompileOptions, EvalLimits, Evaluator, Input, Limits, Policy, QueryPath};
use tenet_server::config::Config;

/// tenet: a multi-tenant policy decision point that speaks OPA.
#[derive(Debug, Parser)]
#[command(name = "tenet", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Evaluate a query against a bundle, like `opa eval`, and print
    /// `{"result": …}` (or `{}` when the document is undefined).
    Eval {
        /// Bundle directory or .tar.gz file.
        #[arg(short, long)]
        bundle: PathBuf,
        /// Input document: a JSON file, or `-` for stdin. Without it, `input`
        /// is undefined.
        #[arg(short, long)]
        input: Option<String>,
        /// Evaluation deadline in milliseconds.
        #[arg(long, default_value_t = 1000)]
        deadline_ms: u64,
        /// Force an evaluator (`vm` or `interpreter`); by default the RVM is
        /// used where it applies.
        #[arg(long, value_parser = parse_evaluator)]
        evaluator: Option<Evaluator>,
        /// Add `"explain": {"evaluator", "fallback_reason"}`: which
        /// evaluator decided, and why the interpreter if the RVM could not.
        #[arg(long)]
        explain: bool,
        /// Query path: `data.pkg.rule` or `pkg/rule`.
        query: String,
    },
    /// Inspect or build OPA bundles.
    Bundle {
        #[command(subcommand)]
        command: BundleCommand,
    },
    /// Serve OPA's REST API for every tenant whose bundle the template
    /// resolves, loading each on its first request.
    Serve(Box<ServeArgs>),
    /// Run as a worker process for isolated tenants: started by `tenet
    /// serve` (`isolation:`), speaking its protocol on stdin and stdout.
    /// Not for direct use.
    #[command(hide = true)]
    Worker {
        /// The supervisor's arguments (`--threads N`, limits, parent pid).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

/// `tenet serve` options. Each flag overrides the same setting of the
/// config file and of its `TENET_SECTION__KEY` environment override.
#[derive(Debug, clap::Args)]
struct ServeArgs {
    /// YAML config file (OPA-style `services`, `bundles`, `keys`,
    /// `decision_logs`, `status`; tenet's `server`, `host`, `tenants`,
    /// `isolation`). See docs/config.md.
    #[arg(short, long, env = "TENET_CONFIG")]
    config: Option<PathBuf>,
    /// Address to listen on (`127.0.0.1:0` picks a free port).
    /// [default: 127.0.0.1:8181]
    #[arg(long, env = "TENET_ADDR")]
    addr: Option<String>,
    /// Bundle location template with `{tenant}`: a directory per tenant
    /// (`bundles/{tenant}`), an archive (`bundles/{tenant}.tar.gz`), or an
    /// `http(s)://` or `s3://` URL. [default: examples/bundles/{tenant}]
    #[arg(long, env = "TENET_BUNDLES")]
    bundles: Option<String>,
    /// Header naming the tenant on paths without `/tenants/{tenant}`.
    /// [default: X-Tenant-ID]
    #[arg(long, env = "TENET_TENANT_HEADER")]
    tenant_header: Option<String>,
    /// Largest request body in bytes, after gzip decoding. [default: 10 MiB]
    #[arg(long, env = "TENET_MAX_BODY_BYTES")]
    max_body_bytes: Option<usize>,
    /// Path of the default decision served at `POST /`.
    /// [default: system/main]
    #[arg(long)]
    default_decision: Option<String>,
    /// Seconds an unused tenant stays loaded after its last request.
    /// [default: 300]
    #[arg(long)]
    idle_timeout_secs: Option<u64>,
    /// Seconds an unreferenced tenant stays warm before it is collected.
    /// [default: 30]
    #[arg(long)]
    grace_period_secs: Option<u64>,
    /// Evaluation deadline in milliseconds. [default: 1000]
    #[arg(long)]
    deadline_ms: Option<u64>,
    /// Bearer token required on the admin API (`/v1/tenants`) and on
    /// policy and data writes.
    #[arg(long, env = "TENET_ADMIN_TOKEN")]
    admin_token: Option<String>,
    /// Bearer token required on the decision API.
    #[arg(long, env = "TENET_DECISION_TOKEN")]
    decision_token: Option<String>,
    /// Accept policy and data writes without a token even when not
    /// listening on a loopback address (by default they are accepted
    /// without a token only on loopback, and never once a token grants
    /// writes).
    #[arg(long)]
    allow_unauthenticated_writes: bool,
    /// Log every decision and return a `decision_id` with each.
    #[arg(long)]
    log_decisions: bool,
    /// Seconds to drain in-flight requests after SIGTERM/SIGINT.
    /// [default: 10]
    #[arg(long)]
    drain_secs: Option<u64>,
    /// Serve HTTPS with this PEM certificate chain (needs
    /// `--tls-private-key-file`).
    #[arg(long, env = "TENET_TLS_CERT_FILE", requires = "tls_private_key_file")]
    tls_cert_file: Option<PathBuf>,
    /// PEM private key for `--tls-cert-file`.
    #[arg(long, env = "TENET_TLS_PRIVATE_KEY_FILE", requires = "tls_cert_file")]
    tls_private_key_file: Option<PathBuf>,
    /// Seconds a client has to send a request's headers (also bounds the
    /// TLS handshake and idle keep-alive connections); 0 disables.
    /// [default: 10]
    #[arg(long, env = "TENET_READ_HEADER_TIMEOUT_SECS")]
    read_header_timeout_secs: Option<u64>,
    /// Seconds a client has to send a request's whole body (408 after);
    /// 0 disables. [default: 30]
    #[arg(long, env = "TENET_READ_BODY_TIMEOUT_SECS")]
    read_body_timeout_secs: Option<u64>,
    /// Also serve Envoy's ext_authz gRPC API on this address
    /// (`127.0.0.1:9191`; `127.0.0.1:0` picks a free port). [default: off]
    #[arg(long, env = "TENET_GRPC_LISTEN")]
    grpc_listen: Option<String>,
}

impl ServeArgs {
    /// The config file with the `TENET_*` overrides and then these flags
    /// applied.
    fn config(&self) -> Result<Config> {
        let mut c = Config::load(self.config.as_deref(), std::env::vars())?;
        let server = &mut c.server;
        macro_rules! flag {
            ($field:ident => $target:expr) => {
                if let Some(v) = self.$field.clone() {
                    $target = v;
                }
            };
        }
        flag!(addr => server.addr);
        flag!(tenant_header => server.tenant_header);
        flag!(max_body_bytes => server.max_body_bytes);
        flag!(default_decision => server.default_decision);
        flag!(drain_secs => server.drain_seconds);
        flag!(read_header_timeout_secs => server.read_header_timeout_seconds);
        flag!(read_body_timeout_secs => server.read_body_timeout_seconds);
        if self.admin_token.is_some() {
            server.admin_token = self.admin_token.clone();
        }
        if self.decision_token.is_some() {
            server.decision_token = self.decision_token.clone();
        }
        if self.allow_unauthenticated_writes {
            server.allow_unauthenticated_writes = Some(true);
        }
        if let (Some(cert_file), Some(private_key_file)) = (
            self.tls_cert_file.clone(),
            self.tls_private_key_file.clone(),
        ) {
            server.tls = Some(tenet_server::config::TlsSection {
                cert_file,
                private_key_file,
            });
        }
        if let Some(template) = self.bundles.clone() {
            c.bundles.template = template;
            c.bundles.service = None;
            c.bundles.resource = None;
        }
        flag!(idle_timeout_secs => c.host.idle_timeout_seconds);
        flag!(grace_period_secs => c.host.grace_period_seconds);
        flag!(deadline_ms => c.host.deadline_ms);
        c.decision_logs.console |= self.log_decisions;
        if let Some(listen) = self.grpc_listen.clone() {
            c.grpc.listen = Some(listen);
        }
        Ok(c)
    }
}

#[derive(Debug, Subcommand)]
enum BundleCommand {
    /// Print a bundle's manifest, revision, roots, modules, data paths and sizes as JSON.
    Inspect {
        /// Bundle directory or .tar.gz file.
        path: PathBuf,
    },
    /// Build an OPA-compatible .tar.gz from a bundle directory.
    Build {
        /// Bundle directory.
        dir: PathBuf,
        /// Output file.
        #[arg(short, long)]
        output: PathBuf,
    },
}

/// Runs the command line; the exit code is 0 on success, 1 on error, 2 on
/// usage errors (clap's convention).
pub fn run() -> ExitCode {
    let cli = Cli::parse();
    match execute(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn execute(command: Command) -> Result<()> {
    match command {
        Command::Eval {
            bundle,
            input,
            deadline_ms,
            evaluator,
            explain,
            query,
        } => eval(
            &bundle,
            input.as_deref(),
            deadline_ms,
            evaluator,
            explain,
            &query,
        ),
        Command::Bundle {
            command: BundleCommand::Inspect { path },
        } => inspect(&path),
        Command::Bundle {
            command: BundleCommand::Build { dir, output },
        } => {
            let bytes = tenet::build_archive(&dir, &Limits::default())
                .with_context(|| format!("building {}", dir.display()))?;
            std::fs::write(&output, &bytes)
                .with_context(|| format!("writing {}", output.display()))?;
            eprintln!("wrote {} ({} bytes)", output.display(), bytes.len());
            Ok(())
        }
        Command::Serve(args) => serve(args),
        Command::Worker { args } => worker(args),
    }
}

fn worker(args: Vec<String>) -> Result<()> {
    // Logs go to stderr (the host's); stdout is the protocol's.
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = tenet::parse_worker_args(args).map_err(anyhow::Error::msg)?;
    tenet::run_worker(&args).context("worker")?;
    Ok(())
}

fn serve(args: Box<ServeArgs>) -> Result<()> {
    // The config is checked before anything starts, so a bad one fails
    // with its file, key and reason and nothing else on the screen.
    let config = args.config()?;
    // Before the runtime and its threads allocate: workers started later
    // inherit the setting.
    if !config.host.transparent_huge_pages {
        if let Err(e) = tenet::set_transparent_huge_pages(false) {
            eprintln!("note: transparent huge pages stay as the system sets them: {e}");
        }
    }
    // The async workers get the evaluation threads' stack (8 MiB, reserved
    // and touched only as used): a cheap tenant's evaluation may take an
    // inline turn on one of them (host.fair_share.inline), and its depth
    // bounds then have the same room as on the evaluation pool.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_stack_size(tenet::HostConfig::default().eval_stack_bytes)
        .build()
        .context("starting the runtime")?;
    let traces = logging(&config, &runtime)?;
    let drain = Duration::from_secs(config.server.drain_seconds);
    let served = runtime.block_on(async move {
        let template = config.bundle_template();
        let file = args
            .config
            .as_ref()
            .map_or_else(|| "<defaults>".to_string(), |f| f.display().to_string());
        let sources = tenet_server::sources::Sources::new(
            &template,
            config.source_options(&file)?,
            config.verifier(&file)?,
        )
        .with_context(|| format!("bundle template {template:?}"))?;
        let h = &config.host;
        let host_config = tenet::HostConfig {
            on_demand: h.on_demand,
            idle_timeout: Duration::from_secs(h.idle_timeout_seconds),
            grace_period: Duration::from_secs(h.grace_period_seconds),
            startup_timeout: Duration::from_secs(h.startup_timeout_seconds),
            fetch_timeout: Duration::from_secs(h.fetch_timeout_seconds),
            unknown_ttl: Duration::from_secs(h.unknown_ttl_seconds),
            max_instances: h.max_instances,
            memory_budget: h.memory_budget_bytes.unwrap_or(u64::MAX),
            max_pushed_tenants: h.max_pushed_tenants,
            max_pushed_bytes: h.max_pushed_bytes,
            load_concurrency: h.load_concurrency,
            labels: h.labels.clone(),
            tenant_labels: h.tenant_labels.clone(),
            evaluator: if h.evaluator == "vm" {
                Evaluator::Vm
            } else {
                Evaluator::Interpreter
            },
            decision_cache: h.decision_cache.clone(),
            fair_share: tenet::FairShareConfig {
                enabled: h.fair_share.enabled,
                max_pending: h.fair_share.max_pending,
                max_running: h.fair_share.max_running,
                heavy_after: Duration::from_millis(h.fair_share.heavy_after_ms),
                weights: h.fair_share.weights.clone(),
                inline: h.fair_share.inline,
            },
            eval_threads: h.eval_threads,
            trim_after: Duration::from_secs(h.trim_after_seconds),
            polling: tenet::PollingConfig {
                min_delay: Duration::from_secs(config.bundles.polling.min_delay_seconds),
                max_delay: Duration::from_secs(config.bundles.polling.max_delay_seconds),
                ..tenet::PollingConfig::default()
            },
            persist_dir: if config.bundles.persist {
                h.persist_dir.clone()
            } else {
                None
            },
            persist_pushed_dir: if h.persist_pushed {
                h.persist_dir.clone()
            } else {
                None
            },
            eval_limits: EvalLimits {
                deadline: Duration::from_millis(h.deadline_ms),
                max_instructions: h.max_instructions,
                max_input_bytes: config.server.max_body_bytes,
                max_memory_bytes: h.eval_memory_bytes,
                max_result_bytes: config.server.max_result_bytes,
                max_print_bytes: config.server.max_print_bytes,
                ..EvalLimits::default()
            },
            isolation: config.isolation.rules(),
            ..tenet::HostConfig::default()
        };
        let threads = match h.eval_threads {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        let host = tenet::Host::new(host_config, std::sync::Arc::new(sources));
        let workers = config.isolation.workers.enabled.then(|| {
            let adaptive = config.isolation.adaptive(threads).map(tenet::Adaptive::new);
            let supervisor = tenet::Supervisor::new(config.isolation.supervisor(), adaptive);
            supervisor.attach(&host);
            supervisor
        });
        let tenant_header = axum_header(&config.server.tenant_header)?;
        let mut state = tenet_server::AppState::new(
            host.clone(),
            tenant_header,
            config.server.default_decision.trim_matches('/').to_string(),
            config.server.max_body_bytes,
        );
        // Bound first: whether writes need a token depends on the address
        // actually listened on (a name such as `localhost` resolved).
        let addr = &config.server.addr;
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding {addr}"))?;
        let listen = listener.local_addr()?.ip();
        let open_writes = tenet_server::auth::unauthenticated_writes(
            config.server.allow_unauthenticated_writes,
            listen,
        );
        state.auth = config.server.tokens.iter().fold(
            tenet_server::auth::Auth::new(open_writes).with_legacy(
                config.server.admin_token.as_deref(),
                config.server.decision_token.as_deref(),
            ),
            |auth, t| auth.with_token(t.token.clone(), t.scopes.iter().copied()),
        );
        if state.auth.writes_open() {
            tracing::info!(%listen, "policy and data writes accepted without a token");
        } else if state.auth.writes_disabled() {
            tracing::warn!(%listen, "policy and data writes are disabled: no token grants writes and the address is not loopback (server.allow_unauthenticated_writes)");
        }
        state.decision_log = config.decision_logs.console;
        let uploads = start_decision_logs(&config, &file, &mut state)?;
        let status_task = start_status(
            &config,
            &file,
            &host,
            state.decision_logs.as_ref().map(|r| r.logs().clone()),
        )?;
        state.workers = workers.clone();
        state.traces = config.traces.otlp_endpoint.is_some();
        state.session_header = Some(axum_header(&config.isolation.session_header)?);
        state.max_batch_inputs = config.server.max_batch_inputs;
        state.max_batch_bytes = config.server.max_batch_bytes;
        state.max_tenant_labels = config.server.max_tenant_labels;
        state.authzen = config.authzen.config();
        state.porc = config.porc.config();
        // Configured tenants are pinned for the life of the process.
        {
            let mut pins = state.pins.lock().unwrap_or_else(|p| p.into_inner());
            for tenant in &config.tenants {
                let lease = host
                    .acquire(tenant)
                    .with_context(|| format!("tenants: {tenant}"))?;
                pins.insert(tenant.clone(), lease);
            }
        }
        restore_pushed(&host).await;
        let state_auth = state.auth.clone();
        let state_recorder = state.decision_logs.clone();
        let grpc_metrics = state.grpc_metrics.clone();
        let traced = state.traces;
        let app = tenet_server::app(state);
        let server_options = tenet_server::ServeOptions {
            drain_timeout: Duration::from_secs(config.server.drain_seconds),
            read_header_timeout: Duration::from_secs(config.server.read_header_timeout_seconds),
            read_body_timeout: Duration::from_secs(config.server.read_body_timeout_seconds),
            http2_keep_alive_interval: Duration::from_secs(
                config.server.http2_keep_alive_interval_seconds,
            ),
            http2_keep_alive_timeout: Duration::from_secs(
                config.server.http2_keep_alive_timeout_seconds,
            ),
            http2_idle_timeout: Duration::from_secs(config.server.http2_idle_timeout_seconds),
            tls: config.server.tls.clone().map(|t| tenet_server::TlsConfig {
                cert_file: t.cert_file,
                private_key_file: t.private_key_file,
            }),
        };
        let mut server =
            tenet_server::Server::new(listener, server_options).context("configuring TLS")?;
        // The gRPC services, when a port serves them: their own
        // (`grpc.listen`), the REST port (`grpc.on_rest_port`), or both.
        let grpc_services = if config.grpc.listen.is_some() || config.grpc.on_rest_port {
            let auth = state_auth.clone();
            let authorize: tenet_grpc::Authorize = std::sync::Arc::new(move |headers| {
                auth.check(tenet_server::auth::Scope::Decide, headers).is_ok()
            });
            let console = config.decision_logs.console;
            let mut ext_authz =
                tenet_grpc::ExtAuthz::new(host.clone(), config.grpc.ext_authz.clone())
                    .with_authorize(authorize.clone())
                    .with_session_key(&config.isolation.session_header)
                    .with_decision_log(console);
            let mut decisions =
                tenet_grpc::DecisionService::new(host.clone(), config.grpc.decisions.clone())
                    .with_authzen(config.authzen.config())
                    .with_porc(config.porc.config())
                    .with_authorize(authorize)
                    .with_session_key(&config.isolation.session_header)
                    .with_decision_log(console);
            if let Some(recorder) = &state_recorder {
                ext_authz = ext_authz.with_decision_logs(recorder.clone());
                decisions = decisions.with_decision_logs(recorder.clone());
            }
            let services = tenet_grpc::Services {
                ext_authz,
                decisions,
            };
            Some(
                tenet_grpc::Grpc::new(&config.grpc, services)
                    .await
                    .context("configuring gRPC")?
                    .map_routes(|routes| grpc_metrics.instrument(routes))
                    .map_routes(|routes| match traced {
                        true => tenet_server::instrument_grpc(routes),
                        false => routes,
                    }),
            )
        } else {
            None
        };
        if config.grpc.on_rest_port {
            if let Some(grpc) = &grpc_services {
                server = server.with_grpc(grpc.clone());
            }
        }
        let grpc_tls = match &config.grpc.tls {
            Some(files) => {
                let read = |path: &std::path::Path| {
                    std::fs::read(path).with_context(|| format!("grpc.tls: {}", path.display()))
                };
                let identity = tenet_grpc::Identity::from_pem(
                    read(&files.cert_file)?,
                    read(&files.private_key_file)?,
                );
                tenet_grpc::check_tls(&identity).context("grpc.tls")?;
                Some(identity)
            }
            None => None,
        };
        let grpc = match &config.grpc.listen {
            Some(addr) => Some(
                tokio::net::TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("binding grpc.listen {addr}"))?,
            ),
            None => None,
        };
        // Signal handlers before the announcement: a SIGTERM right after it
        // must drain, not kill. Both servers watch the one signal.
        let signal = tenet_server::shutdown_signal();
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            signal.await;
            exit_after(drain + WATCHDOG_MARGIN);
            stop_tx.send_replace(true);
        });
        let stopped = move || {
            let mut stop = stop_rx.clone();
            async move {
                let _ = stop.wait_for(|s| *s).await;
            }
        };
        let local = server.local_addr()?;
        // The first line on stdout is the address, for scripts and tests.
        println!("tenet listening on {}://{local}", server.scheme());
        tracing::info!(addr = %local, bundles = %template, "serving");
        let grpc = match (grpc, grpc_services) {
            (Some(listener), Some(services)) => {
                let grpc_local = listener.local_addr()?;
                // The second line names the gRPC address (a closed stdout
                // is no reason to stop serving).
                {
                    use std::io::Write;
                    let mut out = std::io::stdout().lock();
                    let _ = writeln!(out, "tenet grpc listening on {grpc_local}");
                    let _ = out.flush();
                }
                tracing::info!(addr = %grpc_local, "serving gRPC (ext_authz, tenet.v1.Decisions)");
                let grpc_config = config.grpc.clone();
                let shutdown = stopped();
                Some(tokio::spawn(async move {
                    tenet_grpc::serve(listener, &grpc_config, services, grpc_tls, shutdown, drain)
                        .await
                        .inspect_err(|e| tracing::error!(error = %e, "the gRPC server stopped"))
                }))
            }
            _ => None,
        };
        server.run(app, stopped()).await.context("serving")?;
        if let Some(grpc) = grpc {
            grpc.await.context("gRPC server task")?.context("serving gRPC")?;
        }
        if let Some(task) = status_task {
            task.abort();
        }
        if let Some(workers) = &workers {
            // Each finishes what it runs, within its stop timeout.
            workers.shutdown().await;
        }
        if let Some((logs, client, upload, task)) = uploads {
            // What is still handed over or buffered goes out once more,
            // within a bound.
            task.abort();
            let last = async {
                if let Some(recorder) = &state_recorder {
                    recorder.flush().await;
                }
                logs.upload_round(&client, &upload).await
            };
            if tokio::time::timeout(DECISION_LOG_FLUSH, last).await.is_err() {
                tracing::warn!("decision logs still buffered at exit were not all uploaded");
            }
        } else if let Some(recorder) = &state_recorder {
            // The file sink alone: what was handed over is written.
            let _ = tokio::time::timeout(DECISION_LOG_FLUSH, recorder.flush()).await;
        }
        Ok(())
    });
    #[cfg(feature = "otlp")]
    if let Some(traces) = traces {
        // The batched spans go out before the runtime stops.
        let _runtime = runtime.enter();
        traces.shutdown();
    }
    #[cfg(not(feature = "otlp"))]
    let () = traces;
    // The drain is over (or cut off at its deadline): exit now, whatever is
    // still running. Dropping the runtime would wait for every task on its
    // blocking pool (a compile, a file read) without bound; evaluations run
    // on the host's own threads, which the process exit ends without
    // joining them.
    runtime.shutdown_background();
    served
}

/// Prints `value` to stdout; a closed pipe (`tenet … | head`) ends the
/// output quietly instead of panicking, as Unix tools do.
fn print_json(value: &serde_json::Value) -> Result<()> {
    use std::io::Write;
    let text = serde_json::to_string_pretty(value)?;
    match writeln!(std::io::stdout().lock(), "{text}") {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}

fn axum_header(name: &str) -> Result<tenet_server::HeaderName> {
    tenet_server::HeaderName::from_bytes(name.as_bytes())
        .with_context(|| format!("--tenant-header {name:?} is not a valid header name"))
}

fn parse_evaluator(s: &str) -> Result<Evaluator, String> {
    match s {
        "vm" => Ok(Evaluator::Vm),
        "interpreter" => Ok(Evaluator::Interpreter),
        other => Err(format!(
            "unknown evaluator {other:?}: expected vm or interpreter"
        )),
    }
}

fn eval(
    bundle: &std::path::Path,
    input: Option<&str>,
    deadline_ms: u64,
    force: Option<Evaluator>,
    explain: bool,
    query: &str,
) -> Result<()> {
    let limits = EvalLimits {
        deadline: Duration::from_millis(deadline_ms),
        ..EvalLimits::default()
    };
    let bundle = Bundle::load(bundle, &Limits::default())
        .with_context(|| format!("loading bundle {}", bundle.display()))?;
    let input = match input {
        None => Input::none(),
        Some(source) => {
            let text = if source == "-" {
                let mut s = String::new();
                std::io::stdin()
                    .read_to_string(&mut s)
                    .context("reading stdin")?;
                s
            } else {
                std::fs::read_to_string(source).with_context(|| format!("reading {source}"))?
            };
            Input::from_json(&text, &limits)?
        }
    };
    let policy = Policy::compile(
        &bundle,
        CompileOptions {
            limits,
            evaluator: force.unwrap_or_default(),
        },
    )?;
    let prepared = policy.query(&QueryPath::parse(query)?)?;
    let evaluation = prepared.evaluate(&input)?;
    let mut out = match evaluation.result {
        Some(result) => json!({ "result": result }),
        None => json!({}),
    };
    if explain {
        out["explain"] = json!({
            "evaluator": evaluation.evaluator,
            "fallback_reason": prepared.fallback_reason(),
        });
    }
    print_json(&out)
}

fn inspect(path: &std::path::Path) -> Result<()> {
    let b = Bundle::load(path, &Limits::default())
        .with_context(|| format!("loading bundle {}", path.display()))?;
    let out = json!({
        "manifest": b.manifest,
        "revision": b.manifest.revision,
        "roots": b.manifest.roots,
        "digest": b.digest,
        "modules": b.modules.iter().map(|m| json!({
            "path": m.path,
            "package": format!("data.{}", m.package.join(".")),
            "rego_version": m.rego_version,
            "bytes": m.source.len(),
        })).collect::<Vec<_>>(),
        "data": b.data_files.iter().map(|d| json!({
            "path": d.path,
            "mount": if d.mount.is_empty() { "data".to_string() } else { format!("data.{}", d.mount.join(".")) },
            "bytes": d.bytes,
        })).collect::<Vec<_>>(),
        "files": b.files.len(),
        "total_bytes": b.total_bytes(),
    });
    print_json(&out)
}
