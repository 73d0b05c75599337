//! The compatibility promise, proven: `tests/compat` keeps the 1.0 interface frozen, with a
//! backend and a host built against it. Today's host must load that backend and reach all nine
//! operations; that host must load a backend built against today's interface.

use std::{fs, process::Command};

use crate::support::{self, artifacts, library, Outcome};

#[test]
fn the_frozen_interface_is_still_the_interface() {
    let repository = support::repository();
    let frozen =
        fs::read_to_string(repository.join("tests/compat/interface-1.0/src/abi.rs")).unwrap();
    let current = fs::read_to_string(repository.join("backend-api/src/abi.rs")).unwrap();
    assert!(
        frozen == current,
        "backend-api/src/abi.rs changed: the 1.x boundary is frozen"
    );
}

#[test]
fn hosts_and_backends_of_interface_1_work_together_both_ways() {
    let built = support::build_out_of_tree(&support::repository().join("tests/compat"), |_| {});

    // Today's host, a 1.0 backend: all nine operations reached.
    let home = tempfile::tempdir().unwrap();
    let backend = built.join("libsygen_compat10.so");
    let sygen = |args: &[&str]| {
        let mut command = Command::new(artifacts().join("sygen"));
        command.arg("--backend").arg(&backend).args(args);
        support::in_home(&mut command, home.path());
        Outcome::from(command.output().unwrap())
    };
    let mut said = String::new();
    for args in [
        &["service", "backends", "--json"][..],
        &["service", "install", "--no-wait"],
        &["service", "start", "--no-wait"],
        &["service", "stop", "--no-wait"],
        &["stop"],
        &["service", "status"],
        &["service", "status", "--json"],
        &["service", "logs", "-n", "3"],
        &["service", "uninstall"],
    ] {
        said.push_str(sygen(args).succeeds());
    }
    // `backends` asks each backend in a child process, whose output is only its answer.
    let backends: serde_json::Value =
        serde_json::from_str(sygen(&["service", "backends", "--json"]).succeeds()).unwrap();
    assert_eq!(
        backends["backends"][0]["available"], true,
        "is_service_available: {backends}"
    );
    for operation in [
        "is_service_installed",
        "is_service_running",
        "install_service",
        "start_service",
        "stop_service",
        "uninstall_service",
        "print_service_status",
        "print_service_logs(follow=false, lines=3)",
    ] {
        assert!(
            said.contains(&format!("compat10: {operation} called for sygen")),
            "{operation}: {said}"
        );
    }

    // What the 1.0 backend predates is refused plainly, never attempted.
    let refused = sygen(&["service", "install", "--dry-run"]);
    let line = refused.fails_with(1, "compat10 backend 1.0.0 cannot show a dry run of install");
    assert!(line.contains("(hint: update the backend"), "{line}");

    // A 1.0 host, today's backend.
    let out = Outcome::from(
        Command::new(built.join("compat-host-1-0"))
            .arg(library("misbehaving_backend"))
            .env("MISBEHAVE", "ok")
            .output()
            .unwrap(),
    );
    let stdout = out.succeeds();
    assert!(
        stdout.starts_with("info: misbehaving 0.1.0 for test, interface 1.2.0"),
        "{stdout}"
    );
    // The host's own report lines (the backend also prints "<operation>: ok for sygen").
    let answered = stdout
        .lines()
        .filter(|l| l.contains(": ok ") && !l.ends_with("for sygen"))
        .count();
    assert_eq!(answered, 9, "{stdout}");
}
