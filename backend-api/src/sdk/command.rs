//! Running the platform tool (`systemctl`, `launchctl`, `schtasks.exe`, …): the one place a
//! backend starts a process, so every invocation is traced and every failure reads the same.
//!
//! [`run`] covers the usual call, a program and its arguments; an [`Invocation`] also carries
//! environment variables (a supervisor's tool often finds its directory through one, as
//! runit's `sv` does through `SVDIR`), and is what [`super::Changes::start_detached`] starts.

use std::{
    ffi::{OsStr, OsString},
    io::{BufRead, BufReader, Read},
    process::{Command, Stdio},
};

use super::{Console, Error, Result};

/// A program to run: its arguments, and the environment variables it gets on top of the
/// backend's own environment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invocation {
    program: String,
    args: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
}

impl Invocation {
    /// `program`, found on `PATH` unless it is a path.
    pub fn new(program: impl Into<String>) -> Self {
        Self {
            program: program.into(),
            args: Vec::new(),
            env: Vec::new(),
        }
    }

    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|arg| arg.as_ref().to_owned()));
        self
    }

    /// Sets the environment variable `key` to `value` for this program only.
    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Self {
        self.env
            .push((key.as_ref().to_owned(), value.as_ref().to_owned()));
        self
    }

    /// Runs it, as [`run`] does.
    pub fn run(&self) -> Result<Output> {
        let output = self
            .command()
            .output()
            .map_err(|error| start_failure(&self.program, error))?;
        let output = Output {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        };
        tracing::debug!(code = ?output.code, "`{}` finished", self.program);
        Ok(output)
    }

    /// The program and its arguments, as text (invalid UTF-8 replaced): what a dry run shows.
    pub fn argv(&self) -> Vec<String> {
        std::iter::once(self.program.clone())
            .chain(
                self.args
                    .iter()
                    .map(|arg| arg.to_string_lossy().into_owned()),
            )
            .collect()
    }

    /// The environment variables it is given, as text: what a dry run shows.
    pub fn env_vars(&self) -> Vec<(String, String)> {
        self.env
            .iter()
            .map(|(key, value)| {
                (
                    key.to_string_lossy().into_owned(),
                    value.to_string_lossy().into_owned(),
                )
            })
            .collect()
    }

    /// Starts it detached and returns without waiting (see
    /// [`Changes::start_detached`](super::Changes::start_detached), the one way a backend does).
    pub(super) fn start_detached(&self) -> Result<()> {
        let mut command = self.command();
        command.stdout(Stdio::null()).stderr(Stdio::null());
        detach(&mut command);
        let mut child = command
            .spawn()
            .map_err(|error| start_failure(&self.program, error))?;
        tracing::debug!("started `{}` detached, pid {}", self.program, child.id());
        // Reaped when it ends, so it is no zombie while sygen (or a test) still runs; if the
        // thread cannot be made, it is reaped when this process ends.
        let _ = std::thread::Builder::new()
            .name("sygen-detached-reaper".into())
            .spawn(move || child.wait());
        Ok(())
    }

    fn command(&self) -> Command {
        let mut command = Command::new(&self.program);
        command
            .args(&self.args)
            .envs(self.env.iter().map(|(key, value)| (key, value)))
            .stdin(Stdio::null());
        tracing::debug!("running {command:?}");
        command
    }
}

#[cfg(unix)]
fn detach(command: &mut Command) {
    use std::os::unix::process::CommandExt;
    // Not the user's working directory, which it would keep busy (or unmountable) for as long
    // as it runs.
    command.current_dir("/");
    // SAFETY: between fork and exec only `setsid`, which is async-signal-safe, runs.
    unsafe {
        command.pre_exec(|| {
            nix::unistd::setsid()
                .map(drop)
                .map_err(std::io::Error::from)
        });
    }
}

