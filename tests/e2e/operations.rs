//! The `sygen service` operations through the test backends: what the user sees of a backend's
//! answers, errors, hints, output and tracing, the exit codes, the wait for the runtime after a
//! change, and `sygen service conformance` on a backend that implements nothing.

use std::{fs, process::Command};

use crate::support::{artifacts, library, User};

#[test]
fn a_backend_answers_what_it_does_not_implement_with_a_clear_error() {
    let backend = library("minimal_backend");
    let user = User::new();
    for (command, operation) in [
        ("install", "install_service"),
        ("start", "start_service"),
        ("stop", "stop_service"),
        ("uninstall", "uninstall_service"),
        ("status", "is_service_installed"),
        ("logs", "print_service_logs"),
    ] {
        let out = user.run(&["--backend", backend.to_str().unwrap(), "service", command]);
        let line = out.fails_with(
            1,
            &format!(
                "minimal backend 0.1.0: {operation} is not implemented in this backend version"
            ),
        );
        assert_eq!(
            line,
            format!(
                "error: minimal backend 0.1.0: {operation} is not implemented in this backend \
                 version (hint: update the backend, or use one that implements it \
                 (`sygen service backends`))"
            )
        );
    }
}

#[test]
fn a_panicking_backend_is_an_error_not_an_abort() {
    let out = User::new().misbehaving("panic", &["service", "install"]);
    let line = out.fails_with(1, "backend panicked: install_service was told to panic");
    // The panic's location, a line of the test backend, aside.
    assert!(
        line.starts_with(
            "error: misbehaving backend 0.1.0: backend panicked: install_service was told to \
             panic at tests/backends/misbehaving/src/lib.rs:"
        ) && line.ends_with(" (hint: this is a bug in the backend; report it to its publisher)"),
        "{line}"
    );
}

#[test]
fn a_backend_error_carries_its_hint() {
    let out = User::new().misbehaving("error", &["service", "stop"]);
    let line = out.fails_with(
        1,
        "misbehaving backend 0.1.0: stop_service failed on purpose",
    );
    assert_eq!(
        line,
        "error: misbehaving backend 0.1.0: stop_service failed on purpose (hint: unset MISBEHAVE)"
    );
}

#[test]
fn not_installed_has_its_own_exit_code() {
    let user = User::new();
    for command in ["start", "stop", "uninstall"] {
        let out = user.misbehaving("not-installed", &["service", command]);
        let line = out.fails_with(3, "no sygen service here");
        assert_eq!(
            line,
            "error: misbehaving backend 0.1.0: no sygen service here \
             (hint: run `sygen service install`)"
        );
    }
}

