//! What the backend runs: `openrc --version`, `rc-service` and `rc-update`, in one place.
//!
//! OpenRC gained per-user services in 0.60. Before that (Debian bookworm ships 0.45) sygen can
//! only be a system service, in `/etc/init.d`, started by root and run as the user. State is
//! read from `rc-service <name> status` exit codes, never from its words. Queries run as they
//! are; what changes OpenRC's state goes through [`Changes`], so a dry run lists it.

use std::path::{Path, PathBuf};

use sygen_backend_api::sdk::{
    command::{self, Output},
    Changes, Error, Result,
};

/// The first OpenRC with user services (`rc-service --user`).
const USER_SERVICES_SINCE: (u32, u32) = (0, 60);

/// Which kind of OpenRC service sygen is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mode {
    /// `/etc/init.d/<name>`, managed by root, run as `command_user`.
    System,
    /// `~/.config/rc/init.d/<name>`, managed with `--user`.
    User { config_home: PathBuf },
}

impl Mode {
    /// The mode OpenRC `version` supports.
    pub fn for_version(version: (u32, u32), config_home: PathBuf) -> Self {
        if version >= USER_SERVICES_SINCE {
            Mode::User { config_home }
        } else {
            Mode::System
        }
    }

    pub fn script_dir(&self) -> PathBuf {
        match self {
            Mode::System => PathBuf::from("/etc/init.d"),
            Mode::User { config_home } => config_home.join("rc/init.d"),
        }
    }

    fn user_flag(&self) -> Option<&'static str> {
        match self {
            Mode::System => None,
            Mode::User { .. } => Some("--user"),
        }
    }
}

/// `major.minor` from `openrc --version` ("openrc (OpenRC) 0.45.2").
pub fn parse_version(text: &str) -> Option<(u32, u32)> {
    let version = text
        .split_whitespace()
        .find(|w| w.starts_with(|c: char| c.is_ascii_digit()))?;
    let mut parts = version.split('.');
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

pub fn version() -> Result<(u32, u32)> {
    let output = command::run("openrc", ["--version"])?;
    parse_version(&output.stdout).ok_or_else(|| {
        Error::failed(format!(
            "cannot read the OpenRC version from {:?}",
            output.stdout.trim()
        ))
    })
}

/// What `rc-service <name> status` says, by exit code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    Started,
    Stopped,
    Crashed,
    /// Another code (starting, stopping, inactive, …), shown as is.
    Other(i32),
}

impl State {
    fn from_code(code: Option<i32>) -> Self {
        match code {
            Some(0) => State::Started,
            Some(3) => State::Stopped,
            Some(32) => State::Crashed,
            Some(other) => State::Other(other),
            None => State::Other(-1),
        }
    }

    pub fn describe(self) -> String {
        match self {
            State::Started => "started".into(),
            State::Stopped => "stopped".into(),
            State::Crashed => "crashed".into(),
            State::Other(code) => format!("state code {code}"),
        }
    }
}

/// Runs `program [--user] ARGS` to read state.
fn rc(program: &str, mode: &Mode, args: &[&str]) -> Result<Output> {
    command::run(program, with_mode(mode, args))
}

/// Runs `program [--user] ARGS` to change state, through `changes`; fails unless it exits 0.
fn rc_change(changes: &Changes, program: &str, mode: &Mode, args: &[&str]) -> Result<()> {
    let output = changes.run(program, with_mode(mode, args))?;
    ok(output, &format!("{program} {}", args.join(" ")))
}

fn with_mode<'a>(mode: &Mode, args: &'a [&'a str]) -> impl Iterator<Item = &'a str> {
    mode.user_flag().into_iter().chain(args.iter().copied())
}

fn ok(output: Output, command: &str) -> Result<()> {
    if output.success() {
        Ok(())
    } else {
        Err(output.failure(command))
    }
}

pub fn status(mode: &Mode, name: &str) -> Result<State> {
    Ok(State::from_code(
        rc("rc-service", mode, &[name, "status"])?.code,
    ))
}

/// `rc-service <name> start|stop|restart`.
pub fn service(changes: &Changes, mode: &Mode, name: &str, verb: &str) -> Result<()> {
    rc_change(changes, "rc-service", mode, &[name, verb])
}

/// Adds the service to the default runlevel (again is fine).
pub fn enable(changes: &Changes, mode: &Mode, name: &str) -> Result<()> {
    rc_change(changes, "rc-update", mode, &["add", name, "default"])
}

/// Whether the service is in the default runlevel: its link there exists (even dangling).
pub fn in_default_runlevel(mode: &Mode, name: &str) -> bool {
    let runlevels = match mode {
        Mode::System => PathBuf::from("/etc/runlevels"),
        Mode::User { config_home } => config_home.join("rc/runlevels"),
    };
    runlevels
        .join("default")
        .join(name)
        .symlink_metadata()
        .is_ok()
}

/// Removes the service from the default runlevel; not being in it is fine.
pub fn disable(changes: &Changes, mode: &Mode, name: &str, script: &Path) -> Result<()> {
    if !in_default_runlevel(mode, name) {
        return Ok(());
    }
    let output = changes.run("rc-update", with_mode(mode, &["del", name, "default"]))?;
    ok(
        output,
        &format!("rc-update del {name} default ({})", script.display()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_version_and_picks_the_mode() {
        assert_eq!(
            parse_version("openrc (OpenRC [DOCKER]) 0.45.2\n"),
            Some((0, 45))
        );
        assert_eq!(parse_version("openrc (OpenRC) 0.62\n"), Some((0, 62)));
        assert_eq!(parse_version("nonsense"), None);
        let home = PathBuf::from("/home/ada/.config");
        assert_eq!(Mode::for_version((0, 45), home.clone()), Mode::System);
        assert_eq!(
            Mode::for_version((0, 60), home.clone()).script_dir(),
            PathBuf::from("/home/ada/.config/rc/init.d")
        );
        assert_eq!(Mode::System.script_dir(), PathBuf::from("/etc/init.d"));
    }

    #[test]
    fn states_come_from_exit_codes() {
        assert_eq!(State::from_code(Some(0)), State::Started);
        assert_eq!(State::from_code(Some(3)), State::Stopped);
        assert_eq!(State::from_code(Some(32)), State::Crashed);
        assert_eq!(State::from_code(Some(4)).describe(), "state code 4");
    }
}
