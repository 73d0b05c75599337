//! What Linux and macOS share: signals as requests, `flock` as the instance lock, and which
//! processes of a process table belong to a tree.

use std::{
    fs::{File, TryLockError},
    io::{self, Write as _},
    process::{Command, Stdio},
    sync::{Arc, Mutex, OnceLock},
};

use signal_hook::{
    consts::{SIGHUP, SIGINT, SIGTERM, SIGUSR1},
    iterator::Signals,
};

use super::{os, Exit, Identity, Listener, Owner, Request, StdStream, Untrusted, TREE_MARKER};

/// Whose processes sygen may look at and signal: the caller's own; for root acting on another
/// user's sygen home (a system service run as that user, as OpenRC's is), that user's.
pub(super) fn owner() -> u32 {
    static OWNER: OnceLock<u32> = OnceLock::new();
    *OWNER.get_or_init(|| {
        let euid = nix::unistd::geteuid().as_raw();
        if euid != 0 {
            return euid;
        }
        use std::os::unix::fs::MetadataExt as _;
        crate::home::sygen_home()
            .ok()
            .and_then(|home| std::fs::metadata(home).ok())
            .map_or(0, |m| m.uid())
    })
}

/// Sends `request` to `target` if it is still that very process, never to pid 0 or 1 or to
/// another user's process. Answers whether it was sent (false: the process is gone).
pub fn send(target: Identity, request: Request) -> io::Result<bool> {
    if target.pid <= 1 {
        return Ok(false);
    }
    os::signal(target, request)
}

/// Takes the exclusive lock on `file` if no one holds it; answers whether it did.
pub fn try_lock(file: &File) -> io::Result<bool> {
    match file.try_lock() {
        Ok(()) => Ok(true),
        Err(TryLockError::WouldBlock) => Ok(false),
        Err(TryLockError::Error(e)) => Err(e),
    }
}

/// Whether someone holds the exclusive lock on `file`. The shared lock taken to find out is
/// released at once.
pub fn is_locked(file: &File) -> io::Result<bool> {
    match file.try_lock_shared() {
        Ok(()) => {
            file.unlock()?;
            Ok(false)
        }
        Err(TryLockError::WouldBlock) => Ok(true),
        Err(TryLockError::Error(e)) => Err(e),
    }
}

/// Whether `file` is the file at `path` now.
pub fn is_same_file(file: &File, path: &std::path::Path) -> bool {
    use std::os::unix::fs::MetadataExt as _;
    match (file.metadata(), std::fs::metadata(path)) {
        (Ok(open), Ok(named)) => open.dev() == named.dev() && open.ino() == named.ino(),
        _ => false,
    }
}

/// What a file that is neither regular nor a directory is, in words.
pub fn special_file_kind(metadata: &std::fs::Metadata) -> &'static str {
    use std::os::unix::fs::FileTypeExt as _;
    let kind = metadata.file_type();
    if kind.is_fifo() {
        "a FIFO"
    } else if kind.is_char_device() || kind.is_block_device() {
        "a device"
    } else if kind.is_socket() {
        "a socket"
    } else {
        "not a file"
    }
}

/// The bytes an unprivileged user may still write on the filesystem of `path`.
pub fn available_space(path: &std::path::Path) -> io::Result<u64> {
    let stats = nix::sys::statvfs::statvfs(path)?;
    #[allow(
        clippy::useless_conversion,
        reason = "the types differ between platforms"
    )]
    let (blocks, size) = (
        u64::from(stats.blocks_available()),
        u64::from(stats.fragment_size()),
    );
    Ok(blocks.saturating_mul(size))
}

/// Opens `path` to read without blocking on what it is: opening a FIFO that no one writes
/// would otherwise wait for a writer. Reads of a regular file are unaffected by the flag.
pub fn open_nonblocking(path: &std::path::Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt as _;
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NONBLOCK)
        .open(path)
}

/// A duplicate of `stream`'s descriptor when a regular file is behind it.
pub fn regular_file_behind(stream: StdStream) -> Option<File> {
    use std::os::fd::AsFd as _;
    let fd = match stream {
        StdStream::Out => io::stdout().as_fd().try_clone_to_owned(),
        StdStream::Err => io::stderr().as_fd().try_clone_to_owned(),
    };
    let file = File::from(fd.ok()?);
    file.metadata().ok()?.is_file().then_some(file)
}

