//! The sygen host, shared by its two binaries: `sygen`, and `sygenw`, the same program built
//! for the Windows GUI subsystem so a scheduled task runs it without a console window.
//!
//! The host holds no service-manager code: service operations go to a backend library loaded
//! at run time (see `loader`), given a service description built here (see `description`).

mod agent;
mod boundary;
mod cli;
mod conformance;
mod console;
mod description;
mod doctor;
mod exit;
mod install_backend;
mod lifecycle;
mod loader;
mod onboarding;
mod platform;
mod progress;
mod registry;
mod runtime;
mod service;
mod update;
mod wait;

use std::{io::Write as _, process::ExitCode};

use clap::{CommandFactory, Parser};
use tracing_subscriber::{
    filter::{LevelFilter, Targets},
    layer::SubscriberExt as _,
    util::SubscriberInitExt as _,
};

use crate::cli::{Cli, Command};

/// Parses the command line, runs the command, reports a failure in one line.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let colour = cli.color.on_stderr();
    progress::init(colour);
    init_tracing(cli.verbose, colour);
    if !matches!(
        cli.command,
        Some(Command::Run { .. } | Command::Agent { .. } | Command::Guard { .. })
    ) {
        // Not for `run` and `agent`: a service must outlive whatever read its output.
        platform::quiet_on_closed_pipes();
    }
    // Before any thread starts, so everything below (and child processes) sees them.
    if let Some(home) = &cli.home {
        std::env::set_var("SYGEN_HOME", home);
    }
    if cli.allow_unsigned {
        std::env::set_var("SYGEN_ALLOW_UNSIGNED", "1");
    }
    if let Err(failure) = boundary::read_limit() {
        return ExitCode::from(report(&failure.into(), colour));
    }
    let backend = cli.backend.as_deref();
    let done = |result: anyhow::Result<()>| result.map(|()| ExitCode::SUCCESS);
    let outcome = match &cli.command {
        Some(Command::Service(command)) => done(service::run(command, backend)),
        Some(Command::Run { supervise }) => runtime::run(*supervise),
        Some(Command::Stop) => done(lifecycle::stop(backend)),
        Some(Command::Restart) => done(lifecycle::restart()),
        Some(Command::Doctor(flag)) => done(doctor::run(backend, flag.json, cli.color.on_stdout())),
        Some(Command::Agent { heartbeat_interval }) => agent::run(*heartbeat_interval),
        Some(Command::Guard {
            marker,
            stop_timeout_ms,
        }) => runtime::guard(marker, *stop_timeout_ms),
        Some(Command::Completions { shell }) => {
            clap_complete::generate(*shell, &mut Cli::command(), "sygen", &mut std::io::stdout());
            Ok(ExitCode::SUCCESS)
        }
        Some(Command::Man) => done(
            clap_mangen::Man::new(Cli::command())
                .render(&mut std::io::stdout())
                .map_err(Into::into),
        ),
        Some(Command::Onboarding { yes, no, wait }) => {
            let answer = match (yes, no) {
                (true, _) => onboarding::Answer::Yes,
                (_, true) => onboarding::Answer::No,
                _ => onboarding::Answer::Ask,
            };
            done(onboarding::run(answer, backend, *wait))
        }
        None => match onboarding::is_first_run() {
            Ok(true) => done(onboarding::run(
                onboarding::Answer::Ask,
                backend,
                cli::WaitArgs::default(),
            )),
            Ok(false) => {
                let _ = Cli::command().print_help();
                Ok(ExitCode::from(2))
            }
            Err(error) => Err(error),
        },
    };
    let code = match outcome {
        Ok(code) if code == ExitCode::SUCCESS => 0,
        Ok(code) => return code,
        Err(error) => report(&error, colour),
    };
    if boundary::stuck() {
        // A backend call that never answered may hold locks that exiting normally waits for
        // (the dynamic loader's, in a constructor): end without them, output flushed.
        let _ = std::io::stdout().flush();
        platform::exit_now(code.into());
    }
    ExitCode::from(code)
}

/// Prints the one line `error` is reported as; answers the exit code that goes with it.
fn report(error: &anyhow::Error, colour: bool) -> u8 {
    let (line, code) = exit::report(error);
    // Not `eprintln!`, which panics when stderr is gone: the exit code still tells.
    let mut stderr = std::io::stderr();
    let _ = match line.strip_prefix("error:") {
        Some(rest) if colour => writeln!(stderr, "\x1b[1;31merror:\x1b[0m{rest}"),
        _ => writeln!(stderr, "{line}"),
    };
    code
}

/// Diagnostics go to stderr: warnings by default, more with `-v`, anything with `RUST_LOG`
/// (`target=level` directives and a default level, e.g. `info,sygen::backend=trace`: the
/// filter without regular expressions, which would weigh more than the rest of it).
fn init_tracing(verbose: u8, colour: bool) {
    let default = match verbose {
        0 => LevelFilter::WARN,
        1 => LevelFilter::DEBUG,
        _ => LevelFilter::TRACE,
    };
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|directives| directives.parse::<Targets>().ok())
        .unwrap_or_else(|| Targets::new().with_default(default));
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(colour)
                .without_time(),
        )
        .with(filter)
        .init();
}
