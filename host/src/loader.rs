//! Finding, loading and choosing backend libraries.
//!
//! Each file is loaded with `lib_header_from_path` + `init_root_module`, which checks the
//! interface version and the root module's layout for that one file. `RootModule::load_from_file`
//! is not used: it caches one module per type, so every later file would silently answer as the
//! first backend loaded. Libraries are never unloaded (a backend may have left threads or
//! thread-locals behind, and its code must stay mapped while they exist).
//!
//! Search order: `--backend <file>`, then `$SYGEN_BACKEND`, then the backend files in
//! `$SYGEN_HOME/backends/`, `<exe dir>/backends/`, `<exe dir>/../lib/sygen/backends/` and
//! `<exe dir>` itself (where `cargo build` puts them). Among those, the backend for the running
//! platform is chosen, and of several versions the highest that loads.

use std::{
    env,
    io::Read as _,
    path::{Path, PathBuf},
};

use abi_stable::library::{lib_header_from_path, LibraryError};
use sygen_backend_api::{
    abi::{BackendInfo, BackendResult},
    BackendError, BackendModuleRef, ServiceSpec,
};

use crate::{
    boundary::{self, Limit, Site},
    console,
    exit::{Exit, Failure},
    platform,
    registry::{self, Described},
};

/// A loaded backend library.
pub struct Backend {
    pub path: PathBuf,
    pub name: String,
    pub version: String,
    pub platform: String,
    pub description: String,
    pub api_version: String,
    /// The backend shipped with sygen that this one, chosen from the sygen home, replaces.
    pub replaces: Option<PathBuf>,
    /// Why it is the backend in use, when it is.
    pub why: Option<Why>,
    /// The description's `extra` for this backend: its settings from config.toml.
    extra: String,
    module: BackendModuleRef,
}

/// Why a file did not load, in one line, with what to do about it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadError {
    pub reason: String,
    pub hint: String,
    /// The reason lies in the file's bytes (see `registry`): true until the file changes.
    pub lasting: bool,
}

const NOT_A_BACKEND_HINT: &str =
    "pass a sygen backend library (libsygen_<name>.so, .dylib or sygen_<name>.dll)";

impl LoadError {
    pub fn new(reason: impl Into<String>, hint: impl Into<String>) -> Self {
        Self {
            reason: reason.into(),
            hint: hint.into(),
            lasting: false,
        }
    }

    fn lasting(self) -> Self {
        Self {
            lasting: true,
            ..self
        }
    }

    /// `path` is the one the loader was given, which its messages repeat.
    fn from_library(path: &Path, error: LibraryError) -> Self {
        let lasting = !matches!(error, LibraryError::OpenError { .. });
        let error = Self::from_library_error(path, error);
        Self { lasting, ..error }
    }

    fn from_library_error(path: &Path, error: LibraryError) -> Self {
        match error {
            LibraryError::OpenError { err, .. } => {
                let detail = err.to_string();
                let prefix = format!("{}: ", path.display());
                let detail = detail.strip_prefix(&prefix).unwrap_or(&detail);
                Self::new(
                    format!("not a loadable library ({detail})"),
                    NOT_A_BACKEND_HINT,
                )
            }
            LibraryError::GetSymbolError { .. } => Self::new(
                "not a sygen backend (it exports no abi_stable root module)",
                NOT_A_BACKEND_HINT,
            ),
            LibraryError::InvalidAbiHeader(_) | LibraryError::InvalidCAbi { .. } => Self::new(
                "built with an incompatible abi_stable",
                "rebuild the backend against the sygen-backend-api this sygen uses",
            ),
            LibraryError::IncompatibleVersionNumber {
                expected_version,
                actual_version,
                ..
            } => Self::new(
                format!(
                    "built against backend interface {actual_version}; this sygen loads {}.x",
                    expected_version.major
                ),
                "install a version of this backend built for this sygen's interface",
            ),
            LibraryError::AbiInstability(detail) => {
                tracing::debug!("layout mismatch in {}:{detail}", path.display());
                Self::new(
                    "built against an incompatible backend interface (layout mismatch)",
                    "install a version of this backend built for this sygen's interface",
                )
            }
            LibraryError::RootModule { err, .. } => Self::new(
                format!("its root module failed to initialize ({err})"),
                "report this to the backend's publisher",
            ),
            other => Self::new(
                format!("could not be loaded ({})", other.to_string().trim()),
                NOT_A_BACKEND_HINT,
            ),
        }
    }

