//! The OpenRC backend (`libsygen_openrc.so`), written as a third party would: it uses only the
//! public `sygen-backend-api` crate.
//!
//! - [`script`]: what it writes, the service script supervised by `supervise-daemon`;
//! - [`openrc`]: what it runs, `rc-service` and `rc-update`;
//! - below: the nine operations gluing them;
//! - [`doctor`]: its checks for `sygen doctor`;
//! - [`survival`]: what sygen outlives (logout, reboot), as the runlevels decide.
//!
//! On OpenRC before 0.60 (Debian bookworm has 0.45) there are no user services: sygen becomes
//! the system service `/etc/init.d/sygen`, installed by root and run as the invoking user
//! (`command_user`: `$SUDO_USER` under sudo). From 0.60 on it is a user service under
//! `~/.config/rc/init.d`. supervise-daemon restarts sygen after any exit, so the restart policy
//! is "always", not "on failure" as with systemd.

#![cfg(target_os = "linux")]

mod doctor;
mod openrc;
mod script;
mod survival;

use std::{
    fs,
    path::{Path, PathBuf},
    time::Duration,
};

use sygen_backend_api::{
    methods::{
        Check, SurvivalLine, SurvivalQuery, DOCTOR, INSTALL_DRY_RUN, SURVIVAL, UNINSTALL_DRY_RUN,
    },
    sdk::{
        self,
        wait::{self, Look},
        Backend, Changes, Context, Error, Info, Result,
    },
};

use crate::openrc::{Mode, State};

#[derive(Default)]
pub struct OpenRc;

/// Who sygen runs as: under sudo the user who ran it, else the current user.
fn invoking_user() -> Result<String> {
    match std::env::var("SUDO_USER") {
        Ok(user) if !user.is_empty() && sdk::user::uid() == 0 => Ok(user),
        _ => sdk::user::name(),
    }
}

fn mode(cx: &Context) -> Result<Mode> {
    Ok(Mode::for_version(openrc::version()?, cx.config_home()?))
}

fn script_path(cx: &Context, mode: &Mode) -> PathBuf {
    mode.script_dir().join(&cx.service.name)
}

/// A system service can only be changed by root: say so, with the command that works.
fn require_root(mode: &Mode, operation: &str) -> Result<()> {
    if *mode == Mode::System && sdk::user::uid() != 0 {
        return Err(Error::failed(format!(
            "this OpenRC has no user services, so sygen is the system service \
             /etc/init.d/sygen, and only root can {operation} it"
        ))
        .with_hint(format!("run `sudo sygen service {operation}`")));
    }
    Ok(())
}

fn require_installed(cx: &Context, mode: &Mode) -> Result<PathBuf> {
    let path = script_path(cx, mode);
    if path.exists() {
        Ok(path)
    } else {
        Err(Error::not_installed(format!(
            "sygen is not installed: there is no {}",
            path.display()
        ))
        .with_hint("run `sygen service install`"))
    }
}

/// Waits briefly for supervise-daemon to report the service started.
fn check_started(cx: &Context, mode: &Mode) -> Result<()> {
    let started = wait::until(Duration::from_secs(2), || {
        let state = openrc::status(mode, &cx.service.name)?;
        Ok(if state == State::Started {
            Look::Done
        } else {
            Look::NotYet(state)
        })
    })?;
    started.map_err(|state| {
        Error::service_failed(format!(
            "sygen did not start: OpenRC reports it {}",
            state.describe()
        ))
        .with_hint("`sygen service logs` shows why")
    })
}

/// Root creates the logs directory in the user's home; the user's sygen must own it.
fn give_to_user(changes: &Changes, user: &str, dirs: &[&Path]) -> Result<()> {
    if user == "root" || sdk::user::uid() != 0 {
        return Ok(());
    }
    for dir in dirs {
        let output = changes.run("chown", [format!("{user}:"), dir.display().to_string()])?;
        if !output.success() {
            return Err(output.failure(&format!("chown {user}: {}", dir.display())));
        }
    }
    Ok(())
}

/// The script OpenRC runs sygen from; `user` is who sygen runs as.
fn render(cx: &Context, mode: &Mode, user: &str) -> Result<String> {
    script::render(&cx.service, (*mode == Mode::System).then_some(user))
}

impl Backend for OpenRc {
    const INFO: Info = Info {
        name: "openrc",
        version: env!("CARGO_PKG_VERSION"),
        platform: "linux",
        description: "Runs sygen as an OpenRC service supervised by supervise-daemon",
    };

