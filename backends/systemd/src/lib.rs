//! The systemd backend: runs sygen as a systemd user service (`libsygen_systemd.so`).
//!
//! - [`unit`]: what it writes, `~/.config/systemd/user/sygen.service` (respecting
//!   `XDG_CONFIG_HOME`), rendered from the host's service description;
//! - [`bus`]: what it asks the user manager over D-Bus (whether it answers, a unit's state) and
//!   hears from it (the unit's changes);
//! - [`systemctl`]: what it runs, `systemctl --user` for changes (and for state when D-Bus
//!   cannot be reached), `journalctl` and `loginctl`;
//! - below: the nine operations gluing them. State always comes from the unit's properties,
//!   never from the words of `systemctl status`;
//! - [`doctor`]: its checks for `sygen doctor`;
//! - [`survival`]: whether sygen outlives logout and reboot (linger).

#![cfg(target_os = "linux")]

mod bus;
mod doctor;
mod survival;
mod systemctl;
mod unit;

use std::{
    collections::HashMap,
    fs,
    path::{Path, PathBuf},
    time::{Duration, SystemTime},
};

use sygen_backend_api::{
    methods::{
        Check, SurvivalLine, SurvivalQuery, DOCTOR, INSTALL_DRY_RUN, STATUS_DETAILS, SURVIVAL,
        UNINSTALL_DRY_RUN,
    },
    sdk::{
        self,
        wait::{self, Look},
        Backend, Context, Error, Info, Result,
    },
};

use crate::systemctl::{change, change_ok, show, systemctl, unit_name, LogSource};

#[derive(Default)]
pub struct Systemd;

/// The properties `status` reports, by name (asked of `systemctl show` when D-Bus cannot be
/// reached; over D-Bus all of the unit's come at once).
const STATUS_PROPERTIES: [&str; 11] = [
    "LoadState",
    "ActiveState",
    "SubState",
    "MainPID",
    "NRestarts",
    "ExecMainCode",
    "ExecMainStatus",
    "NeedDaemonReload",
    "StateChangeTimestamp",
    "MemoryCurrent",
    "TasksCurrent",
];
/// How many of the last log lines `status` shows.
const STATUS_LOG_LINES: u32 = 10;

/// Where the unit file goes: `$XDG_CONFIG_HOME/systemd/user/`, else `~/.config/systemd/user/`.
fn unit_path(cx: &Context) -> Result<PathBuf> {
    Ok(cx
        .config_home()?
        .join("systemd/user")
        .join(unit_name(&cx.service.name)))
}

fn require_installed(cx: &Context) -> Result<PathBuf> {
    let path = unit_path(cx)?;
    if is_mask(&path) {
        return Err(Error::not_installed(format!(
            "sygen is not installed: {} is a mask (a link to /dev/null)",
            path.display()
        ))
        .with_hint(format!(
            "`systemctl --user unmask {}`, then `sygen service install`",
            unit_name(&cx.service.name)
        )));
    }
    if path.exists() {
        return Ok(path);
    }
    if still_loaded(cx) {
        // Removed behind sygen's back: what systemd still runs from it is managed all the same.
        cx.console.eprintln(&format!(
            "warning: the unit file {} is gone, but systemd still has {} loaded from it",
            path.display(),
            unit_name(&cx.service.name)
        ));
        return Ok(path);
    }
    Err(Error::not_installed(format!(
        "sygen is not installed: there is no unit at {}",
        path.display()
    ))
    .with_hint("run `sygen service install`"))
}

/// Whether systemd still has the unit loaded though its file is gone (removed while it ran:
/// systemd keeps what it loaded until a daemon-reload). A manager that cannot be asked has
/// nothing loaded as far as sygen can tell: the file's absence then decides, as before.
pub(crate) fn still_loaded(cx: &Context) -> bool {
    state(cx).is_ok_and(|state| state.get("LoadState").map(String::as_str) == Some("loaded"))
}

/// Whether the file at `path` is a mask: a link to /dev/null, as `systemctl mask` makes.
fn is_mask(path: &Path) -> bool {
    fs::read_link(path).is_ok_and(|target| target == Path::new("/dev/null"))
}