    /// The failure reported when the backend the user named does not load.
    pub fn into_failure(self, path: &Path) -> Failure {
        Failure::new(
            Exit::NoBackend,
            format!("backend {}: {}", path.display(), self.reason),
        )
        .hint(self.hint)
    }
}

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
fn trusted_keys() -> &'static Result<Keys, LoadError> {
    static KEYS: std::sync::OnceLock<Result<Keys, LoadError>> = std::sync::OnceLock::new();
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
    let dir = crate::description::sygen_home()
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
            Err(Failure::new(Exit::Failed, unusable.reason.clone()).hint(unusable.hint.clone()))
        }
    }
}

fn read_trusted_keys() -> Result<Keys, LoadError> {
    let Ok(home) = crate::description::sygen_home() else {
        return Ok(Vec::new());
    };
    let dir = home.join("trusted-keys");
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(unusable_key(&dir, &e.to_string())),
    };
    let mut keys = Vec::new();
    for entry in entries {
        let path = entry
            .map_err(|e| unusable_key(&dir, &e.to_string()))?
            .path();
        if path.extension().is_some_and(|ext| ext == "pub") {
            let (key, id) = read_key(&path).map_err(|why| unusable_key(&path, &why))?;
            keys.push(TrustedKey { path, key, id });
        }
    }
    Ok(keys)
}

