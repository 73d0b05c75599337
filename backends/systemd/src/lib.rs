//! The systemd backend: runs sygen as a systemd user service (`libsygen_systemd.so`).
//!
//! - [`unit`]: what it writes, `~/.config/systemd/user/sygen.service` (respecting
//!   `XDG_CONFIG_HOME`), rendered from the host's service description;
//! - [`systemctl`]: what it runs, `systemctl --user`, `journalctl` and `loginctl`;
//! - below: the nine operations gluing them. State always comes from `systemctl show`
//!   properties, never from the words of `systemctl status`;
//! - [`doctor`]: its checks for `sygen doctor`.

#![cfg(target_os = "linux")]

mod doctor;
mod systemctl;
mod unit;

use std::{
    collections::HashMap,
    fs,
    path::{Path, PathBuf},
    time::Duration,
};

use sygen_backend_api::{
    methods::{Check, DOCTOR, INSTALL_DRY_RUN, STATUS_DETAILS, UNINSTALL_DRY_RUN},
    sdk::{
        self,
        wait::{self, Look},
        Backend, Context, Error, Info, Result,
    },
};

use crate::systemctl::{change, change_ok, show, systemctl, unit_name, LogSource};

#[derive(Default)]
pub struct Systemd;

/// The properties `status` reports, by name.
const STATUS_PROPERTIES: [&str; 8] = [
    "LoadState",
    "ActiveState",
    "SubState",
    "MainPID",
    "NRestarts",
    "ExecMainCode",
    "ExecMainStatus",
    "NeedDaemonReload",
];

/// Where the unit file goes: `$XDG_CONFIG_HOME/systemd/user/`, else `~/.config/systemd/user/`.
fn unit_path(cx: &Context) -> Result<PathBuf> {
    let config_home = match std::env::var_os("XDG_CONFIG_HOME").filter(|v| !v.is_empty()) {
        Some(dir) if Path::new(&dir).is_absolute() => PathBuf::from(dir),
        _ => {
            let home = cx
                .service
                .env_var("HOME")
                .ok_or_else(|| Error::failed("the service description has no HOME"))?;
            Path::new(home).join(".config")
        }
    };
    Ok(config_home
        .join("systemd/user")
        .join(unit_name(&cx.service.name)))
}

fn require_installed(cx: &Context) -> Result<PathBuf> {
    let path = unit_path(cx)?;
    if path.exists() {
        Ok(path)
    } else {
        Err(Error::not_installed(format!(
            "sygen is not installed: there is no unit at {}",
            path.display()
        ))
        .with_hint("run `sygen service install`"))
    }
}

fn state(cx: &Context) -> Result<HashMap<String, String>> {
    show(&unit_name(&cx.service.name), &STATUS_PROPERTIES)
}

/// Fails when the service did not come up: it failed, or it is waiting to be restarted.
/// Watches it for a moment, because a program that starts and then exits at once still
/// counts as started for `systemctl start`.
fn check_started(cx: &Context) -> Result<()> {
    let watched = wait::until(Duration::from_millis(400), || {
        let state = state(cx)?;
        let active = state.get("ActiveState").map_or("", String::as_str);
        let sub = state.get("SubState").map_or("", String::as_str);
        if active == "failed" || sub == "auto-restart" {
            return Ok(Look::Failed(
                Error::service_failed(format!(
                    "sygen did not start: the service is {active} ({sub}), last exit: {}",
                    format_last_exit(&state)
                ))
                .with_hint("`sygen service logs` shows why"),
            ));
        }
        Ok(Look::NotYet(()))
    })?;
    // Up for the whole moment, never failed: it started.
    let (Ok(()) | Err(())) = watched;
    Ok(())
}

fn is_active(state: &HashMap<String, String>) -> bool {
    matches!(
        state.get("ActiveState").map(String::as_str),
        Some("active" | "reloading")
    )
}

