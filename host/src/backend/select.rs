//! Finding and choosing the backend to use.
//!
//! Search order: `--backend <file>`, then `$SYGEN_BACKEND`, then the backend files of the
//! search path (see `places`; the store's installed versions included). Among those, the
//! backend for the running platform is chosen (the one config.toml names, else the platform's
//! usual one, else the only one), and of several versions the highest that loads. What each
//! file is comes from the registry, so nothing but the one chosen is loaded here.

use std::path::{Path, PathBuf};

use super::{
    handle::{Backend, Settings, Why},
    identity::Described,
    library,
    load_error::LoadError,
    name::{self, BackendName},
    places, registry, store,
};
use crate::exit::{Exit, Failure};

/// The backend shipped with sygen that `found[chosen]` replaces: one of the same name in a
/// directory beside the sygen binary, when the chosen one comes from `$SYGEN_HOME/backends`. A
/// newer backend installed there wins over the shipped one by design; sygen says so wherever
/// it names the backend in use, so that it never happens unseen.
pub fn shipped_one_replaced(found: &[Found], chosen: usize, sygen_home: &Path) -> Option<PathBuf> {
    let installed = dunce::canonicalize(sygen_home.join("backends")).ok()?;
    let chosen = &found[chosen];
    let name = &chosen.described.as_ref().ok()?.name;
    if !chosen.path.starts_with(&installed) {
        return None;
    }
    found
        .iter()
        .find(|other| {
            other.described.as_ref().is_ok_and(|d| &d.name == name)
                && !other.path.starts_with(&installed)
        })
        .map(|shipped| shipped.path.clone())
}

/// Every backend file in `dirs`, in search order: in each directory, the files named like
/// backend libraries and the version in use of each backend `backend add` installed there.
pub fn backend_files(dirs: &[PathBuf]) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for dir in dirs {
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        let mut files: Vec<PathBuf> = entries
            .filter_map(|e| e.ok())
            .filter(|e| {
                e.file_name()
                    .to_str()
                    .is_some_and(name::is_backend_file_name)
            })
            .map(|e| e.path())
            .collect();
        // Backends installed by `backend add` live one level down, in the version directory
        // their `state` file names.
        files.extend(store::active_files(dir));
        files.sort();
        found.extend(files);
    }
    found
}

/// The backend name sygen uses by default on `platform`.
fn preferred_backend(platform: &str) -> Option<&'static str> {
    match platform {
        "linux" => Some("systemd"),
        "macos" => Some("launchd"),
        "windows" => Some("tasksched"),
        _ => None,
    }
}

/// Chooses the backend for `platform`: the one `configured` names, else the platform's usual
/// backend if present, else the only one there is; of several versions of it, the highest.
/// Answers an index into `candidates` and why.
pub fn choose(
    candidates: &[&Described],
    platform: &str,
    configured: Option<&BackendName>,
) -> Result<(usize, Why), Failure> {
    let for_platform = |i: &usize| candidates[*i].platform == platform;
    let mut eligible: Vec<usize> = (0..candidates.len()).filter(for_platform).collect();
    let mut why = Why::OnlyOne;
    if let Some(name) = configured {
        eligible.retain(|&i| &candidates[i].name == name);
        if eligible.is_empty() {
            return Err(Failure::new(
                Exit::NoBackend,
                format!("the {name} backend chosen in config.toml was not found for {platform}"),
            )
            .hint(
                "`sygen service backends` lists the backends found; \
                 `sygen service backend use <name>` chooses another",
            ));
        }
        why = Why::Config;
    } else if let Some(preferred) = preferred_backend(platform) {
        if eligible.iter().any(|&i| candidates[i].name == preferred) {
            eligible.retain(|&i| candidates[i].name == preferred);
            why = Why::PlatformDefault;
        }
    }
    let mut names: Vec<&str> = eligible
        .iter()
        .map(|&i| candidates[i].name.as_str())
        .collect();
    names.sort_unstable();
    names.dedup();
    match names.len() {
        0 => Err(Failure::new(
            Exit::NoBackend,
            format!("no usable sygen backend for {platform} was found"),
        )
        .hint(
            "pass --backend <file> or set SYGEN_BACKEND; \
             `sygen service backends` shows what was found and why it did not load",
        )),
        // The highest version; of equal ones, the first in search order.
        1 => Ok((
            eligible
                .into_iter()
                .reduce(|best, i| {
                    if candidates[i].semver() > candidates[best].semver() {
                        i
                    } else {
                        best
                    }
                })
                .unwrap_or_default(),
            why,
        )),
        _ => Err(Failure::new(
            Exit::NoBackend,
            format!(
                "several backends manage {platform} services: {}",
                names.join(", ")
            ),
        )
        .hint("choose one: `sygen service backend use <name>`, or --backend <file>")),
    }
}

