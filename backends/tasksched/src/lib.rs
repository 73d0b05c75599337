//! The Task Scheduler backend: runs sygen as a scheduled task at logon (`sygen_tasksched.dll`
//! on Windows; on Linux it builds as an `.so` and is tested against a schtasks simulator).
//!
//! - [`task_xml`]: what it writes, the task definition (UTF-16LE with a BOM, registered with
//!   `schtasks /Create /XML` from `~/.sygen/sygen_task.xml`, which is removed afterwards);
//! - [`schtasks`]: what it runs;
//! - below: the nine operations gluing them;
//! - [`doctor`]: its check for `sygen doctor`;
//! - [`survival`]: what the task outlives (sign-out, reboot, battery), read from its definition.
//!
//! The task runs `sygenw.exe run --supervise --home <sygen home>` (the windowless build next to
//! `sygen.exe`, else `sygen.exe`): Task Scheduler restarts only a start that failed, so
//! restarting a worker that exited is the runtime's own job; and a task carries no
//! environment variables, so the sygen home travels as an argument.

mod doctor;
mod schtasks;
mod survival;
mod task_xml;

use std::{
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
        Backend, Context, Error, Info, Result,
    },
};

use crate::{
    schtasks::TaskState,
    task_xml::{Exec, TaskSpec},
};

/// `/Run` answers before the task has started; this long it may take to.
const START_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Default)]
pub struct TaskScheduler;

/// The account the task belongs to, as Task Scheduler names it: `DOMAIN\user`.
fn user_id() -> Result<String> {
    let user = std::env::var("USERNAME")
        .ok()
        .filter(|u| !u.is_empty())
        .ok_or_else(|| {
            Error::failed("cannot tell which Windows account the task is for: USERNAME is not set")
                .with_hint("run sygen from a normal session of the account that should run it")
        })?;
    Ok(
        match std::env::var("USERDOMAIN").ok().filter(|d| !d.is_empty()) {
            Some(domain) => format!("{domain}\\{user}"),
            None => user,
        },
    )
}

/// `sygenw` next to `program`: sygen built without a console window.
fn windowless(program: &Path) -> PathBuf {
    let mut windowless = program.with_file_name("sygenw");
    if let Some(extension) = program.extension() {
        windowless.set_extension(extension);
    }
    windowless
}

/// What the task runs: `sygenw` next to the host (else the host itself) with `run --supervise
/// --home <sygen home>`, in the sygen home.
fn exec(cx: &Context) -> Result<Exec> {
    let program = &cx.service.program;
    let windowless = windowless(program);
    let command = if windowless.is_file() {
        &windowless
    } else {
        program
    };
    let command = command
        .to_str()
        .ok_or_else(|| Error::failed("the sygen executable's path is not valid Unicode"))?;
    let working_directory = cx
        .service
        .home
        .to_str()
        .ok_or_else(|| Error::failed("the sygen home path is not valid Unicode"))?;
    let arguments = cx
        .service
        .args
        .iter()
        .map(String::as_str)
        .chain(["--supervise", "--home", working_directory])
        .map(windows_arg)
        .collect::<Vec<_>>()
        .join(" ");
    Ok(Exec {
        command: command.to_owned(),
        arguments,
        working_directory: working_directory.to_owned(),
    })
}

/// The task definition install registers, running `exec`.
fn definition(cx: &Context, exec: &Exec) -> Result<String> {
    task_xml::render(&TaskSpec {
        description: &cx.service.description,
        user_id: &user_id()?,
        exec,
    })
}

fn xml_path(cx: &Context) -> PathBuf {
    cx.service.home.join("sygen_task.xml")
}

fn require_installed(cx: &Context) -> Result<TaskState> {
    schtasks::query(&cx.service.name)?.ok_or_else(|| {
        Error::not_installed(format!(
            "sygen is not installed: Task Scheduler has no task {}",
            cx.service.name
        ))
        .with_hint("run `sygen service install`")
    })
}

fn wait_until_running(cx: &Context) -> Result<()> {
    let running = wait::until(START_TIMEOUT, || {
        let state = require_installed(cx)?;
        Ok(if state.is_running() {
            Look::Done
        } else {
            Look::NotYet(state)
        })
    })?;
    running.map_err(|state| {
        Error::service_failed(format!(
            "the task {} did not start within {}s (last result {})",
            cx.service.name,
            START_TIMEOUT.as_secs(),
            state.describe_last_result()
        ))
        .with_hint("`sygen service logs` shows what sygen wrote")
    })
}

/// Registers the task from the XML file, which is removed whatever happens.
fn create_task(cx: &Context, xml: &str) -> Result<()> {
    let path = xml_path(cx);
    let path_text = path
        .to_str()
        .ok_or_else(|| Error::failed("the sygen home path is not valid Unicode"))?;
    cx.changes.write(&path, &task_xml::to_utf16le(xml), None)?;
    let created = schtasks::create(&cx.changes, &cx.service.name, path_text);
    let removed = cx.changes.remove_file(&path);
    created?;
    removed
}

