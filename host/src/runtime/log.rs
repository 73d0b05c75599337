//! `agent.log`: the runtime's own events and the worker's output, one timestamped line each,
//! rotated by size (`agent.log` → `agent.log.1` → … → `agent.log.<keep>`, the oldest dropped).
//!
//! A log that cannot be written must never stop the agent, and must never lose a line
//! silently. So: a line that cannot be written is counted, and the first line written after
//! the outage says how many were lost and why; a write that fails halfway (a full disk) is cut
//! back off, so no line is ever glued to a fragment; a rotation that something blocks (a
//! directory named `agent.log.1`) is said once and tried again after another `max_bytes`, the
//! log growing meanwhile rather than dropping lines. Written here rather than with a rotation
//! crate because those panic when the directory cannot be created or written.

use std::{
    fs::{self, File, OpenOptions},
    io::{self, Write},
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::SystemTime,
};

/// A shared, rotating log. Cloning shares the same file.
#[derive(Clone)]
pub struct AgentLog(Arc<Mutex<Inner>>);

struct Inner {
    path: PathBuf,
    max_bytes: u64,
    keep: u32,
    file: Option<File>,
    /// The length of the file: whole lines only.
    size: u64,
    /// The size past which rotation is tried next: `max_bytes`, or more after a failed one.
    rotate_at: u64,
    /// Why the last rotation failed, said once until it changes.
    blocked: Option<String>,
    lost: Option<Loss>,
}

/// Lines that could not be written, since the last one that could.
struct Loss {
    lines: u64,
    error: String,
}

impl AgentLog {
    /// Opens (creating the directory) `dir/agent.log` for appending.
    pub fn open(dir: &Path, max_bytes: u64, keep: u32) -> io::Result<Self> {
        fs::create_dir_all(dir)?;
        let path = dir.join("agent.log");
        let file =
            crate::platform::no_follow(OpenOptions::new().create(true).append(true)).open(&path)?;
        let size = file.metadata()?.len();
        let max_bytes = max_bytes.max(1);
        Ok(Self(Arc::new(Mutex::new(Inner {
            path,
            max_bytes,
            keep,
            file: Some(file),
            size,
            rotate_at: max_bytes,
            blocked: None,
            lost: None,
        }))))
    }

    /// Appends `line` as `<timestamp> [<source>] <line>`. Never fails: answers what went wrong
    /// when it is news (the first lost line of an outage, a blocked rotation), for the caller
    /// to say elsewhere.
    pub fn line(&self, source: &str, line: &str) -> Option<String> {
        let mut inner = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(loss) = inner.lost.take() {
            let plural = if loss.lines == 1 { "" } else { "s" };
            let notice = format!(
                "{} line{plural} lost: {} could not be written ({})",
                loss.lines,
                inner.path.display(),
                loss.error
            );
            if inner.append(&stamped("runtime", &notice)).is_err() {
                inner.lost = Some(Loss {
                    lines: loss.lines + 1,
                    ..loss
                });
                return None;
            }
        }
        match inner.append(&stamped(source, line)) {
            Ok(problem) => problem,
            Err(error) => {
                let news = format!(
                    "cannot write {}: {error}; the lines lost are counted until it can",
                    inner.path.display()
                );
                inner.lost = Some(Loss {
                    lines: 1,
                    error: error.to_string(),
                });
                Some(news)
            }
        }
    }
}

fn stamped(source: &str, line: &str) -> Vec<u8> {
    format!(
        "{} [{source}] {}\n",
        humantime::format_rfc3339_millis(SystemTime::now()),
        line.trim_end_matches(['\n', '\r'])
    )
    .into_bytes()
}

impl Inner {
    /// Writes one stamped line, rotating first when it is due; answers a rotation problem.
    fn append(&mut self, bytes: &[u8]) -> io::Result<Option<String>> {
        let mut problem = None;
        if self.size > 0 && self.size.saturating_add(bytes.len() as u64) > self.rotate_at {
            match self.rotate() {
                Ok(()) => {
                    self.rotate_at = self.max_bytes;
                    self.blocked = None;
                }
                Err(error) => {
                    self.rotate_at = self.size.saturating_add(self.max_bytes);
                    let why = format!(
                        "cannot rotate {}: {error}; it grows past {} bytes until that is fixed",
                        self.path.display(),
                        self.max_bytes
                    );
                    if self.blocked.as_ref() != Some(&why) {
                        self.blocked = Some(why.clone());
                        problem = Some(why);
                    }
                }
            }
        }
        self.write(bytes)?;
        if let Some(problem) = &problem {
            self.write(&stamped("runtime", problem))?;
        }
        Ok(problem)
    }

    fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        if self.file.is_none() {
            let file = crate::platform::no_follow(OpenOptions::new().create(true).append(true))
                .open(&self.path)?;
            self.size = file.metadata()?.len();
            self.file = Some(file);
        }
        let Some(file) = &mut self.file else {
            return Ok(());
        };
        if let Err(error) = file.write_all(bytes) {
            // Whatever part of the line went in comes back out: the next line must not be
            // glued to it.
            if file.set_len(self.size).is_err() {
                self.file = None;
            }
            return Err(error);
        }
        self.size += bytes.len() as u64;
        Ok(())
    }

    fn rotated(&self, n: u32) -> PathBuf {
        let mut name = self.path.clone().into_os_string();
        name.push(format!(".{n}"));
        PathBuf::from(name)
    }

    fn rotate(&mut self) -> io::Result<()> {
        self.file = None;
        if self.keep == 0 {
            match fs::remove_file(&self.path) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        } else {
            for n in (1..self.keep).rev() {
                let from = self.rotated(n);
                if fs::symlink_metadata(&from).is_ok() {
                    move_file(&from, &self.rotated(n + 1))?;
                }
            }
            move_file(&self.path, &self.rotated(1))?;
        }
        self.size = 0;
        Ok(())
    }
}

/// Renames the file `from` to `to`, which must be a file or nothing: a directory in the way is
/// never moved, replaced or emptied.
fn move_file(from: &Path, to: &Path) -> io::Result<()> {
    let name = |p: &Path| {
        p.file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
    };
    for path in [from, to] {
        if fs::symlink_metadata(path).is_ok_and(|m| m.is_dir()) {
            return Err(io::Error::other(format!("{} is a directory", name(path))));
        }
    }
    fs::rename(from, to).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("cannot move {} to {}: {e}", name(from), name(to)),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn lines_are_timestamped_and_tagged() {
        let dir = tempfile::tempdir().unwrap();
        let log = AgentLog::open(&dir.path().join("new/logs"), 1 << 20, 5).unwrap();
        assert_eq!(log.line("runtime", "started\n"), None);
        let text = fs::read_to_string(dir.path().join("new/logs/agent.log")).unwrap();
        let (stamp, rest) = text.split_once(' ').unwrap();
        assert!(humantime::parse_rfc3339(stamp).is_ok(), "{stamp}");
        assert_eq!(rest, "[runtime] started\n");
    }

    #[test]
    fn rotates_by_size_and_keeps_the_newest_files() {
        let dir = tempfile::tempdir().unwrap();
        let log = AgentLog::open(dir.path(), 200, 2).unwrap();
        for i in 0..20 {
            log.line("stdout", &format!("line {i:02} {}", "x".repeat(40)));
        }
        let read = |name: &str| fs::read_to_string(dir.path().join(name)).unwrap();
        let names = names(dir.path());
        assert_eq!(names, ["agent.log", "agent.log.1", "agent.log.2"]);
        for name in &names {
            assert!(fs::metadata(dir.path().join(name)).unwrap().len() <= 200);
        }
        assert!(read("agent.log").contains("line 19"));
        assert!(read("agent.log.1").ends_with(&format!("line 17 {}\n", "x".repeat(40))));
        assert!(
            !read("agent.log.2").contains("line 00"),
            "the oldest lines were dropped"
        );
    }

    #[test]
    fn a_directory_in_the_way_of_rotation_is_said_once_and_no_line_is_lost() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("agent.log.1")).unwrap();
        let log = AgentLog::open(dir.path(), 200, 2).unwrap();
        let problems: Vec<String> = (0..20)
            .filter_map(|i| log.line("stdout", &format!("line {i:02} {}", "x".repeat(40))))
            .collect();
        let text = fs::read_to_string(dir.path().join("agent.log")).unwrap();
        for i in 0..20 {
            assert!(text.contains(&format!("line {i:02} ")), "line {i} is lost");
        }
        // Tried again after each further 200 bytes, but said once.
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].ends_with(
                "agent.log.1 is a directory; it grows past 200 bytes until that is fixed"
            ),
            "{}",
            problems[0]
        );
        assert!(dir.path().join("agent.log.1").is_dir());

        fs::remove_dir(dir.path().join("agent.log.1")).unwrap();
        for i in 20..30 {
            assert_eq!(
                log.line("stdout", &format!("line {i:02} {}", "x".repeat(40))),
                None
            );
        }
        assert!(dir.path().join("agent.log.1").is_file(), "rotation goes on");
    }

    #[cfg(unix)]
    #[test]
    fn rotation_moves_links_placed_among_the_rotated_files_and_never_writes_through_them() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::NamedTempFile::new().unwrap();
        fs::write(outside.path(), "not sygen's\n").unwrap();
        for name in ["agent.log.1", "agent.log.2"] {
            std::os::unix::fs::symlink(outside.path(), dir.path().join(name)).unwrap();
        }
        let log = AgentLog::open(dir.path(), 200, 2).unwrap();
        for i in 0..20 {
            log.line("stdout", &format!("line {i:02} {}", "x".repeat(40)));
        }
        assert_eq!(fs::read_to_string(outside.path()).unwrap(), "not sygen's\n");
        for name in names(dir.path()) {
            let kind = fs::symlink_metadata(dir.path().join(&name)).unwrap();
            assert!(
                kind.is_file(),
                "{name} was rotated away: a file of sygen's now"
            );
        }
    }
}