/// A minisign public key file: its comment line and the key, or the key's line alone (as
/// `minisign -P` takes it). Answers the key and its id.
fn read_key(path: &Path) -> Result<(minisign_verify::PublicKey, String), String> {
    let mut text = String::new();
    // A key file is two short lines.
    std::fs::File::open(path)
        .and_then(|file| file.take(4096).read_to_string(&mut text))
        .map_err(|e| e.to_string())?;
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

fn unusable_key(place: &Path, why: &str) -> LoadError {
    LoadError::new(
        format!(
            "refusing to load it: the trusted key {} cannot be used ({why})",
            place.display()
        ),
        "fix or remove it: while trusted-keys exists, every backend's signature is checked \
         against the keys in it",
    )
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
fn check_signature(path: &Path, file: &mut std::fs::File) -> Result<(), LoadError> {
    let keys = match trusted_keys() {
        Ok(keys) if keys.is_empty() => return Ok(()),
        Ok(keys) => keys,
        Err(unusable) if unsigned_allowed() => {
            eprintln!(
                "warning: loading {} unchecked (--allow-unsigned): {}",
                path.display(),
                unusable.reason
            );
            return Ok(());
        }
        Err(unusable) => return Err(unusable.clone()),
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
    let Ok(text) = std::fs::read_to_string(&signature_file) else {
        return refuse(format!(
            "it has no signature ({}) and {keys_dir} holds trusted keys",
            signature_file.display()
        ));
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

/// Whether `name` is a backend name: `[a-z0-9][a-z0-9_-]*`, at most 64 characters. Backend
/// files and paths are made from names, so a name can never leave the backends directory.
pub fn check_name(name: &str) -> Result<(), &'static str> {
    let allowed = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_';
    match name.chars().next() {
        None => Err("is empty"),
        Some('-' | '_') => Err("does not start with a letter or digit"),
        Some(_) if name.len() > 64 => Err("is longer than 64 characters"),
        Some(_) if !name.chars().all(allowed) => {
            Err("has characters other than lowercase letters, digits, '-' and '_'")
        }
        Some(_) => Ok(()),
    }
}

/// A backend name given on the command line ([`check_name`]).
pub fn parse_name(name: &str) -> Result<String, String> {
    check_name(name)
        .map(|()| name.to_owned())
        .map_err(|why| format!("{name:?} is not a backend name: it {why} (for example: systemd)"))
}

/// The canonical path of a file that could be a backend library, or why it cannot be.
fn resolve(path: &Path) -> Result<PathBuf, LoadError> {
    let metadata = std::fs::metadata(path).map_err(|e| {
        let hint = "check the path of the backend file";
        match e.kind() {
            std::io::ErrorKind::NotFound => LoadError::new("no such file", hint),
            _ => LoadError::new(format!("cannot read it ({e})"), hint),
        }
    })?;
    if metadata.is_dir() {
        return Err(LoadError::new(
            "is a directory, not a backend library",
            NOT_A_BACKEND_HINT,
        ));
    }
    if metadata.len() == 0 {
        return Err(LoadError::new("empty file", NOT_A_BACKEND_HINT));
    }
    // An absolute path keeps the dynamic loader from searching LD_LIBRARY_PATH and friends.
    // `dunce` keeps Windows paths free of the `\\?\` prefix in what is shown and written.
    dunce::canonicalize(path)
        .map_err(|e| LoadError::new(format!("cannot resolve it ({e})"), NOT_A_BACKEND_HINT))
}

/// Whether the file at `path` may be loaded: its trust and signature checks, run on the file
/// as opened (see [`load`]). Answers its canonical path. No code of it runs.
pub fn check(path: &Path) -> Result<PathBuf, LoadError> {
    let path = resolve(path)?;
    let mut file = open(&path)?;
    check_open(&path, &mut file)?;
    Ok(path)
}

fn open(path: &Path) -> Result<std::fs::File, LoadError> {
    platform::open_to_load(path)
        .map_err(|e| LoadError::new(format!("cannot open it ({e})"), NOT_A_BACKEND_HINT))
}

fn check_open(path: &Path, file: &mut std::fs::File) -> Result<(), LoadError> {
    platform::check_trust_open(file, path)
        .map_err(|untrusted| LoadError::new(untrusted.reason, untrusted.hint))?;
    check_signature(path, file)
}

/// Loads the backend library at `path`. The file is opened once: its trust and signature are
/// checked through that descriptor and the library is loaded from it
/// ([`platform::loadable_path`]), so a file swapped in between the checks and the load is
/// never the one loaded.
pub fn load(path: &Path) -> Result<Backend, LoadError> {
    let path = resolve(path)?;
    let mut file = open(&path)?;
    check_open(&path, &mut file)?;
    let (module, info) = open_library(&path, &platform::loadable_path(&file, &path))?;
    // Open for as long as the library stays loaded, which is for good: the dynamic loader knows
    // it by the descriptor's path, which must never name another library later in this process.
    std::mem::forget(file);
    let name = info.name.as_str();
    check_name(name).map_err(|why| {
        LoadError::new(
            format!("it calls itself {name:?}, which {why}"),
            "a backend's name is lowercase letters, digits, '-' and '_' (ask its publisher)",
        )
        .lasting()
    })?;
    Ok(Backend {
        path,
        name: info.name.into(),
        version: info.version.into(),
        platform: info.platform.into(),
        description: info.description.into(),
        api_version: info.api_version.into(),
        replaces: None,
        why: None,
        extra: extra_for("", &Settings::new()),
        module,
    })
}

/// Loads the library at `loadable` (the file checked at `path`) and asks what it is, through
/// the boundary: its constructors and `info` run in this process, so a crash or hang in them
/// is reported as the backend's.
fn open_library(
    path: &Path,
    loadable: &Path,
) -> Result<(BackendModuleRef, BackendInfo), LoadError> {
    let who = format!("backend {}", path.display());
    let site = Site {
        who: &who,
        call: "loading",
    };
    let library = loadable.to_owned();
    boundary::call(&site, Limit::Query, move || {
        let module = lib_header_from_path(&library)
            .and_then(|header| header.init_root_module::<BackendModuleRef>())
            .map_err(|e| LoadError::from_library(&library, e))?;
        Ok((module, (module.info())()))
    })
    .map_err(|failure| {
        // Said after the file's name, which the message starts with.
        let reason = failure
            .message
            .strip_prefix(&who)
            .unwrap_or(&failure.message);
        LoadError::new(reason.trim_start(), failure.hint.unwrap_or_default())
    })?
}

/// A backend error, as the host reports it: prefixed with the backend, mapped to an exit code.
pub fn backend_failure(backend: &Backend, error: BackendError) -> Failure {
    let exit = if error.kind == sygen_backend_api::ErrorKind::NOT_INSTALLED {
        Exit::NotInstalled
    } else {
        Exit::Failed
    };
    let mut failure = Failure::new(
        exit,
        format!(
            "{} backend {}: {}",
            backend.name, backend.version, error.message
        ),
    );
    failure.backend_kind = Some(error.kind);
    match error.hint.into_option() {
        Some(hint) => failure.hint(hint),
        None if exit == Exit::NotInstalled => failure.hint("run `sygen service install`"),
        None => failure,
    }
}

type Operation<T> =
    extern "C" fn(&ServiceSpec, sygen_backend_api::abi::Console) -> BackendResult<T>;

macro_rules! operations {
    ($($name:ident -> $ty:ty, $limit:ident;)*) => {$(
        pub fn $name(&self, spec: &ServiceSpec) -> Result<$ty, Failure> {
            self.invoke(stringify!($name), Limit::$limit, self.module.$name(), spec)
        }
    )*};
}

impl Backend {
    /// `systemd backend 0.1.0`: the backend as messages name it.
    fn who(&self) -> String {
        format!("{} backend {}", self.name, self.version)
    }

    /// Calls into the backend through the boundary (see `boundary`): its answer, its error as
    /// the host reports it, or why there was none.
    fn guarded<T: Send + 'static>(
        &self,
        call: &str,
        limit: Limit,
        f: impl FnOnce(sygen_backend_api::abi::Console) -> BackendResult<T> + Send + 'static,
    ) -> Result<T, Failure> {
        let console = console::for_backend(&self.name);
        let who = self.who();
        boundary::call(&Site { who: &who, call }, limit, move || {
            f(console).into_result()
        })?
        .map_err(|e| backend_failure(self, e))
    }

    fn invoke<T: Send + 'static>(
        &self,
        call: &str,
        limit: Limit,
        operation: Operation<T>,
        spec: &ServiceSpec,
    ) -> Result<T, Failure> {
        let spec = self.spec(spec);
        self.guarded(call, limit, move |console| operation(&spec, console))
    }

    /// Gives the backend its own table of `settings` with every call from now on.
    pub fn configure(&mut self, settings: &Settings) {
        self.extra = extra_for(&self.name, settings);
    }

    /// `spec`, with this backend's own part of the description (its settings) in `extra`.
    fn spec(&self, spec: &ServiceSpec) -> ServiceSpec {
        let mut spec = spec.clone();
        spec.extra = self.extra.as_str().into();
        spec
    }

    operations! {
        is_service_available -> bool, Query;
        is_service_installed -> bool, Query;
        is_service_running -> bool, Query;
        install_service -> (), Change;
        start_service -> (), Change;
        stop_service -> (), Change;
        uninstall_service -> (), Change;
        print_service_status -> (), Query;
    }

    /// What the backend says it is.
    pub fn described(&self) -> Described {
        Described {
            name: self.name.clone(),
            version: self.version.clone(),
            platform: self.platform.clone(),
            description: self.description.clone(),
            api_version: self.api_version.clone(),
        }
    }

    /// What to say after the backend's name where sygen names the backend in use: why it is
    /// the one, and where it comes from when it replaces the one shipped with sygen.
    pub fn replacing(&self) -> String {
        let why = self.why.map_or(String::new(), |why| format!(", {why}"));
        match &self.replaces {
            Some(shipped) => format!(
                " {} from {}, which replaces the one shipped with sygen ({}){why}",
                self.version,
                self.path.parent().unwrap_or(&self.path).display(),
                shipped.display()
            ),
            None => why,
        }
    }

    /// The `call` methods and optional behaviours the backend supports (none, if it cannot
    /// say in time).
    pub fn capabilities(&self) -> Vec<String> {
        let capabilities = self.module.capabilities();
        let who = self.who();
        let site = Site {
            who: &who,
            call: "capabilities",
        };
        boundary::call(&site, Limit::Query, move || {
            capabilities().into_iter().map(String::from).collect()
        })
        .unwrap_or_else(|failure| {
            tracing::warn!("{failure}");
            Vec::new()
        })
    }

    /// The extension point: `method` with a JSON `input`, answering JSON.
    pub fn call(&self, method: &str, input: &str, spec: &ServiceSpec) -> Result<String, Failure> {
        let (function, spec) = (self.module.call(), self.spec(spec));
        let (method_text, input) = (method.to_owned(), input.to_owned());
        self.guarded(method, Limit::Change, move |console| {
            function(
                method_text.as_str().into(),
                input.as_str().into(),
                &spec,
                console,
            )
        })
        .map(String::from)
    }

    pub fn print_service_logs(
        &self,
        spec: &ServiceSpec,
        follow: bool,
        lines: u32,
    ) -> Result<(), Failure> {
        let (function, spec) = (self.module.print_service_logs(), self.spec(spec));
        let limit = if follow { Limit::None } else { Limit::Change };
        self.guarded("print_service_logs", limit, move |console| {
            function(&spec, follow, lines, console)
        })
    }
}

/// The directories searched for backend files, in order.
pub fn search_dirs(sygen_home: &Path) -> Vec<PathBuf> {
    let mut dirs = vec![sygen_home.join("backends")];
    if let Some(exe_dir) = env::current_exe()
        .ok()
        .and_then(|p| dunce::canonicalize(p).ok())
        .and_then(|p| p.parent().map(Path::to_path_buf))
    {
        dirs.push(exe_dir.join("backends"));
        if let Some(prefix) = exe_dir.parent() {
            dirs.push(prefix.join("lib/sygen/backends"));
        }
        dirs.push(exe_dir);
    }
    dirs
}

/// The backend shipped with sygen that `found[chosen]` replaces: one of the same name in a
/// directory beside the sygen binary, when the chosen one comes from `$SYGEN_HOME/backends`. A
/// newer backend installed there wins over the shipped one by design; sygen says so wherever
/// it names the backend in use, so that it never happens unseen.
pub fn shipped_one_replaced(found: &[Found], chosen: usize, sygen_home: &Path) -> Option<PathBuf> {
    let installed = dunce::canonicalize(sygen_home.join("backends")).ok()?;
    let chosen = &found[chosen];
    let name = &chosen.described.as_ref().ok()?.name;
    if !chosen.path.starts_with(&installed) {
        return None;
    }
    found
        .iter()
        .find(|other| {
            other.described.as_ref().is_ok_and(|d| &d.name == name)
                && !other.path.starts_with(&installed)
        })
        .map(|shipped| shipped.path.clone())
}

/// The backend file called `file_name` shipped with sygen (beside the sygen binary), if any.
pub fn shipped_file(sygen_home: &Path, file_name: &str) -> Option<PathBuf> {
    search_dirs(sygen_home)
        .into_iter()
        .skip(1)
        .map(|dir| dir.join(file_name))
        .find(|path| path.is_file())
}

/// Whether a file name looks like a backend library on this platform.
fn is_backend_file_name(name: &str) -> bool {
    let Some(stem) = name.strip_suffix(&format!(".{}", env::consts::DLL_EXTENSION)) else {
        return false;
    };
    stem.strip_prefix("lib")
        .unwrap_or(stem)
        .strip_prefix("sygen_")
        .is_some_and(|name| !name.is_empty())
}

/// Every backend file in `dirs`, in search order: in each directory, the files named like
/// backend libraries and the version in use of each backend `backend add` installed there.
pub fn backend_files(dirs: &[PathBuf]) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for dir in dirs {
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        let mut files: Vec<PathBuf> = entries
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_str().is_some_and(is_backend_file_name))
            .map(|e| e.path())
            .collect();
        // Backends installed by `backend add` live one level down, in the version directory
        // their `state` file names.
        files.extend(crate::install_backend::active_files(dir));
        files.sort();
        found.extend(files);
    }
    found
}

