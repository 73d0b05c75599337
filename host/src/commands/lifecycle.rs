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

use super::{cli::LifecycleWait, context::Context, wait};
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

/// How long the tree of a runtime that has just ended gets to end on its own (the worker on its
/// parent-death signal, the rest by the guard) before sygen ends what is left.
const SETTLE: Duration = Duration::from_secs(2);

/// The stop timeout when no record says one: the configuration's default.
const DEFAULT_STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// `sygen stop [--timeout <duration>] [--no-wait]`.
pub fn stop(wait: LifecycleWait, backend_file: Option<&Path>) -> Result<()> {
    let home = home::sygen_home()?;
    Config::warn_if_invalid(&home, "stop");
    let progress = Progress::start("stopping sygen");
    let mut stopped = Vec::new();
    if stop_service(backend_file)? {
        stopped.push("the sygen service".to_owned());
    }
    if wait.no_wait {
        drop(progress);
        return ask_to_stop(&home, stopped);
    }
    let ended = end_processes(&home, wait.timeout);
    drop(progress);
    if !stopped.is_empty() && ended.is_err() {
        println!("stopped {}", stopped.join(", "));
    }
    stopped.extend(ended?);
    if stopped.is_empty() {
        println!("nothing running: no sygen service or process to stop");
    } else {
        println!("stopped {}", stopped.join(", "));
    }
    Ok(())
}

/// `stop --no-wait`: the stop request to the runtime, and nothing waited for or killed.
fn ask_to_stop(home: &Path, mut asked: Vec<String>) -> Result<()> {
    match instance::runtime(home) {
        Runtime::Running(runtime) => {
            let pid = runtime.identity.pid;
            let sent = platform::send(runtime.identity, Request::Stop).map_err(|e| {
                Failure::new(
                    Exit::Failed,
                    format!("cannot signal the sygen runtime (pid {pid}): {e}"),
                )
            })?;
            if sent {
                asked.push(format!("runtime {pid}"));
            }
        }
        Runtime::Unproven { pid } => {
            return Err(unproven(home, pid, "it was not asked to stop").into())
        }
        Runtime::Elsewhere { pid } => {
            return Err(elsewhere(home, pid, "it was not asked to stop").into())
        }
        Runtime::NotRunning => {}
    }
    match asked.is_empty() {
        true => println!("nothing running: no sygen service or process to stop"),
        false => println!(
            "asked {} to stop, without waiting (`sygen stop` ends what is left)",
            asked.join(", ")
        ),
    }
    Ok(())
}

/// Ends the runtime of `home` (which stops its worker's tree on the stop request), then
/// whatever of a tree is left: what a killed runtime left behind, or what outlived the
/// runtime's own stop. Removes stale pid files and answers what it ended. Also what `sygen
/// service stop` and `uninstall` run after the backend, for a service manager that ends only
/// the runtime.
///
/// A runtime that holds the home but cannot be proven or reached (another pid namespace) is
/// an error, and then nothing is ended: its worker's tree is its own, not a leftover.
/// `timeout`: how long the runtime gets to stop before it is killed; by default its worker's
/// stop timeout and a little more.
pub fn end_processes(home: &Path, timeout: Option<Duration>) -> Result<Vec<String>, Failure> {
    let mut ended = Vec::new();
    let worker = instance::recorded_worker(home);
    let mut stop_timeout = worker.map_or(DEFAULT_STOP_TIMEOUT, |w| w.stop_timeout);
    match instance::runtime(home) {
        Runtime::Running(runtime) => {
            stop_timeout = runtime.stop_timeout;
            let timeout = timeout.unwrap_or(stop_timeout + GRACE);
            end_runtime(runtime.identity, timeout)?;
            ended.push(format!("runtime {}", runtime.identity.pid));
        }
        Runtime::Unproven { pid } => return Err(unproven(home, pid, "nothing was stopped")),
        Runtime::Elsewhere { pid } => return Err(elsewhere(home, pid, "nothing was stopped")),
        Runtime::NotRunning => {}
    }
    let marker = instance::marker(home);
    let group = worker.map(|w| w.identity);
    let strays = || platform::strays(Owner::Home(&marker), group);
    // A runtime that has just ended (stopped here, or killed by its service manager) takes its
    // worker with it and its guard ends the rest: only what outlasts that is left behind, and
    // sygen never says it ended what was ending anyway.
    wait_until(timeout.map_or(SETTLE, |t| t.min(SETTLE)), || {
        strays().is_empty()
    });
    let left = platform::end_all(strays, timeout.unwrap_or(stop_timeout));
    if !left.is_empty() {
        ended.push(format!("what its worker left ({})", platform::pids(&left)));
    }
    instance::remove_stale(home);
    Ok(ended)
}

