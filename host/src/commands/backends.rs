//! `sygen service backends` and `sygen service backend …`: the backend files found, the
//! store of installed versions (add, list, remove, rollback, use), updates from a channel and
//! publishing to one, and the describing child (`describe`, run by sygen itself).

use std::{
    fs,
    path::{Path, PathBuf},
};

use anyhow::{Context as _, Result};
use serde::Serialize;
use sygen_backend_api::sdk::fs::write_atomic;

use super::context::Context;
pub use crate::backend::update::publish::Publication;
use crate::{
    backend::{
        probe, registry, select, store,
        update::{self, publish},
        BackendName, Described, Why,
    },
    config::{self, Config},
    description,
    exit::{Exit, Failure},
    home,
};

/// `backend add <file>`: checks `file` in a child process, then installs it.
pub fn add(file: &Path, force: bool) -> Result<()> {
    let new = registry::describe_in_child(file).map_err(|failure| Failure {
        message: format!("{}; nothing was installed", failure.message),
        ..failure
    })?;
    println!("{}", store::lock()?.add(file, &new, force)?);
    Ok(())
}

/// `backend remove <name>`.
pub fn remove(name: &BackendName) -> Result<()> {
    let removed = store::lock()?.remove(name)?;
    println!("removed the {name} backend ({})", removed.display());
    Ok(())
}

/// `backend rollback <name>`.
pub fn rollback(name: &BackendName) -> Result<()> {
    println!("{}", store::lock()?.rollback(name)?);
    Ok(())
}

/// `backend list`: per backend name, the file sygen uses, its version and why, and what
/// `rollback` would restore.
pub fn list() -> Result<()> {
    let context = Context::new(None)?;
    let _lock = store::lock_if_present(&context.home)?;
    // What each file is comes from the registry: listing runs no backend's code here.
    let found = context.survey(false).found;
    let described: Vec<(usize, &Described)> = found
        .iter()
        .enumerate()
        .filter_map(|(i, f)| Some((i, f.described.as_ref().ok()?)))
        .collect();
    let mut names: Vec<&BackendName> = described.iter().map(|(_, d)| &d.name).collect();
    names.sort_unstable();
    names.dedup();
    if names.is_empty() {
        println!("no backend found");
    }
    for name in names {
        let copies: Vec<&(usize, &Described)> =
            described.iter().filter(|(_, d)| &d.name == name).collect();
        let identities: Vec<&Described> = copies.iter().map(|(_, d)| *d).collect();
        let platform = copies[0].1.platform.clone();
        let chosen = select::choose(&identities, &platform, None).map_or(0, |(i, _)| i);
        let (index, active) = *copies[chosen];
        let why = match copies.len() {
            1 => "the only copy found".to_owned(),
            n => format!(
                "the highest version of the {n} copies found (first in search order when equal)"
            ),
        };
        let shipped = select::shipped_one_replaced(&found, index, &context.home);
        let replaces = shipped.map_or(String::new(), |shipped| {
            format!(
                "; it replaces the one shipped with sygen ({})",
                shipped.display()
            )
        });
        println!(
            "{name} {}: {} — {why}{replaces}",
            active.version,
            found[index].path.display()
        );
        if let Some(kept) = store::kept(&context.home, name) {
            match registry::describe_in_child(&kept) {
                Ok(probe) => println!(
                    "  kept for rollback: {} ({})",
                    probe.version,
                    kept.display()
                ),
                Err(error) => println!("  kept for rollback: {} ({error:#})", kept.display()),
            }
        }
    }
    for file in &found {
        if let Err(error) = &file.described {
            println!("not loaded: {}: {}", file.path.display(), error.reason);
        }
    }
    Ok(())
}

/// `backend use <name>`: makes `name` the backend every later command uses, by writing
/// `backend = "<name>"` into config.toml (the rest of the file, comments included, stays as it
/// is). Only a backend found for this platform can be chosen, and only in a configuration that
/// parses.
pub fn use_backend(name: &BackendName) -> Result<()> {
    let context = Context::new(None)?;
    let survey = context.survey(false);
    let found = survey.found.iter().find(|f| {
        f.described
            .as_ref()
            .is_ok_and(|d| &d.name == name && d.platform == std::env::consts::OS)
    });
    let Some(found) = found else {
        return Err(Failure::new(
            Exit::NoBackend,
            format!(
                "no {name} backend for {} was found",
                std::env::consts::OS
            ),
        )
        .hint("`sygen service backends` lists the backends found; `sygen service backend add <file>` installs one")
        .into());
    };
    let home = &context.home;
    let path = home::config_file(home);
    let text = config::read(&path)?.unwrap_or_default();
    // Only a configuration that parses is edited.
    Config::parse(&text, &path)?;
    let mut document: toml_edit::DocumentMut = text
        .parse()
        .with_context(|| format!("cannot parse {}", path.display()))?;
    document["backend"] = toml_edit::value(name.as_str());
    fs::create_dir_all(home).with_context(|| format!("cannot create {}", home.display()))?;
    write_atomic(&path, document.to_string().as_bytes(), Some(0o600))
        .with_context(|| format!("cannot write {}", path.display()))?;
    println!(
        "sygen uses the {name} backend from now on ({}; set in {})",
        found.path.display(),
        path.display()
    );
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
    chosen_because: Option<Why>,
    /// The backend shipped with sygen that this one, in use, replaces.
    replaces: Option<PathBuf>,
}

#[derive(Serialize)]
struct BackendsJson {
    searched: Vec<PathBuf>,
    backends: Vec<BackendRow>,
}

/// `sygen service backends [--json]`: every backend file found, what it is, whether its
/// service manager answers, and the one in use.
pub fn found(json: bool, backend_file: Option<&Path>) -> Result<()> {
    let survey = Context::new(backend_file)?.survey(true);
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
                    name: Some(described.name.to_string()),
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

/// `backend update [<name>…] [--check] [--json] [--channel <url>]`.
pub fn update(names: &[BackendName], check: bool, json: bool, channel: Option<&str>) -> Result<()> {
    let config = Config::of_home(&home::sygen_home()?)?;
    let url = update::channel_url(channel, config.updates.channel.as_deref())?;
    update::update(&update::Request {
        names,
        check,
        json,
        channel: &url,
        ca_file: config.updates.ca_file.as_deref(),
        min_rate: config.updates.min_bytes_per_second,
    })
}

/// `backend publish`.
pub fn publish(publication: &Publication<'_>) -> Result<()> {
    publish::publish(publication)
}

/// `backend describe [--available] <file>…`: the describing child (see `backend::probe`).
pub fn describe(files: &[PathBuf], available: bool) -> Result<()> {
    let home = home::sygen_home()?;
    let preferences = Config::backend_preferences(&home);
    let service = description::build()
        .map(|d| d.to_spec())
        .map_err(|e| Failure::new(Exit::Failed, format!("{e:#}")));
    Ok(probe::describe_here(
        files,
        available,
        &preferences,
        service,
    )?)
}
