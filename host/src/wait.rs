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

use crate::{
    cli::WaitArgs,
    console,
    exit::{Exit, Failure},
    loader::Backend,
    progress::Progress,
    runtime::pidfile::{self, is_alive, RUNTIME_FILE, WORKER_FILE},
};

/// How often the state is looked at.
const POLL: Duration = Duration::from_millis(100);

/// How many log lines a failure shows.
const LOG_LINES: u32 = 20;

/// sygen, running.
pub struct Running {
    pub runtime: i32,
    pub worker: i32,
}

/// Waits until the service manager reports sygen running and its runtime and worker are alive.
pub fn until_running(
    backend: &Backend,
    spec: &ServiceSpec,
    home: &Path,
    wait: WaitArgs,
    progress: &Progress,
) -> Result<Running> {
    let live = |file: &str| pidfile::read(&home.join(file)).filter(|&pid| is_alive(pid));
    let deadline = Instant::now() + wait.timeout;
    loop {
        let pending = if !backend.is_service_running(spec)? {
            "waiting for the service manager to report sygen running"
        } else {
            match (live(RUNTIME_FILE), live(WORKER_FILE)) {
                (Some(runtime), Some(worker)) => return Ok(Running { runtime, worker }),
                (None, _) => "waiting for the sygen runtime to start",
                (Some(_), None) => "waiting for the worker to start",
            }
        };
        progress.update(pending);
        if Instant::now() >= deadline {
            drop_and_show_logs(progress, backend, spec);
            let why = match pending {
                p if p.contains("runtime") => format!(
                    "the service manager reports it running, but no sygen runtime holds {}",
                    home.join(RUNTIME_FILE).display()
                ),
                p if p.contains("worker") => "the runtime has no live worker".to_owned(),
                _ => "the service manager does not report it running".to_owned(),
            };
            return Err(Failure::new(
                Exit::Failed,
                format!(
                    "sygen did not start within {}: {why}",
                    humantime::format_duration(wait.timeout)
                ),
            )
            .hint("the log lines above show why; `sygen doctor` checks the set-up")
            .into());
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
    while backend.is_service_running(spec)? {
        progress.update("waiting for sygen to stop");
        if Instant::now() >= deadline {
            drop_and_show_logs(progress, backend, spec);
            return Err(Failure::new(
                Exit::Failed,
                format!(
                    "sygen did not stop within {}: the service manager still reports it running",
                    humantime::format_duration(wait.timeout)
                ),
            )
            .hint("the log lines above show why; `sygen stop` also ends its processes")
            .into());
        }
        thread::sleep(POLL);
    }
    Ok(())
}

/// Whether a failed operation is one whose reason the service's logs would show: the backend
/// tried and the service did not do as asked (not: unreachable manager, missing service).
pub fn logs_would_explain(error: &anyhow::Error) -> bool {
    error
        .downcast_ref::<Failure>()
        .and_then(|failure| failure.backend_kind)
        == Some(ErrorKind::FAILED)
}

/// Prints the service's last log lines on stderr, as the backend finds them. Logs that cannot
/// be read add nothing: the error that follows is what matters.
pub fn show_logs(backend: &Backend, spec: &ServiceSpec) {
    let (result, text) = console::capture(|| backend.print_service_logs(spec, false, LOG_LINES));
    match result {
        Ok(()) if !text.trim().is_empty() => {
            eprintln!("last log lines ({} backend):", backend.name);
            for line in text.lines() {
                eprintln!("  {line}");
            }
        }
        Ok(()) => eprintln!("(the service has no log lines yet)"),
        Err(failure) => tracing::debug!("no log lines to show: {failure}"),
    }
}

fn drop_and_show_logs(progress: &Progress, backend: &Backend, spec: &ServiceSpec) {
    progress.clear();
    show_logs(backend, spec);
}
