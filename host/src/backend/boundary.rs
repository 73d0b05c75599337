//! Honest outcomes at the plugin boundary: whatever a backend does inside a call, sygen never
//! reports a success it did not see and never ends without saying why.
//!
//! The backend a command uses runs in this process (abi_stable, as its interface promises, and
//! so `status` stays a few milliseconds), so its failures are this process's failures. Each call
//! runs on a thread of its own while the caller waits for the answer with a time limit:
//!
//! - **A panic** is already an error: the SDK catches it at the `extern "C"` edge.
//! - **A crash or an abort** (SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT; an unhandled exception
//!   on Windows) reaches a handler installed once ([`platform::on_crash`]). While a call is in
//!   flight it writes one line naming the backend, its version, the call and the signal, and
//!   ends the process with [`CRASH_EXIT`]; otherwise the signal takes the course it had before.
//!   The line is formatted before the call, so the handler only copies bytes and writes them:
//!   nothing in it allocates or locks. When the library's file no longer has the size or
//!   modification time it was loaded with (one `fstat`), the line says the file changed on
//!   disk while loaded instead of blaming the backend: truncating a loaded library makes its
//!   next page fault a SIGBUS.
//! - **`exit()`** called by the backend runs the exit hook ([`platform::on_exit`]; Linux and
//!   macOS), which does the same while a call is in flight: the backend's exit code never
//!   reaches the user.
//! - **A hang** ends at the call's time limit ([`Limit`]; a change the user waits for with
//!   `--timeout` may take that long): the caller gets an error naming the backend and the call, and the backend is not called again by this process. Its thread
//!   cannot be stopped from outside, so it is left behind and ends with the process.
//!
//! The describing child process (see `probe`) reports a crash or an `exit()` as a typed message
//! ([`Ended`], one line of JSON on stdout) instead of a line for people: its parent decodes it.
//!
//! A backend built with `panic = "abort"` would turn every panic into an abort; the SDK's export
//! macro refuses to compile one. What this cannot catch: a backend's own threads crashing after
//! its call returned look like sygen crashing, and `_exit` (or, on Windows, `ExitProcess` and
//! fast-fail aborts) bypasses every hook: such a backend ends sygen with its own exit code.

use std::{
    cell::UnsafeCell,
    path::Path,
    sync::{
        atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering},
        Arc, Condvar, Mutex, Once, PoisonError,
    },
    time::Duration,
};

use serde::{Deserialize, Serialize};

use crate::{
    exit::{Exit, Failure},
    platform::{self, LoadedFile, StdStream},
};

/// The exit code of a process a backend crashed or ended during a call.
pub const CRASH_EXIT: i32 = Exit::Failed as i32;

/// How long a call may take.
#[derive(Clone, Copy, Debug)]
pub enum Limit {
    /// A question: is it available, installed, running; its status; loading the library.
    Query,
    /// A change or a longer answer: install, start, stop, uninstall, logs, `call` methods.
    Change,
    /// As long as the user wants: `logs --follow` ends with Ctrl-C.
    None,
}

/// The environment variable that sets every call's limit, in seconds.
pub const TIMEOUT_VAR: &str = "SYGEN_BACKEND_TIMEOUT";
const QUERY_LIMIT: Duration = Duration::from_secs(10);
const CHANGE_LIMIT: Duration = Duration::from_secs(60);
const MAX_LIMIT_SECS: u64 = 3600;

/// The limit `SYGEN_BACKEND_TIMEOUT` sets, read once by [`read_limit`].
static LIMIT_SET: std::sync::OnceLock<Option<Duration>> = std::sync::OnceLock::new();

/// Reads `SYGEN_BACKEND_TIMEOUT`, at startup: a value that is not a number of seconds from 1 to
/// 3600 is an error before anything runs.
pub fn read_limit() -> Result<(), Failure> {
    let set = match std::env::var_os(TIMEOUT_VAR) {
        None => None,
        Some(text) => match text.to_str().and_then(|t| t.trim().parse::<u64>().ok()) {
            Some(secs @ 1..=MAX_LIMIT_SECS) => Some(Duration::from_secs(secs)),
            _ => {
                return Err(Failure::new(
                    Exit::Failed,
                    format!(
                        "{TIMEOUT_VAR}={} is not a number of seconds from 1 to {MAX_LIMIT_SECS}",
                        text.to_string_lossy()
                    ),
                )
                .hint(format!(
                    "unset {TIMEOUT_VAR} for the defaults (10 s for questions, 60 s for changes)"
                )))
            }
        },
    };
    let _ = LIMIT_SET.set(set);
    Ok(())
}