#[test]
fn backend_output_goes_through_the_console_sink() {
    let out = User::new().misbehaving("ok", &["service", "install", "--no-wait"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(
        out.stdout,
        "install_service: ok for sygen\nsygen service installed (misbehaving backend, named with --backend)\n"
    );
    assert_eq!(out.stderr, "install_service: a note on stderr\n");
}

#[test]
fn backend_tracing_events_reach_the_host_subscriber() {
    let user = User::new();
    let quiet = user.misbehaving("ok", &["service", "start", "--no-wait"]);
    assert!(!quiet.stderr.contains("misbehaving backend at work"));

    let verbose = user.misbehaving("ok", &["-v", "service", "start", "--no-wait"]);
    assert!(
        verbose.stderr.contains("misbehaving backend at work")
            && verbose.stderr.contains("operation=\"start_service\"")
            && verbose.stderr.contains("backend=misbehaving"),
        "{}",
        verbose.stderr
    );
    assert!(!verbose.stderr.contains("a trace-level detail"));

    let very = user.misbehaving("ok", &["-vv", "service", "start", "--no-wait"]);
    assert!(
        very.stderr.contains("a trace-level detail"),
        "{}",
        very.stderr
    );

    let backend = library("misbehaving_backend");
    let mut command = user.command(&[
        "--backend",
        backend.to_str().unwrap(),
        "service",
        "start",
        "--no-wait",
    ]);
    command
        .env("MISBEHAVE", "ok")
        .env("RUST_LOG", "sygen::backend=trace");
    let by_env = User::run_command(command);
    assert!(
        by_env.stderr.contains("a trace-level detail"),
        "{}",
        by_env.stderr
    );
}

#[test]
fn status_json_reports_installed_and_running() {
    let out = User::new().misbehaving("ok", &["service", "status", "--json"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    // Only the JSON: what the backend prints is not mixed in.
    let report: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(report["backend"], "misbehaving");
    assert_eq!(report["backend_version"], "0.1.0");
    assert_eq!(report["installed"], true);
    assert_eq!(report["running"], true);
    assert!(report["backend_path"]
        .as_str()
        .unwrap()
        .ends_with("libmisbehaving_backend.so"));
}

#[test]
fn logs_passes_follow_and_line_count() {
    let user = User::new();
    let out = user.misbehaving("ok", &["service", "logs", "-f", "-n", "7"]);
    assert_eq!(
        out.succeeds(),
        "print_service_logs: ok for sygen\nfollow=true lines=7\n"
    );
    let out = user.misbehaving("ok", &["service", "logs"]);
    assert_eq!(
        out.succeeds(),
        "print_service_logs: ok for sygen\nfollow=false lines=50\n"
    );
}

#[test]
fn conformance_fails_a_backend_that_implements_nothing() {
    let backend = library("minimal_backend");
    let out = User::new().run(&[
        "--backend",
        backend.to_str().unwrap(),
        "service",
        "conformance",
    ]);
    assert_eq!(out.code, Some(1), "{}", out.stdout);
    assert!(out.stdout.contains("  info() is sane"), "{}", out.stdout);
    assert!(
        out.stdout
            .contains("FAIL  is_service_available is not implemented"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("skip  not run: an earlier check failed"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.ends_with("2 of 12 checks passed\n"),
        "{}",
        out.stdout
    );
    out.fails_with(1, "the minimal backend failed 10 of 12 conformance checks");
}

#[test]
fn a_wait_that_times_out_shows_the_logs_then_one_error() {
    let user = User::new();
    // The test backend reports a running service but runs nothing: no runtime ever comes.
    let out = user.misbehaving("ok", &["service", "start", "--timeout", "1s"]);
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    let bot_pid = user.sygen_home().join("bot.pid");
    assert_eq!(
        out.stderr,
        format!(
            "start_service: a note on stderr\n\
             waiting for the sygen runtime to start…\n\
             last log lines (misbehaving backend):\n  \
             print_service_logs: ok for sygen\n  \
             print_service_logs: a note on stderr\n  \
             follow=false lines=20\n\
             error: sygen did not start within 1s: the service manager reports it running, \
             but no sygen runtime holds {} (hint: the log lines above show why; \
             `sygen doctor` checks the set-up)\n",
            bot_pid.display()
        )
    );

    let out = user.misbehaving("ok", &["service", "stop", "--timeout", "1s"]);
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert!(
        out.stderr.ends_with(
            "error: sygen did not stop within 1s: the service manager still reports it running \
             (hint: the log lines above show why; `sygen stop` also ends its processes)\n"
        ),
        "{}",
        out.stderr
    );
    let both = user.misbehaving("ok", &["service", "start", "--no-wait", "--timeout", "5s"]);
    assert_eq!(
        both.code,
        Some(2),
        "--no-wait and --timeout exclude each other"
    );
    assert_eq!(
        both.stderr,
        "error: the argument '--no-wait' cannot be used with '--timeout <DURATION>'\n\n\
         Usage: sygen service start --no-wait\n\n\
         For more information, try '--help'.\n"
    );
}

#[test]
fn a_broken_config_does_not_stop_the_service_from_being_stopped_or_removed() {
    let user = User::new();
    fs::create_dir_all(user.sygen_home()).unwrap();
    let config = user.sygen_home().join("config.toml");
    fs::write(&config, "[agent]\nstop_timeout = \"2h\"\n").unwrap();
    for (command, done) in [
        (&["stop", "--no-wait"][..], "sygen service stopped\n"),
        (&["uninstall"], "sygen service uninstalled\n"),
    ] {
        let out = user.misbehaving("ok", &[&["service"], command].concat());
        assert_eq!(out.code, Some(0), "{}", out.stderr);
        assert!(out.stdout.ends_with(done), "{}", out.stdout);
        assert!(
            out.stderr.starts_with(&format!(
                "warning: {} line 2: key `agent.stop_timeout`: `2h` is out of range: allowed from 0s to 1h",
            config.display()
            )) && out.stderr.contains(&format!("({} does not need it;", command[0])),
            "{}",
            out.stderr
        );
    }
}

#[test]
fn a_flood_of_backend_output_is_kept_as_its_last_lines_only() {
    let user = User::new();
    let backend = library("misbehaving_backend");
    // GNU time reports the peak memory of the sygen it runs.
    let mut command = Command::new("/usr/bin/time");
    command
        .args(["-f", "peak %M KiB"])
        .arg(artifacts().join("sygen"));
    command.args(["--backend", backend.to_str().unwrap()]);
    command.args(["service", "install", "--timeout", "1s"]);
    user.environment(&mut command);
    command.env("MISBEHAVE", "flood");
    let out = User::run_command(command);
    assert_eq!(out.code, Some(1), "{:.2000}", out.stderr);
    let shown: Vec<&str> = out
        .stderr
        .lines()
        .skip_while(|l| !l.starts_with("last log lines"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .collect();
    let expected: Vec<String> = (10..30).map(|i| format!("  line {i}")).collect();
    assert_eq!(shown, expected, "{:.2000}", out.stderr);
    assert!(
        out.stderr.len() < 64 * 1024,
        "{} bytes on stderr",
        out.stderr.len()
    );
    let peak: u64 = out
        .stderr
        .lines()
        .find_map(|l| l.strip_prefix("peak ")?.strip_suffix(" KiB")?.parse().ok())
        .expect("the peak memory");
    // 200 MiB went through the console; what is kept is a few MiB at most.
    assert!(peak < 64 * 1024, "peak {peak} KiB");
}
