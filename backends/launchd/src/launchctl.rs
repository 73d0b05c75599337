//! What the backend runs: `launchctl`, in one place. Queries (`print`, `list`) run as they
//! are; every call that changes launchd's state goes through [`Changes`], so a dry run lists it.
//!
//! The domain subcommands (`enable`, `bootstrap`, `kickstart`, `kill`, `bootout`, `print`) in
//! `gui/<uid>`, or in `user/<uid>` when there is no GUI login (over SSH: "Could not find domain
//! for user gui"); the deprecated `load -w`, `unload -w`, `start`, `stop`, `list` only where the
//! domain subcommands do not exist. Known behaviour handled here:
//!
//! - `bootout` is asynchronous: before loading again, wait until `print` no longer finds the
//!   label (exit 113), and retry a `Bootstrap failed: 5` once after that;
//! - a label disabled by an old `unload -w` or `disable` cannot be bootstrapped: always
//!   `enable` first, never `disable`;
//! - `Boot-out failed: 3: No such process` means it was not loaded: fine when unloading;
//! - `print` output is not an API: `state`, `pid` and `last exit code` are read defensively and
//!   missing ones are unknown; `list` reports `LastExitStatus` as a raw wait status.

use std::{path::Path, time::Duration};

use sygen_backend_api::sdk::{
    command::{self, Output},
    user,
    wait::{self, Look},
    Changes, Error, Result,
};

/// `print` answers this when the service is not loaded.
const NOT_FOUND: i32 = 113;
/// `bootout` answers this when the service was not loaded.
const NO_SUCH_PROCESS: i32 = 3;
/// launchd's catch-all refusal, also what a still-unloading label gets from `bootstrap`.
const IO_ERROR: i32 = 5;

/// How long `bootout` may take to let go of the label.
const UNLOAD_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs `launchctl ARGS` to read state.
fn launchctl(args: &[&str]) -> Result<Output> {
    command::run("launchctl", args).map_err(cannot_run)
}

/// Runs `launchctl ARGS` to change state, through `changes`.
fn change(changes: &Changes, args: &[&str]) -> Result<Output> {
    changes.run("launchctl", args).map_err(cannot_run)
}

fn cannot_run(error: Error) -> Error {
    Error::unavailable(format!("cannot run launchctl: {}", error.message))
        .with_hint("sygen's launchd backend needs macOS's /bin/launchctl on PATH")
}

fn is_unknown_subcommand(output: &Output) -> bool {
    let text = format!("{}{}", output.stderr, output.stdout);
    text.contains("Unrecognized subcommand") || text.contains("unknown subcommand")
}

/// What launchd says about a loaded service; `None` fields were not in its answer.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct JobState {
    pub state: Option<String>,
    pub pid: Option<u32>,
    pub last_exit: Option<String>,
}

/// Reads `launchctl print <service>` output, tolerating any layout it does not know.
fn parse_print(text: &str) -> JobState {
    let mut job = JobState::default();
    for line in text.lines() {
        let Some((key, value)) = line.trim().split_once(" = ") else {
            continue;
        };
        let value = value.trim();
        match key {
            "state" if job.state.is_none() => job.state = Some(value.to_owned()),
            "pid" if job.pid.is_none() => job.pid = value.parse().ok(),
            "last exit code" => job.last_exit = Some(value.to_owned()),
            "last terminating signal" => job.last_exit = Some(format!("signal {value}")),
            _ => {}
        }
    }
    job
}

/// Reads `launchctl list <label>` output: `"PID" = 12;` and the raw wait status in
/// `"LastExitStatus" = 768;` (exit 3).
fn parse_list(text: &str) -> JobState {
    let field = |name: &str| {
        text.lines().find_map(|line| {
            let rest = line.trim().strip_prefix(&format!("\"{name}\" = "))?;
            rest.trim_end_matches(';').trim().parse::<i64>().ok()
        })
    };
    let pid = field("PID").and_then(|p| u32::try_from(p).ok());
    let last_exit = field("LastExitStatus").map(|status| match (status & 0x7f, status >> 8) {
        (0, code) => code.to_string(),
        (signal, _) => format!("signal {signal}"),
    });
    JobState {
        state: Some(
            if pid.is_some() {
                "running"
            } else {
                "not running"
            }
            .to_owned(),
        ),
        pid,
        last_exit,
    }
}

