//! `sygen run`: the process every service definition starts. It holds the sygen home's
//! instance lock, runs the worker as the root of a process tree it owns, logs what happens to
//! `agent.log`, and decides what a worker's exit means:
//!
//! - 42, "restart me": a new worker at once (with a growing pause only after many quick ones,
//!   so a crash loop never becomes a fork storm);
//! - 0, "done": the runtime exits 0, and no service manager restarts it;
//! - anything else: under a service manager (`SYGEN_SUPERVISOR=1`) the runtime exits with that
//!   code so the manager's restart policy applies; otherwise (`--supervise`, or run by hand) it
//!   retries itself a few times with a pause, then gives up with that code.
//!
//! Whenever a worker is gone (it exited, or was stopped for a restart or a stop request), so is
//! everything it started: the tree gets SIGTERM, then SIGKILL after `stop_timeout`. A stop
//! request (SIGTERM, SIGINT) ends the tree and exits 0; a restart request (SIGUSR1, `sygen
//! restart`) replaces it. A killed runtime's tree is ended by its guard ([`guard`]: on Unix;
//! the Job object on Windows); what outlives both, the next runtime ends first. The
//! runtime idles on blocking waits only: a thread each for requests, reaping, each output pipe
//! and the echo, and the main thread on a channel.
//!
//! Each worker gets a notify socket of the runtime's (`notify`, systemd's protocol): with
//! `[agent] ready = "notify"` it is up once it says `READY=1` (or is restarted after
//! `ready_timeout`), and with `[agent] watchdog` it is restarted when it stops saying
//! `WATCHDOG=1`. The runtime then waits with a deadline, so it wakes once per watchdog period
//! at most, and never without one.
//!
//! Here also: the built-in agent (`agent`), the instance record (`instance`: the pid files
//! `stop`, `restart` and `doctor` read), the runtime's account of its worker (`state`: what
//! `sygen service status` shows), the agent log (`log`, `echo`) and the home's trust check
//! (`home_trust`). The runtime uses `config`, `worker_env`, `home`, `file`, `exit` and
//! `platform`; nothing of backends: a service manager starts it, it starts no service manager.

pub mod agent;
mod echo;
pub mod home_trust;
mod hooks;
pub mod instance;
mod log;
mod notify;
pub mod state;

use std::{
    io::{BufRead, BufReader, Read},
    path::Path,
    process::{Command, ExitCode, Stdio},
    sync::mpsc::{self, Receiver, RecvTimeoutError, Sender},
    thread,
    time::{Duration, Instant, SystemTime},
};

use anyhow::{Context as _, Result};

use self::{
    echo::Echo,
    hooks::{Hooks, Occasion, Occurrence, Place},
    instance::Claim,
    log::AgentLog,
    notify::{Notify, Said},
    state::{At, LastExit, Phase, State, WorkerRun},
};
use crate::{
    config::{self, Config, Readiness},
    home,
    platform::{self, pids, Exit, Identity, Listener, Owner, Request, StdStream, Tree},
    worker_env,
};

/// How often a guard looks at its runtime's descendants.
const GUARD_LOOK: Duration = Duration::from_secs(1);

/// The exit code with which a worker asks to be restarted.
pub const RESTART_CODE: i32 = 42;

/// A worker that lived less than this counts as a quick restart.
const QUICK: Duration = Duration::from_secs(1);

/// How long, once a worker's tree is gone, its output may take to arrive in full.
const OUTPUT_DRAIN: Duration = Duration::from_secs(1);

/// The longest line written as one; a longer one is split, so memory stays bounded.
const MAX_LINE: usize = 64 * 1024;

enum Event {
    /// A child of the runtime exited (the worker, or an orphan of its tree).
    Exited {
        pid: u32,
        exit: Exit,
    },
    Request(Request),
    /// The worker said something on its notify socket that the runtime acts on.
    Notified,
}

/// What to do after a worker is gone.
enum Next {
    Restart,
    Exit(u8),
}

struct Worker {
    pid: u32,
    identity: Option<Identity>,
    started: Instant,
    /// One message per output pipe, once it is closed and written out.
    outputs: Receiver<()>,
    pipes: usize,
}

