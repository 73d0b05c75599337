//! Windows: a process is known by its pid and creation time (`GetProcessTimes`), the worker's
//! tree is a Job object that dies with the runtime (`JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE`, which
//! is what `schtasks /End` relies on), and stop and restart requests are named events of the
//! process they are for, since Windows has no signals.
//!
//! Creation times are absolute (100 ns since 1601), so a pid and its creation time name one
//! process across boots: there is no boot id to compare.

use std::{
    ffi::OsStr,
    fs::File,
    io,
    mem::{size_of, zeroed},
    os::windows::{
        ffi::OsStrExt as _,
        io::{AsHandle as _, AsRawHandle as _, FromRawHandle as _, OwnedHandle},
        process::CommandExt as _,
    },
    path::Path,
    process::{Child, Command, ExitStatus},
    ptr::{null, null_mut},
    sync::{Arc, Mutex, OnceLock},
    thread,
};

use windows_sys::Win32::{
    Foundation::{LocalFree, ERROR_LOCK_VIOLATION, FILETIME, HANDLE, WAIT_OBJECT_0, WAIT_TIMEOUT},
    Security::{
        AclSizeInformation,
        Authorization::{ConvertSidToStringSidW, GetNamedSecurityInfoW, SE_FILE_OBJECT},
        GetAce, GetAclInformation, GetTokenInformation, TokenUser, ACCESS_ALLOWED_ACE, ACE_HEADER,
        ACL, ACL_SIZE_INFORMATION, DACL_SECURITY_INFORMATION, INHERIT_ONLY_ACE,
        OWNER_SECURITY_INFORMATION, PSECURITY_DESCRIPTOR, PSID, TOKEN_QUERY, TOKEN_USER,
    },
    Storage::FileSystem::{
        GetFileInformationByHandle, LockFileEx, UnlockFileEx, BY_HANDLE_FILE_INFORMATION,
        LOCKFILE_EXCLUSIVE_LOCK, LOCKFILE_FAIL_IMMEDIATELY,
    },
    System::{
        Console::{
            GenerateConsoleCtrlEvent, GetConsoleWindow, SetConsoleCtrlHandler, CTRL_BREAK_EVENT,
            CTRL_CLOSE_EVENT, CTRL_C_EVENT,
        },
        Diagnostics::ToolHelp::{
            CreateToolhelp32Snapshot, Thread32First, Thread32Next, TH32CS_SNAPTHREAD, THREADENTRY32,
        },
        JobObjects::{
            AssignProcessToJobObject, CreateJobObjectW, JobObjectBasicProcessIdList,
            JobObjectExtendedLimitInformation, OpenJobObjectW, QueryInformationJobObject,
            SetInformationJobObject, JOBOBJECT_EXTENDED_LIMIT_INFORMATION,
            JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE,
        },
        SystemServices::JOB_OBJECT_QUERY,
        Threading::{
            CreateEventW, GetCurrentProcess, GetExitCodeProcess, GetProcessTimes, OpenEventW,
            OpenProcess, OpenProcessToken, OpenThread, ResumeThread, SetEvent, TerminateProcess,
            WaitForMultipleObjects, WaitForSingleObject, CREATE_NEW_PROCESS_GROUP,
            CREATE_NO_WINDOW, CREATE_SUSPENDED, EVENT_MODIFY_STATE, INFINITE,
            PROCESS_QUERY_LIMITED_INFORMATION, PROCESS_SYNCHRONIZE, PROCESS_TERMINATE,
            THREAD_SUSPEND_RESUME,
        },
        IO::OVERLAPPED,
    },
};

use super::{Exit, Identity, Listener, Owner, Request, StdStream, Untrusted, TREE_MARKER};

/// The exit code of a process sygen terminated.
const KILLED: u32 = 1;

fn wide(text: impl AsRef<OsStr>) -> Vec<u16> {
    text.as_ref().encode_wide().chain([0]).collect()
}

fn raw(handle: &OwnedHandle) -> HANDLE {
    handle.as_raw_handle() as HANDLE
}

