//! Every change an operation makes to the machine goes through [`Changes`]: files written or
//! removed, and commands that alter the service manager's state. That is what makes
//! `--dry-run` exact: the backend's own install or uninstall runs unchanged, and in a dry run
//! each change is recorded instead of made. Queries (reading state) run for real either way,
//! through [`super::command::run`].

use std::{
    ffi::OsStr,
    path::Path,
    sync::{Mutex, MutexGuard},
};

use super::{
    command::{self, Invocation},
    Error, Result,
};
use crate::methods::{Change, DryRun};

/// Makes changes, or in a dry run, records them.
#[derive(Debug, Default)]
pub struct Changes {
    /// `Some` in a dry run: what would have been changed, in order.
    recorded: Option<Mutex<Vec<Change>>>,
}

impl Changes {
    /// Changes that are made.
    pub fn live() -> Self {
        Self::default()
    }

    /// Changes that are only recorded.
    pub fn dry_run() -> Self {
        Self {
            recorded: Some(Mutex::default()),
        }
    }

    /// Whether changes are made: checks that follow a change (did the service start?) only
    /// make sense then.
    pub fn is_live(&self) -> bool {
        self.recorded.is_none()
    }

    /// Writes `contents` to `path` atomically (see [`super::fs::write_atomic`]), creating the
    /// directory. `mode` sets the Unix permission bits.
    pub fn write(&self, path: &Path, contents: &[u8], mode: Option<u32>) -> Result<()> {
        if let Some(mut recorded) = self.recorded() {
            let (encoding, content) = decode(contents);
            recorded.push(Change::Write {
                path: path.to_owned(),
                mode,
                encoding: encoding.to_owned(),
                content,
            });
            return Ok(());
        }
        super::fs::write_atomic(path, contents, mode)
            .map_err(|e| Error::io(format!("writing {}", path.display()), e))
    }

    /// Removes the file at `path`.
    pub fn remove_file(&self, path: &Path) -> Result<()> {
        if let Some(mut recorded) = self.recorded() {
            recorded.push(Change::Remove {
                path: path.to_owned(),
            });
            return Ok(());
        }
        std::fs::remove_file(path).map_err(|e| Error::io(format!("removing {}", path.display()), e))
    }

    /// Makes `link` a symbolic link to `target` (a relative `target` is relative to the link's
    /// directory), replacing what was at `link` atomically (see [`super::fs::symlink_atomic`]):
    /// how a supervisor that runs whatever is linked into a directory it scans is told to run a
    /// service. [`Changes::remove_file`] removes the link.
    pub fn symlink(&self, target: &Path, link: &Path) -> Result<()> {
        if let Some(mut recorded) = self.recorded() {
            recorded.push(Change::Symlink {
                link: link.to_owned(),
                target: target.to_owned(),
            });
            return Ok(());
        }
        super::fs::symlink_atomic(target, link).map_err(|e| {
            Error::io(
                format!("linking {} to {}", link.display(), target.display()),
                e,
            )
        })
    }

    /// Creates `dir` and its parents. Not recorded: a dry run lists files and commands.
    pub fn create_dir_all(&self, dir: &Path) -> Result<()> {
        if !self.is_live() {
            return Ok(());
        }
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::io(format!("creating {}", dir.display()), e))
    }

    /// Removes `dir` and its parents up to (not including) `stop` while they are empty. Not
    /// recorded: which would be empty is only known once the files are gone.
    pub fn remove_empty_dirs(&self, dir: &Path, stop: &Path) {
        if !self.is_live() {
            return;
        }
        let mut dir = Some(dir);
        while let Some(current) = dir.filter(|d| *d != stop && d.starts_with(stop)) {
            if std::fs::remove_dir(current).is_err() {
                break;
            }
            dir = current.parent();
        }
    }

    /// Runs a command that changes state, as [`command::run`] does. In a dry run it is
    /// recorded and answers success with no output.
    pub fn run<I, S>(&self, program: &str, args: I) -> Result<command::Output>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let invocation = Invocation::new(program).args(args);
        let Some(mut recorded) = self.recorded() else {
            return invocation.run();
        };
        recorded.push(Change::Run {
            argv: invocation.argv(),
        });
        Ok(command::Output {
            code: Some(0),
            stdout: String::new(),
            stderr: String::new(),
        })
    }

    /// Starts a program that outlives the operation: a supervisor the service manager needs
    /// (a per-user `runsvdir`, say) when it is not running yet. It runs in a session of its
    /// own (on Windows: detached from the console, in a process group of its own), from `/`,
    /// with its standard streams on the null device, so it outlives the call, the terminal
    /// sygen ran in and sygen itself, and holds none of them (a pipe reading sygen's output
    /// still ends when sygen does). Its own output goes nowhere: give it a log file if it
    /// takes one. Succeeds once it has started; whether it then does its job is for the
    /// backend to ask, as of any service manager.
    pub fn start_detached(&self, invocation: &Invocation) -> Result<()> {
        if let Some(mut recorded) = self.recorded() {
            recorded.push(Change::StartDetached {
                argv: invocation.argv(),
                env: invocation.env_vars(),
            });
            return Ok(());
        }
        invocation.start_detached()
    }

    /// What was recorded (empty when live).
    pub fn recorded_changes(&self) -> DryRun {
        DryRun {
            changes: self.recorded().map(|r| r.clone()).unwrap_or_default(),
        }
    }

    fn recorded(&self) -> Option<MutexGuard<'_, Vec<Change>>> {
        self.recorded
            .as_ref()
            .map(|r| r.lock().unwrap_or_else(|poisoned| poisoned.into_inner()))
    }
}

