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

use std::{fs::File, io::Write as _, path::Path, time::SystemTime};

use anyhow::Result;
use serde::Serialize;

pub use memory::LastCheck;

use crate::{
    description,
    exit::{Exit, Failure},
    install_backend, loader, registry,
    runtime::config::Config,
};
use channel::{Entry, Offer, Verified};

/// The channel of a sygen built with `SYGEN_UPDATE_CHANNEL` set (by a distributor).
const BUILT_IN_CHANNEL: Option<&str> = option_env!("SYGEN_UPDATE_CHANNEL");
/// A signature file is two short comment lines and two base64 lines.
const SIGNATURE_LIMIT: u64 = 64 << 10;

pub struct Request<'a> {
    pub names: &'a [String],
    pub check: bool,
    pub json: bool,
    pub channel: Option<&'a str>,
}

/// One backend's line of the answer.
#[derive(Serialize)]
struct Row {
    name: String,
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
    let home = description::sygen_home()?;
    let config = Config::load(&home.join("config.toml"))?;
    let url = request
        .channel
        .map(str::to_owned)
        .or(config.updates.channel)
        .or(BUILT_IN_CHANNEL.map(str::to_owned))
        .ok_or_else(|| {
            Failure::new(Exit::Failed, "no channel to update from")
                .hint("set `channel` in [updates] of config.toml, or pass --channel <url>")
        })?;
    let keys = loader::required_keys()?;
    let fetcher = download::Fetcher::new(config.updates.ca_file.as_deref())?;
    let store = install_backend::lock()?;
    let mut memory = memory::Memory::load(store.dir())?;

    let manifest = fetcher.document(&url, download::DOCUMENT_LIMIT)?;
    let signature_url = format!("{url}.minisig");
    let signature = String::from_utf8(fetcher.document(&signature_url, SIGNATURE_LIMIT)?)
        .map_err(|_| Failure::new(Exit::Failed, format!("{signature_url} is not text")))?;
    let verified = channel::verify(
        &url,
        &manifest,
        &signature,
        keys,
        SystemTime::now(),
        |k, c| memory.newest_manifest(k, c),
    )?;
    let Verified { manifest, key, .. } = &verified;
    memory.saw_manifest(key, &manifest.channel, &manifest.issued);
    memory.save(store.dir())?;

    let target = channel::this_target();
    let names: Vec<String> = if request.names.is_empty() {
        let mut offered: Vec<String> = manifest.backends.iter().map(|e| e.name.clone()).collect();
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
        let highest = memory.highest(key, &name);
        let offer = channel::offer(
            manifest,
            &name,
            &target,
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

    let report = Report {
        channel: &url,
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
    let record = |available: &[&Row]| {
        LastCheck {
            checked: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
            channel: url.clone(),
            updates: available
                .iter()
                .map(|row| memory::Available {
                    name: row.name.clone(),
                    installed: row.installed.clone(),
                    version: row.offered.clone().unwrap_or_default(),
                })
                .collect(),
        }
        .save(&home)
    };
    record(&updates);
    if let Some(refused) = rows.iter().find(|r| r.status == Status::Refused) {
        let highest = memory.highest(key, &refused.name).map(|v| v.to_string());
        return Err(Failure::new(
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
        )
        .into());
    }
    if request.check {
        return Ok(());
    }
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
    for (done, entry) in updates
        .iter()
        .enumerate()
        .filter_map(|(i, r)| Some((i, r.entry.as_ref()?)))
    {
        install(&store, &fetcher, &url, entry, &verified)?;
        if let Some(version) = entry.semver() {
            memory.installed(key, &entry.name, &version);
            memory.save(store.dir())?;
        }
        record(&updates[done + 1..]);
    }
    Ok(())
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
    store: &install_backend::LockedStore,
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
            Failure::new(
                Exit::Failed,
                format!(
                    "cannot stage the download in {} ({e})",
                    store.dir().display()
                ),
            )
        })?;
    let library = staging.path().join(install_backend::file_name(&entry.name));
    let mut file = File::create(&library).map_err(|e| {
        Failure::new(
            Exit::Failed,
            format!("cannot create {} ({e})", library.display()),
        )
    })?;
    let label = format!("{} {}", entry.name, entry.version);
    let url = download::resolve(channel_url, &entry.url)?;
    fetcher.file(&url, entry.size, &mut file, &label)?;
    drop(file);
    let bytes = std::fs::read(&library).map_err(|e| {
        Failure::new(
            Exit::Failed,
            format!("cannot read {} ({e})", library.display()),
        )
    })?;
    channel::verify_file(entry, &bytes, &verified.key)?;
    let signature = loader::signature_path(&library);
    File::create(&signature)
        .and_then(|mut f| {
            f.write_all(entry.signature.as_bytes())
                .and_then(|()| f.sync_all())
        })
        .map_err(|e| {
            Failure::new(
                Exit::Failed,
                format!("cannot write {} ({e})", signature.display()),
            )
        })?;
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
    store.add(&library, &described, false)
}

/// The library must be what the channel says it is.
fn check_described(
    entry: &Entry,
    described: &registry::Described,
    library: &Path,
) -> Result<(), Failure> {
    let interface = semver::Version::parse(&described.api_version)
        .map(|v| v.major)
        .ok();
    let same = described.name == entry.name
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
