//! `sygen service backend update [<name>…] [--check] [--json] [--channel <url>]`: backends
//! from a signed channel. The manifest is fetched and believed only with a trusted key's
//! signature (`channel`), each file is fetched (`download`) and checked against it, then
//! handed to the store as `backend add` would: checked in a child process, installed
//! atomically, the replaced version kept. The store's lock is held from the first fetch to the
//! last install, so a second `update` waits, then finds nothing to do. What sygen must not
//! forget (the newest manifest, the highest versions) is in `memory`.
//!
//! `publish` is the other side: what a backend's publisher runs to add a file to a channel.

pub mod channel;
mod download;
mod memory;
pub mod publish;

use std::{
    fs::File,
    io::Write as _,
    path::{Path, PathBuf},
    time::SystemTime,
};

use anyhow::Result;
use serde::Serialize;

pub use memory::LastCheck;

use super::{
    identity::Described,
    name::BackendName,
    registry,
    store::{self, LockedStore},
    trust::{self, TrustedKey, SIGNATURE_LIMIT},
};
use crate::{
    exit::{Exit, Failure},
    home,
};
use channel::{Entry, Manifest, Offer, Verified};

/// The channel of a sygen built with `SYGEN_UPDATE_CHANNEL` set (by a distributor).
const BUILT_IN_CHANNEL: Option<&str> = option_env!("SYGEN_UPDATE_CHANNEL");

/// The channel to update from: the one passed, else the one config.toml names, else the one
/// built in.
pub fn channel_url(passed: Option<&str>, configured: Option<&str>) -> Result<String, Failure> {
    passed
        .or(configured)
        .or(BUILT_IN_CHANNEL)
        .map(str::to_owned)
        .ok_or_else(|| {
            Failure::new(Exit::Failed, "no channel to update from")
                .hint("set `channel` in [updates] of config.toml, or pass --channel <url>")
        })
}

pub struct Request<'a> {
    /// The backends to update; none: every installed one the channel offers.
    pub names: &'a [BackendName],
    pub check: bool,
    pub json: bool,
    pub channel: &'a str,
    /// Certificate authorities trusted for the channel instead of the platform's.
    pub ca_file: Option<&'a Path>,
    /// The slowest download accepted, in bytes a second (see `download`).
    pub min_rate: u64,
}

/// One backend's line of the answer.
#[derive(Serialize)]
struct Row {
    name: BackendName,
    installed: Option<String>,
    /// The channel's newest version here, if it has one.
    offered: Option<String>,
    status: Status,
    #[serde(skip)]
    entry: Option<Entry>,
}

#[derive(Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
enum Status {
    Update,
    UpToDate,
    /// Nothing for this target and interface.
    None,
    /// Lower than a version installed from the channel before.
    Refused,
}

#[derive(Serialize)]
struct Report<'a> {
    channel: &'a str,
    name: &'a str,
    issued: &'a str,
    expires: &'a str,
    target: &'a str,
    backends: &'a [Row],
}

pub fn update(request: &Request<'_>) -> Result<()> {
    let home = home::sygen_home()?;
    let keys = trust::required_keys()?;
    let fetcher = download::Fetcher::new(request.ca_file, request.min_rate)?;
    let store = store::lock()?;
    let mut memory = memory::Memory::load(store.dir())?;
    let verified = fetch_manifest(&fetcher, request.channel, keys, &mut memory, store.dir())?;
    let Verified { manifest, key, .. } = &verified;
    let target = channel::this_target();
    let rows = compare(request, manifest, key, &memory, &store, &target)?;
    let report = Report {
        channel: request.channel,
        name: &manifest.channel,
        issued: &manifest.issued,
        expires: &manifest.expires,
        target: &target,
        backends: &rows,
    };
    if request.check {
        print_report(&report, request.json);
    }
    let updates: Vec<&Row> = rows.iter().filter(|r| r.status == Status::Update).collect();
    record_check(&home, request.channel, &updates);
    refuse_going_back(&rows, &memory, key)?;
    if request.check {
        return Ok(());
    }
    say_what_is_not_updated(&rows, manifest, &target);
    for (done, entry) in updates
        .iter()
        .enumerate()
        .filter_map(|(i, r)| Some((i, r.entry.as_ref()?)))
    {
        install(&store, &fetcher, request.channel, entry, &verified)?;
        if let Some(version) = entry.semver() {
            memory.installed(key, &entry.name, &version);
            memory.save(store.dir())?;
        }
        record_check(&home, request.channel, &updates[done + 1..]);
    }
    Ok(())
}

