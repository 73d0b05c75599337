//! Linux: the process table from `/proc`, signals through a pidfd (so the process proven is the
//! process signalled), and the runtime as a child subreaper: a process its worker orphans is
//! reparented to the runtime instead of init, so the runtime sees and ends the whole tree.

use std::{
    fs,
    io::{self, Read as _},
    os::unix::{fs::MetadataExt as _, process::CommandExt as _},
    process::{Child, Command},
    sync::{mpsc, Arc, Mutex},
    thread,
};

use nix::{
    errno::Errno,
    sys::{
        prctl,
        signal::Signal,
        wait::{waitid, waitpid, Id, WaitPidFlag},
    },
    unistd::{getppid, Pid},
};

use super::{
    unix::{self, Entry},
    Exit, Identity, Owner, Request,
};

/// What `/proc/<pid>/stat` says of a process.
struct Stat {
    zombie: bool,
    parent: u32,
    group: u32,
    /// Field 22: when it started, in clock ticks since boot.
    start: u64,
}

fn stat(pid: u32) -> Option<Stat> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name, in parentheses, may hold spaces and parentheses of its own.
    let mut fields = text.rsplit_once(')')?.1.split_whitespace();
    let state = fields.next()?;
    let parent = fields.next()?.parse().ok()?;
    let group = fields.next()?.parse().ok()?;
    // Fields 6 to 21 lie between the group (5) and the start time (22).
    let start = fields.nth(16)?.parse().ok()?;
    Some(Stat {
        zombie: state == "Z" || state == "X",
        parent,
        group,
        start,
    })
}

fn is_ours(pid: u32) -> bool {
    fs::metadata(format!("/proc/{pid}")).is_ok_and(|m| m.uid() == unix::owner())
}

/// The pid namespace of this process: the inode `/proc/self/ns/pid` names (`pid:[4026531836]`).
pub(super) fn pid_namespace() -> Option<u64> {
    let link = fs::read_link("/proc/self/ns/pid").ok()?;
    let link = link.to_str()?;
    link.strip_prefix("pid:[")?.strip_suffix(']')?.parse().ok()
}

pub(super) fn boot_id() -> Option<String> {
    let id = fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
    Some(id.trim().to_owned())
}

pub(super) fn identify(pid: u32) -> Option<Identity> {
    if pid == 0 || !is_ours(pid) {
        return None;
    }
    let stat = stat(pid).filter(|s| !s.zombie)?;
    Some(Identity {
        pid,
        start: stat.start,
    })
}

