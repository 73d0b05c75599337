//! `[hooks]`: a command the runtime runs when a worker fails (`on_failure`) or when it gives up
//! on one (`on_give_up`), so that a person hears of it (a desktop notification, a chat
//! webhook; the README has both).
//!
//! A hook runs beside supervision, never in its way. It is started as part of the runtime's
//! tree (so a killed runtime's guard ends it too) but is not the worker's: ending a worker
//! leaves it running. Its output goes to the agent log line by line as `[hook]`, and it is
//! ended once it has run `[hooks] timeout`. One hook runs at a time: an occasion that comes
//! while one runs is logged and skipped, so a crash loop cannot pile hooks up. A runtime about
//! to exit (under a service manager, right after a failure) waits for a running hook, up to
//! its time, so the hook is not killed with the service.
//!
//! The occasion is in the hook's environment: `SYGEN_HOOK` (`on_failure` or `on_give_up`),
//! `SYGEN_REASON` (one line), `SYGEN_EXIT_CODE` or `SYGEN_EXIT_SIGNAL` (how the worker
//! ended, when it did), `SYGEN_RESTARTS`, `SYGEN_FAILURES`, `SYGEN_WORKER_PID`, and
//! `SYGEN_LOG_LINES`: a file holding the agent log's last lines.

use std::{
    path::Path,
    process::{Command, Stdio},
    sync::{
        mpsc::{self, Receiver},
        Mutex, PoisonError,
    },
    thread,
    time::{Duration, Instant},
};

use super::{
    pump,
    state::{LastExit, State},
    Output,
};
use crate::{
    config::HooksConfig,
    platform::{self, Exit, Identity, Request, Tree},
};

/// How many of the agent log's last lines a hook is given.
const LOG_LINES: usize = 50;

/// The file they are in, under the home's `logs/`.
const LOG_LINES_FILE: &str = "hook-log-lines.txt";

/// How long a hook that ignores SIGTERM at its time limit has before SIGKILL.
const GRACE: Duration = Duration::from_secs(2);

/// When a hook runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Occasion {
    Failure,
    GiveUp,
}

impl Occasion {
    fn name(self) -> &'static str {
        match self {
            Occasion::Failure => "on_failure",
            Occasion::GiveUp => "on_give_up",
        }
    }
}

/// What happened, as a hook hears of it.
pub struct Occurrence<'a> {
    pub occasion: Occasion,
    pub reason: &'a str,
    /// The worker it happened to, if one had started.
    pub worker: Option<u32>,
    /// How that worker ended, if it had.
    pub exit: Option<Exit>,
}

/// The hooks of a runtime, and the one running.
pub struct Hooks {
    config: HooksConfig,
    running: Mutex<Option<Running>>,
    /// Hooks started whose exit has not been told yet, newest last (a few at most).
    started: Mutex<Vec<(u32, &'static str)>>,
}

/// How many started hooks are remembered for telling their exit.
const REMEMBERED: usize = 8;

struct Running {
    identity: Identity,
    name: &'static str,
    /// Says when the hook's watch is over: it ended, or was ended.
    over: Receiver<()>,
    deadline: Instant,
}

impl Hooks {
    pub fn new(config: HooksConfig) -> Self {
        Self {
            config,
            running: Mutex::new(None),
            started: Mutex::new(Vec::new()),
        }
    }

    fn running(&self) -> std::sync::MutexGuard<'_, Option<Running>> {
        let mut running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
        if running
            .as_ref()
            .is_some_and(|r| !matches!(r.over.try_recv(), Err(mpsc::TryRecvError::Empty)))
        {
            *running = None;
        }
        running
    }

    /// Whether a hook is set for `occasion`.
    pub fn has(&self, occasion: Occasion) -> bool {
        !self.command(occasion).is_empty()
    }

    fn command(&self, occasion: Occasion) -> &[String] {
        match occasion {
            Occasion::Failure => &self.config.on_failure,
            Occasion::GiveUp => &self.config.on_give_up,
        }
    }

    /// The hook running now, if one is: not part of the worker's tree.
    pub fn running_hook(&self) -> Option<Identity> {
        self.running().as_ref().map(|r| r.identity)
    }

