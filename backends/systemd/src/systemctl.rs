//! What the backend runs: `systemctl --user`, `journalctl` and, for linger, `loginctl`. Every
//! invocation goes through here, so a user manager that cannot be reached reads the same
//! everywhere: one line saying why, with the fix.

use std::{collections::HashMap, path::Path};

use sygen_backend_api::sdk::{
    command::{self, Output},
    user, Changes, Console, Error, Result,
};

/// The unit name of the service called `name`.
pub fn unit_name(name: &str) -> String {
    format!("{name}.service")
}

/// Runs `systemctl --user ARGS` to read state. A user manager that cannot be reached is an
/// [`ErrorKind::UNAVAILABLE`](sygen_backend_api::ErrorKind::UNAVAILABLE) error; any other
/// failure is left to the caller, who knows which exit codes are normal.
pub fn systemctl(args: &[&str]) -> Result<Output> {
    reached(command::run("systemctl", user_args(args))?)
}

/// Runs `systemctl --user ARGS` and fails unless it exits 0.
pub fn systemctl_ok(args: &[&str]) -> Result<Output> {
    succeeded(systemctl(args)?, args)
}

/// Runs `systemctl --user ARGS` to change state, through `changes` (so a dry run records it);
/// failures are left to the caller, as with [`systemctl`].
pub fn change(changes: &Changes, args: &[&str]) -> Result<Output> {
    reached(changes.run("systemctl", user_args(args))?)
}

/// Like [`change`], failing unless it exits 0.
pub fn change_ok(changes: &Changes, args: &[&str]) -> Result<Output> {
    succeeded(change(changes, args)?, args)
}

fn user_args<'a>(args: &'a [&'a str]) -> impl Iterator<Item = &'a str> {
    std::iter::once("--user").chain(args.iter().copied())
}

fn reached(output: Output) -> Result<Output> {
    if !output.success() && is_bus_error(&output.stderr) {
        return Err(unreachable_manager());
    }
    Ok(output)
}

fn succeeded(output: Output, args: &[&str]) -> Result<Output> {
    if output.success() {
        Ok(output)
    } else {
        Err(output.failure(&format!("systemctl --user {}", args.join(" "))))
    }
}

fn is_bus_error(stderr: &str) -> bool {
    [
        "Failed to connect to bus",
        "Failed to connect to user scope bus",
        "$DBUS_SESSION_BUS_ADDRESS and $XDG_RUNTIME_DIR not defined",
    ]
    .iter()
    .any(|needle| stderr.contains(needle))
}

fn unreachable_manager() -> Error {
    let uid = user::uid();
    let user = user::name().unwrap_or_else(|_| "<user>".into());
    let runtime_dir = std::env::var_os("XDG_RUNTIME_DIR").filter(|v| !v.is_empty());
    let sudo_user = std::env::var("SUDO_USER").ok().filter(|u| !u.is_empty());
    match (runtime_dir, sudo_user) {
        (_, Some(sudo_user)) if uid == 0 => Error::unavailable(
            "cannot reach a systemd user manager: sygen runs as root through sudo",
        )
        .with_hint(format!(
            "run sygen as {sudo_user} without sudo (as root, `systemctl --user \
             --machine={sudo_user}@.host` reaches that user's manager)"
        )),
        (None, _) => {
            Error::unavailable("cannot reach your systemd user manager: XDG_RUNTIME_DIR is not set")
                .with_hint(format!(
                    "run `export XDG_RUNTIME_DIR=/run/user/{uid}` (or log in to a full session), \
             then try again"
                ))
        }
        (Some(dir), _) => Error::unavailable(format!(
            "cannot reach your systemd user manager at {}",
            Path::new(&dir).display()
        ))
        .with_hint(format!(
            "log in to a session of {user} (ssh or console) so systemd starts your user \
             manager, or from root use `systemctl --user --machine={user}@.host`"
        )),
    }
}

/// `systemctl --user show UNIT -p …`: machine-readable properties, never words from `status`;
/// times as microseconds since the epoch, as D-Bus gives them (see `bus`).
pub fn show(unit: &str, properties: &[&str]) -> Result<HashMap<String, String>> {
    let output = systemctl_ok(&[
        "show",
        unit,
        "--timestamp=unix",
        "-p",
        &properties.join(","),
    ])?;
    Ok(parse_properties(&output.stdout))
}

/// `systemctl show`'s `Key=value` lines, by key: the unit's state as the backend reads it.
pub fn parse_properties(text: &str) -> HashMap<String, String> {
    text.lines()
        .filter_map(|line| line.split_once('='))
        .map(|(key, value)| {
            // `--timestamp=unix` writes `@<seconds>`.
            let value = match value.strip_prefix('@').map(str::parse::<u64>) {
                Some(Ok(seconds)) => seconds.saturating_mul(1_000_000).to_string(),
                _ => value.to_owned(),
            };
            (key.to_owned(), value)
        })
        .collect()
}

/// The three places logs can come from, in the order they are tried.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogSource {
    /// The user's journal (`journalctl --user -u UNIT`), as on a desktop.
    UserJournal,
    /// The system journal's entries for the user unit (`journalctl --user-unit UNIT`), for
    /// volatile journals and low UIDs, where the user has no journal files of their own.
    UserUnitInSystemJournal,
}

