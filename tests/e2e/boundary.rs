//! What a backend can do to the host, through the real binary: exit, abort, crash or hang in
//! a call, run code in its library constructor. sygen never reports a success it did not see,
//! never dies without a line naming the backend and the call, and never waits without end.

#![cfg(unix)]

mod support;

use std::{
    process::Command,
    time::{Duration, Instant},
};

use support::{artifacts, library, Outcome};

struct User {
    home: tempfile::TempDir,
}

impl User {
    fn new() -> Self {
        Self {
            home: tempfile::tempdir().expect("temporary home"),
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(artifacts().join("sygen"));
        support::in_home(command.args(args), self.home.path())
            .env_remove("MISBEHAVE")
            .env_remove("ON_LOAD")
            .env_remove("SYGEN_BACKEND_TIMEOUT");
        command
    }

    /// Runs `args` with the misbehaving backend told to `behaviour`.
    fn misbehaving(&self, behaviour: &str, args: &[&str]) -> Outcome {
        let backend = library("misbehaving_backend");
        let mut full = vec!["--backend", backend.to_str().unwrap()];
        full.extend_from_slice(args);
        let mut command = self.command(&full);
        command.env("MISBEHAVE", behaviour);
        Outcome::from(command.output().expect("sygen runs"))
    }
}

/// The one `error:` line of a failed run (a backend's own notes may come before it).
fn error_line(out: &Outcome) -> &str {
    let errors: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.starts_with("error: "))
        .collect();
    assert_eq!(errors.len(), 1, "one error line: {}", out.stderr);
    assert_eq!(out.stderr.lines().last(), Some(errors[0]), "{}", out.stderr);
    errors[0]
}

#[test]
fn a_backend_that_exits_in_a_call_is_a_failure_not_a_success() {
    let user = User::new();
    for command in [&["service", "stop"][..], &["stop"]] {
        let out = user.misbehaving("exit@stop_service", command);
        assert_eq!(out.code, Some(1), "{command:?}: {}", out.stderr);
        let line = error_line(&out);
        assert!(
            line.starts_with(
                "error: misbehaving backend 0.1.0 ended the process (it called exit) in stop_service (hint: "
            ),
            "{line}"
        );
        assert!(!out.stdout.contains("stop_service: ok"), "{}", out.stdout);
    }
}

#[test]
fn a_backend_that_aborts_or_crashes_is_named_with_the_call_and_the_signal() {
    let user = User::new();
    for (behaviour, command, expected) in [
        (
            "abort@install_service",
            &["service", "install", "--no-wait"][..],
            "crashed (SIGABRT) in install_service",
        ),
        (
            "segfault@print_service_status",
            &["service", "status"],
            "crashed (SIGSEGV) in print_service_status",
        ),
        (
            "overflow@is_service_running",
            &["service", "stop"],
            "crashed (SIGSEGV) in is_service_running",
        ),
        (
            "segfault@is_service_running",
            &["stop"],
            "crashed (SIGSEGV) in is_service_running",
        ),
    ] {
        let out = user.misbehaving(behaviour, command);
        assert_eq!(out.code, Some(1), "{behaviour} {command:?}: {}", out.stderr);
        let line = error_line(&out);
        assert!(
            line.starts_with(&format!(
                "error: misbehaving backend 0.1.0 {expected} (hint: "
            )),
            "{line}"
        );
    }
}

#[test]
fn a_backend_that_does_not_answer_is_given_up_on_at_the_time_limit() {
    let user = User::new();
    let started = Instant::now();
    let mut command = user.command(&[
        "--backend",
        library("misbehaving_backend").to_str().unwrap(),
        "service",
        "status",
    ]);
    command
        .env("MISBEHAVE", "hang@is_service_installed")
        .env("SYGEN_BACKEND_TIMEOUT", "2");
    let out = Outcome::from(command.output().unwrap());
    let took = started.elapsed();
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    let line = error_line(&out);
    assert!(
        line.starts_with(
            "error: misbehaving backend 0.1.0 did not answer is_service_installed within 2 s (hint: "
        ),
        "{line}"
    );
    // The backend sleeps two minutes: sygen did not wait for it.
    assert!(took < Duration::from_secs(60), "took {took:?}");

    // doctor says so as one failed check, and asks the stuck backend nothing more.
    let mut command = user.command(&[
        "--backend",
        library("misbehaving_backend").to_str().unwrap(),
        "doctor",
    ]);
    command
        .env("MISBEHAVE", "hang@is_service_available")
        .env("SYGEN_BACKEND_TIMEOUT", "2");
    let out = Outcome::from(command.output().unwrap());
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert!(
        out.stdout.contains(
            "[FAIL] service-manager: misbehaving backend 0.1.0 did not answer is_service_available within 2 s"
        ),
        "{}",
        out.stdout
    );
    assert!(!out.stdout.contains("backend-checks"), "{}", out.stdout);
}

#[test]
fn a_bad_time_limit_is_one_clear_error() {
    let user = User::new();
    for bad in ["0", "soon", "99999999999999999999"] {
        let mut command = user.command(&[
            "--backend",
            library("misbehaving_backend").to_str().unwrap(),
            "service",
            "status",
        ]);
        command.env("SYGEN_BACKEND_TIMEOUT", bad);
        let out = Outcome::from(command.output().unwrap());
        out.fails_with(
            1,
            &format!("SYGEN_BACKEND_TIMEOUT={bad} is not a number of seconds from 1 to 3600"),
        );
    }
}