/// The backend name sygen uses by default on `platform`.
fn preferred_backend(platform: &str) -> Option<&'static str> {
    match platform {
        "linux" => Some("systemd"),
        "macos" => Some("launchd"),
        "windows" => Some("tasksched"),
        _ => None,
    }
}

/// What choosing a backend looks at.
#[derive(Clone, Debug)]
pub struct Identity<'a> {
    pub name: &'a str,
    pub platform: &'a str,
    pub version: semver::Version,
}

impl<'a> From<&'a Described> for Identity<'a> {
    fn from(described: &'a Described) -> Self {
        Identity {
            name: &described.name,
            platform: &described.platform,
            version: semver::Version::parse(&described.version)
                .unwrap_or(semver::Version::new(0, 0, 0)),
        }
    }
}

/// Why the backend in use is the one it is, as sygen says it wherever it names that backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Why {
    /// `--backend <file>`.
    Flag,
    /// `$SYGEN_BACKEND`.
    Env,
    /// `backend = "<name>"` in config.toml (`sygen service backend use <name>`).
    Config,
    /// The platform's usual backend (systemd, launchd, Task Scheduler).
    PlatformDefault,
    /// The only backend found for the platform.
    OnlyOne,
}

impl std::fmt::Display for Why {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Why::Flag => "named with --backend",
            Why::Env => "named by SYGEN_BACKEND",
            Why::Config => "chosen in config.toml",
            Why::PlatformDefault => "the default for this platform",
            Why::OnlyOne => "the only one for this platform",
        })
    }
}