/// Where the backend to use comes from.
#[derive(Clone, Copy)]
pub enum Choice<'a> {
    /// A file named on the command line (`--backend`).
    Flag(&'a Path),
    /// A file named in `$SYGEN_BACKEND`, else the search path.
    Default,
}

impl Choice<'_> {
    /// Why the file [`Choice::named_file`] answers is the one.
    fn why_named(self) -> Why {
        match self {
            Choice::Flag(_) => Why::Flag,
            Choice::Default => Why::Env,
        }
    }

    /// The one file the user named, if any: `--backend`, else `$SYGEN_BACKEND`.
    pub fn named_file(self) -> Option<PathBuf> {
        match self {
            Choice::Flag(path) => Some(path.to_path_buf()),
            Choice::Default => std::env::var_os("SYGEN_BACKEND")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from),
        }
    }
}

/// A backend file found, with what it is or why sygen does not use it.
pub struct Found {
    /// Canonical, once the file passed its checks.
    pub path: PathBuf,
    pub described: Result<Described, LoadError>,
    /// Whether its service manager answers, when the survey asked.
    pub available: Option<Result<bool, Failure>>,
}

/// Every backend file the user named or the search path holds, and the one in use. Nothing of
/// theirs ran in this process (see `registry`).
pub struct Survey {
    pub searched: Vec<PathBuf>,
    pub found: Vec<Found>,
    /// Index into `found` of the backend sygen uses, or why there is none.
    pub selected: Result<usize, Failure>,
    /// Why the backend in use is the one.
    pub why: Option<Why>,
    /// The backend shipped with sygen that the one in use replaces.
    pub replaces: Option<PathBuf>,
    preferences: Preferences,
}

/// What the user's configuration says about backends (see `config`): the one chosen with
/// `backend use`, and each one's settings, with the file they are read from.
#[derive(Clone, Debug)]
pub struct Preferences {
    pub backend: Option<BackendName>,
    pub settings: Settings,
    pub config_file: PathBuf,
}

/// Finds, checks and describes every backend file; with `available`, also asks each whether
/// its service manager answers (each in its own child process).
pub fn survey(
    choice: Choice<'_>,
    sygen_home: &Path,
    preferences: &Preferences,
    available: bool,
) -> Survey {
    let named = choice.named_file();
    let searched = places::search_dirs(sygen_home);
    let files: Vec<PathBuf> = named
        .iter()
        .cloned()
        .chain(backend_files(&searched))
        .collect();
    let found = check_and_describe(files, sygen_home, available);
    let chosen = match &named {
        Some(path) => match &found[0].described {
            Ok(_) => Ok((0, choice.why_named())),
            Err(error) => Err(error.clone().into_failure(path)),
        },
        None => choose_found(&found, preferences.backend.as_ref()),
    };
    let why = chosen.as_ref().ok().map(|(_, why)| *why);
    let selected = chosen.map(|(index, _)| index);
    let replaces = match (&named, &selected) {
        (None, Ok(index)) => shipped_one_replaced(&found, *index, sygen_home),
        _ => None,
    };
    Survey {
        searched,
        found,
        selected,
        why,
        replaces,
        preferences: preferences.clone(),
    }
}

/// What each of `files` is: its checks, then its description from the registry.
fn check_and_describe(files: Vec<PathBuf>, sygen_home: &Path, available: bool) -> Vec<Found> {
    let checked: Vec<Result<PathBuf, LoadError>> =
        files.iter().map(|f| library::check(f)).collect();
    let passed: Vec<PathBuf> = checked.iter().filter_map(|c| c.clone().ok()).collect();
    let mut described = registry::describe(&passed, sygen_home, available).into_iter();
    files
        .into_iter()
        .zip(checked)
        .map(|(file, checked)| {
            // Descriptions come in the order of the files that passed their checks.
            let description = checked.is_ok().then(|| described.next()).flatten();
            match (checked, description) {
                (Ok(path), Some(description)) => Found {
                    path,
                    described: description.described,
                    available: description.available,
                },
                (Ok(path), None) => Found {
                    path,
                    described: Err(LoadError::new("was not described", "run the command again")),
                    available: None,
                },
                (Err(error), _) => Found {
                    path: file,
                    described: Err(error),
                    available: None,
                },
            }
        })
        .collect()
}

/// The one reason every file found was refused for, when there was one (unusable trusted
/// keys refuse them all alike): that reason is the news, not that nothing was usable.
fn one_refusal_for_all(found: &[Found]) -> Option<&LoadError> {
    let mut refusals = found.iter().map(|f| f.described.as_ref().err());
    let first = refusals.next()??;
    refusals
        .all(|r| r.is_some_and(|r| r.reason == first.reason))
        .then_some(first)
}

