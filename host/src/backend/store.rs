//! The backend store: installing backends (`backend add`, `backend update`) without ever
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
//! entries, version directories no `state` names). The operations answer what they did; the
//! commands say it (`commands::backends`).

use std::{
    fmt,
    fs::{self, File},
    io::Write as _,
    path::{Path, PathBuf},
    thread,
    time::{Duration, Instant},
};

use serde::{Deserialize, Serialize};

use anyhow::{Context as _, Result};
use sygen_backend_api::sdk::fs::write_atomic;

use super::{identity::Described, name::BackendName, places, registry, trust};
use crate::{
    exit::{Exit, Failure},
    file, home, platform,
    progress::Progress,
};

/// What `file` is, asked of a child process (see `registry`): a library that crashes while
/// loading takes down only that child.
fn probe_in_child(file: &Path) -> Result<Described> {
    Ok(registry::describe_in_child(file)?)
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
fn read_state(name_dir: &Path) -> Result<Option<State>> {
    let path = name_dir.join("state");
    // A state file is two short lines.
    let Some(text) =
        file::read_small(&path, 4096).map_err(|e| anyhow::anyhow!("{} {e}", path.display()))?
    else {
        return Ok(None);
    };
    State::parse(&text)
        .map(Some)
        .with_context(|| format!("{} is not a backend state", path.display()))
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
            let name = BackendName::new(e.file_name().into_string().ok()?).ok()?;
            let state = read_state(&e.path()).ok()??;
            Some(e.path().join(state.current).join(name.file_name()))
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
        let store = Self::at(&home::sygen_home()?);
        fs::create_dir_all(&store.dir)
            .with_context(|| format!("cannot create {}", store.dir.display()))?;
        Ok(store)
    }

    /// Holds the store's lock until dropped: one change at a time. Answers the lock once the
    /// leftovers of interrupted operations are gone. While another command holds it, says
    /// which and waits, at most [`LOCK_WAIT`].
    fn lock(&self) -> Result<StoreLock> {
        let path = self.dir.join(".lock");
        let file = fs::OpenOptions::new()
            .create(true)
            .read(true)
            .write(true)
            .truncate(false)
            .open(&path)
            .context("cannot create the lock file")?;
        let deadline = Instant::now() + LOCK_WAIT;
        let mut waiting: Option<Progress> = None;
        loop {
            match file.try_lock() {
                Ok(()) => break,
                Err(fs::TryLockError::WouldBlock) => {}
                Err(fs::TryLockError::Error(e)) => {
                    return Err(e).with_context(|| format!("cannot lock {}", self.dir.display()))
                }
            }
            let holder = Holder::of(&path);
            if Instant::now() >= deadline {
                return Err(Failure::new(
                    Exit::Failed,
                    format!(
                        "the backend store {} is still being changed by {holder} after {}: \
                         nothing was changed",
                        self.dir.display(),
                        humantime::format_duration(LOCK_WAIT)
                    ),
                )
                .hint("wait for that command to finish, then run this one again")
                .into());
            }
            let message = format!("waiting for the backend store: {holder} is changing it");
            waiting
                .get_or_insert_with(|| Progress::start(&message))
                .update(&message);
            thread::sleep(Duration::from_millis(100));
        }
        drop(waiting);
        Holder::this().record(&file);
        self.tidy();
        Ok(StoreLock(file))
    }

    fn name_dir(&self, name: &BackendName) -> PathBuf {
        self.dir.join(name.as_str())
    }

    fn library(&self, name: &BackendName, version_dir: &str) -> PathBuf {
        self.name_dir(name).join(version_dir).join(name.file_name())
    }

    fn state(&self, name: &BackendName) -> Result<Option<State>> {
        read_state(&self.name_dir(name))
            .with_context(|| format!("cannot read the state of the {name} backend"))
    }

    /// The library `rollback` would go back to.
    fn kept(&self, name: &BackendName) -> Option<PathBuf> {
        let state = read_state(&self.name_dir(name)).ok()??;
        let kept = self.library(name, &state.previous?);
        kept.is_file().then_some(kept)
    }

    /// Deletes what interrupted operations left: temporary files and directories, and version
    /// directories no state names. Best effort: what cannot be deleted now (a library in use
    /// on Windows) is tried again next time.
    fn tidy(&self) {
        let Ok(entries) = fs::read_dir(&self.dir) else {
            return;
        };
        for entry in entries.filter_map(|e| e.ok()) {
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            if name.starts_with(TEMPORARY) {
                discard(&entry.path());
            } else if entry.file_type().is_ok_and(|t| t.is_dir()) {
                if let Ok(name) = BackendName::new(name) {
                    self.tidy_name(&name);
                }
            }
        }
    }

    /// Deletes the leftovers in `<name>/`, and the directory itself once nothing is left there.
    fn tidy_name(&self, name: &BackendName) {
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
                && entry.path().join(name.file_name()).is_file();
            if dir.starts_with(TEMPORARY) || unnamed {
                discard(&entry.path());
            }
        }
        if state.is_none() {
            // Fails, as it should, while anything is left.
            let _ = fs::remove_dir(&name_dir);
        }
    }

    /// Makes a new version directory of `name` from `library` (and its signature, when it has
    /// one) and answers its name. Nothing loads it until a state names it.
    fn make_version(&self, name: &BackendName, library: &Path, version: &str) -> Result<String> {
        let name_dir = self.name_dir(name);
        fs::create_dir_all(&name_dir)
            .with_context(|| format!("cannot create {}", name_dir.display()))?;
        let building = tempfile::Builder::new()
            .prefix(".tmp-")
            .tempdir_in(&name_dir)
            .with_context(|| format!("cannot create a directory in {}", name_dir.display()))?;
        let installed = building.path().join(name.file_name());
        let signature = trust::signature_path(library);
        if signature.exists() {
            copy(&signature, &trust::signature_path(&installed))?;
        }
        copy(library, &installed)?;
        let unique = building
            .path()
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_prefix(".tmp-"))
            .unwrap_or_default()
            .to_owned();
        let dir = format!("{}-{unique}", file_name_safe(version));
        let built = building.keep();
        fs::rename(&built, name_dir.join(&dir))
            .with_context(|| format!("cannot move {} into place", built.display()))?;
        sync_dir(&name_dir)?;
        Ok(dir)
    }

    /// Switches `name` to `state` (one atomic rename), then deletes the version it no longer
    /// names.
    fn switch(&self, name: &BackendName, state: &State) -> Result<()> {
        let file = self.name_dir(name).join("state");
        write_atomic(&file, state.text().as_bytes(), Some(0o644))
            .with_context(|| format!("cannot write {}", file.display()))?;
        self.tidy_name(name);
        Ok(())
    }

    /// Installs nothing of `name` any more, in one step (its state goes; its version
    /// directories with it), so that the one shipped with sygen is used again.
    fn forget(&self, name: &BackendName) -> Result<()> {
        let file = self.name_dir(name).join("state");
        fs::remove_file(&file).with_context(|| format!("cannot remove {}", file.display()))?;
        sync_dir(&self.name_dir(name))?;
        self.tidy_name(name);
        Ok(())
    }

    fn not_installed(&self, name: &BackendName) -> anyhow::Error {
        Failure::new(
            Exit::NoBackend,
            format!("no {name} backend is installed in {}", self.dir.display()),
        )
        .hint("`sygen service backend list` shows what is installed")
        .into()
    }
}

