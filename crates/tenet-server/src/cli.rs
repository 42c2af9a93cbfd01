//! Subcommands, named after OPA's where OPA has the same verb: `eval`,
//! `bundle inspect`, `bundle build`; `serve` is reserved for the server.
//! Results go to stdout as JSON; errors go to stderr with a non-zero exit.

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use serde_json::json;
use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use tenet::{Bundle, CompileOptions, EvalLimits, Evaluator, Input, Limits, Policy};

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
    Serve(ServeArgs),
}

/// `tenet serve` options.
#[derive(Debug, clap::Args)]
struct ServeArgs {
    /// Address to listen on (`127.0.0.1:0` picks a free port).
    #[arg(long, env = "TENET_ADDR", default_value = "127.0.0.1:8181")]
    addr: String,
    /// Bundle location template with `{tenant}`: a directory per tenant
    /// (`bundles/{tenant}`) or an archive (`bundles/{tenant}.tar.gz`).
    #[arg(
        long,
        env = "TENET_BUNDLES",
        default_value = "examples/bundles/{tenant}"
    )]
    bundles: String,
    /// Header naming the tenant on paths without `/tenants/{tenant}`.
    #[arg(long, env = "TENET_TENANT_HEADER", default_value = "X-Tenant-ID")]
    tenant_header: String,
    /// Largest request body in bytes (after gzip decoding).
    #[arg(long, env = "TENET_MAX_BODY_BYTES", default_value_t = 10 << 20)]
    max_body_bytes: usize,
    /// Path of the default decision served at `POST /`.
    #[arg(long, default_value = "system/main")]
    default_decision: String,
    /// Seconds an unused tenant stays loaded after its last request.
    #[arg(long, default_value_t = 300)]
    idle_timeout_secs: u64,
    /// Seconds an unreferenced tenant stays warm before it is collected.
    #[arg(long, default_value_t = 30)]
    grace_period_secs: u64,
    /// Evaluation deadline in milliseconds.
    #[arg(long, default_value_t = 1000)]
    deadline_ms: u64,
    /// Bearer token required on the admin API (`/v1/tenants`).
    #[arg(long, env = "TENET_ADMIN_TOKEN")]
    admin_token: Option<String>,
    /// Bearer token required on the decision API.
    #[arg(long, env = "TENET_DECISION_TOKEN")]
    decision_token: Option<String>,
    /// Seconds to drain in-flight requests after SIGTERM/SIGINT.
    #[arg(long, default_value_t = 10)]
    drain_secs: u64,
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
            query,
        } => eval(&bundle, input.as_deref(), deadline_ms, evaluator, &query),
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
    }
}

fn serve(args: ServeArgs) -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = tokio::runtime::Runtime::new().context("starting the runtime")?;
    runtime.block_on(async move {
        let sources = tenet::SourceTemplate::new(args.bundles.clone(), Limits::default())
            .map_err(anyhow::Error::msg)
            .context("--bundles")?;
        let config = tenet::HostConfig {
            on_demand: true,
            idle_timeout: Duration::from_secs(args.idle_timeout_secs),
            grace_period: Duration::from_secs(args.grace_period_secs),
            eval_limits: EvalLimits {
                deadline: Duration::from_millis(args.deadline_ms),
                max_input_bytes: args.max_body_bytes,
                ..EvalLimits::default()
            },
            ..tenet::HostConfig::default()
        };
        let host = tenet::Host::new(config, std::sync::Arc::new(sources));
        let tenant_header = axum_header(&args.tenant_header)?;
        let mut state = tenet_server::AppState::new(
            host,
            tenant_header,
            args.default_decision.trim_matches('/').to_string(),
            args.max_body_bytes,
        );
        state.admin_token = args.admin_token.clone();
        state.decision_token = args.decision_token.clone();
        let app = tenet_server::app(state);
        let listener = tokio::net::TcpListener::bind(&args.addr)
            .await
            .with_context(|| format!("binding {}", args.addr))?;
        let local = listener.local_addr()?;
        // The first line on stdout is the address, for scripts and tests.
        println!("tenet listening on http://{local}");
        tracing::info!(addr = %local, bundles = %args.bundles, "serving");
        tenet_server::serve(
            listener,
            app,
            tenet_server::shutdown_signal(),
            Duration::from_secs(args.drain_secs),
        )
        .await
        .context("serving")?;
        Ok(())
    })
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
    let out = match policy.evaluate(query, &input)? {
        Some(result) => json!({ "result": result }),
        None => json!({}),
    };
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
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
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}