/// Chooses the backend for `platform`: the one `configured` names, else the platform's usual
/// backend if present, else the only one there is; of several versions of it, the highest.
/// Answers an index into `candidates` and why.
pub fn choose(
    candidates: &[Identity<'_>],
    platform: &str,
    configured: Option<&str>,
) -> Result<(usize, Why), Failure> {
    let for_platform = |i: &usize| candidates[*i].platform == platform;
    let mut eligible: Vec<usize> = (0..candidates.len()).filter(for_platform).collect();
    let mut why = Why::OnlyOne;
    if let Some(name) = configured {
        eligible.retain(|&i| candidates[i].name == name);
        if eligible.is_empty() {
            return Err(Failure::new(
                Exit::NoBackend,
                format!("the {name} backend chosen in config.toml was not found for {platform}"),
            )
            .hint(
                "`sygen service backends` lists the backends found; \
                 `sygen service backend use <name>` chooses another",
            ));
        }
        why = Why::Config;
    } else if let Some(preferred) = preferred_backend(platform) {
        if eligible.iter().any(|&i| candidates[i].name == preferred) {
            eligible.retain(|&i| candidates[i].name == preferred);
            why = Why::PlatformDefault;
        }
    }
    let mut names: Vec<&str> = eligible.iter().map(|&i| candidates[i].name).collect();
    names.sort_unstable();
    names.dedup();
    match names.len() {
        0 => Err(Failure::new(
            Exit::NoBackend,
            format!("no usable sygen backend for {platform} was found"),
        )
        .hint(
            "pass --backend <file> or set SYGEN_BACKEND; \
             `sygen service backends` shows what was found and why it did not load",
        )),
        // The highest version; of equal ones, the first in search order.
        1 => Ok((
            eligible
                .into_iter()
                .reduce(|best, i| {
                    if candidates[i].version > candidates[best].version {
                        i
                    } else {
                        best
                    }
                })
                .unwrap_or_default(),
            why,
        )),
        _ => Err(Failure::new(
            Exit::NoBackend,
            format!(
                "several backends manage {platform} services: {}",
                names.join(", ")
            ),
        )
        .hint("choose one: `sygen service backend use <name>`, or --backend <file>")),
    }
}

/// What `config.toml` says about backends: the one chosen, and each one's settings. A
/// configuration that does not parse is said once and says nothing: finding a backend must
/// work to repair the service.
fn backend_config(sygen_home: &Path) -> (Option<String>, Settings) {
    let path = sygen_home.join("config.toml");
    match crate::runtime::config::Config::load(&path) {
        Ok(config) => (config.backend, config.backends),
        Err(failure) => {
            eprintln!(
                "warning: {} (backends are chosen and run without it)",
                failure.message
            );
            (None, Settings::new())
        }
    }
}

/// The `[backends.<name>]` tables of the config.toml in `sygen_home`.
pub fn settings(sygen_home: &Path) -> Settings {
    backend_config(sygen_home).1
}

/// `[backends.<name>]` of config.toml, by name.
pub type Settings = std::collections::BTreeMap<String, toml::Table>;

/// What the description's `extra` carries to the backend `name`: its settings.
fn extra_for(name: &str, settings: &Settings) -> String {
    let table = settings.get(name).cloned().unwrap_or_default();
    serde_json::json!({ "settings": table }).to_string()
}

/// Where the backend to use comes from.
#[derive(Clone, Copy)]
pub enum Choice<'a> {
    /// A file named on the command line (`--backend`).
    Flag(&'a Path),
    /// A file named in `$SYGEN_BACKEND`, else the search path.
    Default,
}

impl Choice<'_> {
    /// Why the file [`Choice::named_file`] answers is the one.
    fn why_named(self) -> Why {
        match self {
            Choice::Flag(_) => Why::Flag,
            Choice::Default => Why::Env,
        }
    }

    /// The one file the user named, if any: `--backend`, else `$SYGEN_BACKEND`.
    pub fn named_file(self) -> Option<PathBuf> {
        match self {
            Choice::Flag(path) => Some(path.to_path_buf()),
            Choice::Default => env::var_os("SYGEN_BACKEND")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from),
        }
    }
}