/// How long a command waits for the store while another one changes it.
const LOCK_WAIT: Duration = Duration::from_secs(60);

/// The store's lock, held until dropped; then the lock file no longer names its holder.
pub struct StoreLock(File);

impl Drop for StoreLock {
    fn drop(&mut self) {
        let _ = self.0.set_len(0);
    }
}

/// Who holds the store's lock, as it says in the lock file for whoever waits.
#[derive(Serialize, Deserialize)]
struct Holder {
    pid: u32,
    command: String,
}

impl Holder {
    fn this() -> Self {
        let words: Vec<String> = std::env::args().skip(1).collect();
        Self {
            pid: std::process::id(),
            command: format!("sygen {}", words.join(" ")),
        }
    }

    /// Says who this is, in the lock file it holds (best effort: it only informs).
    fn record(&self, lock: &File) {
        let said = serde_json::to_vec(self).map_err(std::io::Error::other);
        let written = said.and_then(|json| {
            lock.set_len(0)?;
            (&*lock).write_all(&json)
        });
        if let Err(e) = written {
            tracing::debug!("cannot say who holds the store's lock: {e}");
        }
    }

    /// Who the lock file at `path` says holds it, in words; a holder that is gone (killed
    /// while holding it, its word left behind) is not named.
    fn of(path: &Path) -> String {
        let holder = file::read_small(path, 4096)
            .ok()
            .flatten()
            .and_then(|text| serde_json::from_str::<Holder>(&text).ok())
            .filter(|holder| platform::Identity::of(holder.pid).is_some());
        match holder {
            Some(holder) => holder.to_string(),
            None => "another sygen command".to_owned(),
        }
    }
}

