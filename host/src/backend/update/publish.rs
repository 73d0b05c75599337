//! `sygen service backend publish`: the publisher's side of a channel. It describes a backend
//! library (in a child process, as sygen would), signs it with a trusted comment binding its
//! name, version, target and interface, merges its entry into the channel manifest, and signs
//! the manifest, its trusted comment binding the channel, `issued` and `expires`.

use std::{
    io::Cursor,
    path::{Path, PathBuf},
    time::{Duration, SystemTime},
};

use anyhow::Result;
use ct_codecs::Decoder as _;
use sha2::{Digest, Sha256};
use sygen_backend_api::sdk::fs::write_atomic;

use super::{
    channel::{self, Entry, Manifest},
    download::DOCUMENT_LIMIT,
};
use crate::{
    backend::{registry, trust},
    exit::{Exit, Failure},
    file,
};

/// How long a manifest may be believed, at least and at most.
const SHORTEST: Duration = Duration::from_secs(3600);
const LONGEST: Duration = Duration::from_secs(366 * 24 * 3600);

pub struct Publication<'a> {
    pub library: &'a Path,
    pub secret_key: &'a Path,
    pub url: &'a str,
    pub manifest: &'a Path,
    pub channel: Option<&'a str>,
    pub target: Option<&'a str>,
    pub expires_in: Duration,
}

fn failure(message: String) -> Failure {
    Failure::new(Exit::Failed, message)
}

/// The secret key in `path`; an encrypted one is opened with `$SYGEN_SIGNING_PASSWORD`, else
/// with a password asked for at the terminal.
fn secret_key(path: &Path) -> Result<minisign::SecretKey, Failure> {
    // A key file is two short lines.
    let text = file::read_small(path, 4096)
        .map_err(|e| failure(format!("the secret key {} {e}", path.display())))?
        .ok_or_else(|| failure(format!("there is no secret key {}", path.display())))?;
    let unusable = |e: minisign::PError| {
        failure(format!(
            "{} is not a usable minisign secret key ({e})",
            path.display()
        ))
        .hint("make a key pair with `minisign -G`; give the secret key (`-s`) here")
    };
    let key_box = minisign::SecretKeyBox::from_string(&text).map_err(unusable)?;
    if let Some(key) = key_box
        .clone()
        .into_unencrypted_secret_key()
        .ok()
        .or_else(|| unencrypted_without_checksum(&text))
    {
        return Ok(key);
    }
    // Deriving the key from the password (scrypt, a gigabyte of memory) takes seconds: say so.
    let password = std::env::var("SYGEN_SIGNING_PASSWORD").ok();
    let from = match password {
        Some(_) => "with $SYGEN_SIGNING_PASSWORD",
        None => "with the password you type",
    };
    eprintln!(
        "unlocking the encrypted key {} {from} (a few seconds)…",
        path.display()
    );
    key_box.into_secret_key(password).map_err(unusable)
}

/// An unencrypted key as minisign 0.11's `-G -W` writes it: with its checksum left zero, which
/// the minisign library takes for corruption. What the checksum would prove, that the secret
/// and public halves belong together, is proven instead by a signature the public half verifies.
fn unencrypted_without_checksum(text: &str) -> Option<minisign::SecretKey> {
    let encoded = text.lines().nth(1)?;
    let bytes = ct_codecs::Base64::decode_to_vec(encoded.trim(), None).ok()?;
    let key = minisign::SecretKey::from_bytes(&bytes).ok()?;
    if key.is_encrypted() {
        return None;
    }
    let public = minisign::PublicKey::from_secret_key(&key).ok()?;
    let probe = b"sygen: does this key verify itself?";
    let signature = minisign::sign(None, &key, Cursor::new(probe), None, None).ok()?;
    minisign::verify(&public, &signature, Cursor::new(probe), true, false, false).ok()?;
    Some(key)
}

fn sign(key: &minisign::SecretKey, data: &[u8], trusted_comment: &str) -> Result<String, Failure> {
    minisign::sign(
        None,
        key,
        Cursor::new(data),
        Some(trusted_comment),
        Some("signed by sygen service backend publish"),
    )
    .map(|signature| signature.to_string())
    .map_err(|e| failure(format!("cannot sign ({e})")))
}

fn write(path: &Path, text: &str) -> Result<(), Failure> {
    write_atomic(path, text.as_bytes(), Some(0o644))
        .map_err(|e| failure(format!("cannot write {} ({e})", path.display())))
}