/// Takes ownership of what a Win32 call returned, null meaning failure.
fn owned(handle: HANDLE) -> io::Result<OwnedHandle> {
    if handle.is_null() {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a handle just returned to us, owned by nothing else.
    Ok(unsafe { OwnedHandle::from_raw_handle(handle as _) })
}

fn check(result: i32) -> io::Result<()> {
    if result == 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

fn open_process(pid: u32, access: u32) -> Option<OwnedHandle> {
    // SAFETY: plain call; the handle is owned at once.
    owned(unsafe { OpenProcess(access, 0, pid) }).ok()
}

/// A SID in its string form (`S-1-5-…`).
fn sid_text(sid: PSID) -> Option<String> {
    let mut text = null_mut();
    // SAFETY: `sid` is a valid SID; `text` receives a LocalAlloc'd string that we free.
    unsafe {
        if ConvertSidToStringSidW(sid, &mut text) == 0 {
            return None;
        }
        let len = (0..).take_while(|&i| *text.add(i) != 0).count();
        let result = String::from_utf16_lossy(std::slice::from_raw_parts(text, len));
        LocalFree(text.cast());
        Some(result)
    }
}

/// The user a process runs as.
fn user_of(process: HANDLE) -> Option<String> {
    let mut token = null_mut();
    // SAFETY: `process` is a process handle with query rights.
    if unsafe { OpenProcessToken(process, TOKEN_QUERY, &mut token) } == 0 {
        return None;
    }
    let token = owned(token).ok()?;
    let mut size = 0;
    // SAFETY: asks for the size only.
    unsafe { GetTokenInformation(raw(&token), TokenUser, null_mut(), 0, &mut size) };
    let mut buffer = vec![0u64; (size as usize).div_ceil(8)];
    // SAFETY: `buffer` is writable, aligned and at least `size` bytes.
    let read = unsafe {
        GetTokenInformation(
            raw(&token),
            TokenUser,
            buffer.as_mut_ptr().cast(),
            size,
            &mut size,
        )
    };
    if read == 0 {
        return None;
    }
    // SAFETY: the call filled a TOKEN_USER at the start of the buffer.
    let user = unsafe { &*buffer.as_ptr().cast::<TOKEN_USER>() };
    sid_text(user.User.Sid)
}

/// This process's user.
fn me() -> Option<&'static str> {
    static ME: OnceLock<Option<String>> = OnceLock::new();
    // SAFETY: the pseudo-handle of this process needs no closing.
    ME.get_or_init(|| user_of(unsafe { GetCurrentProcess() }))
        .as_deref()
}

/// Who `process` is, if it is alive and this user's.
fn identity_of(process: &OwnedHandle, pid: u32) -> Option<Identity> {
    // SAFETY: a process handle with SYNCHRONIZE; a zero timeout only asks.
    if unsafe { WaitForSingleObject(raw(process), 0) } != WAIT_TIMEOUT {
        return None;
    }
    if user_of(raw(process)).as_deref() != me() {
        return None;
    }
    // SAFETY: all four are writable FILETIMEs.
    let mut times: [FILETIME; 4] = unsafe { zeroed() };
    let [created, exited, kernel, user] = &mut times;
    check(unsafe { GetProcessTimes(raw(process), created, exited, kernel, user) }).ok()?;
    let start = (u64::from(created.dwHighDateTime) << 32) | u64::from(created.dwLowDateTime);
    Some(Identity { pid, start })
}

pub(super) fn identify(pid: u32) -> Option<Identity> {
    let process = open_process(pid, PROCESS_QUERY_LIMITED_INFORMATION | PROCESS_SYNCHRONIZE)?;
    identity_of(&process, pid)
}

pub(super) fn boot_id() -> Option<String> {
    None
}

/// Windows has no pid namespaces that sygen could meet: every process shares one.
pub(super) fn pid_namespace() -> Option<u64> {
    None
}

/// The named event through which `target` hears `request`.
fn event_name(target: Identity, request: Request) -> Vec<u16> {
    let what = if request == Request::Restart {
        "restart"
    } else {
        "stop"
    };
    wide(format!(
        r"Local\sygen-{}-{}-{what}",
        target.pid, target.start
    ))
}

/// Sends `request` to `target` if it is still that very process, never to the system's own
/// processes (pids 0 and 4) or another user's. A sygen process hears stop and restart through
/// its named events; any other worker gets Ctrl+Break, which reaches it when it shares this
/// console. Answers whether it was sent (false: the process is gone).
pub fn send(target: Identity, request: Request) -> io::Result<bool> {
    if target.pid <= 4 {
        return Ok(false);
    }
    let access = PROCESS_QUERY_LIMITED_INFORMATION | PROCESS_SYNCHRONIZE | PROCESS_TERMINATE;
    let Some(process) = open_process(target.pid, access) else {
        return Ok(false);
    };
    // With the handle held, the pid cannot pass to another process before the check below.
    if identity_of(&process, target.pid) != Some(target) {
        return Ok(false);
    }
    if request == Request::Kill {
        // SAFETY: a process handle with PROCESS_TERMINATE.
        check(unsafe { TerminateProcess(raw(&process), KILLED) })?;
        return Ok(true);
    }
    // SAFETY: plain call; the handle is owned at once.
    if let Ok(event) =
        owned(unsafe { OpenEventW(EVENT_MODIFY_STATE, 0, event_name(target, request).as_ptr()) })
    {
        // SAFETY: an event handle with EVENT_MODIFY_STATE.
        check(unsafe { SetEvent(raw(&event)) })?;
        return Ok(true);
    }
    // SAFETY: plain call; a worker leads its own process group.
    if request == Request::Stop
        && unsafe { GenerateConsoleCtrlEvent(CTRL_BREAK_EVENT, target.pid) } != 0
    {
        return Ok(true);
    }
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        format!("process {} has no way to hear this request", target.pid),
    ))
}

/// Where a lock is taken: a byte far past any content, because a lock on Windows also keeps
/// other processes from reading the bytes it covers, and `bot.pid` must stay readable.
const LOCK_OFFSET: u64 = u64::MAX - 1;

/// The position of the lock's byte, as `LockFileEx` and `UnlockFileEx` take it.
fn lock_position() -> OVERLAPPED {
    // SAFETY: an all-zero OVERLAPPED is valid; only the offset is set.
    let mut at: OVERLAPPED = unsafe { zeroed() };
    at.Anonymous.Anonymous.Offset = LOCK_OFFSET as u32;
    at.Anonymous.Anonymous.OffsetHigh = (LOCK_OFFSET >> 32) as u32;
    at
}