/// Everything the runtime says: to `agent.log`, and echoed to its own streams.
#[derive(Clone)]
struct Output {
    log: AgentLog,
    echo: Echo,
}

impl Output {
    fn event(&self, message: &str) {
        let problem = self.log.line("runtime", message);
        self.echo.event(message);
        if let Some(problem) = problem {
            self.echo.event(&problem);
        }
    }

    fn hook(&self, line: &[u8]) {
        let text = String::from_utf8_lossy(line);
        let problem = self.log.line("hook", &text);
        self.echo.event(text.trim_end());
        if let Some(problem) = problem {
            self.echo.event(&problem);
        }
    }

    fn worker(&self, stream: StdStream, line: &[u8]) {
        let problem = self.log.line(stream.name(), &String::from_utf8_lossy(line));
        self.echo.worker(stream, line);
        if let Some(problem) = problem {
            self.echo.event(&problem);
        }
    }
}

struct Runtime {
    home: std::path::PathBuf,
    config: Config,
    output: Output,
    claim: Claim,
    tree: Tree,
    events: Receiver<Event>,
    self_supervised: bool,
    /// What `state.json` says; its counts are the ones the runtime goes by.
    state: State,
    /// Whether writing `state.json` failed already: said once, not at every change.
    state_unwritable: bool,
    /// The workers' notify socket, where the platform has one.
    notify: Option<Notify>,
    /// What the current worker said on it, as of the last look.
    said: Said,
    hooks: Hooks,
}

pub fn run(supervise: bool) -> Result<ExitCode> {
    let home = home::sygen_home()?;
    home_trust::check(&home).map_err(home_trust::refusal)?;
    let mut config = Config::of_home(&home)?;
    std::fs::create_dir_all(&home).with_context(|| format!("cannot create {}", home.display()))?;
    let claim = Claim::acquire(&home, config.agent.stop_timeout)?;
    let logs = home.join("logs");
    let log = AgentLog::open(&logs, config.logs.max_bytes, config.logs.keep)
        .with_context(|| format!("cannot open the agent log in {}", logs.display()))?;
    let output = Output {
        echo: Echo::start(log.clone()),
        log,
    };
    let (sender, events) = mpsc::channel();
    let requests = sender.clone();
    platform::listen(Listener::Runtime, move |request| {
        let _ = requests.send(Event::Request(request));
    })
    .context("cannot listen for stop and restart requests")?;
    let notify = start_notify(&config, &sender)?;
    let marker = instance::marker(&home);
    let mut tree = Tree::new(&marker, move |pid, exit| {
        let _ = sender.send(Event::Exited { pid, exit });
    })
    .context("cannot take charge of the worker's processes")?;
    let guarded = std::env::current_exe().and_then(|sygen| {
        let mut guard = Command::new(sygen);
        let stop_timeout = config.agent.stop_timeout.as_millis().to_string();
        let this = Identity::this_process().unwrap_or(Identity {
            pid: std::process::id(),
            start: 0,
        });
        let (pid, start) = (this.pid.to_string(), this.start.to_string());
        guard.args(["guard", tree.marker(), &stop_timeout, &pid, &start]);
        tree.guard(guard)
    });
    let under_service_manager = std::env::var("SYGEN_SUPERVISOR").as_deref() == Ok("1");
    let state = State::first(std::process::id(), State::read(&home), SystemTime::now());
    let hooks = Hooks::new(std::mem::take(&mut config.hooks));
    let mut runtime = Runtime {
        home,
        config,
        output,
        claim,
        tree,
        events,
        self_supervised: supervise || !under_service_manager,
        state,
        state_unwritable: false,
        notify,
        said: Said::default(),
        hooks,
    };
    runtime.note(&format!("runtime started (pid {})", std::process::id()));
    if let Err(error) = guarded {
        runtime.note(&format!(
            "cannot start the guard that ends the worker's processes should the runtime be killed \
             ({error}): the next `sygen run` or `sygen stop` would end them"
        ));
    }
    runtime.end_strays(&marker);
    let code = runtime.supervise();
    runtime.note(&format!("runtime exiting with code {code}"));
    runtime.output.echo.flush(OUTPUT_DRAIN);
    Ok(ExitCode::from(code))
}