impl fmt::Display for Holder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "pid {} (`{}`)", self.pid, self.command)
    }
}

/// A backend's version as part of a directory name: the backend's own word, so only what is
/// safe in a file name is kept, and it never starts with a dot.
fn file_name_safe(version: &str) -> String {
    let safe: String = version
        .chars()
        .take(64)
        .map(|c| match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' | '.' | '+' | '-' | '_' => c,
            _ => '_',
        })
        .collect();
    safe.trim_start_matches('.').to_owned()
}

/// Deletes a leftover, saying so only to `-v`: it is tried again by the next operation.
fn discard(path: &Path) {
    if let Err(e) = remove_any(path) {
        tracing::debug!("cannot delete {}: {e}", path.display());
    }
}

/// Copies `from` to `to` atomically, readable by all and writable by its owner only.
fn copy(from: &Path, to: &Path) -> Result<()> {
    let bytes = fs::read(from).with_context(|| format!("cannot read {}", from.display()))?;
    write_atomic(to, &bytes, Some(0o644)).with_context(|| format!("cannot write {}", to.display()))
}

/// The store, held locked: every change happens under its lock (`update` holds it from the
/// first fetch to the last install).
pub struct LockedStore {
    store: Store,
    _lock: StoreLock,
}

/// Opens the store and waits for its lock.
pub fn lock() -> Result<LockedStore> {
    let store = Store::open()?;
    let lock = store.lock()?;
    Ok(LockedStore { store, _lock: lock })
}

/// What [`LockedStore::add`] did with the backend `new`, now at `library`.
pub struct Added {
    pub new: Described,
    pub library: PathBuf,
    /// `None`: that version was installed already, and nothing changed.
    pub change: Option<Change>,
}

/// What installing a version changed.
pub struct Change {
    /// The version it replaced, kept for rollback.
    pub kept: Option<Described>,
    /// The backend of that name shipped with sygen, which the new one may replace.
    pub shipped: Option<Shipped>,
}

impl fmt::Display for Added {
    /// What the commands that install say.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Added { new, library, .. } = self;
        let name = &new.name;
        let Some(Change { kept, shipped }) = &self.change else {
            return write!(
                f,
                "the {name} backend {} is already installed ({}); nothing to do",
                new.version,
                library.display()
            );
        };
        write!(
            f,
            "installed the {name} backend {} as {}",
            new.version,
            library.display()
        )?;
        if let Some(kept) = kept {
            write!(
                f,
                " (kept {} for `sygen service backend rollback {name}`)",
                kept.version
            )?;
        }
        let Some(shipped) = shipped else {
            return Ok(());
        };
        match &shipped.described {
            Some(described) if described.semver() >= new.semver() => write!(
                f,
                "\nthe {name} backend {} shipped with sygen ({}) stays in use: it is not older",
                described.version,
                shipped.path.display()
            ),
            _ => write!(
                f,
                "\nit replaces the {name} backend shipped with sygen ({}) for every command{}",
                shipped.path.display(),
                match kept {
                    Some(_) => "",
                    None => " (`sygen service backend rollback` goes back to it)",
                }
            ),
        }
    }
}

/// The backend of the same name shipped with sygen, and what it is (when it can be said).
pub struct Shipped {
    pub path: PathBuf,
    pub described: Option<Described>,
}

/// What [`LockedStore::rollback`] went back to.
pub struct RolledBack {
    pub described: Described,
    pub library: PathBuf,
    /// Whether it is the one shipped with sygen (the store keeps nothing of the name now).
    pub shipped: bool,
}

impl fmt::Display for RolledBack {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Described { name, version, .. } = &self.described;
        let library = self.library.display();
        match self.shipped {
            true => write!(
                f,
                "rolled the {name} backend back to {version}, the one shipped with sygen ({library})"
            ),
            false => write!(f, "rolled the {name} backend back to {version} ({library})"),
        }
    }
}

impl LockedStore {
    pub fn dir(&self) -> &Path {
        &self.store.dir
    }

