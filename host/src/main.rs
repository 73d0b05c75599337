//! `sygen`: the host binary. It holds no platform code: service operations go to a backend
//! library loaded at run time (see `loader`), given a service description built here
//! (see `description`).

mod agent;
mod cli;
mod console;
mod description;
mod exit;
mod lifecycle;
mod loader;
mod runtime;
mod service;

use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

use crate::cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.verbose);
    let outcome = match &cli.command {
        Command::Service(command) => {
            service::run(command, cli.backend.as_deref()).map(|()| ExitCode::SUCCESS)
        }
        Command::Run { supervise } => runtime::run(*supervise),
        Command::Stop => lifecycle::stop(cli.backend.as_deref()).map(|()| ExitCode::SUCCESS),
        Command::Restart => lifecycle::restart().map(|()| ExitCode::SUCCESS),
        Command::Agent => agent::run(),
    };
    match outcome {
        Ok(code) => code,
        Err(error) => {
            let (line, code) = exit::report(&error);
            eprintln!("{line}");
            ExitCode::from(code)
        }
    }
}

/// Diagnostics go to stderr: warnings by default, more with `-v`, anything with `RUST_LOG`.
fn init_tracing(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .without_time()
        .init();
}
