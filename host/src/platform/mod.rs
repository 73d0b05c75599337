//! What the runtime, `sygen stop` and `sygen restart` need from the operating system, behind
//! one small interface with one file per platform (`linux.rs`, `macos.rs` and `windows.rs`;
//! `unix.rs` holds what Linux and macOS share):
//!
//! - **Identity.** A process is known by its pid *and* its start time. A pid left in a file by a
//!   crash, a `kill -9` or a power cut may name an unrelated process by now; the start time
//!   cannot be recycled. [`send`] proves a process's identity before it signals it, and never
//!   signals pid 1 or another user's process.
//! - **The tree.** Every process a worker starts belongs to the runtime ([`Tree`]): when the
//!   worker exits, restarts or stops, what it left behind is ended too. Each process of the
//!   tree carries [`TREE_MARKER`] in its environment, naming its sygen home and its runtime.
//!   On Unix a guard process ([`Tree::guard`]) ends the tree of a runtime that is killed, as
//!   the Job object does on Windows; what outlives both is found ([`strays`]) and ended by
//!   the next `sygen run` or `sygen stop`.
//! - **The instance lock.** `bot.pid` is held under an exclusive lock for the runtime's whole
//!   life ([`try_lock`], [`is_locked`]): "is it running" is "is the lock held".
//! - **Requests.** Stop and restart ([`Request`]; SIGTERM and SIGUSR1 on Unix, named events on
//!   Windows), heard by the runtime and the agent through [`listen`].
//! - **Trust.** Whether anyone but the user could have written a backend file ([`check_trust`]),
//!   judged on the file as opened to be loaded ([`open_to_load`], [`check_trust_open`],
//!   [`loadable_path`]), and whether it changed since ([`LoadedFile`]).
//! - **Notify.** The socket a worker says `READY=1` and `WATCHDOG=1` on ([`NotifySocket`]),
//!   taking datagrams from the runtime's own tree only where the platform says who sent one.
//! - **Last words.** Hooks for a crash ([`on_crash`]) and an `exit()` ([`on_exit`]), and what
//!   they may use: [`write_now`] and [`exit_now`] (see `boundary`).
//!
//! The platform layer is the bottom one: it uses nothing of sygen but where the home is
//! (`home`, to know whose processes a root user acting for another may touch).

#[cfg(unix)]
mod unix;
#[cfg(unix)]
use unix as family;

#[cfg(target_os = "windows")]
mod windows;
#[cfg(target_os = "windows")]
use windows as family;
#[cfg(target_os = "windows")]
use windows as os;

pub use family::{
    available_space, check_private, check_secret, check_trust, check_trust_open, exit_now,
    exit_status, file_stamp, is_locked, is_same_file, is_search_path, listen, no_follow, on_crash,
    on_exit, open_nonblocking, open_to_load, quiet_on_closed_pipes, regular_file_behind, send,
    special_file_kind, try_lock, write_now, LoadedFile, Tree, FOLLOWS_SHEBANGS,
};
pub use os::{loadable_path, NotifySocket};

#[cfg(target_os = "linux")]
mod linux;
#[cfg(target_os = "linux")]
use linux as os;

#[cfg(target_os = "macos")]
mod macos;
#[cfg(target_os = "macos")]
use macos as os;

use std::{
    thread,
    time::{Duration, Instant},
};

/// The environment variable every process of a worker's tree inherits; its value is
/// `<home>#<pid>.<start>`: the sygen home (as `instance::marker` spells it) and the identity of
/// the runtime the tree belongs to.
pub const TREE_MARKER: &str = "SYGEN_TREE";

/// The value of [`TREE_MARKER`] in the tree of `runtime`, of the sygen home `home`.
pub fn tree_marker(home: &str, runtime: Identity) -> String {
    format!("{home}#{}.{}", runtime.pid, runtime.start)
}