/// Refuses to install over a mask: someone told systemd never to start the unit, and writing
/// it would silently undo that.
fn refuse_a_mask(cx: &Context, path: &Path) -> Result<()> {
    let name = unit_name(&cx.service.name);
    let masked_here = is_mask(path);
    if !masked_here && state(cx)?.get("LoadState").map(String::as_str) != Some("masked") {
        return Ok(());
    }
    let where_ = match masked_here {
        true => format!(" ({} links to /dev/null)", path.display()),
        false => " (in systemd's runtime directory)".to_owned(),
    };
    let runtime = if masked_here { "" } else { "--runtime " };
    Err(Error::failed(format!(
        "{name} is masked{where_}: systemd is told never to start it, and installing would undo that"
    ))
    .with_hint(format!(
        "if sygen should run, `systemctl --user unmask {runtime}{name}`, then install again"
    )))
}

/// The unit's state: over D-Bus, else from `systemctl show` (saying why at `-v`).
fn state(cx: &Context) -> Result<HashMap<String, String>> {
    let unit = unit_name(&cx.service.name);
    let asked = bus::manager().and_then(|manager| {
        manager
            .unit(&unit)
            .map_err(|e| format!("{}: {e}", manager.route))
    });
    match asked {
        Ok(state) => Ok(state),
        Err(why) => {
            sygen_backend_api::tracing::info!(
                "asking `systemctl --user show` instead of D-Bus: {why}"
            );
            show(&unit, &STATUS_PROPERTIES)
        }
    }
}

/// How long a started service is watched for failing at once.
const STARTUP_WATCH: Duration = Duration::from_millis(400);

/// Fails when the service did not come up: it failed, or it is waiting to be restarted.
/// Watches it for a moment, because a program that starts and then exits at once still
/// counts as started for `systemctl start` (which has itself waited for its job to finish).
/// Over D-Bus the manager says when the unit changes; without it, the state is looked at.
fn check_started(cx: &Context) -> Result<()> {
    let unit = unit_name(&cx.service.name);
    let failure = |state: &HashMap<String, String>| {
        did_not_come_up(state).then(|| {
            Error::service_failed(format!(
                "sygen did not start: the service is {} ({}), last exit: {}",
                state.get("ActiveState").map_or("", String::as_str),
                state.get("SubState").map_or("", String::as_str),
                format_last_exit(state)
            ))
            .with_hint("`sygen service logs` shows why")
        })
    };
    let watched = bus::manager().and_then(|manager| {
        manager
            .watch(&unit, STARTUP_WATCH, failure)
            .map_err(|e| format!("{}: {e}", manager.route))
    });
    match watched {
        Ok(None) => Ok(()),
        Ok(Some(error)) => Err(error),
        Err(why) => {
            sygen_backend_api::tracing::info!(
                "watching the start with `systemctl --user show` instead of D-Bus: {why}"
            );
            let watched = wait::until(STARTUP_WATCH, || {
                let state = show(&unit, &STATUS_PROPERTIES)?;
                Ok(failure(&state).map_or(Look::NotYet(()), Look::Failed))
            })?;
            // Up for the whole moment, never failed: it started.
            let (Ok(()) | Err(())) = watched;
            Ok(())
        }
    }
}

/// The service failed, or is waiting to be restarted after it did.
fn did_not_come_up(state: &HashMap<String, String>) -> bool {
    state.get("ActiveState").map(String::as_str) == Some("failed")
        || state.get("SubState").map(String::as_str) == Some("auto-restart")
}

fn is_active(state: &HashMap<String, String>) -> bool {
    matches!(
        state.get("ActiveState").map(String::as_str),
        Some("active" | "reloading")
    )
}

