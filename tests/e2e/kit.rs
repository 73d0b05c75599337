//! The backend author kit as a third party meets it: the template, copied out of this
//! repository and pointed at `sygen-backend-api`, builds, and sygen finds and loads it.

#![cfg(unix)]

mod support;

use std::{fs, process::Command};

use support::{artifacts, Outcome};

#[test]
fn the_template_builds_outside_the_workspace_and_is_listed() {
    // Pointed at this checkout's backend-api by absolute path, as an author would.
    let api = fs::canonicalize(support::repository().join("backend-api")).unwrap();
    let built = support::build_out_of_tree("backend-api/template", |copy| {
        let manifest = copy.join("Cargo.toml");
        let text = fs::read_to_string(&manifest).unwrap().replace(
            "path = \"../../backend-api\"",
            &format!("path = {:?}", api.display().to_string()),
        );
        fs::write(&manifest, text).unwrap();
    });

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
