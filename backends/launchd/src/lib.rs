//! The launchd backend: runs sygen as a Launch Agent (`libsygen_launchd.dylib` on macOS; on
//! Linux it builds as an `.so` and is tested against a launchctl simulator).
//!
//! - [`plist`]: what it writes, `~/Library/LaunchAgents/dev.sygen.plist`;
//! - [`launchctl`]: what it runs, the domain subcommands (legacy ones where those are missing);
//! - below: the nine operations gluing them;
//! - [`doctor`]: its checks for `sygen doctor`;
//! - [`survival`]: what its agent outlives (nothing of logout or reboot: it is a login's).
//!
//! Stopping: `stop` sends SIGTERM through `launchctl kill`; `sygen run` then stops its worker
//! and exits 0, and `KeepAlive = { SuccessfulExit = false }` does not restart a clean exit, so
//! the agent stays stopped, still enabled and loaded, until `sygen service start` or the next
//! login. Nothing is ever disabled, so an install or start always works afterwards.

// Unix only: launchd is macOS's, the simulator runs on Linux, and who the user is comes from
// `sdk::user`, which Windows has no uid for.
#![cfg(unix)]

mod doctor;
mod launchctl;
mod plist;
mod survival;

use std::{path::PathBuf, time::Duration};

use sygen_backend_api::{
    methods::{
        Check, SurvivalLine, SurvivalQuery, DOCTOR, INSTALL_DRY_RUN, SURVIVAL, UNINSTALL_DRY_RUN,
    },
    sdk::{
        self,
        wait::{self, Look},
        Backend, Context, Error, Info, Result,
    },
};

use crate::launchctl::{JobState, Launchctl};

/// How long a freshly loaded or started agent has to show a running process.
const START_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a stopped agent has to end.
const STOP_TIMEOUT: Duration = Duration::from_secs(20);

#[derive(Default)]
pub struct Launchd;

fn plist_path(cx: &Context) -> Result<PathBuf> {
    Ok(cx
        .user_home()?
        .join("Library/LaunchAgents")
        .join(format!("{}.plist", cx.service.label)))
}

fn require_installed(cx: &Context) -> Result<PathBuf> {
    let path = plist_path(cx)?;
    if path.exists() {
        Ok(path)
    } else {
        Err(
            Error::not_installed(format!("sygen is not installed: no {}", path.display()))
                .with_hint("run `sygen service install`"),
        )
    }
}

/// Waits until `done` holds for launchd's view of the agent, or fails saying what it is.
fn wait_for(
    ctl: &Launchctl,
    timeout: Duration,
    what: &str,
    done: impl Fn(&Option<JobState>) -> bool,
) -> Result<()> {
    let waited = wait::until(timeout, || {
        let state = ctl.state()?;
        Ok(if done(&state) {
            Look::Done
        } else {
            Look::NotYet(state)
        })
    })?;
    waited.map_err(|state| {
        let last_exit = state
            .and_then(|s| s.last_exit)
            .unwrap_or_else(|| "unknown".into());
        Error::service_failed(format!(
            "{} did not {what} within {}s (last exit code {last_exit})",
            ctl.describe(),
            timeout.as_secs()
        ))
        .with_hint("`sygen service logs` and ~/.sygen/logs/service.err show why")
    })
}

fn is_running(state: &Option<JobState>) -> bool {
    state.as_ref().is_some_and(|s| s.pid.is_some())
}

impl Backend for Launchd {
    const INFO: Info = Info {
        name: "launchd",
        version: env!("CARGO_PKG_VERSION"),
        platform: "macos",
        description: "Runs sygen as a launchd Launch Agent",
    };

    fn capabilities(&self) -> Vec<String> {
        [INSTALL_DRY_RUN, UNINSTALL_DRY_RUN, DOCTOR, SURVIVAL]
            .map(str::to_owned)
            .to_vec()
    }

