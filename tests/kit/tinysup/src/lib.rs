//! A sygen backend for tinysup, a small process supervisor: the template, made real by an
//! author outside the sygen repository.
//!
//! What it writes: a program definition (`definition`, pure). What it runs: `tinysup <dir>
//! <request>` (`ask` for questions, `tell` for changes, through `cx.changes`). Then the nine
//! operations gluing them.
//!
//! Settings, from `[backends.tinysup]` in config.toml: `dir` (tinysup's directory, default
//! `~/.tinysup`) and `program` (the tinysup executable, default found on PATH).

use std::{path::PathBuf, time::Duration};

use sygen_backend_api::{
    sdk::{
        self,
        wait::{self, Look},
        Backend, Context, Error, Info, Result,
    },
    serde_json,
};

#[derive(Default)]
pub struct Tinysup;

/// How long a start or stop may take to show.
const SETTLE: Duration = Duration::from_secs(10);

/// The program definition tinysup reads: one `key=value` per line, so no value may hold a
/// line break (tinysup has no escaping for one).
pub fn definition(cx: &Context) -> Result<String> {
    let s = &cx.service;
    let mut lines = vec![format!("program={}", s.program.display())];
    lines.extend(s.args.iter().map(|arg| format!("arg={arg}")));
    lines.extend(s.env.iter().map(|(key, value)| format!("env={key}={value}")));
    if let Some(bad) = lines.iter().find(|line| line.contains(['\n', '\r'])) {
        return Err(Error::failed(format!(
            "tinysup cannot hold a line break in a definition: {bad:?}"
        )));
    }
    Ok(lines.join("\n") + "\n")
}

/// The tinysup the settings name: its directory and its executable.
struct Manager {
    dir: PathBuf,
    program: PathBuf,
}

fn setting(cx: &Context, key: &str) -> Result<Option<PathBuf>> {
    match cx.settings.get(key) {
        None => Ok(None),
        Some(serde_json::Value::String(path)) => Ok(Some(PathBuf::from(path))),
        Some(other) => Err(Error::failed(format!(
            "`{key}` in [backends.tinysup] of {} is {other}, not a path",
            cx.config_file.display()
        ))
        .with_hint("give it as a string: `dir = \"/home/me/.tinysup\"`")),
    }
}

/// The tinysup to use, or None when there is no executable.
fn manager(cx: &Context) -> Result<Option<Manager>> {
    let home = PathBuf::from(cx.service.env_var("HOME").unwrap_or("/"));
    let dir = setting(cx, "dir")?.unwrap_or_else(|| home.join(".tinysup"));
    let program = match setting(cx, "program")? {
        Some(program) => Some(program),
        None => sdk::find_executable("tinysup"),
    };
    Ok(program.map(|program| Manager { dir, program }))
}

fn required(cx: &Context) -> Result<Manager> {
    manager(cx)?.ok_or_else(|| {
        Error::unavailable("tinysup is not installed")
            .with_hint("put it on PATH, or set `program` in [backends.tinysup] of config.toml")
    })
}

impl Manager {
    fn definition_path(&self, cx: &Context) -> PathBuf {
        self.dir
            .join("programs")
            .join(format!("{}.conf", cx.service.name))
    }

    fn args(&self, request: &[&str]) -> Vec<String> {
        std::iter::once(self.dir.display().to_string())
            .chain(request.iter().map(|word| word.to_string()))
            .collect()
    }

    fn program(&self) -> String {
        self.program.display().to_string()
    }

    /// A question: its one-line answer, or None when tinysup does not answer.
    fn ask(&self, request: &[&str]) -> Result<Option<String>> {
        let output = sdk::command::run(&self.program(), self.args(request))?;
        Ok(output
            .success()
            .then(|| output.stdout.trim().to_owned()))
    }

    /// A change, through `cx.changes` so that a dry run records it.
    fn tell(&self, cx: &Context, request: &[&str]) -> Result<()> {
        let output = cx.changes.run(&self.program(), self.args(request))?;
        if output.success() {
            Ok(())
        } else {
            Err(output.failure("tinysup"))
        }
    }

    fn state(&self, cx: &Context) -> Result<String> {
        self.ask(&["status", &cx.service.name])?.ok_or_else(|| {
            Error::unavailable(format!("tinysup does not answer in {}", self.dir.display()))
                .with_hint("start it: `tinysup daemon <dir>`")
        })
    }

    fn installed(&self, cx: &Context) -> Result<()> {
        if self.definition_path(cx).is_file() {
            Ok(())
        } else {
            Err(Error::not_installed(format!(
                "{} is not installed (no {})",
                cx.service.name,
                self.definition_path(cx).display()
            )))
        }
    }

    /// Waits until tinysup says the program runs (`true`) or is stopped (`false`).
    fn wait_for(&self, cx: &Context, running: bool) -> Result<()> {
        if !cx.changes.is_live() {
            return Ok(());
        }
        let waited = wait::until(SETTLE, || {
            let state = self.state(cx)?;
            Ok(match (running, state.split(' ').next()) {
                (true, Some("running")) | (false, Some("stopped")) => Look::Done,
                _ => Look::NotYet(state),
            })
        })?;
        waited.map_err(|seen| {
            Error::service_failed(format!(
                "{} is still {seen} after {} s",
                cx.service.name,
                SETTLE.as_secs()
            ))
        })
    }
}

