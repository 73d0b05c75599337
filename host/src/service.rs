//! `sygen service …`: each subcommand calls the chosen backend; those that change the
//! service's state then wait until it is reached (see `wait`).

use std::path::{Path, PathBuf};

use anyhow::Result;
use serde::Serialize;
use sygen_backend_api::{
    methods::{Change, DryRun, INSTALL_DRY_RUN, STATUS_DETAILS, UNINSTALL_DRY_RUN},
    ServiceSpec,
};

use crate::{
    boundary,
    cli::{BackendCommand, InstallArgs, ServiceCommand, WaitArgs},
    conformance, console, description,
    exit::{Exit, Failure},
    install_backend, lifecycle,
    loader::{self, Backend, Choice},
    progress::Progress,
    registry,
    runtime::config::Config,
    update, wait,
};

pub fn run(command: &ServiceCommand, backend_file: Option<&Path>) -> Result<()> {
    let home = description::sygen_home()?;
    let choice = backend_file.map_or(Choice::Default, Choice::Flag);
    let prepare = || -> Result<(Backend, ServiceSpec)> {
        let backend = loader::select(choice, &home)?;
        tracing::debug!(
            "using the {} backend at {}",
            backend.name,
            backend.path.display()
        );
        Ok((backend, description::build()?.to_spec()))
    };
    let is_dry_run = match command {
        ServiceCommand::Install(args) => args.dry_run.dry_run,
        ServiceCommand::Uninstall(flag) => flag.dry_run,
        _ => false,
    };
    if is_dry_run {
        registry::write_nothing();
    }
    if let ServiceCommand::Install(InstallArgs { wait, .. })
    | ServiceCommand::Start(wait)
    | ServiceCommand::Stop(wait) = command
    {
        boundary::allow_changes_to_take(wait.timeout);
    }
    match command {
        ServiceCommand::Install(args) => {
            let (backend, spec) = prepare()?;
            if args.dry_run.dry_run {
                return dry_run(&backend, &spec, INSTALL_DRY_RUN, &home);
            }
            let backend = backend_to_install(backend, &spec, &home)?;
            install(&backend, &spec, &home, args.wait)?;
        }
        ServiceCommand::Start(wait) => {
            let (backend, spec) = prepare()?;
            let progress = Progress::start("starting sygen");
            let running = operate(&backend, &spec, &progress, Backend::start_service)
                .and_then(|()| until_running(&backend, &spec, &home, *wait, &progress))?;
            drop(progress);
            println!("sygen service started{running}");
        }
        ServiceCommand::Stop(wait) => {
            Config::warn_if_invalid(&home.join("config.toml"), "stop");
            let (backend, spec) = prepare()?;
            let progress = Progress::start("stopping sygen");
            operate(&backend, &spec, &progress, Backend::stop_service)?;
            if !wait.no_wait {
                wait::until_stopped(&backend, &spec, *wait, &progress)?;
            }
            drop(progress);
            end_leftovers(&home);
            println!("sygen service stopped");
        }
        ServiceCommand::Uninstall(flag) => {
            let (backend, spec) = prepare()?;
            if flag.dry_run {
                return dry_run(&backend, &spec, UNINSTALL_DRY_RUN, &home);
            }
            Config::warn_if_invalid(&home.join("config.toml"), "uninstall");
            backend.uninstall_service(&spec)?;
            end_leftovers(&home);
            println!("sygen service uninstalled");
        }
        ServiceCommand::Status(flag) => {
            let (backend, spec) = prepare()?;
            status(&backend, &spec, flag.json)?;
        }
        ServiceCommand::Logs(args) => {
            let (backend, spec) = prepare()?;
            backend.print_service_logs(&spec, args.follow, args.lines)?;
        }
        ServiceCommand::Backends(flag) => list_backends(choice, &home, flag.json)?,
        ServiceCommand::Conformance => conformance::run(backend_file)?,
        ServiceCommand::Backend(command) => match command {
            BackendCommand::Add { file, force } => install_backend::add(file, *force)?,
            BackendCommand::List => install_backend::list()?,
            BackendCommand::Remove { name } => install_backend::remove(name)?,
            BackendCommand::Rollback { name } => install_backend::rollback(name)?,
            BackendCommand::Use { name } => install_backend::use_backend(name)?,
            BackendCommand::Update {
                names,
                check,
                json,
                channel,
            } => update::update(&update::Request {
                names,
                check: *check,
                json: *json,
                channel: channel.as_deref(),
            })?,
            BackendCommand::Publish {
                library,
                key,
                url,
                manifest,
                channel,
                target,
                expires_in,
            } => update::publish::publish(&update::publish::Publication {
                library,
                secret_key: key,
                url,
                manifest,
                channel: channel.as_deref(),
                target: target.as_deref(),
                expires_in: *expires_in,
            })?,
            BackendCommand::Describe { available, files } => {
                registry::describe_here(files, *available)?
            }
        },
    }
    Ok(())
}

