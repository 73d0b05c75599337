//! `sygen service backend add|list|remove|rollback`: installing backend updates without ever
//! breaking a working install.
//!
//! A file is checked before it is installed by loading it in a child process (see `registry`),
//! so a library that crashes or hangs while loading takes down only that child.
//!
//! The store, `$SYGEN_HOME/backends/`:
//!
//! ```text
//! .lock                               one change at a time
//! <name>/state                        "current <dir>\nprevious <dir>\n" (previous optional)
//! <name>/<version>-<unique>/          one per installed version, never changed once made:
//!     libsygen_<name>.so              the library (.dylib, sygen_<name>.dll elsewhere)
//!     libsygen_<name>.so.minisig      its signature, when it has one
//! ```
//!
//! A version directory is built as `<name>/.tmp-…` (both files written and synced), then
//! renamed into place; switching versions (add, rollback) is the one atomic rename of a new
//! `state` over the old. So a library and its signature always switch together, whenever the
//! process dies, and on every platform (no symbolic links: Windows cannot make them without
//! privileges). The loader takes the library of `current` ([`active_files`]) and finds the
//! signature beside it.
//!
//! Each operation, holding the lock, first deletes what an interrupted one left (`.tmp*`
//! entries, version directories no `state` names, the old layout's `.swap-*` files), and moves
//! a backend installed by the old layout (`backends/libsygen_<name>.so`, the replaced version
//! in `backends/previous/`) into this one when it touches that name.

use std::{
    fs::{self, File},
    io::Read as _,
    path::{Path, PathBuf},
};

use anyhow::{Context as _, Result};
use sygen_backend_api::sdk::fs::write_atomic;

use crate::{
    description,
    exit::{Exit, Failure},
    loader, registry,
};

/// What `file` is, asked of a child process (see `registry`): a library that crashes while
/// loading takes down only that child.
fn probe_in_child(file: &Path) -> Result<registry::Described> {
    Ok(registry::describe_in_child(file)?)
}

/// `libsygen_<name>.so`, `libsygen_<name>.dylib`, `sygen_<name>.dll`.
pub fn file_name(name: &str) -> String {
    format!(
        "{}sygen_{name}.{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_EXTENSION
    )
}

/// Where an interrupted operation's files start: ours (`.tmp-…`) and `write_atomic`'s (`.tmp…`).
const TEMPORARY: &str = ".tmp";

/// Whether `dir` can name a version directory: letters, digits and `.+-_`, not starting with a
/// dot, so always one plain path component (never `..`, a separator or a drive) and never a
/// temporary directory.
fn is_version_dir(dir: &str) -> bool {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '+' | '-' | '_');
    !dir.is_empty() && dir.len() <= 128 && !dir.starts_with('.') && dir.chars().all(allowed)
}

/// What `<name>/state` says: the version directory in use and the one `rollback` goes back to.
#[derive(Clone, Debug, PartialEq, Eq)]
struct State {
    current: String,
    previous: Option<String>,
}

impl State {
    fn parse(text: &str) -> Option<Self> {
        let (mut current, mut previous) = (None, None);
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let (key, dir) = line.split_once(' ')?;
            let dir = dir.trim();
            if !is_version_dir(dir) {
                return None;
            }
            match key {
                "current" => current = Some(dir.to_owned()),
                "previous" => previous = Some(dir.to_owned()),
                _ => return None,
            }
        }
        Some(Self {
            current: current?,
            previous,
        })
    }

    fn text(&self) -> String {
        match &self.previous {
            Some(previous) => format!("current {}\nprevious {previous}\n", self.current),
            None => format!("current {}\n", self.current),
        }
    }

    fn names(&self, dir: &str) -> bool {
        self.current == dir || self.previous.as_deref() == Some(dir)
    }
}

/// Reads `<name dir>/state`: `Ok(None)` when there is none, an error when it cannot be read or
/// makes no sense (then nothing the store holds for that name may be deleted).
fn read_state(name_dir: &Path) -> std::io::Result<Option<State>> {
    let mut text = String::new();
    // A state file is two short lines.
    match File::open(name_dir.join("state")).and_then(|f| f.take(4096).read_to_string(&mut text)) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    }
    State::parse(&text).map(Some).ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "{} is not a backend state",
                name_dir.join("state").display()
            ),
        )
    })
}

