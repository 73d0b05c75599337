//! A channel: the signed JSON manifest a publisher serves, listing backend files per target,
//! and what makes sygen believe it.
//!
//! ```json
//! { "channel": "stable", "issued": "2026-12-04T00:00:00Z", "expires": "2027-01-03T00:00:00Z",
//!   "backends": [ { "name": "systemd", "version": "0.2.0", "target": "linux-x86_64",
//!                   "interface": 1, "url": "https://…/libsygen_systemd.so", "size": 123456,
//!                   "sha256": "…", "signature": "<the file's .minisig>" } ] }
//! ```
//!
//! The manifest is signed (`<url>.minisig`); the signature's trusted comment repeats its
//! channel, `issued` and `expires`. Each file's signature has the trusted comment
//! `sygen-backend name=… version=… target=… interface=…`, so a signature vouches for
//! exactly one name, version, target and interface: an old signed file cannot pose as a new one.
//! As TUF does, sygen refuses a manifest past `expires` (freeze) or older than the newest it
//! has seen from the same key and channel (replay), and a version lower than the highest it
//! has installed from that key (rollback; see `memory`).

use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::{
    backend::trust::TrustedKey,
    exit::{Exit, Failure},
};

/// The interface major version this sygen loads.
pub const INTERFACE: u64 = 1;
/// The largest backend file sygen downloads: a library is a few MiB; a signed manifest that
/// announces more is not believed that far.
pub const LARGEST_FILE: u64 = 256 << 20;

