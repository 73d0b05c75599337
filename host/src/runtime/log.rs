//! `agent.log`: the runtime's own events and the worker's output, one timestamped line each,
//! rotated by size (`agent.log` → `agent.log.1` → … → `agent.log.<keep>`, the oldest dropped).
//!
//! Written here rather than with a rotation crate because those panic when the directory
//! cannot be created or written; a log that cannot be written must never stop the agent.

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
    size: u64,
}

impl AgentLog {
    /// Opens (creating the directory) `dir/agent.log` for appending.
    pub fn open(dir: &Path, max_bytes: u64, keep: u32) -> io::Result<Self> {
        fs::create_dir_all(dir)?;
        let path = dir.join("agent.log");
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        let size = file.metadata()?.len();
        Ok(Self(Arc::new(Mutex::new(Inner {
            path,
            max_bytes: max_bytes.max(1),
            keep,
            file: Some(file),
            size,
        }))))
    }

    /// Appends `line` as `<timestamp> [<source>] <line>`. Errors are reported on stderr once
    /// per failure, never raised: logging must not take the agent down.
    pub fn line(&self, source: &str, line: &str) {
        let stamped = format!(
            "{} [{source}] {}\n",
            humantime::format_rfc3339_millis(SystemTime::now()),
            line.trim_end_matches(['\n', '\r'])
        );
        let mut inner = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Err(e) = inner.write(stamped.as_bytes()) {
            eprintln!("sygen: cannot write {}: {e}", inner.path.display());
        }
    }
}

impl Inner {
    fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        if self.size > 0 && self.size + bytes.len() as u64 > self.max_bytes {
            self.rotate()?;
        }
        let file = match &mut self.file {
            Some(file) => file,
            None => self.file.insert(
                OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&self.path)?,
            ),
        };
        file.write_all(bytes)?;
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
            fs::remove_file(&self.path)?;
        } else {
            for n in (1..self.keep).rev() {
                let from = self.rotated(n);
                if from.exists() {
                    fs::rename(&from, self.rotated(n + 1))?;
                }
            }
            fs::rename(&self.path, self.rotated(1))?;
        }
        self.size = 0;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_timestamped_and_tagged() {
        let dir = tempfile::tempdir().unwrap();
        let log = AgentLog::open(&dir.path().join("new/logs"), 1 << 20, 5).unwrap();
        log.line("runtime", "started\n");
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
        let mut names: Vec<String> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
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
}