/// The library of the version in use of every backend installed in `backends_dir`, for the
/// loader to search. Names and version directories come from what is checked never to leave
/// `backends_dir`; anything unreadable or missing is skipped.
pub fn active_files(backends_dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(backends_dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        // Not following links: a name is a directory of the store itself.
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            loader::check_name(&name).ok()?;
            let state = read_state(&e.path()).ok()??;
            Some(e.path().join(state.current).join(file_name(&name)))
        })
        .filter(|file| file.is_file())
        .collect();
    files.sort();
    files
}

/// Deletes a file or a directory tree, whichever `path` is (a link itself, not its target).
fn remove_any(path: &Path) -> std::io::Result<()> {
    if fs::symlink_metadata(path)?.is_dir() {
        fs::remove_dir_all(path)
    } else {
        fs::remove_file(path)
    }
}

/// Makes a rename in `dir` durable.
fn sync_dir(dir: &Path) -> Result<()> {
    #[cfg(unix)]
    File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("cannot sync {}", dir.display()))?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

struct Store {
    dir: PathBuf,
}

impl Store {
    fn at(home: &Path) -> Self {
        Self {
            dir: home.join("backends"),
        }
    }

    fn open() -> Result<Self> {
        let store = Self::at(&description::sygen_home()?);
        fs::create_dir_all(&store.dir)
            .with_context(|| format!("cannot create {}", store.dir.display()))?;
        Ok(store)
    }

    /// Holds the store's lock until dropped: one change at a time. Answers the lock once the
    /// leftovers of interrupted operations are gone.
    fn lock(&self) -> Result<File> {
        let file = File::create(self.dir.join(".lock")).context("cannot create the lock file")?;
        file.lock()
            .with_context(|| format!("cannot lock {}", self.dir.display()))?;
        self.tidy();
        Ok(file)
    }

    fn name_dir(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn library(&self, name: &str, version_dir: &str) -> PathBuf {
        self.name_dir(name).join(version_dir).join(file_name(name))
    }

    fn state(&self, name: &str) -> Result<Option<State>> {
        read_state(&self.name_dir(name))
            .with_context(|| format!("cannot read the state of the {name} backend"))
    }

    /// The library `rollback` would go back to; in the old layout, the one in `previous/`.
    fn kept(&self, name: &str) -> Option<PathBuf> {
        match read_state(&self.name_dir(name)) {
            Ok(Some(state)) => state.previous.map(|dir| self.library(name, &dir)),
            Ok(None) => Some(self.old_kept(name)),
            Err(_) => None,
        }
        .filter(|file| file.is_file())
    }

    fn old_active(&self, name: &str) -> PathBuf {
        self.dir.join(file_name(name))
    }

    fn old_kept(&self, name: &str) -> PathBuf {
        self.dir.join("previous").join(file_name(name))
    }

    /// Deletes what interrupted operations left: temporary files and directories, the old
    /// layout's `.swap-*` files, and version directories no state names. Best effort: what
    /// cannot be deleted now (a library in use on Windows) is tried again next time.
    fn tidy(&self) {
        let Ok(entries) = fs::read_dir(&self.dir) else {
            return;
        };
        for entry in entries.filter_map(|e| e.ok()) {
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            if name.starts_with(TEMPORARY) || name.starts_with(".swap-") {
                discard(&entry.path());
            } else if entry.file_type().is_ok_and(|t| t.is_dir())
                && loader::check_name(&name).is_ok()
            {
                self.tidy_name(&name);
            }
        }
    }

    /// Deletes the leftovers in `<name>/`, and the directory itself once nothing is left there.
    fn tidy_name(&self, name: &str) {
        let name_dir = self.name_dir(name);
        // A state that cannot be read may still name anything here: keep it all.
        let Ok(state) = read_state(&name_dir) else {
            return;
        };
        let Ok(entries) = fs::read_dir(&name_dir) else {
            return;
        };
        for entry in entries.filter_map(|e| e.ok()) {
            let Ok(dir) = entry.file_name().into_string() else {
                continue;
            };
            let unnamed = is_version_dir(&dir)
                && entry.file_type().is_ok_and(|t| t.is_dir())
                && !state.as_ref().is_some_and(|s| s.names(&dir))
                // Only what the store made: a version directory always holds its library.
                && entry.path().join(file_name(name)).is_file();
            if dir.starts_with(TEMPORARY) || unnamed {
                discard(&entry.path());
            }
        }
        if state.is_none() {
            // Fails, as it should, while anything is left (the old layout's `previous/`).
            let _ = fs::remove_dir(&name_dir);
        }
    }

    /// Makes a new version directory of `name` from `library` (and its signature, when it has
    /// one) and answers its name. Nothing loads it until a state names it.
    fn make_version(&self, name: &str, library: &Path, version: &str) -> Result<String> {
        let name_dir = self.name_dir(name);
        fs::create_dir_all(&name_dir)
            .with_context(|| format!("cannot create {}", name_dir.display()))?;
        let building = tempfile::Builder::new()
            .prefix(".tmp-")
            .tempdir_in(&name_dir)
            .with_context(|| format!("cannot create a directory in {}", name_dir.display()))?;
        let installed = building.path().join(file_name(name));
        let signature = loader::signature_path(library);
        if signature.exists() {
            copy(&signature, &loader::signature_path(&installed))?;
        }
        copy(library, &installed)?;
        // The version is the backend's own word: only what is safe in a file name is kept.
        let version: String = version
            .chars()
            .take(64)
            .map(|c| match c {
                'a'..='z' | 'A'..='Z' | '0'..='9' | '.' | '+' | '-' | '_' => c,
                _ => '_',
            })
            .collect();
        let unique = building
            .path()
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_prefix(".tmp-"))
            .unwrap_or_default()
            .to_owned();
        let dir = format!("{}-{unique}", version.trim_start_matches('.'));
        let built = building.keep();
        fs::rename(&built, name_dir.join(&dir))
            .with_context(|| format!("cannot move {} into place", built.display()))?;
        sync_dir(&name_dir)?;
        Ok(dir)
    }