/// The workers' notify socket. Where the platform has none, a configuration that needs one is
/// refused, and otherwise the workers go without.
fn start_notify(config: &Config, events: &Sender<Event>) -> Result<Option<Notify>> {
    let this = Identity::this_process().map_or(std::process::id().to_string(), |i| {
        format!("{}.{}", i.pid, i.start)
    });
    let wake = events.clone();
    match Notify::start(&format!("sygen/{this}/notify"), move || {
        let _ = wake.send(Event::Notified);
    }) {
        Ok(notify) => Ok(Some(notify)),
        Err(e) if config.agent.ready == Readiness::Notify || config.agent.watchdog.is_some() => {
            Err(crate::exit::Failure::new(
                crate::exit::Exit::Failed,
                format!("cannot offer the worker a notify socket: {e}"),
            )
            .hint(
                "`[agent] ready = \"notify\"` and `[agent] watchdog` need it: remove them from \
                 config.toml to run without",
            )
            .into())
        }
        Err(e) => {
            tracing::debug!("no notify socket for the workers: {e}");
            Ok(None)
        }
    }
}

/// `sygen guard <marker> <stop timeout in ms>`: what the runtime starts beside its tree (see
/// `Tree::guard`). It reads the workers the runtime announces on its standard input until the
/// runtime is gone and the pipe closes, then ends what is left of that runtime's tree, and
/// only that: after a clean exit, nothing. A runtime started meanwhile has another marker.
///
/// Meanwhile it looks at the runtime's descendants every [`GUARD_LOOK`]: the runtime is their
/// subreaper, so a process that dropped the marker and left the worker's group is still one
/// of them, and is remembered (by identity) to be ended too. What was started and orphaned
/// in the last look before the runtime died can escape; the README says so.
pub fn guard(marker: &str, stop_timeout_ms: u64, runtime: Identity) -> Result<ExitCode> {
    let stop_timeout = Duration::from_millis(stop_timeout_ms.min(config::MAX_STOP_TIMEOUT_MS));
    let owner = Owner::Runtime(marker);
    let (announced, news) = mpsc::channel();
    thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            match serde_json::from_str::<Identity>(&line) {
                Ok(worker) => {
                    let _ = announced.send(worker);
                }
                Err(e) => tracing::debug!("not a worker's identity ({e}): {line}"),
            }
        }
        // Dropping the sender says the runtime is gone.
    });
    let mut worker = None;
    let mut seen: Vec<Identity> = Vec::new();
    loop {
        match news.recv_timeout(GUARD_LOOK) {
            Ok(announced) => worker = Some(announced),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        seen.retain(|p| p.is_alive());
        // Only the very runtime's: a pid it no longer has may name anyone's process.
        if !runtime.is_alive() {
            continue;
        }
        for process in platform::descendants(runtime.pid, owner) {
            if !seen.contains(&process) {
                seen.push(process);
            }
        }
    }
    let left = |seen: &[Identity]| {
        let mut left = platform::strays(owner, worker);
        for process in seen {
            if process.is_alive() && !left.contains(process) {
                left.push(*process);
            }
        }
        left
    };
    let ended = platform::end_all(|| left(&seen), stop_timeout);
    if !ended.is_empty() {
        let logs = Path::new(owner.home()).join("logs");
        let log = AgentLog::open(&logs, u64::MAX, 0)?;
        log.line(
            "guard",
            &format!(
                "the runtime is gone: ended {} process(es) of its tree ({})",
                ended.len(),
                pids(&ended)
            ),
        );
    }
    Ok(ExitCode::SUCCESS)
}

impl Runtime {
    fn note(&self, message: &str) {
        self.output.event(message);
    }

    /// Ends what a runtime that was killed left of its tree.
    fn end_strays(&self, marker: &str) {
        let previous = instance::recorded_worker(&self.home).map(|w| w.identity);
        let timeout = self.config.agent.stop_timeout;
        let ended = platform::end_all(|| platform::strays(Owner::Home(marker), previous), timeout);
        self.note_ended(&ended, "a previous runtime left behind");
    }

