//! Opening and loading one backend library.
//!
//! Each file is loaded with `lib_header_from_path` + `init_root_module`, which checks the
//! interface version and the root module's layout for that one file. `RootModule::load_from_file`
//! is not used: it caches one module per type, so every later file would silently answer as the
//! first backend loaded. Libraries are never unloaded (a backend may have left threads or
//! thread-locals behind, and its code must stay mapped while they exist). The file is opened
//! once and checked (`trust`) through that descriptor before anything of it runs.

use std::path::{Path, PathBuf};

use abi_stable::library::{lib_header_from_path, LibraryError};
use sygen_backend_api::{abi::BackendInfo, BackendModuleRef};

use super::{
    boundary::{self, Limit, Site},
    handle::Backend,
    identity::Described,
    load_error::{LoadError, NOT_A_BACKEND_HINT},
    name::BackendName,
    trust,
};
use crate::platform;

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
    trust::check_signature(path, file)
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
    let file = platform::LoadedFile::keep(file);
    let name = BackendName::new(info.name.as_str()).map_err(|(name, why)| {
        LoadError::new(
            format!("it calls itself {name:?}, which {why}"),
            "a backend's name is lowercase letters, digits, '-' and '_' (ask its publisher)",
        )
        .lasting()
    })?;
    let described = Described {
        name,
        version: info.version.into(),
        platform: info.platform.into(),
        description: info.description.into(),
        api_version: info.api_version.into(),
    };
    Ok(Backend::new(path, file, described, module))
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
        file: None,
    };
    let library = loadable.to_owned();
    boundary::call(&site, Limit::Query, move || {
        let module = lib_header_from_path(&library)
            .and_then(|header| header.init_root_module::<BackendModuleRef>())
            .map_err(|e| refusal(&library, e))?;
        Ok((module, (module.info())()))
    })
    .map_err(|no_answer| LoadError::new(no_answer.reason(site.call), no_answer.hint()))?
}

/// `path` is the one the loader was given, which its messages repeat.
fn refusal(path: &Path, error: LibraryError) -> LoadError {
    let lasting = !matches!(error, LibraryError::OpenError { .. });
    let error = refusal_words(path, error);
    LoadError { lasting, ..error }
}

fn refusal_words(path: &Path, error: LibraryError) -> LoadError {
    match error {
        LibraryError::OpenError { err, .. } => {
            let detail = err.to_string();
            let prefix = format!("{}: ", path.display());
            let detail = detail.strip_prefix(&prefix).unwrap_or(&detail);
            LoadError::new(
                format!("not a loadable library ({detail})"),
                NOT_A_BACKEND_HINT,
            )
        }
        LibraryError::GetSymbolError { .. } => LoadError::new(
            "not a sygen backend (it exports no abi_stable root module)",
            NOT_A_BACKEND_HINT,
        ),
        LibraryError::InvalidAbiHeader(_) | LibraryError::InvalidCAbi { .. } => LoadError::new(
            "built with an incompatible abi_stable",
            "rebuild the backend against the sygen-backend-api this sygen uses",
        ),
        LibraryError::IncompatibleVersionNumber {
            expected_version,
            actual_version,
            ..
        } => LoadError::new(
            format!(
                "built against backend interface {actual_version}; this sygen loads {}.x",
                expected_version.major
            ),
            "install a version of this backend built for this sygen's interface",
        ),
        LibraryError::AbiInstability(detail) => {
            tracing::debug!("layout mismatch in {}:{detail}", path.display());
            LoadError::new(
                "built against an incompatible backend interface (layout mismatch)",
                "install a version of this backend built for this sygen's interface",
            )
        }
        LibraryError::RootModule { err, .. } => LoadError::new(
            format!("its root module failed to initialize ({err})"),
            "report this to the backend's publisher",
        ),
        other => LoadError::new(
            format!("could not be loaded ({})", other.to_string().trim()),
            NOT_A_BACKEND_HINT,
        ),
    }
}
