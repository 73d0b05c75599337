//! macOS: the process table from libproc (`proc_listallpids`, `proc_pidinfo`) and the tree
//! marker from each process's initial environment (`KERN_PROCARGS2`). macOS has no child
//! subreaper and no parent-death signal: a worker's orphans are reparented to launchd, and are
//! found by their marker; a killed runtime's tree is ended by its guard (`unix::Tree::guard`).

use std::{
    io,
    mem::{size_of, MaybeUninit},
    process::{Child, Command},
    thread,
};

use nix::{
    sys::{
        signal::{kill, Signal},
        wait::waitpid,
    },
    unistd::Pid,
};

use super::{
    unix::{self, Entry},
    Exit, Identity, Owner, Request,
};

/// What libproc says of a process, when it is this user's and not a zombie.
fn bsd_info(pid: u32) -> Option<libc::proc_bsdinfo> {
    let mut info = MaybeUninit::<libc::proc_bsdinfo>::zeroed();
    let size = size_of::<libc::proc_bsdinfo>() as libc::c_int;
    // SAFETY: `info` is a writable buffer of exactly `size` bytes.
    let written = unsafe {
        libc::proc_pidinfo(
            pid as libc::c_int,
            libc::PROC_PIDTBSDINFO,
            0,
            info.as_mut_ptr().cast(),
            size,
        )
    };
    if written != size {
        return None;
    }
    // SAFETY: proc_pidinfo filled all of it.
    let info = unsafe { info.assume_init() };
    // SZOMB: a zombie is not alive.
    let ours = info.pbi_uid == unix::owner() && info.pbi_status != 5;
    ours.then_some(info)
}

fn start(info: &libc::proc_bsdinfo) -> u64 {
    info.pbi_start_tvsec * 1_000_000 + info.pbi_start_tvusec
}

/// macOS has no pid namespaces: every process shares one.
pub(super) fn pid_namespace() -> Option<u64> {
    None
}

pub(super) fn boot_id() -> Option<String> {
    let mut boot = MaybeUninit::<libc::timeval>::zeroed();
    let mut size = size_of::<libc::timeval>();
    // SAFETY: `boot` is a writable timeval and `size` its size.
    let read = unsafe {
        libc::sysctlbyname(
            c"kern.boottime".as_ptr(),
            boot.as_mut_ptr().cast(),
            &mut size,
            std::ptr::null_mut(),
            0,
        )
    };
    if read != 0 {
        return None;
    }
    // SAFETY: sysctl filled it.
    let boot = unsafe { boot.assume_init() };
    Some(format!("{}.{:06}", boot.tv_sec, boot.tv_usec))
}

pub(super) fn identify(pid: u32) -> Option<Identity> {
    let info = bsd_info(pid)?;
    Some(Identity {
        pid,
        start: start(&info),
    })
}

