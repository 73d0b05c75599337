//! The backend author kit as a third party meets it: the template, copied out of this
//! repository, builds against `sygen-backend-api` as packaged for crates.io, and sygen finds
//! and loads it; made into a real backend over a small supervisor, it passes the conformance
//! suite in its own `cargo test`, and sygen runs the service through it.

use std::{
    fs,
    path::{Path, PathBuf},
    process::{Child, Command},
    thread,
    time::{Duration, Instant},
};

use crate::support::{self, artifacts, Outcome, User};

/// `sygen-backend-api` as it would be published, unpacked in `outside`, where no path leads
/// into this checkout: answers its directory.
fn packaged_api(outside: &Path) -> PathBuf {
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
        .arg(outside.join("target"))
        .current_dir(support::repository())
        .output()
        .unwrap();
    assert!(
        packaged.status.success(),
        "{}",
        String::from_utf8_lossy(&packaged.stderr)
    );
    let archive = outside.join("target/package/sygen-backend-api-1.1.0.crate");
    let unpacked = Command::new("tar")
        .arg("xzf")
        .arg(&archive)
        .arg("-C")
        .arg(outside)
        .status()
        .unwrap();
    assert!(unpacked.success());
    outside.join("sygen-backend-api-1.1.0")
}

/// The template's manifest as an author copies it (its one dependency is
/// `sygen-backend-api = "1.1"`), with the unpacked crate standing in for crates.io.
fn use_packaged_api(copy: &Path, api: &Path) -> String {
    let manifest = copy.join("Cargo.toml");
    let text = fs::read_to_string(&manifest).unwrap();
    let dependencies = text
        .split("[dependencies]")
        .nth(1)
        .and_then(|rest| rest.split("[dev-dependencies]").next())
        .unwrap_or_default();
    assert_eq!(dependencies.trim(), "sygen-backend-api = \"1.1\"", "{text}");
    format!(
        "{text}\n[patch.crates-io]\nsygen-backend-api = {{ path = {:?} }}\n",
        api.display().to_string()
    )
}