/// A backend file found, with what it is or why sygen does not use it.
pub struct Found {
    /// Canonical, once the file passed its checks.
    pub path: PathBuf,
    pub described: Result<Described, LoadError>,
    /// Whether its service manager answers, when the survey asked.
    pub available: Option<Result<bool, Failure>>,
}

/// Every backend file the user named or the search path holds, and the one in use. Nothing of
/// theirs ran in this process (see `registry`).
pub struct Survey {
    pub searched: Vec<PathBuf>,
    pub found: Vec<Found>,
    /// Index into `found` of the backend sygen uses, or why there is none.
    pub selected: Result<usize, Failure>,
    /// Why the backend in use is the one.
    pub why: Option<Why>,
    /// The backend shipped with sygen that the one in use replaces.
    pub replaces: Option<PathBuf>,
    settings: Settings,
}

/// Finds, checks and describes every backend file; with `available`, also asks each whether
/// its service manager answers (each in its own child process).
pub fn survey(choice: Choice<'_>, sygen_home: &Path, available: bool) -> Survey {
    let named = choice.named_file();
    let (configured, settings) = backend_config(sygen_home);
    let searched = search_dirs(sygen_home);
    let files: Vec<PathBuf> = named
        .iter()
        .cloned()
        .chain(backend_files(&searched))
        .collect();
    let checked: Vec<Result<PathBuf, LoadError>> = files.iter().map(|f| check(f)).collect();
    let passed: Vec<PathBuf> = checked.iter().filter_map(|c| c.clone().ok()).collect();
    let mut described = registry::describe(&passed, sygen_home, available).into_iter();
    let found: Vec<Found> = files
        .into_iter()
        .zip(checked)
        .map(|(file, checked)| {
            // Descriptions come in the order of the files that passed their checks.
            let description = checked.is_ok().then(|| described.next()).flatten();
            match (checked, description) {
                (Ok(path), Some(description)) => Found {
                    path,
                    described: description.described,
                    available: description.available,
                },
                (Ok(path), None) => Found {
                    path,
                    described: Err(LoadError::new("was not described", "run the command again")),
                    available: None,
                },
                (Err(error), _) => Found {
                    path: file,
                    described: Err(error),
                    available: None,
                },
            }
        })
        .collect();
    let chosen = match &named {
        Some(path) => match &found[0].described {
            Ok(_) => Ok((0, choice.why_named())),
            Err(error) => Err(error.clone().into_failure(path)),
        },
        None => {
            let usable: Vec<(usize, &Described)> = found
                .iter()
                .enumerate()
                .filter_map(|(i, f)| Some((i, f.described.as_ref().ok()?)))
                .collect();
            let identities: Vec<Identity> = usable.iter().map(|(_, d)| (*d).into()).collect();
            choose(&identities, env::consts::OS, configured.as_deref())
                .map(|(chosen, why)| (usable[chosen].0, why))
        }
    };
    let why = chosen.as_ref().ok().map(|(_, why)| *why);
    let selected = chosen.map(|(index, _)| index);
    let replaces = match (&named, &selected) {
        (None, Ok(index)) => shipped_one_replaced(&found, *index, sygen_home),
        _ => None,
    };
    Survey {
        searched,
        found,
        selected,
        why,
        replaces,
        settings,
    }
}