/// Warns, once per install, that without linger systemd stops sygen at logout.
fn ensure_linger(cx: &Context) -> Result<()> {
    let user = systemctl::current_user()?;
    if systemctl::linger_enabled(&user) {
        return Ok(());
    }
    if systemctl::try_enable_linger(&cx.changes, &user) {
        cx.console.println(&format!(
            "enabled linger for {user}: sygen keeps running after logout"
        ));
        return Ok(());
    }
    cx.console.eprintln(&format!(
        "note: linger is off for {user}, so systemd stops sygen when {user} logs out; \
         to keep it running, run: sudo loginctl enable-linger {user}"
    ));
    Ok(())
}

fn format_last_exit(state: &HashMap<String, String>) -> String {
    let status = state.get("ExecMainStatus").map_or("0", String::as_str);
    // ExecMainCode is the siginfo code: 1 exited, 2 killed, 3 dumped core; 0 not yet run.
    match state.get("ExecMainCode").map(String::as_str) {
        Some("1") => format!("exited with status {status}"),
        Some("2") => format!("killed by signal {status}"),
        Some("3") => format!("dumped core on signal {status}"),
        _ => "none yet".to_owned(),
    }
}

impl Backend for Systemd {
    const INFO: Info = Info {
        name: "systemd",
        version: env!("CARGO_PKG_VERSION"),
        platform: "linux",
        description: "Runs sygen as a systemd user service",
    };

    fn capabilities(&self) -> Vec<String> {
        [STATUS_DETAILS, INSTALL_DRY_RUN, UNINSTALL_DRY_RUN, DOCTOR]
            .map(str::to_owned)
            .to_vec()
    }

    fn is_service_available(&self, _cx: &Context) -> Result<bool> {
        if sdk::find_executable("systemctl").is_none() {
            return Ok(false);
        }
        match systemctl(&["show", "--property=Version"]) {
            Ok(output) => Ok(output.success()),
            Err(error) if error.kind == sygen_backend_api::ErrorKind::UNAVAILABLE => Ok(false),
            Err(error) => Err(error),
        }
    }

    fn is_service_installed(&self, cx: &Context) -> Result<bool> {
        Ok(unit_path(cx)?.exists())
    }

    fn is_service_running(&self, cx: &Context) -> Result<bool> {
        Ok(is_active(&state(cx)?))
    }

    fn install_service(&self, cx: &Context) -> Result<()> {
        let path = unit_path(cx)?;
        let unit = unit::render(&cx.service)?;
        let changes = &cx.changes;
        changes.create_dir_all(&cx.service.logs_dir)?;
        let changed = fs::read_to_string(&path).ok().as_deref() != Some(unit.as_str());
        if changed {
            changes.write(&path, unit.as_bytes(), Some(0o644))?;
            cx.console.println(&format!("wrote {}", path.display()));
        }
        let name = unit_name(&cx.service.name);
        let before = state(cx)?;
        if changed || before.get("NeedDaemonReload").map(String::as_str) == Some("yes") {
            change_ok(changes, &["daemon-reload"])?;
        }
        change_ok(changes, &["enable", &name])?;
        if !is_active(&before) {
            change_ok(changes, &["start", &name])?;
            cx.console.println(&format!("started {name}"));
        } else if changed {
            change_ok(changes, &["restart", &name])?;
            cx.console
                .println(&format!("restarted {name}: its unit changed"));
        } else {
            cx.console
                .println(&format!("{name} is unchanged and running; left as it is"));
        }
        if changes.is_live() {
            check_started(cx)?;
        }
        ensure_linger(cx)
    }

    fn start_service(&self, cx: &Context) -> Result<()> {
        require_installed(cx)?;
        change_ok(&cx.changes, &["start", &unit_name(&cx.service.name)])?;
        check_started(cx)
    }

    fn stop_service(&self, cx: &Context) -> Result<()> {
        require_installed(cx)?;
        change_ok(&cx.changes, &["stop", &unit_name(&cx.service.name)])?;
        Ok(())
    }

