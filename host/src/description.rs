//! Builds the service description every backend receives.
//!
//! The host decides what the service runs and with which environment, once, so that all
//! backends describe the same service: a service manager starts sygen with a bare environment,
//! so PATH is built here from the directories a worker is likely to need.

use std::{
    env,
    path::{Path, PathBuf},
};

use anyhow::{Context as _, Result};
use sygen_backend_api::{ServiceDescription, UNIX_SYSTEM_DIRS};

use crate::{
    exit::{Exit, Failure},
    home::{sygen_home, user_home},
};

/// The description of the sygen service as it should run now.
pub fn build() -> Result<ServiceDescription> {
    let user_home = user_home()?;
    let sygen_home = sygen_home()?;
    let program = env::current_exe()
        .and_then(dunce::canonicalize)
        .context("could not locate the sygen executable")?;
    let nvm_dir = env::var_os("NVM_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| user_home.join(".nvm"));
    let path = service_path(&user_home, program.parent(), &nvm_dir);
    let env = vec![
        ("PATH".to_owned(), path),
        ("HOME".to_owned(), utf8(&user_home, "home directory")?),
        ("SYGEN_HOME".to_owned(), utf8(&sygen_home, "sygen home")?),
        ("SYGEN_SUPERVISOR".to_owned(), "1".to_owned()),
    ];
    utf8(&program, "sygen executable")?;
    Ok(ServiceDescription {
        name: "sygen".into(),
        label: "dev.sygen".into(),
        description: "sygen agent".into(),
        program,
        args: vec!["run".into()],
        env,
        logs_dir: sygen_home.join("logs"),
        home: sygen_home,
    })
}

/// Service definitions are text files, so every path in them must be UTF-8.
fn utf8(path: &Path, what: &str) -> Result<String> {
    path.to_str().map(str::to_owned).ok_or_else(|| {
        Failure::new(
            Exit::Failed,
            format!("the {what} path {} is not valid UTF-8", path.display()),
        )
        .hint("service definitions are text; use a path with a UTF-8 name")
        .into()
    })
}

/// PATH for the service: the user's bin dirs, the sygen executable's dir, NVM's node bin dirs
/// (newest first), then the system dirs; existing user dirs only, no duplicates, UTF-8 only.
fn service_path(user_home: &Path, exe_dir: Option<&Path>, nvm_dir: &Path) -> String {
    let mut dirs: Vec<PathBuf> = [".local/bin", "bin", ".cargo/bin"]
        .iter()
        .map(|d| user_home.join(d))
        .filter(|d| d.is_dir())
        .collect();
    dirs.extend(exe_dir.map(Path::to_path_buf));
    dirs.extend(nvm_bin_dirs(nvm_dir));
    if cfg!(windows) {
        dirs.extend(env::var_os("PATH").iter().flat_map(env::split_paths));
    } else {
        dirs.extend(UNIX_SYSTEM_DIRS.iter().map(PathBuf::from));
    }
    let mut unique: Vec<PathBuf> = Vec::new();
    for dir in dirs {
        if !unique.contains(&dir) && dir.to_str().is_some() {
            unique.push(dir);
        }
    }
    env::join_paths(unique)
        .ok()
        .and_then(|joined| joined.into_string().ok())
        .unwrap_or_default()
}

/// `<nvm>/versions/node/<version>/bin` for every installed node, newest version first.
fn nvm_bin_dirs(nvm_dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(nvm_dir.join("versions/node")) else {
        return Vec::new();
    };
    let mut versions: Vec<(semver::Version, PathBuf)> = entries
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let name = entry.file_name().into_string().ok()?;
            let version = semver::Version::parse(name.trim_start_matches('v')).ok()?;
            let bin = entry.path().join("bin");
            bin.is_dir().then_some((version, bin))
        })
        .collect();
    versions.sort_by(|a, b| b.0.cmp(&a.0));
    versions.into_iter().map(|(_, bin)| bin).collect()
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn path_lists_user_dirs_then_newest_nvm_then_system_dirs() {
        let home = tempfile::tempdir().unwrap();
        let h = home.path();
        for dir in [
            ".local/bin",
            ".nvm/versions/node/v18.20.1/bin",
            ".nvm/versions/node/v20.11.0/bin",
            ".nvm/versions/node/v9.0.0/bin",
            ".nvm/versions/node/not-a-version/bin",
        ] {
            std::fs::create_dir_all(h.join(dir)).unwrap();
        }
        let path = service_path(h, Some(Path::new("/usr/bin")), &h.join(".nvm"));
        let entries: Vec<&str> = path.split(':').collect();
        let h = h.to_str().unwrap();
        assert_eq!(
            entries,
            [
                format!("{h}/.local/bin").as_str(),
                "/usr/bin",
                &format!("{h}/.nvm/versions/node/v20.11.0/bin"),
                &format!("{h}/.nvm/versions/node/v18.20.1/bin"),
                &format!("{h}/.nvm/versions/node/v9.0.0/bin"),
                "/usr/local/sbin",
                "/usr/local/bin",
                "/usr/sbin",
                "/sbin",
                "/bin",
            ]
        );
    }
}
