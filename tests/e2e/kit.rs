//! The backend author kit as a third party meets it: the template, copied out of this
//! repository, builds against `sygen-backend-api` as packaged for crates.io, and sygen finds
//! and loads it.

#![cfg(unix)]

mod support;

use std::{fs, process::Command};

use support::{artifacts, Outcome};

#[test]
fn the_template_builds_against_the_packaged_crate_outside_the_repository_and_is_listed() {
    // The crate as it would be published, unpacked where no path leads into this checkout.
    let outside = tempfile::tempdir().unwrap();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let packaged = Command::new(&cargo)
        .args([
            "package",
            "-p",
            "sygen-backend-api",
            "--allow-dirty",
            "--no-verify",
        ])
        .arg("--target-dir")
        .arg(outside.path().join("target"))
        .current_dir(support::repository())
        .output()
        .unwrap();
    assert!(
        packaged.status.success(),
        "{}",
        String::from_utf8_lossy(&packaged.stderr)
    );
    let archive = outside
        .path()
        .join("target/package/sygen-backend-api-1.1.0.crate");
    let unpacked = Command::new("tar")
        .arg("xzf")
        .arg(&archive)
        .arg("-C")
        .arg(outside.path())
        .status()
        .unwrap();
    assert!(unpacked.success());
    let api = outside.path().join("sygen-backend-api-1.1.0");
    // The template as an author copies it: its one dependency is `sygen-backend-api = "1.1"`,
    // which the unpacked crate stands in for until it is on crates.io.
    let patch = |copy: &std::path::Path| {
        let manifest = copy.join("Cargo.toml");
        let text = fs::read_to_string(&manifest).unwrap();
        let dependencies = text.split("[dependencies]").nth(1).unwrap_or_default();
        assert_eq!(dependencies.trim(), "sygen-backend-api = \"1.1\"", "{text}");
        let patched = format!(
            "{text}\n[patch.crates-io]\nsygen-backend-api = {{ path = {:?} }}\n",
            api.display().to_string()
        );
        fs::write(&manifest, patched).unwrap();
    };
    let built = support::build_out_of_tree("backend-api/template", patch);
    // Its own unit test, with a test context from the SDK, passes there too.
    support::cargo_out_of_tree("backend-api/template", patch, &["test", "--lib"]);

    let home = tempfile::tempdir().unwrap();
    let backends = home.path().join(".sygen/backends");
    fs::create_dir_all(&backends).unwrap();
    fs::copy(
        built.join("libsygen_example.so"),
        backends.join("libsygen_example.so"),
    )
    .unwrap();
    let listing = Outcome::from(
        support::in_home(&mut Command::new(artifacts().join("sygen")), home.path())
            .args(["service", "backends", "--json"])
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
    assert_eq!(example["api_version"], "1.1.0");
    assert_eq!(example["available"], false);
    assert!(example["path"]
        .as_str()
        .unwrap()
        .starts_with(backends.to_str().unwrap()));
}