/// Turns linger on when that needs no password, so sygen outlives logout. When it cannot,
/// the survival lines sygen prints after the install say so, with the command.
fn try_linger(cx: &Context) -> Result<()> {
    let user = sdk::user::name()?;
    if !systemctl::linger_enabled(&user) && systemctl::try_enable_linger(&cx.changes, &user) {
        cx.console.println(&format!(
            "enabled linger for {user}: sygen keeps running after logout"
        ));
    }
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
        [
            STATUS_DETAILS,
            INSTALL_DRY_RUN,
            UNINSTALL_DRY_RUN,
            DOCTOR,
            SURVIVAL,
        ]
        .map(str::to_owned)
        .to_vec()
    }

    fn is_service_available(&self, _cx: &Context) -> Result<bool> {
        match bus::manager() {
            Ok(manager) => {
                sygen_backend_api::tracing::debug!("the user manager answers on {}", manager.route);
                return Ok(true);
            }
            Err(why) => sygen_backend_api::tracing::info!(
                "asking `systemctl --user` instead of D-Bus: {why}"
            ),
        }
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
        // A mask (a link to /dev/null in the unit's place) is no installed service; a unit
        // systemd still runs though its file was removed is one.
        let path = unit_path(cx)?;
        if is_mask(&path) {
            return Ok(false);
        }
        Ok(path.exists() || still_loaded(cx))
    }

    fn is_service_running(&self, cx: &Context) -> Result<bool> {
        let unit = unit_name(&cx.service.name);
        if let Ok(active) =
            bus::manager().and_then(|m| m.active_state(&unit).map_err(|e| e.to_string()))
        {
            return Ok(matches!(active.as_str(), "active" | "reloading"));
        }
        Ok(is_active(&state(cx)?))
    }

    fn install_service(&self, cx: &Context) -> Result<()> {
        let path = unit_path(cx)?;
        let unit = unit::render(&cx.service)?;
        let changes = &cx.changes;
        refuse_a_mask(cx, &path)?;
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
        try_linger(cx)
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
        let present = path.exists();
        if present {
            change_ok(changes, &["disable", "--now", &name])?;
            changes.remove_file(&path)?;
        } else {
            // Without its file, `disable --now` fails after disabling: one step at a time.
            change_ok(changes, &["stop", &name])?;
            change_ok(changes, &["disable", &name])?;
        }
        change_ok(changes, &["daemon-reload"])?;
        // Forget a failed state so the unit disappears from listings; absent is fine.
        change(changes, &["reset-failed", &name])?;
        if let Some(unit_dir) = path.parent() {
            let config_home = unit_dir.parent().and_then(Path::parent).unwrap_or(unit_dir);
            changes.remove_empty_dirs(&unit_dir.join("default.target.wants"), config_home);
            changes.remove_empty_dirs(unit_dir, config_home);
        }
        cx.console.println(&match present {
            true => format!("removed {}", path.display()),
            false => format!(
                "stopped and disabled {name}, whose unit file {} was already gone",
                path.display()
            ),
        });
        Ok(())
    }

    fn print_service_status(&self, cx: &Context) -> Result<()> {
        let path = require_installed(cx)?;
        let name = unit_name(&cx.service.name);
        let state = state(cx)?;
        for line in summary(&name, &path, &state, SystemTime::now()) {
            cx.console.println(&line);
        }
        if let Some((from, lines)) = last_log_lines(cx, &name, &state)? {
            cx.console.println("");
            cx.console.println(&format!("last log lines, from {from}:"));
            cx.console.print(&lines);
        }
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

    fn survival(&self, _cx: &Context, _query: &SurvivalQuery) -> Result<Vec<SurvivalLine>> {
        survival::lines()
    }

    fn call(&self, cx: &Context, method: &str, _input: &str) -> Result<String> {
        match method {
            STATUS_DETAILS => status_details(cx),
            _ => Err(Error::unknown_method(method)),
        }
    }
}

/// The status properties and the unit's path, as a JSON object, typed: numbers as numbers,
/// `yes`/`no` as booleans, what systemd does not report as `null`.
fn status_details(cx: &Context) -> Result<String> {
    let state = state(cx)?;
    let mut object: serde_json::Map<String, serde_json::Value> = STATUS_PROPERTIES
        .iter()
        .map(|&key| {
            (
                key.to_owned(),
                typed(key, state.get(key).map(String::as_str)),
            )
        })
        .collect();
    object.insert(
        "UnitPath".into(),
        unit_path(cx)?.display().to_string().into(),
    );
    Ok(serde_json::Value::Object(object).to_string())
}

