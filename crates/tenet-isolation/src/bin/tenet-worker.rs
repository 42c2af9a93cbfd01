//! A tenet worker process on its own (what `tenet worker` runs), for
//! embedders of the library and for this crate's tests: the supervisor
//! starts it with `SupervisorConfig::command` pointing here.

use std::process::ExitCode;

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();
    let args = match tenet_isolation::parse_worker_args(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(e) => {
            eprintln!("tenet-worker: {e}");
            return ExitCode::from(2);
        }
    };
    match tenet_isolation::run_worker(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tenet-worker: {e}");
            ExitCode::from(3)
        }
    }
}