/// [`choose`] among the files found that are backends; answers an index into `found`.
fn choose_found(
    found: &[Found],
    configured: Option<&BackendName>,
) -> Result<(usize, Why), Failure> {
    let usable: Vec<(usize, &Described)> = found
        .iter()
        .enumerate()
        .filter_map(|(i, f)| Some((i, f.described.as_ref().ok()?)))
        .collect();
    if let Some(shared) = one_refusal_for_all(found) {
        return Err(Failure::new(
            Exit::NoBackend,
            format!(
                "no usable sygen backend for {} was found: every backend file found was refused: {}",
                std::env::consts::OS,
                shared.reason
            ),
        )
        .hint(shared.hint.clone()));
    }
    let identities: Vec<&Described> = usable.iter().map(|(_, d)| *d).collect();
    choose(&identities, std::env::consts::OS, configured)
        .map(|(chosen, why)| (usable[chosen].0, why))
}

impl Survey {
    /// Loads the backend in use into this process, after its checks, and makes sure it is what
    /// the survey found.
    pub fn load_selected(&self) -> Result<Backend, Failure> {
        let index = *self.selected.as_ref().map_err(Clone::clone)?;
        let found = &self.found[index];
        let mut backend = library::load(&found.path).map_err(|e| e.into_failure(&found.path))?;
        if let Ok(described) = &found.described {
            if backend.described() != *described {
                return Err(Failure::new(
                    Exit::NoBackend,
                    format!(
                        "backend {}: it is {} {} now, not the {} {} found a moment ago",
                        found.path.display(),
                        backend.name,
                        backend.version,
                        described.name,
                        described.version
                    ),
                )
                .hint("it was replaced while sygen looked at it; run the command again"));
            }
        }
        backend.replaces = self.replaces.clone();
        backend.why = self.why;
        backend.configure(&self.preferences.settings, &self.preferences.config_file);
        Ok(backend)
    }
}

/// Loads the backend the user asked for, or the default one for this platform: only that one
/// is loaded into this process.
pub fn select(
    choice: Choice<'_>,
    sygen_home: &Path,
    preferences: &Preferences,
) -> Result<Backend, Failure> {
    if let Some(path) = choice.named_file() {
        let mut backend = library::load(&path).map_err(|e| e.into_failure(&path))?;
        backend.why = Some(choice.why_named());
        backend.configure(&preferences.settings, &preferences.config_file);
        return Ok(backend);
    }
    survey(choice, sygen_home, preferences, false).load_selected()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(name: &str, platform: &str, version: &str) -> Described {
        Described {
            name: BackendName::parse(name).unwrap(),
            version: version.into(),
            platform: platform.into(),
            description: String::new(),
            api_version: "1.2.0".into(),
        }
    }

    fn name(name: &str) -> BackendName {
        BackendName::parse(name).unwrap()
    }

    #[test]
    fn chooses_the_platform_backend_at_its_highest_version() {
        let found = [
            id("launchd", "macos", "9.0.0"),
            id("systemd", "linux", "0.2.0"),
            id("openrc", "linux", "5.0.0"),
            id("systemd", "linux", "0.10.0"),
            id("systemd", "linux", "0.9.0"),
            id("systemd", "linux", "0.10.0"),
        ];
        let found: Vec<&Described> = found.iter().collect();
        assert_eq!(
            choose(&found, "linux", None).unwrap(),
            (3, Why::PlatformDefault),
            "first of the highest"
        );
        assert_eq!(
            choose(&found, "macos", None).unwrap(),
            (0, Why::PlatformDefault)
        );
        assert_eq!(
            choose(&found, "linux", Some(&name("openrc"))).unwrap(),
            (2, Why::Config)
        );
        let error = choose(&found, "linux", Some(&name("runit"))).unwrap_err();
        assert!(
            error
                .message
                .contains("the runit backend chosen in config.toml was not found"),
            "{}",
            error.message
        );
    }

    #[test]
    fn takes_the_only_other_backend_and_refuses_to_guess_between_several() {
        let found = [
            id("openrc", "linux", "1.0.0"),
            id("runit", "linux", "1.0.0"),
        ];
        let found: Vec<&Described> = found.iter().collect();
        assert_eq!(
            choose(&found[..1], "linux", None).unwrap(),
            (0, Why::OnlyOne)
        );
        let error = choose(&found, "linux", None).unwrap_err();
        assert_eq!(error.exit, Exit::NoBackend);
        assert!(error.message.contains("openrc, runit"), "{}", error.message);
        let error = choose(&found, "windows", None).unwrap_err();
        assert!(error
            .message
            .contains("no usable sygen backend for windows"));
    }
}
