//! Running the platform tool (`systemctl`, `launchctl`, `schtasks.exe`, …): the one place a
//! backend starts a process, so every invocation is traced and every failure reads the same.

use std::{
    ffi::OsStr,
    io::{BufRead, BufReader, Read},
    process::{Command, Stdio},
};

use super::{Console, Error, Result};

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
    let mut command = command(program, args);
    let output = command
        .output()
        .map_err(|error| start_failure(program, error))?;
    let output = Output {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    };
    tracing::debug!(code = ?output.code, "`{program}` finished");
    Ok(output)
}

/// Like [`run`], but passes stdout to the console line by line as it arrives (for following
/// logs), so the answer's `stdout` is empty. Returns when the program exits.
pub fn stream<I, S>(program: &str, args: I, console: &Console) -> Result<Output>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut child = command(program, args)
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

fn command<I, S>(program: &str, args: I) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut command = Command::new(program);
    command.args(args).stdin(Stdio::null());
    tracing::debug!("running {command:?}");
    command
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
    fn standard_input_is_closed() {
        let output = run("sh", ["-c", "read line; echo \"read=$?\""]).unwrap();
        assert_eq!(output.stdout, "read=1\n");
    }
}
