//! `sygen stop` and `sygen restart`: act on the running instance found through the pid files
//! in the sygen home, whether a service manager started it or a person did.

use std::{
    path::Path,
    thread,
    time::{Duration, Instant},
};

use anyhow::Result;
use nix::{
    sys::signal::{kill, killpg, Signal},
    unistd::Pid,
};

use crate::{
    description,
    exit::{Exit, Failure},
    loader::{self, Choice},
    progress::Progress,
    runtime::{
        config::Config,
        pidfile::{self, is_alive, RUNTIME_FILE, WORKER_FILE},
    },
    wait,
};

/// Extra time, beyond the worker's stop timeout, that the runtime gets to wind down.
const GRACE: Duration = Duration::from_secs(5);

pub fn stop(backend_file: Option<&Path>) -> Result<()> {
    let home = description::sygen_home()?;
    let progress = Progress::start("stopping sygen");
    let mut stopped = Vec::new();
    if stop_service(backend_file, &home)? {
        stopped.push("the sygen service".to_owned());
    }
    stopped.extend(end_processes(&home)?);
    drop(progress);
    if stopped.is_empty() {
        println!("nothing running: no sygen service or process to stop");
    } else {
        println!("stopped {}", stopped.join(", "));
    }
    Ok(())
}

/// Ends what the pid files in `home` name and is still alive: the runtime (which stops its
/// worker gracefully on SIGTERM), then whatever is left of the worker's process group.
/// Removes the pid files and answers what it ended. Also what `sygen service stop` and
/// `uninstall` run after the backend, for a service manager that ends only the runtime.
pub fn end_processes(home: &Path) -> Result<Vec<String>> {
    let config = Config::load(&home.join("config.toml"))?;
    let mut ended = Vec::new();
    let (runtime, worker) = live_processes(home);
    let timeout = config.agent.stop_timeout + GRACE;
    if let Some(pid) = runtime {
        terminate(
            pid,
            timeout,
            |signal| kill(Pid::from_raw(pid), signal),
            || is_alive(pid),
        );
        ended.push(format!("runtime {pid}"));
    }
    if let Some(group) = worker.filter(|&pgid| group_alive(pgid)) {
        terminate(
            group,
            timeout,
            |signal| killpg(Pid::from_raw(group), signal),
            || group_alive(group),
        );
        ended.push(format!("worker process group {group}"));
    }
    for file in [RUNTIME_FILE, WORKER_FILE] {
        let _ = std::fs::remove_file(home.join(file));
    }
    Ok(ended)
}

/// The live runtime and worker process group the pid files in `home` name.
fn live_processes(home: &Path) -> (Option<i32>, Option<i32>) {
    let runtime = pidfile::read_live(&home.join(RUNTIME_FILE));
    let worker = pidfile::read(&home.join(WORKER_FILE)).filter(|&pgid| group_alive(pgid));
    (runtime, worker)
}

/// What [`end_processes`] would end now.
pub fn running_processes(home: &Path) -> Vec<String> {
    let (runtime, worker) = live_processes(home);
    runtime
        .map(|pid| format!("runtime {pid}"))
        .into_iter()
        .chain(worker.map(|group| format!("worker process group {group}")))
        .collect()
}

/// Stops the service through the backend when it is installed and running, so the service
/// manager does not start again what `stop` is about to end. Answers whether it did.
fn stop_service(backend_file: Option<&Path>, home: &Path) -> Result<bool> {
    let choice = backend_file.map_or(Choice::Default, Choice::Flag);
    let backend = match loader::select(choice, home) {
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

/// Sends SIGTERM, waits up to `timeout` for `alive` to turn false, then sends SIGKILL.
fn terminate(
    id: i32,
    timeout: Duration,
    send: impl Fn(Signal) -> nix::Result<()>,
    alive: impl Fn() -> bool,
) {
    let _ = send(Signal::SIGTERM);
    if wait_until(timeout, || !alive()) {
        return;
    }
    tracing::info!("{id} ignored SIGTERM: killing it");
    let _ = send(Signal::SIGKILL);
    wait_until(GRACE, || !alive());
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

/// Whether any live (not zombie) process is in process group `pgid`.
fn group_alive(pgid: i32) -> bool {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return killpg(Pid::from_raw(pgid), None).is_ok();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .any(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|stat| {
                    // Fields after the command name: state, ppid, pgrp, …
                    let mut fields = stat.rsplit_once(')')?.1.split_whitespace();
                    let state = fields.next()?;
                    let pgrp: i32 = fields.nth(1)?.parse().ok()?;
                    Some(pgrp == pgid && state != "Z")
                })
                .unwrap_or(false)
        })
}

pub fn restart() -> Result<()> {
    let home = description::sygen_home()?;
    let config = Config::load(&home.join("config.toml"))?;
    let Some(runtime) = pidfile::read_live(&home.join(RUNTIME_FILE)) else {
        return Err(
            Failure::new(Exit::Failed, "sygen is not running: nothing to restart")
                .hint("start it with `sygen service start` (or in the foreground: `sygen run`)")
                .into(),
        );
    };
    let worker_file = home.join(WORKER_FILE);
    let old = pidfile::read(&worker_file);
    kill(Pid::from_raw(runtime), Signal::SIGUSR1).map_err(|e| {
        Failure::new(
            Exit::Failed,
            format!("cannot signal the sygen runtime (pid {runtime}): {e}"),
        )
    })?;
    let timeout = config.agent.stop_timeout + GRACE;
    let waiting = format!("waiting for the runtime (pid {runtime}) to replace the worker");
    let progress = Progress::start(&waiting);
    let started = wait_until(timeout, || {
        progress.update(&waiting);
        pidfile::read(&worker_file).is_some_and(|new| Some(new) != old && is_alive(new))
    });
    drop(progress);
    match pidfile::read(&worker_file).filter(|_| started) {
        Some(new) => {
            let old = old.map_or("none".to_owned(), |pid| pid.to_string());
            println!("restarted the worker: pid {old} → {new}");
            Ok(())
        }
        None => {
            let log = home.join("logs/agent.log");
            wait::show_file_logs(&log);
            Err(Failure::new(
                Exit::Failed,
                format!(
                    "the runtime (pid {runtime}) did not start a new worker within {}",
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
