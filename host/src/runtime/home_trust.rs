//! The sygen home is trusted as the backends are: `sygen run` runs the command `config.toml`
//! names and writes its logs and pid files there. So before it does either, the home, its
//! `config.toml` and its `logs/` must be writable only by the user (or root), and the files it
//! writes there must not be symbolic links: another local user must not be able to choose what
//! sygen runs, nor make it append to a file of theirs choosing.

use std::path::Path;

use super::instance::{RUNTIME_FILE, WORKER_FILE};
use crate::{
    exit::{Exit, Failure},
    home,
    platform::{self, Untrusted},
};

/// The files of the home sygen writes: never through a link.
const WRITTEN: [&str; 3] = ["logs/agent.log", RUNTIME_FILE, WORKER_FILE];

/// Checks `home` as [the module](self) says; answers what is wrong, naming the file, with the
/// fix.
pub fn check(home: &Path) -> Result<(), Untrusted> {
    let config = home::config_file(home);
    // A configuration that is not a regular file is refused by the configuration's own
    // reading, in words of its own.
    let config = std::fs::metadata(&config)
        .is_ok_and(|m| m.is_file())
        .then_some(config);
    for place in [Some(home.to_path_buf()), config, Some(home.join("logs"))]
        .into_iter()
        .flatten()
    {
        if std::fs::symlink_metadata(&place).is_err() {
            continue;
        }
        platform::check_private(&place)?;
    }
    for written in WRITTEN.map(|file| home.join(file)) {
        let link = std::fs::symlink_metadata(&written).is_ok_and(|m| m.file_type().is_symlink());
        if link {
            return Err(Untrusted {
                reason: format!(
                    "{} is a symbolic link, and sygen writes that file itself",
                    written.display()
                ),
                hint: format!("remove the link: `rm {}`", written.display()),
            });
        }
    }
    Ok(())
}

/// What `sygen run` says when it refuses the home.
pub fn refusal(untrusted: Untrusted) -> Failure {
    Failure::new(
        Exit::Failed,
        format!("refusing to run: {}", untrusted.reason),
    )
    .hint(untrusted.hint)
}