    /// Switches `name` to `state` (one atomic rename), then deletes the version it no longer
    /// names.
    fn switch(&self, name: &str, state: &State) -> Result<()> {
        let file = self.name_dir(name).join("state");
        write_atomic(&file, state.text().as_bytes(), Some(0o644))
            .with_context(|| format!("cannot write {}", file.display()))?;
        self.tidy_name(name);
        Ok(())
    }

    /// Installs nothing of `name` any more, in one step (its state goes; its version
    /// directories with it), so that the one shipped with sygen is used again.
    fn forget(&self, name: &str) -> Result<()> {
        let file = self.name_dir(name).join("state");
        fs::remove_file(&file).with_context(|| format!("cannot remove {}", file.display()))?;
        sync_dir(&self.name_dir(name))?;
        self.tidy_name(name);
        Ok(())
    }

    /// Moves a backend installed by the old layout into a state of its own, copying first so
    /// that a kill at any point loses nothing (the old files go once the state names the
    /// copies).
    fn migrate(&self, name: &str) -> Result<()> {
        let (old_active, old_kept) = (self.old_active(name), self.old_kept(name));
        if let Some(state) = self.state(name)? {
            // A migration killed after the state was written: its old files are still there,
            // identical to what the state names. Other files of that name are the user's.
            let named = |file: &Path| {
                let same = |dir: &str| same_file_contents(file, &self.library(name, dir));
                same(&state.current) || state.previous.as_deref().is_some_and(same)
            };
            for old in [&old_active, &old_kept] {
                if old.is_file() && named(old) {
                    remove_with_signature(old);
                }
            }
            let _ = fs::remove_dir(self.dir.join("previous"));
            return Ok(());
        }
        let copy_of = |file: &Path| -> Result<String> {
            let version = probe_in_child(file).map_or_else(|_| "unknown".to_owned(), |p| p.version);
            self.make_version(name, file, &version)
        };
        // Without an active file (an old rollback killed midway), the kept one is the backend.
        let state = match (old_active.is_file(), old_kept.is_file()) {
            (true, kept) => State {
                current: copy_of(&old_active)?,
                previous: if kept {
                    Some(copy_of(&old_kept)?)
                } else {
                    None
                },
            },
            (false, true) => State {
                current: copy_of(&old_kept)?,
                previous: None,
            },
            (false, false) => return Ok(()),
        };
        self.switch(name, &state)?;
        remove_with_signature(&old_active);
        remove_with_signature(&old_kept);
        let _ = fs::remove_dir(self.dir.join("previous"));
        Ok(())
    }
}

/// Deletes a leftover, saying so only to `-v`: it is tried again by the next operation.
fn discard(path: &Path) {
    if let Err(e) = remove_any(path) {
        tracing::debug!("cannot delete {}: {e}", path.display());
    }
}

fn remove_with_signature(library: &Path) {
    for file in [loader::signature_path(library), library.to_path_buf()] {
        if file.exists() {
            discard(&file);
        }
    }
}