pub(super) fn signal(target: Identity, request: Request) -> io::Result<bool> {
    let signal = match request {
        Request::Stop => Signal::SIGTERM,
        Request::Restart => Signal::SIGUSR1,
        Request::Kill => Signal::SIGKILL,
    };
    // Without pidfds, the identity is checked right before the signal.
    if identify(target.pid) != Some(target) {
        return Ok(false);
    }
    match kill(Pid::from_raw(target.pid as i32), signal) {
        Ok(()) => Ok(true),
        Err(nix::errno::Errno::ESRCH) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// The environment `pid` was started with, as `KERN_PROCARGS2` gives it: argc, the executable
/// path, padding, argv, then the environment, each string NUL-terminated.
fn is_marked(pid: u32, owner: Owner) -> bool {
    let mut mib = [libc::CTL_KERN, libc::KERN_PROCARGS2, pid as libc::c_int];
    let mut size: libc::size_t = 0;
    // SAFETY: a null buffer asks for the size only.
    let sized = unsafe {
        libc::sysctl(
            mib.as_mut_ptr(),
            3,
            std::ptr::null_mut(),
            &mut size,
            std::ptr::null_mut(),
            0,
        )
    };
    if sized != 0 || size < size_of::<libc::c_int>() || size > 1 << 20 {
        return false;
    }
    let mut buffer = vec![0u8; size];
    // SAFETY: `buffer` is writable for `size` bytes.
    let read = unsafe {
        libc::sysctl(
            mib.as_mut_ptr(),
            3,
            buffer.as_mut_ptr().cast(),
            &mut size,
            std::ptr::null_mut(),
            0,
        )
    };
    if read != 0 {
        return false;
    }
    buffer.truncate(size);
    let Some((argc, rest)) = buffer.split_first_chunk::<4>() else {
        return false;
    };
    let argc = i32::from_ne_bytes(*argc).max(0) as usize;
    let mut strings = rest.split(|&b| b == 0).filter(|s| !s.is_empty());
    // The executable path, then argv; what follows is the environment.
    strings.nth(argc).is_some() && strings.any(|var| owner.marks(var))
}

pub(super) fn table(owner: Owner) -> Vec<Entry> {
    let this = std::process::id();
    let mut pids = vec![0 as libc::pid_t; 8192];
    let bytes = (pids.len() * size_of::<libc::pid_t>()) as libc::c_int;
    // SAFETY: `pids` is writable for `bytes` bytes.
    let count = unsafe { libc::proc_listallpids(pids.as_mut_ptr().cast(), bytes) };
    pids.truncate(count.max(0) as usize);
    pids.into_iter()
        .filter_map(|pid| u32::try_from(pid).ok())
        .filter(|&pid| pid > 1 && pid != this)
        .filter_map(|pid| {
            let info = bsd_info(pid)?;
            Some(Entry {
                identity: Identity {
                    pid,
                    start: start(&info),
                },
                parent: info.pbi_ppid,
                group: info.pbi_pgid,
                marked: is_marked(pid, owner),
            })
        })
        .collect()
}

pub(super) fn strays(owner: Owner, group: Option<Identity>) -> Vec<Identity> {
    unix::members(&table(owner), None, group)
}

pub(super) fn descendants(root: u32, owner: Owner) -> Vec<Identity> {
    unix::members(&table(owner), Some(root), None)
}

type Exited = std::sync::Arc<std::sync::Mutex<dyn Fn(u32, Exit) + Send>>;

/// One waiting thread per worker: without a subreaper the runtime's only children are its
/// workers.
pub(super) struct Tree {
    exited: Exited,
}

impl Tree {
    pub fn new(exited: Exited) -> io::Result<Self> {
        Ok(Self { exited })
    }

    pub fn spawn(&self, command: &mut Command) -> io::Result<Child> {
        let child = command.spawn()?;
        let pid = Pid::from_raw(child.id() as i32);
        let exited = std::sync::Arc::clone(&self.exited);
        thread::spawn(move || {
            let Some(exit) = waitpid(pid, None).ok().and_then(unix::exit_of) else {
                return;
            };
            let exited = exited.lock().unwrap_or_else(|p| p.into_inner());
            exited(pid.as_raw() as u32, exit);
        });
        Ok(child)
    }
}

/// The path the dynamic loader opens to load the library open as `file`: the descriptor
/// itself (`/dev/fd`), so a file swapped in at `_path` after the checks is never the one loaded.
pub fn loadable_path(file: &std::fs::File, _path: &std::path::Path) -> std::path::PathBuf {
    use std::os::fd::AsRawFd as _;
    std::path::PathBuf::from(format!("/dev/fd/{}", file.as_raw_fd()))
}

/// The socket a worker's notify messages come to: a path in a directory of this user's that
/// no one else may enter (macOS has no abstract sockets, and tells no sender's pid for a
/// datagram, so the directory is what keeps others out; any process of this user can send).
pub struct NotifySocket {
    socket: std::os::unix::net::UnixDatagram,
    /// Removed with the socket in it when the runtime ends.
    _directory: tempfile::TempDir,
}

impl NotifySocket {
    /// Binds a socket of this runtime's (`_name` is for abstract sockets, which macOS lacks);
    /// answers it and the `NOTIFY_SOCKET` value that reaches it.
    pub fn bind(_name: &str) -> io::Result<(Self, std::ffi::OsString)> {
        // Socket paths are short (104 bytes): a directory of its own under the temporary one.
        let directory = tempfile::Builder::new().prefix("sygen-").tempdir()?;
        let path = directory.path().join("notify");
        let socket = std::os::unix::net::UnixDatagram::bind(&path)?;
        Ok((
            Self {
                socket,
                _directory: directory,
            },
            path.into_os_string(),
        ))
    }

    /// Waits for the next datagram and copies it into `buffer` (cut to fit): its length (only
    /// this user can reach the socket; see [`NotifySocket`]).
    pub fn receive(&self, buffer: &mut [u8]) -> io::Result<Option<usize>> {
        self.socket.recv(buffer).map(Some)
    }
}