    /// Says which processes, `what` they were, were ended; nothing when none were.
    fn note_ended(&self, ended: &[Identity], what: &str) {
        if !ended.is_empty() {
            self.note(&format!(
                "ended {} process(es) {what} ({})",
                ended.len(),
                pids(ended)
            ));
        }
    }

    /// Applies `change` to the state record and writes it out.
    fn record(&mut self, change: impl FnOnce(&mut State)) {
        change(&mut self.state);
        self.state.updated_at = At(SystemTime::now());
        if let Err(e) = self.state.write(&self.home) {
            if !std::mem::replace(&mut self.state_unwritable, true) {
                self.note(&format!(
                    "cannot write {} ({e}): `sygen service status` will not show what the \
                     runtime does",
                    state::STATE_FILE
                ));
            }
        }
    }

    /// Records how the runtime ends, and ends it with `code`: after a failure, once a hook
    /// still running had its time (on a stop request it ends with the rest of the tree).
    fn end(&mut self, phase: Phase, code: u8) -> Next {
        let waited = match phase {
            Phase::Stopped => None,
            _ => self.hooks.wait(&self.output),
        };
        if let Some(hook) = waited {
            // Its exit, which the reaper reports a moment after its output ends.
            let deadline = Instant::now() + OUTPUT_DRAIN;
            while let Ok(event) = self
                .events
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            {
                if let Event::Exited { pid, exit } = event {
                    self.other_exit(pid, exit);
                    if pid == hook {
                        break;
                    }
                }
            }
        }
        self.record(|state| {
            state.phase = phase;
            state.worker = None;
        });
        Next::Exit(code)
    }

    /// Runs the hook for what happened (see `hooks`).
    fn fire(&self, what: &Occurrence<'_>) {
        let place = Place {
            tree: &self.tree,
            output: &self.output,
            home: &self.home,
        };
        self.hooks.fire(what, &self.state, place);
    }

    /// Says how a hook ended; other children of the runtime (orphans of a worker) end quietly.
    fn other_exit(&self, pid: u32, exit: Exit) {
        if let Some(name) = self.hooks.exited(pid) {
            self.note(&format!("hook {name} (pid {pid}) {exit}"));
        }
    }

    /// The processes of `worker`'s tree now: a running hook is not one of them.
    fn worker_tree(&self, worker: &Worker) -> Vec<Identity> {
        let hook = self.hooks.running_hook();
        let mut members = self.tree.members(worker.identity);
        members.retain(|p| Some(*p) != hook);
        members
    }

    /// Records a pause of `length` before the next worker, for `reason`, and takes it.
    fn back_off(&mut self, length: Duration, reason: String) -> Next {
        let next_try = At(SystemTime::now() + length);
        let back_off_ms = length.as_millis().try_into().unwrap_or(u64::MAX);
        self.record(|state| {
            state.phase = Phase::BackingOff {
                back_off_ms,
                next_try,
                reason,
            }
        });
        self.pause(length)
    }

    fn supervise(&mut self) -> u8 {
        loop {
            let next = match self.spawn() {
                Ok(worker) => {
                    let run = WorkerRun {
                        pid: worker.pid,
                        started_at: At(SystemTime::now()),
                    };
                    let (ready, watchdog) = (self.config.agent.ready, self.config.agent.watchdog);
                    self.said = Said::default();
                    self.record(|state| {
                        state.phase = Phase::Running;
                        state.worker = Some(run);
                        state.ready = (ready == Readiness::Notify).then_some(false);
                        state.watchdog_ms = watchdog.map(|w| w.as_millis() as u64);
                        state.status = None;
                    });
                    self.watch(&worker)
                }
                Err(error) => {
                    let reason = format!("cannot start the worker: {error:#}");
                    self.note(&reason);
                    let failed = Occurrence {
                        occasion: Occasion::Failure,
                        reason: &reason,
                        worker: None,
                        exit: None,
                    };
                    self.after_failure(127, Duration::ZERO, &failed)
                }
            };
            match next {
                Next::Restart => self.record(|state| {
                    state.restarts = state.restarts.saturating_add(1);
                }),
                Next::Exit(code) => return code,
            }
        }
    }