/// Whose marked processes to look for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Owner<'a> {
    /// Those of any runtime of this sygen home: what `sygen run` and `sygen stop` clear up.
    Home(&'a str),
    /// Those of one runtime, by its whole [`tree_marker`]: what its guard ends, and nothing of
    /// a runtime started after it.
    Runtime(&'a str),
}

impl<'a> Owner<'a> {
    /// The sygen home whose processes these are.
    pub fn home(self) -> &'a str {
        match self {
            Owner::Home(home) => home,
            Owner::Runtime(marker) => marker.rsplit_once('#').map_or(marker, |(home, _)| home),
        }
    }

    /// Whether `entry`, one `NAME=value` of a process's environment, marks it as this owner's.
    #[cfg_attr(
        all(windows, not(test)),
        expect(dead_code, reason = "Windows finds trees by their Job object")
    )]
    pub fn marks(self, entry: &[u8]) -> bool {
        let Some(value) = entry
            .strip_prefix(TREE_MARKER.as_bytes())
            .and_then(|rest| rest.strip_prefix(b"="))
        else {
            return false;
        };
        match self {
            Owner::Runtime(marker) => value == marker.as_bytes(),
            Owner::Home(home) => value
                .iter()
                .rposition(|&b| b == b'#')
                .is_some_and(|at| &value[..at] == home.as_bytes() && is_identity(&value[at + 1..])),
        }
    }
}

/// Whether `text` is a `<pid>.<start>` as [`tree_marker`] writes it.
fn is_identity(text: &[u8]) -> bool {
    let digits = |part: &[u8]| !part.is_empty() && part.iter().all(u8::is_ascii_digit);
    let mut parts = text.splitn(2, |&b| b == b'.');
    parts.next().is_some_and(digits) && parts.next().is_some_and(digits)
}

/// A process as sygen knows it: a pid and when that process started, in the platform's own
/// unit. The pair names one process for as long as the machine runs. The runtime tells its
/// guard of each worker as one, in JSON.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Identity {
    pub pid: u32,
    pub start: u64,
}

impl Identity {
    /// This process.
    pub fn this_process() -> Option<Self> {
        os::identify(std::process::id())
    }

    /// The process that has `pid` now, if it is alive (zombies are not) and this user's.
    pub fn of(pid: u32) -> Option<Self> {
        os::identify(pid)
    }

    /// Whether this very process is still alive.
    pub fn is_alive(self) -> bool {
        os::identify(self.pid) == Some(self)
    }
}

/// This boot of the machine: start times count from it, so a record from another boot names no
/// live process.
pub fn boot_id() -> Option<String> {
    os::boot_id()
}

/// The pid namespace this process sees pids in (Linux; `None` elsewhere): a pid recorded in
/// another one names another process here, or none.
pub fn pid_namespace() -> Option<u64> {
    os::pid_namespace()
}

/// What sygen asks of a process it started.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request {
    /// Stop gracefully (SIGTERM).
    Stop,
    /// Replace the worker (SIGUSR1, to a runtime).
    Restart,
    /// End at once (SIGKILL).
    Kill,
}

/// Who listens for requests: the runtime hears a restart as SIGUSR1 on Unix; the agent, a
/// worker, as SIGHUP, as daemons do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Listener {
    Runtime,
    Agent,
}

/// Why a backend file is not trusted, and what to do about it.
#[derive(Debug)]
pub struct Untrusted {
    pub reason: String,
    pub hint: String,
}

/// One of a process's two output streams.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StdStream {
    Out,
    Err,
}

impl StdStream {
    pub fn name(self) -> &'static str {
        match self {
            StdStream::Out => "stdout",
            StdStream::Err => "stderr",
        }
    }
}

/// How a process ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    Code(i32),
    /// Killed by a signal on Unix.
    #[cfg_attr(windows, expect(dead_code, reason = "only Unix has signals"))]
    Signal(i32),
    /// An unhandled exception on Windows: the NTSTATUS it ended with (0xC0000005, an access
    /// violation).
    #[cfg_attr(unix, expect(dead_code, reason = "only Windows reports exceptions"))]
    Crash(u32),
}

impl Exit {
    /// The exit code a shell would report: the code, or 128 + the signal.
    pub fn code(self) -> i32 {
        match self {
            Exit::Code(code) => code,
            Exit::Signal(signal) => 128 + signal,
            Exit::Crash(status) => status as i32,
        }
    }
}

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Exit::Code(code) => write!(f, "exited with code {code}"),
            Exit::Signal(signal) => write!(f, "was killed by signal {signal}"),
            Exit::Crash(status) => write!(f, "crashed (exception {status:#010X})"),
        }
    }
}

/// How many pids a message lists before it only counts the rest.
const LISTED_PIDS: usize = 10;