#[test]
fn the_template_builds_against_the_packaged_crate_outside_the_repository_and_is_listed() {
    let outside = tempfile::tempdir().unwrap();
    let api = packaged_api(outside.path());
    let patch = |copy: &Path| {
        let manifest = use_packaged_api(copy, &api);
        fs::write(copy.join("Cargo.toml"), manifest).unwrap();
    };
    let built = support::build_out_of_tree("backend-api/template", patch);
    // Its own unit test, with a test context from the SDK, passes there too, and its
    // conformance test is there, waiting for a service manager.
    let (_, tests) = support::cargo_out_of_tree("backend-api/template", patch, &["test"], &[]);
    assert!(
        tests.contains("test behaves_as_sygen_expects ... ignored"),
        "{tests}"
    );

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

/// A tinysup daemon in `dir`, ended when dropped.
struct Tinysup(Child);

impl Tinysup {
    fn start(program: &Path, dir: &Path) -> Self {
        let child = Command::new(program)
            .arg("daemon")
            .arg(dir)
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !dir.join("control.sock").exists() {
            assert!(Instant::now() < deadline, "tinysup did not start listening");
            thread::sleep(Duration::from_millis(20));
        }
        Self(child)
    }
}

impl Drop for Tinysup {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn an_outside_authors_backend_over_a_small_supervisor_passes_its_own_conformance_test_and_runs_sygen(
) {
    let outside = tempfile::tempdir().unwrap();
    let api = packaged_api(outside.path());
    // The supervisor: one file of std-only Rust, like any program a backend drives.
    let tinysup = outside.path().join("tinysup");
    let fixture = support::repository().join("tests/kit/tinysup");
    let compiled = Command::new("rustc")
        .args(["--edition", "2021", "-O"])
        .arg(fixture.join("supervisor.rs"))
        .arg("-o")
        .arg(&tinysup)
        .status()
        .unwrap();
    assert!(compiled.success());

    // The template, copied out and made real: renamed, its source replaced by the author's.
    let make_real = |copy: &Path| {
        let manifest = use_packaged_api(copy, &api)
            .replace("name = \"sygen-example\"", "name = \"sygen-tinysup\"")
            .replace("name = \"sygen_example\"", "name = \"sygen_tinysup\"")
            .replace(
                "[dev-dependencies]\n",
                "[dev-dependencies]\ntempfile = \"3\"\n",
            );
        fs::write(copy.join("Cargo.toml"), manifest).unwrap();
        for file in ["src/lib.rs", "tests/conformance.rs"] {
            fs::copy(fixture.join(file), copy.join(file)).unwrap();
        }
    };
    let (built, tests) = support::cargo_out_of_tree(
        "backend-api/template",
        make_real,
        &["test", "--", "--nocapture"],
        &[("TINYSUP", &tinysup)],
    );
    // Its unit tests, and the suite `sygen service conformance` runs, row for row.
    assert!(tests.contains("test result: ok. 3 passed"), "{tests}");
    assert!(
        tests.contains("conformance of the tinysup backend 0.1.0 (")
            && !tests.contains("FAIL")
            && tests.contains("12 of 12 checks passed\n"),
        "{tests}"
    );

    // sygen runs its service through the backend, chosen for good and configured in
    // config.toml, with tinysup where the settings say.
    let user = User::new();
    let backends = user.sygen_home().join("backends");
    fs::create_dir_all(&backends).unwrap();
    fs::copy(
        built.join("deps/libsygen_tinysup.so"),
        backends.join("libsygen_tinysup.so"),
    )
    .unwrap();
    let dir = outside.path().join("supervised");
    let _daemon = Tinysup::start(&tinysup, &dir);
    let config = user.sygen_home().join("config.toml");
    let settings = format!(
        "[backends.tinysup]\ndir = {:?}\nprogram = {:?}\n",
        dir.display().to_string(),
        tinysup.display().to_string()
    );
    fs::write(&config, &settings).unwrap();
    assert_eq!(
        user.run(&["service", "backend", "use", "tinysup"])
            .succeeds(),
        format!(
            "sygen uses the tinysup backend from now on ({}; set in {})\n",
            backends.join("libsygen_tinysup.so").display(),
            config.display()
        )
    );
    let installed = user.run(&["service", "install"]);
    assert!(
        installed
            .succeeds()
            .contains("(tinysup backend, chosen in config.toml)"),
        "{}",
        installed.stdout
    );
    let status = user.run(&["service", "status"]);
    assert!(
        status.succeeds().contains("sygen under tinysup: running "),
        "{}",
        status.stdout
    );
    // Its settings reach it wherever it is asked, in the listing's child processes too.
    let listing = user.run(&["service", "backends"]);
    assert!(
        listing
            .succeeds()
            .contains("* tinysup   0.1.0   linux    yes")
            && listing
                .stdout
                .contains("* in use: tinysup 0.1.0, chosen in config.toml"),
        "{}",
        listing.stdout
    );
    let doctor = user.run(&["doctor"]);
    assert!(
        doctor
            .succeeds()
            .contains("[pass] service-manager: the tinysup service manager answers")
            && doctor
                .stdout
                .contains("[pass] service: sygen is installed and running"),
        "{}",
        doctor.stdout
    );
    assert_eq!(
        user.run(&["service", "uninstall"]).succeeds(),
        "sygen service uninstalled\n"
    );
    assert!(!dir.join("programs/sygen.conf").exists());

    // A setting of the wrong kind is named by the backend, in doctor.
    let chosen = fs::read_to_string(&config).unwrap();
    fs::write(
        &config,
        chosen.replace(&format!("dir = {:?}", dir.display().to_string()), "dir = 3"),
    )
    .unwrap();
    let doctor = user.run(&["doctor"]);
    assert!(
        doctor
            .stdout
            .contains("`dir` in [backends.tinysup] of config.toml is 3, not a path"),
        "{}",
        doctor.stdout
    );
}

#[test]
fn the_conformance_library_gives_the_table_sygen_service_conformance_gives() {
    // Timings and the sandbox's name aside, row for row, for a backend that implements
    // nothing and one that answers only whether its manager is there.
    let rows = |table: &str| -> Vec<String> {
        table
            .lines()
            .skip(1)
            .map(|line| {
                let line = line.replace(|c: char| c.is_ascii_digit(), "#");
                match line.split_once("$HOME-") {
                    Some((before, after)) => {
                        format!("{before}$HOME-…{}", after.get(6..).unwrap_or(""))
                    }
                    None => line,
                }
            })
            .collect()
    };
    for name in ["minimal_backend", "on_load"] {
        let file = support::library(name);
        // Side by side: each waits out the logs check's time limit.
        let host = thread::spawn({
            let file = file.clone();
            move || {
                User::new().run(&[
                    "--backend",
                    file.to_str().unwrap(),
                    "service",
                    "conformance",
                ])
            }
        });
        let scratch = tempfile::tempdir().unwrap();
        let report = sygen_backend_api::conformance::Conformance::of_file(&file)
            .user_home(scratch.path())
            .run()
            .unwrap();
        assert!(!report.all_passed());
        let host = host.join().unwrap();
        assert_eq!(rows(&report.to_string()), rows(&host.stdout), "{name}");
    }
}
