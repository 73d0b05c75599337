//! What a release ships, by size: the stripped host binary and each backend library per
//! target, as `scripts/release` built them (the `dist` profile) under `target/<triple>/dist/`.
//! A target that was not built is said so.

use std::path::Path;

use super::{row, Row};

/// The targets a release builds, with the host binary's and the backends' file names.
const TARGETS: &[(&str, &str, &[&str])] = &[
    (
        "x86_64-unknown-linux-gnu",
        "sygen",
        &["libsygen_systemd.so", "libsygen_openrc.so"],
    ),
    (
        "aarch64-unknown-linux-gnu",
        "sygen",
        &["libsygen_systemd.so", "libsygen_openrc.so"],
    ),
    (
        "x86_64-pc-windows-gnu",
        "sygen.exe",
        &["sygen_tasksched.dll"],
    ),
    ("x86_64-apple-darwin", "sygen", &["libsygen_launchd.dylib"]),
    ("aarch64-apple-darwin", "sygen", &["libsygen_launchd.dylib"]),
];

const MIB: f64 = 1024.0 * 1024.0;
/// The targets, on x86_64 Linux.
const HOST_LIMIT: u64 = 4 << 20;
const BACKEND_LIMIT: u64 = 3 << 19;

pub fn rows(repository: &Path) -> Vec<Row> {
    let mut rows = Vec::new();
    for (target, host, backends) in TARGETS {
        let built = repository.join("target").join(target).join("dist");
        for (file, is_host) in
            std::iter::once((*host, true)).chain(backends.iter().map(|b| (*b, false)))
        {
            let measure = format!("size of {file} for {target}, stripped");
            let Ok(metadata) = std::fs::metadata(built.join(file)) else {
                rows.push(row(measure, "not built (scripts/release)", "", None));
                continue;
            };
            let size = metadata.len();
            let value = format!("{:.2} MiB", size as f64 / MIB);
            rows.push(match (*target, is_host) {
                ("x86_64-unknown-linux-gnu", true) => {
                    row(measure, value, "≤ 4 MiB", Some(size <= HOST_LIMIT))
                }
                ("x86_64-unknown-linux-gnu", false) => {
                    row(measure, value, "≤ 1.5 MiB", Some(size <= BACKEND_LIMIT))
                }
                _ => row(measure, value, "", None),
            });
        }
    }
    rows
}