/// The backend to install with. The platform's usual backend is passed over when its service
/// manager does not answer here and exactly one other backend for this platform does: that one
/// becomes the lasting choice (as `backend use` makes it), so every later command manages the
/// service it installs.
pub fn backend_to_install(backend: Backend, spec: &ServiceSpec, home: &Path) -> Result<Backend> {
    if backend.why != Some(loader::Why::PlatformDefault)
        || !matches!(backend.is_service_available(spec), Ok(false))
    {
        return Ok(backend);
    }
    let survey = loader::survey(Choice::Default, home, true);
    let mut answering: Vec<&str> = survey
        .found
        .iter()
        .filter(|found| matches!(found.available, Some(Ok(true))))
        .filter_map(|found| found.described.as_ref().ok())
        .filter(|d| d.platform == std::env::consts::OS && d.name != backend.name)
        .map(|d| d.name.as_str())
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
    install_backend::use_backend(other)?;
    Ok(loader::select(Choice::Default, home)?)
}

/// Installs the service and waits until sygen runs; also what onboarding does.
pub fn install(backend: &Backend, spec: &ServiceSpec, home: &Path, wait: WaitArgs) -> Result<()> {
    let progress = Progress::start(&format!("installing sygen ({} backend)", backend.name));
    operate(backend, spec, &progress, Backend::install_service)?;
    let running = until_running(backend, spec, home, wait, &progress)?;
    drop(progress);
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
fn dry_run(backend: &Backend, spec: &ServiceSpec, method: &str, home: &Path) -> Result<()> {
    let operation = method.trim_end_matches(".dry-run");
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
            Change::Run { argv } => {
                let words = argv.iter().map(String::as_str);
                let line = shlex::try_join(words).unwrap_or_else(|_| argv.join(" "));
                println!("would run: {line}");
            }
        }
    }
    if operation == "uninstall" {
        let processes = lifecycle::running_processes(home);
        if !processes.is_empty() {
            println!(
                "would end, if still running after that: {}",
                processes.join(", ")
            );
        }
    }
    println!("dry run: nothing was changed");
    Ok(())
}

/// Some service managers end only the process they started (Task Scheduler's `/End`); the
/// worker it ran is ended here, so a stopped service leaves nothing running.
fn end_leftovers(home: &Path) {
    let ended = lifecycle::end_processes(home);
    if !ended.is_empty() {
        println!("also ended {}", ended.join(", "));
    }
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
}

fn status(backend: &Backend, spec: &ServiceSpec, json: bool) -> Result<()> {
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
            backend: &backend.name,
            backend_version: &backend.version,
            backend_path: &backend.path,
            installed,
            running,
            details,
        };
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else if installed {
        backend.print_service_status(spec)?;
    }
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

/// One backend file, as `sygen service backends` reports it.
#[derive(Serialize)]
struct BackendRow {
    path: PathBuf,
    loaded: bool,
    name: Option<String>,
    version: Option<String>,
    platform: Option<String>,
    description: Option<String>,
    api_version: Option<String>,
    /// Whether its service manager answers here; `null` when the backend could not say.
    available: Option<bool>,
    /// Why `available` is `null`, or why the file did not load.
    error: Option<String>,
    hint: Option<String>,
    selected: bool,
    /// Why the one in use is (`flag`, `env`, `config`, `platform-default`, `only-one`).
    chosen_because: Option<loader::Why>,
    /// The backend shipped with sygen that this one, in use, replaces.
    replaces: Option<PathBuf>,
}

