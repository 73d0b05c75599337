//! `sygen service backend add|list|remove|rollback`: installing backend updates without ever
//! breaking a working install.
//!
//! A file is checked before it is installed by loading it in a child process (`backend probe`),
//! so a library that crashes while loading takes down only that child. Installing writes a
//! temporary file, syncs it and renames it over the active one, so at every moment the active
//! file is the old or the new backend, whole; the version it replaces is kept in `previous/`
//! for `rollback`. One lock file serializes concurrent changes.

use std::{
    fs::{self, File},
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, Result};
use serde::{Deserialize, Serialize};
use sygen_backend_api::sdk::fs::write_atomic;

use crate::{
    description,
    exit::{Exit, Failure},
    loader, platform,
};

/// What the probe learns from a backend file.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
pub struct Probe {
    pub name: String,
    pub version: String,
    pub platform: String,
    pub api_version: String,
}

/// `backend probe <file>`: loads the file in this (child) process and prints what it is.
pub fn probe(file: &Path) -> Result<()> {
    let backend = loader::load(file).map_err(|e| e.into_failure(file))?;
    let probe = Probe {
        name: backend.name.clone(),
        version: backend.version.clone(),
        platform: backend.platform.clone(),
        api_version: backend.api_version.clone(),
    };
    println!("{}", serde_json::to_string(&probe)?);
    Ok(())
}

/// Loads `file` in a child process and answers what it is; a crash of the child is an error.
fn probe_in_child(file: &Path) -> Result<Probe> {
    let output = Command::new(std::env::current_exe().context("cannot find the sygen executable")?)
        .args(["service", "backend", "probe"])
        .arg(file)
        .output()
        .context("cannot run the backend check")?;
    if output.status.success() {
        return serde_json::from_slice(&output.stdout)
            .context("the backend check answered something unreadable");
    }
    let crash = match platform::exit_status(output.status) {
        platform::Exit::Signal(signal) => Some(format!("killed by signal {signal}")),
        platform::Exit::Crash(status) => Some(format!("exception {status:#010X}")),
        platform::Exit::Code(_) => None,
    };
    if let Some(crash) = crash {
        return Err(Failure::new(
            Exit::NoBackend,
            format!(
                "backend {}: loading it crashed the check ({crash}); nothing was installed",
                file.display()
            ),
        )
        .hint("this file is not a working sygen backend; ask its publisher for a fixed build")
        .into());
    }
    // The child printed the one-line error already (`error: …`); pass it on as ours.
    let stderr = String::from_utf8_lossy(&output.stderr);
    let line = stderr
        .lines()
        .last()
        .unwrap_or("")
        .trim_start_matches("error: ");
    let (message, hint) = match line.rsplit_once(" (hint: ") {
        Some((message, hint)) => (message, Some(hint.trim_end_matches(')'))),
        None => (line, None),
    };
    let failure = Failure::new(Exit::NoBackend, message);
    Err(match hint {
        Some(hint) => failure.hint(hint),
        None => failure,
    }
    .into())
}

/// `libsygen_<name>.so`, `libsygen_<name>.dylib`, `sygen_<name>.dll`.
fn file_name(name: &str) -> String {
    format!(
        "{}sygen_{name}.{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_EXTENSION
    )
}

struct Store {
    dir: PathBuf,
}

impl Store {
    fn open() -> Result<Self> {
        let dir = description::sygen_home()?.join("backends");
        fs::create_dir_all(dir.join("previous"))
            .with_context(|| format!("cannot create {}", dir.display()))?;
        Ok(Self { dir })
    }

    fn active(&self, name: &str) -> PathBuf {
        self.dir.join(file_name(name))
    }

    fn kept(&self, name: &str) -> PathBuf {
        self.dir.join("previous").join(file_name(name))
    }

    /// Holds the store's lock until dropped: one change at a time.
    fn lock(&self) -> Result<File> {
        let file = File::create(self.dir.join(".lock")).context("cannot create the lock file")?;
        file.lock()
            .with_context(|| format!("cannot lock {}", self.dir.display()))?;
        Ok(file)
    }
}

fn version(text: &str) -> semver::Version {
    semver::Version::parse(text).unwrap_or(semver::Version::new(0, 0, 0))
}

