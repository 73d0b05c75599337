//! The running instance of a sygen home, known by identity rather than by a pid in a file.
//!
//! The runtime holds `bot.pid` under an exclusive lock for its whole life, so "is sygen
//! running" is "is the lock held": of any number of `sygen run` started together exactly one
//! wins, and a file left behind by a crash is harmless. What the file says (the runtime's pid,
//! its start time, its stop timeout) only names the holder; `worker.pid` says the same of the
//! current worker. Nothing is signalled on the word of these files alone: `platform::send`
//! proves a process's identity first.

use std::{
    fs::{self, File, OpenOptions},
    io::{self, Write as _},
    path::{Path, PathBuf},
    thread,
    time::{Duration, Instant},
};

use crate::{
    config,
    exit::{Exit, Failure},
    file,
    platform::{self, Identity},
};

pub const RUNTIME_FILE: &str = "bot.pid";
pub const WORKER_FILE: &str = "worker.pid";

/// How long a starting runtime waits for a lock that someone holds: a `sygen stop` or
/// `doctor` looking at it holds it for microseconds; a runtime that just won it needs a moment
/// to say who it is.
const CONTENDED: Duration = Duration::from_secs(1);

/// What a pid file says of its process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Record {
    pub identity: Identity,
    /// How long its worker has between the stop request and the kill.
    pub stop_timeout: Duration,
    /// The pid namespace its pid is in, where the platform has them.
    pub namespace: Option<u64>,
}

impl Record {
    /// A record of `identity`, a process of this pid namespace.
    fn here(identity: Identity, stop_timeout: Duration) -> Self {
        Self {
            identity,
            stop_timeout,
            namespace: platform::pid_namespace(),
        }
    }

    /// Whether its pid means here what it meant where it was recorded.
    pub fn is_here(&self) -> bool {
        self.namespace.is_none() || self.namespace == platform::pid_namespace()
    }

    /// The pid on the first line (for people and scripts), then `key=value` lines.
    fn render(&self) -> String {
        let namespace = self
            .namespace
            .map_or(String::new(), |ns| format!("pidns={ns}\n"));
        format!(
            "{}\nstart={}\nboot={}\nstop_timeout_ms={}\n{namespace}",
            self.identity.pid,
            self.identity.start,
            platform::boot_id().unwrap_or_default(),
            self.stop_timeout.as_millis()
        )
    }

    /// The record in `text`, if it is whole and from this boot.
    fn parse(text: &str) -> Option<Self> {
        let mut lines = text.lines();
        let pid = lines.next()?.trim().parse().ok()?;
        let (mut start, mut boot, mut stop_timeout_ms, mut namespace) = (None, None, None, None);
        for line in lines {
            match line.split_once('=') {
                Some(("start", value)) => start = value.parse().ok(),
                Some(("pidns", value)) => namespace = value.parse().ok(),
                Some(("boot", value)) => boot = Some(value),
                Some(("stop_timeout_ms", value)) => {
                    stop_timeout_ms = value
                        .parse()
                        .ok()
                        .filter(|&ms| ms <= config::MAX_STOP_TIMEOUT_MS);
                }
                _ => {}
            }
        }
        if boot? != platform::boot_id().unwrap_or_default() {
            return None;
        }
        Some(Self {
            identity: Identity { pid, start: start? },
            stop_timeout: Duration::from_millis(stop_timeout_ms?),
            namespace,
        })
    }

    fn read(path: &Path) -> Option<Self> {
        // A pid file is a few lines; more is not one of sygen's.
        Self::parse(&file::read_small(path, 4096).ok()??)
    }
}

/// The runtime of a sygen home, as far as can be proven.
#[derive(Debug, PartialEq, Eq)]
pub enum Runtime {
    /// No one holds `bot.pid`: whatever it names is not sygen's runtime.
    NotRunning,
    /// The lock is held and the process the file names is alive: this is the runtime.
    Running(Record),
    /// The lock is held, but the file names no live process sygen can prove holds it.
    Unproven { pid: Option<u32> },
    /// The lock is held by a runtime of another pid namespace (a container), whose `pid`
    /// means something else here: it cannot be signalled from here.
    Elsewhere { pid: u32 },
}

