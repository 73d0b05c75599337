//! `sygen run`: the process every service definition starts. It runs the worker as a child
//! in its own process group, logs what happens to `agent.log`, and decides what a worker's exit
//! means:
//!
//! - 42, "restart me": a new worker at once (with a growing pause only after many quick ones,
//!   so a crash loop never becomes a fork storm);
//! - 0, "done": the runtime exits 0, and no service manager restarts it;
//! - anything else: under a service manager (`SYGEN_SUPERVISOR=1`) the runtime exits with that
//!   code so the manager's restart policy applies; otherwise (`--supervise`, or run by hand) it
//!   retries itself a few times with a pause, then gives up with that code.
//!
//! SIGTERM and SIGINT stop the worker (TERM, then KILL after a timeout) and exit 0; SIGUSR1
//! (`sygen restart`) replaces the worker. The runtime idles on blocking waits only: one thread
//! per signal source, worker exit and output pipe, and the main thread on a channel.

pub mod config;
mod log;
pub mod pidfile;

use std::{
    io::{BufRead, BufReader, Read, Write},
    path::Path,
    process::{Command, ExitCode, ExitStatus, Stdio},
    sync::mpsc::{self, Receiver, RecvTimeoutError, Sender},
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result};
use nix::{
    sys::signal::{killpg, Signal},
    unistd::Pid,
};
use signal_hook::{
    consts::{SIGINT, SIGTERM, SIGUSR1},
    iterator::Signals,
};

use self::{config::Config, log::AgentLog, pidfile::Claim};
use crate::description;

/// The exit code with which a worker asks to be restarted.
pub const RESTART_CODE: i32 = 42;

/// A worker that lived less than this counts as a quick restart.
const QUICK: Duration = Duration::from_secs(1);

/// How long, after a worker exits, its output may take to arrive in full.
const OUTPUT_DRAIN: Duration = Duration::from_secs(1);

enum Event {
    Exited {
        status: ExitStatus,
        ran_for: Duration,
    },
    Signal(i32),
}

/// What to do after a worker is gone.
enum Next {
    Restart,
    Exit(u8),
}

struct Worker {
    pid: u32,
}

struct Runtime {
    home: std::path::PathBuf,
    config: Config,
    log: AgentLog,
    claim: Claim,
    events: Receiver<Event>,
    sender: Sender<Event>,
    self_supervised: bool,
    failures_in_a_row: u32,
    quick_restarts_in_a_row: u32,
}

pub fn run(supervise: bool) -> Result<ExitCode> {
    let home = description::sygen_home()?;
    let config = Config::load(&home.join("config.toml"))?;
    let claim = Claim::acquire(&home)?;
    let logs = home.join("logs");
    let log = AgentLog::open(&logs, config.logs.max_bytes, config.logs.keep)
        .with_context(|| format!("cannot open the agent log in {}", logs.display()))?;
    let (sender, events) = mpsc::channel();
    let mut signals =
        Signals::new([SIGTERM, SIGINT, SIGUSR1]).context("cannot install signal handlers")?;
    let signal_sender = sender.clone();
    thread::spawn(move || {
        for signal in signals.forever() {
            if signal_sender.send(Event::Signal(signal)).is_err() {
                break;
            }
        }
    });
    let under_service_manager = std::env::var("SYGEN_SUPERVISOR").as_deref() == Ok("1");
    let mut runtime = Runtime {
        home,
        config,
        log,
        claim,
        events,
        sender,
        self_supervised: supervise || !under_service_manager,
        failures_in_a_row: 0,
        quick_restarts_in_a_row: 0,
    };
    runtime.note(&format!("runtime started (pid {})", std::process::id()));
    let code = runtime.supervise();
    runtime.note(&format!("runtime exiting with code {code}"));
    Ok(ExitCode::from(code))
}

impl Runtime {
    /// One of the runtime's own events: to `agent.log` and to stderr (the service's journal).
    fn note(&self, message: &str) {
        self.log.line("runtime", message);
        eprintln!("sygen: {message}");
    }