/// Copies `from` to `to` atomically, readable by all and writable by its owner only, with its
/// detached signature when it has one (and without a stale one when it has none).
fn install_copy(from: &Path, to: &Path) -> Result<()> {
    let copy = |from: &Path, to: &Path| -> Result<()> {
        let bytes = fs::read(from).with_context(|| format!("cannot read {}", from.display()))?;
        write_atomic(to, &bytes, Some(0o644))
            .with_context(|| format!("cannot write {}", to.display()))
    };
    let (signature, installed_signature) =
        (loader::signature_path(from), loader::signature_path(to));
    if signature.exists() {
        copy(&signature, &installed_signature)?;
    } else if installed_signature.exists() {
        fs::remove_file(&installed_signature)
            .with_context(|| format!("cannot remove {}", installed_signature.display()))?;
    }
    copy(from, to)
}

pub fn add(file: &Path, force: bool) -> Result<()> {
    let new = probe_in_child(file)?;
    let store = Store::open()?;
    let _lock = store.lock()?;
    let active = store.active(&new.name);
    if active.exists() {
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
        install_copy(&active, &store.kept(&new.name))?;
    }
    install_copy(file, &active)?;
    let kept = probe_in_child(&store.kept(&new.name)).ok();
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
                "it replaces the {} backend shipped with sygen ({}) for every command",
                new.name,
                shipped.display()
            ),
        }
    }
    Ok(())
}

pub fn remove(name: &str) -> Result<()> {
    let store = Store::open()?;
    let _lock = store.lock()?;
    let active = store.active(name);
    if !active.exists() {
        return Err(not_installed(name, &store));
    }
    fs::remove_file(&active).with_context(|| format!("cannot remove {}", active.display()))?;
    for leftover in [
        loader::signature_path(&active),
        store.kept(name),
        loader::signature_path(&store.kept(name)),
    ] {
        let _ = fs::remove_file(leftover);
    }
    println!("removed the {name} backend ({})", active.display());
    Ok(())
}

pub fn rollback(name: &str) -> Result<()> {
    let store = Store::open()?;
    let _lock = store.lock()?;
    let (active, kept) = (store.active(name), store.kept(name));
    if !kept.exists() {
        return Err(Failure::new(
            Exit::Failed,
            format!(
                "no earlier version of the {name} backend is kept in {}",
                kept.display()
            ),
        )
        .hint("rollback goes back to the version the last `backend add` replaced")
        .into());
    }
    let back_to = probe_in_child(&kept)?;
    // The library, then its signature: each rename is atomic, so the active file is always a
    // whole backend.
    for (active, kept) in [
        (active.clone(), kept.clone()),
        (
            loader::signature_path(&active),
            loader::signature_path(&kept),
        ),
    ] {
        swap(&store.dir, &active, &kept)?;
    }
    println!(
        "rolled the {name} backend back to {} ({})",
        back_to.version,
        active.display()
    );
    Ok(())
}

/// Exchanges two files (either may be missing) by renames through a third name in `dir`.
fn swap(dir: &Path, a: &Path, b: &Path) -> Result<()> {
    let aside = dir.join(format!(".swap-{}", std::process::id()));
    if a.exists() {
        fs::rename(a, &aside).with_context(|| format!("cannot move {}", a.display()))?;
    }
    if b.exists() {
        fs::rename(b, a).with_context(|| format!("cannot move {}", b.display()))?;
    }
    if aside.exists() {
        fs::rename(&aside, b).with_context(|| format!("cannot move {}", aside.display()))?;
    }
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
    let found = loader::scan(&loader::search_dirs(&home));
    let loaded: Vec<&loader::Backend> = found.iter().filter_map(|(_, r)| r.as_ref().ok()).collect();
    let mut names: Vec<&str> = loaded.iter().map(|b| b.name.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    if names.is_empty() {
        println!("no backend found");
    }
    for name in names {
        let copies: Vec<&&loader::Backend> = loaded.iter().filter(|b| b.name == name).collect();
        let identities: Vec<loader::Identity> = copies.iter().map(|b| b.identity()).collect();
        let platform = copies[0].platform.clone();
        let chosen = loader::choose(&identities, &platform).unwrap_or(0);
        let active = copies[chosen];
        let why = match copies.len() {
            1 => "the only copy found".to_owned(),
            n => format!(
                "the highest version of the {n} copies found (first in search order when equal)"
            ),
        };
        let shipped = loader::shipped_one_replaced(active, copies.iter().copied().copied(), &home);
        let replaces = shipped.map_or(String::new(), |shipped| {
            format!(
                "; it replaces the one shipped with sygen ({})",
                shipped.display()
            )
        });
        println!(
            "{name} {}: {} — {why}{replaces}",
            active.version,
            active.path.display()
        );
        let kept = home.join("backends/previous").join(file_name(name));
        if kept.exists() {
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
    for (path, result) in &found {
        if let Err(error) = result {
            println!("not loaded: {}: {}", path.display(), error.reason);
        }
    }
    Ok(())
}