/// One status property as JSON.
fn typed(key: &str, value: Option<&str>) -> serde_json::Value {
    use serde_json::Value;
    match (key, value) {
        (_, None | Some("[not set]") | Some("")) => Value::Null,
        ("NeedDaemonReload", Some(yes)) => Value::Bool(yes == "yes"),
        ("LoadState" | "ActiveState" | "SubState", Some(text)) => text.into(),
        (_, Some(number)) => number
            .parse::<i64>()
            .map_or_else(|_| number.into(), Value::from),
    }
}

/// Microseconds since the epoch, as systemd keeps times; `None` for 0 (never).
fn time_of(state: &HashMap<String, String>, key: &str) -> Option<SystemTime> {
    let micros: u64 = state.get(key)?.parse().ok().filter(|&m| m > 0)?;
    SystemTime::UNIX_EPOCH.checked_add(Duration::from_micros(micros))
}

/// `12.3 MiB`: a size in bytes for people.
fn size(bytes: u64) -> String {
    const MIB: f64 = 1024.0 * 1024.0;
    match bytes {
        0..1024 => format!("{bytes} B"),
        1024..1_048_576 => format!("{:.1} KiB", bytes as f64 / 1024.0),
        _ => format!("{:.1} MiB", bytes as f64 / MIB),
    }
}

/// The summary `status` prints, from the unit's properties, as of `now`.
fn summary(
    name: &str,
    path: &Path,
    state: &HashMap<String, String>,
    now: SystemTime,
) -> Vec<String> {
    let get = |key: &str| state.get(key).map_or("unknown", String::as_str);
    let pid = match get("MainPID") {
        "0" | "unknown" => "no process".to_owned(),
        pid => format!("PID {pid}"),
    };
    let since = time_of(state, "StateChangeTimestamp").map_or(String::new(), |at| {
        let ago = now.duration_since(at).unwrap_or_default();
        format!(
            " since {} ({} ago)",
            humantime::format_rfc3339_seconds(at),
            humantime::format_duration(Duration::from_secs(ago.as_secs()))
        )
    });
    let mut lines = vec![format!(
        "{name}: {} ({}), {pid}, {} restarts, last exit: {}",
        get("ActiveState"),
        get("SubState"),
        get("NRestarts"),
        format_last_exit(state)
    )];
    let mut usage = Vec::new();
    if !since.is_empty() {
        usage.push(since.trim_start().to_owned());
    }
    if let Some(memory) = state.get("MemoryCurrent").and_then(|m| m.parse().ok()) {
        usage.push(format!("memory {}", size(memory)));
    }
    if let Some(tasks) = state
        .get("TasksCurrent")
        .filter(|t| t.parse::<u64>().is_ok())
    {
        usage.push(format!("{tasks} tasks"));
    }
    if !usage.is_empty() {
        lines.push(usage.join(", "));
    }
    lines.push(format!("unit: {}", path.display()));
    if get("NeedDaemonReload") == "yes" {
        lines.push("the unit file changed on disk; `sygen service install` reloads it".into());
    }
    lines
}

/// The last few lines of the service's logs, and where they come from. `agent.log` keeps
/// everything the runtime and its worker said, and costs one read; but when the service did
/// not come up, systemd's own words on why (a program it could not run, a start limit) are
/// only in the journal, which is then read first.
fn last_log_lines(
    cx: &Context,
    name: &str,
    state: &HashMap<String, String>,
) -> Result<Option<(String, String)>> {
    let log_file = sdk::logs::pick_log_file(&cx.service.logs_dir);
    if !did_not_come_up(state) {
        if let Some(file) = &log_file {
            return file_tail(file).map(Some);
        }
    }
    for source in [LogSource::UserJournal, LogSource::UserUnitInSystemJournal] {
        if let Some(tail) = systemctl::journal_tail(source, name, STATUS_LOG_LINES)? {
            return Ok(Some((source.describe().to_owned(), tail)));
        }
    }
    log_file.as_deref().map(file_tail).transpose()
}

