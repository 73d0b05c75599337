//! Whose code sygen agrees to run: a backend library is refused when anyone but the user
//! (or root) could have put it there, and, once `$SYGEN_HOME/trusted-keys/` holds publishers'
//! minisign keys, unless a trusted key signed it (`<file>.minisig`). `--allow-unsigned` loads
//! an unsigned file anyway, saying so; nothing loads a file someone else could have changed.

use std::{
    io::Read as _,
    path::{Path, PathBuf},
};

use super::load_error::{LoadError, NOT_A_BACKEND_HINT};
use crate::{
    exit::{Exit, Failure},
    file, home, platform,
};

/// A signature file is two short comment lines and two base64 lines.
pub const SIGNATURE_LIMIT: u64 = 64 << 10;

/// Refuses a library that someone other than this user could have put there
/// ([`platform::check_trust`]): loading it runs its code with this user's rights.
pub fn check_trust(path: &Path) -> Result<(), LoadError> {
    platform::check_trust(path)
        .map_err(|untrusted| LoadError::new(untrusted.reason, untrusted.hint))
}

/// The keys of trusted backend publishers (minisign `.pub` files in `$SYGEN_HOME/trusted-keys/`),
/// read once per process however many backends are loaded. While there are any, every backend
/// needs a valid detached signature, `<file>.minisig`.
///
/// Once `trusted-keys` exists, keys that cannot be used are an error naming the file, never a
/// reason to load unsigned code: a directory that cannot be read (or is not a directory), a
/// key file that cannot be read or is not a minisign public key.
fn trusted_keys() -> &'static Result<Keys, Unusable> {
    static KEYS: std::sync::OnceLock<Result<Keys, Unusable>> = std::sync::OnceLock::new();
    KEYS.get_or_init(read_trusted_keys)
}

type Keys = Vec<TrustedKey>;

/// A publisher's key from `trusted-keys/`.
#[derive(Clone, Debug)]
pub struct TrustedKey {
    pub path: PathBuf,
    pub key: minisign_verify::PublicKey,
    /// Names the key in what sygen remembers of channels, whatever its file is called: the
    /// start of the sha256 of its base64 form.
    pub id: String,
}

/// The trusted keys, for what must be signed whatever else is allowed (backend updates): an
/// error when there are none, or when they cannot be used.
pub fn required_keys() -> Result<&'static [TrustedKey], Failure> {
    let dir = home::sygen_home()
        .map(|home| home.join("trusted-keys"))
        .unwrap_or_default();
    match trusted_keys() {
        Ok(keys) if !keys.is_empty() => Ok(keys),
        Ok(_) => Err(Failure::new(
            Exit::Failed,
            format!(
                "there are no trusted keys in {}: updates must be signed",
                dir.display()
            ),
        )
        .hint("save the channel publisher's minisign public key there as <publisher>.pub")),
        Err(unusable) => {
            let refusal = unusable.refusal();
            Err(Failure::new(Exit::Failed, refusal.reason).hint(refusal.hint))
        }
    }
}

fn read_trusted_keys() -> Result<Keys, Unusable> {
    let Ok(home) = home::sygen_home() else {
        return Ok(Vec::new());
    };
    let dir = home.join("trusted-keys");
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(unusable_key(&dir, &e.to_string())),
    };
    only_yours(&dir)?;
    let mut keys = Vec::new();
    for entry in entries {
        let path = entry
            .map_err(|e| unusable_key(&dir, &e.to_string()))?
            .path();
        if path.extension().is_some_and(|ext| ext == "pub") {
            only_yours(&path)?;
            let (key, id) = read_key(&path).map_err(|why| unusable_key(&path, &why))?;
            keys.push(TrustedKey { path, key, id });
        }
    }
    Ok(keys)
}

/// Refuses the keys when `place` (`trusted-keys/` or a key in it) could have been changed by
/// someone but the user or root: whoever could write a key there chooses whose code sygen
/// runs. A link is judged by what it points to, and by the directory that holds that.
fn only_yours(place: &Path) -> Result<(), Unusable> {
    let refuse = |untrusted: platform::Untrusted| Unusable {
        why: format!(
            "trusted keys must be changeable only by you or root, and {}",
            untrusted.reason
        ),
        hint: untrusted.hint,
    };
    platform::check_private(place).map_err(refuse)?;
    let linked = std::fs::symlink_metadata(place).is_ok_and(|m| m.file_type().is_symlink());
    if linked {
        let target = dunce::canonicalize(place).map_err(|e| unusable_key(place, &e.to_string()))?;
        if let Some(dir) = target.parent() {
            platform::check_private(dir).map_err(refuse)?;
        }
    }
    Ok(())
}

