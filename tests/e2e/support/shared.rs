//! What the end-to-end tests and the benchmark (`benches/linux.rs` includes this file) both
//! use: where the built artifacts and this repository are, copying an executable, reading a pid
//! file.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

/// `target/<profile>`, where cargo put `sygen` and the backend libraries.
pub fn artifacts() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("tests run from target/<profile>/deps")
        .to_path_buf();
    assert!(
        dir.join("sygen").is_file(),
        "{} has no sygen binary: run `cargo build --workspace` first (with --release for \
         the benchmarks)",
        dir.display()
    );
    dir
}

/// The root of this repository.
pub fn repository() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is inside the repository")
}

/// Copies a file the tests will execute or load. With `cp`, so the copy's write descriptor
/// never lives in this multi-threaded process, where a child forked meanwhile by another
/// test could inherit it and make executing the copy fail with "Text file busy".
pub fn copy_executable(from: &Path, to: &Path) {
    let status = Command::new("cp")
        .arg(from)
        .arg(to)
        .status()
        .expect("cp runs");
    assert!(status.success(), "cp {} {}", from.display(), to.display());
}

/// The pid in the pid file at `path` (its first line), if there is one.
pub fn read_pid(path: &Path) -> Option<u32> {
    std::fs::read_to_string(path)
        .ok()?
        .lines()
        .next()?
        .trim()
        .parse()
        .ok()
}