/// Calls `heard` with each stop (SIGTERM, SIGINT) and restart (SIGUSR1 for the runtime, SIGHUP
/// for the agent) request, on a thread of its own.
pub fn listen(who: Listener, heard: impl Fn(Request) + Send + 'static) -> io::Result<()> {
    let restart = match who {
        Listener::Runtime => SIGUSR1,
        Listener::Agent => SIGHUP,
    };
    let mut signals = Signals::new([SIGTERM, SIGINT, restart])?;
    std::thread::spawn(move || {
        for signal in signals.forever() {
            heard(if signal == restart {
                Request::Restart
            } else {
                Request::Stop
            });
        }
    });
    Ok(())
}

/// How a child ended.
pub fn exit_status(status: std::process::ExitStatus) -> Exit {
    use std::os::unix::process::ExitStatusExt as _;
    match (status.code(), status.signal()) {
        (Some(code), _) => Exit::Code(code),
        (None, Some(signal)) => Exit::Signal(signal),
        (None, None) => Exit::Code(1),
    }
}

/// A command whose output is cut short (`sygen service backends | head`) ends quietly, as Unix
/// tools do, instead of failing on the closed pipe: SIGPIPE gets its default action back.
pub fn quiet_on_closed_pipes() {
    use nix::sys::signal::{signal, SigHandler, Signal};
    // SAFETY: restores the default disposition at startup, before any thread exists.
    let _ = unsafe { signal(Signal::SIGPIPE, SigHandler::SigDfl) };
}

/// The signals that end a process that crashed or aborted, and their names.
const FATAL: [(nix::sys::signal::Signal, &str); 5] = {
    use nix::sys::signal::Signal::*;
    [
        (SIGSEGV, "SIGSEGV"),
        (SIGBUS, "SIGBUS"),
        (SIGILL, "SIGILL"),
        (SIGFPE, "SIGFPE"),
        (SIGABRT, "SIGABRT"),
    ]
};

