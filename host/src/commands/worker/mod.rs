//! What doctor and install say about the worker before it runs: whether its env file can be
//! used (`env-file`), and whether its program, and the interpreter its `#!` line names, are
//! found with the PATH the worker will really have (`worker-path`), naming what only the
//! shell's PATH finds, with the fix. Never a value of the worker's environment: names only, and
//! where a program is found only when the service's own PATH found it.
//!
//! The worker's PATH is `[agent] env`'s, else its env file's, else the service's (the host
//! builds it: see `description`). The env file is read as the runtime reads it, by a child
//! (`sygen worker-path`) given the service's environment, so `$PATH` in the file is the
//! service's PATH, as it will be, not the shell's.

mod search;

use std::{
    collections::BTreeSet,
    env,
    ffi::OsStr,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use anyhow::Result;
use serde::{Deserialize, Serialize};
use sygen_backend_api::{
    methods::{Check, Status},
    ServiceDescription,
};

use self::search::{Finding, Needed, Paths};
use crate::{config::Config, exit, home, platform, worker_env};

/// How many variable names the `env-file` check lists before it only counts the rest.
const LISTED_NAMES: usize = 10;

/// What `sygen worker-path` answers: the PATH the env file gives the worker, if it sets one.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct EnvFilePath {
    path: Option<String>,
}

/// Where the worker's PATH comes from.
#[derive(Clone, Copy)]
enum PathFrom {
    Service,
    AgentEnv,
    EnvFile,
}

impl PathFrom {
    fn phrase(self) -> &'static str {
        match self {
            PathFrom::Service => "the service's PATH",
            PathFrom::AgentEnv => "the PATH [agent] env gives it",
            PathFrom::EnvFile => "the PATH its env file gives it",
        }
    }
}

/// Doctor's checks of the worker: its env file (when it has one), then its PATH. A worker
/// whose env file cannot be used does not start at all, so its PATH is not checked then.
pub fn checks(home: &Path, config: &Config, service: &ServiceDescription) -> Vec<Check> {
    const ID: &str = "env-file";
    let mut checks = Vec::new();
    if let Some(file) = worker_env::env_file(home, &config.agent) {
        match worker_env::read(&file) {
            Ok(vars) => checks.push(Check::pass(
                ID,
                format!(
                    "{} gives the worker {} (values are never shown)",
                    file.display(),
                    names(&vars)
                ),
            )),
            Err(error) => {
                checks.push(Check::fail(ID, error.message, error.hint));
                return checks;
            }
        }
    }
    checks.push(worker_path(home, config, service));
    checks
}

/// `sygen service install`'s warnings about the worker, one line each: the install goes on,
/// and the worker would fail once it starts.
pub fn warn_before_install(home: &Path, service: &ServiceDescription) {
    // A configuration that does not load is warned about already, where backends are chosen.
    let Ok(config) = Config::of_home(home) else {
        return;
    };
    for check in checks(home, &config, service) {
        if check.status != Status::Pass {
            let hint = check.hint.unwrap_or_default();
            eprintln!(
                "warning: {} (hint: {})",
                exit::one_line(&check.message),
                exit::one_line(&hint)
            );
        }
    }
}

/// `sygen worker-path` (hidden): prints the PATH the env file gives the worker as
/// [`EnvFilePath`] JSON. Run with the service's environment, it reads the file as the runtime
/// will.
pub fn print_env_file_path() -> Result<()> {
    let home = home::sygen_home()?;
    let config = Config::of_home(&home)?;
    let path = match worker_env::env_file(&home, &config.agent) {
        Some(file) => search_path(worker_env::read(&file)?),
        None => None,
    };
    println!("{}", serde_json::to_string(&EnvFilePath { path })?);
    Ok(())
}

/// "3 variables: A, B, C" (the first ten names, then how many more), each name once.
fn names(vars: &[(String, String)]) -> String {
    let mut seen = BTreeSet::new();
    let names: Vec<&str> = vars
        .iter()
        .map(|(name, _)| name.as_str())
        .filter(|name| seen.insert(*name))
        .collect();
    let more = match names.len().saturating_sub(LISTED_NAMES) {
        0 => String::new(),
        n => format!(" and {n} more"),
    };
    match names.len() {
        0 => "no variables".to_owned(),
        1 => format!("1 variable: {}", names[0]),
        n => format!(
            "{n} variables: {}{more}",
            names[..n.min(LISTED_NAMES)].join(", ")
        ),
    }
}

/// The PATH among `vars` (the last one, which wins), if any.
fn search_path(vars: impl IntoIterator<Item = (String, String)>) -> Option<String> {
    vars.into_iter()
        .filter(|(name, _)| platform::is_search_path(name))
        .last()
        .map(|(_, value)| value)
}

