//! `sygen doctor`: checks everything between the user and a running agent and explains each
//! finding with a fix. The host checks what every platform shares (backend files, service
//! state, configuration, the worker's env file and PATH, logs, pid files); the backend adds
//! what only its service manager knows (bus, domain, drift of the installed definition, …)
//! through its `doctor` method. The report ends with what sygen outlives (logout, reboot,
//! battery), as the backend says it (see `survival`): facts about the set-up, not checks that
//! pass or fail.

use std::path::Path;

use anyhow::Result;
use serde::Serialize;
use sygen_backend_api::{
    methods::{self, Check, Status, SurvivalLine, SurvivalQuery},
    ServiceDescription, ServiceSpec,
};

use super::{context::Context, survival, worker};
use crate::{
    backend::{boundary, console, select::Survey, trust, update::LastCheck, Backend},
    config::Config,
    description,
    exit::{Exit, Failure},
    platform,
    runtime::{
        home_trust,
        instance::{self, Runtime, RUNTIME_FILE},
    },
};

#[derive(Serialize)]
struct Report<'a> {
    checks: &'a [Check],
    /// What the backend says sygen outlives; `None` when it was not asked (no backend, or one
    /// without the method) or could not say (a check says why).
    survival: Option<&'a [SurvivalLine]>,
    passed: usize,
    warnings: usize,
    failed: usize,
}

pub fn run(backend_file: Option<&Path>, json: bool, colour: bool) -> Result<()> {
    let context = Context::new(backend_file)?;
    let service = description::build()?;
    // What the backend prints while answering is not part of the report (and would break
    // the JSON): its findings come back as checks.
    let ((checks, survival), _) = console::capture(|| checks(&context, &service));
    let count = |status| checks.iter().filter(|c| c.status == status).count();
    let report = Report {
        checks: &checks,
        survival: survival.as_deref(),
        passed: count(Status::Pass),
        warnings: count(Status::Warn),
        failed: count(Status::Fail),
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        for check in &checks {
            println!("{}", render(check, colour));
        }
        if let Some(lines) = &survival {
            print!("{}", survival::render("what sygen outlives:", lines));
        }
        let warnings = match report.warnings {
            1 => "1 warning".to_owned(),
            n => format!("{n} warnings"),
        };
        println!(
            "{} passed, {warnings}, {} failed",
            report.passed, report.failed
        );
    }
    if report.failed > 0 {
        return Err(Failure::new(
            Exit::Failed,
            format!("{} of {} checks failed", report.failed, checks.len()),
        )
        .hint("each failed check says how to fix it")
        .into());
    }
    Ok(())
}

/// One check as a line (and its hint on the next), marked `[pass]`, `[warn]` or `[fail]`.
fn render(check: &Check, colour: bool) -> String {
    let (mark, code) = match check.status {
        Status::Pass => ("pass", "32"),
        Status::Warn => ("warn", "33"),
        Status::Fail => ("FAIL", "31"),
    };
    let mark = if colour {
        format!("\x1b[1;{code}m[{mark}]\x1b[0m")
    } else {
        format!("[{mark}]")
    };
    let mut text = format!("{mark} {}: {}", check.id, check.message);
    if let Some(hint) = &check.hint {
        text.push_str(&format!("\n       fix: {hint}"));
    }
    text
}

/// The checks, and what the backend says sygen outlives.
fn checks(
    context: &Context<'_>,
    service: &ServiceDescription,
) -> (Vec<Check>, Option<Vec<SurvivalLine>>) {
    let home = &context.home;
    let survey = context.survey(false);
    let mut checks: Vec<Check> = trusted_keys().into_iter().collect();
    checks.extend(backend_files(&survey));
    let backend = match survey.load_selected() {
        Ok(backend) => Some(backend),
        Err(failure) => {
            checks.push(Check::fail(
                "backend",
                failure.message.clone(),
                failure.hint.clone().unwrap_or_default(),
            ));
            None
        }
    };
    let spec = service.to_spec();
    let running = match &backend {
        Some(backend) => backend_and_service(backend, &spec, &mut checks),
        None => None,
    };
    // A backend that did not answer is not asked again: its failure says so once.
    let survival = match &backend {
        Some(backend) if !boundary::stuck() => outlives(backend, &spec, &mut checks),
        _ => None,
    };
    checks.extend(backend_updates(home, backend.as_ref()));
    checks.push(home_check(home));
    if let Some(config) = config(home, &mut checks) {
        checks.extend(worker::checks(home, &config, service));
    }
    checks.push(logs_dir(&service.logs_dir));
    checks.push(disk_space(home));
    checks.push(pid_files(home, running));
    (checks, survival)
}