impl LogSource {
    pub fn describe(self) -> &'static str {
        match self {
            LogSource::UserJournal => "the user journal (journalctl --user -u)",
            LogSource::UserUnitInSystemJournal => "the system journal (journalctl --user-unit)",
        }
    }

    fn args(self, unit: &str) -> Vec<String> {
        let selector = match self {
            LogSource::UserJournal => vec!["--user".to_owned(), "-u".to_owned()],
            LogSource::UserUnitInSystemJournal => vec!["--user-unit".to_owned()],
        };
        selector
            .into_iter()
            .chain([unit.to_owned(), "--no-hostname".into(), "--no-pager".into()])
            .collect()
    }
}

/// The last `lines` journal lines of `unit` from `source`, or `None` when that journal has no
/// files to read (so the next source should be tried).
pub fn journal_tail(source: LogSource, unit: &str, lines: u32) -> Result<Option<String>> {
    let mut args = source.args(unit);
    args.extend(["-n".into(), lines.to_string()]);
    let output = command::run("journalctl", &args)?;
    if has_no_journal(&output) {
        return Ok(None);
    }
    if !output.success() {
        return Err(output.failure(&format!("journalctl {}", args.join(" "))));
    }
    Ok(Some(output.stdout))
}

/// Follows `unit` in `source` until interrupted, printing through the console.
pub fn journal_follow(source: LogSource, unit: &str, lines: u32, console: &Console) -> Result<()> {
    let mut args = source.args(unit);
    args.extend(["-n".into(), lines.to_string(), "-f".into()]);
    let output = command::stream("journalctl", &args, console)?;
    if output.success() {
        Ok(())
    } else {
        Err(output.failure(&format!("journalctl {}", args.join(" "))))
    }
}

fn has_no_journal(output: &Output) -> bool {
    output.stderr.contains("No journal files were found")
        || output.stdout.contains("No journal files were found")
}

/// Whether systemd keeps the user's manager (and so sygen) running after they log out.
pub fn linger_enabled(user: &str) -> bool {
    Path::new("/var/lib/systemd/linger").join(user).exists()
}

/// Tries to enable linger without asking for a password; answers whether it worked.
pub fn try_enable_linger(changes: &Changes, user: &str) -> bool {
    let attempt = if user::uid() == 0 {
        changes.run("loginctl", ["enable-linger", user])
    } else if sygen_backend_api::sdk::find_executable("sudo").is_some() {
        // -n: never wait for a password nobody will type.
        changes.run("sudo", ["-n", "loginctl", "enable-linger", user])
    } else {
        return false;
    };
    matches!(attempt, Ok(output) if output.success()) && linger_enabled(user)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_show_output() {
        let props = parse_properties(
            "ActiveState=active\nMainPID=42\nExecStart=a=b\nStateChangeTimestamp=@1733280001\n\n",
        );
        assert_eq!(props["StateChangeTimestamp"], "1733280001000000");
        assert_eq!(props["ActiveState"], "active");
        assert_eq!(props["MainPID"], "42");
        assert_eq!(props["ExecStart"], "a=b");
    }

    #[test]
    fn recognises_bus_errors() {
        assert!(is_bus_error(
            "Failed to connect to bus: $DBUS_SESSION_BUS_ADDRESS and $XDG_RUNTIME_DIR not defined"
        ));
        assert!(is_bus_error(
            "Failed to connect to bus: No such file or directory"
        ));
        assert!(!is_bus_error("Unit sygen.service not found."));
    }

    #[test]
    fn log_sources_select_the_unit() {
        assert_eq!(
            LogSource::UserJournal.args("sygen.service"),
            [
                "--user",
                "-u",
                "sygen.service",
                "--no-hostname",
                "--no-pager"
            ]
        );
        assert_eq!(
            LogSource::UserUnitInSystemJournal.args("sygen.service")[..2],
            ["--user-unit", "sygen.service"]
        );
    }
}