/// How long the user said to wait for a change (`--timeout`, at most a day).
static WAIT_FOR_CHANGE: std::sync::OnceLock<Duration> = std::sync::OnceLock::new();

/// A change the user waits for with `--timeout` may take that long in the backend too.
pub fn allow_changes_to_take(wait: Duration) {
    let _ = WAIT_FOR_CHANGE.set(wait);
}

impl Limit {
    /// The limit in time: `SYGEN_BACKEND_TIMEOUT`, else the default for the kind of call; a
    /// change also gets the `--timeout` the user gave, when that is longer.
    pub fn duration(self) -> Option<Duration> {
        let set = LIMIT_SET.get().copied().flatten();
        match self {
            Limit::Query => Some(set.unwrap_or(QUERY_LIMIT)),
            Limit::Change => {
                let wait = WAIT_FOR_CHANGE.get().copied().unwrap_or_default();
                Some(set.unwrap_or(CHANGE_LIMIT).max(wait))
            }
            Limit::None => None,
        }
    }
}

/// Who is called and for what, as the messages say it.
pub struct Site<'a> {
    /// `systemd backend 0.1.0`, or `backend <file>` before the library says what it is.
    pub who: &'a str,
    /// `is_service_running`, `loading`, …
    pub call: &'a str,
    /// The library file whose code runs, once loaded.
    pub file: Option<(&'a Path, LoadedFile)>,
}

/// How a call ended the process, as the describing child reports it ([`report_as_messages`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Ending {
    /// A crash: the signal's (or exception's) name.
    Crashed(String),
    /// The backend called `exit()`.
    CalledExit,
}

/// The message a call that ended the process leaves: which call, and how.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ended {
    pub call: String,
    pub ending: Ending,
}

impl std::fmt::Display for Ended {
    /// As the line for people says it, after the backend's name.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.ending {
            Ending::Crashed(signal) => write!(f, "crashed ({signal}) in {}", self.call),
            Ending::CalledExit => write!(f, "ended the process (it called exit) in {}", self.call),
        }
    }
}

/// Set in the describing child: the handlers write an [`Ended`] message on stdout.
static AS_MESSAGES: AtomicBool = AtomicBool::new(false);

/// From now on, a call that ends the process is reported as an [`Ended`] message on stdout.
pub fn report_as_messages() {
    AS_MESSAGES.store(true, Ordering::Release);
}

const IDLE: u8 = 0;
const IN_CALL: u8 = 1;
/// A call ran out of time and is still running: its crash is still its own, and no other call
/// is made.
const ABANDONED: u8 = 2;

static STATE: AtomicU8 = AtomicU8::new(IDLE);

/// The line the handlers write, before and after what happened (`after` in two versions: the
/// second for a library file that changed on disk): written only while [`STATE`] is [`IDLE`]
/// (one call at a time, none after an abandoned one), read only while it is not.
struct Line {
    bytes: UnsafeCell<[u8; LINE_CAPACITY]>,
    before: AtomicUsize,
    after: AtomicUsize,
    len: AtomicUsize,
    as_message: AtomicBool,
    file: UnsafeCell<Option<LoadedFile>>,
}

const LINE_CAPACITY: usize = 2048;

// SAFETY: the bytes are written only by the thread that moves STATE from IDLE to IN_CALL,
// before it does (Release), and read only after a reader has seen STATE other than IDLE
// (Acquire); STATE never goes back to IDLE while a reader may run (see `call`).
unsafe impl Sync for Line {}

static LINE: Line = Line::new();

impl Line {
    const fn new() -> Self {
        Line {
            bytes: UnsafeCell::new([0; LINE_CAPACITY]),
            before: AtomicUsize::new(0),
            after: AtomicUsize::new(0),
            len: AtomicUsize::new(0),
            as_message: AtomicBool::new(false),
            file: UnsafeCell::new(None),
        }
    }