pub(super) fn signal(target: Identity, request: Request) -> io::Result<bool> {
    let pid = rustix::process::Pid::from_raw(target.pid as i32)
        .ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
    let pidfd = match rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty()) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::SRCH) => return Ok(false),
        Err(e) => return Err(e.into()),
    };
    // With the pidfd held, the pid cannot pass to another process before the check below.
    if identify(target.pid) != Some(target) {
        return Ok(false);
    }
    let signal = match request {
        Request::Stop => rustix::process::Signal::TERM,
        Request::Restart => rustix::process::Signal::USR1,
        Request::Kill => rustix::process::Signal::KILL,
    };
    match rustix::process::pidfd_send_signal(&pidfd, signal) {
        Ok(()) => Ok(true),
        Err(rustix::io::Errno::SRCH) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Whether `pid`'s environment holds `owner`'s tree marker.
fn is_marked(pid: u32, owner: Owner) -> bool {
    let mut environ = Vec::new();
    // An environment is at most a few hundred KiB; a marker is found in its first MiB or not.
    let read = fs::File::open(format!("/proc/{pid}/environ"))
        .and_then(|file| file.take(1 << 20).read_to_end(&mut environ));
    read.is_ok() && environ.split(|&b| b == 0).any(|var| owner.marks(var))
}

/// This user's live processes other than this one, with whether each carries `owner`'s marker.
pub(super) fn table(owner: Owner) -> Vec<Entry> {
    let this = std::process::id();
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| pid > 1 && pid != this && is_ours(pid))
        .filter_map(|pid| {
            let stat = stat(pid).filter(|s| !s.zombie)?;
            Some(Entry {
                identity: Identity {
                    pid,
                    start: stat.start,
                },
                parent: stat.parent,
                group: stat.group,
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

type Exited = Arc<Mutex<dyn Fn(u32, Exit) + Send>>;

/// The runtime as subreaper, with a thread that reaps every child, orphans included.
pub(super) struct Tree {
    /// Held while a worker is started: the standard library reaps a child whose `exec` failed
    /// itself, so the reaper must not take that child first.
    spawning: Arc<Mutex<()>>,
    children: mpsc::Sender<()>,
}

impl Tree {
    pub fn new(exited: Exited) -> io::Result<Self> {
        prctl::set_child_subreaper(true)?;
        let spawning = Arc::new(Mutex::new(()));
        let (children, new_child) = mpsc::channel();
        let lock = Arc::clone(&spawning);
        thread::spawn(move || reap(&lock, &new_child, &exited));
        Ok(Self { spawning, children })
    }

    pub fn spawn(&self, command: &mut Command) -> io::Result<Child> {
        let runtime = Pid::this();
        // SAFETY: between fork and exec this runs only prctl and getppid, both
        // async-signal-safe system calls, and builds its error without allocating.
        unsafe {
            command.pre_exec(move || {
                // However the runtime dies (SIGKILL, the OOM killer), its worker hears of it.
                prctl::set_pdeathsig(Signal::SIGTERM).map_err(io::Error::from)?;
                // The runtime may have died before the line above took effect.
                if getppid() != runtime {
                    return Err(io::Error::from(Errno::ESRCH));
                }
                Ok(())
            });
        }
        let _spawning = self.spawning.lock().unwrap_or_else(|p| p.into_inner());
        let child = command.spawn();
        let _ = self.children.send(());
        child
    }
}

/// Reaps children as they exit and tells `exited`; waits for a new child while there is none.
fn reap(spawning: &Mutex<()>, new_child: &mpsc::Receiver<()>, exited: &Exited) {
    loop {
        // Looked at without reaping, so that a child being spawned is left to the spawner.
        match waitid(Id::All, WaitPidFlag::WEXITED | WaitPidFlag::WNOWAIT) {
            Ok(status) => {
                let Some(pid) = status.pid() else { continue };
                let _spawning = spawning.lock().unwrap_or_else(|p| p.into_inner());
                let reaped = waitpid(pid, Some(WaitPidFlag::WNOHANG));
                let Some(exit) = reaped.ok().and_then(unix::exit_of) else {
                    continue;
                };
                let exited = exited.lock().unwrap_or_else(|p| p.into_inner());
                exited(pid.as_raw() as u32, exit);
            }
            Err(Errno::EINTR) => continue,
            Err(_) => {
                if new_child.recv().is_err() {
                    return;
                }
            }
        }
    }
}

/// The path the dynamic loader opens to load the library open as `file`: the descriptor
/// itself, so a file swapped in at `_path` after the checks is never the one loaded.
pub fn loadable_path(file: &std::fs::File, _path: &std::path::Path) -> std::path::PathBuf {
    use std::os::fd::AsRawFd as _;
    std::path::PathBuf::from(format!("/proc/self/fd/{}", file.as_raw_fd()))
}

/// The socket a worker's notify messages come to: abstract (nothing on disk to leave behind
/// should the runtime be killed), with the kernel's word for who sent each datagram
/// (`SO_PASSCRED`), since anyone on the machine can reach an abstract name.
pub struct NotifySocket {
    socket: std::os::unix::net::UnixDatagram,
}

impl NotifySocket {
    /// Binds `name`; answers the socket and the `NOTIFY_SOCKET` value that reaches it.
    pub fn bind(name: &str) -> io::Result<(Self, std::ffi::OsString)> {
        use std::os::linux::net::SocketAddrExt as _;
        let address = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
        let socket = std::os::unix::net::UnixDatagram::bind_addr(&address)?;
        nix::sys::socket::setsockopt(&socket, nix::sys::socket::sockopt::PassCred, &true)?;
        Ok((Self { socket }, format!("@{name}").into()))
    }

    /// Waits for the next datagram and copies it into `buffer` (cut to fit): its length when a
    /// process of this one's tree and user sent it, `None` for anyone else's. File descriptors
    /// sent along (`BARRIER=1`) are closed once the datagram is read, which is what the
    /// sender waits for.
    pub fn receive(&self, buffer: &mut [u8]) -> io::Result<Option<usize>> {
        use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags, UnixCredentials};
        use std::os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd};
        let mut space = nix::cmsg_space!(UnixCredentials, [std::os::fd::RawFd; 16]);
        let mut parts = [io::IoSliceMut::new(buffer)];
        let message = recvmsg::<()>(
            self.socket.as_raw_fd(),
            &mut parts,
            Some(&mut space),
            MsgFlags::MSG_CMSG_CLOEXEC,
        )?;
        let mut sender = None;
        for control in message.cmsgs()? {
            match control {
                ControlMessageOwned::ScmCredentials(credentials) => sender = Some(credentials),
                ControlMessageOwned::ScmRights(fds) => {
                    for fd in fds {
                        // SAFETY: the kernel just gave this descriptor to this process.
                        drop(unsafe { OwnedFd::from_raw_fd(fd) });
                    }
                }
                _ => {}
            }
        }
        let from_tree = sender.is_some_and(|c| {
            c.uid() == nix::unistd::geteuid().as_raw()
                && u32::try_from(c.pid()).is_ok_and(|pid| descends_from(pid, std::process::id()))
        });
        Ok(from_tree.then_some(message.bytes))
    }
}

/// Whether `pid` is `ancestor` or one of its descendants (a subreaper's orphans included).
fn descends_from(mut pid: u32, ancestor: u32) -> bool {
    // A chain of parents is as deep as the kernel allows processes; this bounds a loop that
    // a race could otherwise make endless.
    for _ in 0..4096 {
        if pid == ancestor {
            return true;
        }
        match stat(pid) {
            Some(stat) if pid > 1 => pid = stat.parent,
            _ => return false,
        }
    }
    false
}