/// Calls `report` with the signal's name when this process crashes or aborts, from a handler
/// on the thread's alternate stack (so a stack overflow is reported too): `report` may only do
/// what is async-signal-safe. If it returns, the handler the signal had before is put back and
/// the signal takes that course.
pub fn on_crash(report: fn(&'static str)) {
    use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet};
    static REPORT: OnceLock<fn(&'static str)> = OnceLock::new();
    static PREVIOUS: OnceLock<Vec<SigAction>> = OnceLock::new();
    extern "C" fn handler(signal: nix::libc::c_int) {
        let Some(index) = FATAL
            .iter()
            .position(|(s, _)| *s as nix::libc::c_int == signal)
        else {
            return;
        };
        if let Some(report) = REPORT.get() {
            report(FATAL[index].1);
        }
        let default = SigAction::new(SigHandler::SigDfl, SaFlags::empty(), SigSet::empty());
        let previous = PREVIOUS
            .get()
            .and_then(|p| p.get(index))
            .unwrap_or(&default);
        // SAFETY: sigaction is async-signal-safe; the fault, if it was one, happens again under
        // the previous handler when this one returns.
        let _ = unsafe { sigaction(FATAL[index].0, previous) };
    }
    if REPORT.set(report).is_err() {
        return;
    }
    let ours = SigAction::new(
        SigHandler::Handler(handler),
        SaFlags::SA_ONSTACK,
        SigSet::empty(),
    );
    let default = SigAction::new(SigHandler::SigDfl, SaFlags::empty(), SigSet::empty());
    // SAFETY: the handler only reads atomics, writes and ends the process.
    let previous = FATAL
        .iter()
        .map(|(signal, _)| unsafe { sigaction(*signal, &ours) }.unwrap_or(default))
        .collect();
    let _ = PREVIOUS.set(previous);
}

/// Calls `report` when the process is about to exit through `exit()` (not `_exit`).
pub fn on_exit(report: extern "C" fn()) {
    // SAFETY: registers a plain function; failure (no room) leaves exits unreported.
    if unsafe { nix::libc::atexit(report) } != 0 {
        tracing::debug!("cannot register the exit hook");
    }
}

/// Writes to `stream` with one system call: async-signal-safe, unbuffered, unlocked.
pub fn write_now(stream: StdStream, bytes: &[u8]) {
    let fd = match stream {
        StdStream::Out => 1,
        StdStream::Err => 2,
    };
    // SAFETY: fds 1 and 2 are open for the life of the process (or writing fails harmlessly).
    let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
    let _ = nix::unistd::write(fd, bytes);
}

/// Ends the process now, running nothing else: async-signal-safe.
pub fn exit_now(code: i32) -> ! {
    // SAFETY: `_exit` ends the process without running anything of it.
    unsafe { nix::libc::_exit(code) }
}

/// Who else could have written a file or directory.
enum Exposure {
    /// Group or others may write it: its mode.
    Writable(u32),
    /// It belongs to this user id, not to one trusted.
    Owner(u32),
}

/// Whether someone other than the `trusted` users could have written `place` (a symbolic link
/// is judged by what it points to).
fn exposure(place: &std::path::Path, trusted: &[u32]) -> Result<Option<Exposure>, Untrusted> {
    let metadata = std::fs::metadata(place).map_err(|e| Untrusted {
        reason: format!("cannot check {}: {e}", place.display()),
        hint: format!("check that {} exists and is readable", place.display()),
    })?;
    Ok(exposure_of(&metadata, trusted))
}

fn exposure_of(metadata: &std::fs::Metadata, trusted: &[u32]) -> Option<Exposure> {
    use std::os::unix::fs::MetadataExt;
    let mode = metadata.mode() & 0o7777;
    if mode & 0o022 != 0 {
        Some(Exposure::Writable(mode))
    } else if !trusted.contains(&metadata.uid()) {
        Some(Exposure::Owner(metadata.uid()))
    } else {
        None
    }
}

/// Refuses a library that someone other than this user (or root) could have put there: a
/// file or directory writable by group or others, or owned by another user. Loading it runs
/// its code with this user's rights.
pub fn check_trust(path: &std::path::Path) -> Result<(), Untrusted> {
    let it = exposure(path, &trusted_writers())?;
    judge_trust(path, it)
}

/// [`check_trust`] for the library open as `file`: the file itself is judged through the
/// descriptor, so what is checked is what is loaded.
pub fn check_trust_open(file: &File, path: &std::path::Path) -> Result<(), Untrusted> {
    let metadata = file.metadata().map_err(|e| Untrusted {
        reason: format!("cannot check {}: {e}", path.display()),
        hint: format!("check that {} is readable", path.display()),
    })?;
    judge_trust(path, exposure_of(&metadata, &trusted_writers()))
}

fn trusted_writers() -> [u32; 2] {
    [nix::unistd::geteuid().as_raw(), 0]
}

fn judge_trust(path: &std::path::Path, it: Option<Exposure>) -> Result<(), Untrusted> {
    let dir = path.parent().unwrap_or(std::path::Path::new("/"));
    let of_dir = exposure(dir, &trusted_writers())?;
    for (what, place, exposure) in [("it", path, it), ("its directory", dir, of_dir)] {
        let shown = place.display();
        match exposure {
            Some(Exposure::Writable(mode)) => return Err(Untrusted {
                reason: format!(
                    "refusing to load it: {what} ({shown}) is writable by group or others (mode {mode:04o})"
                ),
                hint: format!("run `chmod go-w {shown}` if you trust its contents"),
            }),
            Some(Exposure::Owner(owner)) => return Err(Untrusted {
                reason: format!(
                    "refusing to load it: {what} ({shown}) belongs to user {owner}, not to you or root"
                ),
                hint: format!(
                    "copy it somewhere of yours, or `chown` {shown} to yourself if you trust it"
                ),
            }),
            None => {}
        }
    }
    Ok(())
}

/// Opens a backend library once, to check it and load it through the same descriptor.
pub fn open_to_load(path: &std::path::Path) -> io::Result<File> {
    File::open(path)
}

/// A loaded library's file, open for good, and its size and modification time as loaded: a
/// crash in its code can then tell whether the file was written over while it ran (truncating
/// a mapped file turns its next page fault into SIGBUS).
#[derive(Clone, Copy)]
pub struct LoadedFile {
    fd: std::os::fd::RawFd,
    /// Size and modification time as loaded; none when they could not be read.
    loaded: Option<(i64, i64, i64)>,
}

impl LoadedFile {
    /// Keeps `file` open for the life of the process and remembers how it is now.
    pub fn keep(file: File) -> Self {
        use std::os::fd::AsFd as _;
        let loaded = nix::sys::stat::fstat(file.as_fd()).ok().map(stamp);
        Self {
            fd: std::os::fd::IntoRawFd::into_raw_fd(file),
            loaded,
        }
    }

    /// Whether the file is no longer as it was loaded: async-signal-safe (one `fstat`).
    pub fn changed(self) -> bool {
        // SAFETY: the descriptor stays open for the life of the process (see `keep`).
        let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(self.fd) };
        match (self.loaded, nix::sys::stat::fstat(fd)) {
            (Some(loaded), Ok(now)) => stamp(now) != loaded,
            _ => false,
        }
    }
}

