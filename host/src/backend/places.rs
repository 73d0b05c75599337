//! Where backend files are looked for: `$SYGEN_HOME/backends/` (the store, see `store`),
//! then beside the sygen binary, where it was shipped with it: `<exe dir>/backends/`,
//! `<exe dir>/../lib/sygen/backends/` (the packages' place) and `<exe dir>` itself (where
//! `cargo build` puts them).

use std::path::{Path, PathBuf};

use super::name::BackendName;

/// The directories searched for backend files, in order.
pub fn search_dirs(sygen_home: &Path) -> Vec<PathBuf> {
    let mut dirs = vec![sygen_home.join("backends")];
    if let Some(exe_dir) = std::env::current_exe()
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

/// The library of the backend `name` shipped with sygen (beside the sygen binary), if any.
pub fn shipped_file(sygen_home: &Path, name: &BackendName) -> Option<PathBuf> {
    search_dirs(sygen_home)
        .into_iter()
        .skip(1)
        .map(|dir| dir.join(name.file_name()))
        .find(|path| path.is_file())
}
