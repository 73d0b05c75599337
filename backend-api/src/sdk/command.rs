//! Running the platform tool (`systemctl`, `launchctl`, `schtasks.exe`, …): the one place a
//! backend starts a process, so every invocation is traced and every failure reads the same.

use std::{
    ffi::OsStr,
    process::{Command, Stdio},
};

use super::{Error, Result};

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
    let mut command = Command::new(program);
    command.args(args).stdin(Stdio::null());
    tracing::debug!("running {command:?}");
    let output = command.output().map_err(|error| {
        let failure = Error::failed(format!("could not run `{program}`: {error}"));
        if error.kind() == std::io::ErrorKind::NotFound {
            failure.with_hint(format!("install `{program}` or add its directory to PATH"))
        } else {
            failure
        }
    })?;
    let output = Output {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    };
    tracing::debug!(code = ?output.code, "`{program}` finished");
    Ok(output)
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
    }

    #[test]
    fn a_missing_program_is_an_error_with_a_hint() {
        let error = run("sygen-no-such-tool", ["x"]).unwrap_err();
        assert!(error.message.contains("could not run `sygen-no-such-tool`"));
        assert!(error.hint.unwrap().contains("PATH"));
    }

    #[test]
    fn standard_input_is_closed() {
        let output = run("sh", ["-c", "read line; echo \"read=$?\""]).unwrap();
        assert_eq!(output.stdout, "read=1\n");
    }
}
