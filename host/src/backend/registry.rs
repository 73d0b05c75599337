//! What each backend file is, learnt without running its code in this process.
//!
//! Loading a library runs its constructors, so finding the backend to use must not load every
//! file on the search path: a file's name, version and platform are asked once, by a child
//! process (`sygen service backend describe`) with a time limit, and kept in a cache in the
//! sygen home (`cache/backends.json`), keyed on the file's path and a stamp of its metadata
//! (device, inode, size, modification and change times). A file that changes is described
//! again; a file that crashes or hangs its child is reported, never cached. Only the backend a
//! command uses is then loaded into sygen, after its trust and signature checks, and what it
//! says it is must match what the cache said (`select`).
//!
//! The cache is only a shortcut: one that someone else could have written is ignored, and one
//! that lies cannot make sygen load a file its checks refuse.

use std::{
    collections::BTreeMap,
    io::{Read as _, Seek as _},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use serde::{Deserialize, Serialize};
use sygen_backend_api::sdk::fs::write_atomic;

use super::{
    boundary::{self, Ended},
    identity::Described,
    load_error::LoadError,
    protocol::{Answer, Message},
};
use crate::{
    exit::{Exit, Failure},
    file, platform,
};

/// What the host learns about one file.
pub struct Description {
    pub described: Result<Described, LoadError>,
    /// Whether its service manager answers (only when asked for).
    pub available: Option<Result<bool, Failure>>,
}

/// Describes `files` (canonical paths that passed their checks): from the cache where it knows
/// them, else from child processes, all at once, each with a time limit. With `available`,
/// every file goes to a child, which also asks whether its service manager answers.
pub fn describe(files: &[PathBuf], home: &Path, available: bool) -> Vec<Description> {
    let cache_file = home.join("cache").join("backends.json");
    let mut cache = Cache::read(&cache_file);
    let stamps: Vec<Option<String>> = files
        .iter()
        .map(|f| std::fs::metadata(f).ok().map(|m| platform::file_stamp(&m)))
        .collect();
    let mut results: Vec<Option<Description>> = files
        .iter()
        .zip(&stamps)
        .map(|(file, stamp)| {
            let hit = cache.lookup(file, stamp.as_deref()?)?;
            (!available).then_some(Description {
                described: hit,
                available: None,
            })
        })
        .collect();
    let asked: Vec<usize> = (0..files.len()).filter(|&i| results[i].is_none()).collect();
    let asking = Asking {
        available,
        unsigned: false,
    };
    let answers = ask_children(asked.iter().map(|&i| files[i].as_path()), asking);
    let mut changed = false;
    for (i, answer) in asked.into_iter().zip(answers) {
        if let (Some(stamp), Some(answer)) = (&stamps[i], &answer) {
            changed |= cache.store(&files[i], stamp, &answer.described);
        }
        results[i] = Some(match answer {
            Some(answer) => Description {
                described: answer.described,
                available: answer.available.map(|a| a.map_err(Failure::from)),
            },
            None => Description {
                described: Err(LoadError::new(
                    "could not be described (the process that checks backends did not start)",
                    "run the command again",
                )),
                available: None,
            },
        });
    }
    if changed {
        cache.keep_only(files);
        cache.write(&cache_file);
    }
    results
        .into_iter()
        .map(|r| {
            r.unwrap_or(Description {
                described: Err(LoadError::new("was not described", "run the command again")),
                available: None,
            })
        })
        .collect()
}

/// Describes one file in a child process, bypassing the cache: what `backend add` checks
/// before it installs a file.
pub fn describe_in_child(file: &Path) -> Result<Described, Failure> {
    describe_one(file, false)
}

/// [`describe_in_child`] without the signature check: for the publisher about to sign `file`.
pub fn describe_unsigned_in_child(file: &Path) -> Result<Described, Failure> {
    describe_one(file, true)
}

fn describe_one(file: &Path, unsigned: bool) -> Result<Described, Failure> {
    let shown = dunce::canonicalize(file).unwrap_or_else(|_| file.to_owned());
    let asking = Asking {
        available: false,
        unsigned,
    };
    let answer = ask_children(std::iter::once(shown.as_path()), asking)
        .pop()
        .flatten();
    let refusal = match answer.map(|a| a.described) {
        Some(Ok(described)) => return Ok(described),
        Some(Err(refusal)) => refusal,
        None => LoadError::new(
            "could not be checked (the process that checks backends did not start)",
            "run the command again",
        ),
    };
    Err(Failure::new(
        Exit::NoBackend,
        format!("backend {}: {}", file.display(), refusal.reason),
    )
    .hint(refusal.hint))
}

/// How long a child may take over one file before it is ended: loading it and one question,
/// each under the call limit, with room for a start on a busy machine. A backstop only: the
/// child's own limits answer first.
fn per_file_limit() -> Duration {
    boundary::Limit::Query
        .duration()
        .unwrap_or(Duration::from_secs(10))
        .saturating_mul(2)
        .saturating_add(Duration::from_secs(10))
}

const FILES_PER_CHILD: usize = 4;
const MAX_CHILDREN: usize = 8;

/// What scanner children are asked besides what each file is: whether its service manager
/// answers, and to load files with no valid signature (`SYGEN_ALLOW_UNSIGNED`).
#[derive(Clone, Copy)]
struct Asking {
    available: bool,
    unsigned: bool,
}

/// Describes `files` in child processes, a few working side by side on their share of the
/// files; `None` for a file no child could answer for.
fn ask_children<'a>(files: impl Iterator<Item = &'a Path>, asking: Asking) -> Vec<Option<Answer>> {
    let files: Vec<&Path> = files.collect();
    if files.is_empty() {
        return Vec::new();
    }
    let Ok(exe) = std::env::current_exe() else {
        return files.iter().map(|_| None).collect();
    };
    // Most of a child's time is spent waiting for service managers to answer, not computing:
    // a few files per child, up to 8 children, measured fastest on 2 cores (see
    // docs/benchmarks.md).
    let children = files.len().div_ceil(FILES_PER_CHILD).clamp(1, MAX_CHILDREN);
    let share = files.len().div_ceil(children);
    std::thread::scope(|scope| {
        let scanners: Vec<_> = files
            .chunks(share)
            .map(|files| scope.spawn(|| Scanner::new(&exe, asking).describe(files)))
            .collect();
        scanners
            .into_iter()
            .flat_map(|scanner| scanner.join().unwrap_or_default())
            .collect()
    })
}

