//! What the stand-ins for `launchctl` and `schtasks.exe` share: the log of every call they
//! answer, and watching and ending the processes they start for their jobs (`unix.rs`,
//! `windows.rs`: the schtasks stand-in also runs on Windows, under Wine).

#[cfg(unix)]
mod unix;
#[cfg(unix)]
pub use unix::{alive, detach, kill, terminate};

#[cfg(windows)]
mod windows;
#[cfg(windows)]
pub use windows::{alive, detach, kill, terminate};

use std::{
    fs,
    io::Write,
    path::Path,
    str::FromStr,
    thread,
    time::{Duration, Instant},
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