/// Fetches the channel's manifest and its signature, and believes it only as [`channel::verify`]
/// allows; remembers it as the newest seen.
fn fetch_manifest(
    fetcher: &download::Fetcher,
    url: &str,
    keys: &[TrustedKey],
    memory: &mut memory::Memory,
    store: &Path,
) -> Result<Verified> {
    let manifest = fetcher.document(url, download::DOCUMENT_LIMIT)?;
    let signature_url = format!("{url}.minisig");
    let signature = String::from_utf8(fetcher.document(&signature_url, SIGNATURE_LIMIT)?)
        .map_err(|_| Failure::new(Exit::Failed, format!("{signature_url} is not text")))?;
    let verified = channel::verify(
        url,
        &manifest,
        &signature,
        keys,
        SystemTime::now(),
        |k, c| memory.newest_manifest(k, c),
    )?;
    memory.saw_manifest(
        &verified.key,
        &verified.manifest.channel,
        &verified.manifest.issued,
    );
    memory.save(store)?;
    Ok(verified)
}

/// A row per backend asked for (or, when none was, per backend installed here that the
/// channel offers): what is installed, what the channel offers, and what that means.
fn compare(
    request: &Request<'_>,
    manifest: &Manifest,
    key: &TrustedKey,
    memory: &memory::Memory,
    store: &LockedStore,
    target: &str,
) -> Result<Vec<Row>> {
    let names: Vec<BackendName> = if request.names.is_empty() {
        // A name no backend can have is nothing this sygen could install.
        let mut offered: Vec<BackendName> = manifest
            .backends
            .iter()
            .filter_map(|e| BackendName::new(e.name.as_str()).ok())
            .collect();
        offered.sort();
        offered.dedup();
        offered
    } else {
        request.names.to_vec()
    };
    let mut rows = Vec::new();
    for name in names {
        let installed = store.version_in_use(&name)?;
        if installed.is_none() && request.names.is_empty() {
            // Unasked, only what is installed here is updated.
            continue;
        }
        let highest = memory.highest(key, name.as_str());
        let offer = channel::offer(
            manifest,
            name.as_str(),
            target,
            installed.as_ref(),
            highest.as_ref(),
        );
        let (offered, status, entry) = match offer {
            Offer::Nothing => (None, Status::None, None),
            Offer::UpToDate { newest } => (Some(newest.to_string()), Status::UpToDate, None),
            Offer::Update(entry) => (
                Some(entry.version.clone()),
                Status::Update,
                Some(entry.clone()),
            ),
            Offer::Rollback { offered, .. } => (Some(offered.to_string()), Status::Refused, None),
        };
        rows.push(Row {
            name,
            installed: installed.map(|v| v.to_string()),
            offered,
            status,
            entry,
        });
    }
    Ok(rows)
}

/// Records what this check found for `sygen doctor` (see [`LastCheck`]): the updates still
/// to install.
fn record_check(home: &Path, url: &str, available: &[&Row]) {
    LastCheck {
        checked: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
        channel: url.to_owned(),
        updates: available
            .iter()
            .map(|row| memory::Available {
                name: row.name.to_string(),
                installed: row.installed.clone(),
                version: row.offered.clone().unwrap_or_default(),
            })
            .collect(),
    }
    .save(home);
}

/// Refuses a channel offering a version lower than one installed from it before.
fn refuse_going_back(
    rows: &[Row],
    memory: &memory::Memory,
    key: &TrustedKey,
) -> Result<(), Failure> {
    let Some(refused) = rows.iter().find(|r| r.status == Status::Refused) else {
        return Ok(());
    };
    let highest = memory
        .highest(key, refused.name.as_str())
        .map(|v| v.to_string());
    Err(Failure::new(
        Exit::Failed,
        format!(
            "the channel offers the {} backend {}, lower than {} installed from it before: \
             refusing it",
            refused.name,
            refused.offered.as_deref().unwrap_or("?"),
            highest.as_deref().unwrap_or("the version")
        ),
    )
    .hint(
        "a channel going back in versions may be an attack; `sygen service backend \
         rollback` and `backend add --force` are the ways back",
    ))
}

/// Says which backends the channel has nothing for, or that there is nothing to update.
fn say_what_is_not_updated(rows: &[Row], manifest: &Manifest, target: &str) {
    for row in rows.iter().filter(|r| r.status == Status::None) {
        println!(
            "the {} channel has nothing for the {} backend on {target} (interface {})",
            manifest.channel,
            row.name,
            channel::INTERFACE
        );
    }
    if rows.is_empty() {
        println!(
            "the {} channel offers no backend installed here",
            manifest.channel
        );
    } else if rows.iter().all(|r| r.status == Status::UpToDate) {
        println!(
            "every backend is up to date with the {} channel (issued {})",
            manifest.channel, manifest.issued
        );
    }
}

