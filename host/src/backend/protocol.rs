//! What the describing child (`probe`) tells its parent (`registry`): one JSON line per
//! message on its stdout, decoded into these types, never words parsed back.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{boundary::Ended, identity::Described, load_error::LoadError};
use crate::exit::{Exit, Failure};

/// One line of the child's output.
#[derive(Debug, Deserialize, Serialize)]
#[serde(untagged)]
pub enum Message {
    /// What one file is.
    Answer(Answer),
    /// A call into the file being described ended the process (written by the boundary's
    /// handlers, see `boundary::report_as_messages`).
    Ended(Ended),
}

/// What the child answers about one file.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Answer {
    pub file: PathBuf,
    pub described: Result<Described, LoadError>,
    /// Whether its service manager answers, when asked (`--available`).
    pub available: Option<Result<bool, Unanswered>>,
}

/// Why a backend could not say whether its service manager answers.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Unanswered {
    pub message: String,
    pub hint: Option<String>,
}

impl From<Failure> for Unanswered {
    fn from(failure: Failure) -> Self {
        Self {
            message: failure.message,
            hint: failure.hint,
        }
    }
}

impl From<Unanswered> for Failure {
    fn from(unanswered: Unanswered) -> Self {
        let failure = Failure::new(Exit::Failed, unanswered.message);
        match unanswered.hint {
            Some(hint) => failure.hint(hint),
            None => failure,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::boundary::Ending;

    #[test]
    fn answers_and_endings_are_told_apart() {
        let answer = r#"{"file":"/b/x.so","described":{"Err":{"reason":"empty file","hint":"h","lasting":false}},"available":null}"#;
        let Message::Answer(answer) = serde_json::from_str(answer).unwrap() else {
            panic!("not an answer");
        };
        assert_eq!(answer.described.unwrap_err().reason, "empty file");
        let ended = r#"{"call":"loading","ending":{"crashed":"SIGSEGV"}}"#;
        let Message::Ended(ended) = serde_json::from_str(ended).unwrap() else {
            panic!("not an ending");
        };
        assert_eq!(ended.ending, Ending::Crashed("SIGSEGV".into()));
        assert!(serde_json::from_str::<Message>(r#"{"call":"loading"}"#).is_err());
    }
}
