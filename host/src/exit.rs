//! Exit codes and the one-line error every failure is reported as.

use std::fmt;

/// The process exit codes sygen documents. Usage errors (2) come from clap.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Exit {
    /// The operation failed.
    Failed = 1,
    /// The service is not installed.
    NotInstalled = 3,
    /// No backend library could be loaded or chosen.
    NoBackend = 4,
}

/// A failure with a known exit code, message and hint.
#[derive(Clone, Debug)]
pub struct Failure {
    pub exit: Exit,
    pub message: String,
    pub hint: Option<String>,
    /// When the failure is a backend's: what it said, as it said it.
    pub backend: Option<BackendSaid>,
}

/// A backend's failure in its own terms: its error kind (what a caller decides on) and its
/// message without the backend's name, which the failure's message starts with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackendSaid {
    pub kind: sygen_backend_api::ErrorKind,
    pub message: String,
}

impl Failure {
    pub fn new(exit: Exit, message: impl Into<String>) -> Self {
        Self {
            exit,
            message: message.into(),
            hint: None,
            backend: None,
        }
    }

    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Failure {}

/// What the single line printed on stderr for `error` says after `error: `, and the exit code
/// that goes with it.
pub fn report(error: &anyhow::Error) -> (String, u8) {
    let (exit, message, hint) = match error.downcast_ref::<Failure>() {
        Some(failure) => (failure.exit, failure.message.clone(), failure.hint.clone()),
        None => (Exit::Failed, format!("{error:#}"), None),
    };
    let mut line = one_line(&message);
    if let Some(hint) = hint {
        line.push_str(&format!(" (hint: {})", one_line(&hint)));
    }
    (line, exit as u8)
}

/// `text` on one line: every run of white space, line breaks included, one space.
pub fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_reports_its_exit_code_and_hint_on_one_line() {
        let error = anyhow::Error::new(
            Failure::new(Exit::NotInstalled, "sygen is\nnot installed").hint("run  `x`"),
        );
        assert_eq!(
            report(&error),
            ("sygen is not installed (hint: run `x`)".into(), 3)
        );
    }

    #[test]
    fn any_other_error_is_a_failure_with_its_context() {
        let error = anyhow::anyhow!("disk full").context("writing the unit");
        assert_eq!(report(&error), ("writing the unit: disk full".into(), 1));
    }
}