    fn is_service_available(&self, _cx: &Context) -> Result<bool> {
        Ok(sdk::find_executable("launchctl").is_some())
    }

    fn is_service_installed(&self, cx: &Context) -> Result<bool> {
        Ok(plist_path(cx)?.exists())
    }

    fn is_service_running(&self, cx: &Context) -> Result<bool> {
        let path = plist_path(cx)?;
        let ctl = Launchctl::detect(&cx.service.label, &path)?;
        Ok(is_running(&ctl.state()?))
    }

    fn install_service(&self, cx: &Context) -> Result<()> {
        let path = plist_path(cx)?;
        let xml = plist::render(&cx.service)?;
        let changes = &cx.changes;
        changes.create_dir_all(&cx.service.logs_dir)?;
        let ctl = Launchctl::detect(&cx.service.label, &path)?;
        if path.exists() || ctl.state()?.is_some() {
            ctl.unload(changes)?;
            cx.console
                .println(&format!("unloaded the previous {}", ctl.describe()));
        }
        changes.write(&path, &xml, Some(0o644))?;
        cx.console.println(&format!("wrote {}", path.display()));
        ctl.load(changes)?;
        if changes.is_live() {
            wait_for(&ctl, START_TIMEOUT, "start", is_running)?;
        }
        cx.console
            .println(&format!("loaded and started {}", ctl.describe()));
        Ok(())
    }

    fn start_service(&self, cx: &Context) -> Result<()> {
        let path = require_installed(cx)?;
        let ctl = Launchctl::detect(&cx.service.label, &path)?;
        if ctl.state()?.is_none() {
            ctl.load(&cx.changes)?;
        } else {
            ctl.start(&cx.changes)?;
        }
        wait_for(&ctl, START_TIMEOUT, "start", is_running)
    }

    fn stop_service(&self, cx: &Context) -> Result<()> {
        let path = require_installed(cx)?;
        let ctl = Launchctl::detect(&cx.service.label, &path)?;
        if is_running(&ctl.state()?) {
            ctl.stop(&cx.changes)?;
            wait_for(&ctl, STOP_TIMEOUT, "stop", |s| !is_running(s))?;
        }
        cx.console.println(&format!(
            "{} stays stopped until `sygen service start` or the next login",
            ctl.describe()
        ));
        Ok(())
    }

    fn uninstall_service(&self, cx: &Context) -> Result<()> {
        let path = require_installed(cx)?;
        let ctl = Launchctl::detect(&cx.service.label, &path)?;
        ctl.unload(&cx.changes)?;
        cx.changes.remove_file(&path)?;
        cx.console.println(&format!(
            "removed {}; the logs in {} are kept",
            path.display(),
            cx.service.logs_dir.display()
        ));
        Ok(())
    }

    fn print_service_status(&self, cx: &Context) -> Result<()> {
        let path = require_installed(cx)?;
        let ctl = Launchctl::detect(&cx.service.label, &path)?;
        let line = match ctl.state()? {
            None => format!("{}: not loaded", ctl.describe()),
            Some(state) => format!(
                "{}: {}, {}, last exit code {}",
                ctl.describe(),
                state.state.as_deref().unwrap_or("state unknown"),
                state
                    .pid
                    .map_or("no process".to_owned(), |pid| format!("PID {pid}")),
                state.last_exit.as_deref().unwrap_or("unknown"),
            ),
        };
        cx.console.println(&line);
        cx.console.println(&format!("plist: {}", path.display()));
        Ok(())
    }

    fn print_service_logs(&self, cx: &Context, follow: bool, lines: u32) -> Result<()> {
        sdk::logs::print_file_logs(cx, follow, lines)
    }

    fn doctor(&self, cx: &Context) -> Vec<Check> {
        doctor::checks(cx)
    }

    fn survival(&self, cx: &Context, _query: &SurvivalQuery) -> Result<Vec<SurvivalLine>> {
        survival::lines(cx)
    }
}

sygen_backend_api::export_backend!(Launchd);