fn stamp(stat: nix::sys::stat::FileStat) -> (i64, i64, i64) {
    (stat.st_size, stat.st_mtime, stat.st_mtime_nsec)
}

/// A stamp of a file's metadata that changes whenever its content or identity may have:
/// device, inode, size, modification and change times.
pub fn file_stamp(metadata: &std::fs::Metadata) -> String {
    use std::os::unix::fs::MetadataExt;
    format!(
        "{}:{}:{}:{}.{}:{}.{}",
        metadata.dev(),
        metadata.ino(),
        metadata.size(),
        metadata.mtime(),
        metadata.mtime_nsec(),
        metadata.ctime(),
        metadata.ctime_nsec()
    )
}

/// Refuses a file or directory of the sygen home that someone other than its users could have
/// written: one writable by group or others, or owned by a user other than this one, root, or
/// the owner of the sygen home (for root acting on a user's home). Its content becomes a command
/// sygen runs, or the place it writes.
pub fn check_private(path: &std::path::Path) -> Result<(), Untrusted> {
    let shown = path.display();
    match exposure(path, &home_users())? {
        Some(Exposure::Writable(mode)) => Err(Untrusted {
            reason: format!("{shown} is writable by group or others (mode {mode:04o})"),
            hint: format!("run `chmod go-w {shown}`"),
        }),
        Some(Exposure::Owner(owner)) => Err(not_a_home_user(path, owner)),
        None => Ok(()),
    }
}

/// Refuses a file of secrets (the worker's env file) that anyone but the sygen home's users
/// could read or could have written: one that group or others may read or write, or owned by
/// a user other than this one, root or the home's owner. Judged on the open `file`, so what is
/// checked is what is read.
pub fn check_secret(file: &File, path: &std::path::Path) -> Result<(), Untrusted> {
    use std::os::unix::fs::MetadataExt as _;
    let shown = path.display();
    let metadata = file.metadata().map_err(|e| Untrusted {
        reason: format!("cannot check {shown}: {e}"),
        hint: format!("check that {shown} is readable"),
    })?;
    let mode = metadata.mode() & 0o7777;
    if mode & 0o066 != 0 {
        return Err(Untrusted {
            reason: format!(
                "{shown} can be read or written by group or others (mode {mode:04o}), and it \
                 holds secrets"
            ),
            hint: format!("run `chmod 600 {shown}`"),
        });
    }
    match exposure_of(&metadata, &home_users()) {
        Some(Exposure::Owner(owner)) => Err(not_a_home_user(path, owner)),
        _ => Ok(()),
    }
}

/// Who may own the sygen home's files: this user, root, and the home's owner.
fn home_users() -> [u32; 3] {
    [nix::unistd::geteuid().as_raw(), 0, owner()]
}

/// Why a file of the home that `owner` owns is refused.
fn not_a_home_user(path: &std::path::Path, owner: u32) -> Untrusted {
    let shown = path.display();
    Untrusted {
        reason: format!("{shown} belongs to user {owner}, not to you or root"),
        hint: format!("check what it holds, then `chown` {shown} to yourself"),
    }
}

