//! The backend author kit as a third party meets it: the template, copied out of this
//! repository and pointed at `sygen-backend-api`, builds, and sygen finds and loads it.

mod support;

use std::{fs, path::Path, process::Command};

use support::{artifacts, Outcome};

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            if entry.file_name() != "target" {
                copy_dir(&entry.path(), &target);
            }
        } else {
            fs::copy(entry.path(), target).unwrap();
        }
    }
}

#[test]
fn the_template_builds_outside_the_workspace_and_is_listed() {
    let repository = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let crate_dir = outside.path().join("sygen-example");
    copy_dir(&repository.join("backend-api/template"), &crate_dir);
    let manifest = crate_dir.join("Cargo.toml");
    let api = fs::canonicalize(repository.join("backend-api")).unwrap();
    let text = fs::read_to_string(&manifest).unwrap().replace(
        "path = \"../../backend-api\"",
        &format!("path = {:?}", api.display().to_string()),
    );
    fs::write(&manifest, text).unwrap();
    // The workspace's lock file pins the same dependency versions, so nothing is fetched anew.
    fs::copy(repository.join("Cargo.lock"), crate_dir.join("Cargo.lock")).unwrap();

    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let target = artifacts().join("out-of-tree");
    let build = Command::new(cargo)
        .arg("build")
        .current_dir(&crate_dir)
        .env("CARGO_TARGET_DIR", &target)
        .output()
        .expect("cargo runs");
    assert!(
        build.status.success(),
        "{}",
        String::from_utf8_lossy(&build.stderr)
    );

    let home = tempfile::tempdir().unwrap();
    let backends = home.path().join(".sygen/backends");
    fs::create_dir_all(&backends).unwrap();
    fs::copy(
        target.join("debug/libsygen_example.so"),
        backends.join("libsygen_example.so"),
    )
    .unwrap();
    let listing = Outcome::from(
        Command::new(artifacts().join("sygen"))
            .args(["service", "backends", "--json"])
            .env("HOME", home.path())
            .env_remove("SYGEN_HOME")
            .env_remove("SYGEN_BACKEND")
            .output()
            .unwrap(),
    );
    let report: serde_json::Value = serde_json::from_str(listing.succeeds()).unwrap();
    let example = report["backends"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["name"] == "example")
        .unwrap_or_else(|| panic!("example not listed: {}", listing.stdout));
    assert_eq!(example["loaded"], true);
    assert_eq!(example["version"], "0.1.0");
    assert_eq!(example["api_version"], "1.0.0");
    assert_eq!(example["available"], false);
    assert!(example["path"]
        .as_str()
        .unwrap()
        .starts_with(backends.to_str().unwrap()));
}