    /// Prepares what the handlers write for a call to `site`: the line for people, or the
    /// message around the [`Ending`] the handler adds. Only while IDLE.
    fn prepare(&self, site: &Site<'_>, as_message: bool) {
        self.as_message.store(as_message, Ordering::Relaxed);
        if as_message {
            // The message is whole only if the call's name fits: it is one of ours, and short.
            let call = serde_json::to_string(site.call).unwrap_or_else(|_| "\"?\"".into());
            self.set(
                &format!("{{\"call\":{call},\"ending\":"),
                ["}\n", "}\n"],
                None,
            );
        } else {
            let after = format!(" in {} (hint: {CRASH_HINT})\n", site.call);
            let changed = site.file.map(|(path, _)| {
                format!(
                    " in {}: its file {} changed on disk while it was loaded (hint: {CHANGED_HINT})\n",
                    site.call,
                    path.display()
                )
            });
            self.set(
                &format!("error: {} ", site.who),
                [&after, changed.as_deref().unwrap_or(&after)],
                site.file.map(|(_, file)| file),
            );
        }
    }

    /// Keeps `before` and both versions of `after` (each cut to fit), and the file to look at,
    /// for the handlers. Only while IDLE.
    fn set(&self, before: &str, after: [&str; 2], file: Option<LoadedFile>) {
        // SAFETY: see `impl Sync for Line`: no reader runs while STATE is IDLE.
        let (bytes, watched) = unsafe { (&mut *self.bytes.get(), &mut *self.file.get()) };
        *watched = file;
        let mut end = 0;
        let mut put = |text: &str, room: usize| {
            let text = &text.as_bytes()[..text.len().min(room)];
            bytes[end..end + text.len()].copy_from_slice(text);
            end += text.len();
            end
        };
        let before = put(before, LINE_CAPACITY / 2);
        let room = (LINE_CAPACITY - before) / 2;
        self.before.store(before, Ordering::Relaxed);
        self.after.store(put(after[0], room), Ordering::Relaxed);
        self.len.store(put(after[1], room), Ordering::Relaxed);
    }

    /// Writes the line, or the message, for `ending`: async-signal-safe.
    fn write(&self, ending: HandlerEnding) {
        // SAFETY: see `impl Sync for Line`: called only once STATE is not IDLE.
        let (bytes, file) = unsafe { (&*self.bytes.get(), *self.file.get()) };
        let (before, after, len) = (
            self.before.load(Ordering::Relaxed),
            self.after.load(Ordering::Relaxed),
            self.len.load(Ordering::Relaxed),
        );
        let after = if file.is_some_and(LoadedFile::changed) {
            after..len
        } else {
            before..after
        };
        let as_message = self.as_message.load(Ordering::Relaxed);
        let stream = if as_message {
            StdStream::Out
        } else {
            StdStream::Err
        };
        platform::write_now(stream, &bytes[..before]);
        for part in ending.parts(as_message) {
            platform::write_now(stream, part);
        }
        platform::write_now(stream, &bytes[after]);
    }
}