/// This machine, as channels name targets: `<os>-<arch>` (`linux-x86_64`, `macos-aarch64`,
/// `windows-x86_64`).
pub fn this_target() -> String {
    format!("{}-{}", std::env::consts::OS, std::env::consts::ARCH)
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Manifest {
    /// The channel's name (`stable`), so one channel's manifest cannot stand for another's.
    pub channel: String,
    /// When it was made and until when it may be believed, RFC 3339 (UTC).
    pub issued: String,
    pub expires: String,
    pub backends: Vec<Entry>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Entry {
    pub name: String,
    pub version: String,
    pub target: String,
    pub interface: u64,
    pub url: String,
    pub size: u64,
    pub sha256: String,
    /// The file's minisign signature, as `minisign -S` writes it.
    pub signature: String,
}

impl Manifest {
    /// What the manifest's signature's trusted comment must say.
    pub fn trusted_comment(&self) -> String {
        format!(
            "sygen-channel {} issued={} expires={}",
            self.channel, self.issued, self.expires
        )
    }
}

impl Entry {
    /// What the file's signature's trusted comment must say.
    pub fn trusted_comment(&self) -> String {
        format!(
            "sygen-backend name={} version={} target={} interface={}",
            self.name, self.version, self.target, self.interface
        )
    }

    pub fn semver(&self) -> Option<semver::Version> {
        semver::Version::parse(&self.version).ok()
    }
}

/// A manifest sygen believes, and the key that signed it.
#[derive(Debug)]
pub struct Verified {
    pub manifest: Manifest,
    pub key: TrustedKey,
}

fn refused(message: String, hint: &str) -> Failure {
    Failure::new(Exit::Failed, message).hint(hint)
}

const ASK_PUBLISHER: &str =
    "nothing was changed; tell the channel's publisher, or wait for a new manifest";

fn time(text: &str, field: &str) -> Result<SystemTime, Failure> {
    humantime::parse_rfc3339(text).map_err(|e| {
        refused(
            format!("the channel manifest's `{field}` ({text}) is not an RFC 3339 time: {e}"),
            ASK_PUBLISHER,
        )
    })
}

/// How far ahead of this machine's clock a manifest's `issued` may be: clocks drift, but one
/// issued later than this would be remembered as the newest and refuse every correctly dated
/// manifest until then.
pub const CLOCK_SKEW: Duration = Duration::from_secs(3600);

/// Checks `bytes` (the manifest from `url`) against its `signature` and the trusted `keys`,
/// then its times: not issued more than [`CLOCK_SKEW`] after `now`, not expired at `now`, not
/// older than `newest_seen` (what the same key last issued for this channel).
pub fn verify(
    url: &str,
    bytes: &[u8],
    signature: &str,
    keys: &[TrustedKey],
    now: SystemTime,
    newest_seen: impl Fn(&TrustedKey, &str) -> Option<SystemTime>,
) -> Result<Verified, Failure> {
    let signature = minisign_verify::Signature::decode(signature).map_err(|e| {
        refused(
            format!(
                "the signature of the channel manifest {url} is not a minisign signature ({e})"
            ),
            ASK_PUBLISHER,
        )
    })?;
    let key = keys
        .iter()
        .find(|key| key.key.verify(bytes, &signature, false).is_ok())
        .ok_or_else(|| {
            refused(
                format!("the channel manifest {url} is not signed by any trusted key"),
                "add the channel publisher's public key to $SYGEN_HOME/trusted-keys/ \
                 (as <publisher>.pub), \
                 or check the channel's URL",
            )
        })?;
    let manifest: Manifest = serde_json::from_slice(bytes).map_err(|e| {
        refused(
            format!("the channel manifest {url} is not a sygen channel manifest ({e})"),
            ASK_PUBLISHER,
        )
    })?;
    if signature.trusted_comment() != manifest.trusted_comment() {
        return Err(refused(
            format!(
                "the channel manifest {url} says `{}`, but its signature vouches for `{}`",
                manifest.trusted_comment(),
                signature.trusted_comment()
            ),
            ASK_PUBLISHER,
        ));
    }
    let issued = time(&manifest.issued, "issued")?;
    let expires = time(&manifest.expires, "expires")?;
    if now
        .checked_add(CLOCK_SKEW)
        .is_some_and(|latest| issued > latest)
    {
        return Err(refused(
            format!(
                "the channel manifest {url} was issued at {}, more than {} after this machine's \
                 time ({}): refusing it",
                manifest.issued,
                humantime::format_duration(CLOCK_SKEW),
                humantime::format_rfc3339_seconds(now)
            ),
            "check this machine's clock; if it is right, the channel's publisher must publish \
             a manifest with the right time",
        ));
    }
    if expires <= now {
        return Err(refused(
            format!(
                "the channel manifest {url} expired at {}: refusing it",
                manifest.expires
            ),
            "an expired manifest may hide newer versions from you; the channel's publisher \
             must publish a fresh one",
        ));
    }
    if let Some(newest) = newest_seen(key, &manifest.channel) {
        if issued < newest {
            return Err(refused(
                format!(
                    "the channel manifest {url} was issued at {}, before the newest one sygen has \
                     seen from this channel ({}): refusing a replayed manifest",
                    manifest.issued,
                    humantime::format_rfc3339_seconds(newest)
                ),
                "someone may be serving you an old manifest; try again later or from another \
                 mirror",
            ));
        }
    }
    Ok(Verified {
        manifest,
        key: key.clone(),
    })
}

/// What the channel has for one backend here.
#[derive(Debug, PartialEq, Eq)]
pub enum Offer<'a> {
    /// Nothing for this target and interface.
    Nothing,
    /// Nothing newer than `installed`; `newest` is the channel's newest here.
    UpToDate { newest: semver::Version },
    /// `entry` is newer than what is installed.
    Update(&'a Entry),
    /// The channel's newest here is lower than the highest version installed from it before.
    Rollback {
        offered: semver::Version,
        highest: semver::Version,
    },
}

/// The highest version of `name` for `target` and this interface in `manifest`, weighed
/// against the version `installed` and the `highest` installed from this channel's key.
pub fn offer<'a>(
    manifest: &'a Manifest,
    name: &str,
    target: &str,
    installed: Option<&semver::Version>,
    highest: Option<&semver::Version>,
) -> Offer<'a> {
    let newest = manifest
        .backends
        .iter()
        .filter(|e| e.name == name && e.target == target && e.interface == INTERFACE)
        .filter_map(|e| e.semver().map(|v| (v, e)))
        .max_by(|(a, _), (b, _)| a.cmp(b));
    let Some((version, entry)) = newest else {
        return Offer::Nothing;
    };
    if let Some(highest) = highest.filter(|highest| version < **highest) {
        return Offer::Rollback {
            offered: version,
            highest: highest.clone(),
        };
    }
    match installed {
        Some(installed) if version <= *installed => Offer::UpToDate { newest: version },
        _ => Offer::Update(entry),
    }
}

