//! The `tenet` binary: command-line glue over the tenet crates. It parses
//! arguments, calls the library, and prints results; it holds no policy logic.

mod cli;
mod start;

fn main() -> std::process::ExitCode {
    cli::run()
}