#[cfg(windows)]
fn detach(command: &mut Command) {
    use std::os::windows::process::CommandExt;
    const DETACHED_PROCESS: u32 = 0x0000_0008;
    const CREATE_NEW_PROCESS_GROUP: u32 = 0x0000_0200;
    command.creation_flags(DETACHED_PROCESS | CREATE_NEW_PROCESS_GROUP);
}

/// What a finished command left behind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Output {
    /// The exit code; `None` when a signal ended the process.
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }

    /// The error for this output when it should have succeeded: `` `command` failed: `` and
    /// the first line of its message, or the exit code when the tool said nothing.
    pub fn failure(&self, command: &str) -> Error {
        let why = match (self.first_message_line(), self.code) {
            ("", Some(code)) => format!("exit code {code}"),
            ("", None) => "killed by a signal".to_owned(),
            (line, _) => line.to_owned(),
        };
        Error::failed(format!("`{command}` failed: {why}"))
    }

    /// The first non-empty line of stderr, else of stdout: what to show a user on failure.
    pub fn first_message_line(&self) -> &str {
        [&self.stderr, &self.stdout]
            .into_iter()
            .flat_map(|text| text.lines())
            .map(str::trim)
            .find(|line| !line.is_empty())
            .unwrap_or("")
    }
}

/// Runs `program` with `args`, capturing stdout, stderr and the exit code. Standard input is
/// closed, so a tool that would prompt fails instead of hanging.
///
/// A non-zero exit is not an error here: callers decide what each code means. Failing to start
/// the program at all is, with a hint when it is missing.
pub fn run<I, S>(program: &str, args: I) -> Result<Output>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    Invocation::new(program).args(args).run()
}

/// Like [`run`], but passes stdout to the console line by line as it arrives (for following
/// logs), so the answer's `stdout` is empty. Returns when the program exits.
pub fn stream<I, S>(program: &str, args: I, console: &Console) -> Result<Output>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut child = Invocation::new(program)
        .args(args)
        .command()
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|error| start_failure(program, error))?;
    let stderr = child.stderr.take().map(|mut pipe| {
        std::thread::spawn(move || {
            let mut text = Vec::new();
            let _ = pipe.read_to_end(&mut text);
            String::from_utf8_lossy(&text).into_owned()
        })
    });
    if let Some(stdout) = child.stdout.take() {
        let mut reader = BufReader::new(stdout);
        let mut line = Vec::new();
        while reader.read_until(b'\n', &mut line).unwrap_or(0) > 0 {
            console.print(&String::from_utf8_lossy(&line));
            line.clear();
        }
    }
    let status = child
        .wait()
        .map_err(|e| Error::io(format!("waiting for `{program}`"), e))?;
    Ok(Output {
        code: status.code(),
        stdout: String::new(),
        stderr: stderr.and_then(|t| t.join().ok()).unwrap_or_default(),
    })
}