/// Describes a list of files with as few child processes as it can: one child takes them all
/// in turn, answering a line per file; a child that crashes or stops answering on a file is
/// ended, that file is reported as the culprit, and a new child takes the files left (as
/// GStreamer's plugin scanner does).
struct Scanner<'a> {
    exe: &'a Path,
    asking: Asking,
}

impl<'a> Scanner<'a> {
    fn new(exe: &'a Path, asking: Asking) -> Self {
        Self { exe, asking }
    }

    fn describe(&self, files: &[&Path]) -> Vec<Option<Answer>> {
        let mut answers: Vec<Option<Answer>> = Vec::with_capacity(files.len());
        while answers.len() < files.len() {
            let left = &files[answers.len()..];
            let Some(mut child) = ScannerChild::spawn(self.exe, left, self.asking) else {
                answers.extend(left.iter().map(|_| None));
                break;
            };
            let before = answers.len();
            let outcome = child.answer(left, &mut answers);
            match outcome {
                // All answered, or it stopped after a stuck call: go on with the rest.
                Ending::Finished if answers.len() > before => {}
                Ending::Finished | Ending::Crashed => {
                    answers.push(Some(child.culprit(left[answers.len() - before])))
                }
                Ending::TimedOut => {
                    answers.push(Some(did_not_finish(left[answers.len() - before])))
                }
            }
        }
        answers
    }
}

/// How a child stopped answering.
enum Ending {
    /// It exited normally (having answered for some files, or none).
    Finished,
    /// It ended abnormally: the file it was at is why.
    Crashed,
    /// It stopped answering for longer than one file may take; it was killed.
    TimedOut,
}

/// A child process describing files, its stdout going to a temporary file: a pipe could be
/// held open by whatever a library started, and reading it would never end. The child writes
/// its messages through a file description of its own (`reopen`): one shared with the reader
/// would share its offset, and a read would move where the next message lands. What it says
/// for people (warnings) is not shown: every child would repeat it.
struct ScannerChild {
    process: std::process::Child,
    stdout: tempfile::NamedTempFile,
    read: u64,
    pending: String,
    /// How the call into the file it was at ended the process, if that is how it ended.
    ended: Option<Ended>,
}