impl Survey {
    /// Loads the backend in use into this process, after its checks, and makes sure it is what
    /// the survey found.
    pub fn load_selected(&self) -> Result<Backend, Failure> {
        let index = *self.selected.as_ref().map_err(Clone::clone)?;
        let found = &self.found[index];
        let mut backend = load(&found.path).map_err(|e| e.into_failure(&found.path))?;
        if let Ok(described) = &found.described {
            if backend.described() != *described {
                return Err(Failure::new(
                    Exit::NoBackend,
                    format!(
                        "backend {}: it is {} {} now, not the {} {} found a moment ago",
                        found.path.display(),
                        backend.name,
                        backend.version,
                        described.name,
                        described.version
                    ),
                )
                .hint("it was replaced while sygen looked at it; run the command again"));
            }
        }
        backend.replaces = self.replaces.clone();
        backend.why = self.why;
        backend.configure(&self.settings);
        Ok(backend)
    }
}

/// Loads the backend the user asked for, or the default one for this platform: only that one
/// is loaded into this process.
pub fn select(choice: Choice<'_>, sygen_home: &Path) -> Result<Backend, Failure> {
    if let Some(path) = choice.named_file() {
        let mut backend = load(&path).map_err(|e| e.into_failure(&path))?;
        backend.why = Some(choice.why_named());
        backend.configure(&settings(sygen_home));
        return Ok(backend);
    }
    survey(choice, sygen_home, false).load_selected()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_is_lowercase_letters_digits_dashes_and_underscores() {
        for good in ["systemd", "openrc", "my-backend_2", "0x", &"a".repeat(64)] {
            assert_eq!(check_name(good), Ok(()), "{good}");
        }
        for bad in [
            "",
            "-x",
            "_x",
            "X",
            "a/b",
            "..",
            "a.b",
            "a b",
            "a\nb",
            "é",
            &"a".repeat(65),
        ] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn recognises_backend_file_names() {
        let ext = env::consts::DLL_EXTENSION;
        assert!(is_backend_file_name(&format!("libsygen_systemd.{ext}")));
        assert!(is_backend_file_name(&format!("sygen_tasksched.{ext}")));
        assert!(!is_backend_file_name(&format!("libsygen_.{ext}")));
        assert!(!is_backend_file_name(&format!("libz.{ext}")));
        assert!(!is_backend_file_name("libsygen_systemd.d"));
        assert!(!is_backend_file_name("sygen"));
    }

    fn id<'a>(name: &'a str, platform: &'a str, version: &str) -> Identity<'a> {
        Identity {
            name,
            platform,
            version: semver::Version::parse(version).unwrap(),
        }
    }

    #[test]
    fn chooses_the_platform_backend_at_its_highest_version() {
        let found = [
            id("launchd", "macos", "9.0.0"),
            id("systemd", "linux", "0.2.0"),
            id("openrc", "linux", "5.0.0"),
            id("systemd", "linux", "0.10.0"),
            id("systemd", "linux", "0.9.0"),
            id("systemd", "linux", "0.10.0"),
        ];
        assert_eq!(
            choose(&found, "linux", None).unwrap(),
            (3, Why::PlatformDefault),
            "first of the highest"
        );
        assert_eq!(
            choose(&found, "macos", None).unwrap(),
            (0, Why::PlatformDefault)
        );
        assert_eq!(
            choose(&found, "linux", Some("openrc")).unwrap(),
            (2, Why::Config)
        );
        let error = choose(&found, "linux", Some("runit")).unwrap_err();
        assert!(
            error
                .message
                .contains("the runit backend chosen in config.toml was not found"),
            "{}",
            error.message
        );
    }

    #[test]
    fn takes_the_only_other_backend_and_refuses_to_guess_between_several() {
        let found = [
            id("openrc", "linux", "1.0.0"),
            id("runit", "linux", "1.0.0"),
        ];
        assert_eq!(
            choose(&found[..1], "linux", None).unwrap(),
            (0, Why::OnlyOne)
        );
        let error = choose(&found, "linux", None).unwrap_err();
        assert_eq!(error.exit, Exit::NoBackend);
        assert!(error.message.contains("openrc, runit"), "{}", error.message);
        let error = choose(&found, "windows", None).unwrap_err();
        assert!(error
            .message
            .contains("no usable sygen backend for windows"));
    }
}