fn start_failure(program: &str, error: std::io::Error) -> Error {
    let failure = Error::failed(format!("could not run `{program}`: {error}"));
    if error.kind() == std::io::ErrorKind::NotFound {
        failure.with_hint(format!("install `{program}` or add its directory to PATH"))
    } else {
        failure
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn captures_output_and_exit_code() {
        let output = run("sh", ["-c", "echo out; echo err >&2; exit 3"]).unwrap();
        assert_eq!(output.code, Some(3));
        assert_eq!(output.stdout, "out\n");
        assert_eq!(output.stderr, "err\n");
        assert!(!output.success());
        assert_eq!(output.first_message_line(), "err");
        assert_eq!(output.failure("tool x").message, "`tool x` failed: err");
        let silent = run("sh", ["-c", "exit 5"]).unwrap();
        assert_eq!(silent.failure("sh").message, "`sh` failed: exit code 5");
    }

    #[test]
    fn a_missing_program_is_an_error_with_a_hint() {
        let error = run("sygen-no-such-tool", ["x"]).unwrap_err();
        assert!(error.message.contains("could not run `sygen-no-such-tool`"));
        assert!(error.hint.unwrap().contains("PATH"));
    }

    #[test]
    fn streams_stdout_to_the_console_and_keeps_stderr() {
        let (console, captured) = Console::capture();
        let script = "printf 'one\\ntwo\\npartial'; echo oops >&2; exit 4";
        let output = stream("sh", ["-c", script], &console).unwrap();
        assert_eq!(captured.out(), "one\ntwo\npartial");
        assert_eq!(output.code, Some(4));
        assert_eq!(output.stdout, "");
        assert_eq!(output.stderr, "oops\n");
    }

    #[test]
    fn an_invocation_adds_environment_variables() {
        let output = Invocation::new("sh")
            .args(["-c", "printf '%s|%s' \"$SYGEN_TEST_A\" \"$1\""])
            .arg("sh")
            .arg("one arg")
            .env("SYGEN_TEST_A", "a b")
            .run()
            .unwrap();
        assert_eq!(output.stdout, "a b|one arg");
    }

    /// Where a process's standard streams, directory and session are, from `/proc`.
    #[cfg(target_os = "linux")]
    fn process_of(pid: &str) -> (Vec<std::path::PathBuf>, std::path::PathBuf, String, String) {
        let proc = std::path::Path::new("/proc").join(pid);
        let streams = (0..3)
            .map(|fd| std::fs::read_link(proc.join(format!("fd/{fd}"))).unwrap())
            .collect();
        let cwd = std::fs::read_link(proc.join("cwd")).unwrap();
        let stat = std::fs::read_to_string(proc.join("stat")).unwrap();
        // After `pid (comm) state ppid pgrp`, the session.
        let after_comm = stat.rsplit_once(") ").unwrap().1;
        let session = after_comm.split(' ').nth(3).unwrap().to_owned();
        let environ = std::fs::read_to_string(proc.join("environ")).unwrap();
        (streams, cwd, session, environ)
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_detached_start_returns_at_once_and_leaves_a_process_in_a_session_of_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("pid");
        let started = std::time::Instant::now();
        Invocation::new("sh")
            .args([
                "-c",
                "echo $$ > \"$1.tmp\" && mv \"$1.tmp\" \"$1\" && exec sleep 30",
            ])
            .arg("sh")
            .arg(&pid_file)
            .env("SYGEN_TEST_DETACHED", "a b")
            .start_detached()
            .unwrap();
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
        let pid = loop {
            match std::fs::read_to_string(&pid_file) {
                Ok(pid) => break pid.trim().to_owned(),
                Err(_) if started.elapsed() < std::time::Duration::from_secs(10) => {
                    std::thread::sleep(std::time::Duration::from_millis(20))
                }
                Err(e) => panic!("the detached process wrote no pid: {e}"),
            }
        };
        // `exec sleep` has replaced the shell once /proc names it.
        while std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap() != "sleep\n" {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let (streams, cwd, session, environ) = process_of(&pid);
        let _ = run("kill", [&pid]);
        assert_eq!(session, pid, "it leads a session of its own");
        assert_eq!(streams, vec![std::path::PathBuf::from("/dev/null"); 3]);
        assert_eq!(cwd, std::path::PathBuf::from("/"));
        assert!(
            environ
                .split('\0')
                .any(|var| var == "SYGEN_TEST_DETACHED=a b"),
            "{environ:?}"
        );
    }

    #[test]
    fn a_program_that_cannot_start_detached_is_an_error_with_a_hint() {
        let error = Invocation::new("sygen-no-such-tool")
            .start_detached()
            .unwrap_err();
        assert!(error.message.contains("could not run `sygen-no-such-tool`"));
        assert!(error.hint.unwrap().contains("PATH"));
    }

    #[test]
    fn standard_input_is_closed() {
        let output = run("sh", ["-c", "read line; echo \"read=$?\""]).unwrap();
        assert_eq!(output.stdout, "read=1\n");
    }
}