impl ScannerChild {
    fn spawn(exe: &Path, files: &[&Path], asking: Asking) -> Option<Self> {
        let stdout = tempfile::NamedTempFile::new().ok()?;
        let mut command = Command::new(exe);
        command.args(["service", "backend", "describe"]);
        if asking.available {
            command.arg("--available");
        }
        if asking.unsigned {
            command.env("SYGEN_ALLOW_UNSIGNED", "1");
        }
        let process = command
            .args(files)
            .stdin(Stdio::null())
            .stdout(stdout.reopen().ok()?)
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| tracing::debug!("cannot start the backend scanner: {e}"))
            .ok()?;
        Some(Self {
            process,
            stdout,
            read: 0,
            pending: String::new(),
            ended: None,
        })
    }

    /// Collects answers for `files`, in order, into `answers`, until the child ends or stops
    /// answering.
    fn answer(&mut self, files: &[&Path], answers: &mut Vec<Option<Answer>>) -> Ending {
        let start = answers.len();
        let mut deadline = Instant::now() + per_file_limit();
        loop {
            let exited = self.process.try_wait().ok().flatten();
            for answer in self.new_answers() {
                let index = answers.len() - start;
                if files.get(index).is_some_and(|f| *f == answer.file) {
                    answers.push(Some(answer));
                    deadline = Instant::now() + per_file_limit();
                }
            }
            if answers.len() - start == files.len() {
                // All is said: whatever the child does on its way out (a crash in a destructor,
                // a hang in a library's exit code) is no file's fault, and is not waited for.
                let _ = self.process.kill();
                let _ = self.process.wait();
                return Ending::Finished;
            }
            if let Some(status) = exited {
                return match platform::exit_status(status) {
                    platform::Exit::Code(0) => Ending::Finished,
                    _ => Ending::Crashed,
                };
            }
            if Instant::now() >= deadline {
                let _ = self.process.kill();
                let _ = self.process.wait();
                return Ending::TimedOut;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// The answers in the complete lines the child wrote since last asked; an [`Ended`]
    /// message is kept for [`ScannerChild::culprit`].
    fn new_answers(&mut self) -> Vec<Answer> {
        let mut text = String::new();
        let read = self
            .stdout
            .seek(std::io::SeekFrom::Start(self.read))
            .and_then(|_| (&mut self.stdout).take(1 << 20).read_to_string(&mut text));
        if read.is_err() {
            return Vec::new();
        }
        self.read += text.len() as u64;
        self.pending.push_str(&text);
        let Some(end) = self.pending.rfind('\n') else {
            return Vec::new();
        };
        let complete: String = self.pending.drain(..=end).collect();
        let mut answers = Vec::new();
        for line in complete.lines() {
            match serde_json::from_str(line) {
                Ok(Message::Answer(answer)) => answers.push(answer),
                Ok(Message::Ended(ended)) => self.ended = Some(ended),
                Err(e) => tracing::debug!("the backend scanner said something else ({e}): {line}"),
            }
        }
        answers
    }

    /// The answer for the file the child was at when it ended: how the call into it ended
    /// the process (the boundary's message), else how the process ended.
    fn culprit(&mut self, file: &Path) -> Answer {
        // A message may have come with the last lines.
        self.new_answers();
        let reason = match (&self.ended, self.process.try_wait().ok().flatten()) {
            (Some(ended), _) => ended.to_string(),
            (None, Some(status)) => match platform::exit_status(status) {
                platform::Exit::Signal(signal) => {
                    format!("loading it ended the process that checked it (signal {signal})")
                }
                platform::Exit::Crash(code) => {
                    format!("loading it ended the process that checked it (exception {code:#010X})")
                }
                platform::Exit::Code(code) => {
                    format!("loading it ended the process that checked it (exit code {code})")
                }
            },
            (None, None) => "the process that checked it ended without an answer".to_owned(),
        };
        Answer {
            file: file.to_owned(),
            described: Err(LoadError::new(
                reason,
                "this file is not a working sygen backend; remove it or ask its publisher for \
                 a fixed build",
            )),
            available: None,
        }
    }
}

fn did_not_finish(file: &Path) -> Answer {
    Answer {
        file: file.to_owned(),
        described: Err(LoadError::new(
            format!(
                "describing it did not finish in time (the check of {} was ended)",
                file.display()
            ),
            "its library constructor or its service manager is stuck; remove the file if you \
             do not need it",
        )),
        available: None,
    }
}

/// Set for a dry run, which changes nothing in the sygen home, not even the cache.
static READ_ONLY: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// From now on, describe without writing the cache.
pub fn write_nothing() {
    READ_ONLY.store(true, std::sync::atomic::Ordering::Relaxed);
}

/// The cache file: what each file was, by path, while its stamp is unchanged.
#[derive(Default, Deserialize, Serialize)]
struct Cache {
    files: BTreeMap<PathBuf, Entry>,
}

#[derive(Deserialize, Serialize)]
struct Entry {
    stamp: String,
    described: Result<Described, LoadError>,
}

/// A cache larger than this is not one sygen wrote.
const MAX_CACHE: u64 = 1 << 20;

impl Cache {
    /// The cache at `path`; nothing when there is none, or it is not one sygen wrote.
    fn read(path: &Path) -> Self {
        if platform::check_private(path).is_err() {
            return Self::default();
        }
        match file::read_small(path, MAX_CACHE) {
            Ok(Some(text)) => serde_json::from_str(&text).unwrap_or_default(),
            Ok(None) => Self::default(),
            Err(e) => {
                tracing::debug!("ignoring the backend cache {}: it {e}", path.display());
                Self::default()
            }
        }
    }

    fn lookup(&self, file: &Path, stamp: &str) -> Option<Result<Described, LoadError>> {
        let entry = self.files.get(file).filter(|e| e.stamp == stamp)?;
        Some(entry.described.clone())
    }

    /// Keeps what a child learnt, when it stays true while the file is unchanged. Answers
    /// whether the cache changed.
    fn store(
        &mut self,
        file: &Path,
        stamp: &str,
        described: &Result<Described, LoadError>,
    ) -> bool {
        if matches!(described, Err(refusal) if !refusal.lasting) {
            return false;
        }
        let entry = Entry {
            stamp: stamp.to_owned(),
            described: described.clone(),
        };
        self.files.insert(file.to_owned(), entry);
        true
    }

    fn keep_only(&mut self, files: &[PathBuf]) {
        self.files.retain(|path, _| files.contains(path));
    }

    /// Writes the cache atomically; a home that cannot take it only makes the next command
    /// describe again.
    fn write(&self, path: &Path) {
        if READ_ONLY.load(std::sync::atomic::Ordering::Relaxed) {
            return;
        }
        // Into an existing sygen home only: looking for backends creates no home.
        let dir = path.parent().unwrap_or(path);
        let created = match std::fs::create_dir(dir) {
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
            other => other,
        };
        let written = created
            .and_then(|()| serde_json::to_vec(self).map_err(std::io::Error::other))
            .and_then(|json| write_atomic(path, &json, Some(0o600)));
        if let Err(e) = written {
            tracing::debug!("cannot keep the backend cache {}: {e}", path.display());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::name::BackendName;

    fn described(name: &str) -> Described {
        Described {
            name: BackendName::parse(name).unwrap(),
            version: "1.0.0".into(),
            platform: "linux".into(),
            description: String::new(),
            api_version: "1.2.0".into(),
        }
    }

    #[test]
    fn the_cache_keeps_only_what_stays_true_while_the_file_is_unchanged() {
        let mut cache = Cache::default();
        let (good, foreign, stuck) = (
            Path::new("/b/good.so"),
            Path::new("/b/foreign.so"),
            Path::new("/b/stuck.so"),
        );
        assert!(cache.store(good, "s1", &Ok(described("good"))));
        let foreign_interface = LoadError::new("built against backend interface 2.0.0", "h");
        assert!(cache.store(foreign, "s1", &Err(foreign_interface.clone().lasting())));
        // A hang or a crash may not happen next time: never cached.
        assert!(!cache.store(stuck, "s1", &Err(LoadError::new("did not finish", "h"))));

        assert_eq!(cache.lookup(good, "s1"), Some(Ok(described("good"))));
        assert_eq!(cache.lookup(good, "s2"), None, "the file changed");
        assert_eq!(
            cache.lookup(foreign, "s1"),
            Some(Err(foreign_interface.lasting()))
        );
        assert_eq!(cache.lookup(stuck, "s1"), None);

        cache.keep_only(&[good.to_path_buf()]);
        assert_eq!(cache.lookup(foreign, "s1"), None, "a file no longer found");
        assert!(cache.lookup(good, "s1").is_some());
    }

    #[cfg(unix)]
    #[test]
    fn a_cache_only_this_user_could_write_is_read() {
        use std::os::unix::fs::PermissionsExt as _;
        let home = tempfile::tempdir().unwrap();
        let path = home.path().join("cache").join("backends.json");
        let mut cache = Cache::default();
        cache.store(Path::new("/b/good.so"), "s1", &Ok(described("good")));
        cache.write(&path);
        let read = Cache::read(&path);
        assert!(read.lookup(Path::new("/b/good.so"), "s1").is_some());

        // One that someone else could have written is no shortcut.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
        assert!(Cache::read(&path).files.is_empty());

        // Nor is a FIFO, which is not waited on.
        std::fs::remove_file(&path).unwrap();
        let mode = nix::sys::stat::Mode::from_bits_truncate(0o600);
        nix::unistd::mkfifo(&path, mode).unwrap();
        assert!(Cache::read(&path).files.is_empty());
    }
}