/// Whether the environment variable `name` is the one programs are searched in: names are
/// case-sensitive here.
pub fn is_search_path(name: &str) -> bool {
    name == "PATH"
}

/// Whether the system runs a script by the interpreter its `#!` line names.
pub const FOLLOWS_SHEBANGS: bool = true;

/// Opens without following a symbolic link in the last component: a file sygen writes in the
/// sygen home is never a link someone placed to make it write elsewhere.
pub fn no_follow(options: &mut std::fs::OpenOptions) -> &mut std::fs::OpenOptions {
    std::os::unix::fs::OpenOptionsExt::custom_flags(options, nix::libc::O_NOFOLLOW)
}

/// How a child that `waitpid` reaped ended; `None` for anything but an exit.
pub(super) fn exit_of(status: nix::sys::wait::WaitStatus) -> Option<Exit> {
    match status {
        nix::sys::wait::WaitStatus::Exited(_, code) => Some(Exit::Code(code)),
        nix::sys::wait::WaitStatus::Signaled(_, signal, _) => Some(Exit::Signal(signal as i32)),
        _ => None,
    }
}

/// One process of the table a platform reads.
pub(super) struct Entry {
    pub identity: Identity,
    pub parent: u32,
    pub group: u32,
    /// Whether it carries the tree marker asked for.
    pub marked: bool,
}

/// The processes in `table` that belong to the tree: descendants of `root`, carriers of the
/// marker, members of the group `group` leads.
pub(super) fn members(
    table: &[Entry],
    root: Option<u32>,
    group: Option<Identity>,
) -> Vec<Identity> {
    // A recorded worker's group counts while its leader is that very process and carries the
    // marker, or is gone: a pid is not reused while its group has members, so then the group
    // is the one recorded, and its members started after the worker did.
    let group = group.filter(
        |leader| match table.iter().find(|e| e.identity.pid == leader.pid) {
            Some(entry) => entry.identity == *leader && entry.marked,
            None => true,
        },
    );
    let mut tree: Vec<u32> = root.into_iter().collect();
    let mut found = Vec::new();
    // Parents are found before their children in a few passes; a table is small.
    loop {
        let before = found.len();
        for entry in table {
            let pid = entry.identity.pid;
            if found.contains(&entry.identity) || root == Some(pid) {
                continue;
            }
            let in_group =
                group.is_some_and(|g| g.pid == entry.group && entry.identity.start >= g.start);
            if entry.marked || in_group || tree.contains(&entry.parent) {
                tree.push(pid);
                found.push(entry.identity);
            }
        }
        if found.len() == before {
            return found;
        }
    }
}

/// The runtime's hold on the processes its workers start.
pub struct Tree {
    marker: String,
    inner: os::Tree,
    guard: Option<Guard>,
}

/// The process that ends the tree once the runtime is gone, and the pipe it watches.
struct Guard {
    pid: u32,
    pipe: io::PipeWriter,
}

impl Tree {
    /// Takes ownership of every process a worker will start for the sygen home `home` (as
    /// `instance::marker` spells it); `exited` hears the exit of each child of the runtime.
    pub fn new(home: &str, exited: impl Fn(u32, Exit) + Send + 'static) -> io::Result<Self> {
        let runtime = Identity::this_process()
            .ok_or_else(|| io::Error::other("cannot read this process's own start time"))?;
        Ok(Self {
            marker: super::tree_marker(home, runtime),
            inner: os::Tree::new(Arc::new(Mutex::new(exited)))?,
            guard: None,
        })
    }

    /// The value of [`TREE_MARKER`] in this tree.
    pub fn marker(&self) -> &str {
        &self.marker
    }

