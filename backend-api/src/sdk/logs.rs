//! sygen's own log files, for backends whose service manager keeps no logs (launchd, Task
//! Scheduler) and as the last resort of those that do: the last lines of `agent.log` (else the
//! newest `*.log`) in the logs directory, and, when following, what is appended after them.

use std::{
    fs::File,
    io::{Read, Seek, SeekFrom},
    path::{Path, PathBuf},
    thread,
    time::Duration,
};

use super::{fs::tail_lines, Context, Error, Result};

/// How often a followed log is checked for new lines (as `tail -F` does, by looking).
const FOLLOW_INTERVAL: Duration = Duration::from_millis(250);

/// The log to show: `agent.log` if present, else the most recently written `*.log`.
pub fn pick_log_file(logs_dir: &Path) -> Option<PathBuf> {
    let agent_log = logs_dir.join("agent.log");
    if agent_log.is_file() {
        return Some(agent_log);
    }
    std::fs::read_dir(logs_dir)
        .ok()?
        .filter_map(|entry| entry.ok())
        .filter(|entry| entry.path().extension().is_some_and(|ext| ext == "log"))
        .max_by_key(|entry| entry.metadata().and_then(|m| m.modified()).ok())
        .map(|entry| entry.path())
}

/// Prints the last `lines` lines of the service's log file, headed by its full path on stderr;
/// with `follow`, keeps printing what is appended, across rotation, until interrupted.
pub fn print_file_logs(cx: &Context, follow: bool, lines: u32) -> Result<()> {
    let dir = &cx.service.logs_dir;
    let Some(file) = pick_log_file(dir) else {
        return Err(Error::failed(format!(
            "no logs to show: {} has no log files yet",
            dir.display()
        ))
        .with_hint("`sygen service status` shows whether the service has run"));
    };
    print_log_file(cx, &file, follow, lines)
}

/// Prints the last `lines` lines of `file` (any file: a service manager's own capture of the
/// service's output, say), headed by its path on stderr; with `follow`, keeps printing what is
/// appended, across rotation, until interrupted.
pub fn print_log_file(cx: &Context, file: &Path, follow: bool, lines: u32) -> Result<()> {
    cx.console
        .eprintln(&format!("-- logs of sygen from {} --", file.display()));
    let read_error = |e| Error::io(format!("reading {}", file.display()), e);
    for line in tail_lines(file, lines as usize).map_err(read_error)? {
        cx.console.println(&line);
    }
    if follow {
        follow_file(file, cx).map_err(read_error)?;
    }
    Ok(())
}

/// Prints what is appended to `path` from its current end on, through the console. When the
/// file is replaced (rotation) or truncated, starts again at the beginning of the new one.
/// Returns only on an error: following ends when the user interrupts it.
pub fn follow_file(path: &Path, cx: &Context) -> std::io::Result<()> {
    let mut file = File::open(path)?;
    let mut position = file.seek(SeekFrom::End(0))?;
    let mut identity = file_identity(&file);
    let mut pending = Vec::new();
    loop {
        thread::sleep(FOLLOW_INTERVAL);
        if let Ok(current) = File::open(path) {
            let replaced = file_identity(&current) != identity;
            let truncated = current.metadata().map(|m| m.len()).unwrap_or(0) < position;
            if replaced || truncated {
                // Whatever the old file still had was read before it was replaced.
                file = current;
                identity = file_identity(&file);
                position = 0;
            }
        }
        file.seek(SeekFrom::Start(position))?;
        let read = file.read_to_end(&mut pending)?;
        position += read as u64;
        if let Some(end) = pending.iter().rposition(|&b| b == b'\n') {
            let complete: Vec<u8> = pending.drain(..=end).collect();
            cx.console.print(&String::from_utf8_lossy(&complete));
        }
    }
}

#[cfg(unix)]
fn file_identity(file: &File) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    file.metadata().ok().map(|m| (m.dev(), m.ino()))
}

#[cfg(not(unix))]
fn file_identity(file: &File) -> Option<std::time::SystemTime> {
    file.metadata().and_then(|m| m.created()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefers_agent_log_then_the_newest_log() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(pick_log_file(dir.path()), None);
        std::fs::write(dir.path().join("service.err"), "not a .log").unwrap();
        std::fs::write(dir.path().join("old.log"), "a").unwrap();
        thread::sleep(Duration::from_millis(20));
        std::fs::write(dir.path().join("service.log"), "b").unwrap();
        assert_eq!(
            pick_log_file(dir.path()),
            Some(dir.path().join("service.log"))
        );
        std::fs::write(dir.path().join("agent.log"), "c").unwrap();
        assert_eq!(
            pick_log_file(dir.path()),
            Some(dir.path().join("agent.log"))
        );
    }
}