    fn capabilities(&self) -> Vec<String> {
        [INSTALL_DRY_RUN, UNINSTALL_DRY_RUN, DOCTOR, SURVIVAL]
            .map(str::to_owned)
            .to_vec()
    }

    /// OpenRC is there and booted this system (it keeps `/run/openrc/softlevel` then).
    fn is_service_available(&self, _cx: &Context) -> Result<bool> {
        Ok(sdk::find_executable("rc-service").is_some()
            && Path::new("/run/openrc/softlevel").exists())
    }

    fn is_service_installed(&self, cx: &Context) -> Result<bool> {
        Ok(script_path(cx, &mode(cx)?).exists())
    }

    fn is_service_running(&self, cx: &Context) -> Result<bool> {
        Ok(openrc::status(&mode(cx)?, &cx.service.name)? == State::Started)
    }

    fn install_service(&self, cx: &Context) -> Result<()> {
        let mode = mode(cx)?;
        require_root(&mode, "install")?;
        let name = &cx.service.name;
        let user = invoking_user()?;
        let script = render(cx, &mode, &user)?;
        let changes = &cx.changes;
        let logs = &cx.service.logs_dir;
        changes.create_dir_all(logs)?;
        give_to_user(changes, &user, &[&cx.service.home, logs])?;
        let path = script_path(cx, &mode);
        let changed = fs::read_to_string(&path).ok().as_deref() != Some(script.as_str());
        if changed {
            changes.write(&path, script.as_bytes(), Some(0o755))?;
            cx.console.println(&format!("wrote {}", path.display()));
        }
        openrc::enable(changes, &mode, name)?;
        match openrc::status(&mode, name)? {
            State::Started if changed => {
                openrc::service(changes, &mode, name, "restart")?;
                cx.console
                    .println(&format!("restarted {name}: its script changed"));
            }
            State::Started => cx
                .console
                .println(&format!("{name} is unchanged and running; left as it is")),
            _ => {
                openrc::service(changes, &mode, name, "start")?;
                cx.console.println(&format!("started {name} (as {user})"));
            }
        }
        if changes.is_live() {
            check_started(cx, &mode)?;
        }
        Ok(())
    }

    fn start_service(&self, cx: &Context) -> Result<()> {
        let mode = mode(cx)?;
        require_installed(cx, &mode)?;
        require_root(&mode, "start")?;
        if openrc::status(&mode, &cx.service.name)? != State::Started {
            openrc::service(&cx.changes, &mode, &cx.service.name, "start")?;
        }
        check_started(cx, &mode)
    }

    fn stop_service(&self, cx: &Context) -> Result<()> {
        let mode = mode(cx)?;
        require_installed(cx, &mode)?;
        require_root(&mode, "stop")?;
        if openrc::status(&mode, &cx.service.name)? != State::Stopped {
            openrc::service(&cx.changes, &mode, &cx.service.name, "stop")?;
        }
        Ok(())
    }

    fn uninstall_service(&self, cx: &Context) -> Result<()> {
        let mode = mode(cx)?;
        let path = require_installed(cx, &mode)?;
        require_root(&mode, "uninstall")?;
        let name = &cx.service.name;
        let changes = &cx.changes;
        if openrc::status(&mode, name)? != State::Stopped {
            openrc::service(changes, &mode, name, "stop")?;
        }
        openrc::disable(changes, &mode, name, &path)?;
        changes.remove_file(&path)?;
        cx.console.println(&format!(
            "removed {}; the logs in {} are kept",
            path.display(),
            cx.service.logs_dir.display()
        ));
        Ok(())
    }

    fn print_service_status(&self, cx: &Context) -> Result<()> {
        let mode = mode(cx)?;
        let path = require_installed(cx, &mode)?;
        let kind = match mode {
            Mode::System => "system service",
            Mode::User { .. } => "user service",
        };
        let state = openrc::status(&mode, &cx.service.name)?;
        cx.console.println(&format!(
            "{} (OpenRC {kind}): {}",
            cx.service.name,
            state.describe()
        ));
        cx.console.println(&format!("script: {}", path.display()));
        cx.console
            .println("supervise-daemon restarts it after any exit (policy: always)");
        Ok(())
    }

    fn print_service_logs(&self, cx: &Context, follow: bool, lines: u32) -> Result<()> {
        sdk::logs::print_file_logs(cx, follow, lines)
    }

    fn doctor(&self, cx: &Context) -> Vec<Check> {
        doctor::checks(cx)
    }

    fn survival(&self, cx: &Context, query: &SurvivalQuery) -> Result<Vec<SurvivalLine>> {
        survival::lines(cx, query)
    }
}

sygen_backend_api::export_backend!(OpenRc);
