//! The runtime's own account of its worker, kept in `state.json` in the sygen home: which
//! worker runs and since when, how many restarts, how the last worker ended, whether the
//! runtime is pausing before the next try or has given up. A service manager sees one
//! long-running runtime and reports it "running" through a crash loop; this record is what
//! tells the loop, and `sygen service status` reads it under every backend, without asking
//! the backend anything.
//!
//! The runtime rewrites the record atomically at each change (a worker started or ended, a
//! pause, a stop), never on a timer, so a runtime at rest writes nothing. A record whose
//! runtime is gone is history: it says how the last runtime ended. A runtime that a service
//! manager restarts after a failure carries the counts on, so a crash loop that goes through
//! the manager reads as one.

use std::{
    path::Path,
    time::{Duration, SystemTime},
};

use serde::{Deserialize, Serialize};

use crate::{file, platform::Exit};

pub const STATE_FILE: &str = "state.json";

/// A record is a few hundred bytes; more is not one of sygen's.
const MAX_STATE_BYTES: u64 = 64 * 1024;

/// The record. Times are RFC 3339, in UTC.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// The pid of the runtime that wrote it.
    pub runtime_pid: u32,
    /// `state`, with what goes with it (`next_try` and `reason`, `code`).
    #[serde(flatten)]
    pub phase: Phase,
    /// The worker running now.
    pub worker: Option<WorkerRun>,
    /// Workers started after the first, by this runtime and those before it in a crash loop.
    pub restarts: u32,
    /// Restarts in a row of workers that lived less than a second.
    pub quick_restarts: u32,
    /// Failures in a row (exits other than 0 and 42), which `[supervise] retries` bounds.
    pub failures: u32,
    pub last_exit: Option<LastExit>,
    /// Whether the worker said `READY=1`, with `[agent] ready = "notify"`; else none.
    #[serde(default)]
    pub ready: Option<bool>,
    /// The watchdog period in force, in milliseconds, if there is one.
    #[serde(default)]
    pub watchdog_ms: Option<u64>,
    /// What the worker last said with `STATUS=`.
    #[serde(default)]
    pub status: Option<String>,
    pub updated_at: At,
}

/// What the runtime is doing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Phase {
    /// A worker runs.
    Running,
    /// No worker runs: the runtime pauses `back_off_ms`, and the next one starts at
    /// `next_try`.
    BackingOff {
        back_off_ms: u64,
        next_try: At,
        reason: String,
    },
    /// The runtime ended on a stop request.
    Stopped,
    /// The runtime ended with `code`: 0 when the worker was done, else so that the service
    /// manager's restart policy applies.
    Exited { code: u8 },
    /// The runtime stopped retrying a failing worker and ended.
    GaveUp { reason: String },
}

/// The current worker.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerRun {
    pub pid: u32,
    pub started_at: At,
}

/// How the last worker ended, and when.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastExit {
    /// Its exit code (for a signal, none).
    pub code: Option<i32>,
    /// The signal that ended it, on Unix.
    pub signal: Option<i32>,
    pub at: At,
}

impl LastExit {
    pub fn of(exit: Exit, at: SystemTime) -> Self {
        let (code, signal) = match exit {
            Exit::Code(code) => (Some(code), None),
            Exit::Signal(signal) => (None, Some(signal)),
            // An NTSTATUS is the exit code Windows reports for it.
            Exit::Crash(status) => (Some(status as i32), None),
        };
        Self {
            code,
            signal,
            at: At(at),
        }
    }
}

impl std::fmt::Display for LastExit {
    /// "last exit 3", "last exit: signal 9".
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.code, self.signal) {
            (_, Some(signal)) => write!(f, "last exit: signal {signal}"),
            (Some(code), None) => write!(f, "last exit {code}"),
            (None, None) => write!(f, "last exit unknown"),
        }
    }
}

/// A moment, as RFC 3339 in UTC on disk and in JSON.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct At(pub SystemTime);

impl Serialize for At {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&humantime::format_rfc3339_seconds(self.0))
    }
}

impl<'de> Deserialize<'de> for At {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        humantime::parse_rfc3339(&text)
            .map(At)
            .map_err(serde::de::Error::custom)
    }
}

impl At {
    /// "12s ago", "in 5s", "just now", from `now`.
    pub fn relative_to(self, now: SystemTime) -> String {
        let seconds = |d: Duration| humantime::format_duration(Duration::from_secs(d.as_secs()));
        match self.0.duration_since(now) {
            Ok(ahead) if ahead.as_secs() > 0 => format!("in {}", seconds(ahead)),
            Err(past) if past.duration().as_secs() > 0 => {
                format!("{} ago", seconds(past.duration()))
            }
            _ => "just now".into(),
        }
    }
}

impl State {
    /// The record a runtime starts from: the counts of the one before it when that one ended
    /// for its service manager to restart it (a loop through the manager), else none.
    pub fn first(runtime_pid: u32, previous: Option<State>, now: SystemTime) -> Self {
        let carried = previous.filter(|p| matches!(p.phase, Phase::Exited { code } if code != 0));
        // The manager's restart of the runtime is a restart of the worker too.
        let (restarts, quick_restarts, failures, last_exit) =
            carried.map_or((0, 0, 0, None), |p| {
                (
                    p.restarts.saturating_add(1),
                    p.quick_restarts,
                    p.failures,
                    p.last_exit,
                )
            });
        Self {
            runtime_pid,
            phase: Phase::Running,
            worker: None,
            restarts,
            quick_restarts,
            failures,
            last_exit,
            ready: None,
            watchdog_ms: None,
            status: None,
            updated_at: At(now),
        }
    }