    fn uninstall_service(&self, cx: &Context) -> Result<()> {
        let path = require_installed(cx)?;
        let name = unit_name(&cx.service.name);
        let changes = &cx.changes;
        change_ok(changes, &["disable", "--now", &name])?;
        changes.remove_file(&path)?;
        change_ok(changes, &["daemon-reload"])?;
        // Forget a failed state so the unit disappears from listings; absent is fine.
        change(changes, &["reset-failed", &name])?;
        if let Some(unit_dir) = path.parent() {
            let config_home = unit_dir.parent().and_then(Path::parent).unwrap_or(unit_dir);
            changes.remove_empty_dirs(&unit_dir.join("default.target.wants"), config_home);
            changes.remove_empty_dirs(unit_dir, config_home);
        }
        cx.console.println(&format!("removed {}", path.display()));
        Ok(())
    }

    fn print_service_status(&self, cx: &Context) -> Result<()> {
        let path = require_installed(cx)?;
        let name = unit_name(&cx.service.name);
        // The properties and the human-readable text, asked for at the same time: each is a
        // round trip to the manager, and this is what people wait for.
        let (state, text) = std::thread::scope(|scope| {
            let text = scope.spawn(|| systemctl(&["status", &name, "--no-pager"]));
            (state(cx), text.join())
        });
        let state = state?;
        // `status` exits 3 for a stopped unit: that is an answer, not a failure.
        let text = text.map_err(|_| Error::failed("`systemctl --user status` panicked"))??;
        let get = |key: &str| state.get(key).map_or("unknown", String::as_str);
        let pid = match get("MainPID") {
            "0" => "no process".to_owned(),
            pid => format!("PID {pid}"),
        };
        cx.console.println(&format!(
            "{name}: {} ({}), {pid}, {} restarts, last exit: {}",
            get("ActiveState"),
            get("SubState"),
            get("NRestarts"),
            format_last_exit(&state)
        ));
        cx.console.println(&format!("unit: {}", path.display()));
        if get("NeedDaemonReload") == "yes" {
            cx.console
                .println("the unit file changed on disk; `sygen service install` reloads it");
        }
        cx.console.println("");
        cx.console.print(&text.stdout);
        Ok(())
    }

    fn print_service_logs(&self, cx: &Context, follow: bool, lines: u32) -> Result<()> {
        let name = unit_name(&cx.service.name);
        for source in [LogSource::UserJournal, LogSource::UserUnitInSystemJournal] {
            let Some(tail) = systemctl::journal_tail(source, &name, lines)? else {
                continue;
            };
            cx.console
                .eprintln(&format!("-- logs of {name} from {} --", source.describe()));
            if follow {
                return systemctl::journal_follow(source, &name, lines, &cx.console);
            }
            cx.console.print(&tail);
            return Ok(());
        }
        // The last resort when no journal has sygen's logs: sygen's own log files.
        sdk::logs::print_file_logs(cx, follow, lines)
    }

    fn doctor(&self, cx: &Context) -> Vec<Check> {
        doctor::checks(cx)
    }

    fn call(&self, cx: &Context, method: &str, _input: &str) -> Result<String> {
        match method {
            STATUS_DETAILS => status_details(cx),
            _ => Err(Error::unknown_method(method)),
        }
    }
}

/// The status properties and the unit's path, as a JSON object.
fn status_details(cx: &Context) -> Result<String> {
    let mut state = state(cx)?;
    state.insert("UnitPath".into(), unit_path(cx)?.display().to_string());
    let object: serde_json::Map<String, serde_json::Value> = state
        .into_iter()
        .map(|(key, value)| (key, serde_json::Value::String(value)))
        .collect();
    Ok(serde_json::Value::Object(object).to_string())
}

sygen_backend_api::export_backend!(Systemd);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describes_the_last_exit() {
        let state = |code: &str, status: &str| {
            HashMap::from([
                ("ExecMainCode".to_owned(), code.to_owned()),
                ("ExecMainStatus".to_owned(), status.to_owned()),
            ])
        };
        assert_eq!(format_last_exit(&state("1", "3")), "exited with status 3");
        assert_eq!(format_last_exit(&state("2", "9")), "killed by signal 9");
        assert_eq!(format_last_exit(&state("0", "0")), "none yet");
    }
}