/// Checks a downloaded file against its entry: size, sha256, and a signature by `key` that
/// vouches for exactly this name, version, target and interface.
pub fn verify_file(entry: &Entry, bytes: &[u8], key: &TrustedKey) -> Result<(), Failure> {
    let what = format!(
        "the {} backend {} from {}",
        entry.name, entry.version, entry.url
    );
    let hint = "nothing was installed; tell the channel's publisher";
    if bytes.len() as u64 != entry.size {
        return Err(refused(
            format!(
                "{what} is {} bytes, not the {} the channel announced",
                bytes.len(),
                entry.size
            ),
            hint,
        ));
    }
    let sha256 = format!("{:x}", Sha256::digest(bytes));
    if !sha256.eq_ignore_ascii_case(&entry.sha256) {
        return Err(refused(
            format!(
                "{what} has sha256 {sha256}, not the {} the channel announced",
                entry.sha256
            ),
            hint,
        ));
    }
    let signature = minisign_verify::Signature::decode(&entry.signature).map_err(|e| {
        refused(
            format!("{what}: its signature is not a minisign signature ({e})"),
            hint,
        )
    })?;
    let key_file = key.path.display();
    match key.key.verify(bytes, &signature, false) {
        Ok(()) => {}
        Err(minisign_verify::Error::UnexpectedKeyId) => {
            return Err(refused(
                format!(
                    "{what}: its signature is not by the key that signed the channel ({key_file})"
                ),
                hint,
            ))
        }
        Err(minisign_verify::Error::InvalidSignature) => {
            return Err(refused(
                format!(
                    "{what}: its signature, by the key that signed the channel ({key_file}), is of \
                     other bytes than these"
                ),
                hint,
            ))
        }
        Err(e) => {
            return Err(refused(
                format!("{what}: its signature cannot be checked ({e})"),
                hint,
            ))
        }
    }
    if signature.trusted_comment() != entry.trusted_comment() {
        return Err(refused(
            format!(
                "{what}: its signature vouches for `{}`, not `{}`",
                signature.trusted_comment(),
                entry.trusted_comment()
            ),
            hint,
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn entry(version: &str, target: &str, interface: u64) -> Entry {
        Entry {
            name: "mine".into(),
            version: version.into(),
            target: target.into(),
            interface,
            url: format!("https://example.org/{version}"),
            size: 0,
            sha256: String::new(),
            signature: String::new(),
        }
    }

    fn manifest(entries: Vec<Entry>) -> Manifest {
        Manifest {
            channel: "stable".into(),
            issued: "2026-06-01T00:00:00Z".into(),
            expires: "2099-01-01T00:00:00Z".into(),
            backends: entries,
        }
    }

    fn v(text: &str) -> semver::Version {
        semver::Version::parse(text).unwrap()
    }

    #[test]
    fn offers_the_highest_version_for_this_target_and_interface_only() {
        let m = manifest(vec![
            entry("0.2.0", "linux-x86_64", 1),
            entry("0.3.0", "linux-x86_64", 1),
            entry("0.9.0", "windows-x86_64", 1),
            entry("1.0.0", "linux-x86_64", 2),
            entry("not semver", "linux-x86_64", 1),
        ]);
        let offered = |installed: Option<&str>, highest: Option<&str>| {
            let (installed, highest) = (installed.map(v), highest.map(v));
            match offer(
                &m,
                "mine",
                "linux-x86_64",
                installed.as_ref(),
                highest.as_ref(),
            ) {
                Offer::Update(e) => format!("update {}", e.version),
                other => format!("{other:?}"),
            }
        };
        assert_eq!(offered(None, None), "update 0.3.0");
        assert_eq!(offered(Some("0.2.0"), Some("0.2.0")), "update 0.3.0");
        assert!(offered(Some("0.3.0"), None).starts_with("UpToDate"));
        // A channel behind what was installed by hand is not an attack.
        assert!(offered(Some("0.5.0"), None).starts_with("UpToDate"));
        // Behind what was installed from it is.
        assert!(offered(Some("0.2.0"), Some("0.4.0")).starts_with("Rollback"));
        assert_eq!(
            offer(&m, "other", "linux-x86_64", None, None),
            Offer::Nothing
        );
        assert_eq!(
            offer(&m, "mine", "macos-aarch64", None, None),
            Offer::Nothing
        );
    }

    struct Signer {
        pair: minisign::KeyPair,
        trusted: TrustedKey,
    }

    impl Signer {
        fn new() -> Self {
            let pair = minisign::KeyPair::generate_unencrypted_keypair().unwrap();
            let text = pair.pk.to_box().unwrap().to_string();
            let key = minisign_verify::PublicKey::decode(&text).unwrap();
            let trusted = TrustedKey {
                path: "publisher.pub".into(),
                key,
                id: "0123456789abcdef".into(),
            };
            Self { pair, trusted }
        }

        fn sign(&self, data: &[u8], comment: &str) -> String {
            minisign::sign(None, &self.pair.sk, data, Some(comment), None)
                .unwrap()
                .to_string()
        }
    }

    fn at(text: &str) -> SystemTime {
        humantime::parse_rfc3339(text).unwrap()
    }

    #[test]
    fn a_manifest_is_believed_only_signed_current_and_not_older_than_the_newest_seen() {
        let signer = Signer::new();
        let m = manifest(vec![]);
        let bytes = serde_json::to_vec(&m).unwrap();
        let good = signer.sign(&bytes, &m.trusted_comment());
        let keys = [signer.trusted.clone()];
        let now = at("2026-12-01T00:00:00Z");
        let never = |_: &TrustedKey, _: &str| None;
        let check = |signature: &str, now, seen: Option<SystemTime>| {
            verify("u", &bytes, signature, &keys, now, |_, _| seen).map(|v| v.manifest)
        };
        assert_eq!(check(&good, now, None).unwrap(), m);
        assert!(verify("u", &bytes, &good, &keys, now, never).is_ok());

        let other = Signer::new();
        let stranger = other.sign(&bytes, &m.trusted_comment());
        let refused = check(&stranger, now, None).unwrap_err();
        assert!(
            refused.message.contains("not signed by any trusted key"),
            "{}",
            refused.message
        );

        let lying = signer.sign(
            &bytes,
            "sygen-channel stable issued=2027-01-01T00:00:00Z expires=2099-01-01T00:00:00Z",
        );
        let refused = check(&lying, now, None).unwrap_err();
        assert!(
            refused.message.contains("but its signature vouches for"),
            "{}",
            refused.message
        );

        let refused = check(&good, at("2099-01-01T00:00:00Z"), None).unwrap_err();
        assert!(
            refused.message.contains("expired at 2099-01-01T00:00:00Z"),
            "{}",
            refused.message
        );

        let seen = at("2026-06-01T00:00:00Z") + Duration::from_secs(1);
        let refused = check(&good, now, Some(seen)).unwrap_err();
        assert!(
            refused.message.contains("refusing a replayed manifest"),
            "{}",
            refused.message
        );
        assert!(check(&good, now, Some(at("2026-06-01T00:00:00Z"))).is_ok());

        // Issued ahead of this machine's clock: within the skew, believed; beyond it, never
        // remembered as the newest.
        let issued = at("2026-06-01T00:00:00Z");
        assert!(check(&good, issued - Duration::from_secs(1800), None).is_ok());
        let refused = check(&good, issued - Duration::from_secs(7200), None).unwrap_err();
        assert!(
            refused.message.ends_with(
                "was issued at 2026-06-01T00:00:00Z, more than 1h after this machine's time \
                 (2026-05-31T22:00:00Z): refusing it"
            ),
            "{}",
            refused.message
        );
    }

    #[test]
    fn a_file_must_match_its_size_hash_and_a_signature_naming_exactly_it() {
        let signer = Signer::new();
        let data = b"a backend library".to_vec();
        let mut e = entry("0.2.0", "linux-x86_64", 1);
        e.size = data.len() as u64;
        e.sha256 = format!("{:x}", Sha256::digest(&data));
        e.signature = signer.sign(&data, &e.trusted_comment());
        assert!(verify_file(&e, &data, &signer.trusted).is_ok());

        let message =
            |e: &Entry, data: &[u8]| verify_file(e, data, &signer.trusted).unwrap_err().message;
        assert!(message(&e, b"a backend librarY").contains("has sha256"));
        assert!(message(&e, b"short").contains("is 5 bytes, not the 17"));
        let mut renamed = e.clone();
        renamed.version = "0.9.0".into();
        assert!(message(&renamed, &data)
            .contains("its signature vouches for `sygen-backend name=mine version=0.2.0"));
        let other = Signer::new();
        let mut foreign = e.clone();
        foreign.signature = other.sign(&data, &e.trusted_comment());
        assert!(message(&foreign, &data).contains("is not by the key that signed the channel"));
        // The channel's own key, and the right comment, but for another file.
        let mut borrowed = e.clone();
        borrowed.signature = signer.sign(b"another library", &e.trusted_comment());
        assert!(
            message(&borrowed, &data).ends_with(
                "its signature, by the key that signed the channel (publisher.pub), is of other \
                 bytes than these"
            ),
            "{}",
            message(&borrowed, &data)
        );
    }
}