pub fn publish(p: &Publication<'_>) -> Result<()> {
    if !(SHORTEST..=LONGEST).contains(&p.expires_in) {
        return Err(failure(format!(
            "--expires-in must be from 1h to 366d, not {}",
            humantime::format_duration(p.expires_in)
        ))
        .into());
    }
    let key = secret_key(p.secret_key)?;
    eprintln!(
        "signing {} and the manifest {}…",
        p.library.display(),
        p.manifest.display()
    );
    let entry = sign_library(p, &key)?;
    let mut manifest = read_manifest(p.manifest)?;
    if let Some(name) = p.channel {
        manifest.channel = name.to_owned();
    }
    add_entry(&mut manifest, &entry);
    let now = SystemTime::now();
    manifest.issued = humantime::format_rfc3339_seconds(now).to_string();
    manifest.expires = humantime::format_rfc3339_seconds(now + p.expires_in).to_string();
    let text = serde_json::to_string_pretty(&manifest).unwrap_or_default() + "\n";
    let signature = sign(&key, text.as_bytes(), &manifest.trusted_comment())?;
    let signature_file = PathBuf::from(format!("{}.minisig", p.manifest.display()));
    write(p.manifest, &text)?;
    write(&signature_file, &signature)?;
    println!(
        "added the {} backend {} for {} (interface {}, {} bytes, sha256 {}) to {}",
        entry.name,
        entry.version,
        entry.target,
        entry.interface,
        entry.size,
        entry.sha256,
        p.manifest.display()
    );
    println!(
        "signed the {} channel (issued {}, expires {}): publish {} and {} together, and the \
         library at {}",
        manifest.channel,
        manifest.issued,
        manifest.expires,
        p.manifest.display(),
        signature_file.display(),
        entry.url
    );
    Ok(())
}

/// Describes the library (as sygen would, in a child process), signs it with `key` and writes
/// its signature beside it; answers its manifest entry.
fn sign_library(p: &Publication<'_>, key: &minisign::SecretKey) -> Result<Entry> {
    // The file is about to be signed: it cannot have a valid signature yet.
    let described = registry::describe_unsigned_in_child(p.library)?;
    let interface = described.interface().map_err(|e| {
        failure(format!(
            "its interface version {:?} is not semver ({e})",
            described.api_version
        ))
    })?;
    let bytes = file::read_bytes(p.library, channel::LARGEST_FILE)
        .map_err(|e| e.to_string())
        .and_then(|bytes| bytes.ok_or_else(|| "it does not exist".to_owned()))
        .map_err(|why| failure(format!("cannot read {} ({why})", p.library.display())))?;
    let mut entry = Entry {
        name: described.name.to_string(),
        version: described.version.clone(),
        target: p.target.map_or_else(channel::this_target, str::to_owned),
        interface,
        url: p.url.to_owned(),
        size: bytes.len() as u64,
        sha256: format!("{:x}", Sha256::digest(&bytes)),
        signature: String::new(),
    };
    entry.signature = sign(key, &bytes, &entry.trusted_comment())?;
    write(&trust::signature_path(p.library), &entry.signature)?;
    Ok(entry)
}

/// The manifest at `path`, or a new one of the stable channel when there is none.
fn read_manifest(path: &Path) -> Result<Manifest, Failure> {
    match file::read_bytes(path, DOCUMENT_LIMIT) {
        Ok(Some(text)) => serde_json::from_slice::<Manifest>(&text).map_err(|e| {
            failure(format!(
                "{} is not a sygen channel manifest ({e})",
                path.display()
            ))
        }),
        Ok(None) => Ok(Manifest {
            channel: "stable".into(),
            issued: String::new(),
            expires: String::new(),
            backends: Vec::new(),
        }),
        Err(why) => Err(failure(format!("the manifest {} {why}", path.display()))),
    }
}

/// Puts `entry` into `manifest`, in place of one for the same backend, version and target.
fn add_entry(manifest: &mut Manifest, entry: &Entry) {
    manifest.backends.retain(|e| {
        !(e.name == entry.name && e.version == entry.version && e.target == entry.target)
    });
    manifest.backends.push(entry.clone());
    manifest
        .backends
        .sort_by(|a, b| (&a.name, &a.target, a.semver()).cmp(&(&b.name, &b.target, b.semver())));
}

#[cfg(test)]
mod tests {
    use ct_codecs::Encoder as _;

    use super::*;

    /// A key box as minisign 0.11's `-G -W` writes it: unencrypted, its checksum left zero.
    fn without_checksum(key: &minisign::SecretKey) -> String {
        let mut bytes = key.to_bytes();
        let checksum_at = bytes.len() - 32;
        bytes[checksum_at..].fill(0);
        let encoded = ct_codecs::Base64::encode_to_string(&bytes).unwrap();
        format!("untrusted comment: minisign encrypted secret key\n{encoded}\n")
    }

    #[test]
    fn an_unencrypted_key_without_a_checksum_signs_and_a_mismatched_one_does_not() {
        let pair = minisign::KeyPair::generate_unencrypted_keypair().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.key");
        std::fs::write(&path, without_checksum(&pair.sk)).unwrap();
        let key = secret_key(&path).unwrap();
        let signature = minisign::sign(None, &key, Cursor::new(b"data"), None, None).unwrap();
        minisign::verify(
            &pair.pk,
            &signature,
            Cursor::new(b"data"),
            true,
            false,
            false,
        )
        .unwrap();

        // The public half of another key: the halves do not belong together.
        let other = minisign::KeyPair::generate_unencrypted_keypair().unwrap();
        let mut mixed = pair.sk.to_bytes();
        let public_at = mixed.len() - 32 - 32;
        mixed[public_at..public_at + 32]
            .copy_from_slice(&other.sk.to_bytes()[public_at..public_at + 32]);
        let mixed = minisign::SecretKey::from_bytes(&mixed).unwrap();
        std::fs::write(&path, without_checksum(&mixed)).unwrap();
        let refused = secret_key(&path).unwrap_err();
        assert!(
            refused.message.contains("not a usable minisign secret key"),
            "{}",
            refused.message
        );
    }
}
