//! The systemd backend's checks for `sygen doctor`: what stands between a user and a working
//! user service that only systemd knows about. Linger is not a check: whether sygen outlives
//! logout is said by the survival lines (see `survival`), which doctor prints too.

use std::path::Path;

use sygen_backend_api::{
    methods::Check,
    sdk::{
        doctor::{definition_check, failed},
        Context,
    },
};

use crate::{bus, state, systemctl::systemctl, unit, unit_path};

pub fn checks(cx: &Context) -> Vec<Check> {
    let mut checks = vec![runtime_dir()];
    let bus = user_bus();
    let reachable = bus.status == sygen_backend_api::methods::Status::Pass;
    checks.push(bus);
    if let Ok(path) = unit_path(cx) {
        if path.exists() {
            checks.extend(program(&path));
            checks.push(match unit::render(&cx.service) {
                Ok(text) => definition_check("systemd.unit", "unit", &path, text.as_bytes()),
                Err(error) => failed("systemd.unit", error),
            });
            if reachable {
                checks.push(daemon_reload(cx));
            }
        } else if reachable && crate::still_loaded(cx) {
            checks.push(Check::fail(
                "systemd.unit",
                format!(
                    "the unit file {} is gone, but systemd still runs the service loaded from it: \
                     the next daemon-reload or reboot loses it",
                    path.display()
                ),
                "run `sygen service install` to write it again, or `sygen service uninstall` to \
                 remove what is left",
            ));
        }
    }
    checks
}

/// Whether the program the installed unit runs is still there: after sygen is removed or moved
/// (a package removed, an archive unpacked elsewhere), the unit names a binary that is gone and
/// systemd cannot start the service.
fn program(unit_path: &Path) -> Option<Check> {
    const ID: &str = "systemd.program";
    let program = unit::program(&std::fs::read_to_string(unit_path).ok()?)?;
    Some(if Path::new(&program).is_file() {
        Check::pass(ID, format!("the unit runs {program}, which is there"))
    } else {
        Check::fail(
            ID,
            format!(
                "the unit {} runs {program}, which is gone (sygen was removed or moved): \
                 systemd cannot start the service",
                unit_path.display()
            ),
            "run `sygen service install` with the sygen you use now, to point the unit at it",
        )
    })
}

/// The directory `systemctl --user` finds the manager's bus in.
fn runtime_dir() -> Check {
    const ID: &str = "systemd.runtime-dir";
    match std::env::var_os("XDG_RUNTIME_DIR").filter(|v| !v.is_empty()) {
        None => Check::fail(
            ID,
            "XDG_RUNTIME_DIR is not set, so systemctl cannot find your user manager",
            "run `export XDG_RUNTIME_DIR=/run/user/$(id -u)` (or log in to a full session)",
        ),
        Some(dir) if !Path::new(&dir).is_dir() => Check::fail(
            ID,
            format!(
                "XDG_RUNTIME_DIR is {}, which does not exist",
                Path::new(&dir).display()
            ),
            "log in to a session (ssh or console) so systemd creates it",
        ),
        Some(dir) => Check::pass(
            ID,
            format!("XDG_RUNTIME_DIR is {}", Path::new(&dir).display()),
        ),
    }
}

/// Whether the manager answers the way sygen asks it, over D-Bus, and else `systemctl`.
fn user_bus() -> Check {
    const ID: &str = "systemd.user-bus";
    let why = match bus::manager().and_then(|m| Ok((m, m.version().map_err(|e| e.to_string())?))) {
        Ok((manager, version)) => {
            return Check::pass(
                ID,
                format!(
                    "your systemd user manager answers over {} (systemd {version})",
                    manager.route
                ),
            )
        }
        Err(why) => why,
    };
    match systemctl(&["show", "--property=Version"]) {
        Ok(output) if output.success() => Check::warn(
            ID,
            format!(
                "your systemd user manager answers `systemctl --user` but not over D-Bus ({why}), \
                 so each question costs a `systemctl` process"
            ),
            "sygen still works, through `systemctl`; the message says what each way in answered",
        ),
        Ok(output) => Check::fail(
            ID,
            format!(
                "your systemd user manager did not answer: {}",
                output.first_message_line()
            ),
            "`systemctl --user status` shows more",
        ),
        Err(error) => failed(ID, error),
    }
}

fn daemon_reload(cx: &Context) -> Check {
    const ID: &str = "systemd.daemon-reload";
    match state(cx) {
        Ok(state) if state.get("NeedDaemonReload").map(String::as_str) == Some("yes") => {
            Check::warn(
                ID,
                "the unit file changed on disk since systemd read it",
                "run `sygen service install` (or `systemctl --user daemon-reload`)",
            )
        }
        Ok(_) => Check::pass(ID, "systemd runs the unit file as it is on disk"),
        Err(error) => failed(ID, error),
    }
}