fn lock_range(file: &File, flags: u32) -> io::Result<bool> {
    let mut at = lock_position();
    let handle = file.as_raw_handle() as HANDLE;
    // SAFETY: a synchronous file handle; with FAIL_IMMEDIATELY the call does not wait.
    let locked = unsafe { LockFileEx(handle, flags | LOCKFILE_FAIL_IMMEDIATELY, 0, 1, 0, &mut at) };
    if locked != 0 {
        return Ok(true);
    }
    let error = io::Error::last_os_error();
    if error.raw_os_error() == Some(ERROR_LOCK_VIOLATION as i32) {
        return Ok(false);
    }
    Err(error)
}

/// Takes the exclusive lock on `file` if no one holds it; answers whether it did.
pub fn try_lock(file: &File) -> io::Result<bool> {
    lock_range(file, LOCKFILE_EXCLUSIVE_LOCK)
}

/// Whether someone holds the exclusive lock on `file`. The shared lock taken to find out is
/// released at once.
pub fn is_locked(file: &File) -> io::Result<bool> {
    if !lock_range(file, 0)? {
        return Ok(true);
    }
    let mut at = lock_position();
    // SAFETY: the range this call locked just above.
    check(unsafe { UnlockFileEx(file.as_raw_handle() as HANDLE, 0, 1, 0, &mut at) })?;
    Ok(false)
}

fn file_id(file: &File) -> Option<(u32, u32, u32)> {
    // SAFETY: an all-zero BY_HANDLE_FILE_INFORMATION is valid and is filled by the call.
    let mut info: BY_HANDLE_FILE_INFORMATION = unsafe { zeroed() };
    check(unsafe { GetFileInformationByHandle(file.as_raw_handle() as HANDLE, &mut info) }).ok()?;
    Some((
        info.dwVolumeSerialNumber,
        info.nFileIndexHigh,
        info.nFileIndexLow,
    ))
}

/// Whether `file` is the file at `path` now.
pub fn is_same_file(file: &File, path: &Path) -> bool {
    let named = File::open(path).ok();
    let open = file_id(file);
    open.is_some() && named.and_then(|f| file_id(&f)) == open
}

/// The bytes this user may still write on the volume of `path`.
pub fn available_space(path: &Path) -> io::Result<u64> {
    use windows_sys::Win32::Storage::FileSystem::GetDiskFreeSpaceExW;
    let mut available = 0u64;
    // SAFETY: a NUL-terminated path and a u64 to write into; the other outputs are not asked.
    let ok =
        unsafe { GetDiskFreeSpaceExW(wide(path).as_ptr(), &mut available, null_mut(), null_mut()) };
    check(ok)?;
    Ok(available)
}

/// Opens `path` to read. No file of a Windows path blocks its opener (pipes live apart, under
/// `\\.\pipe\`), so this is a plain open.
pub fn open_nonblocking(path: &Path) -> io::Result<File> {
    File::open(path)
}

/// What a file that is neither regular nor a directory is, in words.
pub fn special_file_kind(_metadata: &std::fs::Metadata) -> &'static str {
    "not a regular file"
}

/// A duplicate of `stream`'s handle when a regular file is behind it.
pub fn regular_file_behind(stream: StdStream) -> Option<File> {
    let handle = match stream {
        StdStream::Out => io::stdout().as_handle().try_clone_to_owned(),
        StdStream::Err => io::stderr().as_handle().try_clone_to_owned(),
    };
    let file = File::from(handle.ok()?);
    file.metadata().ok()?.is_file().then_some(file)
}

type Heard = Arc<Mutex<dyn Fn(Request) + Send>>;

/// Who hears Ctrl+C, Ctrl+Break and the console closing.
static CONSOLE: OnceLock<Heard> = OnceLock::new();

unsafe extern "system" fn on_console(event: u32) -> i32 {
    match (event, CONSOLE.get()) {
        (CTRL_C_EVENT | CTRL_BREAK_EVENT | CTRL_CLOSE_EVENT, Some(heard)) => {
            let heard = heard.lock().unwrap_or_else(|p| p.into_inner());
            heard(Request::Stop);
            1
        }
        _ => 0,
    }
}

/// Calls `heard` with each stop (the stop event, Ctrl+C, Ctrl+Break) and restart (the restart
/// event) request, on a thread of its own. The runtime and the agent hear them alike.
pub fn listen(_who: Listener, heard: impl Fn(Request) + Send + 'static) -> io::Result<()> {
    let me = Identity::this_process()
        .ok_or_else(|| io::Error::other("cannot tell this process's creation time"))?;
    let create = |request| {
        // SAFETY: an auto-reset event with the default security: this user's only.
        owned(unsafe { CreateEventW(null(), 0, 0, event_name(me, request).as_ptr()) })
    };
    let events = [create(Request::Stop)?, create(Request::Restart)?];
    let heard: Heard = Arc::new(Mutex::new(heard));
    if CONSOLE.set(Arc::clone(&heard)).is_ok() {
        // SAFETY: `on_console` is a valid handler for the life of the process.
        check(unsafe { SetConsoleCtrlHandler(Some(on_console), 1) })?;
    }
    thread::spawn(move || loop {
        let handles = [raw(&events[0]), raw(&events[1])];
        // SAFETY: two valid event handles, kept alive by `events`.
        let woken = unsafe { WaitForMultipleObjects(2, handles.as_ptr(), 0, INFINITE) };
        let request = match woken.wrapping_sub(WAIT_OBJECT_0) {
            0 => Request::Stop,
            1 => Request::Restart,
            _ => return,
        };
        let heard = heard.lock().unwrap_or_else(|p| p.into_inner());
        heard(request);
    });
    Ok(())
}

