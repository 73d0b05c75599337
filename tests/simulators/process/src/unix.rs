//! Processes the Unix way: signals, `/proc` for zombies, process groups.

use std::{fs, os::unix::process::CommandExt as _, process::Command, time::Duration};

use nix::{
    sys::signal::{self, Signal},
    unistd::Pid,
};

use crate::wait_until;

/// Whether `pid` is running: it exists and is not a zombie waiting to be reaped.
pub fn alive(pid: i32) -> bool {
    signal::kill(Pid::from_raw(pid), None).is_ok()
        && !fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| {
                s.rsplit_once(')')
                    .is_some_and(|(_, r)| r.trim_start().starts_with('Z'))
            })
            .unwrap_or(false)
}

/// Sends SIGTERM, gives the process `grace` to end, then SIGKILL.
pub fn terminate(pid: i32, grace: Duration) {
    let _ = signal::kill(Pid::from_raw(pid), Signal::SIGTERM);
    wait_until(grace, || !alive(pid));
    kill(pid);
}

/// Ends `pid` at once (SIGKILL).
pub fn kill(pid: i32) {
    let _ = signal::kill(Pid::from_raw(pid), Signal::SIGKILL);
}

/// Starts `command` apart from its caller: in a process group of its own.
pub fn detach(command: &mut Command) -> &mut Command {
    command.process_group(0)
}
