//! `sygen stop` and `sygen restart`: act on the running instance of the sygen home, whether a
//! service manager started it or a person did.
//!
//! What they may touch: the runtime that holds the home's instance lock, proven by its start
//! time, and the processes of its worker's tree (those carrying the home's tree marker, and
//! the recorded worker's process group). Nothing else: not a process a stale pid file names,
//! not pid 1, not another user's process. Neither reads more of `config.toml` than a warning
//! about it, so a broken configuration never blocks the way out.

use std::{
    path::Path,
    thread,
    time::{Duration, Instant},
};

use anyhow::Result;

use super::{context::Context, wait};
use crate::{
    config::Config,
    description,
    exit::{Exit, Failure},
    home,
    platform::{self, Identity, Owner, Request},
    progress::Progress,
    runtime::instance::{self, Runtime},
};

/// Extra time, beyond the worker's stop timeout, that the runtime gets to wind down.
const GRACE: Duration = Duration::from_secs(5);

/// The stop timeout when no record says one: the configuration's default.
const DEFAULT_STOP_TIMEOUT: Duration = Duration::from_secs(10);

pub fn stop(backend_file: Option<&Path>) -> Result<()> {
    let home = home::sygen_home()?;
    Config::warn_if_invalid(&home, "stop");
    let progress = Progress::start("stopping sygen");
    let mut stopped = Vec::new();
    if stop_service(backend_file)? {
        stopped.push("the sygen service".to_owned());
    }
    stopped.extend(end_processes(&home));
    drop(progress);
    if stopped.is_empty() {
        println!("nothing running: no sygen service or process to stop");
    } else {
        println!("stopped {}", stopped.join(", "));
    }
    Ok(())
}

/// Ends the runtime of `home` (which stops its worker's tree on the stop request), then
/// whatever of a tree is left: what a killed runtime left behind, or what outlived the
/// runtime's own stop. Removes stale pid files and answers what it ended. Also what `sygen
/// service stop` and `uninstall` run after the backend, for a service manager that ends only
/// the runtime.
pub fn end_processes(home: &Path) -> Vec<String> {
    let mut ended = Vec::new();
    let worker = instance::recorded_worker(home);
    let mut stop_timeout = worker.map_or(DEFAULT_STOP_TIMEOUT, |w| w.stop_timeout);
    match instance::runtime(home) {
        Runtime::Running(runtime) => {
            stop_timeout = runtime.stop_timeout;
            end_runtime(runtime.identity, stop_timeout + GRACE);
            ended.push(format!("runtime {}", runtime.identity.pid));
        }
        Runtime::Unproven { pid } => eprintln!("{}", unproven(home, pid)),
        Runtime::NotRunning => {}
    }
    let marker = instance::marker(home);
    let group = worker.map(|w| w.identity);
    let left = platform::end_all(
        || platform::strays(Owner::Home(&marker), group),
        stop_timeout,
    );
    if !left.is_empty() {
        ended.push(format!("what its worker left ({})", platform::pids(&left)));
    }
    instance::remove_stale(home);
    ended
}

/// Asks the runtime to stop, then kills it if it has not within `timeout`.
fn end_runtime(runtime: Identity, timeout: Duration) {
    let _ = platform::send(runtime, Request::Stop);
    if wait_until(timeout, || !runtime.is_alive()) {
        return;
    }
    tracing::info!(
        "runtime {} ignored the stop request: killing it",
        runtime.pid
    );
    let _ = platform::send(runtime, Request::Kill);
    wait_until(GRACE, || !runtime.is_alive());
}

fn unproven(home: &Path, pid: Option<u32>) -> String {
    let pid = pid.map_or(String::new(), |p| format!(" (it names pid {p})"));
    format!(
        "warning: {} is locked, but not by a process sygen can prove is its runtime{pid}: not signalling it",
        home.join(instance::RUNTIME_FILE).display()
    )
}

/// What [`end_processes`] would end now.
pub fn running_processes(home: &Path) -> Vec<String> {
    let runtime = match instance::runtime(home) {
        Runtime::Running(runtime) => Some(format!("runtime {}", runtime.identity.pid)),
        _ => None,
    };
    let worker = instance::recorded_worker(home).map(|w| w.identity);
    let tree = platform::strays(Owner::Home(&instance::marker(home)), worker);
    let tree = (!tree.is_empty()).then(|| format!("worker tree ({})", platform::pids(&tree)));
    runtime.into_iter().chain(tree).collect()
}

/// Stops the service through the backend when it is installed and running, so the service
/// manager does not start again what `stop` is about to end. Answers whether it did.
fn stop_service(backend_file: Option<&Path>) -> Result<bool> {
    let backend = match Context::new(backend_file)?.backend() {
        Ok(backend) => backend,
        Err(failure) => {
            tracing::debug!("not checking the service: {failure}");
            return Ok(false);
        }
    };
    let spec = description::build()?.to_spec();
    let running = backend
        .is_service_installed(&spec)
        .and_then(|installed| Ok(installed && backend.is_service_running(&spec)?));
    match running {
        Ok(true) => {
            backend.stop_service(&spec)?;
            Ok(true)
        }
        Ok(false) => Ok(false),
        Err(failure) => {
            eprintln!("sygen: could not check the service, stopping the processes only: {failure}");
            Ok(false)
        }
    }
}

/// Polls `done` every 20 ms until it holds or `timeout` passes; answers whether it held.
fn wait_until(timeout: Duration, done: impl Fn() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if done() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

pub fn restart() -> Result<()> {
    let home = home::sygen_home()?;
    Config::warn_if_invalid(&home, "restart");
    let not_running = || {
        Failure::new(Exit::Failed, "sygen is not running: nothing to restart")
            .hint("start it with `sygen service start` (or in the foreground: `sygen run`)")
    };
    let runtime = match instance::runtime(&home) {
        Runtime::Running(runtime) => runtime,
        Runtime::Unproven { pid } => {
            eprintln!("{}", unproven(&home, pid));
            return Err(not_running().into());
        }
        Runtime::NotRunning => return Err(not_running().into()),
    };
    let pid = runtime.identity.pid;
    let old = instance::live_worker(&home).map(|w| w.identity);
    match platform::send(runtime.identity, Request::Restart) {
        Ok(true) => {}
        Ok(false) => return Err(not_running().into()),
        Err(e) => {
            return Err(Failure::new(
                Exit::Failed,
                format!("cannot signal the sygen runtime (pid {pid}): {e}"),
            )
            .into())
        }
    }
    let timeout = runtime.stop_timeout + GRACE;
    let waiting = format!("waiting for the runtime (pid {pid}) to replace the worker");
    let progress = Progress::start(&waiting);
    let new_worker = || {
        instance::live_worker(&home)
            .map(|w| w.identity)
            .filter(|new| Some(*new) != old)
    };
    let started = wait_until(timeout, || {
        progress.update(&waiting);
        new_worker().is_some()
    });
    drop(progress);
    match new_worker().filter(|_| started) {
        Some(new) => {
            let old = old.map_or("none".to_owned(), |w| w.pid.to_string());
            println!("restarted the worker: pid {old} → {}", new.pid);
            Ok(())
        }
        None => {
            let log = home.join("logs/agent.log");
            wait::show_file_logs(&log);
            Err(Failure::new(
                Exit::Failed,
                format!(
                    "the runtime (pid {pid}) did not start a new worker within {}",
                    humantime::format_duration(timeout)
                ),
            )
            .hint(format!(
                "the log lines above, from {}, show why",
                log.display()
            ))
            .into())
        }
    }
}