/// The way to talk to launchd on this machine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mode {
    /// The domain subcommands, in `gui/<uid>` or `user/<uid>`.
    Domain(String),
    /// launchctl 1: `load`, `unload`, `start`, `stop`, `list`.
    Legacy,
}

pub struct Launchctl<'a> {
    pub mode: Mode,
    /// Why there is no `gui/<uid>` domain (launchctl's answer), when `user/<uid>` is used.
    pub no_gui: Option<String>,
    label: &'a str,
    plist: &'a Path,
}

impl<'a> Launchctl<'a> {
    /// Finds the domain to use: the GUI login's, else the user's; or the legacy subcommands.
    pub fn detect(label: &'a str, plist: &'a Path) -> Result<Self> {
        let uid = user::uid();
        let gui = format!("gui/{uid}");
        let probe = launchctl(&["print", &gui])?;
        let (mode, no_gui) = if probe.success() {
            (Mode::Domain(gui), None)
        } else if is_unknown_subcommand(&probe) {
            (Mode::Legacy, None)
        } else {
            // No GUI login (e.g. over SSH): the user domain exists without one.
            let why = probe.first_message_line().to_owned();
            sygen_backend_api::tracing::debug!("no {gui} domain ({why}); using user/{uid}");
            (Mode::Domain(format!("user/{uid}")), Some(why))
        };
        Ok(Self {
            mode,
            no_gui,
            label,
            plist,
        })
    }

    /// launchd's answer when it does not know the domain in use; `None` when it does.
    pub fn domain_refusal(&self) -> Result<Option<String>> {
        let Mode::Domain(domain) = &self.mode else {
            return Ok(None);
        };
        let output = launchctl(&["print", domain])?;
        Ok((!output.success()).then(|| output.first_message_line().to_owned()))
    }

    fn target(&self, domain: &str) -> String {
        format!("{domain}/{}", self.label)
    }

    /// Where the service is loaded, for messages.
    pub fn describe(&self) -> String {
        match &self.mode {
            Mode::Domain(domain) => self.target(domain),
            Mode::Legacy => format!("{} (legacy launchctl)", self.label),
        }
    }

    fn plist_arg(&self) -> Result<&str> {
        self.plist
            .to_str()
            .ok_or_else(|| Error::failed("the plist path is not valid UTF-8"))
    }

    /// The service's state, or `None` when launchd has not loaded it.
    pub fn state(&self) -> Result<Option<JobState>> {
        let (output, parse): (Output, fn(&str) -> JobState) = match &self.mode {
            Mode::Domain(domain) => (launchctl(&["print", &self.target(domain)])?, parse_print),
            Mode::Legacy => (launchctl(&["list", self.label])?, parse_list),
        };
        match output.code {
            Some(0) => Ok(Some(parse(&output.stdout))),
            Some(NOT_FOUND) => Ok(None),
            _ => Err(output.failure(&format!("launchctl print {}", self.describe()))),
        }
    }

    /// Loads the plist (which starts the service: `RunAtLoad`), enabling the label first.
    pub fn load(&self, changes: &Changes) -> Result<()> {
        let plist = self.plist_arg()?;
        let Mode::Domain(domain) = &self.mode else {
            let output = change(changes, &["load", "-w", plist])?;
            return if output.success() {
                Ok(())
            } else {
                Err(self.refused(&output, "launchctl load -w"))
            };
        };
        let enabled = change(changes, &["enable", &self.target(domain)])?;
        if !enabled.success() {
            return Err(enabled.failure(&format!("launchctl enable {}", self.target(domain))));
        }
        let mut output = change(changes, &["bootstrap", domain, plist])?;
        if output.code == Some(IO_ERROR) {
            // Most often the label is still being unloaded: wait for it, then once more.
            self.wait_until_unloaded()?;
            output = change(changes, &["bootstrap", domain, plist])?;
        }
        if output.success() {
            Ok(())
        } else {
            Err(self.refused(&output, &format!("launchctl bootstrap {domain}")))
        }
    }

    fn refused(&self, output: &Output, command: &str) -> Error {
        let root = match &self.mode {
            Mode::Domain(domain) => {
                format!("sudo launchctl bootstrap {domain} {}", self.plist.display())
            }
            Mode::Legacy => format!("sudo launchctl load {}", self.plist.display()),
        };
        output.failure(command).with_hint(format!(
            "launchd refused {}; `{root}` shows its reason",
            self.label
        ))
    }

