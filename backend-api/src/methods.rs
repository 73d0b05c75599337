//! The methods a backend may answer through `call`: how sygen grows without touching the
//! frozen root module. A backend lists the ones it supports in `capabilities()`; the host asks
//! only for those, and says plainly when a backend is too old for a feature.
//!
//! Each method's answer is a JSON document of one of the types below, shared by the SDK that
//! writes it and the host that reads it.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Answers a JSON object of status properties particular to the service manager, shown by
/// `sygen service status --json` under `details`.
pub const STATUS_DETAILS: &str = "status.details";

/// Answers a [`DryRun`]: what `install_service` would change, changing nothing. The SDK runs
/// the backend's own install with [`crate::sdk::Changes`] recording instead of acting, so a
/// backend supports it by making every change through `cx.changes` and listing it.
pub const INSTALL_DRY_RUN: &str = "install.dry-run";

/// Like [`INSTALL_DRY_RUN`], for `uninstall_service`.
pub const UNINSTALL_DRY_RUN: &str = "uninstall.dry-run";

/// Answers a [`Doctor`]: the backend's own health checks for `sygen doctor`.
pub const DOCTOR: &str = "doctor";

/// Answers a [`Survival`], given a [`SurvivalQuery`]: whether sygen keeps running after
/// logout, after a reboot and on battery, as far as the service manager decides it. `sygen
/// service install` and `sygen doctor` say it, so nobody learns it from a dead agent.
pub const SURVIVAL: &str = "survival";

/// What an operation would change, in order.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DryRun {
    pub changes: Vec<Change>,
}

/// One change an operation makes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Change {
    /// Writes `content` to `path`, replacing what is there.
    Write {
        path: PathBuf,
        /// Unix permission bits, when the backend sets them.
        mode: Option<u32>,
        /// How the bytes on disk encode `content`: `utf-8` or `utf-16le` (with a BOM).
        encoding: String,
        content: String,
    },
    /// Removes the file at `path`.
    Remove { path: PathBuf },
    /// Runs a program; `argv[0]` is the program as the backend names it.
    Run { argv: Vec<String> },
    /// Makes `link` a symbolic link to `target`, replacing what is at `link`. Like
    /// `StartDetached`, newer than the others: a host from before them cannot show a dry run
    /// holding one (it says the backend answered an invalid dry run).
    Symlink { link: PathBuf, target: PathBuf },
    /// Starts a program that outlives the operation, in a session of its own, with `env` added
    /// to its environment.
    StartDetached {
        argv: Vec<String>,
        env: Vec<(String, String)>,
    },
}

/// The answer of [`DOCTOR`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Doctor {
    pub checks: Vec<Check>,
}

/// One health check: what was looked at, how it stands, and what to do about it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Check {
    /// Stable identifier, `<backend>.<what>` for backend checks (`systemd.linger`).
    pub id: String,
    pub status: Status,
    /// One line saying what was found.
    pub message: String,
    /// One line saying how to fix it; set for warnings and failures.
    pub hint: Option<String>,
}

impl Check {
    pub fn pass(id: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(id, Status::Pass, message, None)
    }

    pub fn warn(
        id: impl Into<String>,
        message: impl Into<String>,
        hint: impl Into<String>,
    ) -> Self {
        Self::new(id, Status::Warn, message, Some(hint.into()))
    }

    pub fn fail(
        id: impl Into<String>,
        message: impl Into<String>,
        hint: impl Into<String>,
    ) -> Self {
        Self::new(id, Status::Fail, message, Some(hint.into()))
    }

    fn new(
        id: impl Into<String>,
        status: Status,
        message: impl Into<String>,
        hint: Option<String>,
    ) -> Self {
        Self {
            id: id.into(),
            status,
            message: message.into(),
            hint,
        }
    }
}

/// How a check stands. `Fail` makes `sygen doctor` exit non-zero.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Pass,
    Warn,
    Fail,
}

/// The input of [`SURVIVAL`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SurvivalQuery {
    /// Answer for the service as `install_service` would leave it (what a dry run of install
    /// shows), not as it is now. A service not installed is always answered that way.
    #[serde(default)]
    pub after_install: bool,
}

/// The answer of [`SURVIVAL`]: one line per situation the service manager has a say in.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Survival {
    pub lines: Vec<SurvivalLine>,
}

/// Whether sygen runs in one situation, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SurvivalLine {
    pub situation: Situation,
    pub runs: Runs,
    /// One line saying what happens and why, starting with sygen: "sygen stops when ada logs
    /// out: linger is off for ada".
    pub message: String,
    /// One line saying how to make sygen run then, when there is a way.
    pub fix: Option<String>,
}

impl SurvivalLine {
    pub fn new(situation: Situation, runs: Runs, message: impl Into<String>) -> Self {
        Self {
            situation,
            runs,
            message: message.into(),
            fix: None,
        }
    }

    pub fn with_fix(mut self, fix: impl Into<String>) -> Self {
        self.fix = Some(fix.into());
        self
    }
}

/// A moment that ends or pauses a background program on some platforms.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Situation {
    /// The user logs out (of the last of their sessions).
    Logout,
    /// The machine restarts, and nobody has logged in yet.
    Reboot,
    /// The machine runs on battery, or goes to sleep.
    BatteryOrSleep,
}

/// Whether sygen runs in a [`Situation`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Runs {
    Yes,
    No,
    /// Only under a condition the line's message names.
    OnlyIf,
}
