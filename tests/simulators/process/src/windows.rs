//! Processes the Windows way: process handles and `TerminateProcess`, which is all
//! `schtasks /End` does too.

use std::{os::windows::process::CommandExt as _, process::Command, time::Duration};

use windows_sys::Win32::{
    Foundation::{CloseHandle, SetHandleInformation, HANDLE_FLAG_INHERIT, WAIT_TIMEOUT},
    System::Console::{GetStdHandle, STD_ERROR_HANDLE, STD_INPUT_HANDLE, STD_OUTPUT_HANDLE},
    System::Threading::{
        OpenProcess, TerminateProcess, WaitForSingleObject, CREATE_NEW_PROCESS_GROUP,
        DETACHED_PROCESS, PROCESS_SYNCHRONIZE, PROCESS_TERMINATE,
    },
};

/// Whether `pid` is running.
pub fn alive(pid: i32) -> bool {
    let Ok(pid) = u32::try_from(pid) else {
        return false;
    };
    // SAFETY: plain calls on a handle this function opens and closes.
    unsafe {
        let process = OpenProcess(PROCESS_SYNCHRONIZE, 0, pid);
        if process.is_null() {
            return false;
        }
        let running = WaitForSingleObject(process, 0) == WAIT_TIMEOUT;
        CloseHandle(process);
        running
    }
}

/// Ends `pid` at once, with exit code 1, as `schtasks /End` does.
pub fn kill(pid: i32) {
    let Ok(pid) = u32::try_from(pid) else {
        return;
    };
    // SAFETY: plain calls on a handle this function opens and closes.
    unsafe {
        let process = OpenProcess(PROCESS_TERMINATE, 0, pid);
        if !process.is_null() {
            TerminateProcess(process, 1);
            CloseHandle(process);
        }
    }
}

/// Windows has no SIGTERM to give first: ends `pid` at once.
pub fn terminate(pid: i32, _grace: Duration) {
    kill(pid);
}

/// Starts `command` apart from its caller: without its console, in a process group of its own,
/// and without this process's standard handles. Windows hands a child every inheritable handle,
/// so a detached child would otherwise hold the caller's output pipe open, and whoever reads it
/// to its end would wait for as long as the child lives.
pub fn detach(command: &mut Command) -> &mut Command {
    for which in [STD_INPUT_HANDLE, STD_OUTPUT_HANDLE, STD_ERROR_HANDLE] {
        // SAFETY: plain calls; a missing or invalid handle makes the second one fail harmlessly.
        unsafe { SetHandleInformation(GetStdHandle(which), HANDLE_FLAG_INHERIT, 0) };
    }
    command.creation_flags(DETACHED_PROCESS | CREATE_NEW_PROCESS_GROUP)
}