/// The last [`STATUS_LOG_LINES`] of `file`, and its path.
fn file_tail(file: &Path) -> Result<(String, String)> {
    let lines = sdk::fs::tail_lines(file, STATUS_LOG_LINES as usize)
        .map_err(|e| Error::io(format!("reading {}", file.display()), e))?;
    Ok((
        file.display().to_string(),
        lines.iter().map(|l| format!("{l}\n")).collect(),
    ))
}

sygen_backend_api::export_backend!(Systemd);

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    use crate::systemctl::parse_properties;

    /// What `systemctl --user show UNIT --timestamp=unix -p <STATUS_PROPERTIES>` answers, in
    /// the order systemd 252 writes it (its own, not the order asked): a unit running, with
    /// memory and task accounting on, as on a desktop.
    const RUNNING: &str = "MainPID=1745\nNRestarts=0\nExecMainCode=0\nExecMainStatus=0\n\
        MemoryCurrent=12582912\nTasksCurrent=7\nLoadState=loaded\nActiveState=active\n\
        SubState=running\nStateChangeTimestamp=@1796617489\nNeedDaemonReload=no\n";
    /// A program that exited with status 3; accounting off, so `[not set]`.
    const EXITED_3: &str = "MainPID=0\nNRestarts=0\nExecMainCode=1\nExecMainStatus=3\n\
        MemoryCurrent=[not set]\nTasksCurrent=[not set]\nLoadState=loaded\nActiveState=failed\n\
        SubState=failed\nStateChangeTimestamp=@1796617489\nNeedDaemonReload=no\n";
    /// A program killed by SIGKILL.
    const KILLED: &str = "MainPID=0\nNRestarts=0\nExecMainCode=2\nExecMainStatus=9\n\
        MemoryCurrent=[not set]\nTasksCurrent=[not set]\nLoadState=loaded\nActiveState=failed\n\
        SubState=failed\nStateChangeTimestamp=@1796617495\nNeedDaemonReload=no\n";
    /// `Restart=on-failure` waiting out `RestartSec=` after a failed run.
    const AUTO_RESTART: &str = "MainPID=0\nNRestarts=2\nExecMainCode=1\nExecMainStatus=1\n\
        MemoryCurrent=[not set]\nTasksCurrent=[not set]\nLoadState=loaded\n\
        ActiveState=activating\nSubState=auto-restart\nStateChangeTimestamp=@1796617489\n\
        NeedDaemonReload=no\n";
    /// A unit never started (or stopped and unloaded): no state change to date.
    const INACTIVE: &str = "MainPID=0\nNRestarts=0\nExecMainCode=0\nExecMainStatus=0\n\
        MemoryCurrent=[not set]\nTasksCurrent=[not set]\nLoadState=loaded\n\
        ActiveState=inactive\nSubState=dead\nStateChangeTimestamp=\nNeedDaemonReload=no\n";

    /// The same answer for another load state (`masked`, `not-found`, …).
    fn inactive(load_state: &str) -> String {
        INACTIVE.replace("LoadState=loaded", &format!("LoadState={load_state}"))
    }

    const UNIT: &str = "/home/ada/.config/systemd/user/sygen.service";

    fn summary_of(show: &str, now_after_change: Duration) -> Vec<String> {
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_796_617_489);
        summary(
            "sygen.service",
            Path::new(UNIT),
            &parse_properties(show),
            at + now_after_change,
        )
    }

    #[test]
    fn reads_a_running_unit() {
        let state = parse_properties(RUNNING);
        assert!(is_active(&state) && !did_not_come_up(&state));
        assert_eq!(
            summary_of(RUNNING, Duration::from_secs(90)),
            [
                "sygen.service: active (running), PID 1745, 0 restarts, last exit: none yet",
                "since 2026-12-07T04:24:49Z (1m 30s ago), memory 12.0 MiB, 7 tasks",
                &format!("unit: {UNIT}"),
            ]
        );
        assert_eq!(
            typed("MainPID", state.get("MainPID").map(String::as_str)),
            1745
        );
        assert_eq!(
            typed("StateChangeTimestamp", Some(&state["StateChangeTimestamp"])),
            1_796_617_489_000_000_i64
        );
        assert_eq!(
            typed("NeedDaemonReload", Some(&state["NeedDaemonReload"])),
            false
        );
        assert_eq!(typed("ActiveState", Some(&state["ActiveState"])), "active");
    }

    #[test]
    fn reads_a_failed_unit_and_how_its_program_ended() {
        for (show, last_exit) in [
            (EXITED_3, "exited with status 3"),
            (KILLED, "killed by signal 9"),
        ] {
            let state = parse_properties(show);
            assert!(did_not_come_up(&state) && !is_active(&state), "{show}");
            assert_eq!(format_last_exit(&state), last_exit);
            let summary = summary_of(show, Duration::from_secs(5));
            assert_eq!(
                summary[0],
                format!(
                    "sygen.service: failed (failed), no process, 0 restarts, last exit: {last_exit}"
                )
            );
            // `[not set]` accounting is left out, not shown as a number.
            assert!(summary[1].starts_with("since ") && !summary[1].contains("memory"));
            assert_eq!(
                typed("MemoryCurrent", Some(&state["MemoryCurrent"])),
                json!(null)
            );
        }
    }

    #[test]
    fn a_unit_waiting_to_restart_did_not_come_up() {
        let state = parse_properties(AUTO_RESTART);
        assert!(did_not_come_up(&state) && !is_active(&state));
        assert_eq!(
            summary_of(AUTO_RESTART, Duration::ZERO)[0],
            "sygen.service: activating (auto-restart), no process, 2 restarts, \
             last exit: exited with status 1"
        );
    }

    #[test]
    fn reads_inactive_masked_and_missing_units_as_stopped() {
        for load_state in ["loaded", "masked", "not-found"] {
            let show = inactive(load_state);
            let state = parse_properties(&show);
            assert!(!is_active(&state) && !did_not_come_up(&state), "{show}");
            assert_eq!(
                summary_of(&show, Duration::ZERO),
                [
                    "sygen.service: inactive (dead), no process, 0 restarts, last exit: none yet",
                    &format!("unit: {UNIT}"),
                ]
            );
            assert_eq!(typed("LoadState", Some(&state["LoadState"])), load_state);
            // An empty timestamp is "never", not the epoch.
            assert_eq!(time_of(&state, "StateChangeTimestamp"), None);
            assert_eq!(
                typed("StateChangeTimestamp", Some(&state["StateChangeTimestamp"])),
                json!(null)
            );
        }
    }

    /// An older systemd leaves out what it does not have: `systemctl show` skips a property it
    /// does not know, without an error.
    #[test]
    fn missing_keys_are_unknown_not_errors() {
        let show = "LoadState=loaded\nActiveState=active\nSubState=running\nMainPID=42\n";
        let state = parse_properties(show);
        assert!(is_active(&state) && !did_not_come_up(&state));
        assert_eq!(
            summary_of(show, Duration::ZERO),
            [
                "sygen.service: active (running), PID 42, unknown restarts, last exit: none yet",
                &format!("unit: {UNIT}"),
            ]
        );
        assert_eq!(
            typed("NRestarts", state.get("NRestarts").map(String::as_str)),
            json!(null)
        );
        let nothing = parse_properties("");
        assert!(!is_active(&nothing) && !did_not_come_up(&nothing));
        assert_eq!(
            summary_of("", Duration::ZERO)[0],
            "sygen.service: unknown (unknown), no process, unknown restarts, last exit: none yet"
        );
    }

    #[test]
    fn says_when_the_unit_file_changed_on_disk() {
        let show = RUNNING.replace("NeedDaemonReload=no", "NeedDaemonReload=yes");
        let state = parse_properties(&show);
        assert_eq!(
            typed("NeedDaemonReload", Some(&state["NeedDaemonReload"])),
            true
        );
        assert_eq!(
            summary_of(&show, Duration::ZERO).last().map(String::as_str),
            Some("the unit file changed on disk; `sygen service install` reloads it")
        );
    }

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