    fn spawn(&self) -> Result<Worker> {
        let agent = &self.config.agent;
        let mut command = match agent.command.split_first() {
            Some((program, args)) => {
                let mut command = Command::new(program);
                command.args(args);
                command
            }
            None => {
                let mut command = Command::new(std::env::current_exe()?);
                let interval = humantime::format_duration(agent.heartbeat_interval).to_string();
                command.args(["agent", "--heartbeat-interval", &interval]);
                command
            }
        };
        let working_dir = agent
            .working_dir
            .as_deref()
            .map_or(self.home.as_path(), Path::new);
        // What a service manager gave the runtime is the runtime's, never the worker's.
        for name in ["NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"] {
            command.env_remove(name);
        }
        command.envs(worker_env::for_worker(&self.home, agent)?);
        if let Some(notify) = &self.notify {
            notify.forget();
            command.env("NOTIFY_SOCKET", &notify.address);
            if let Some(period) = agent.watchdog {
                command.env("WATCHDOG_USEC", period.as_micros().to_string());
            }
        }
        command
            .current_dir(working_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = self.tree.spawn(&mut command).with_context(|| {
            let program = command.get_program().to_string_lossy().into_owned();
            format!("{program} (in {})", working_dir.display())
        })?;
        let started = Instant::now();
        let pid = child.id();
        let identity = Identity::of(pid);
        let (drained, outputs) = mpsc::channel();
        let mut pipes = 0;
        if let Some(out) = child.stdout.take() {
            let output = self.output.clone();
            pump(
                out,
                move |line| output.worker(StdStream::Out, line),
                drained.clone(),
            );
            pipes += 1;
        }
        if let Some(err) = child.stderr.take() {
            let output = self.output.clone();
            pump(
                err,
                move |line| output.worker(StdStream::Err, line),
                drained,
            );
            pipes += 1;
        }
        // The reaper owns the child's exit status: `child` is dropped without a wait.
        drop(child);
        if let Some(identity) = identity {
            if let Err(e) = self.claim.set_worker(identity) {
                self.note(&format!("cannot record the worker in worker.pid: {e}"));
            }
        }
        self.note(&format!("worker started (pid {pid})"));
        Ok(Worker {
            pid,
            identity,
            started,
            outputs,
            pipes,
        })
    }

    /// Waits for the worker to exit, a request to arrive or the worker to miss a deadline of
    /// the notify protocol, and says what comes next.
    fn watch(&mut self, worker: &Worker) -> Next {
        loop {
            let event = match self.due(worker) {
                Some((at, _)) => {
                    match self
                        .events
                        .recv_timeout(at.saturating_duration_since(Instant::now()))
                    {
                        Ok(event) => Some(event),
                        Err(RecvTimeoutError::Timeout) => None,
                        Err(RecvTimeoutError::Disconnected) => {
                            return self.end(Phase::Exited { code: 1 }, 1)
                        }
                    }
                }
                None => match self.events.recv() {
                    Ok(event) => Some(event),
                    Err(_) => return self.end(Phase::Exited { code: 1 }, 1),
                },
            };
            match event {
                // A deadline passed: what was said since may have moved it.
                None | Some(Event::Notified) => {
                    self.hear(worker);
                    if let Some((at, why)) = self.due(worker) {
                        if at <= Instant::now() {
                            return self.restart_unresponsive(worker, &why);
                        }
                    }
                }
                Some(Event::Exited { pid, exit }) if pid == worker.pid => {
                    let ran_for = worker.started.elapsed();
                    let last_exit = LastExit::of(exit, SystemTime::now());
                    self.record(|state| {
                        state.worker = None;
                        state.last_exit = Some(last_exit);
                    });
                    let left = self.end_tree(worker, self.config.agent.stop_timeout);
                    self.drain(worker);
                    self.note_ended(&left, "the worker left behind");
                    return self.after_exit(worker.pid, exit, ran_for);
                }
                Some(Event::Exited { pid, exit }) => self.other_exit(pid, exit),
                Some(Event::Request(Request::Restart)) => {
                    self.note("restart requested");
                    if self.stop(worker).0 {
                        self.note("stopping: a stop request arrived during the restart");
                        return self.end(Phase::Stopped, 0);
                    }
                    self.state.quick_restarts = 0;
                    return Next::Restart;
                }
                Some(Event::Request(_)) => {
                    self.note("stopping on request");
                    self.stop(worker);
                    return self.end(Phase::Stopped, 0);
                }
            }
        }
    }

    /// Takes in what the worker said on its notify socket since the last look.
    fn hear(&mut self, worker: &Worker) {
        let Some(notify) = &self.notify else { return };
        let said = notify.said();
        let became_ready = said.ready_at.is_some() && self.said.ready_at.is_none();
        let news = said.ready_at != self.said.ready_at
            || said.status != self.said.status
            || said.watchdog != self.said.watchdog;
        if let (true, Some(at)) = (became_ready, said.ready_at) {
            self.note(&format!(
                "worker {} is ready (READY=1 after {})",
                worker.pid,
                humantime::format_duration(millis(at.saturating_duration_since(worker.started)))
            ));
        }
        self.said = said;
        if news {
            let said = &self.said;
            let (ready, status) = (said.ready_at.is_some(), said.status.clone());
            let watchdog = said.watchdog.or(self.config.agent.watchdog);
            let asked = self.config.agent.ready == Readiness::Notify;
            self.record(|state| {
                state.ready = asked.then_some(ready);
                state.status = status;
                state.watchdog_ms = watchdog.map(|w| w.as_millis() as u64);
            });
        }
    }

    /// The next deadline the worker must meet, and what missing it means: saying `READY=1`
    /// in time (with `ready = "notify"`), then `WATCHDOG=1` once a period (with a watchdog).
    fn due(&self, worker: &Worker) -> Option<(Instant, String)> {
        self.notify.as_ref()?;
        let (said, agent) = (&self.said, &self.config.agent);
        if said.triggered {
            return Some((Instant::now(), "it asked for it (WATCHDOG=trigger)".into()));
        }
        if agent.ready == Readiness::Notify && said.ready_at.is_none() {
            let limit = worker.started + agent.ready_timeout;
            let at = said.extended_until.map_or(limit, |until| until.max(limit));
            let waited = humantime::format_duration(millis(at - worker.started));
            return Some((at, format!("it did not say READY=1 within {waited}")));
        }
        let period = said.watchdog.or(agent.watchdog)?;
        let since = said.last_ping.or(said.ready_at).unwrap_or(worker.started);
        let last = match said.last_ping {
            Some(_) => "its last one",
            None => "none since it started, which was",
        };
        let why = format!(
            "it sent no WATCHDOG=1 for {} ({last} {} ago)",
            humantime::format_duration(period),
            humantime::format_duration(Duration::from_secs(since.elapsed().as_secs()))
        );
        Some((since + period, why))
    }

    /// Ends a worker that missed a deadline (`why`) and starts a new one: a failure of the
    /// worker, never a reason for the runtime to exit.
    fn restart_unresponsive(&mut self, worker: &Worker, why: &str) -> Next {
        self.note(&format!(
            "worker {} is unresponsive: {why}: restarting it",
            worker.pid
        ));
        let (stop_requested, exit) = self.stop(worker);
        let last_exit = exit.map(|exit| LastExit::of(exit, SystemTime::now()));
        self.record(|state| {
            state.worker = None;
            state.failures = state.failures.saturating_add(1);
            state.quick_restarts = 0;
            state.last_exit = last_exit.or(state.last_exit);
        });
        self.fire(&Occurrence {
            occasion: Occasion::Failure,
            reason: &format!("worker {} is unresponsive: {why}", worker.pid),
            worker: Some(worker.pid),
            exit,
        });
        if stop_requested {
            self.note("stopping: a stop request arrived during the restart");
            return self.end(Phase::Stopped, 0);
        }
        Next::Restart
    }

    /// Ends what is left of `worker`'s tree: SIGTERM, SIGKILL after `timeout`. Answers the
    /// processes other than the worker that it signalled.
    fn end_tree(&self, worker: &Worker, timeout: Duration) -> Vec<Identity> {
        let ended = platform::end_all(|| self.worker_tree(worker), timeout);
        ended.into_iter().filter(|p| p.pid != worker.pid).collect()
    }

    /// Waits, briefly, for the worker's output to be written out.
    fn drain(&self, worker: &Worker) {
        let deadline = Instant::now() + OUTPUT_DRAIN;
        for _ in 0..worker.pipes {
            let left = deadline.saturating_duration_since(Instant::now());
            if worker.outputs.recv_timeout(left).is_err() {
                break;
            }
        }
    }

    fn after_exit(&mut self, worker: u32, exit: Exit, ran_for: Duration) -> Next {
        match exit.code() {
            0 => {
                self.note(&format!("worker {exit}: done"));
                self.end(Phase::Exited { code: 0 }, 0)
            }
            RESTART_CODE => {
                self.note(&format!("worker {exit}: restarting it"));
                let state = &mut self.state;
                state.failures = 0;
                state.quick_restarts = if ran_for < QUICK {
                    state.quick_restarts.saturating_add(1)
                } else {
                    0
                };
                let quick = state.quick_restarts;
                let excess = quick.saturating_sub(self.config.agent.quick_restarts);
                if excess == 0 {
                    return Next::Restart;
                }
                let pause = Duration::from_millis(100)
                    .saturating_mul(1 << excess.min(6))
                    .min(Duration::from_secs(5));
                self.note(&format!(
                    "{quick} quick restarts in a row: pausing {}",
                    humantime::format_duration(pause)
                ));
                self.back_off(pause, format!("{quick} quick restarts in a row"))
            }
            code => {
                let reason = format!("worker {exit}");
                self.note(&reason);
                let failed = Occurrence {
                    occasion: Occasion::Failure,
                    reason: &reason,
                    worker: Some(worker),
                    exit: Some(exit),
                };
                self.after_failure(code, ran_for, &failed)
            }
        }
    }

    /// After a worker `failed` (ending with `code`): the hook, then what the supervision policy
    /// says.
    fn after_failure(&mut self, code: i32, ran_for: Duration, failed: &Occurrence<'_>) -> Next {
        let exit_code = u8::try_from(code).unwrap_or(1).max(1);
        let (delay, retries) = (self.config.supervise.delay, self.config.supervise.retries);
        if ran_for >= delay {
            self.state.failures = 0;
        }
        self.state.quick_restarts = 0;
        self.state.failures = self.state.failures.saturating_add(1);
        let failures = self.state.failures;
        let retries_left = !self.self_supervised || failures <= retries;
        if retries_left || !self.hooks.has(Occasion::GiveUp) {
            self.fire(failed);
        }
        if !self.self_supervised {
            self.note(&format!(
                "exiting with code {exit_code}; the service manager decides about a restart"
            ));
            return self.end(Phase::Exited { code: exit_code }, exit_code);
        }
        if failures > retries {
            let reason = format!("the worker failed {failures} times in a row");
            self.note(&format!("giving up: {reason} (last code {code})"));
            self.fire(&Occurrence {
                occasion: Occasion::GiveUp,
                reason: &reason,
                ..*failed
            });
            return self.end(Phase::GaveUp { reason }, exit_code);
        }
        self.note(&format!(
            "retrying in {} (retry {failures} of {retries})",
            humantime::format_duration(delay),
        ));
        self.back_off(
            delay,
            format!("failed {failures} time(s) in a row (retry {failures} of {retries})"),
        )
    }

    /// Waits `length` (bounded by the configuration) before the next worker, still answering
    /// requests.
    fn pause(&mut self, length: Duration) -> Next {
        let deadline = Instant::now() + length;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.events.recv_timeout(left) {
                Err(RecvTimeoutError::Timeout) => return Next::Restart,
                Ok(Event::Request(Request::Restart)) => return Next::Restart,
                Ok(Event::Request(_)) => {
                    self.note("stopping on request");
                    return self.end(Phase::Stopped, 0);
                }
                Ok(Event::Exited { pid, exit }) => self.other_exit(pid, exit),
                Ok(Event::Notified) => continue,
                Err(RecvTimeoutError::Disconnected) => {
                    return self.end(Phase::Exited { code: 1 }, 1)
                }
            }
        }
    }