/// How a process with this exit code ended: an NTSTATUS of the error class (0xC…) is an
/// unhandled exception, such as 0xC0000005 for an access violation.
fn exit_of_code(code: u32) -> Exit {
    if code >> 30 == 0b11 {
        Exit::Crash(code)
    } else {
        Exit::Code(code as i32)
    }
}

/// How a child ended.
pub fn exit_status(status: ExitStatus) -> Exit {
    status
        .code()
        .map_or(Exit::Code(1), |code| exit_of_code(code as u32))
}

/// Windows has no SIGPIPE; nothing to restore.
pub fn quiet_on_closed_pipes() {}

/// Calls `report` with the exception's name when an exception nothing handles would end this
/// process (an access violation, a stack overflow, …). If it returns, Windows ends the process
/// as it would have.
pub fn on_crash(report: fn(&'static str)) {
    use windows_sys::Win32::{
        Foundation::{
            EXCEPTION_ACCESS_VIOLATION, EXCEPTION_ILLEGAL_INSTRUCTION,
            EXCEPTION_INT_DIVIDE_BY_ZERO, EXCEPTION_STACK_OVERFLOW,
        },
        System::Diagnostics::Debug::{SetUnhandledExceptionFilter, EXCEPTION_POINTERS},
    };
    const EXCEPTION_CONTINUE_SEARCH: i32 = 0;
    static REPORT: OnceLock<fn(&'static str)> = OnceLock::new();
    unsafe extern "system" fn filter(info: *const EXCEPTION_POINTERS) -> i32 {
        // SAFETY: Windows passes the exception's record, valid during the filter.
        let code = unsafe { info.as_ref().and_then(|i| i.ExceptionRecord.as_ref()) }
            .map(|record| record.ExceptionCode);
        let name = match code {
            Some(EXCEPTION_ACCESS_VIOLATION) => "access violation",
            Some(EXCEPTION_STACK_OVERFLOW) => "stack overflow",
            Some(EXCEPTION_ILLEGAL_INSTRUCTION) => "illegal instruction",
            Some(EXCEPTION_INT_DIVIDE_BY_ZERO) => "division by zero",
            _ => "an exception",
        };
        if let Some(report) = REPORT.get() {
            report(name);
        }
        EXCEPTION_CONTINUE_SEARCH
    }
    if REPORT.set(report).is_ok() {
        // SAFETY: installs a filter that only reads the record, writes and ends the process.
        unsafe { SetUnhandledExceptionFilter(Some(filter)) };
    }
}

/// Nothing to hook: Rust's `exit` is `ExitProcess`, which runs no exit handlers of the program.
pub fn on_exit(_report: extern "C" fn()) {}

/// Writes to `stream` with one system call, taking no lock.
pub fn write_now(stream: StdStream, bytes: &[u8]) {
    use windows_sys::Win32::{
        Storage::FileSystem::WriteFile,
        System::Console::{GetStdHandle, STD_ERROR_HANDLE, STD_OUTPUT_HANDLE},
    };
    let handle = match stream {
        StdStream::Out => STD_OUTPUT_HANDLE,
        StdStream::Err => STD_ERROR_HANDLE,
    };
    let mut written = 0;
    let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
    // SAFETY: the buffer is valid for `len` bytes; a missing handle makes the write fail.
    unsafe {
        WriteFile(
            GetStdHandle(handle),
            bytes.as_ptr(),
            len,
            &mut written,
            null_mut(),
        )
    };
}

/// Ends the process now, running nothing else.
pub fn exit_now(code: i32) -> ! {
    // SAFETY: terminating the current process; the loop is never reached.
    unsafe { TerminateProcess(GetCurrentProcess(), code as u32) };
    loop {
        thread::park();
    }
}

/// Accounts that may write a backend file without making it untrusted: the user, LocalSystem,
/// the Administrators group and TrustedInstaller, which own the system's own directories.
const TRUSTED_WRITERS: [&str; 3] = [
    "S-1-5-18",
    "S-1-5-32-544",
    "S-1-5-80-956008885-3418522649-1831038044-1853292631-2271478464",
];

/// The rights that let an account change a file, or add, replace or delete a directory's
/// files: write and append data (add file and subdirectory), delete child, write DAC and owner,
/// generic write and all.
const WRITE_RIGHTS: u32 = 0x2 | 0x4 | 0x40 | 0x0004_0000 | 0x0008_0000 | 0x4000_0000 | 0x1000_0000;

/// Security descriptor memory, freed with `LocalFree`.
struct Descriptor(PSECURITY_DESCRIPTOR);

impl Drop for Descriptor {
    fn drop(&mut self) {
        // SAFETY: allocated by GetNamedSecurityInfoW for us.
        unsafe { LocalFree(self.0) };
    }
}

/// The account other than this user, SYSTEM and Administrators that owns `place` or may write
/// it, if there is one.
fn foreign_writer(place: &Path) -> io::Result<Option<String>> {
    let (mut owner, mut dacl, mut descriptor) = (null_mut(), null_mut::<ACL>(), null_mut());
    // SAFETY: the out pointers are valid; `descriptor` owns what the others point into.
    let status = unsafe {
        GetNamedSecurityInfoW(
            wide(place).as_ptr(),
            SE_FILE_OBJECT,
            OWNER_SECURITY_INFORMATION | DACL_SECURITY_INFORMATION,
            &mut owner,
            null_mut(),
            &mut dacl,
            null_mut(),
            &mut descriptor,
        )
    };
    if status != 0 {
        return Err(io::Error::from_raw_os_error(status as i32));
    }
    let _descriptor = Descriptor(descriptor);
    let trusted = |sid: &str| Some(sid) == me() || TRUSTED_WRITERS.contains(&sid);
    let owner = sid_text(owner).unwrap_or_default();
    if !trusted(&owner) {
        return Ok(Some(format!("{owner} (its owner)")));
    }
    if dacl.is_null() {
        return Ok(Some("everyone (it has no access control list)".into()));
    }
    // SAFETY: an all-zero ACL_SIZE_INFORMATION is valid and is filled by the call.
    let mut size: ACL_SIZE_INFORMATION = unsafe { zeroed() };
    check(unsafe {
        GetAclInformation(
            dacl,
            (&mut size as *mut ACL_SIZE_INFORMATION).cast(),
            size_of::<ACL_SIZE_INFORMATION>() as u32,
            AclSizeInformation,
        )
    })?;
    for index in 0..size.AceCount {
        let mut ace = null_mut();
        // SAFETY: `index` is below the ACL's count.
        check(unsafe { GetAce(dacl, index, &mut ace) })?;
        // SAFETY: every ACE starts with its header.
        let header = unsafe { &*ace.cast::<ACE_HEADER>() };
        // Only allowing ACEs grant; inherit-only ones apply to children, not to this object.
        if header.AceType != 0 || u32::from(header.AceFlags) & INHERIT_ONLY_ACE != 0 {
            continue;
        }
        // SAFETY: type 0 is ACCESS_ALLOWED_ACE, whose SID starts at `SidStart`.
        let allowed = unsafe { &*ace.cast::<ACCESS_ALLOWED_ACE>() };
        if allowed.Mask & WRITE_RIGHTS == 0 {
            continue;
        }
        let sid = sid_text((&allowed.SidStart as *const u32).cast_mut().cast()).unwrap_or_default();
        if !trusted(&sid) {
            return Ok(Some(sid));
        }
    }
    Ok(None)
}

/// Refuses a library that an account other than this user, SYSTEM or Administrators could have
/// put there: a file, or its directory, that such an account owns or may write.
pub fn check_trust(path: &Path) -> Result<(), Untrusted> {
    let dir = path.parent().unwrap_or(Path::new(r"\"));
    for (what, place) in [("it", path), ("its directory", dir)] {
        let writer = foreign_writer(place).map_err(|e| Untrusted {
            reason: format!("cannot check {}: {e}", place.display()),
            hint: format!("check who may write {}", place.display()),
        })?;
        if let Some(writer) = writer {
            return Err(Untrusted {
                reason: format!(
                    "refusing to load it: {what} ({}) may be written by {writer}, not only by you, SYSTEM or Administrators",
                    place.display()
                ),
                hint: format!(
                    "remove that account's write access (`icacls \"{}\"` shows it) if you trust its contents",
                    place.display()
                ),
            });
        }
    }
    Ok(())
}

/// [`check_trust`] for the library open as `file`: [`open_to_load`] shares it for reading
/// only, so the file at `path` cannot be changed, renamed or replaced while it is open.
pub fn check_trust_open(_file: &File, path: &Path) -> Result<(), Untrusted> {
    check_trust(path)
}

/// Opens a backend library once, to check it and load it: no one may write, rename or delete
/// it while it is open, so what is checked is what is loaded.
pub fn open_to_load(path: &Path) -> io::Result<File> {
    use std::os::windows::fs::OpenOptionsExt as _;
    use windows_sys::Win32::Storage::FileSystem::FILE_SHARE_READ;
    std::fs::OpenOptions::new()
        .read(true)
        .share_mode(FILE_SHARE_READ)
        .open(path)
}

/// The path to load the library open as `file` from: its own, fixed while it is open.
pub fn loadable_path(_file: &File, path: &Path) -> std::path::PathBuf {
    path.to_owned()
}

/// A loaded library's file, open for good. [`open_to_load`] shares it for reading only, so it
/// cannot change while loaded: a crash is never the file's doing.
#[derive(Clone, Copy)]
pub struct LoadedFile;

impl LoadedFile {
    /// Keeps `file` open for the life of the process.
    pub fn keep(file: File) -> Self {
        std::mem::forget(file);
        Self
    }

    /// Never: see [`LoadedFile`].
    pub fn changed(self) -> bool {
        false
    }
}

/// A stamp of a file's metadata that changes whenever its content may have: size, creation
/// and last write times.
pub fn file_stamp(metadata: &std::fs::Metadata) -> String {
    use std::os::windows::fs::MetadataExt as _;
    format!(
        "{}:{}:{}",
        metadata.file_size(),
        metadata.creation_time(),
        metadata.last_write_time()
    )
}

/// Refuses a file or directory of the sygen home that an account other than this user,
/// SYSTEM or Administrators could have written: its content becomes a command sygen runs, or
/// the place it writes.
pub fn check_private(path: &Path) -> Result<(), Untrusted> {
    match foreign_writer(path) {
        Ok(None) => Ok(()),
        Ok(Some(writer)) => Err(Untrusted {
            reason: format!("{} may be written by {writer}", path.display()),
            hint: format!(
                "remove that account's write access (`icacls \"{}\"` shows it)",
                path.display()
            ),
        }),
        Err(e) => Err(Untrusted {
            reason: format!("cannot check {}: {e}", path.display()),
            hint: format!("check who may write {}", path.display()),
        }),
    }
}

/// Refuses a file of secrets (the worker's env file) that an account other than this user,
/// SYSTEM or Administrators may write, as [`check_private`] does. Who may read it is its access
/// control list's to say: a file in the user's profile inherits one that lets only them.
pub fn check_secret(_file: &File, path: &Path) -> Result<(), Untrusted> {
    check_private(path)
}

/// Whether the environment variable `name` is the one programs are searched in: Windows
/// spells it `Path` as often as `PATH`, and its names ignore case.
pub fn is_search_path(name: &str) -> bool {
    name.eq_ignore_ascii_case("PATH")
}

/// Whether the system runs a script by the interpreter its `#!` line names: Windows goes by
/// the file's extension instead.
pub const FOLLOWS_SHEBANGS: bool = false;

/// Opens without following a symbolic link or junction in the last component: a file sygen
/// writes in the sygen home is never a link someone placed to make it write elsewhere.
pub fn no_follow(options: &mut std::fs::OpenOptions) -> &mut std::fs::OpenOptions {
    use std::os::windows::fs::OpenOptionsExt as _;
    // FILE_FLAG_OPEN_REPARSE_POINT: the link itself is opened, not what it points to.
    options.custom_flags(0x0020_0000)
}

/// The named Job object of `home`'s tree: found again by `sygen stop` while it exists.
fn job_name(home: &str) -> Vec<u16> {
    // A backslash is the only character a kernel object's name cannot hold.
    wide(format!(r"Local\sygen-tree-{}", home.replace('\\', "/")))
}

/// The live processes in `job`, this one excepted.
fn job_members(job: &OwnedHandle) -> Vec<Identity> {
    #[repr(C)]
    struct List {
        assigned: u32,
        listed: u32,
        pids: [usize; 4096],
    }
    let mut list = Box::new(List {
        assigned: 0,
        listed: 0,
        pids: [0; 4096],
    });
    // SAFETY: `list` has the layout of JOBOBJECT_BASIC_PROCESS_ID_LIST with room for 4096 pids.
    let queried = unsafe {
        QueryInformationJobObject(
            raw(job),
            JobObjectBasicProcessIdList,
            (&mut *list as *mut List).cast(),
            size_of::<List>() as u32,
            null_mut(),
        )
    };
    if queried == 0 {
        return Vec::new();
    }
    let this = std::process::id();
    let listed = (list.listed as usize).min(list.pids.len());
    list.pids[..listed]
        .iter()
        .filter_map(|&pid| u32::try_from(pid).ok())
        .filter(|&pid| pid != this)
        .filter_map(identify)
        .collect()
}

pub(super) fn strays(owner: Owner, worker: Option<Identity>) -> Vec<Identity> {
    let name = job_name(owner.home());
    // SAFETY: plain call; the handle is owned at once.
    let job = owned(unsafe { OpenJobObjectW(JOB_OBJECT_QUERY, 0, name.as_ptr()) });
    with_worker(job.map(|job| job_members(&job)).unwrap_or_default(), worker)
}

/// The runtime's Job object holds its whole tree, whatever a process does to its environment
/// or session: its members are the descendants.
pub(super) fn descendants(_root: u32, owner: Owner) -> Vec<Identity> {
    strays(owner, None)
}

/// `found`, and the recorded worker when it is that very process still.
fn with_worker(mut found: Vec<Identity>, worker: Option<Identity>) -> Vec<Identity> {
    found.extend(worker.filter(|w| w.is_alive() && !found.contains(w)));
    found
}

/// Resumes the threads of a process started suspended.
fn resume(pid: u32) -> io::Result<()> {
    // SAFETY: plain call; the handle is owned at once.
    let snapshot = owned(unsafe { CreateToolhelp32Snapshot(TH32CS_SNAPTHREAD, 0) })?;
    // SAFETY: an all-zero THREADENTRY32 with its size set is what Thread32First expects.
    let mut entry: THREADENTRY32 = unsafe { zeroed() };
    entry.dwSize = size_of::<THREADENTRY32>() as u32;
    let mut more = unsafe { Thread32First(raw(&snapshot), &mut entry) } != 0;
    let mut resumed = false;
    while more {
        if entry.th32OwnerProcessID == pid {
            // SAFETY: plain call; the handle is owned at once.
            let thread =
                owned(unsafe { OpenThread(THREAD_SUSPEND_RESUME, 0, entry.th32ThreadID) })?;
            // SAFETY: a thread handle with THREAD_SUSPEND_RESUME.
            if unsafe { ResumeThread(raw(&thread)) } == u32::MAX {
                return Err(io::Error::last_os_error());
            }
            resumed = true;
        }
        // SAFETY: the snapshot and entry from above.
        more = unsafe { Thread32Next(raw(&snapshot), &mut entry) } != 0;
    }
    if resumed {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "found no thread of process {pid} to resume"
        )))
    }
}

type Exited = Arc<Mutex<dyn Fn(u32, Exit) + Send>>;

/// The runtime's hold on the processes its workers start: a Job object that every worker is
/// put in before it runs a single instruction, so its children are in it too, and that kills
/// them all when the runtime's handle to it closes, however the runtime ends.
pub struct Tree {
    marker: String,
    job: OwnedHandle,
    exited: Exited,
}

impl Tree {
    /// Takes ownership of every process a worker will start for the sygen home `home` (as
    /// `instance::marker` spells it); `exited` hears the exit of each worker.
    pub fn new(home: &str, exited: impl Fn(u32, Exit) + Send + 'static) -> io::Result<Self> {
        let runtime = Identity::this_process()
            .ok_or_else(|| io::Error::other("cannot read this process's own start time"))?;
        // SAFETY: plain call; the handle is owned at once.
        let job = owned(unsafe { CreateJobObjectW(null(), job_name(home).as_ptr()) })?;
        // SAFETY: an all-zero limit structure is valid; one flag is set.
        let mut limits: JOBOBJECT_EXTENDED_LIMIT_INFORMATION = unsafe { zeroed() };
        limits.BasicLimitInformation.LimitFlags = JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE;
        check(unsafe {
            SetInformationJobObject(
                raw(&job),
                JobObjectExtendedLimitInformation,
                (&limits as *const JOBOBJECT_EXTENDED_LIMIT_INFORMATION).cast(),
                size_of::<JOBOBJECT_EXTENDED_LIMIT_INFORMATION>() as u32,
            )
        })?;
        Ok(Self {
            marker: super::tree_marker(home, runtime),
            job,
            exited: Arc::new(Mutex::new(exited)),
        })
    }

    /// The value of [`TREE_MARKER`] in this tree.
    pub fn marker(&self) -> &str {
        &self.marker
    }

    /// Windows needs no guard process: the Job object ends the tree with the runtime, however
    /// the runtime ends. `command` is not started.
    pub fn guard(&mut self, command: Command) -> io::Result<()> {
        drop(command);
        Ok(())
    }

    /// Starts `command` as a worker: suspended, put in the job, then resumed; in a process group
    /// of its own (so Ctrl+Break reaches it alone), marked as this tree's, and without a console
    /// window when the runtime has none (`sygenw`).
    pub fn spawn(&self, command: &mut Command) -> io::Result<Child> {
        // SAFETY: plain call.
        let headless = unsafe { GetConsoleWindow() }.is_null();
        let window = if headless { CREATE_NO_WINDOW } else { 0 };
        command
            .env(TREE_MARKER, &self.marker)
            .creation_flags(CREATE_SUSPENDED | CREATE_NEW_PROCESS_GROUP | window);
        let mut child = command.spawn()?;
        let started = self.adopt(&child);
        if let Err(error) = started {
            let _ = child.kill();
            let _ = child.wait();
            return Err(error);
        }
        Ok(child)
    }

    /// Starts a hook as a worker is started (the job holds it; no guard needs to know it).
    pub fn spawn_hook(&self, command: &mut Command) -> io::Result<Child> {
        self.spawn(command)
    }

    /// Puts a suspended `child` in the job, resumes it, and watches for its exit.
    fn adopt(&self, child: &Child) -> io::Result<()> {
        let handle = child.as_raw_handle() as HANDLE;
        // SAFETY: the job and a process handle with the rights `spawn` gives it.
        check(unsafe { AssignProcessToJobObject(raw(&self.job), handle) })?;
        resume(child.id())?;
        let process = child.as_handle().try_clone_to_owned()?;
        let (pid, exited) = (child.id(), Arc::clone(&self.exited));
        thread::spawn(move || {
            let mut code = 0;
            // SAFETY: a process handle, owned by this thread.
            let ended = unsafe { WaitForSingleObject(raw(&process), INFINITE) } == WAIT_OBJECT_0
                && unsafe { GetExitCodeProcess(raw(&process), &mut code) } != 0;
            if ended {
                let exited = exited.lock().unwrap_or_else(|p| p.into_inner());
                exited(pid, exit_of_code(code));
            }
        });
        Ok(())
    }

    /// Every live process of the tree now, the runtime itself excepted.
    pub fn members(&self, worker: Option<Identity>) -> Vec<Identity> {
        with_worker(job_members(&self.job), worker)
    }
}

/// Windows has no notify protocol to speak: readiness and the watchdog are not offered there
/// (see the README), and [`NotifySocket::bind`] says so.
pub struct NotifySocket;

impl NotifySocket {
    pub fn bind(_name: &str) -> io::Result<(Self, std::ffi::OsString)> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "the notify protocol is offered on Linux and macOS only",
        ))
    }

    pub fn receive(&self, _buffer: &mut [u8]) -> io::Result<Option<usize>> {
        Err(io::ErrorKind::Unsupported.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_class_ntstatus_is_a_crash() {
        assert_eq!(exit_of_code(0xC000_0005), Exit::Crash(0xC000_0005));
        assert_eq!(exit_of_code(42), Exit::Code(42));
        assert_eq!(exit_of_code(1), Exit::Code(1));
    }

    #[test]
    fn this_process_is_alive_and_ours() {
        let me = Identity::this_process().expect("identity");
        assert!(me.is_alive());
        assert_eq!(identify(me.pid), Some(me));
    }

    #[test]
    fn the_lock_leaves_the_file_readable() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("bot.pid");
        std::fs::write(&path, "12\n").expect("write");
        let held = File::options()
            .read(true)
            .write(true)
            .open(&path)
            .expect("open");
        assert!(try_lock(&held).expect("lock"));
        let other = File::open(&path).expect("open again");
        assert!(is_locked(&other).expect("is locked"));
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "12\n");
        drop(held);
        assert!(!is_locked(&other).expect("is locked"));
    }

    /// Gives `place` exactly the access control list `dacl` (in SDDL), inheriting nothing.
    fn set_dacl(place: &Path, dacl: &str) {
        use windows_sys::Win32::Security::{
            Authorization::{
                ConvertStringSecurityDescriptorToSecurityDescriptorW, SetNamedSecurityInfoW,
            },
            GetSecurityDescriptorDacl, PROTECTED_DACL_SECURITY_INFORMATION,
        };
        let mut descriptor = null_mut();
        // SAFETY: a NUL-terminated SDDL string; the descriptor is freed below.
        let parsed = unsafe {
            ConvertStringSecurityDescriptorToSecurityDescriptorW(
                wide(dacl).as_ptr(),
                1,
                &mut descriptor,
                null_mut(),
            )
        };
        assert_ne!(parsed, 0, "{dacl}: {}", io::Error::last_os_error());
        let descriptor = Descriptor(descriptor);
        let (mut present, mut acl, mut defaulted) = (0, null_mut(), 0);
        // SAFETY: the descriptor parsed above; the ACL points into it.
        let got = unsafe {
            GetSecurityDescriptorDacl(descriptor.0, &mut present, &mut acl, &mut defaulted)
        };
        assert!(got != 0 && present != 0, "{dacl}: no DACL");
        // SAFETY: a valid path and an ACL that lives as long as the descriptor.
        let status = unsafe {
            SetNamedSecurityInfoW(
                wide(place).as_ptr(),
                SE_FILE_OBJECT,
                DACL_SECURITY_INFORMATION | PROTECTED_DACL_SECURITY_INFORMATION,
                null_mut(),
                null_mut(),
                acl,
                null_mut(),
            )
        };
        assert_eq!(
            status,
            0,
            "{}: {}",
            place.display(),
            io::Error::from_raw_os_error(status as i32)
        );
    }

    /// The file's access control list, checked as its directory's is. Under Wine only a file
    /// keeps the list it is given, so the directory's side is not tried here.
    #[test]
    fn a_backend_others_may_write_is_refused() {
        let me = me().expect("this user's SID");
        let dir = tempfile::tempdir().expect("tempdir");
        let library = dir.path().join("sygen_mine.dll");
        std::fs::write(&library, "library").expect("write");
        set_dacl(
            dir.path(),
            &format!("D:P(A;OICI;FA;;;{me})(A;OICI;FA;;;SY)"),
        );
        set_dacl(&library, &format!("D:P(A;;FA;;;{me})(A;;FR;;;WD)"));
        assert!(check_trust(&library).is_ok(), "{:?}", check_trust(&library));
        // Everyone (S-1-1-0) may write the file; then the directory.
        set_dacl(&library, &format!("D:P(A;;FA;;;{me})(A;;FW;;;WD)"));
        let refused = check_trust(&library).expect_err("a world-writable library");
        assert!(
            refused.reason.contains("it (") && refused.reason.contains("S-1-1-0"),
            "{}",
            refused.reason
        );
        assert!(refused.hint.contains("icacls"), "{}", refused.hint);
        // Users (S-1-5-32-545) may read and run it: still trusted.
        set_dacl(&library, &format!("D:P(A;;FA;;;{me})(A;;0x1200a9;;;BU)"));
        assert!(check_trust(&library).is_ok(), "{:?}", check_trust(&library));
    }

    #[test]
    fn a_process_that_crashes_is_reported_as_an_exception() {
        // The test binary itself, told to write to an address that is never mapped.
        if std::env::var_os("SYGEN_TEST_CRASH").is_some() {
            // SAFETY: none: the access violation is the point.
            unsafe { std::ptr::without_provenance_mut::<u8>(16).write_volatile(1) };
        }
        let status = Command::new(std::env::current_exe().expect("test binary"))
            .args([
                "--exact",
                "platform::windows::tests::a_process_that_crashes_is_reported_as_an_exception",
            ])
            .env("SYGEN_TEST_CRASH", "1")
            .output()
            .expect("run the test binary")
            .status;
        let exit = exit_status(status);
        assert_eq!(exit, Exit::Crash(0xC000_0005));
        assert_eq!(exit.to_string(), "crashed (exception 0xC0000005)");
    }

    #[test]
    fn a_file_is_the_same_file_as_its_path() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        std::fs::write(&a, "a").expect("write");
        std::fs::write(&b, "b").expect("write");
        let file = File::open(&a).expect("open");
        assert!(is_same_file(&file, &a));
        assert!(!is_same_file(&file, &b));
    }
}