/// Asks the runtime to stop, then kills it if it has not within `timeout`; an error unless it
/// is gone.
fn end_runtime(runtime: Identity, timeout: Duration) -> Result<(), Failure> {
    let cannot = |e: std::io::Error| {
        Failure::new(
            Exit::Failed,
            format!("cannot signal the sygen runtime (pid {}): {e}", runtime.pid),
        )
        .hint("nothing was stopped; `sygen doctor` checks the set-up")
    };
    if !platform::send(runtime, Request::Stop).map_err(cannot)? {
        return Ok(());
    }
    if wait_until(timeout, || !runtime.is_alive()) {
        return Ok(());
    }
    tracing::info!(
        "runtime {} ignored the stop request: killing it",
        runtime.pid
    );
    platform::send(runtime, Request::Kill).map_err(cannot)?;
    if wait_until(GRACE, || !runtime.is_alive()) {
        return Ok(());
    }
    Err(Failure::new(
        Exit::Failed,
        format!(
            "the sygen runtime (pid {}) is still alive after SIGKILL",
            runtime.pid
        ),
    )
    .hint("it may be stuck in the kernel (a hung mount); `ps` shows its state"))
}

/// The runtime holding `home` cannot be proven: `what` happened (nothing, so far).
fn unproven(home: &Path, pid: Option<u32>, what: &str) -> Failure {
    let pid = pid.map_or(String::new(), |p| format!(" (it names pid {p})"));
    Failure::new(
        Exit::Failed,
        format!(
            "{} is locked, but not by a process sygen can prove is its runtime{pid}: {what}",
            home.join(instance::RUNTIME_FILE).display()
        ),
    )
    .hint(
        "sygen signals no process it cannot prove it started; if sygen runs in a container or \
         another pid namespace, stop it there",
    )
}

/// The runtime holding `home` is in another pid namespace: `what` happened (nothing).
fn elsewhere(home: &Path, pid: u32, what: &str) -> Failure {
    Failure::new(
        Exit::Failed,
        format!(
            "sygen's runtime holds {} from another pid namespace (pid {pid} there), which this \
             sygen cannot signal: {what}",
            home.join(instance::RUNTIME_FILE).display()
        ),
    )
    .hint("run `sygen stop` or `sygen restart` where it runs (in that container or namespace)")
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
    // A home no service definition can name (not UTF-8) has no service to stop: its
    // processes, which `sygen run` started all the same, still are.
    let spec = match description::build() {
        Ok(description) => description.to_spec(),
        Err(error) => {
            eprintln!(
                "sygen: no service can run this sygen home, stopping the processes only: {error:#}"
            );
            return Ok(false);
        }
    };
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

/// `sygen restart [--timeout <duration>] [--no-wait]`.
pub fn restart(wait: LifecycleWait) -> Result<()> {
    let home = home::sygen_home()?;
    Config::warn_if_invalid(&home, "restart");
    let not_running = || {
        Failure::new(Exit::Failed, "sygen is not running: nothing to restart")
            .hint("start it with `sygen service start` (or in the foreground: `sygen run`)")
    };
    let runtime = match instance::runtime(&home) {
        Runtime::Running(runtime) => runtime,
        Runtime::Unproven { pid } => {
            return Err(unproven(&home, pid, "nothing was restarted").into())
        }
        Runtime::Elsewhere { pid } => {
            return Err(elsewhere(&home, pid, "nothing was restarted").into())
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
    if wait.no_wait {
        println!("asked the runtime (pid {pid}) to replace its worker");
        return Ok(());
    }
    let timeout = wait.timeout.unwrap_or(runtime.stop_timeout + GRACE);
    let new = until_replaced(&home, runtime.identity, old, timeout)?;
    match old {
        Some(old) => println!("restarted the worker: pid {} → {}", old.pid, new.pid),
        // None ran when asked: another restart had ended it, or the runtime was waiting to
        // try again.
        None => println!("the runtime (pid {pid}) runs a new worker: pid {}", new.pid),
    }
    Ok(())
}

/// Waits until the runtime runs a worker other than `old`; an error, after the log lines that
/// say why, when it does not within `timeout` or exits instead.
fn until_replaced(
    home: &Path,
    runtime: Identity,
    old: Option<Identity>,
    timeout: Duration,
) -> Result<Identity, Failure> {
    let pid = runtime.pid;
    let waiting = format!("waiting for the runtime (pid {pid}) to replace the worker");
    let progress = Progress::start(&waiting);
    let new_worker = || {
        instance::live_worker(home)
            .map(|w| w.identity)
            .filter(|new| Some(*new) != old)
    };
    wait_until(timeout, || {
        progress.update(&waiting);
        new_worker().is_some() || !runtime.is_alive()
    });
    drop(progress);
    if let Some(new) = new_worker().filter(|_| runtime.is_alive()) {
        return Ok(new);
    }
    let log = home.join("logs/agent.log");
    wait::show_file_logs(&log);
    let what = match runtime.is_alive() {
        true => format!(
            "did not start a new worker within {}",
            humantime::format_duration(timeout)
        ),
        false => "exited instead of replacing its worker (a stop came first?)".to_owned(),
    };
    Err(
        Failure::new(Exit::Failed, format!("the runtime (pid {pid}) {what}")).hint(format!(
            "the log lines above, from {}, show why",
            log.display()
        )),
    )
}