    /// Starts `command` (`sygen guard`) as the tree's guard: a process outside the tree, in a
    /// process group of its own (a terminal's Ctrl+C is for the runtime), whose standard input
    /// is a pipe only this runtime holds open. However the runtime ends, `kill -9` included,
    /// the pipe closes with it, and the guard ends what is left of this runtime's tree: the
    /// parent-death signal reaches only the worker itself, and macOS has none at all.
    pub fn guard(&mut self, mut command: Command) -> io::Result<()> {
        let (watched, pipe) = io::pipe()?;
        // A guard that stops reading must never stall the runtime: news it misses is dropped.
        let flags = nix::fcntl::fcntl(&pipe, nix::fcntl::FcntlArg::F_GETFL)?;
        let flags = nix::fcntl::OFlag::from_bits_retain(flags) | nix::fcntl::OFlag::O_NONBLOCK;
        nix::fcntl::fcntl(&pipe, nix::fcntl::FcntlArg::F_SETFL(flags))?;
        command
            .stdin(watched)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let guard = command.spawn()?;
        self.guard = Some(Guard {
            pid: guard.id(),
            pipe,
        });
        Ok(())
    }

    /// Starts `command` as a worker: in a process group of its own, marked as this tree's, and
    /// ended with the runtime where the platform can arrange it; tells the guard of it.
    pub fn spawn(&self, command: &mut Command) -> io::Result<std::process::Child> {
        let child = self.spawn_hook(command)?;
        if let (Some(guard), Some(worker)) = (&self.guard, Identity::of(child.id())) {
            // The worker's process group is the tree's too: the guard ends its members. One
            // JSON line, written at once.
            if let Ok(json) = serde_json::to_string(&worker) {
                let _ = (&guard.pipe).write_all(format!("{json}\n").as_bytes());
            }
        }
        Ok(child)
    }

    /// Starts `command` as [`Tree::spawn`] does, but not as the worker: a hook, whose group the
    /// guard need not know.
    pub fn spawn_hook(&self, command: &mut Command) -> io::Result<std::process::Child> {
        command.env(TREE_MARKER, &self.marker);
        std::os::unix::process::CommandExt::process_group(command, 0);
        self.inner.spawn(command)
    }

    /// Every live process of the tree now, the runtime itself and its guard excepted.
    pub fn members(&self, worker: Option<Identity>) -> Vec<Identity> {
        let table = os::table(Owner::Runtime(&self.marker));
        let guard = self.guard.as_ref().map(|g| g.pid);
        let mut found = members(&table, Some(std::process::id()), worker);
        found.retain(|p| Some(p.pid) != guard);
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(pid: u32, start: u64, parent: u32, group: u32, marked: bool) -> Entry {
        Entry {
            identity: Identity { pid, start },
            parent,
            group,
            marked,
        }
    }

    fn pids(found: Vec<Identity>) -> Vec<u32> {
        let mut pids: Vec<u32> = found.into_iter().map(|i| i.pid).collect();
        pids.sort();
        pids
    }

    #[test]
    fn the_tree_is_descendants_marked_processes_and_the_worker_group() {
        let table = [
            entry(10, 1, 1, 10, false),  // the runtime
            entry(30, 3, 20, 20, false), // child of 20, listed before it
            entry(20, 2, 10, 20, true),  // the worker
            entry(40, 4, 1, 40, true),   // a daemon that left the tree, still marked
            entry(50, 5, 1, 20, false),  // left, but still in the worker's group
            entry(60, 6, 1, 60, false),  // unrelated
        ];
        let worker = Identity { pid: 20, start: 2 };
        assert_eq!(
            pids(members(&table, Some(10), Some(worker))),
            [20, 30, 40, 50]
        );
        // Without a root: the marked processes and their children.
        assert_eq!(pids(members(&table, None, None)), [20, 30, 40]);
    }

    #[test]
    fn only_a_group_the_recorded_worker_led_is_ours() {
        let recorded = Identity { pid: 20, start: 2 };
        // The pid was recycled: another leader, another group.
        let table = [entry(20, 99, 1, 20, false), entry(21, 100, 20, 20, false)];
        assert!(members(&table, None, Some(recorded)).is_empty());
        // The very process, but without the marker: not a worker sygen started.
        let table = [entry(20, 2, 1, 20, false), entry(21, 3, 20, 20, false)];
        assert!(members(&table, None, Some(recorded)).is_empty());
        // With the leader gone, the members started after it are the recorded group's.
        let table = [entry(21, 3, 1, 20, false), entry(22, 1, 1, 20, false)];
        assert_eq!(pids(members(&table, None, Some(recorded))), [21]);
    }
}
