//! What sygen remembers of channels, so that no one can take it back in time: per key and
//! channel, the `issued` time of the newest manifest it believed (a replayed older manifest is
//! refused); per key and backend, the highest version it installed from that key (a lower one
//! offered later is refused). Kept in `$SYGEN_HOME/backends/channels.json`, read and written
//! under the backend store's lock, replaced atomically.
//!
//! And the last check's result, `$SYGEN_HOME/cache/updates.json`, which `sygen doctor` reads
//! instead of going online.

use std::{collections::BTreeMap, path::Path, time::SystemTime};

use serde::{Deserialize, Serialize};
use sygen_backend_api::sdk::fs::write_atomic;

use crate::{
    exit::{Exit, Failure},
    loader::TrustedKey,
};

/// A file of this kind is a few lines; anything much larger is not ours.
const MAX_BYTES: u64 = 1 << 20;

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Memory {
    /// `<key id> <channel>` → the newest `issued` believed.
    manifests: BTreeMap<String, String>,
    /// `<key id> <backend>` → the highest version installed.
    installed: BTreeMap<String, String>,
}

fn read_small(path: &Path) -> std::io::Result<Option<String>> {
    use std::io::Read as _;
    let file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut text = String::new();
    file.take(MAX_BYTES).read_to_string(&mut text)?;
    Ok(Some(text))
}

impl Memory {
    pub fn path(store: &Path) -> std::path::PathBuf {
        store.join("channels.json")
    }

    /// What is remembered in the store at `store`; nothing yet is an empty memory, a memory
    /// that cannot be read is an error (forgetting it would let an old manifest back in).
    pub fn load(store: &Path) -> Result<Self, Failure> {
        let path = Self::path(store);
        let unusable = |why: String| {
            Failure::new(
                Exit::Failed,
                format!(
                    "cannot use {} ({why}): refusing to update without it",
                    path.display()
                ),
            )
            .hint(
                "it records the newest channel manifest and versions seen; if you damaged it, \
                 delete it and sygen starts afresh",
            )
        };
        match read_small(&path).map_err(|e| unusable(e.to_string()))? {
            None => Ok(Self::default()),
            Some(text) => serde_json::from_str(&text).map_err(|e| unusable(e.to_string())),
        }
    }

    pub fn save(&self, store: &Path) -> Result<(), Failure> {
        let path = Self::path(store);
        let text = serde_json::to_string_pretty(self).unwrap_or_default();
        write_atomic(&path, text.as_bytes(), Some(0o644)).map_err(|e| {
            Failure::new(
                Exit::Failed,
                format!("cannot write {} ({e})", path.display()),
            )
        })
    }

    pub fn newest_manifest(&self, key: &TrustedKey, channel: &str) -> Option<SystemTime> {
        self.manifests
            .get(&format!("{} {channel}", key.id))
            .and_then(|issued| humantime::parse_rfc3339(issued).ok())
    }

    pub fn saw_manifest(&mut self, key: &TrustedKey, channel: &str, issued: &str) {
        self.manifests
            .insert(format!("{} {channel}", key.id), issued.to_owned());
    }

    pub fn highest(&self, key: &TrustedKey, name: &str) -> Option<semver::Version> {
        self.installed
            .get(&format!("{} {name}", key.id))
            .and_then(|version| semver::Version::parse(version).ok())
    }

    pub fn installed(&mut self, key: &TrustedKey, name: &str, version: &semver::Version) {
        if self
            .highest(key, name)
            .is_none_or(|highest| *version > highest)
        {
            self.installed
                .insert(format!("{} {name}", key.id), version.to_string());
        }
    }
}

/// The last check of the channel: when, which channel, and what it offered.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct LastCheck {
    pub checked: String,
    pub channel: String,
    pub updates: Vec<Available>,
}

#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Available {
    pub name: String,
    /// The version in use at the check, if any.
    pub installed: Option<String>,
    pub version: String,
}

impl LastCheck {
    pub fn path(sygen_home: &Path) -> std::path::PathBuf {
        sygen_home.join("cache").join("updates.json")
    }

    /// The last check, if one was recorded and can be read.
    pub fn load(sygen_home: &Path) -> Option<Self> {
        let text = read_small(&Self::path(sygen_home)).ok()??;
        serde_json::from_str(&text).ok()
    }

    /// Records this check; a cache that cannot be written is not worth failing for.
    pub fn save(&self, sygen_home: &Path) {
        let path = Self::path(sygen_home);
        let text = serde_json::to_string_pretty(self).unwrap_or_default();
        let saved = path
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|()| write_atomic(&path, text.as_bytes(), Some(0o644)));
        if let Err(e) = saved {
            tracing::debug!("cannot record the update check in {}: {e}", path.display());
        }
    }
}