    /// Stops the worker's whole tree: SIGTERM to every process of it, SIGKILL to what is left
    /// after the stop timeout. Answers whether a stop request arrived meanwhile (which matters
    /// when stopping for a restart), and how the worker ended when it did so in time.
    fn stop(&self, worker: &Worker) -> (bool, Option<Exit>) {
        let timeout = self.config.agent.stop_timeout;
        for process in self.worker_tree(worker) {
            let _ = platform::send(process, Request::Stop);
        }
        let deadline = Instant::now() + timeout;
        let mut stop_requested = false;
        let mut exited = None;
        while exited.is_none() {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.events.recv_timeout(left) {
                Ok(Event::Exited { pid, exit }) if pid == worker.pid => exited = Some(exit),
                Ok(Event::Exited { pid, exit }) => self.other_exit(pid, exit),
                Ok(Event::Notified) => {}
                Ok(Event::Request(request)) => stop_requested |= request != Request::Restart,
                Err(RecvTimeoutError::Timeout) => {
                    self.note(&format!(
                        "worker {} ignored SIGTERM for {}: killing it",
                        worker.pid,
                        humantime::format_duration(timeout)
                    ));
                    break;
                }
                Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        // What is left, the worker included if it ignored SIGTERM, is killed; `end_all` waits
        // until it is gone.
        let left = deadline.saturating_duration_since(Instant::now());
        let ended = self.end_tree(worker, left);
        self.drain(worker);
        self.note_ended(&ended, "more of the worker's tree");
        (stop_requested, exited)
    }
}

/// Copies a process's output (a worker's, a hook's), line by line, to `write`; a line longer
/// than [`MAX_LINE`] goes as several. Says on `done` when the pipe is closed and everything is
/// written.
fn pump(
    pipe: impl Read + Send + 'static,
    write: impl Fn(&[u8]) + Send + 'static,
    done: Sender<()>,
) {
    thread::spawn(move || {
        let mut reader = BufReader::with_capacity(MAX_LINE, pipe);
        let mut line = Vec::with_capacity(1024);
        loop {
            let room = (MAX_LINE - line.len()) as u64;
            let read = (&mut reader).take(room).read_until(b'\n', &mut line);
            if !matches!(read, Ok(n) if n > 0) {
                if !line.is_empty() {
                    write(&line);
                }
                break;
            }
            if line.ends_with(b"\n") {
                write(&line);
                line.clear();
            } else if line.len() >= MAX_LINE {
                let carry = split_at_a_character(&mut line);
                write(&line);
                line = carry;
            }
        }
        let _ = done.send(());
    });
}

/// `duration` to the millisecond, as people read it.
fn millis(duration: Duration) -> Duration {
    Duration::from_millis(duration.as_millis().try_into().unwrap_or(u64::MAX))
}

/// Cuts an over-long `line` at the last whole UTF-8 character, answering the cut-off bytes.
fn split_at_a_character(line: &mut Vec<u8>) -> Vec<u8> {
    let tail = line.len().saturating_sub(3);
    let cut = match std::str::from_utf8(&line[tail..]) {
        Ok(_) => line.len(),
        Err(e) if e.error_len().is_none() => tail + e.valid_up_to(),
        Err(_) => line.len(),
    };
    line.split_off(cut)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_is_cut_between_characters() {
        let mut line = "ab€".as_bytes()[..4].to_vec();
        assert_eq!(split_at_a_character(&mut line), "€".as_bytes()[..2]);
        assert_eq!(line, b"ab");
        let mut whole = b"abc".to_vec();
        assert!(split_at_a_character(&mut whole).is_empty());
        assert_eq!(whole, b"abc");
    }
}