#[derive(Serialize)]
struct BackendsJson {
    searched: Vec<PathBuf>,
    backends: Vec<BackendRow>,
}

fn list_backends(choice: Choice<'_>, home: &Path, json: bool) -> Result<()> {
    let survey = loader::survey(choice, home, true);
    let selected = survey.selected.as_ref().ok().copied();
    let rows: Vec<BackendRow> = survey
        .found
        .iter()
        .enumerate()
        .map(|(index, found)| match &found.described {
            Ok(described) => {
                let (available, error, hint) = match &found.available {
                    Some(Ok(available)) => (Some(*available), None, None),
                    Some(Err(failure)) => {
                        (None, Some(failure.message.clone()), failure.hint.clone())
                    }
                    None => (None, None, None),
                };
                let selected = selected == Some(index);
                BackendRow {
                    path: found.path.clone(),
                    loaded: true,
                    name: Some(described.name.clone()),
                    version: Some(described.version.clone()),
                    platform: Some(described.platform.clone()),
                    description: Some(described.description.clone()),
                    api_version: Some(described.api_version.clone()),
                    available,
                    error,
                    hint,
                    selected,
                    chosen_because: survey.why.filter(|_| selected),
                    replaces: survey.replaces.clone().filter(|_| selected),
                }
            }
            Err(error) => BackendRow {
                path: found.path.clone(),
                loaded: false,
                name: None,
                version: None,
                platform: None,
                description: None,
                api_version: None,
                available: None,
                error: Some(error.reason.clone()),
                hint: Some(error.hint.clone()),
                selected: false,
                chosen_because: None,
                replaces: None,
            },
        })
        .collect();

    if json {
        let report = BackendsJson {
            searched: survey.searched,
            backends: rows,
        };
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_backend_table(&rows);
    }
    if selected.is_none() {
        let reason = if survey.found.is_empty() {
            "no backend files were found".to_owned()
        } else {
            format!("none of the backends found serves {}", std::env::consts::OS)
        };
        return Err(Failure::new(Exit::NoBackend, reason)
            .hint("pass --backend <file> or set SYGEN_BACKEND")
            .into());
    }
    Ok(())
}

fn print_backend_table(rows: &[BackendRow]) {
    let cell = |value: &Option<String>| value.clone().unwrap_or_else(|| "-".into());
    let table: Vec<[String; 6]> = rows
        .iter()
        .filter(|row| row.loaded)
        .map(|row| {
            [
                if row.selected { "*" } else { " " }.to_owned(),
                cell(&row.name),
                cell(&row.version),
                cell(&row.platform),
                match row.available {
                    Some(true) => "yes".to_owned(),
                    Some(false) => "no".to_owned(),
                    None => "unknown".to_owned(),
                },
                row.path.display().to_string(),
            ]
        })
        .collect();
    let header = ["", "NAME", "VERSION", "PLATFORM", "AVAILABLE", "PATH"].map(str::to_owned);
    let mut widths = [0; 6];
    for line in std::iter::once(&header).chain(&table) {
        for (width, value) in widths.iter_mut().zip(line) {
            *width = (*width).max(value.chars().count());
        }
    }
    for line in std::iter::once(&header).chain(&table) {
        let cells: Vec<String> = line
            .iter()
            .zip(widths)
            .map(|(value, width)| format!("{value:width$}"))
            .collect();
        println!("{}", cells.join(" ").trim_end());
    }
    for row in rows {
        if let Some(why) = row.chosen_because {
            println!(
                "* in use: {} {}, {why}",
                cell(&row.name),
                cell(&row.version)
            );
        }
        if let Some(shipped) = &row.replaces {
            println!(
                "note: {} {} ({}) replaces the {0} backend shipped with sygen ({})",
                cell(&row.name),
                cell(&row.version),
                row.path.display(),
                shipped.display()
            );
        }
        match (row.loaded, &row.error) {
            (true, Some(error)) => {
                println!("{}: availability unknown: {error}", cell(&row.name));
            }
            (false, Some(error)) => println!("not loaded: {}: {error}", row.path.display()),
            _ => {}
        }
    }
}
