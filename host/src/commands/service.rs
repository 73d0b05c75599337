//! `sygen service …`: each subcommand calls the chosen backend; those that change the
//! service's state then wait until it is reached (see `wait`).

use std::path::Path;

use anyhow::Result;
use serde::Serialize;
use sygen_backend_api::{
    methods::{Change, DryRun, SurvivalQuery, INSTALL_DRY_RUN, STATUS_DETAILS, UNINSTALL_DRY_RUN},
    ServiceDescription, ServiceSpec,
};

use super::{
    backends,
    cli::{InstallArgs, LogsArgs, WaitArgs},
    context::Context,
    lifecycle, survival, wait, worker,
};
use crate::{
    backend::{boundary, console, registry, Backend, BackendName, Choice, Why},
    config::Config,
    exit::{Exit, Failure},
    progress::Progress,
    runtime::{instance, state::State},
};

/// What a dry run shows: the backend's plan for one of the operations that can show one.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Planned {
    Install,
    Uninstall,
}

impl Planned {
    /// The backend's `call` method that answers the plan.
    fn method(self) -> &'static str {
        match self {
            Planned::Install => INSTALL_DRY_RUN,
            Planned::Uninstall => UNINSTALL_DRY_RUN,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Planned::Install => "install",
            Planned::Uninstall => "uninstall",
        }
    }
}

/// `sygen service install [--dry-run]`.
pub fn install_command(args: &InstallArgs, backend_file: Option<&Path>) -> Result<()> {
    boundary::allow_changes_to_take(args.wait.timeout);
    if args.dry_run.dry_run {
        // A dry run changes nothing in the sygen home, not even the cache.
        registry::write_nothing();
    }
    let context = Context::new(backend_file)?;
    let (backend, spec) = context.backend_and_spec()?;
    if args.dry_run.dry_run {
        return dry_run(&backend, &spec, Planned::Install, &context.home);
    }
    worker::warn_before_install(&context.home, &ServiceDescription::from_spec(&spec));
    let backend = backend_to_install(backend, &spec, &context)?;
    install(&backend, &spec, &context.home, args.wait)
}

/// `sygen service start`.
pub fn start(wait: WaitArgs, backend_file: Option<&Path>) -> Result<()> {
    boundary::allow_changes_to_take(wait.timeout);
    let context = Context::new(backend_file)?;
    let (backend, spec) = context.backend_and_spec()?;
    let progress = Progress::start("starting sygen");
    let running = operate(&backend, &spec, &progress, Backend::start_service)
        .and_then(|()| until_running(&backend, &spec, &context.home, wait, &progress))?;
    drop(progress);
    println!("sygen service started{running}");
    Ok(())
}

/// `sygen service stop`.
pub fn stop(wait: WaitArgs, backend_file: Option<&Path>) -> Result<()> {
    boundary::allow_changes_to_take(wait.timeout);
    let context = Context::new(backend_file)?;
    Config::warn_if_invalid(&context.home, "stop");
    let (backend, spec) = context.backend_and_spec()?;
    let progress = Progress::start("stopping sygen");
    operate(&backend, &spec, &progress, Backend::stop_service)?;
    if !wait.no_wait {
        wait::until_stopped(&backend, &spec, wait, &progress)?;
    }
    drop(progress);
    end_leftovers(&context.home)?;
    println!("sygen service stopped");
    Ok(())
}

/// `sygen service uninstall [--dry-run]`.
pub fn uninstall(dry: bool, backend_file: Option<&Path>) -> Result<()> {
    if dry {
        registry::write_nothing();
    }
    let context = Context::new(backend_file)?;
    let (backend, spec) = context.backend_and_spec()?;
    if dry {
        return dry_run(&backend, &spec, Planned::Uninstall, &context.home);
    }
    Config::warn_if_invalid(&context.home, "uninstall");
    backend.uninstall_service(&spec)?;
    end_leftovers(&context.home)?;
    println!("sygen service uninstalled");
    Ok(())
}

/// `sygen service logs`.
pub fn logs(args: &LogsArgs, backend_file: Option<&Path>) -> Result<()> {
    let (backend, spec) = Context::new(backend_file)?.backend_and_spec()?;
    Ok(backend.print_service_logs(&spec, args.follow, args.lines)?)
}