fn same_file_contents(a: &Path, b: &Path) -> bool {
    match (fs::read(a), fs::read(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// Copies `from` to `to` atomically, readable by all and writable by its owner only.
fn copy(from: &Path, to: &Path) -> Result<()> {
    let bytes = fs::read(from).with_context(|| format!("cannot read {}", from.display()))?;
    write_atomic(to, &bytes, Some(0o644)).with_context(|| format!("cannot write {}", to.display()))
}

fn version(text: &str) -> semver::Version {
    semver::Version::parse(text).unwrap_or(semver::Version::new(0, 0, 0))
}

pub fn add(file: &Path, force: bool) -> Result<()> {
    let new = registry::describe_in_child(file).map_err(|failure| Failure {
        message: format!("{}; nothing was installed", failure.message),
        ..failure
    })?;
    lock()?.add(file, &new, force)
}

/// The store, held locked: for `update`, which fetches and installs under one lock.
pub struct LockedStore {
    store: Store,
    _lock: File,
}

/// Opens the store and waits for its lock.
pub fn lock() -> Result<LockedStore> {
    let store = Store::open()?;
    let lock = store.lock()?;
    Ok(LockedStore { store, _lock: lock })
}

impl LockedStore {
    pub fn dir(&self) -> &Path {
        &self.store.dir
    }

    /// The version of `name` sygen would use: the newer of the store's current one and the
    /// one shipped with sygen.
    pub fn version_in_use(&self, name: &str) -> Result<Option<semver::Version>> {
        let store = &self.store;
        store.migrate(name)?;
        let current = store
            .state(name)?
            .map(|state| store.library(name, &state.current));
        let shipped = loader::shipped_file(&description::sygen_home()?, &file_name(name));
        Ok(current
            .into_iter()
            .chain(shipped)
            .filter(|file| file.is_file())
            .filter_map(|file| probe_in_child(&file).ok())
            .map(|described| version(&described.version))
            .max())
    }

    /// Installs `file`, described as `new`, keeping the version it replaces for rollback.
    pub fn add(&self, file: &Path, new: &registry::Described, force: bool) -> Result<()> {
        let store = &self.store;
        store.migrate(&new.name)?;
        let current = store
            .state(&new.name)?
            .map(|state| state.current)
            .filter(|dir| store.library(&new.name, dir).is_file());
        if let Some(dir) = &current {
            let active = store.library(&new.name, dir);
            match probe_in_child(&active) {
                Ok(current) if version(&current.version) == version(&new.version) => {
                    println!(
                        "the {} backend {} is already installed ({}); nothing to do",
                        new.name,
                        new.version,
                        active.display()
                    );
                    return Ok(());
                }
                Ok(current) if version(&new.version) < version(&current.version) && !force => {
                    return Err(Failure::new(
                        Exit::Failed,
                        format!(
                            "{} would downgrade the {} backend from {} to {}",
                            file.display(),
                            new.name,
                            current.version,
                            new.version
                        ),
                    )
                    .hint("pass --force to install the older version anyway")
                    .into());
                }
                _ => {}
            }
        }
        let state = State {
            current: store.make_version(&new.name, file, &new.version)?,
            previous: current,
        };
        store.switch(&new.name, &state)?;
        let active = store.library(&new.name, &state.current);
        let kept = state
            .previous
            .and_then(|dir| probe_in_child(&store.library(&new.name, &dir)).ok());
        let kept_one = kept.is_some();
        match kept {
            Some(kept) => println!(
                "installed the {} backend {} as {} (kept {} for `sygen service backend rollback {}`)",
                new.name,
                new.version,
                active.display(),
                kept.version,
                new.name
            ),
            None => println!(
                "installed the {} backend {} as {}",
                new.name,
                new.version,
                active.display()
            ),
        }
        let home = description::sygen_home()?;
        if let Some(shipped) = loader::shipped_file(&home, &file_name(&new.name)) {
            match probe_in_child(&shipped) {
                Ok(probe) if version(&probe.version) >= version(&new.version) => println!(
                    "the {} backend {} shipped with sygen ({}) stays in use: it is not older",
                    new.name,
                    probe.version,
                    shipped.display()
                ),
                _ => println!(
                    "it replaces the {} backend shipped with sygen ({}) for every command{}",
                    new.name,
                    shipped.display(),
                    match kept_one {
                        true => "",
                        false => " (`sygen service backend rollback` goes back to it)",
                    }
                ),
            }
        }
        Ok(())
    }
}

pub fn remove(name: &str) -> Result<()> {
    let store = Store::open()?;
    let _lock = store.lock()?;
    store.migrate(name)?;
    let Some(state) = store.state(name)? else {
        return Err(not_installed(name, &store));
    };
    let active = store.library(name, &state.current);
    // Out of the loader's sight in one rename; a kill while deleting leaves a leftover only.
    let name_dir = store.name_dir(name);
    let removing = store.dir.join(format!("{TEMPORARY}-removed-{name}"));
    fs::rename(&name_dir, &removing)
        .with_context(|| format!("cannot remove {}", name_dir.display()))?;
    discard(&removing);
    println!("removed the {name} backend ({})", active.display());
    Ok(())
}

pub fn rollback(name: &str) -> Result<()> {
    let store = Store::open()?;
    let _lock = store.lock()?;
    store.migrate(name)?;
    let nothing_kept = || {
        Failure::new(
            Exit::Failed,
            format!(
                "no earlier version of the {name} backend is kept in {}",
                store.name_dir(name).display()
            ),
        )
        .hint(
            "rollback goes back to the version the last `backend add` or `backend update` replaced",
        )
    };
    let state = store.state(name)?.ok_or_else(nothing_kept)?;
    let Some(previous) = state.previous else {
        // The first version installed replaced the one shipped with sygen, if any: back to it.
        let home = description::sygen_home()?;
        let shipped = loader::shipped_file(&home, &file_name(name)).ok_or_else(nothing_kept)?;
        let back_to = probe_in_child(&shipped)?;
        store.forget(name)?;
        println!(
            "rolled the {name} backend back to {}, the one shipped with sygen ({})",
            back_to.version,
            shipped.display()
        );
        return Ok(());
    };
    let back_to = probe_in_child(&store.library(name, &previous))?;
    let state = State {
        current: previous,
        previous: Some(state.current),
    };
    store.switch(name, &state)?;
    println!(
        "rolled the {name} backend back to {} ({})",
        back_to.version,
        store.library(name, &state.current).display()
    );
    Ok(())
}

fn not_installed(name: &str, store: &Store) -> anyhow::Error {
    Failure::new(
        Exit::NoBackend,
        format!("no {name} backend is installed in {}", store.dir.display()),
    )
    .hint("`sygen service backend list` shows what is installed")
    .into()
}

/// `backend list`: per backend name, the file sygen uses, its version and why, and what
/// `rollback` would restore.
pub fn list() -> Result<()> {
    let home = description::sygen_home()?;
    let store = Store::at(&home);
    // Listing creates nothing: without a store there is nothing to tidy.
    let _lock = if store.dir.is_dir() {
        Some(store.lock()?)
    } else {
        None
    };
    // What each file is comes from the registry: listing runs no backend's code here.
    let found = loader::survey(loader::Choice::Default, &home, false).found;
    let described: Vec<(usize, &registry::Described)> = found
        .iter()
        .enumerate()
        .filter_map(|(i, f)| Some((i, f.described.as_ref().ok()?)))
        .collect();
    let mut names: Vec<&str> = described.iter().map(|(_, d)| d.name.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    if names.is_empty() {
        println!("no backend found");
    }
    for name in names {
        let copies: Vec<&(usize, &registry::Described)> =
            described.iter().filter(|(_, d)| d.name == name).collect();
        let identities: Vec<loader::Identity> = copies.iter().map(|(_, d)| (*d).into()).collect();
        let platform = copies[0].1.platform.clone();
        let chosen = loader::choose(&identities, &platform, None).map_or(0, |(i, _)| i);
        let (index, active) = *copies[chosen];
        let why = match copies.len() {
            1 => "the only copy found".to_owned(),
            n => format!(
                "the highest version of the {n} copies found (first in search order when equal)"
            ),
        };
        let shipped = loader::shipped_one_replaced(&found, index, &home);
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
        if let Some(kept) = store.kept(name) {
            match probe_in_child(&kept) {
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
pub fn use_backend(name: &str) -> Result<()> {
    let home = description::sygen_home()?;
    let survey = loader::survey(loader::Choice::Default, &home, false);
    let found = survey.found.iter().find(|f| {
        f.described
            .as_ref()
            .is_ok_and(|d| d.name == name && d.platform == std::env::consts::OS)
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
    let path = home.join("config.toml");
    crate::runtime::config::Config::load(&path)?;
    let text = match fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let mut document: toml_edit::DocumentMut = text
        .parse()
        .with_context(|| format!("cannot parse {}", path.display()))?;
    document["backend"] = toml_edit::value(name);
    fs::create_dir_all(&home).with_context(|| format!("cannot create {}", home.display()))?;
    write_atomic(&path, document.to_string().as_bytes(), Some(0o600))
        .with_context(|| format!("cannot write {}", path.display()))?;
    println!(
        "sygen uses the {name} backend from now on ({}; set in {})",
        found.path.display(),
        path.display()
    );
    Ok(())
}
