//! Subcommands, named after OPA's where OPA has the same verb: `eval`,
//! `bundle inspect`, `bundle build`; `serve` is reserved for the server.
//! Results go to stdout as JSON; errors go to stderr with a non-zero exit.

use anyhow::{bail, Context, Result};
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
    /// Run the policy server (not in this build yet).
    Serve,
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
        Command::Serve => bail!("`tenet serve` is not part of this build yet; use `tenet eval`"),
    }
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