/// Looks at the runtime of `home`, without signalling anything.
pub fn runtime(home: &Path) -> Runtime {
    let path = home.join(RUNTIME_FILE);
    // Whatever else is there (a FIFO someone made) is no runtime's, and is not waited on.
    let Ok(Some(file)) = file::open_regular(&path) else {
        return Runtime::NotRunning;
    };
    // A runtime that has just won the lock writes its record a moment later; one that is
    // ending (killed a moment ago, a zombie) lets go of the lock a moment later.
    let deadline = Instant::now() + Duration::from_millis(200);
    loop {
        if !platform::is_locked(&file).unwrap_or(false) {
            return Runtime::NotRunning;
        }
        let record = Record::read(&path);
        if let Some(record) = record.filter(|r| !r.is_here()) {
            return Runtime::Elsewhere {
                pid: record.identity.pid,
            };
        }
        if let Some(record) = record.filter(|r| r.identity.is_alive()) {
            return Runtime::Running(record);
        }
        if Instant::now() >= deadline {
            let pid = file::read_small(&path, 4096)
                .ok()
                .flatten()
                .and_then(|t| t.lines().next()?.trim().parse().ok());
            return Runtime::Unproven { pid };
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// The worker `worker.pid` records, alive or not.
pub fn recorded_worker(home: &Path) -> Option<Record> {
    Record::read(&home.join(WORKER_FILE))
}

/// The recorded worker, if it is that very process and alive.
pub fn live_worker(home: &Path) -> Option<Record> {
    recorded_worker(home).filter(|w| w.identity.is_alive())
}

/// The value of the tree marker for `home`: the same whoever asks, whatever way the path is
/// spelled.
pub fn marker(home: &Path) -> String {
    dunce::canonicalize(home)
        .unwrap_or_else(|_| home.to_path_buf())
        .display()
        .to_string()
}

/// Removes the pid files when no runtime holds them (taking the lock to be sure of it).
pub fn remove_stale(home: &Path) {
    let path = home.join(RUNTIME_FILE);
    if let Ok(file) = OpenOptions::new().read(true).write(true).open(&path) {
        if platform::try_lock(&file).unwrap_or(false) {
            let _ = fs::remove_file(home.join(WORKER_FILE));
            let _ = fs::remove_file(&path);
        }
    } else {
        let _ = fs::remove_file(home.join(WORKER_FILE));
    }
}

/// The runtime's claim on the sygen home: the lock on `bot.pid`, held until dropped, when both
/// pid files are removed.
pub struct Claim {
    home: PathBuf,
    stop_timeout: Duration,
    _locked: File,
}

impl Claim {
    /// Takes the lock on `bot.pid` and writes this runtime's record into it; refuses when a
    /// runtime holds it.
    pub fn acquire(home: &Path, stop_timeout: Duration) -> Result<Self, Failure> {
        let path = home.join(RUNTIME_FILE);
        let this = Identity::this_process().ok_or_else(|| {
            Failure::new(Exit::Failed, "cannot read this process's own start time")
        })?;
        let deadline = Instant::now() + CONTENDED;
        loop {
            let file = platform::no_follow(
                OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create(true)
                    .truncate(false),
            )
            .open(&path)
            .map_err(|e| write_failure(&path, e))?;
            if platform::try_lock(&file).map_err(|e| write_failure(&path, e))? {
                // The previous holder removes the file before letting go of the lock: a lock on
                // a file that is no longer at `path` is no claim.
                if !platform::is_same_file(&file, &path) {
                    continue;
                }
                let record = Record::here(this, stop_timeout);
                write_record(&file, &record).map_err(|e| write_failure(&path, e))?;
                return Ok(Self {
                    home: home.to_path_buf(),
                    stop_timeout,
                    _locked: file,
                });
            }
            let holder = Record::read(&path);
            if let Some(elsewhere) = holder.filter(|r| !r.is_here()) {
                return Err(Failure::new(
                    Exit::Failed,
                    format!(
                        "sygen is already running in another pid namespace (pid {} there, from {})",
                        elsewhere.identity.pid,
                        path.display()
                    ),
                )
                .hint("stop it where it runs: `sygen stop` in that container or namespace"));
            }
            let holder = holder.filter(|r| r.identity.is_alive());
            if holder.is_some() || Instant::now() >= deadline {
                let pid = holder.map_or("unknown".to_owned(), |r| r.identity.pid.to_string());
                return Err(Failure::new(
                    Exit::Failed,
                    format!(
                        "sygen is already running (pid {pid}, from {})",
                        path.display()
                    ),
                )
                .hint("stop it with `sygen stop`, or restart its worker with `sygen restart`"));
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// Records the current worker, replacing `worker.pid` in one step.
    pub fn set_worker(&self, worker: Identity) -> io::Result<()> {
        let record = Record::here(worker, self.stop_timeout);
        let path = self.home.join(WORKER_FILE);
        let mut staged = tempfile::NamedTempFile::new_in(&self.home)?;
        staged.write_all(record.render().as_bytes())?;
        staged.persist(&path).map_err(|e| e.error)?;
        Ok(())
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        let _ = fs::remove_file(self.home.join(WORKER_FILE));
        let _ = fs::remove_file(self.home.join(RUNTIME_FILE));
    }
}

fn write_record(file: &File, record: &Record) -> io::Result<()> {
    file.set_len(0)?;
    // One write, so a reader sees no record or all of it.
    (&*file).write_all(record.render().as_bytes())
}

fn write_failure(path: &Path, error: io::Error) -> Failure {
    Failure::new(
        Exit::Failed,
        format!("cannot write {}: {error}", path.display()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_live_claim_refuses_a_second_one_and_a_stale_file_is_harmless() {
        let home = tempfile::tempdir().unwrap();
        // A stale file naming a live process that is not a runtime: this test process.
        let stale = format!(
            "{}\nstart=1\nboot=x\nstop_timeout_ms=10\n",
            std::process::id()
        );
        fs::write(home.path().join(RUNTIME_FILE), stale).unwrap();
        assert_eq!(runtime(home.path()), Runtime::NotRunning);

        let claim = Claim::acquire(home.path(), Duration::from_secs(3)).unwrap();
        let Runtime::Running(record) = runtime(home.path()) else {
            panic!("the claim is not seen");
        };
        assert_eq!(Some(record.identity), Identity::this_process());
        assert_eq!(record.stop_timeout, Duration::from_secs(3));
        // flock locks belong to the open file, so a second open in this process contends.
        let refused = Claim::acquire(home.path(), Duration::ZERO).err().unwrap();
        assert!(
            refused.message.starts_with(&format!(
                "sygen is already running (pid {}",
                record.identity.pid
            )),
            "{}",
            refused.message
        );
        drop(claim);
        assert!(!home.path().join(RUNTIME_FILE).exists());
        assert_eq!(runtime(home.path()), Runtime::NotRunning);
    }

    #[test]
    fn records_round_trip_and_garbage_is_no_record() {
        let record = Record::here(Identity { pid: 42, start: 7 }, Duration::from_millis(1500));
        assert_eq!(Record::parse(&record.render()), Some(record));
        assert_eq!(record.render().lines().next(), Some("42"));
        assert!(record.is_here());
        // Recorded in another pid namespace: its pid means something else here.
        let elsewhere = Record {
            namespace: Some(record.namespace.map_or(1, |ns| ns + 1)),
            ..record
        };
        let parsed = Record::parse(&elsewhere.render()).unwrap();
        assert_eq!(parsed, elsewhere);
        assert!(!parsed.is_here());
        let other_boot = "42\nstart=7\nboot=another\nstop_timeout_ms=1500\n";
        for garbage in [
            "",
            "not a pid",
            "42\n",
            "42\nstart=x\nstop_timeout_ms=1\n",
            other_boot,
        ] {
            assert_eq!(Record::parse(garbage), None, "{garbage:?}");
        }
    }
}