/// What the backend says sygen outlives; a warning when it cannot say.
fn outlives(
    backend: &Backend,
    spec: &ServiceSpec,
    checks: &mut Vec<Check>,
) -> Option<Vec<SurvivalLine>> {
    match survival::ask(backend, spec, SurvivalQuery::default())? {
        Ok(lines) => Some(lines),
        Err(failure) => {
            checks.push(Check::warn(
                "survival",
                format!("cannot tell what sygen outlives: {}", failure.message),
                failure
                    .hint
                    .unwrap_or_else(|| "report this to the backend's publisher".into()),
            ));
            None
        }
    }
}

/// The backend in use, its service manager, its own checks and the service's state. Answers
/// whether the service runs, when that could be asked.
fn backend_and_service(
    backend: &Backend,
    spec: &ServiceSpec,
    checks: &mut Vec<Check>,
) -> Option<bool> {
    let why = backend.why.map_or(String::new(), |why| format!(" ({why})"));
    checks.push(Check::pass(
        "backend",
        format!(
            "{} {} from {}{why}",
            backend.name,
            backend.version,
            backend.path.display()
        ),
    ));
    if let Some(shipped) = &backend.replaces {
        checks.push(Check::warn(
            "backend-replaced",
            format!(
                "{} {} from {} replaces the {0} backend shipped with sygen ({})",
                backend.name,
                backend.version,
                backend.path.display(),
                shipped.display()
            ),
            format!(
                "if you did not install it, remove it: `sygen service backend remove {}`",
                backend.name
            ),
        ));
    }
    // The backend's own checks come even when its manager does not answer: they say why.
    let available = service_manager(backend, spec, checks);
    // A backend that did not answer is not asked again: its failure says so once.
    if !boundary::stuck() {
        checks.extend(backend_checks(backend, spec));
    }
    if available {
        service_state(backend, spec, checks)
    } else {
        None
    }
}

/// Whether the sygen home is one `sygen run` accepts.
fn home_check(home: &Path) -> Check {
    match home_trust::check(home) {
        Ok(()) => Check::pass(
            "home",
            format!(
                "{}, its config.toml and logs can be changed only by you or root",
                home.display()
            ),
        ),
        Err(untrusted) => Check::fail(
            "home",
            format!("{}: sygen run refuses it", untrusted.reason),
            untrusted.hint,
        ),
    }
}

/// Whether the keys backends are checked against can be used, when there are any.
fn trusted_keys() -> Option<Check> {
    const ID: &str = "trusted-keys";
    let (dir, keys) = trust::keys_in_use()?;
    Some(match keys {
        Ok(count) => Check::pass(
            ID,
            format!(
                "{} holds {count} key(s), changeable only by you or root: every backend must be \
                 signed by one",
                dir.display()
            ),
        ),
        Err(unusable) => Check::fail(
            ID,
            format!("every backend is refused: {}", unusable.why),
            unusable.hint,
        ),
    })
}

/// Files that do not load (a warning: another file may serve), and files anyone but the
/// user could have replaced (a failure: sygen refuses to run their code).
fn backend_files(survey: &Survey) -> Vec<Check> {
    let mut checks = Vec::new();
    let mut unsafe_files = 0;
    for found in &survey.found {
        let path = &found.path;
        if let Err(error) = trust::check_trust(path) {
            unsafe_files += 1;
            checks.push(Check::fail(
                "backend-permissions",
                format!("{}: {}", path.display(), error.reason),
                error.hint,
            ));
        } else if let Err(error) = &found.described {
            checks.push(Check::warn(
                "backend-file",
                format!("{} does not load: {}", path.display(), error.reason),
                error.hint.clone(),
            ));
        }
    }
    if unsafe_files == 0 && !survey.found.is_empty() {
        let files = match survey.found.len() {
            1 => "the backend file found".to_owned(),
            n => format!("all {n} backend files found"),
        };
        checks.push(Check::pass(
            "backend-permissions",
            format!("{files} can be changed only by you or root"),
        ));
    }
    checks
}

