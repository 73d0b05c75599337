//! Waiting until the service reaches the state a command asked for, with feedback.
//!
//! The service manager's word is not enough for "running": sygen is up once its runtime has
//! claimed `bot.pid` and started a worker, which is where every backend's service leads.
//! When the wait fails, the last log lines are printed first, from wherever the backend keeps
//! them, because the reason is almost always there.

use std::{
    path::Path,
    thread,
    time::{Duration, Instant},
};

use anyhow::Result;
use sygen_backend_api::{ErrorKind, ServiceSpec};

use super::cli::WaitArgs;
use crate::{
    backend::{console, Backend},
    exit::{Exit, Failure},
    progress::Progress,
    runtime::instance::{self, Runtime, RUNTIME_FILE},
};

/// How often the state is looked at.
const POLL: Duration = Duration::from_millis(100);

/// How many log lines a failure shows.
const LOG_LINES: u32 = 20;

/// sygen, running.
pub struct Running {
    pub runtime: u32,
    pub worker: u32,
}

/// What "running" still waits for.
#[derive(Clone, Copy)]
enum Pending {
    Manager,
    Runtime,
    Worker,
}

impl Pending {
    fn waiting(self) -> &'static str {
        match self {
            Pending::Manager => "waiting for the service manager to report sygen running",
            Pending::Runtime => "waiting for the sygen runtime to start",
            Pending::Worker => "waiting for the worker to start",
        }
    }

    fn missing(self, home: &Path) -> String {
        match self {
            Pending::Manager => "the service manager does not report it running".to_owned(),
            Pending::Runtime => format!(
                "the service manager reports it running, but no sygen runtime holds {}",
                home.join(RUNTIME_FILE).display()
            ),
            Pending::Worker => "the runtime has no live worker".to_owned(),
        }
    }
}

/// Waits until the service manager reports sygen running and its runtime and worker are alive.
pub fn until_running(
    backend: &Backend,
    spec: &ServiceSpec,
    home: &Path,
    wait: WaitArgs,
    progress: &Progress,
) -> Result<Running> {
    let deadline = Instant::now() + wait.timeout;
    loop {
        let pending = if !is_running(backend, spec)? {
            Pending::Manager
        } else {
            match (instance::runtime(home), instance::live_worker(home)) {
                (Runtime::Running(runtime), Some(worker)) => {
                    return Ok(Running {
                        runtime: runtime.identity.pid,
                        worker: worker.identity.pid,
                    })
                }
                (Runtime::Running(_), None) => Pending::Worker,
                _ => Pending::Runtime,
            }
        };
        progress.update(pending.waiting());
        if Instant::now() >= deadline {
            let failure = timed_out("start", wait, pending.missing(home))
                .hint("the log lines above show why; `sygen doctor` checks the set-up");
            return Err(explained(failure, progress, backend, spec));
        }
        thread::sleep(POLL);
    }
}

/// Waits until the service manager no longer reports sygen running.
pub fn until_stopped(
    backend: &Backend,
    spec: &ServiceSpec,
    wait: WaitArgs,
    progress: &Progress,
) -> Result<()> {
    let deadline = Instant::now() + wait.timeout;
    while is_running(backend, spec)? {
        progress.update("waiting for sygen to stop");
        if Instant::now() >= deadline {
            let why = "the service manager still reports it running".to_owned();
            let failure = timed_out("stop", wait, why)
                .hint("the log lines above show why; `sygen stop` also ends its processes");
            return Err(explained(failure, progress, backend, spec));
        }
        thread::sleep(POLL);
    }
    Ok(())
}

/// Asks the backend, keeping what it prints while answering out of the way: it is asked ten
/// times a second.
fn is_running(backend: &Backend, spec: &ServiceSpec) -> Result<bool> {
    Ok(console::capture(|| backend.is_service_running(spec)).0?)
}

fn timed_out(verb: &str, wait: WaitArgs, why: String) -> Failure {
    let within = humantime::format_duration(wait.timeout);
    Failure::new(
        Exit::Failed,
        format!("sygen did not {verb} within {within}: {why}"),
    )
}

/// The failure, after the log lines that explain it.
fn explained(
    failure: Failure,
    progress: &Progress,
    backend: &Backend,
    spec: &ServiceSpec,
) -> anyhow::Error {
    progress.clear();
    show_logs(backend, spec);
    failure.into()
}

/// Whether a failed operation is one whose reason the service's logs would show: the service
/// manager did as asked, but the service did not get there (not: an unreachable manager, a
/// refused command, a missing service).
pub fn logs_would_explain(error: &anyhow::Error) -> bool {
    error
        .downcast_ref::<Failure>()
        .and_then(|failure| failure.backend.as_ref())
        .map(|said| said.kind)
        == Some(ErrorKind::SERVICE_FAILED)
}

/// Prints the last log lines of the file at `path` on stderr (nothing when it cannot be read).
pub fn show_file_logs(path: &Path) {
    match sygen_backend_api::sdk::fs::tail_lines(path, LOG_LINES as usize) {
        Ok(lines) if !lines.is_empty() => {
            eprintln!("last log lines ({}):", path.display());
            for line in lines {
                eprintln!("  {line}");
            }
        }
        Ok(_) => {}
        Err(error) => tracing::debug!("no log lines from {}: {error}", path.display()),
    }
}

/// Prints the service's last log lines on stderr, as the backend finds them. Logs that cannot
/// be read add nothing: the error that follows is what matters.
pub fn show_logs(backend: &Backend, spec: &ServiceSpec) {
    let (result, text) = console::capture(|| backend.print_service_logs(spec, false, LOG_LINES));
    match result {
        Ok(()) if !text.trim().is_empty() => {
            eprintln!("last log lines ({} backend):", backend.name);
            // A backend may print more than it was asked for: the last lines are the news.
            let lines: Vec<&str> = text.lines().collect();
            for line in &lines[lines.len().saturating_sub(LOG_LINES as usize)..] {
                eprintln!("  {line}");
            }
        }
        Ok(()) => eprintln!("(the service has no log lines yet)"),
        Err(failure) => tracing::debug!("no log lines to show: {failure}"),
    }
}