/// Whether the worker's command, and its interpreter, are found with the PATH it will have.
fn worker_path(home: &Path, config: &Config, service: &ServiceDescription) -> Check {
    const ID: &str = "worker-path";
    let agent = &config.agent;
    let Some(command) = agent.command.first() else {
        return Check::pass(ID, "the worker is the built-in agent (sygen itself)");
    };
    let (path, from) = match path_of_worker(home, config, service) {
        Ok(found) => found,
        Err(why) => {
            return Check::warn(
                ID,
                format!("cannot tell the PATH the worker will have: {why}"),
                "run `sygen doctor` again; `sygen service logs` shows what the worker does",
            )
        }
    };
    let working_dir = agent
        .working_dir
        .as_ref()
        .map_or_else(|| service.home.clone(), PathBuf::from);
    let shell = env::var_os("PATH");
    let paths = Paths {
        worker: OsStr::new(&path),
        shell: shell.as_deref(),
        working_dir: &working_dir,
    };
    match search::find(command, &paths) {
        Finding::Found {
            command: found,
            interpreter,
        } => Check::pass(ID, found_message(command, &found, interpreter, from)),
        Finding::ShellOnly {
            needed,
            shell_finds,
        } => {
            let dir = shell_finds.parent().unwrap_or(&shell_finds);
            let fix = match &needed {
                Needed::Command(_) => {
                    format!(
                        "give its full path ({}) in [agent] command",
                        shell_finds.display()
                    )
                }
                Needed::Interpreter { script, .. } => format!(
                    "name it by its full path in the #! line of {} (#!{})",
                    script.display(),
                    shell_finds.display()
                ),
            };
            Check::fail(
                ID,
                format!(
                    "{} is not on {}; your shell finds it in {}",
                    what(&needed),
                    from.phrase(),
                    dir.display()
                ),
                format!(
                    "{fix}, or set PATH in [agent] env in config.toml to include {}",
                    dir.display()
                ),
            )
        }
        Finding::Missing(needed) => {
            let message = match search::is_bare(needed.name()) {
                true => format!("{} is not found with {}", what(&needed), from.phrase()),
                false => format!("{} does not exist", what(&needed)),
            };
            let hint = match &needed {
                Needed::Command(_) => {
                    "install it, or give its full path in [agent] command in config.toml".to_owned()
                }
                Needed::Interpreter { script, .. } => {
                    format!("install it, or correct the #! line of {}", script.display())
                }
            };
            Check::fail(ID, message, hint)
        }
    }
}

/// What a check says of a worker found: where, when the service's own PATH found it (a PATH
/// of the worker's environment is not shown, not even in part).
fn found_message(
    command: &str,
    found: &Path,
    interpreter: Option<PathBuf>,
    from: PathFrom,
) -> String {
    match (from, interpreter) {
        (PathFrom::Service, None) => format!(
            "the worker `{command}` is {} with the service's PATH",
            found.display()
        ),
        (PathFrom::Service, Some(interpreter)) => format!(
            "the worker `{command}` is {}, run by {}, with the service's PATH",
            found.display(),
            interpreter.display()
        ),
        (from, None) => format!("the worker `{command}` is found with {}", from.phrase()),
        (from, Some(_)) => format!(
            "the worker `{command}` and its interpreter are found with {}",
            from.phrase()
        ),
    }
}

/// How a check names what it looked for.
fn what(needed: &Needed) -> String {
    match needed {
        Needed::Command(name) => format!("the worker `{name}`"),
        Needed::Interpreter { name, script } => format!(
            "the interpreter `{name}` that the #! line of {} names",
            script.display()
        ),
    }
}

/// The PATH the worker will have, and where it comes from; why not, when it cannot be told.
fn path_of_worker(
    home: &Path,
    config: &Config,
    service: &ServiceDescription,
) -> Result<(String, PathFrom), String> {
    let agent = &config.agent;
    if let Some(path) = search_path(agent.env.clone()) {
        return Ok((path, PathFrom::AgentEnv));
    }
    let service_path = search_path(service.env.clone()).unwrap_or_default();
    if worker_env::env_file(home, agent).is_none() {
        return Ok((service_path, PathFrom::Service));
    }
    Ok(match env_file_path(service)? {
        Some(path) => (path, PathFrom::EnvFile),
        None => (service_path, PathFrom::Service),
    })
}

/// The PATH the env file gives the worker, if any: `sygen worker-path` answers it, run with the
/// service's environment.
fn env_file_path(service: &ServiceDescription) -> Result<Option<String>, String> {
    let sygen = env::current_exe().map_err(|e| format!("cannot find sygen itself: {e}"))?;
    let output = Command::new(sygen)
        .arg("worker-path")
        .envs(service.env.iter().map(|(name, value)| (name, value)))
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run `sygen worker-path`: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "`sygen worker-path` failed ({}) reading the env file",
            output.status
        ));
    }
    let answer: EnvFilePath = serde_json::from_slice(&output.stdout)
        .map_err(|e| format!("`sygen worker-path` answered no PATH: {e}"))?;
    Ok(answer.path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(names: &[&str]) -> Vec<(String, String)> {
        names
            .iter()
            .map(|n| ((*n).to_owned(), "secret".to_owned()))
            .collect()
    }

    #[test]
    fn the_env_file_check_lists_names_once_and_never_values() {
        assert_eq!(names(&[]), "no variables");
        assert_eq!(names(&vars(&["A"])), "1 variable: A");
        assert_eq!(names(&vars(&["A", "B", "A"])), "2 variables: A, B");
        let many: Vec<String> = (0..12).map(|i| format!("V{i}")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        assert_eq!(
            names(&vars(&many)),
            "12 variables: V0, V1, V2, V3, V4, V5, V6, V7, V8, V9 and 2 more"
        );
    }

    #[test]
    fn the_last_path_wins() {
        let vars = [("PATH", "/a"), ("X", "/x"), ("PATH", "/b")]
            .map(|(k, v)| (k.to_owned(), v.to_owned()));
        assert_eq!(search_path(vars), Some("/b".to_owned()));
        assert_eq!(search_path(Vec::new()), None);
    }
}