/// What the last `sygen service backend update --check` (or update) found, never asked anew:
/// doctor does not go online. Nothing when no check was ever made.
fn backend_updates(home: &Path, in_use: Option<&Backend>) -> Option<Check> {
    let last = LastCheck::load(home)?;
    let version = |text: &str| semver::Version::parse(text).ok();
    let pending: Vec<String> = last
        .updates
        .iter()
        .filter(|update| {
            let installed = match in_use.filter(|b| b.name.as_str() == update.name) {
                Some(backend) => Some(backend.version.as_str()),
                None => update.installed.as_deref(),
            };
            version(&update.version) > installed.and_then(version)
        })
        .map(|update| {
            let installed = update.installed.as_deref().unwrap_or("none");
            format!(
                "the {} backend {} ({installed} in use)",
                update.name, update.version
            )
        })
        .collect();
    Some(match pending.is_empty() {
        true => Check::pass(
            "backend-updates",
            format!(
                "no backend update at the last check of {} ({})",
                last.channel, last.checked
            ),
        ),
        false => Check::warn(
            "backend-updates",
            format!(
                "{} available from {} (checked {})",
                pending.join(", "),
                last.channel,
                last.checked
            ),
            "run `sygen service backend update`",
        ),
    })
}

/// Whether the backend's service manager answers; the service's state is asked only then.
fn service_manager(backend: &Backend, spec: &ServiceSpec, checks: &mut Vec<Check>) -> bool {
    let answer = backend.is_service_available(spec);
    // The backend's own error says what it could not ask, with its name.
    let backend_failed = answer.is_err();
    let (status, message, hint) = match answer {
        Ok(true) => (Status::Pass, "answers".to_owned(), None),
        Ok(false) => (
            Status::Fail,
            "is not present or does not answer".to_owned(),
            Some(
                "`sygen service backends` lists the backends found and whether each is usable"
                    .to_owned(),
            ),
        ),
        Err(failure) => (Status::Fail, failure.message, failure.hint),
    };
    let message = match backend_failed {
        true => message,
        false => format!("the {} service manager {message}", backend.name),
    };
    checks.push(Check {
        id: "service-manager".into(),
        status,
        message,
        hint,
    });
    status == Status::Pass
}

fn backend_checks(backend: &Backend, spec: &ServiceSpec) -> Vec<Check> {
    if !backend.capabilities().iter().any(|c| c == methods::DOCTOR) {
        return vec![Check::warn(
            "backend-checks",
            format!(
                "the {} backend {} has no checks of its own",
                backend.name, backend.version
            ),
            "update the backend for checks of its service manager",
        )];
    }
    let answer = backend.call(methods::DOCTOR, "{}", spec).and_then(|json| {
        serde_json::from_str::<methods::Doctor>(&json)
            .map_err(|e| Failure::new(Exit::Failed, format!("its answer is not valid JSON: {e}")))
    });
    match answer {
        Ok(doctor) => doctor.checks,
        Err(failure) => vec![Check::fail(
            "backend-checks",
            format!(
                "the {} backend's checks failed: {}",
                backend.name, failure.message
            ),
            failure
                .hint
                .unwrap_or_else(|| "report this to the backend's publisher".into()),
        )],
    }
}

/// Installed and running? Answers whether it runs, when the backend could say.
fn service_state(backend: &Backend, spec: &ServiceSpec, checks: &mut Vec<Check>) -> Option<bool> {
    let state = backend
        .is_service_installed(spec)
        .and_then(|installed| Ok((installed, installed && backend.is_service_running(spec)?)));
    let (check, running) = match state {
        Ok((false, _)) => (
            Check::warn(
                "service",
                "sygen is not installed as a service",
                "run `sygen service install`",
            ),
            Some(false),
        ),
        Ok((true, false)) => (
            Check::warn(
                "service",
                "sygen is installed but not running",
                "run `sygen service start`; `sygen service logs` shows why it stopped",
            ),
            Some(false),
        ),
        Ok((true, true)) => (
            Check::pass("service", "sygen is installed and running"),
            Some(true),
        ),
        Err(failure) => (
            Check::fail("service", failure.message, failure.hint.unwrap_or_default()),
            None,
        ),
    };
    checks.push(check);
    running
}

fn config(home: &Path, checks: &mut Vec<Check>) -> Option<Config> {
    let path = crate::home::config_file(home);
    match Config::load(&path) {
        Ok(config) => {
            let message = if path.exists() {
                format!("{} is valid", path.display())
            } else {
                format!("no {}: the defaults apply", path.display())
            };
            checks.push(Check::pass("config", message));
            Some(config)
        }
        Err(failure) => {
            checks.push(Check::fail(
                "config",
                failure.message,
                failure
                    .hint
                    .unwrap_or_else(|| "fix the file, or remove it to use the defaults".into()),
            ));
            None
        }
    }
}

