//! `bot.pid` (the runtime) and `worker.pid` (its current worker) in the sygen home: how
//! `sygen stop` and `sygen restart` find a running instance, and how a second one is refused.

use std::{
    fs::{self, OpenOptions},
    io::{self, Write},
    path::{Path, PathBuf},
};

use nix::{errno::Errno, sys::signal, unistd::Pid};

use crate::exit::{Exit, Failure};

pub const RUNTIME_FILE: &str = "bot.pid";
pub const WORKER_FILE: &str = "worker.pid";

/// Whether `pid` names a live process (zombies count as gone).
pub fn is_alive(pid: i32) -> bool {
    if pid <= 0 {
        return false;
    }
    match signal::kill(Pid::from_raw(pid), None) {
        Ok(()) | Err(Errno::EPERM) => !is_zombie(pid),
        Err(_) => false,
    }
}

fn is_zombie(pid: i32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            let after_name = stat.rsplit_once(')')?.1;
            after_name
                .split_whitespace()
                .next()
                .map(|state| state == "Z")
        })
        .unwrap_or(false)
}

/// The pid in `path`, if the file exists and holds one.
pub fn read(path: &Path) -> Option<i32> {
    fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// The pid in `path`, if it names a live process.
pub fn read_live(path: &Path) -> Option<i32> {
    read(path).filter(|&pid| is_alive(pid))
}

/// The runtime's claim on the sygen home; removes both pid files when dropped.
pub struct Claim {
    home: PathBuf,
}

impl Claim {
    /// Writes `bot.pid`, refusing when a live runtime holds it and replacing a stale one.
    pub fn acquire(home: &Path) -> Result<Self, Failure> {
        fs::create_dir_all(home).map_err(|e| {
            Failure::new(
                Exit::Failed,
                format!("cannot create {}: {e}", home.display()),
            )
        })?;
        let path = home.join(RUNTIME_FILE);
        // Two attempts: the second after removing a stale file. `create_new` makes the claim
        // atomic, so of two runtimes starting together exactly one wins.
        for _ in 0..2 {
            match OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(mut file) => {
                    writeln!(file, "{}", std::process::id())
                        .map_err(|e| write_failure(&path, e))?;
                    return Ok(Self {
                        home: home.to_path_buf(),
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    match read(&path) {
                        Some(pid) if is_alive(pid) => return Err(Failure::new(
                            Exit::Failed,
                            format!(
                                "sygen is already running (pid {pid}, from {})",
                                path.display()
                            ),
                        )
                        .hint(
                            "stop it with `sygen stop`, or restart its worker with `sygen restart`",
                        )),
                        _ => {
                            tracing::info!("replacing the stale pid file {}", path.display());
                            fs::remove_file(&path).map_err(|e| write_failure(&path, e))?;
                        }
                    }
                }
                Err(e) => return Err(write_failure(&path, e)),
            }
        }
        Err(Failure::new(
            Exit::Failed,
            format!(
                "another sygen claimed {} at the same moment",
                path.display()
            ),
        ))
    }

    /// Records the current worker's pid.
    pub fn set_worker(&self, pid: u32) {
        let path = self.home.join(WORKER_FILE);
        if let Err(e) = fs::write(&path, format!("{pid}\n")) {
            eprintln!("sygen: cannot write {}: {e}", path.display());
        }
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        let _ = fs::remove_file(self.home.join(WORKER_FILE));
        let _ = fs::remove_file(self.home.join(RUNTIME_FILE));
    }
}

fn write_failure(path: &Path, error: io::Error) -> Failure {
    Failure::new(
        Exit::Failed,
        format!("cannot write {}: {error}", path.display()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_live_claim_refuses_a_second_one_and_a_stale_one_is_replaced() {
        let home = tempfile::tempdir().unwrap();
        let claim = Claim::acquire(home.path()).unwrap();
        assert_eq!(
            read(&home.path().join(RUNTIME_FILE)),
            Some(std::process::id() as i32)
        );
        let refused = Claim::acquire(home.path()).err().unwrap();
        assert!(
            refused.message.contains("already running"),
            "{}",
            refused.message
        );
        drop(claim);
        assert!(!home.path().join(RUNTIME_FILE).exists());

        // A pid that cannot be alive: beyond the kernel's pid range.
        fs::write(home.path().join(RUNTIME_FILE), "2147483600\n").unwrap();
        let _claim = Claim::acquire(home.path()).unwrap();
        assert_eq!(
            read(&home.path().join(RUNTIME_FILE)),
            Some(std::process::id() as i32)
        );
    }

    #[test]
    fn garbage_in_the_pid_file_counts_as_stale() {
        let home = tempfile::tempdir().unwrap();
        fs::write(home.path().join(RUNTIME_FILE), "not a pid").unwrap();
        assert!(Claim::acquire(home.path()).is_ok());
    }
}