/// "pid 12", "pids 12, 13"; of many, the first ten and how many more ("… and 1990 more"): a
/// line per event, whatever a fork storm left.
pub fn pids(processes: &[Identity]) -> String {
    let list: Vec<String> = processes
        .iter()
        .take(LISTED_PIDS)
        .map(|p| p.pid.to_string())
        .collect();
    let plural = if processes.len() == 1 { "" } else { "s" };
    let more = processes.len().saturating_sub(LISTED_PIDS);
    let rest = match more {
        0 => String::new(),
        n => format!(" and {n} more"),
    };
    format!("pid{plural} {}{rest}", list.join(", "))
}

/// The processes carrying `owner`'s tree marker, and the live members of the process group led
/// by `group` (a recorded worker), other than this process: what a runtime that is gone left
/// behind.
pub fn strays(owner: Owner, group: Option<Identity>) -> Vec<Identity> {
    os::strays(owner, group)
}

/// Every live process descending from `root`, whatever it did to its environment or session,
/// and those carrying `owner`'s marker: what a guard watches while its runtime lives, to end
/// should the runtime be killed (its orphans are the runtime's children until then).
pub fn descendants(root: u32, owner: Owner) -> Vec<Identity> {
    os::descendants(root, owner)
}

/// Ends what `find` names: [`Request::Stop`] to all, a wait of up to `timeout` for them to go,
/// then [`Request::Kill`] to whatever is left, looking again for processes started meanwhile.
/// Answers every process it signalled.
pub fn end_all(find: impl Fn() -> Vec<Identity>, timeout: Duration) -> Vec<Identity> {
    let mut ended = find();
    for &process in &ended {
        let _ = send(process, Request::Stop);
    }
    let deadline = Instant::now().checked_add(timeout);
    while ended.iter().any(|p| p.is_alive()) && deadline.is_some_and(|d| Instant::now() < d) {
        thread::sleep(Duration::from_millis(10));
    }
    // A process forking as fast as it is killed is not waited for without end.
    for _ in 0..20 {
        let left: Vec<Identity> = find()
            .into_iter()
            .chain(ended.iter().copied().filter(|p| p.is_alive()))
            .collect();
        if left.is_empty() {
            break;
        }
        for &process in &left {
            let _ = send(process, Request::Kill);
            if !ended.contains(&process) {
                ended.push(process);
            }
        }
        thread::sleep(Duration::from_millis(10));
    }
    ended
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn many_pids_are_listed_up_to_ten_then_counted() {
        let some =
            |n: u32| -> Vec<Identity> { (1..=n).map(|pid| Identity { pid, start: 1 }).collect() };
        assert_eq!(pids(&some(1)), "pid 1");
        assert_eq!(pids(&some(2)), "pids 1, 2");
        assert_eq!(pids(&some(10)), "pids 1, 2, 3, 4, 5, 6, 7, 8, 9, 10");
        assert_eq!(
            pids(&some(2000)),
            "pids 1, 2, 3, 4, 5, 6, 7, 8, 9, 10 and 1990 more"
        );
    }

    #[test]
    fn a_marker_names_its_home_and_its_runtime() {
        let runtime = Identity {
            pid: 12,
            start: 345,
        };
        let marker = tree_marker("/h#1/.sygen", runtime);
        let entry = format!("{TREE_MARKER}={marker}");
        assert!(Owner::Home("/h#1/.sygen").marks(entry.as_bytes()));
        assert!(Owner::Runtime(&marker).marks(entry.as_bytes()));
        assert_eq!(Owner::Runtime(&marker).home(), "/h#1/.sygen");
        // Another runtime of the same home, another home, another variable.
        let other = tree_marker(
            "/h#1/.sygen",
            Identity {
                pid: 12,
                start: 346,
            },
        );
        assert!(!Owner::Runtime(&other).marks(entry.as_bytes()));
        assert!(!Owner::Home("/h").marks(entry.as_bytes()));
        assert!(!Owner::Home("/h#1/.sygen").marks(format!("X{entry}").as_bytes()));
        // A home whose name merely ends like a marker is not the home before it.
        let tricky = format!("{TREE_MARKER}=/h#1.2");
        assert!(!Owner::Home("/h").marks(format!("{tricky}x").as_bytes()));
        assert!(Owner::Home("/h").marks(tricky.as_bytes()));
        assert!(!Owner::Home("/h").marks(format!("{TREE_MARKER}=/h#1.").as_bytes()));
    }
}