    /// Unloads the service (stopping it) and waits until launchd has let go of the label (not
    /// in a dry run, where it stays loaded). Not loaded is fine.
    pub fn unload(&self, changes: &Changes) -> Result<()> {
        let Mode::Domain(domain) = &self.mode else {
            // `-w` matches how it was loaded; a label not loaded is what we want anyway.
            change(changes, &["unload", "-w", self.plist_arg()?])?;
            return Ok(());
        };
        let target = self.target(domain);
        let output = change(changes, &["bootout", &target])?;
        if !matches!(output.code, Some(0) | Some(NO_SUCH_PROCESS)) {
            return Err(output.failure(&format!("launchctl bootout {target}")));
        }
        if changes.is_live() {
            self.wait_until_unloaded()?;
        }
        Ok(())
    }

    fn wait_until_unloaded(&self) -> Result<()> {
        let unloaded = wait::until(UNLOAD_TIMEOUT, || {
            Ok(match self.state()? {
                Some(_) => Look::NotYet(()),
                None => Look::Done,
            })
        })?;
        unloaded.map_err(|()| {
            Error::failed(format!(
                "launchd still has {} loaded {}s after it was told to unload it",
                self.describe(),
                UNLOAD_TIMEOUT.as_secs()
            ))
        })
    }

    /// Starts the loaded service if it is not running.
    pub fn start(&self, changes: &Changes) -> Result<()> {
        let (command, output) = match &self.mode {
            Mode::Domain(domain) => {
                let target = self.target(domain);
                (
                    format!("launchctl kickstart {target}"),
                    change(changes, &["kickstart", &target])?,
                )
            }
            Mode::Legacy => (
                format!("launchctl start {}", self.label),
                change(changes, &["start", self.label])?,
            ),
        };
        if output.success() {
            Ok(())
        } else {
            Err(output.failure(&command))
        }
    }

    /// Ends the running process with SIGTERM, on which `sygen run` exits 0; with `KeepAlive =
    /// { SuccessfulExit = false }` launchd then leaves it stopped until the next start or
    /// login. The label stays enabled and loaded.
    pub fn stop(&self, changes: &Changes) -> Result<()> {
        let (command, output) = match &self.mode {
            Mode::Domain(domain) => {
                let target = self.target(domain);
                (
                    format!("launchctl kill SIGTERM {target}"),
                    change(changes, &["kill", "SIGTERM", &target])?,
                )
            }
            Mode::Legacy => (
                format!("launchctl stop {}", self.label),
                change(changes, &["stop", self.label])?,
            ),
        };
        if !output.success() && output.code != Some(NO_SUCH_PROCESS) {
            return Err(output.failure(&command));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_print_defensively() {
        let text = "gui/501/dev.sygen = {\n\tactive count = 1\n\tstate = running\n\n\
                    \tprogram = /x/sygen\n\tpid = 4242\n\tlast exit code = (never exited)\n\
                    \tendpoints = {\n\t\t\"x\" = {\n\t\t\tstate = active\n\t\t}\n\t}\n}\n";
        assert_eq!(
            parse_print(text),
            JobState {
                state: Some("running".into()),
                pid: Some(4242),
                last_exit: Some("(never exited)".into()),
            }
        );
        assert_eq!(parse_print("something new = {\n}\n"), JobState::default());
        let killed =
            parse_print("\tstate = not running\n\tlast terminating signal = Terminated: 15\n");
        assert_eq!(killed.last_exit.as_deref(), Some("signal Terminated: 15"));
        assert_eq!(killed.pid, None);
    }

    #[test]
    fn decodes_the_raw_wait_status_of_list() {
        let text =
            "{\n\t\"Label\" = \"dev.sygen\";\n\t\"LastExitStatus\" = 768;\n\t\"PID\" = 77;\n};\n";
        assert_eq!(
            parse_list(text),
            JobState {
                state: Some("running".into()),
                pid: Some(77),
                last_exit: Some("3".into()),
            }
        );
        let killed = parse_list("{\n\t\"LastExitStatus\" = 15;\n};\n");
        assert_eq!(killed.last_exit.as_deref(), Some("signal 15"));
        assert_eq!(killed.state.as_deref(), Some("not running"));
    }
}
