//! The `lbctl` command: parses the command line and runs the verb (see [`lbctl::cli`]).

use clap::Parser;
use lbctl::cli::Cli;

fn init_tracing() {
    use std::io::IsTerminal;
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("LBCTL_LOG").unwrap_or_else(|_| EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        // Colours on a terminal only: daemons write to log files.
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .try_init();
}

fn main() {
    init_tracing();
    if let Err(e) = Cli::parse().cmd.job().run() {
        // The whole context chain on one line per cause, without a backtrace: these are
        // user-facing errors (bad config, missing root, a failed step of `up`).
        eprintln!("lbctl: {e:#}");
        std::process::exit(1);
    }
}