impl Backend for Tinysup {
    const INFO: Info = Info {
        name: "tinysup",
        version: env!("CARGO_PKG_VERSION"),
        platform: "linux",
        description: "Runs sygen under tinysup",
    };

    fn is_service_available(&self, cx: &Context) -> Result<bool> {
        let Some(t) = manager(cx)? else {
            return Ok(false);
        };
        Ok(t.ask(&["ping"])?.is_some_and(|answer| answer == "pong"))
    }

    fn is_service_installed(&self, cx: &Context) -> Result<bool> {
        Ok(required(cx)?.definition_path(cx).is_file())
    }

    fn is_service_running(&self, cx: &Context) -> Result<bool> {
        Ok(required(cx)?.state(cx)?.starts_with("running "))
    }

    fn install_service(&self, cx: &Context) -> Result<()> {
        let t = required(cx)?;
        let path = t.definition_path(cx);
        let wanted = definition(cx)?;
        let changed = std::fs::read_to_string(&path).ok().as_deref() != Some(wanted.as_str());
        if changed {
            cx.changes.create_dir_all(path.parent().unwrap_or(&t.dir))?;
            cx.changes.write(&path, wanted.as_bytes(), Some(0o644))?;
            // A changed definition takes effect on the next start.
            t.tell(cx, &["stop", &cx.service.name])?;
        }
        t.tell(cx, &["start", &cx.service.name])?;
        t.wait_for(cx, true)
    }

    fn start_service(&self, cx: &Context) -> Result<()> {
        let t = required(cx)?;
        t.installed(cx)?;
        t.tell(cx, &["start", &cx.service.name])?;
        t.wait_for(cx, true)
    }

    fn stop_service(&self, cx: &Context) -> Result<()> {
        let t = required(cx)?;
        t.installed(cx)?;
        t.tell(cx, &["stop", &cx.service.name])?;
        t.wait_for(cx, false)
    }

    fn uninstall_service(&self, cx: &Context) -> Result<()> {
        let t = required(cx)?;
        t.installed(cx)?;
        t.tell(cx, &["stop", &cx.service.name])?;
        t.wait_for(cx, false)?;
        cx.changes.remove_file(&t.definition_path(cx))
    }

    fn print_service_status(&self, cx: &Context) -> Result<()> {
        let t = required(cx)?;
        t.installed(cx)?;
        let state = t.state(cx)?;
        cx.console
            .println(&format!("{} under tinysup: {state}", cx.service.name));
        cx.console
            .println(&format!("definition: {}", t.definition_path(cx).display()));
        Ok(())
    }

    fn print_service_logs(&self, cx: &Context, follow: bool, lines: u32) -> Result<()> {
        required(cx)?.installed(cx)?;
        sdk::logs::print_file_logs(cx, follow, lines)
    }
}

sygen_backend_api::export_backend!(Tinysup);

#[cfg(test)]
mod tests {
    use std::path::Path;

    use sygen_backend_api::{methods::Change, ServiceDescription};

    use super::*;

    fn settings(pairs: &[(&str, &str)]) -> serde_json::Map<String, serde_json::Value> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), serde_json::Value::from(*v)))
            .collect()
    }

    #[test]
    fn install_writes_the_definition_then_starts_it_through_tinysup() {
        let home = Path::new("/home/someone");
        let (cx, _console) = Context::for_test(ServiceDescription::for_test(home));
        let cx = cx.with_settings(settings(&[("dir", "/srv/tinysup"), ("program", "/opt/tinysup")]));
        Tinysup.install_service(&cx).unwrap();
        let changes = cx.changes.recorded_changes().changes;
        let [Change::Write { path, content, .. }, Change::Run { argv: stop }, Change::Run { argv: start }] =
            changes.as_slice()
        else {
            panic!("not write, stop, start: {changes:?}");
        };
        assert_eq!(path, Path::new("/srv/tinysup/programs/sygen.conf"));
        assert!(content.starts_with("program=/usr/local/bin/sygen\narg=run\n"), "{content}");
        assert!(content.contains("env=SYGEN_HOME=/home/someone/.sygen\n"), "{content}");
        assert_eq!(stop, &["/opt/tinysup", "/srv/tinysup", "stop", "sygen"]);
        assert_eq!(start, &["/opt/tinysup", "/srv/tinysup", "start", "sygen"]);
    }

    #[test]
    fn a_setting_that_is_not_a_path_is_named() {
        let (cx, _console) = Context::for_test(ServiceDescription::for_test(Path::new("/h")));
        let mut bad = serde_json::Map::new();
        bad.insert("dir".into(), serde_json::Value::from(3));
        let error = Tinysup.is_service_available(&cx.with_settings(bad)).unwrap_err();
        assert!(error.message.contains("`dir` in [backends.tinysup]"), "{error}");
    }

    #[test]
    fn a_line_break_in_the_description_is_refused() {
        let mut service = ServiceDescription::for_test(Path::new("/h"));
        service.args.push("two\nlines".into());
        let (cx, _console) = Context::for_test(service);
        assert!(definition(&cx).is_err());
    }
}