/// One argument as Windows programs split their command line (CommandLineToArgvW): quoted
/// when it has spaces, tabs or quotes, with backslashes doubled only where they precede a
/// quote.
fn windows_arg(arg: &str) -> String {
    if !arg.is_empty() && !arg.contains([' ', '\t', '\n', '"']) {
        return arg.to_owned();
    }
    let mut quoted = String::from("\"");
    let mut backslashes = 0;
    for c in arg.chars() {
        match c {
            '\\' => backslashes += 1,
            '"' => {
                quoted.extend(std::iter::repeat_n('\\', backslashes * 2 + 1));
                quoted.push('"');
                backslashes = 0;
            }
            c => {
                quoted.extend(std::iter::repeat_n('\\', backslashes));
                quoted.push(c);
                backslashes = 0;
            }
        }
    }
    quoted.extend(std::iter::repeat_n('\\', backslashes * 2));
    quoted.push('"');
    quoted
}

impl Backend for TaskScheduler {
    const INFO: Info = Info {
        name: "tasksched",
        version: env!("CARGO_PKG_VERSION"),
        platform: "windows",
        description: "Runs sygen as a Windows Task Scheduler task",
    };

    fn capabilities(&self) -> Vec<String> {
        [INSTALL_DRY_RUN, UNINSTALL_DRY_RUN, DOCTOR, SURVIVAL]
            .map(str::to_owned)
            .to_vec()
    }

    fn is_service_available(&self, _cx: &Context) -> Result<bool> {
        Ok(sdk::find_executable("schtasks.exe").is_some())
    }

    fn is_service_installed(&self, cx: &Context) -> Result<bool> {
        Ok(schtasks::query(&cx.service.name)?.is_some())
    }

    fn is_service_running(&self, cx: &Context) -> Result<bool> {
        Ok(schtasks::query(&cx.service.name)?.is_some_and(|s| s.is_running()))
    }

    fn install_service(&self, cx: &Context) -> Result<()> {
        let name = &cx.service.name;
        let exec = exec(cx)?;
        let windowless = windowless(&cx.service.program);
        if Path::new(&exec.command) != windowless {
            cx.console.eprintln(&format!(
                "note: {} is missing, so the task runs {}, which opens a console window at logon",
                windowless.display(),
                exec.command
            ));
        }
        let xml = definition(cx, &exec)?;
        let changes = &cx.changes;
        for dir in [&cx.service.home, &cx.service.logs_dir] {
            changes.create_dir_all(dir)?;
        }
        if let Some(previous) = schtasks::query(name)? {
            if previous.is_running() {
                schtasks::end(changes, name)?;
            }
            schtasks::delete(changes, name)?;
            cx.console
                .println(&format!("deleted the previous task {name}"));
        }
        create_task(cx, &xml)?;
        cx.console.println(&format!(
            "created the task {name} (runs {} at logon)",
            exec.command
        ));
        schtasks::run(changes, name)?;
        if changes.is_live() {
            wait_until_running(cx)?;
        }
        cx.console.println(&format!("started the task {name}"));
        Ok(())
    }

    fn start_service(&self, cx: &Context) -> Result<()> {
        if !require_installed(cx)?.is_running() {
            schtasks::run(&cx.changes, &cx.service.name)?;
        }
        wait_until_running(cx)
    }

    fn stop_service(&self, cx: &Context) -> Result<()> {
        if require_installed(cx)?.is_running() {
            schtasks::end(&cx.changes, &cx.service.name)?;
        }
        Ok(())
    }

    fn uninstall_service(&self, cx: &Context) -> Result<()> {
        let name = &cx.service.name;
        if require_installed(cx)?.is_running() {
            schtasks::end(&cx.changes, name)?;
        }
        schtasks::delete(&cx.changes, name)?;
        cx.console.println(&format!(
            "deleted the task {name}; the logs in {} are kept",
            cx.service.logs_dir.display()
        ));
        Ok(())
    }

    fn print_service_status(&self, cx: &Context) -> Result<()> {
        let state = require_installed(cx)?;
        cx.console.println(&format!(
            "task {}: {}, last result {}",
            cx.service.name,
            if state.status.is_empty() {
                "status unknown"
            } else {
                &state.status
            },
            state.describe_last_result()
        ));
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

sygen_backend_api::export_backend!(TaskScheduler);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_arguments_as_windows_splits_them() {
        assert_eq!(windows_arg("run"), "run");
        assert_eq!(
            windows_arg("C:\\Users\\ada\\.sygen"),
            "C:\\Users\\ada\\.sygen"
        );
        assert_eq!(windows_arg("C:\\my home\\"), "\"C:\\my home\\\\\"");
        assert_eq!(windows_arg("say \"hi\""), "\"say \\\"hi\\\"\"");
        assert_eq!(windows_arg("a\\\"b"), "\"a\\\\\\\"b\"");
        assert_eq!(windows_arg(""), "\"\"");
    }

    #[test]
    fn the_windowless_build_sits_next_to_sygen() {
        assert_eq!(
            windowless(Path::new("/opt/sygen/bin/sygen")),
            Path::new("/opt/sygen/bin/sygenw")
        );
        assert_eq!(
            windowless(Path::new("C:/sygen/sygen.exe")),
            Path::new("C:/sygen/sygenw.exe")
        );
    }
}
