//! `launchctl-sim`: the stand-in for macOS's `launchctl` (`unix.rs`). It runs jobs the Unix way,
//! as the launchd backend's tests on Linux need.

#[cfg(unix)]
mod unix;

#[cfg(unix)]
fn main() -> std::process::ExitCode {
    unix::main()
}

#[cfg(not(unix))]
fn main() -> std::process::ExitCode {
    eprintln!("launchctl-sim runs on Unix only, where the launchd backend's tests run");
    std::process::ExitCode::from(70)
}
