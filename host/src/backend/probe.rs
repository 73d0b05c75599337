//! The describing child's side (`sygen service backend describe [--available] <file>…`):
//! loads each file in turn and answers what it is, one [`Message`] per line on stdout, as soon
//! as it knows. A crash or an `exit()` inside a call is reported by the boundary as a message
//! of its own. The child stops after a call that did not answer (the process is then not to
//! be trusted with more); the parent (`registry`) starts another for the files left.

use std::{
    io::Write as _,
    path::{Path, PathBuf},
};

use sygen_backend_api::ServiceSpec;

use super::{
    boundary, library,
    protocol::{Answer, Message, Unanswered},
    select::Preferences,
};
use crate::exit::Failure;

/// Describes `files`, each configured as `preferences` say; with `available`, also asks each
/// whether its service manager answers about `service`.
pub fn describe_here(
    files: &[PathBuf],
    available: bool,
    preferences: &Preferences,
    service: Result<ServiceSpec, Failure>,
) -> std::io::Result<()> {
    boundary::report_as_messages();
    for file in files {
        let answer = describe(file, available, preferences, &service);
        let json =
            serde_json::to_string(&Message::Answer(answer)).map_err(std::io::Error::other)?;
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "{json}")?;
        stdout.flush()?;
        if boundary::stuck() {
            break;
        }
    }
    Ok(())
}

fn describe(
    file: &Path,
    available: bool,
    preferences: &Preferences,
    service: &Result<ServiceSpec, Failure>,
) -> Answer {
    let loaded = library::load(file).map(|mut backend| {
        backend.configure(&preferences.settings, &preferences.config_file);
        backend
    });
    let answers_available = match (&loaded, available) {
        (Ok(backend), true) => Some(
            service
                .clone()
                .and_then(|spec| backend.is_service_available(&spec))
                .map_err(Unanswered::from),
        ),
        _ => None,
    };
    Answer {
        file: file.to_owned(),
        described: loaded.map(|backend| backend.described()),
        available: answers_available,
    }
}
