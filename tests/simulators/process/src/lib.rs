//! What the stand-ins for `launchctl` and `schtasks.exe` share: the log of every call they
//! answer, and watching and ending the processes they start for their jobs.

use std::{
    fs,
    io::Write,
    path::Path,
    str::FromStr,
    thread,
    time::{Duration, Instant},
};

use nix::{
    sys::signal::{kill, Signal},
    unistd::Pid,
};

/// Appends the call to `<state>/calls`, one line a call, so tests can see what was run.
pub fn record_call(state: &Path, args: &[String]) {
    let _ = fs::create_dir_all(state);
    if let Ok(mut calls) = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(state.join("calls"))
    {
        let _ = writeln!(calls, "{}", args.join(" "));
    }
}

/// Whether `pid` is running: it exists and is not a zombie waiting to be reaped.
pub fn alive(pid: i32) -> bool {
    kill(Pid::from_raw(pid), None).is_ok()
        && !fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| {
                s.rsplit_once(')')
                    .is_some_and(|(_, r)| r.trim_start().starts_with('Z'))
            })
            .unwrap_or(false)
}

/// The number a state file holds (a pid, an exit status), if it holds one.
pub fn read_number<T: FromStr>(path: &Path) -> Option<T> {
    fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Polls `done` for up to `limit`; whether it came true.
pub fn wait_until(limit: Duration, done: impl Fn() -> bool) -> bool {
    let start = Instant::now();
    while !done() {
        if start.elapsed() >= limit {
            return false;
        }
        thread::sleep(Duration::from_millis(10));
    }
    true
}

/// Sends SIGTERM, gives the process `grace` to end, then SIGKILL.
pub fn terminate(pid: i32, grace: Duration) {
    let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
    wait_until(grace, || !alive(pid));
    let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
}