    fn supervise(&mut self) -> u8 {
        loop {
            let next = match self.spawn() {
                Ok(worker) => self.watch(&worker),
                Err(error) => {
                    self.note(&format!("cannot start the worker: {error:#}"));
                    self.after_failure(127, Duration::ZERO)
                }
            };
            match next {
                Next::Restart => continue,
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
                command.arg("agent");
                command
            }
        };
        let working_dir = agent
            .working_dir
            .as_deref()
            .map_or(self.home.as_path(), Path::new);
        command
            .envs(&agent.env)
            .current_dir(working_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        #[cfg(target_os = "linux")]
        end_with_the_runtime(&mut command);
        let mut child = command.spawn().with_context(|| {
            let program = command.get_program().to_string_lossy().into_owned();
            format!("{program} (in {})", working_dir.display())
        })?;
        let started = Instant::now();
        let pid = child.id();
        // The exit is reported once the output is written (or after a second, when a
        // grandchild keeps the pipes open), so no line is lost to the runtime exiting.
        let (drained, outputs_done) = mpsc::channel();
        let mut outputs = 0;
        if let Some(out) = child.stdout.take() {
            pump(
                out,
                self.log.clone(),
                "stdout",
                std::io::stdout,
                drained.clone(),
            );
            outputs += 1;
        }
        if let Some(err) = child.stderr.take() {
            pump(err, self.log.clone(), "stderr", std::io::stderr, drained);
            outputs += 1;
        }
        let sender = self.sender.clone();
        thread::spawn(move || {
            if let Ok(status) = child.wait() {
                let ran_for = started.elapsed();
                let deadline = Instant::now() + OUTPUT_DRAIN;
                for _ in 0..outputs {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if outputs_done.recv_timeout(left).is_err() {
                        break;
                    }
                }
                let _ = sender.send(Event::Exited { status, ran_for });
            }
        });
        self.claim.set_worker(pid);
        self.note(&format!("worker started (pid {pid})"));
        Ok(Worker { pid })
    }

    /// Waits for the worker to exit or a signal to arrive, and says what comes next.
    fn watch(&mut self, worker: &Worker) -> Next {
        match self.events.recv() {
            Ok(Event::Exited { status, ran_for }) => self.after_exit(status, ran_for),
            Ok(Event::Signal(SIGUSR1)) => {
                self.note("restart requested");
                if self.stop(worker) {
                    self.note("stopping: a stop signal arrived during the restart");
                    return Next::Exit(0);
                }
                self.quick_restarts_in_a_row = 0;
                Next::Restart
            }
            Ok(Event::Signal(signal)) => {
                self.note(&format!("stopping on signal {signal}"));
                self.stop(worker);
                Next::Exit(0)
            }
            Err(_) => Next::Exit(1),
        }
    }

    fn after_exit(&mut self, status: ExitStatus, ran_for: Duration) -> Next {
        use std::os::unix::process::ExitStatusExt;
        let code = status
            .code()
            .or_else(|| status.signal().map(|s| 128 + s))
            .unwrap_or(1);
        let how = match (status.code(), status.signal()) {
            (Some(code), _) => format!("exited with code {code}"),
            (None, Some(signal)) => format!("was killed by signal {signal}"),
            _ => "ended".to_owned(),
        };
        match code {
            0 => {
                self.note(&format!("worker {how}: done"));
                Next::Exit(0)
            }
            RESTART_CODE => {
                self.note(&format!("worker {how}: restarting it"));
                self.failures_in_a_row = 0;
                self.quick_restarts_in_a_row = if ran_for < QUICK {
                    self.quick_restarts_in_a_row + 1
                } else {
                    0
                };
                let excess = self
                    .quick_restarts_in_a_row
                    .saturating_sub(self.config.agent.quick_restarts);
                if excess == 0 {
                    return Next::Restart;
                }
                let pause = Duration::from_millis(100)
                    .saturating_mul(1 << excess.min(6))
                    .min(Duration::from_secs(5));
                self.note(&format!(
                    "{} quick restarts in a row: pausing {}",
                    self.quick_restarts_in_a_row,
                    humantime::format_duration(pause)
                ));
                self.pause(pause)
            }
            code => {
                self.note(&format!("worker {how}"));
                self.after_failure(code, ran_for)
            }
        }
    }

    fn after_failure(&mut self, code: i32, ran_for: Duration) -> Next {
        let exit_code = u8::try_from(code).unwrap_or(1).max(1);
        if !self.self_supervised {
            self.note(&format!(
                "exiting with code {exit_code}; the service manager decides about a restart"
            ));
            return Next::Exit(exit_code);
        }
        let supervise = &self.config.supervise;
        if ran_for >= supervise.delay {
            self.failures_in_a_row = 0;
        }
        self.failures_in_a_row += 1;
        if self.failures_in_a_row > supervise.retries {
            self.note(&format!(
                "giving up: the worker failed {} times in a row (last code {code})",
                self.failures_in_a_row
            ));
            return Next::Exit(exit_code);
        }
        let delay = supervise.delay;
        self.note(&format!(
            "retrying in {} (retry {} of {})",
            humantime::format_duration(delay),
            self.failures_in_a_row,
            supervise.retries
        ));
        self.pause(delay)
    }

    /// Waits `length` before the next worker, still answering signals.
    fn pause(&mut self, length: Duration) -> Next {
        let deadline = Instant::now() + length;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.events.recv_timeout(left) {
                Err(RecvTimeoutError::Timeout) => return Next::Restart,
                Ok(Event::Signal(SIGUSR1)) => return Next::Restart,
                Ok(Event::Signal(signal)) => {
                    self.note(&format!("stopping on signal {signal}"));
                    return Next::Exit(0);
                }
                Ok(Event::Exited { .. }) => continue,
                Err(RecvTimeoutError::Disconnected) => return Next::Exit(1),
            }
        }
    }