/// The backend to install with. The platform's usual backend is passed over when its service
/// manager does not answer here and exactly one other backend for this platform does: that one
/// becomes the lasting choice (as `backend use` makes it), so every later command manages the
/// service it installs.
pub fn backend_to_install(
    backend: Backend,
    spec: &ServiceSpec,
    context: &Context<'_>,
) -> Result<Backend> {
    if backend.why != Some(Why::PlatformDefault)
        || !matches!(backend.is_service_available(spec), Ok(false))
    {
        return Ok(backend);
    }
    let survey = context.survey(true);
    let mut answering: Vec<&BackendName> = survey
        .found
        .iter()
        .filter(|found| matches!(found.available, Some(Ok(true))))
        .filter_map(|found| found.described.as_ref().ok())
        .filter(|d| d.platform == std::env::consts::OS && d.name != backend.name)
        .map(|d| &d.name)
        .collect();
    answering.sort_unstable();
    answering.dedup();
    let [other] = answering[..] else {
        return Ok(backend);
    };
    println!(
        "the {} service manager does not answer here; {other} is the only other backend for {} whose service manager does",
        backend.name,
        std::env::consts::OS
    );
    let name = other.clone();
    backends::use_backend(&name)?;
    let context = Context {
        choice: Choice::Default,
        preferences: Config::backend_preferences(&context.home),
        home: context.home.clone(),
    };
    Ok(context.backend()?)
}

/// Installs the service and waits until sygen runs, then says what it outlives; also what
/// onboarding does.
pub fn install(backend: &Backend, spec: &ServiceSpec, home: &Path, wait: WaitArgs) -> Result<()> {
    let progress = Progress::start(&format!("installing sygen ({} backend)", backend.name));
    operate(backend, spec, &progress, Backend::install_service)?;
    let running = until_running(backend, spec, home, wait, &progress)?;
    let outlives = survival::ask(backend, spec, SurvivalQuery::default());
    drop(progress);
    // Before the final line, which says the state reached.
    survival::print(outlives, "what sygen outlives:");
    println!(
        "sygen service installed ({} backend{}){running}",
        backend.name,
        backend.replacing()
    );
    Ok(())
}

/// Runs a backend operation under the progress display; when it fails in a way the service's
/// logs would explain, shows them.
fn operate(
    backend: &Backend,
    spec: &ServiceSpec,
    progress: &Progress,
    operation: fn(&Backend, &ServiceSpec) -> Result<(), Failure>,
) -> Result<()> {
    let result = operation(backend, spec).map_err(anyhow::Error::from);
    if let Err(error) = &result {
        if wait::logs_would_explain(error) {
            progress.clear();
            wait::show_logs(backend, spec);
        }
    }
    result
}

/// Waits for sygen to run unless told not to; answers the tail of the final state line.
fn until_running(
    backend: &Backend,
    spec: &ServiceSpec,
    home: &Path,
    wait: WaitArgs,
    progress: &Progress,
) -> Result<String> {
    if wait.no_wait {
        return Ok(String::new());
    }
    let running = wait::until_running(backend, spec, home, wait, progress)?;
    Ok(format!(
        "; running: runtime pid {}, worker pid {}",
        running.runtime, running.worker
    ))
}

/// Prints what install or uninstall would change, changing nothing: the backend's files and
/// commands, then the processes sygen itself would end.
fn dry_run(backend: &Backend, spec: &ServiceSpec, planned: Planned, home: &Path) -> Result<()> {
    let (method, operation) = (planned.method(), planned.name());
    if !backend.capabilities().iter().any(|c| c == method) {
        return Err(Failure::new(
            Exit::Failed,
            format!(
                "the {} backend {} cannot show a dry run of {operation}",
                backend.name, backend.version
            ),
        )
        .hint("update the backend; without --dry-run the change is made")
        .into());
    }
    let answer = backend.call(method, "{}", spec)?;
    let plan: DryRun = serde_json::from_str(&answer).map_err(|e| {
        Failure::new(
            Exit::Failed,
            format!(
                "the {} backend answered an invalid dry run: {e}",
                backend.name
            ),
        )
    })?;
    for change in &plan.changes {
        match change {
            Change::Write {
                path,
                mode,
                encoding,
                content,
            } => {
                let mode = mode.map(|m| format!(", mode {m:04o}")).unwrap_or_default();
                println!("would write {} ({encoding}{mode}):", path.display());
                print!("{content}");
                if !content.ends_with('\n') {
                    println!();
                }
            }
            Change::Remove { path } => println!("would remove {}", path.display()),
            Change::Run { argv } => println!("would run: {}", shell_line(&[], argv)),
            Change::Symlink { link, target } => {
                println!("would link {} to {}", link.display(), target.display())
            }
            Change::StartDetached { argv, env } => {
                println!("would start, detached: {}", shell_line(env, argv))
            }
        }
    }
    match planned {
        Planned::Install => {
            let query = SurvivalQuery {
                after_install: true,
            };
            survival::print(
                survival::ask(backend, spec, query),
                "what sygen would outlive:",
            );
        }
        Planned::Uninstall => {
            let processes = lifecycle::running_processes(home);
            if !processes.is_empty() {
                println!(
                    "would end, if still running after that: {}",
                    processes.join(", ")
                );
            }
        }
    }
    println!("dry run: nothing was changed");
    Ok(())
}

