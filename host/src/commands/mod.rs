//! What users type: the command line (`cli`), its one dispatch (here), and a file per family
//! of commands: the service operations (`service`, with `wait`), the backend files and store
//! (`backends`), `stop` and `restart` (`lifecycle`), `doctor`, `onboarding` and `conformance`;
//! what doctor and install check of the worker (`worker`), and what sygen outlives
//! (`survival`), which `service install` and `doctor` both say.
//!
//! Commands may use everything below them: `backend`, `runtime`, `config`, `worker_env`,
//! `description`, `progress`, `file`, `home`, `exit` and `platform`. Nothing below uses them.

mod backends;
pub mod cli;
mod conformance;
mod context;
mod doctor;
mod lifecycle;
mod onboarding;
mod service;
mod survival;
mod wait;
mod worker;

use std::{io::Write as _, path::Path, process::ExitCode};

use anyhow::Result;
use clap::{CommandFactory, Parser};
use tracing_subscriber::{
    filter::{LevelFilter, Targets},
    layer::SubscriberExt as _,
    util::SubscriberInitExt as _,
};

use self::cli::{BackendCommand, Cli, Command, ServiceCommand};
use crate::{backend::boundary, exit, platform, progress, runtime};

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
    let code = match run(&cli) {
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

/// The one dispatch: every command the command line can name.
fn run(cli: &Cli) -> Result<ExitCode> {
    let backend = cli.backend.as_deref();
    let done = |result: Result<()>| result.map(|()| ExitCode::SUCCESS);
    match &cli.command {
        Some(Command::Service(command)) => done(service_command(command, backend)),
        Some(Command::Run { supervise }) => runtime::run(*supervise),
        Some(Command::Stop(wait)) => done(lifecycle::stop(*wait, backend)),
        Some(Command::Restart(wait)) => done(lifecycle::restart(*wait)),
        Some(Command::Doctor(flag)) => done(doctor::run(backend, flag.json, cli.color.on_stdout())),
        Some(Command::Agent { heartbeat_interval }) => runtime::agent::run(*heartbeat_interval),
        Some(Command::Guard {
            marker,
            stop_timeout_ms,
            runtime_pid,
            runtime_start,
        }) => {
            let runtime = platform::Identity {
                pid: *runtime_pid,
                start: *runtime_start,
            };
            runtime::guard(marker, *stop_timeout_ms, runtime)
        }
        Some(Command::WorkerPath) => done(worker::print_env_file_path()),
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
        None if onboarding::is_first_run()? => done(onboarding::run(
            onboarding::Answer::Ask,
            backend,
            cli::WaitArgs::default(),
        )),
        None => {
            let _ = Cli::command().print_help();
            Ok(ExitCode::from(2))
        }
    }
}

fn service_command(command: &ServiceCommand, backend: Option<&Path>) -> Result<()> {
    match command {
        ServiceCommand::Install(args) => service::install_command(args, backend),
        ServiceCommand::Start(wait) => service::start(*wait, backend),
        ServiceCommand::Stop(wait) => service::stop(*wait, backend),
        ServiceCommand::Uninstall(flag) => service::uninstall(flag.dry_run, backend),
        ServiceCommand::Status(flag) => service::status(flag.json, backend),
        ServiceCommand::Logs(args) => service::logs(args, backend),
        ServiceCommand::Backends(flag) => backends::found(flag.json, backend),
        ServiceCommand::Conformance => conformance::run(backend),
        ServiceCommand::Backend(command) => backend_command(command),
    }
}

fn backend_command(command: &BackendCommand) -> Result<()> {
    match command {
        BackendCommand::Add { file, force } => backends::add(file, *force),
        BackendCommand::List => backends::list(),
        BackendCommand::Remove { name } => backends::remove(name),
        BackendCommand::Rollback { name } => backends::rollback(name),
        BackendCommand::Use { name } => backends::use_backend(name),
        BackendCommand::Update {
            names,
            check,
            json,
            channel,
        } => backends::update(names, *check, *json, channel.as_deref()),
        BackendCommand::Publish {
            library,
            key,
            url,
            manifest,
            channel,
            target,
            expires_in,
        } => backends::publish(&backends::Publication {
            library,
            secret_key: key,
            url,
            manifest,
            channel: channel.as_deref(),
            target: target.as_deref(),
            expires_in: *expires_in,
        }),
        BackendCommand::Describe { available, files } => backends::describe(files, *available),
    }
}

/// Prints the one line `error` is reported as; answers the exit code that goes with it.
fn report(error: &anyhow::Error, colour: bool) -> u8 {
    let (line, code) = exit::report(error);
    let label = match colour {
        true => "\x1b[1;31merror:\x1b[0m",
        false => "error:",
    };
    // Not `eprintln!`, which panics when stderr is gone: the exit code still tells.
    let _ = writeln!(std::io::stderr(), "{label} {line}");
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