    /// The version of `name` sygen would use: the newer of the store's current one and the
    /// one shipped with sygen.
    pub fn version_in_use(&self, name: &BackendName) -> Result<Option<semver::Version>> {
        let store = &self.store;
        let current = store
            .state(name)?
            .map(|state| store.library(name, &state.current));
        let shipped = places::shipped_file(&home::sygen_home()?, name);
        Ok(current
            .into_iter()
            .chain(shipped)
            .filter(|file| file.is_file())
            .filter_map(|file| probe_in_child(&file).ok())
            .map(|described| described.semver())
            .max())
    }

    /// Installs `file`, described as `new`, keeping the version it replaces for rollback. A
    /// lower version than the current one is refused unless `force`.
    pub fn add(&self, file: &Path, new: &Described, force: bool) -> Result<Added> {
        let store = &self.store;
        let name = &new.name;
        let current = store
            .state(name)?
            .map(|state| state.current)
            .filter(|dir| store.library(name, dir).is_file());
        if let Some(dir) = &current {
            let active = store.library(name, dir);
            match probe_in_child(&active) {
                Ok(current) if current.semver() == new.semver() => {
                    return Ok(Added {
                        new: new.clone(),
                        library: active,
                        change: None,
                    });
                }
                Ok(current) if new.semver() < current.semver() && !force => {
                    return Err(Failure::new(
                        Exit::Failed,
                        format!(
                            "{} would downgrade the {name} backend from {} to {}",
                            file.display(),
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
            current: store.make_version(name, file, &new.version)?,
            previous: current,
        };
        store.switch(name, &state)?;
        let kept = state
            .previous
            .and_then(|dir| probe_in_child(&store.library(name, &dir)).ok());
        let shipped = places::shipped_file(&home::sygen_home()?, name).map(|path| Shipped {
            described: probe_in_child(&path).ok(),
            path,
        });
        Ok(Added {
            new: new.clone(),
            library: store.library(name, &state.current),
            change: Some(Change { kept, shipped }),
        })
    }

    /// Removes every version of `name` the store holds; answers the library that was in use.
    pub fn remove(&self, name: &BackendName) -> Result<PathBuf> {
        let store = &self.store;
        let Some(state) = store.state(name)? else {
            return Err(store.not_installed(name));
        };
        let active = store.library(name, &state.current);
        // Out of the loader's sight in one rename; a kill while deleting leaves a leftover only.
        let name_dir = store.name_dir(name);
        let removing = store.dir.join(format!("{TEMPORARY}-removed-{name}"));
        fs::rename(&name_dir, &removing)
            .with_context(|| format!("cannot remove {}", name_dir.display()))?;
        discard(&removing);
        Ok(active)
    }

    /// Goes back to the version of `name` the last add replaced: the kept one, else the one
    /// shipped with sygen.
    pub fn rollback(&self, name: &BackendName) -> Result<RolledBack> {
        let store = &self.store;
        let nothing_kept = || {
            Failure::new(
                Exit::Failed,
                format!(
                    "no earlier version of the {name} backend is kept in {}",
                    store.name_dir(name).display()
                ),
            )
            .hint(
                "rollback goes back to the version the last `backend add` or `backend update` \
                 replaced",
            )
        };
        let state = store.state(name)?.ok_or_else(nothing_kept)?;
        let Some(previous) = state.previous else {
            // The first version installed replaced the one shipped with sygen, if any: back to it.
            let shipped =
                places::shipped_file(&home::sygen_home()?, name).ok_or_else(nothing_kept)?;
            let described = probe_in_child(&shipped)?;
            store.forget(name)?;
            return Ok(RolledBack {
                described,
                library: shipped,
                shipped: true,
            });
        };
        let described = probe_in_child(&store.library(name, &previous))?;
        let state = State {
            current: previous,
            previous: Some(state.current),
        };
        store.switch(name, &state)?;
        Ok(RolledBack {
            described,
            library: store.library(name, &state.current),
            shipped: false,
        })
    }
}

/// The library `backend rollback <name>` would go back to, in the store of `home`.
pub fn kept(home: &Path, name: &BackendName) -> Option<PathBuf> {
    Store::at(home).kept(name)
}

/// Holds the store's lock, when there is a store: for reading it while nothing changes it.
/// Creates nothing: without a store there is nothing to tidy.
pub fn lock_if_present(home: &Path) -> Result<Option<StoreLock>> {
    let store = Store::at(home);
    if !store.dir.is_dir() {
        return Ok(None);
    }
    store.lock().map(Some)
}