/// `env` and `argv` as one line of POSIX shell that would do the same: `KEY=value` words, then
/// the command, each quoted only where needed.
fn shell_line(env: &[(String, String)], argv: &[String]) -> String {
    let quote = |word: &str| {
        shlex::try_quote(word).map_or_else(|_| word.to_owned(), |quoted| quoted.into_owned())
    };
    env.iter()
        .map(|(key, value)| format!("{key}={}", quote(value)))
        .chain(argv.iter().map(|word| quote(word)))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Some service managers end only the process they started (Task Scheduler's `/End`); the
/// worker it ran is ended here, so a stopped service leaves nothing running.
fn end_leftovers(home: &Path) -> Result<(), Failure> {
    let ended = lifecycle::end_processes(home, None)?;
    if !ended.is_empty() {
        println!("also ended {}", ended.join(", "));
    }
    Ok(())
}

#[derive(Serialize)]
struct StatusJson<'a> {
    backend: &'a str,
    backend_version: &'a str,
    backend_path: &'a Path,
    installed: bool,
    running: bool,
    /// What the backend adds through its `status.details` method, if it has one.
    details: Option<serde_json::Value>,
    /// The runtime's own record (`state.json`), if it left one.
    runtime: Option<RuntimeJson>,
}

#[derive(Serialize)]
struct RuntimeJson {
    /// Whether the runtime that wrote the record still runs.
    alive: bool,
    #[serde(flatten)]
    state: State,
}

/// The runtime's record in `home`, and whether the runtime that wrote it still runs.
fn runtime_state(home: &Path) -> Option<RuntimeJson> {
    let state = State::read(home)?;
    let alive = matches!(
        instance::runtime(home),
        instance::Runtime::Running(record) if record.identity.pid == state.runtime_pid
    );
    Some(RuntimeJson { alive, state })
}

/// Says what the runtime does, from its record: a crash loop or a runtime that gave up shows
/// here whatever the service manager thinks of it.
fn print_runtime_state(runtime: &RuntimeJson) {
    let summary = runtime
        .state
        .summary(runtime.alive, std::time::SystemTime::now());
    println!("runtime: {summary}");
    if let Some(hint) = runtime.state.hint() {
        println!("  hint: {hint}");
    }
}

/// `sygen service status [--json]`.
pub fn status(json: bool, backend_file: Option<&Path>) -> Result<()> {
    let context = Context::new(backend_file)?;
    let (backend, spec) = context.backend_and_spec()?;
    let installed = report_status(&backend, &spec, &context.home, json)?;
    if !installed {
        return Err(Failure::new(
            Exit::NotInstalled,
            format!("sygen is not installed ({} backend)", backend.name),
        )
        .hint("run `sygen service install`")
        .into());
    }
    Ok(())
}

/// Prints the service's status (as JSON, or as the backend says it); answers whether the
/// service is installed.
fn report_status(backend: &Backend, spec: &ServiceSpec, home: &Path, json: bool) -> Result<bool> {
    let installed = if json {
        // Only the report goes to stdout: what the backend prints while answering would
        // break the JSON.
        console::capture(|| backend.is_service_installed(spec)).0?
    } else {
        backend.is_service_installed(spec)?
    };
    if json {
        let (answers, _) = console::capture(|| -> Result<_> {
            let running = installed && backend.is_service_running(spec)?;
            let details = if installed && backend.capabilities().iter().any(|c| c == STATUS_DETAILS)
            {
                let answer = backend.call(STATUS_DETAILS, "{}", spec)?;
                Some(serde_json::from_str(&answer).map_err(|e| {
                    Failure::new(
                        Exit::Failed,
                        format!("the {} backend answered invalid JSON: {e}", backend.name),
                    )
                })?)
            } else {
                None
            };
            Ok((running, details))
        });
        let (running, details) = answers?;
        let report = StatusJson {
            backend: backend.name.as_str(),
            backend_version: &backend.version,
            backend_path: &backend.path,
            installed,
            running,
            details,
            runtime: runtime_state(home),
        };
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else if installed {
        backend.print_service_status(spec)?;
        if let Some(runtime) = runtime_state(home) {
            print_runtime_state(&runtime);
        }
    }
    Ok(installed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shell_line_quotes_each_value_after_its_equals_sign() {
        let words = |words: &[&str]| words.iter().map(|w| w.to_string()).collect::<Vec<_>>();
        let env = [("SVDIR".to_owned(), "/home/a b/service".to_owned())];
        assert_eq!(
            shell_line(&env, &words(&["runsvdir", "-P", "/home/a b/service"])),
            "SVDIR='/home/a b/service' runsvdir -P '/home/a b/service'"
        );
        assert_eq!(
            shell_line(&[], &words(&["systemctl", "--user", "start", "it's"])),
            r#"systemctl --user start "it's""#
        );
    }
}