/// The text of file contents and how it is encoded: UTF-16LE with a byte-order mark (what
/// Task Scheduler reads), else UTF-8 (invalid sequences replaced).
fn decode(contents: &[u8]) -> (&'static str, String) {
    match contents.strip_prefix(&[0xFF, 0xFE]) {
        Some(utf16) => {
            let units: Vec<u16> = utf16
                .chunks_exact(2)
                .map(|pair| u16::from_le_bytes([pair[0], pair[1]]))
                .collect();
            ("utf-16le", String::from_utf16_lossy(&units))
        }
        None => ("utf-8", String::from_utf8_lossy(contents).into_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dry_run_records_instead_of_changing() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("sub/unit");
        let changes = Changes::dry_run();
        changes.create_dir_all(&dir.path().join("sub")).unwrap();
        changes.write(&file, b"text\n", Some(0o644)).unwrap();
        changes.remove_file(&dir.path().join("missing")).unwrap();
        let output = changes.run("sh", ["-c", "touch should-not-exist"]).unwrap();
        assert!(output.success());
        let link = dir.path().join("enabled/unit");
        changes.symlink(Path::new("../sub/unit"), &link).unwrap();
        let supervisor = Invocation::new("sh")
            .args(["-c", "touch should-not-exist-either"])
            .env("SVDIR", "/home/a b/service");
        changes.start_detached(&supervisor).unwrap();
        assert!(!dir.path().join("sub").exists());
        assert!(!Path::new("should-not-exist").exists());
        assert!(link.symlink_metadata().is_err());
        assert!(!Path::new("should-not-exist-either").exists());
        assert_eq!(
            changes.recorded_changes().changes,
            vec![
                Change::Write {
                    path: file,
                    mode: Some(0o644),
                    encoding: "utf-8".into(),
                    content: "text\n".into()
                },
                Change::Remove {
                    path: dir.path().join("missing")
                },
                Change::Run {
                    argv: vec!["sh".into(), "-c".into(), "touch should-not-exist".into()]
                },
                Change::Symlink {
                    link,
                    target: "../sub/unit".into()
                },
                Change::StartDetached {
                    argv: vec![
                        "sh".into(),
                        "-c".into(),
                        "touch should-not-exist-either".into()
                    ],
                    env: vec![("SVDIR".into(), "/home/a b/service".into())]
                },
            ]
        );
    }

    #[test]
    fn new_changes_are_tagged_as_their_own_actions() {
        let changes = [
            Change::Symlink {
                link: "/s/enabled/sygen".into(),
                target: "/s/available/sygen".into(),
            },
            Change::StartDetached {
                argv: vec!["runsvdir".into(), "/s".into()],
                env: vec![("A".into(), "b".into())],
            },
        ];
        let json = serde_json::to_value(&changes).unwrap();
        assert_eq!(
            json,
            serde_json::json!([
                { "action": "symlink", "link": "/s/enabled/sygen", "target": "/s/available/sygen" },
                { "action": "start_detached", "argv": ["runsvdir", "/s"], "env": [["A", "b"]] },
            ])
        );
        assert_eq!(
            serde_json::from_value::<Vec<Change>>(json).unwrap(),
            changes
        );
    }

    #[test]
    fn live_changes_are_made() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a/b/unit");
        let changes = Changes::live();
        changes.write(&file, b"x", None).unwrap();
        assert_eq!(std::fs::read(&file).unwrap(), b"x");
        assert_eq!(changes.run("sh", ["-c", "exit 3"]).unwrap().code, Some(3));
        #[cfg(unix)]
        {
            let link = dir.path().join("a/b/link");
            changes.symlink(Path::new("unit"), &link).unwrap();
            assert_eq!(std::fs::read(&link).unwrap(), b"x");
            changes.remove_file(&link).unwrap();
        }
        changes.remove_file(&file).unwrap();
        changes.remove_empty_dirs(&dir.path().join("a/b"), dir.path());
        assert!(!dir.path().join("a").exists());
        assert!(changes.recorded_changes().changes.is_empty());
    }

    #[test]
    fn utf16_files_are_shown_as_text() {
        let mut bytes = vec![0xFF, 0xFE];
        bytes.extend("<Task>é</Task>".encode_utf16().flat_map(u16::to_le_bytes));
        assert_eq!(decode(&bytes), ("utf-16le", "<Task>é</Task>".to_owned()));
        assert_eq!(decode("ü".as_bytes()), ("utf-8", "ü".to_owned()));
    }
}
