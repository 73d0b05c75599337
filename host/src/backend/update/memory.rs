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
    backend::trust::TrustedKey,
    exit::{Exit, Failure},
    file,
};

/// A file of this kind is a few lines; anything much larger is not ours.
const MAX_BYTES: u64 = 1 << 20;

/// What is remembered, per key (by its id).
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Memory {
    /// Per channel, the newest `issued` believed.
    manifests: BTreeMap<String, BTreeMap<String, String>>,
    /// Per backend, the highest version installed.
    installed: BTreeMap<String, BTreeMap<String, String>>,
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
        match file::read_small(&path, MAX_BYTES).map_err(|e| unusable(format!("it {e}")))? {
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
        let issued = self.manifests.get(&key.id)?.get(channel)?;
        humantime::parse_rfc3339(issued).ok()
    }

    pub fn saw_manifest(&mut self, key: &TrustedKey, channel: &str, issued: &str) {
        self.manifests
            .entry(key.id.clone())
            .or_default()
            .insert(channel.to_owned(), issued.to_owned());
    }

    pub fn highest(&self, key: &TrustedKey, name: &str) -> Option<semver::Version> {
        let version = self.installed.get(&key.id)?.get(name)?;
        semver::Version::parse(version).ok()
    }

    pub fn installed(&mut self, key: &TrustedKey, name: &str, version: &semver::Version) {
        if self
            .highest(key, name)
            .is_none_or(|highest| *version > highest)
        {
            self.installed
                .entry(key.id.clone())
                .or_default()
                .insert(name.to_owned(), version.to_string());
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
        let path = Self::path(sygen_home);
        match file::read_small(&path, MAX_BYTES) {
            Ok(text) => serde_json::from_str(&text?).ok(),
            Err(e) => {
                tracing::debug!("ignoring the last update check {}: it {e}", path.display());
                None
            }
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: &str) -> TrustedKey {
        let pair = minisign::KeyPair::generate_unencrypted_keypair().unwrap();
        let text = pair.pk.to_box().unwrap().to_string();
        TrustedKey {
            path: format!("{id}.pub").into(),
            key: minisign_verify::PublicKey::decode(&text).unwrap(),
            id: id.into(),
        }
    }

    fn version(text: &str) -> semver::Version {
        semver::Version::parse(text).unwrap()
    }

    #[test]
    fn remembers_per_key_the_newest_manifest_of_each_channel() {
        let (ours, theirs) = (key("ours"), key("theirs"));
        let mut memory = Memory::default();
        assert_eq!(memory.newest_manifest(&ours, "stable"), None);
        memory.saw_manifest(&ours, "stable", "2026-12-01T00:00:00Z");
        let seen = humantime::parse_rfc3339("2026-12-01T00:00:00Z").unwrap();
        assert_eq!(memory.newest_manifest(&ours, "stable"), Some(seen));
        // Another channel of the key, or the same channel of another key, is its own.
        assert_eq!(memory.newest_manifest(&ours, "beta"), None);
        assert_eq!(memory.newest_manifest(&theirs, "stable"), None);
    }

    #[test]
    fn the_highest_version_installed_never_goes_down() {
        let (ours, theirs) = (key("ours"), key("theirs"));
        let mut memory = Memory::default();
        memory.installed(&ours, "systemd", &version("0.3.0"));
        memory.installed(&ours, "systemd", &version("0.2.0"));
        assert_eq!(memory.highest(&ours, "systemd"), Some(version("0.3.0")));
        memory.installed(&ours, "systemd", &version("0.10.0"));
        assert_eq!(memory.highest(&ours, "systemd"), Some(version("0.10.0")));
        assert_eq!(memory.highest(&ours, "openrc"), None);
        assert_eq!(memory.highest(&theirs, "systemd"), None);
    }

    #[test]
    fn what_is_remembered_survives_and_a_damaged_memory_is_refused() {
        let store = tempfile::tempdir().unwrap();
        let ours = key("ours");
        let mut memory = Memory::load(store.path()).unwrap();
        memory.installed(&ours, "systemd", &version("1.2.3"));
        memory.saw_manifest(&ours, "stable", "2026-12-01T00:00:00Z");
        memory.save(store.path()).unwrap();
        let again = Memory::load(store.path()).unwrap();
        assert_eq!(again.highest(&ours, "systemd"), Some(version("1.2.3")));
        assert!(again.newest_manifest(&ours, "stable").is_some());

        // Forgetting it would let an old manifest back in.
        std::fs::write(Memory::path(store.path()), "{ not json").unwrap();
        let refused = Memory::load(store.path()).unwrap_err();
        assert!(
            refused.message.starts_with(&format!(
                "cannot use {} (",
                Memory::path(store.path()).display()
            )) && refused
                .message
                .ends_with("): refusing to update without it"),
            "{}",
            refused.message
        );
    }

    #[cfg(unix)]
    #[test]
    fn a_fifo_in_place_of_the_memory_is_refused_without_waiting() {
        let store = tempfile::tempdir().unwrap();
        let mode = nix::sys::stat::Mode::from_bits_truncate(0o600);
        nix::unistd::mkfifo(&Memory::path(store.path()), mode).unwrap();
        let refused = Memory::load(store.path()).unwrap_err();
        assert!(
            refused
                .message
                .contains("(it is not a regular file (a FIFO))"),
            "{}",
            refused.message
        );
        let sygen_home = tempfile::tempdir().unwrap();
        std::fs::create_dir(sygen_home.path().join("cache")).unwrap();
        nix::unistd::mkfifo(&LastCheck::path(sygen_home.path()), mode).unwrap();
        assert_eq!(LastCheck::load(sygen_home.path()), None);
    }
}