/// An [`Ending`] as a handler has it: with nothing allocated.
#[derive(Clone, Copy)]
enum HandlerEnding {
    Crashed(&'static str),
    CalledExit,
}

impl HandlerEnding {
    /// What goes between the two halves of the line: words for people, or the JSON of an
    /// [`Ending`] spelled out (serde cannot run in a signal handler; signal and exception
    /// names are plain ASCII words, which need no escaping).
    fn parts(self, as_message: bool) -> [&'static [u8]; 3] {
        match (self, as_message) {
            (HandlerEnding::Crashed(signal), false) => [b"crashed (", signal.as_bytes(), b")"],
            (HandlerEnding::Crashed(signal), true) => {
                [b"{\"crashed\":\"", signal.as_bytes(), b"\"}"]
            }
            (HandlerEnding::CalledExit, false) => [b"ended the process (it called exit)", b"", b""],
            (HandlerEnding::CalledExit, true) => [b"\"called-exit\"", b"", b""],
        }
    }
}

/// From the crash handler, with the signal's (or exception's) name: reports it and ends the
/// process if a call is in flight, else returns and lets the signal take its course.
fn on_crash(signal: &'static str) {
    if STATE.load(Ordering::Acquire) == IDLE {
        return;
    }
    LINE.write(HandlerEnding::Crashed(signal));
    platform::exit_now(CRASH_EXIT);
}

extern "C" fn on_exit() {
    if STATE.load(Ordering::Acquire) != IN_CALL {
        return;
    }
    LINE.write(HandlerEnding::CalledExit);
    platform::exit_now(CRASH_EXIT);
}

const CHANGED_HINT: &str = "something wrote over the backend library while sygen ran it; \
                            replace a backend with `sygen service backend add`, which never \
                            writes over a loaded file, and run the command again";

const CRASH_HINT: &str = "this is a bug in the backend: report it to its publisher; \
                          `sygen service status` shows the state it left the service in";

/// Whether a call ran out of time in this process: its backend is not called again.
pub fn stuck() -> bool {
    STATE.load(Ordering::Acquire) == ABANDONED
}

/// Why a call gave no answer.
#[derive(Debug)]
pub enum NoAnswer {
    /// An earlier call of this process did not answer: this one was not made.
    NotAsked,
    /// No thread could be started for it.
    NotStarted(std::io::Error),
    /// It did not answer within its limit; it is abandoned.
    TimedOut(Duration),
    /// Its thread ended without an answer.
    Ended,
}

impl NoAnswer {
    /// What happened to `call`, said after the name of who was called.
    pub fn reason(&self, call: &str) -> String {
        match self {
            NoAnswer::NotAsked => {
                format!("was not asked {call}: it did not answer an earlier call")
            }
            NoAnswer::NotStarted(e) => format!("could not be called for {call}: {e}"),
            NoAnswer::TimedOut(limit) => {
                format!("did not answer {call} within {} s", limit.as_secs())
            }
            NoAnswer::Ended => format!("ended {call} without an answer"),
        }
    }

    /// What to do about it.
    pub fn hint(&self) -> String {
        match self {
            NoAnswer::NotAsked => "a stuck backend is not called again by the same command".into(),
            NoAnswer::TimedOut(_) => format!(
                "the backend or its service manager is stuck; `sygen doctor` checks both \
                 ({TIMEOUT_VAR}=<seconds> allows more time)"
            ),
            NoAnswer::NotStarted(_) | NoAnswer::Ended => CRASH_HINT.into(),
        }
    }

