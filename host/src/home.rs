//! The sygen home: `$SYGEN_HOME`, else `~/.sygen`. Everything sygen keeps is under it
//! (config.toml, logs/, backends/, cache/, trusted-keys/, the pid files), so every module that
//! reads or writes there asks here where it is.

use std::{
    env,
    path::{Path, PathBuf},
};

use anyhow::{Context as _, Result};

use crate::exit::{Exit, Failure};

/// Where sygen keeps its state: `$SYGEN_HOME`, else `~/.sygen`; always absolute.
pub fn sygen_home() -> Result<PathBuf> {
    match env::var_os("SYGEN_HOME").filter(|v| !v.is_empty()) {
        Some(home) => std::path::absolute(PathBuf::from(home))
            .context("could not make $SYGEN_HOME an absolute path"),
        None => Ok(user_home()?.join(".sygen")),
    }
}

/// The user's home directory.
pub fn user_home() -> Result<PathBuf> {
    dirs::home_dir().ok_or_else(|| {
        Failure::new(Exit::Failed, "could not determine your home directory")
            .hint("set HOME")
            .into()
    })
}

/// The configuration file of the sygen home `home`.
pub fn config_file(home: &Path) -> PathBuf {
    home.join("config.toml")
}