    /// Stops the worker's process group: TERM, then KILL after the stop timeout; then KILL
    /// whatever of the group outlived the worker. Answers whether SIGTERM or SIGINT arrived
    /// meanwhile (which matters when stopping for a restart).
    fn stop(&self, worker: &Worker) -> bool {
        let group = Pid::from_raw(worker.pid as i32);
        let _ = killpg(group, Signal::SIGTERM);
        let deadline = Instant::now() + self.config.agent.stop_timeout;
        let mut exited = false;
        let mut stop_requested = false;
        while !exited {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.events.recv_timeout(left) {
                Ok(Event::Exited { .. }) => exited = true,
                Ok(Event::Signal(signal)) => stop_requested |= signal != SIGUSR1,
                Err(RecvTimeoutError::Timeout) => {
                    self.note(&format!(
                        "worker {} ignored SIGTERM for {}: killing it",
                        worker.pid,
                        humantime::format_duration(self.config.agent.stop_timeout)
                    ));
                    let _ = killpg(group, Signal::SIGKILL);
                    let _ = self.events.recv();
                    exited = true;
                }
                Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        let _ = killpg(group, Signal::SIGKILL);
        stop_requested
    }
}

/// Makes the worker receive SIGTERM when the runtime dies, however it dies (SIGKILL, the OOM
/// killer, a service manager that ends only the process it started): a worker must never run
/// on unsupervised and unknown.
#[cfg(target_os = "linux")]
fn end_with_the_runtime(command: &mut Command) {
    use nix::{errno::Errno, sys::prctl, unistd::getppid};
    let runtime = nix::unistd::Pid::this();
    // SAFETY: between fork and exec this runs only prctl and getppid, both async-signal-safe
    // system calls, and builds its error without allocating.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(command, move || {
            prctl::set_pdeathsig(Signal::SIGTERM).map_err(std::io::Error::from)?;
            // The runtime may have died before the line above took effect.
            if getppid() != runtime {
                return Err(std::io::Error::from(Errno::ESRCH));
            }
            Ok(())
        });
    }
}

/// Copies a worker's output, line by line, to the agent log and to the runtime's own stream;
/// says on `done` when the pipe is closed and everything is written.
fn pump<R, W, F>(pipe: R, log: AgentLog, source: &'static str, stream: F, done: Sender<()>)
where
    R: Read + Send + 'static,
    W: Write,
    F: Fn() -> W + Send + 'static,
{
    thread::spawn(move || {
        let mut reader = BufReader::new(pipe);
        let mut line = Vec::new();
        while reader.read_until(b'\n', &mut line).unwrap_or(0) > 0 {
            log.line(source, &String::from_utf8_lossy(&line));
            let _ = stream().write_all(&line);
            line.clear();
        }
        let _ = done.send(());
    });
}