fn print_report(report: &Report<'_>, json: bool) {
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(report).unwrap_or_default()
        );
        return;
    }
    println!(
        "the {} channel ({}), issued {}, for {}:",
        report.name, report.channel, report.issued, report.target
    );
    for row in report.backends {
        let installed = row.installed.as_deref().unwrap_or("not installed");
        let offered = row.offered.as_deref().unwrap_or("-");
        let (target, interface) = (report.target, channel::INTERFACE);
        let what = match row.status {
            Status::Update => format!("{installed} → {offered} available"),
            Status::UpToDate => {
                format!("{installed}, up to date (the channel's newest is {offered})")
            }
            Status::Refused => format!(
                "{installed}; the channel offers {offered}, lower than one installed from it before"
            ),
            Status::None => format!(
                "{installed}; the channel has nothing for {target} and interface {interface}"
            ),
        };
        println!("  {}: {what}", row.name);
    }
    if report.backends.is_empty() {
        println!("  nothing the channel offers is installed here");
    }
}

/// Fetches `entry` into a temporary directory of the store, checks it, and installs it.
fn install(
    store: &LockedStore,
    fetcher: &download::Fetcher,
    channel_url: &str,
    entry: &Entry,
    verified: &Verified,
) -> Result<()> {
    if entry.size > channel::LARGEST_FILE {
        return Err(Failure::new(
            Exit::Failed,
            format!(
                "the channel announces the {} backend {} as {} bytes, more than a backend library \
                 can be ({} bytes): refusing it",
                entry.name,
                entry.version,
                entry.size,
                channel::LARGEST_FILE
            ),
        )
        .hint("nothing was installed; tell the channel's publisher")
        .into());
    }
    let staging = tempfile::Builder::new()
        .prefix(".tmp-update-")
        .tempdir_in(store.dir())
        .map_err(|e| {
            let dir = store.dir().display();
            Failure::new(
                Exit::Failed,
                format!("cannot stage the download in {dir} ({e})"),
            )
        })?;
    let url = download::resolve(channel_url, &entry.url)?;
    let library = fetch(fetcher, &url, entry, verified, staging.path())?;
    let described = registry::describe_in_child(&library).map_err(|failure| Failure {
        message: format!("{}; nothing was installed", failure.message),
        ..failure
    })?;
    check_described(entry, &described, &library)?;
    println!(
        "fetched the {} backend {} from {} ({} bytes, signed by {})",
        entry.name,
        entry.version,
        url,
        entry.size,
        verified.key.path.display()
    );
    println!("{}", store.add(&library, &described, false)?);
    Ok(())
}

/// Downloads the library of `entry` from `url` into `dir`, checks it against the verified
/// manifest and writes its signature beside it; answers its path.
fn fetch(
    fetcher: &download::Fetcher,
    url: &str,
    entry: &Entry,
    verified: &Verified,
    dir: &Path,
) -> Result<PathBuf, Failure> {
    let cannot = |what: &str, path: &Path, e: std::io::Error| {
        Failure::new(
            Exit::Failed,
            format!("cannot {what} {} ({e})", path.display()),
        )
    };
    let name = BackendName::parse(&entry.name).map_err(|e| Failure::new(Exit::Failed, e))?;
    let library = dir.join(name.file_name());
    let mut file = File::create(&library).map_err(|e| cannot("create", &library, e))?;
    let label = format!("{} {}", entry.name, entry.version);
    fetcher.file(url, entry.size, &mut file, &label)?;
    drop(file);
    let bytes = std::fs::read(&library).map_err(|e| cannot("read", &library, e))?;
    channel::verify_file(entry, &bytes, &verified.key)?;
    let signature = trust::signature_path(&library);
    File::create(&signature)
        .and_then(|mut f| {
            f.write_all(entry.signature.as_bytes())
                .and_then(|()| f.sync_all())
        })
        .map_err(|e| cannot("write", &signature, e))?;
    Ok(library)
}

/// The library must be what the channel says it is.
fn check_described(entry: &Entry, described: &Described, library: &Path) -> Result<(), Failure> {
    let interface = described.interface().ok();
    let same = described.name.as_str() == entry.name
        && entry
            .semver()
            .is_some_and(|v| semver::Version::parse(&described.version).is_ok_and(|d| d == v))
        && interface == Some(entry.interface);
    if same {
        return Ok(());
    }
    Err(Failure::new(
        Exit::Failed,
        format!(
            "{} says it is the {} backend {} (interface {}), not the {} {} (interface {}) the \
             channel announced",
            library.display(),
            described.name,
            described.version,
            described.api_version,
            entry.name,
            entry.version,
            entry.interface
        ),
    )
    .hint("nothing was installed; tell the channel's publisher"))
}
