//! What every command that uses a backend starts from: the sygen home, the backend the user
//! named (if any) and what config.toml says about backends, worked out once per command.

use std::path::{Path, PathBuf};

use anyhow::Result;
use sygen_backend_api::ServiceSpec;

use crate::{
    backend::{
        select::{self, Survey},
        Backend, Choice, Preferences,
    },
    config::Config,
    description,
    exit::Failure,
    home,
};

pub struct Context<'a> {
    pub home: PathBuf,
    pub choice: Choice<'a>,
    pub preferences: Preferences,
}

impl<'a> Context<'a> {
    /// `backend_file` is `--backend`, if given.
    pub fn new(backend_file: Option<&'a Path>) -> Result<Self> {
        let home = home::sygen_home()?;
        let preferences = Config::backend_preferences(&home);
        Ok(Self {
            home,
            choice: backend_file.map_or(Choice::Default, Choice::Flag),
            preferences,
        })
    }

    /// Loads the backend to use (only that one).
    pub fn backend(&self) -> Result<Backend, Failure> {
        select::select(self.choice, &self.home, &self.preferences)
    }

    /// Every backend file found, described; with `available`, each asked whether its service
    /// manager answers.
    pub fn survey(&self, available: bool) -> Survey {
        select::survey(self.choice, &self.home, &self.preferences, available)
    }

    /// The backend to use and the service description it is given.
    pub fn backend_and_spec(&self) -> Result<(Backend, ServiceSpec)> {
        let backend = self.backend()?;
        tracing::debug!(
            "using the {} backend at {}",
            backend.name,
            backend.path.display()
        );
        Ok((backend, description::build()?.to_spec()))
    }
}