/// Whether the runtime can write its logs there (or create the directory).
fn logs_dir(dir: &Path) -> Check {
    const ID: &str = "logs-dir";
    let existing = dir.ancestors().find(|d| d.exists()).unwrap_or(dir);
    // Writing is the one test every platform answers truly (ACLs, read-only mounts, root).
    let access = tempfile::Builder::new()
        .prefix(".sygen-write-check")
        .tempfile_in(existing)
        .map(drop);
    match (existing.is_dir(), access) {
        (true, Ok(())) if existing == dir => Check::pass(
            ID,
            format!("logs go to {}, which is writable", dir.display()),
        ),
        (true, Ok(())) => Check::pass(
            ID,
            format!("logs go to {}, created at the first start", dir.display()),
        ),
        (false, _) if existing == dir => Check::fail(
            ID,
            format!(
                "{} is not a directory, so the logs cannot go there",
                dir.display()
            ),
            format!("move {} away", dir.display()),
        ),
        (false, _) => Check::fail(
            ID,
            format!(
                "{} is not a directory, so {} cannot be created for the logs",
                existing.display(),
                dir.display()
            ),
            format!("move {} away", existing.display()),
        ),
        (true, Err(error)) => Check::fail(
            ID,
            format!(
                "cannot write to {}: {}",
                existing.display(),
                os_message(&error)
            ),
            format!("run `chmod u+w {}`", existing.display()),
        ),
    }
}

/// Less room than this on the home's filesystem fails: the log, the store and an update need
/// it (an update stages a whole library, up to 256 MiB).
const LOW_SPACE: u64 = 64 << 20;

/// Whether the filesystem of the sygen home has room for logs and updates.
fn disk_space(home: &Path) -> Check {
    const ID: &str = "disk-space";
    let existing = home.ancestors().find(|d| d.exists()).unwrap_or(home);
    match platform::available_space(existing) {
        Ok(free) if free >= LOW_SPACE => Check::pass(
            ID,
            format!(
                "{} MiB free for logs and updates in {}",
                free >> 20,
                existing.display()
            ),
        ),
        Ok(free) => Check::fail(
            ID,
            format!(
                "only {} KiB free in {}: logs lose lines and updates fail without room",
                free >> 10,
                existing.display()
            ),
            "make room on that filesystem (at least 64 MiB), or move the sygen home elsewhere",
        ),
        Err(error) => Check::warn(
            ID,
            format!(
                "cannot tell the free space in {}: {error}",
                existing.display()
            ),
            "check the filesystem of the sygen home",
        ),
    }
}

/// An OS error's words, without the " (os error 13)" that follows them.
fn os_message(error: &std::io::Error) -> String {
    let text = error.to_string();
    match text.rsplit_once(" (os error ") {
        Some((words, _)) => words.to_owned(),
        None => text,
    }
}

/// What `bot.pid` and `worker.pid` say, against what the service manager says.
fn pid_files(home: &Path, service_running: Option<bool>) -> Check {
    const ID: &str = "pid-files";
    let runtime_file = home.join(RUNTIME_FILE);
    let runtime = match instance::runtime(home) {
        Runtime::Running(runtime) => runtime.identity.pid,
        Runtime::Unproven { pid } => {
            let names = pid.map_or(String::new(), |p| format!(" (it names pid {p})"));
            return Check::warn(
                ID,
                format!(
                    "{} is locked, but not by a process sygen can prove is its runtime{names}",
                    runtime_file.display()
                ),
                "sygen signals no process it cannot prove it started; `sygen service logs` shows what runs",
            );
        }
        Runtime::Elsewhere { pid } => {
            return Check::warn(
                ID,
                format!(
                    "{} is held by a runtime in another pid namespace (pid {pid} there): \
                     sygen here cannot signal it",
                    runtime_file.display()
                ),
                "`sygen stop` and `sygen restart` work where it runs (in that container or \
                 namespace)",
            );
        }
        Runtime::NotRunning if runtime_file.exists() => {
            return Check::warn(
                ID,
                format!(
                    "{} is left from a runtime that is gone: no runtime holds it",
                    runtime_file.display()
                ),
                "harmless: the next start takes it over, and `sygen stop` removes it",
            );
        }
        Runtime::NotRunning if service_running == Some(true) => {
            return Check::warn(
                ID,
                format!(
                    "the service manager reports sygen running, but no runtime holds {}",
                    runtime_file.display()
                ),
                "the installed service may use another SYGEN_HOME: `sygen service install` rewrites it for this one",
            );
        }
        Runtime::NotRunning => {
            return Check::pass(ID, "no sygen runtime is running here (no bot.pid)")
        }
    };
    match instance::live_worker(home) {
        Some(worker) => Check::pass(
            ID,
            format!(
                "runtime {runtime} holds bot.pid; its worker is {}",
                worker.identity.pid
            ),
        ),
        None => Check::warn(
            ID,
            format!("runtime {runtime} holds bot.pid but has no live worker"),
            "`sygen service logs` shows why the worker stopped",
        ),
    }
}