    /// The record in `home`, if there is one sygen wrote.
    pub fn read(home: &Path) -> Option<Self> {
        let text = file::read_small(&home.join(STATE_FILE), MAX_STATE_BYTES).ok()??;
        serde_json::from_str(&text).ok()
    }

    /// Replaces the record in `home` in one step: a reader sees the old one or the new one.
    pub fn write(&self, home: &Path) -> std::io::Result<()> {
        let text = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
        sygen_backend_api::sdk::fs::write_atomic(&home.join(STATE_FILE), &text, Some(0o644))
    }

    /// One line for people on what the runtime is doing, as of `now`; `alive` is whether its
    /// runtime still runs (a record of a runtime that is gone tells how it ended).
    pub fn summary(&self, alive: bool, now: SystemTime) -> String {
        let last_exit = |state: &Self| {
            state.last_exit.map_or(String::new(), |exit| {
                format!(", {exit} {}", exit.at.relative_to(now))
            })
        };
        match (&self.phase, alive) {
            (Phase::Running, true) => {
                let worker = self.worker.map_or("starting a worker".into(), |w| {
                    format!(
                        "worker pid {}, started {}",
                        w.pid,
                        w.started_at.relative_to(now)
                    )
                });
                let ready = match self.ready {
                    Some(false) => " (not ready yet)",
                    _ => "",
                };
                let status = self
                    .status
                    .as_ref()
                    .map_or(String::new(), |status| format!("; it says: {status}"));
                format!(
                    "running: {worker}{ready}; {} restart(s){}{status}",
                    self.restarts,
                    last_exit(self)
                )
            }
            (
                Phase::BackingOff {
                    next_try, reason, ..
                },
                true,
            ) => {
                let next = match next_try.0.duration_since(now) {
                    Ok(_) => next_try.relative_to(now),
                    Err(_) => "now".into(),
                };
                format!("restarting: {reason}{}, next try {next}", last_exit(self))
            }
            (Phase::GaveUp { reason }, _) => format!(
                "gave up {}: {reason}{}",
                self.updated_at.relative_to(now),
                last_exit(self)
            ),
            (Phase::Stopped, _) => format!("stopped {}", self.updated_at.relative_to(now)),
            (Phase::Exited { code }, _) => format!(
                "the runtime exited with code {code} {}{}",
                self.updated_at.relative_to(now),
                last_exit(self)
            ),
            (Phase::Running | Phase::BackingOff { .. }, false) => format!(
                "the runtime (pid {}) ended without a word {}",
                self.runtime_pid,
                self.updated_at.relative_to(now)
            ),
        }
    }

    /// What to do about the state, when something is to be done.
    pub fn hint(&self) -> Option<&'static str> {
        match self.phase {
            Phase::GaveUp { .. } => Some(
                "fix what makes the worker fail (`sygen service logs`), then `sygen service start` \
                 starts afresh",
            ),
            Phase::BackingOff { .. } => Some("`sygen service logs` shows why the worker ends"),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000 + seconds)
    }

    fn looping() -> State {
        State {
            runtime_pid: 7,
            phase: Phase::BackingOff {
                back_off_ms: 5000,
                next_try: At(at(15)),
                reason: "12 quick restarts in a row".into(),
            },
            worker: None,
            restarts: 12,
            quick_restarts: 12,
            failures: 0,
            last_exit: Some(LastExit::of(Exit::Code(3), at(8))),
            ready: None,
            watchdog_ms: None,
            status: None,
            updated_at: At(at(10)),
        }
    }

    #[test]
    fn a_crash_loop_reads_as_one_line() {
        assert_eq!(
            looping().summary(true, at(10)),
            "restarting: 12 quick restarts in a row, last exit 3 2s ago, next try in 5s"
        );
    }

    #[test]
    fn moments_are_said_relative_to() {
        assert_eq!(At(at(10)).relative_to(at(10)), "just now");
        assert_eq!(At(at(75)).relative_to(at(10)), "in 1m 5s");
        let mut late = looping();
        late.phase = Phase::BackingOff {
            back_off_ms: 100,
            next_try: At(at(9)),
            reason: "3 quick restarts in a row".into(),
        };
        assert!(late.summary(true, at(10)).ends_with(", next try now"));
    }

    #[test]
    fn the_record_round_trips_with_times_in_rfc_3339() {
        let state = looping();
        let text = serde_json::to_string(&state).unwrap();
        assert!(
            text.contains("\"next_try\":\"2027-01-15T08:00:15Z\""),
            "{text}"
        );
        assert!(text.contains("\"state\":\"backing_off\""), "{text}");
        assert_eq!(serde_json::from_str::<State>(&text).unwrap(), state);
    }

    #[test]
    fn only_a_runtime_that_left_a_restart_to_its_manager_passes_its_counts_on() {
        let mut exited = looping();
        exited.phase = Phase::Exited { code: 3 };
        let next = State::first(8, Some(exited), at(20));
        assert_eq!((next.restarts, next.last_exit.is_some()), (13, true));
        for phase in [Phase::Stopped, Phase::Exited { code: 0 }] {
            let mut ended = looping();
            ended.phase = phase;
            let next = State::first(8, Some(ended), at(20));
            assert_eq!((next.restarts, next.last_exit), (0, None));
        }
    }

    #[test]
    fn a_record_of_a_runtime_that_is_gone_says_so() {
        let mut running = looping();
        running.phase = Phase::Running;
        assert_eq!(
            running.summary(false, at(70)),
            "the runtime (pid 7) ended without a word 1m ago"
        );
    }
}
