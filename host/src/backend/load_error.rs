//! Why a backend file is not loaded: the one refusal every check answers (trust, signature,
//! the library itself), as the registry caches it and its child reports it.

use std::path::Path;

use crate::exit::{Exit, Failure};

/// Why a file did not load, in one line, with what to do about it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoadError {
    pub reason: String,
    pub hint: String,
    /// The reason lies in the file's bytes (see `registry`): true until the file changes.
    pub lasting: bool,
}

pub const NOT_A_BACKEND_HINT: &str =
    "pass a sygen backend library (libsygen_<name>.so, .dylib or sygen_<name>.dll)";

impl LoadError {
    pub fn new(reason: impl Into<String>, hint: impl Into<String>) -> Self {
        Self {
            reason: reason.into(),
            hint: hint.into(),
            lasting: false,
        }
    }

    pub fn lasting(self) -> Self {
        Self {
            lasting: true,
            ..self
        }
    }

    /// The failure reported when the backend the user named does not load.
    pub fn into_failure(self, path: &Path) -> Failure {
        Failure::new(
            Exit::NoBackend,
            format!("backend {}: {}", path.display(), self.reason),
        )
        .hint(self.hint)
    }
}