/// The trusted keys sygen checks backends against, or why they cannot be used: for doctor.
/// `None` when there is no `trusted-keys` (backends are then not signature-checked).
pub fn keys_in_use() -> Option<(PathBuf, Result<usize, Unusable>)> {
    let dir = home::sygen_home().ok()?.join("trusted-keys");
    std::fs::symlink_metadata(&dir).ok()?;
    let keys = trusted_keys().as_ref().map(Vec::len).map_err(Clone::clone);
    Some((dir, keys))
}

/// A minisign public key file: its comment line and the key, or the key's line alone (as
/// `minisign -P` takes it). Answers the key and its id.
fn read_key(path: &Path) -> Result<(minisign_verify::PublicKey, String), String> {
    // A key file is two short lines.
    let text = file::read_small(path, 4096)
        .map_err(|e| e.to_string())?
        .ok_or("it is gone")?;
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let key = match lines[..] {
        [key] => minisign_verify::PublicKey::from_base64(key),
        _ => minisign_verify::PublicKey::decode(&text),
    }
    .map_err(|e| format!("not a minisign public key: {e}"))?;
    let base64 = lines.last().copied().unwrap_or_default();
    let digest = format!(
        "{:x}",
        <sha2::Sha256 as sha2::Digest>::digest(base64.as_bytes())
    );
    Ok((key, digest[..16].to_owned()))
}

/// Why the trusted keys cannot be used; every backend is refused for it.
#[derive(Clone, Debug)]
pub struct Unusable {
    /// What is wrong, naming the file.
    pub why: String,
    pub hint: String,
}

impl Unusable {
    /// What loading a backend is refused with.
    fn refusal(&self) -> LoadError {
        LoadError::new(
            format!("refusing to load it: {}", self.why),
            self.hint.clone(),
        )
    }
}

fn unusable_key(place: &Path, why: &str) -> Unusable {
    Unusable {
        why: format!("the trusted key {} cannot be used ({why})", place.display()),
        hint: "fix or remove it: while trusted-keys exists, every backend's signature is \
               checked against the keys in it"
            .into(),
    }
}

/// `--allow-unsigned` (which sets `SYGEN_ALLOW_UNSIGNED=1`, so child processes agree).
fn unsigned_allowed() -> bool {
    std::env::var("SYGEN_ALLOW_UNSIGNED").as_deref() == Ok("1")
}

/// The signature file of a backend library.
pub fn signature_path(library: &Path) -> PathBuf {
    let mut name = library.as_os_str().to_owned();
    name.push(".minisig");
    PathBuf::from(name)
}

/// Checks the signature of the library open as `file` (at `path`, beside which its signature
/// is) against the bytes read through `file`.
pub fn check_signature(path: &Path, file: &mut std::fs::File) -> Result<(), LoadError> {
    let keys = match trusted_keys() {
        Ok(keys) if keys.is_empty() => return Ok(()),
        Ok(keys) => keys,
        Err(unusable) if unsigned_allowed() => {
            eprintln!(
                "warning: loading {} unchecked (--allow-unsigned): {}",
                path.display(),
                unusable.refusal().reason
            );
            return Ok(());
        }
        Err(unusable) => return Err(unusable.refusal()),
    };
    let keys_dir = keys[0]
        .path
        .parent()
        .unwrap_or(Path::new(""))
        .display()
        .to_string();
    let refuse = |reason: String| {
        if unsigned_allowed() {
            eprintln!(
                "warning: loading {} although {reason} (--allow-unsigned): its code runs \
                 with your rights, unchecked",
                path.display()
            );
            return Ok(());
        }
        Err(LoadError::new(
            format!("refusing to load it: {reason}"),
            format!(
                "get the signature from the backend's publisher, or pass --allow-unsigned \
                 to load it anyway (keys: {keys_dir})"
            ),
        ))
    };
    let signature_file = signature_path(path);
    let text = match file::read_small(&signature_file, SIGNATURE_LIMIT) {
        Ok(Some(text)) => text,
        Ok(None) => {
            return refuse(format!(
                "it has no signature ({}) and {keys_dir} holds trusted keys",
                signature_file.display()
            ))
        }
        Err(why) => return refuse(format!("its signature {} {why}", signature_file.display())),
    };
    let signature = match minisign_verify::Signature::decode(&text) {
        Ok(signature) => signature,
        Err(e) => {
            return refuse(format!(
                "{} is not a minisign signature ({e})",
                signature_file.display()
            ))
        }
    };
    let mut data = Vec::new();
    std::io::Seek::rewind(file)
        .and_then(|()| file.read_to_end(&mut data))
        .map_err(|e| LoadError::new(format!("cannot read it ({e})"), NOT_A_BACKEND_HINT))?;
    if keys
        .iter()
        .any(|trusted| trusted.key.verify(&data, &signature, false).is_ok())
    {
        return Ok(());
    }
    refuse(format!(
        "its signature ({}) does not match any trusted key in {keys_dir}",
        signature_file.display()
    ))
}