    /// The failure reported for the call at `site`.
    pub fn failure(&self, site: &Site<'_>) -> Failure {
        Failure::new(
            Exit::Failed,
            format!("{} {}", site.who, self.reason(site.call)),
        )
        .hint(self.hint())
    }
}

/// Runs `f`, a call into a backend, as this module describes: its answer, or why there was
/// none.
pub fn call<T: Send + 'static>(
    site: &Site<'_>,
    limit: Limit,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, NoAnswer> {
    static HOOKS: Once = Once::new();
    HOOKS.call_once(|| {
        platform::on_crash(on_crash);
        platform::on_exit(on_exit);
    });
    let limit = limit.duration();
    // One call at a time: the line is the one call's.
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(PoisonError::into_inner);
    if STATE.load(Ordering::Acquire) == ABANDONED {
        return Err(NoAnswer::NotAsked);
    }
    LINE.prepare(site, AS_MESSAGES.load(Ordering::Acquire));
    STATE.store(IN_CALL, Ordering::Release);
    let answer = Arc::new(Answer::default());
    let answering = Answering(Arc::clone(&answer));
    let spawned = std::thread::Builder::new()
        .name("backend call".into())
        .spawn(move || answering.give(f()));
    if let Err(e) = spawned {
        STATE.store(IDLE, Ordering::Release);
        return Err(NoAnswer::NotStarted(e));
    }
    let outcome = answer.wait(limit);
    STATE.store(
        match outcome {
            Err(Some(_)) => ABANDONED,
            _ => IDLE,
        },
        Ordering::Release,
    );
    outcome.map_err(|no_answer| match no_answer {
        Some(limit) => NoAnswer::TimedOut(limit),
        None => NoAnswer::Ended,
    })
}

/// Where a call's thread leaves its answer for the caller, who waits with a time limit.
///
/// A mutex and a condition variable, not a channel: a channel's first blocking receive sets up
/// a thread-local whose destructor glibc registers under the dynamic loader's lock, and a
/// backend still loading (its constructor runs inside `dlopen`) holds that lock, so waiting
/// out the limit would wait for the backend after all.
struct Answer<T> {
    reply: Mutex<Reply<T>>,
    changed: Condvar,
}

enum Reply<T> {
    Pending,
    Given(T),
    /// The thread ended without an answer.
    Ended,
}

impl<T> Default for Answer<T> {
    fn default() -> Self {
        Self {
            reply: Mutex::new(Reply::Pending),
            changed: Condvar::new(),
        }
    }
}

impl<T> Answer<T> {
    /// The answer; `Err(Some(limit))` when there was none within `limit`, `Err(None)` when the
    /// thread ended without one.
    fn wait(&self, limit: Option<Duration>) -> Result<T, Option<Duration>> {
        let reply = self.reply.lock().unwrap_or_else(PoisonError::into_inner);
        let pending = |reply: &mut Reply<T>| matches!(reply, Reply::Pending);
        let mut reply = match limit {
            Some(limit) => {
                let (mut reply, _) = self
                    .changed
                    .wait_timeout_while(reply, limit, pending)
                    .unwrap_or_else(PoisonError::into_inner);
                if pending(&mut reply) {
                    return Err(Some(limit));
                }
                reply
            }
            None => self
                .changed
                .wait_while(reply, pending)
                .unwrap_or_else(PoisonError::into_inner),
        };
        match std::mem::replace(&mut *reply, Reply::Ended) {
            Reply::Given(value) => Ok(value),
            Reply::Pending | Reply::Ended => Err(None),
        }
    }
}

/// The call's thread's side of an [`Answer`]: dropped without giving one (the call
/// unwound), it says the thread ended.
struct Answering<T>(Arc<Answer<T>>);

impl<T> Answering<T> {
    fn give(self, value: T) {
        self.settle(Reply::Given(value));
    }

    fn settle(&self, to: Reply<T>) {
        let mut reply = self.0.reply.lock().unwrap_or_else(PoisonError::into_inner);
        if matches!(*reply, Reply::Pending) {
            *reply = to;
        }
        self.0.changed.notify_all();
    }
}

impl<T> Drop for Answering<T> {
    fn drop(&mut self) {
        self.settle(Reply::Ended);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the handlers write, as `Line::write` puts it together.
    fn written(as_message: bool, ending: HandlerEnding) -> String {
        let line = Line::new();
        let site = Site {
            who: "backend /b/libsygen_x.so",
            call: "loading",
            file: None,
        };
        line.prepare(&site, as_message);
        let bytes = line.bytes.into_inner();
        let (before, after) = (line.before.into_inner(), line.after.into_inner());
        let mut all = bytes[..before].to_vec();
        all.extend(ending.parts(as_message).concat());
        all.extend(&bytes[before..after]);
        String::from_utf8(all).unwrap()
    }

    #[test]
    fn a_handler_writes_a_message_its_parent_decodes() {
        for (ending, expected) in [
            (
                HandlerEnding::Crashed("SIGSEGV"),
                Ending::Crashed("SIGSEGV".into()),
            ),
            (HandlerEnding::CalledExit, Ending::CalledExit),
        ] {
            let text = written(true, ending);
            assert!(text.ends_with('\n'), "{text:?}");
            let ended: Ended = serde_json::from_str(text.trim_end()).unwrap();
            assert_eq!(
                ended,
                Ended {
                    call: "loading".into(),
                    ending: expected
                }
            );
        }
    }

    #[test]
    fn a_handler_writes_one_line_for_people_otherwise() {
        let text = written(false, HandlerEnding::Crashed("SIGBUS"));
        assert!(
            text.starts_with("error: backend /b/libsygen_x.so crashed (SIGBUS) in loading (hint: "),
            "{text}"
        );
        let ended = Ended {
            call: "loading".into(),
            ending: Ending::Crashed("SIGBUS".into()),
        };
        assert!(text.contains(&ended.to_string()), "{text}");
    }
}