    /// The name of the hook that `pid` was, if it is one whose exit is still to be told.
    pub fn exited(&self, pid: u32) -> Option<&'static str> {
        let mut started = self.started.lock().unwrap_or_else(PoisonError::into_inner);
        let at = started.iter().position(|(hook, _)| *hook == pid)?;
        Some(started.remove(at).1)
    }

    /// Runs the hook for `what` happened, if one is set, with it and the runtime's `state` in
    /// its environment.
    pub fn fire(&self, what: &Occurrence<'_>, state: &State, at: Place<'_>) {
        let occasion = what.occasion;
        let Some((program, args)) = self.command(occasion).split_first() else {
            return;
        };
        let name = occasion.name();
        let mut running = self.running();
        if let Some(busy) = running.as_ref() {
            at.output.event(&format!(
                "hook {name} not run: hook {} (pid {}) is still running",
                busy.name, busy.identity.pid
            ));
            return;
        }
        let mut hook = Command::new(program);
        hook.args(args)
            .current_dir(at.home)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        environment(&mut hook, what, state, at.home);
        let mut child = match at.tree.spawn_hook(&mut hook) {
            Ok(child) => child,
            Err(e) => {
                at.output
                    .event(&format!("hook {name} could not be started: {program}: {e}"));
                return;
            }
        };
        let Some(identity) = Identity::of(child.id()) else {
            // Gone already: its output, if any, is still written out below.
            at.output
                .event(&format!("hook {name} started (pid {})", child.id()));
            return;
        };
        at.output
            .event(&format!("hook {name} started (pid {})", identity.pid));
        let mut started = self.started.lock().unwrap_or_else(PoisonError::into_inner);
        if started.len() == REMEMBERED {
            started.remove(0);
        }
        started.push((identity.pid, name));
        drop(started);
        let (drained, outputs) = mpsc::channel();
        for pipe in [
            child
                .stdout
                .take()
                .map(|p| Box::new(p) as Box<dyn std::io::Read + Send>),
            child
                .stderr
                .take()
                .map(|p| Box::new(p) as Box<dyn std::io::Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let output = at.output.clone();
            pump(pipe, move |line| output.hook(line), drained.clone());
        }
        drop(drained);
        // The reaper owns the hook's exit status, as a worker's.
        drop(child);
        let deadline = Instant::now() + self.config.timeout;
        let (over, watched) = mpsc::channel();
        let (output, timeout) = (at.output.clone(), self.config.timeout);
        thread::spawn(move || {
            watch(identity, name, &outputs, deadline, timeout, &output);
            let _ = over.send(());
        });
        *running = Some(Running {
            identity,
            name,
            over: watched,
            deadline,
        });
    }

    /// Waits for a running hook to be over, up to its time: for a runtime about to exit.
    /// Answers the hook's pid, if one ran.
    pub fn wait(&self, output: &Output) -> Option<u32> {
        let running = self.running().take()?;
        let left = running.deadline.saturating_duration_since(Instant::now());
        output.event(&format!(
            "waiting up to {} for hook {} (pid {}) to finish",
            humantime::format_duration(Duration::from_secs(left.as_secs().max(1))),
            running.name,
            running.identity.pid
        ));
        let _ = running.over.recv_timeout(left + GRACE + GRACE);
        Some(running.identity.pid)
    }
}

/// Where a hook runs: the runtime's tree, its output, its home.
pub struct Place<'a> {
    pub tree: &'a Tree,
    pub output: &'a Output,
    pub home: &'a Path,
}

/// The occasion, in the hook's environment.
fn environment(hook: &mut Command, what: &Occurrence<'_>, state: &State, home: &Path) {
    hook.env("SYGEN_HOOK", what.occasion.name())
        .env("SYGEN_REASON", what.reason)
        .env("SYGEN_RESTARTS", state.restarts.to_string())
        .env("SYGEN_FAILURES", state.failures.to_string());
    if let Some(exit) = what.exit {
        let exit = LastExit::of(exit, std::time::SystemTime::now());
        if let Some(code) = exit.code {
            hook.env("SYGEN_EXIT_CODE", code.to_string());
        }
        if let Some(signal) = exit.signal {
            hook.env("SYGEN_EXIT_SIGNAL", signal.to_string());
        }
    }
    if let Some(worker) = what.worker {
        hook.env("SYGEN_WORKER_PID", worker.to_string());
    }
    let logs = home.join("logs");
    let lines = sygen_backend_api::sdk::fs::tail_lines(&logs.join("agent.log"), LOG_LINES)
        .unwrap_or_default();
    let file = logs.join(LOG_LINES_FILE);
    let mut text = lines.join("\n");
    text.push('\n');
    if sygen_backend_api::sdk::fs::write_atomic(&file, text.as_bytes(), Some(0o600)).is_ok() {
        hook.env("SYGEN_LOG_LINES", file);
    }
}

/// Waits for a hook's output to end (which it does when the hook and whatever it started
/// are gone), until `deadline`; then ends the hook if it still runs.
fn watch(
    hook: Identity,
    name: &str,
    outputs: &Receiver<()>,
    deadline: Instant,
    timeout: Duration,
    output: &Output,
) {
    while outputs
        .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        .is_ok()
    {}
    if !hook.is_alive() {
        return;
    }
    output.event(&format!(
        "hook {name} (pid {}) still ran after {}: ending it",
        hook.pid,
        humantime::format_duration(timeout)
    ));
    let _ = platform::send(hook, Request::Stop);
    let gone = Instant::now() + GRACE;
    while hook.is_alive() && Instant::now() < gone {
        thread::sleep(Duration::from_millis(50));
    }
    if hook.is_alive() {
        let _ = platform::send(hook, Request::Kill);
    }
}
